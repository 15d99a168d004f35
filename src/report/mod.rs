//! The one reporter every job sends what it has to say to, as ripgrep's printer is the
//! one thing that writes its output: result lines, notices and per-file errors arrive
//! as typed [`Event`]s and leave as text lines (`spate: PATH: cause`, the cause in
//! words) on stderr, or as the job's own lines on stdout. It owns the progress display,
//! so a result line and the bar never tear each other, and it keeps the counts a job's
//! summary prints (errors, skipped entries).
//!
//! JSON objects are the job's payload (a `check --json` verdict, a listing entry);
//! where one carries an error, [`json::push_error`] gives it the same words and the
//! stable `error_kind`.
//!
//! The reporter is cheap to clone and may be used from several threads. Counting is
//! one relaxed atomic add per error or skipped entry, never per result: result lines
//! come in batches the job has already rendered.

mod event;
pub mod json;
pub mod text;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use event::{Cause, Event, Problem};
pub use text::PREFIX;

use crate::progress::Progress;
use crate::walk::{Notice, NoticeKind};

/// Where a job's events go; see the module docs.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    progress: Progress,
    /// Show entries skipped by design (off with `--quiet`); they are counted anyway.
    show_skipped: bool,
    errors: AtomicU64,
    skipped: AtomicU64,
}

impl Reporter {
    /// A reporter that owns `progress` and shows every notice.
    pub fn new(progress: Progress) -> Reporter {
        Reporter::with_skipped(progress, true)
    }

    /// A reporter that shows entries skipped by design only when `show_skipped`.
    pub fn with_skipped(progress: Progress, show_skipped: bool) -> Reporter {
        Reporter {
            inner: Arc::new(Inner {
                progress,
                show_skipped,
                errors: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
            }),
        }
    }

    /// The progress display (for its counters: found, done, totals).
    pub fn progress(&self) -> &Progress {
        &self.inner.progress
    }

    /// Renders one event and counts it.
    pub fn send(&self, event: Event<'_>) -> io::Result<()> {
        let progress = &self.inner.progress;
        match event {
            Event::Results(lines) => return progress.write_stdout(lines),
            Event::Error(problem) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                progress.println(&text::about(&problem.path, &problem.cause));
            }
            Event::Skipped { path, why } => {
                self.inner.skipped.fetch_add(1, Ordering::Relaxed);
                if self.inner.show_skipped {
                    progress.println(&text::about(path, &why));
                }
            }
            Event::Notice { path, words } => progress.println(&text::about(path, &words)),
            Event::Say(words) => progress.println(&text::run_line(&words)),
        }
        Ok(())
    }

    /// Reports a path that failed, and counts it.
    pub fn error(&self, problem: &Problem) {
        // Only results write to stdout; the rest cannot fail.
        let _ = self.send(Event::Error(problem));
    }

    /// Reports a file the readers could not read to the end.
    pub fn read_failed(&self, path: &Path, err: crate::read::ReadError) {
        self.error(&Problem::read(path, err));
    }

    /// Reports an entry left out by design, and counts it.
    pub fn skipped(&self, path: &Path, why: &str) {
        let _ = self.send(Event::Skipped { path, why });
    }

    /// A line about `path` that is neither a result nor an error.
    pub fn notice(&self, path: &Path, words: &str) {
        let _ = self.send(Event::Notice { path, words });
    }

    /// A line about the whole run.
    pub fn say(&self, words: &str) {
        let _ = self.send(Event::Say(words));
    }

    /// Reports what the walk said: an entry skipped by design, or one it could not
    /// enter (an error). True when it was an error.
    pub fn walk_notice(&self, notice: &Notice) -> bool {
        match &notice.kind {
            NoticeKind::Skipped(why) => {
                self.skipped(&notice.path, why);
                false
            }
            NoticeKind::Error(kind, cause) => {
                self.error(&Problem::new(&notice.path, *kind, cause.as_str()));
                true
            }
        }
    }

    /// Writes whole result lines to stdout, around the bar.
    pub fn results(&self, lines: &[u8]) -> io::Result<()> {
        self.send(Event::Results(lines))
    }

    /// Runs `write`, which writes result lines to stdout itself (through a writer of
    /// the job's), with the bar off a terminal it shares meanwhile.
    pub fn to_stdout<R>(&self, write: impl FnOnce() -> R) -> R {
        self.inner.progress.to_stdout(write)
    }

    /// Errors reported so far.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Entries skipped by design so far.
    pub fn skipped_count(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Ends the progress display; lines sent later go plainly to stderr.
    pub fn finish(&self) {
        self.inner.progress.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn errors_and_skipped_entries_are_counted_apart() {
        let reporter = Reporter::with_skipped(Progress::hidden(), false);
        reporter.error(&Problem::new("a", ErrorKind::NotFound, "gone"));
        reporter.skipped(Path::new("fifo"), "not a regular file; skipped");
        reporter.skipped(Path::new("link"), "symbolic link; skipped");
        assert_eq!((reporter.errors(), reporter.skipped_count()), (1, 2));
    }
}
