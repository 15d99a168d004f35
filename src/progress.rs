//! Progress bar and end-of-run statistics.
//!
//! The bar is drawn on stderr only when stderr is a terminal that can redraw a line (not
//! `TERM=dumb`) and the user did not ask for quiet; piped or redirected runs print
//! nothing extra. The bar has no colors, so `NO_COLOR` needs nothing here (clap's help
//! and error messages honour it themselves). The total grows while the
//! walk discovers files, so the ETA firms up as the walk gets ahead of the readers.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use humansize::{BINARY, format_size};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shared progress state; cheap to clone.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    found_files: AtomicU64,
    done_files: AtomicU64,
    done_bytes: AtomicU64,
}

impl Progress {
    /// A progress display; `show` is whether the user wants one at all.
    pub fn new(show: bool) -> Self {
        let term = std::env::var_os("TERM");
        let drawable = can_redraw(std::io::stderr().is_terminal(), term.as_deref());
        let bar = (show && drawable).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed} {wide_bar} {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            counts: Arc::default(),
        }
    }

    /// Whether a bar is drawn (the user wants one and stderr can show it).
    pub fn draws(&self) -> bool {
        self.bar.is_some()
    }

    /// A display that never draws (library use, tests).
    pub fn hidden() -> Self {
        Progress::new(false)
    }

    /// The walk found a file of `size` bytes.
    pub fn found(&self, size: u64) {
        self.counts.found_files.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(size);
        }
    }

    /// `len` more bytes of a file still being processed (a file streamed in pieces).
    pub fn advance(&self, len: u64) {
        self.counts.done_bytes.fetch_add(len, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(len);
        }
    }

    /// A file of `len` bytes (besides those already counted by [`Progress::advance`])
    /// was fully processed.
    pub fn done(&self, len: u64) {
        let files = self.counts.done_files.fetch_add(1, Ordering::Relaxed) + 1;
        self.counts.done_bytes.fetch_add(len, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(len);
            if files.is_multiple_of(64) {
                let found = self.counts.found_files.load(Ordering::Relaxed);
                bar.set_message(format!("{files}/{found} files"));
            }
        }
    }

    /// Prints a line on stderr above the bar (or plainly when there is none). A failed
    /// write to stderr is ignored: there is nowhere left to report it.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Files and bytes processed so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.counts.done_files.load(Ordering::Relaxed),
            self.counts.done_bytes.load(Ordering::Relaxed),
        )
    }
}

/// A bar redraws its line with escape codes: only a real terminal shows that as a bar,
/// and `TERM=dumb` says the terminal cannot.
fn can_redraw(is_terminal: bool, term: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && term.is_none_or(|t| t != "dumb")
}

/// Counts for the `--stats` summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub errors: u64,
}

impl Summary {
    /// One human-readable line, e.g.
    /// `12 files, 3.50 MiB in 0.20 s (17.50 MiB/s); 1 skipped, 0 errors`.
    pub fn render(&self, started: Instant) -> String {
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (self.bytes as f64 / secs) as u64
        } else {
            0
        };
        format!(
            "{} files, {} in {:.2} s ({}/s); {} skipped, {} errors",
            self.files,
            format_size(self.bytes, BINARY),
            secs,
            format_size(rate, BINARY),
            self.skipped,
            self.errors
        )
    }
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
