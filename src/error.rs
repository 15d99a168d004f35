//! What went wrong with one file, as a stable word and as words for people.
//!
//! Per-file errors travel through the pipeline as values; whoever reports them shows
//! the cause in words and, in JSON, its [`ErrorKind`] as `error_kind`, a name scripts
//! can match that does not change with the wording or the C library's messages.

use std::fmt;
use std::io;

/// The kind of a per-file error. The names [`ErrorKind::as_str`] gives are stable:
/// they appear in JSON output as `error_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file (or a directory on its path) does not exist.
    NotFound,
    /// The file or a directory on its path may not be read.
    PermissionDenied,
    /// A directory where a file was expected.
    IsADirectory,
    /// A FIFO, socket, device or other entry that is not read by design.
    NotRegularFile,
    /// Size or modification time moved while the file was read.
    ChangedWhileReading,
    /// The name leads out of the directory it must stay beneath (`..`, a link out, an
    /// absolute name where none is allowed).
    OutsideRoot,
    /// Too many levels of symbolic links, or a link where none may be followed.
    SymlinkLoop,
    /// A manifest line that cannot be read one way only.
    MalformedLine,
    /// A file listed twice with different digests of the same algorithm.
    ConflictingDigests,
    /// An archive that cannot be read on: a header that makes no sense, data cut short,
    /// corrupt compressed data.
    CorruptArchive,
    /// An archive entry not extracted as asked, by design: it would leave the
    /// destination, replace a directory, or exceed `--max-size`.
    Refused,
    /// Any other operating-system error (the words say which).
    Io,
}

impl ErrorKind {
    /// The stable name: `not_found`, `permission_denied`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::IsADirectory => "is_a_directory",
            ErrorKind::NotRegularFile => "not_regular_file",
            ErrorKind::ChangedWhileReading => "changed_while_reading",
            ErrorKind::OutsideRoot => "outside_root",
            ErrorKind::SymlinkLoop => "symlink_loop",
            ErrorKind::MalformedLine => "malformed_line",
            ErrorKind::ConflictingDigests => "conflicting_digests",
            ErrorKind::CorruptArchive => "corrupt_archive",
            ErrorKind::Refused => "refused",
            ErrorKind::Io => "io",
        }
    }

    /// The kind of an operating-system error.
    pub fn of_io(err: &io::Error) -> ErrorKind {
        if err.get_ref().is_some_and(|inner| inner.is::<OutsideRoot>()) {
            return ErrorKind::OutsideRoot;
        }
        match err.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => ErrorKind::NotFound,
            Some(libc::EACCES | libc::EPERM) => ErrorKind::PermissionDenied,
            Some(libc::EISDIR) => ErrorKind::IsADirectory,
            Some(libc::ELOOP) => ErrorKind::SymlinkLoop,
            Some(libc::EXDEV) => ErrorKind::OutsideRoot,
            _ => match err.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Io,
            },
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The refusal to follow a name out of the directory it must stay beneath, carried
/// inside an `io::Error` so its kind survives the trip through the readers.
#[derive(Debug)]
pub struct OutsideRoot;

/// The words for [`OutsideRoot`].
pub const OUTSIDE_ROOT: &str =
    "resolves outside the root directory (through '..' or a symbolic link)";

impl fmt::Display for OutsideRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(OUTSIDE_ROOT)
    }
}

impl std::error::Error for OutsideRoot {}

/// An operating-system error in words, as `sha256sum` or `tar` print it ("No such file
/// or directory"), without the " (os error 2)" Rust appends.
pub fn describe_io(err: &io::Error) -> String {
    let text = err.to_string();
    match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) if text.ends_with(')') => text[..at].to_string(),
        // A wrapped OS error: tempfile adds the temporary file's name ("No such file or
        // directory (os error 2) at path \"/d/.x.b3.d7Upgv.spate-tmp\""), a name the
        // user never chose and that no longer exists. The cause alone is what they need.
        (None, Some(at)) => {
            let code = text[at + " (os error ".len()..]
                .split(')')
                .next()
                .and_then(|n| n.parse().ok());
            match code {
                Some(code) => describe_io(&io::Error::from_raw_os_error(code)),
                None => text,
            }
        }
        _ => text,
    }
}

/// A fatal error and its causes on one line, as anyhow's `{:#}` writes them, with each
/// operating-system error in words (no " (os error N)").
pub fn describe_chain(err: &anyhow::Error) -> String {
    err.chain()
        .map(|cause| match cause.downcast_ref::<io::Error>() {
            Some(io) => describe_io(io),
            None => cause.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_words_with_a_stable_kind() {
        let gone = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe_io(&gone), "No such file or directory");
        assert_eq!(ErrorKind::of_io(&gone).as_str(), "not_found");
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(ErrorKind::of_io(&denied), ErrorKind::PermissionDenied);
        let out = io::Error::new(io::ErrorKind::PermissionDenied, OutsideRoot);
        assert_eq!(ErrorKind::of_io(&out), ErrorKind::OutsideRoot);
        assert!(describe_io(&out).contains("outside the root"));
        let wrapped = io::Error::new(
            io::ErrorKind::NotFound,
            "No such file or directory (os error 2) at path \"/d/.x.b3.d7Upgv.spate-tmp\"",
        );
        assert_eq!(describe_io(&wrapped), "No such file or directory");
        let custom = io::Error::other("a reason (in brackets)");
        assert_eq!(describe_io(&custom), "a reason (in brackets)");
        let fatal =
            anyhow::Error::new(io::Error::from_raw_os_error(libc::EFBIG)).context("writing x.tar");
        assert_eq!(describe_chain(&fatal), "writing x.tar: File too large");
    }
}
