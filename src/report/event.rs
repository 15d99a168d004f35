//! What a job tells the reporter: typed events, not formatted lines.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, describe_io};
use crate::read::ReadError;

/// One thing a job has to say, in the order it happened.
#[derive(Debug)]
pub enum Event<'a> {
    /// Result lines the job rendered (manifest lines, a listing, a report), whole
    /// lines for standard output.
    Results(&'a [u8]),
    /// A path that failed: counted as an error.
    Error(&'a Problem),
    /// An entry left out by design (a FIFO, a link not followed): counted as skipped,
    /// shown unless the job hides such notices (`--quiet`).
    Skipped { path: &'a Path, why: &'a str },
    /// Something about a path that is neither a result nor an error (a removed
    /// prefix, a warning): shown, not counted.
    Notice { path: &'a Path, words: &'a str },
    /// A line about the whole run: a summary, a warning, advice.
    Say(&'a str),
}

/// Why one path failed, as walkdir's `Error` carries its path: a stable kind for
/// programs, the path, and the cause (the OS error itself, or words).
#[derive(Debug, thiserror::Error)]
#[error("{}: {cause}", path.display())]
pub struct Problem {
    /// The path (or archive member name, as shown) the error is about.
    pub path: PathBuf,
    pub kind: ErrorKind,
    pub cause: Cause,
}

/// The cause of a [`Problem`].
#[derive(Debug)]
pub enum Cause {
    /// An operating-system error, and the operation that met it ("opening"), if the
    /// words should name one.
    Io {
        op: Option<&'static str>,
        err: io::Error,
    },
    /// A cause that is not one OS error ("changed while reading (…)").
    Words(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Written in words once, here: never " (os error 2)".
            Cause::Io { op: Some(op), err } => write!(f, "{op}: {}", describe_io(err)),
            Cause::Io { op: None, err } => f.write_str(&describe_io(err)),
            Cause::Words(words) => f.write_str(words),
        }
    }
}

impl Problem {
    /// A problem whose cause is in words.
    pub fn new(path: impl Into<PathBuf>, kind: ErrorKind, words: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            kind,
            cause: Cause::Words(words.into()),
        }
    }

    /// A file the readers could not read to the end.
    pub fn read(path: impl Into<PathBuf>, err: ReadError) -> Problem {
        let kind = err.kind();
        match err {
            ReadError::Io { op, err } => Problem {
                path: path.into(),
                kind,
                cause: Cause::Io { op: Some(op), err },
            },
            other => Problem::new(path, kind, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_reads_as_path_and_cause_in_words() {
        let gone = io::Error::from_raw_os_error(libc::ENOENT);
        let problem = Problem::read("d/a", ReadError::io("opening", gone));
        assert_eq!(problem.kind, ErrorKind::NotFound);
        assert_eq!(
            problem.to_string(),
            "d/a: opening: No such file or directory"
        );
        let changed = Problem::read("d/b", ReadError::Changed("size 1 → 2".into()));
        assert_eq!(changed.kind, ErrorKind::ChangedWhileReading);
        assert_eq!(
            changed.to_string(),
            "d/b: changed while reading (size 1 → 2)"
        );
    }
}
