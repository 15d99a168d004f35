//! The one owner of the terminal while a job runs: the progress display (a bar, or
//! plain lines for logs), every line written to stderr meanwhile, and every result line
//! written to a stdout that shares the bar's terminal, so the two never interleave.
//!
//! What is shown follows `--progress` ([`ProgressMode`]): `auto` draws a bar when
//! stderr is a terminal that can redraw a line (not `TERM=dumb`) and shows nothing
//! otherwise; `bar` draws one when it can and falls back to plain lines; `plain` prints
//! a line every few seconds; `none` nothing. The bar has no colors, so `NO_COLOR` needs
//! nothing here (clap's help and error messages honour it themselves).
//!
//! Totals are honest: until whatever finds the work (the walk, or a counting walk run
//! ahead of it, see [`Progress::count_ahead`]) has finished, the display says
//! "counting…" with what was found and done so far, and no percentage or ETA; only then
//! does the bar appear, against the real total.

mod render;
mod summary;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use render::Snapshot;
pub use render::Total;
pub use summary::{ArchiveSummary, Summary};

/// What `--progress` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal that can show one; nothing otherwise.
    #[default]
    Auto,
    /// A bar when stderr can show one; plain lines otherwise.
    Bar,
    /// A line every few seconds on stderr, for logs.
    Plain,
    /// Nothing.
    None,
}

/// How often `plain` prints a line. `SPATE_PROGRESS_INTERVAL` (seconds, fractions
/// allowed) overrides it and [`BAR_EVERY`]; it is undocumented, there for tests that
/// cannot wait.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the bar is redrawn.
const BAR_EVERY: Duration = Duration::from_millis(200);

/// Shared progress state; cheap to clone.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    display: Display,
    counts: Counts,
    started: Instant,
    /// What the run counts: "files", or "entries" for an archive being read.
    unit: &'static str,
    /// Whether result lines on stdout share the bar's terminal.
    stdout_is_terminal: bool,
    /// False when totals must come from the job's own source ([`Progress::source_counts`]).
    may_count_ahead: AtomicBool,
    /// Set by [`Progress::finish`]: the redraw thread and any counting walk stop.
    stop: Mutex<bool>,
    wake: Condvar,
    /// [`Inner::stop`] for the counting walk, which looks at it for every file.
    over: AtomicBool,
    redraw: Mutex<Option<JoinHandle<()>>>,
}

enum Display {
    Hidden,
    Bar(ProgressBar),
    Plain(Duration),
    /// A caller's own display (the library's): counts and lines go to it, nothing to
    /// the terminal. `counts`: it wants the counts, not only the lines.
    Observed {
        observer: Arc<dyn Observer>,
        counts: bool,
    },
}

/// What a caller that shows progress its own way receives instead of a bar.
pub trait Observer: Send + Sync {
    /// Done so far (files or entries, and bytes), and the totals once known; called a
    /// few times a second and once at the end.
    fn counts(&self, done: (u64, u64), total: Option<(u64, u64)>);
    /// A line the job would have printed on stderr.
    fn line(&self, line: &str);
}

#[derive(Default)]
struct Counts {
    found_files: AtomicU64,
    found_bytes: AtomicU64,
    done_files: AtomicU64,
    done_bytes: AtomicU64,
    /// A [`Total`] as a number.
    total: AtomicU8,
    /// A counting walk of its own finds the totals; what the job's source finds is
    /// not counted again.
    counted_ahead: AtomicBool,
}

impl Progress {
    /// A progress display of files found and read.
    pub fn new(mode: ProgressMode) -> Self {
        Progress::with_unit(mode, "files")
    }

    /// A progress display that calls what it counts `unit` ("entries").
    pub fn with_unit(mode: ProgressMode, unit: &'static str) -> Self {
        let term = std::env::var_os("TERM");
        let drawable = can_redraw(std::io::stderr().is_terminal(), term.as_deref());
        let display = match (mode, drawable) {
            (ProgressMode::None, _) | (ProgressMode::Auto, false) => Display::Hidden,
            (ProgressMode::Auto | ProgressMode::Bar, true) => Display::Bar(new_bar()),
            (ProgressMode::Bar, false) | (ProgressMode::Plain, _) => {
                Display::Plain(interval(PLAIN_EVERY))
            }
        };
        let progress = Progress::with_display(display, unit);
        progress.start_redraw();
        progress
    }

    fn with_display(display: Display, unit: &'static str) -> Self {
        Progress {
            inner: Arc::new(Inner {
                display,
                counts: Counts::default(),
                started: Instant::now(),
                unit,
                stdout_is_terminal: std::io::stdout().is_terminal(),
                may_count_ahead: AtomicBool::new(true),
                stop: Mutex::new(false),
                wake: Condvar::new(),
                over: AtomicBool::new(false),
                redraw: Mutex::new(None),
            }),
        }
    }

    /// A display that never shows (library use, tests).
    pub fn hidden() -> Self {
        Progress::new(ProgressMode::None)
    }

    /// No display: counts (when `counts`) and lines go to `observer` (library use).
    pub fn observed(unit: &'static str, observer: Arc<dyn Observer>, counts: bool) -> Self {
        let progress = Progress::with_display(Display::Observed { observer, counts }, unit);
        progress.start_redraw();
        progress
    }

    /// Whether anything is shown (a bar or plain lines).
    pub fn shows(&self) -> bool {
        match &self.inner.display {
            Display::Hidden => false,
            Display::Bar(_) | Display::Plain(_) => true,
            Display::Observed { counts, .. } => *counts,
        }
    }

    /// Runs `count` on a thread of its own to find the run's totals ahead of the job,
    /// whose own walk may only run a bounded number of entries ahead of its output (so
    /// its count would stay a few entries ahead of what is done and make a bar that
    /// sits at 98% from the start). `count` calls [`Tally::add`] per file and stops
    /// when it returns false (the run is over). Nothing runs when nothing is shown.
    pub fn count_ahead(&self, count: impl FnOnce(&Tally) -> anyhow::Result<()> + Send + 'static) {
        if !self.shows() || !self.inner.may_count_ahead.load(Ordering::Relaxed) {
            return;
        }
        self.inner
            .counts
            .counted_ahead
            .store(true, Ordering::Relaxed);
        let tally = Tally(self.clone());
        let spawned = std::thread::Builder::new()
            .name("spate-count".into())
            .spawn(move || {
                // A walk that failed found what it found; the job's own walk reports
                // why, so the count just ends there.
                let _ = count(&tally);
                tally.0.set_total(Total::Known);
            });
        if spawned.is_err() {
            // No thread, no count ahead: the job's source counts after all.
            self.inner
                .counts
                .counted_ahead
                .store(false, Ordering::Relaxed);
        }
    }

    /// Totals come from the job's own source only, however far behind the output it
    /// is held: no second walk runs beside the job (a benchmark, whose numbers it would
    /// disturb).
    pub fn source_counts(self) -> Self {
        self.inner.may_count_ahead.store(false, Ordering::Relaxed);
        self
    }

    /// The job's source found a file of `size` bytes (not counted again when a walk
    /// of its own counts ahead).
    pub fn found(&self, size: u64) {
        let counts = &self.inner.counts;
        if !counts.counted_ahead.load(Ordering::Relaxed) {
            counts.found_files.fetch_add(1, Ordering::Relaxed);
            counts.found_bytes.fetch_add(size, Ordering::Relaxed);
        }
    }

    /// The job's source has found everything it will: the total is known, unless a
    /// walk of its own is still counting.
    pub fn source_ended(&self) {
        if !self.inner.counts.counted_ahead.load(Ordering::Relaxed) {
            self.set_total(Total::Known);
        }
    }

    /// The total is `bytes`, known before any work is done (an archive's size).
    pub fn set_known_total(&self, bytes: u64) {
        self.inner
            .counts
            .found_bytes
            .store(bytes, Ordering::Relaxed);
        self.set_total(Total::Known);
    }

    /// No total can be known (a stream of unknown length).
    pub fn set_unknown_total(&self) {
        self.set_total(Total::Unknown);
    }

    fn set_total(&self, total: Total) {
        self.inner
            .counts
            .total
            .store(total as u8, Ordering::Relaxed);
    }

    /// `len` more bytes of a file still being processed (a file streamed in pieces).
    pub fn advance(&self, len: u64) {
        self.inner
            .counts
            .done_bytes
            .fetch_add(len, Ordering::Relaxed);
    }

    /// A file of `len` bytes (besides those already counted by [`Progress::advance`])
    /// was fully processed.
    pub fn done(&self, len: u64) {
        let counts = &self.inner.counts;
        counts.done_files.fetch_add(1, Ordering::Relaxed);
        counts.done_bytes.fetch_add(len, Ordering::Relaxed);
    }

    /// `files` more files of no bytes each were fully processed: one update for a batch
    /// that threads would otherwise contend on entry by entry.
    pub fn done_many(&self, files: u64) {
        self.inner
            .counts
            .done_files
            .fetch_add(files, Ordering::Relaxed);
    }

    /// Prints a line on stderr above the bar (or plainly when there is none). A failed
    /// write to stderr is ignored: there is nowhere left to report it.
    pub fn println(&self, line: &str) {
        match &self.inner.display {
            Display::Bar(bar) if !self.stopped() => bar.println(line),
            Display::Observed { observer, .. } => observer.line(line),
            _ => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// Runs `write`, which writes result lines to stdout, with the bar taken off the
    /// terminal meanwhile when stdout shares it, so no line is torn by a redraw. When
    /// stdout is a file or a pipe, `write` just runs.
    pub fn to_stdout<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.inner.display {
            Display::Bar(bar) if self.inner.stdout_is_terminal && !self.stopped() => {
                bar.suspend(write)
            }
            _ => write(),
        }
    }

    /// Writes `bytes` (whole result lines) to stdout and flushes, around the bar as
    /// [`Progress::to_stdout`] does.
    pub fn write_stdout(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.to_stdout(|| {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes).and_then(|()| stdout.flush())
        })
    }

    /// Ends the display: removes the bar, or prints plain's last line.
    pub fn finish(&self) {
        let finished_before = self.inner.over.swap(true, Ordering::Relaxed);
        *self.inner.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.inner.wake.notify_all();
        let redraw = self
            .inner
            .redraw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = redraw {
            let _ = thread.join();
        }
        match &self.inner.display {
            Display::Bar(bar) => bar.finish_and_clear(),
            Display::Plain(_) => {
                let line = render::plain_end(&self.snapshot(), self.inner.unit);
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            // Once: a caller's last count is the final one.
            Display::Observed { .. } if !finished_before => self.show(),
            Display::Observed { .. } => {}
            Display::Hidden => {}
        }
    }

    /// Files and bytes processed so far.
    pub fn totals(&self) -> (u64, u64) {
        let counts = &self.inner.counts;
        (
            counts.done_files.load(Ordering::Relaxed),
            counts.done_bytes.load(Ordering::Relaxed),
        )
    }

    fn stopped(&self) -> bool {
        self.inner.over.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Snapshot {
        let counts = &self.inner.counts;
        let total = match counts.total.load(Ordering::Relaxed) {
            x if x == Total::Known as u8 => Total::Known,
            x if x == Total::Unknown as u8 => Total::Unknown,
            _ => Total::Counting,
        };
        Snapshot {
            elapsed: self.inner.started.elapsed(),
            found_files: counts.found_files.load(Ordering::Relaxed),
            found_bytes: counts.found_bytes.load(Ordering::Relaxed),
            done_files: counts.done_files.load(Ordering::Relaxed),
            done_bytes: counts.done_bytes.load(Ordering::Relaxed),
            total,
        }
    }

    /// Starts the thread that redraws the bar or prints plain lines. Counters are
    /// plain atomics bumped by the job's threads; only this thread turns them into
    /// output, so the hot path never touches the terminal.
    fn start_redraw(&self) {
        let every = match &self.inner.display {
            Display::Hidden | Display::Observed { counts: false, .. } => return,
            Display::Observed { .. } => interval(BAR_EVERY),
            Display::Bar(_) => interval(BAR_EVERY),
            Display::Plain(every) => *every,
        };
        let me = self.clone();
        let thread = std::thread::Builder::new()
            .name("spate-progress".into())
            .spawn(move || {
                loop {
                    let stop = me.inner.stop.lock().unwrap_or_else(|p| p.into_inner());
                    let stop = match me.inner.wake.wait_timeout(stop, every) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                    if *stop {
                        break;
                    }
                    // Not drawn under the lock: a frame can wait for a slow terminal.
                    drop(stop);
                    me.show();
                }
            });
        // Without the thread the run goes on, only without a display.
        if let Ok(thread) = thread {
            *self.inner.redraw.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        }
    }

    /// Shows the counts once: the bar's next frame, or a plain line.
    fn show(&self) {
        let s = self.snapshot();
        let unit = self.inner.unit;
        match &self.inner.display {
            Display::Hidden | Display::Observed { counts: false, .. } => {}
            Display::Observed { observer, .. } => {
                let total = (s.total == Total::Known).then_some((s.found_files, s.found_bytes));
                observer.counts((s.done_files, s.done_bytes), total);
            }
            Display::Plain(_) => {
                let _ = writeln!(std::io::stderr(), "{}", render::plain(&s, unit));
            }
            Display::Bar(bar) => {
                match s.total {
                    Total::Counting => bar.set_message(render::counting(&s, unit)),
                    Total::Known | Total::Unknown => {
                        if bar.length().is_none() && s.total == Total::Known {
                            bar.set_length(s.found_bytes);
                            bar.set_style(style(BAR_KNOWN));
                        } else if bar.length().is_none() {
                            bar.set_style(style(BAR_UNKNOWN));
                        }
                        bar.set_message(match s.total {
                            Total::Known => render::beside_bar(&s, unit),
                            _ => render::files(&s, unit),
                        });
                    }
                }
                bar.set_position(s.done_bytes);
            }
        }
    }
}

/// Where a counting walk ([`Progress::count_ahead`]) adds what it finds.
pub struct Tally(Progress);

impl Tally {
    /// A file of `size` bytes; false when the run is over and the walk should stop.
    pub fn add(&self, size: u64) -> bool {
        let counts = &self.0.inner.counts;
        counts.found_files.fetch_add(1, Ordering::Relaxed);
        counts.found_bytes.fetch_add(size, Ordering::Relaxed);
        !self.0.stopped()
    }
}

/// The bar while counting: a spinner and the counts, no bar (there is nothing yet to
/// fill it against), so the first frame is never a full `0 B/0 B`.
const BAR_COUNTING: &str = "{spinner} {elapsed} {msg}";
const BAR_KNOWN: &str = "{spinner} {elapsed} {wide_bar} {binary_bytes}/{binary_total_bytes} {msg}";
const BAR_UNKNOWN: &str = "{spinner} {elapsed} {binary_bytes} {binary_bytes_per_sec} {msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn new_bar() -> ProgressBar {
    // No length: the bar starts as a spinner and gets its length once it is known.
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(style(BAR_COUNTING));
    // What shows if a line is printed above the bar before its first redraw.
    bar.set_message("counting…");
    bar
}

/// `default`, or what `SPATE_PROGRESS_INTERVAL` says.
fn interval(default: Duration) -> Duration {
    std::env::var("SPATE_PROGRESS_INTERVAL")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map_or(default, Duration::from_secs_f64)
}

/// A bar redraws its line with escape codes: only a real terminal shows that as a bar,
/// and `TERM=dumb` says the terminal cannot.
fn can_redraw(is_terminal: bool, term: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && term.is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_only_on_terminals_that_can_redraw() {
        assert!(can_redraw(true, Some("xterm-256color".as_ref())));
        assert!(can_redraw(true, None));
        assert!(!can_redraw(true, Some("dumb".as_ref())));
        assert!(!can_redraw(false, Some("xterm".as_ref())));
    }

    #[test]
    fn a_file_streamed_in_pieces_counts_once() {
        let progress = Progress::hidden();
        progress.found(3 << 20);
        for _ in 0..3 {
            progress.advance(1 << 20);
        }
        progress.done(0);
        progress.done(10);
        assert_eq!(progress.totals(), (2, (3 << 20) + 10));
    }
}
