//! What `pack` and `unpack` share: the progress callback, the lines the jobs would
//! print (collected as problems instead), and their error type.

use std::sync::{Arc, Mutex};

use crate::error::{ErrorKind, describe_chain};
use crate::progress::{Observer, Progress};

/// How far a [`pack`](crate::pack) or [`unpack`](crate::unpack) has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// Files packed, or archive entries read.
    pub done_files: u64,
    /// Bytes of files packed, or bytes of the archive read (compressed).
    pub done_bytes: u64,
    /// Files to pack, once a counting walk has found them all; `None` before, and for
    /// unpack.
    pub total_files: Option<u64>,
    /// Bytes of files to pack, or the archive's size; `None` until known, and for an
    /// archive read from a reader.
    pub total_bytes: Option<u64>,
}

/// Called with a [`ProgressUpdate`] a few times a second while a pack or unpack runs,
/// and once at the end, on a thread of the run's own.
pub type ProgressCallback = Arc<dyn Fn(&ProgressUpdate) + Send + Sync>;

/// Why [`pack`](crate::pack) or [`unpack`](crate::unpack) wrote no archive or stopped.
/// Problems with single entries do not stop a run; they are in its summary.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The options were refused before anything was written.
    #[error("{0}")]
    Options(String),
    /// The run failed: the archive could not be created, read or written.
    #[error("{message}")]
    Failed {
        /// The stable kind of the operating-system error behind it, or
        /// [`ErrorKind::Io`].
        kind: ErrorKind,
        /// The cause in words, naming the file.
        message: String,
    },
}

impl From<anyhow::Error> for ArchiveError {
    fn from(err: anyhow::Error) -> Self {
        let kind = err
            .chain()
            .find_map(|c| c.downcast_ref::<std::io::Error>())
            .map_or(ErrorKind::Io, ErrorKind::of_io);
        ArchiveError::Failed {
            kind,
            message: describe_chain(&err),
        }
    }
}

/// Takes the place of the terminal: counts go to the caller's callback, lines are kept
/// as problems.
pub(super) struct Collector {
    callback: Option<ProgressCallback>,
    /// Pack knows its file totals once counted; unpack never knows its entries'.
    files_known: bool,
    problems: Mutex<Vec<String>>,
}

impl Collector {
    /// A progress "display" that shows nothing and keeps what the job says.
    pub(super) fn progress(
        callback: Option<ProgressCallback>,
        files_known: bool,
        unit: &'static str,
    ) -> (Progress, Arc<Collector>) {
        let counts = callback.is_some();
        let collector = Arc::new(Collector {
            callback,
            files_known,
            problems: Mutex::new(Vec::new()),
        });
        let observer: Arc<dyn Observer> = collector.clone();
        (Progress::observed(unit, observer, counts), collector)
    }

    /// The lines said, in order.
    pub(super) fn problems(&self) -> Vec<String> {
        std::mem::take(&mut *self.problems.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Observer for Collector {
    fn counts(&self, done: (u64, u64), total: Option<(u64, u64)>) {
        if let Some(callback) = &self.callback {
            callback(&ProgressUpdate {
                done_files: done.0,
                done_bytes: done.1,
                total_files: total.filter(|_| self.files_known).map(|t| t.0),
                total_bytes: total.map(|t| t.1),
            });
        }
    }

    fn line(&self, line: &str) {
        // The words without the program's name, which a library caller did not run.
        let line = line.strip_prefix("spate: ").unwrap_or(line);
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.push(line.to_string());
    }
}
