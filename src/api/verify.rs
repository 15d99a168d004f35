//! `verify`: check the files a manifest lists, from Rust code, through the same
//! parser, name lookup and readers as `spate check`, with each verdict a value.

use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use anyhow::Result;

use super::options::{ReadOptions, WalkOptions};
use crate::algo::{Algo, Digests};
use crate::check::{self, CheckConfig, Findings, Listed, Manifest, Verbosity};
use crate::error::{ErrorKind, describe_chain};
use crate::progress::{Progress, ProgressMode};

/// How [`verify`] finds and reads the files a manifest lists.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The algorithm of lines that do not name one (`-a`; default: from the digest's
    /// length, and BLAKE3 or SHA-256 both tried for 64 hex digits).
    pub algo: Option<Algo>,
    /// Confined mode (`--root`): every name is looked up beneath this directory, and
    /// absolute names, `..` out of it and symbolic links out of it are errors, never
    /// read. Without it names resolve as `sha256sum -c` resolves them: relative ones
    /// from the current directory, absolute ones as written. Give a root for a manifest
    /// you did not write.
    pub root: Option<PathBuf>,
    /// Leave out listed files that do not exist (`--ignore-missing`).
    pub ignore_missing: bool,
    /// Also walk these directories for files the manifest does not list (`--audit`):
    /// [`Status::New`], or [`Status::Moved`] for a missing line's content found under
    /// another name.
    pub audit: Vec<PathBuf>,
    /// How the `audit` walk goes.
    pub walk: WalkOptions,
    /// How files are read.
    pub read: ReadOptions,
}

/// What became of one listed file (or one file the audit walk found, or one line that
/// could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The name as the manifest wrote it; for [`Status::New`] and [`Status::Moved`]
    /// the path the audit walk found. Empty for a verdict about the manifest itself (a
    /// malformed line, an error that stopped the run).
    pub path: PathBuf,
    /// The outcome.
    pub status: Status,
    /// The algorithms that matched for [`Status::Ok`] and [`Status::Moved`]; else those
    /// the line's digests may be in.
    pub algos: Vec<Algo>,
    /// The manifest line, when the verdict is about one.
    pub line: Option<u64>,
}

/// The outcome of one [`Verdict`], in the words of `spate check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every digest the line gives matched.
    Ok,
    /// A digest did not match (a line without size and modification time).
    Failed,
    /// A digest did not match, and the size or modification time moved since the line
    /// was written: the file was edited.
    Modified,
    /// A digest did not match under an unchanged size and modification time: bitrot
    /// or tampering.
    Corrupt,
    /// The listed file's content, found by the audit walk at [`Verdict::path`].
    Moved {
        /// The name the manifest listed it under.
        from: PathBuf,
    },
    /// No such file.
    Missing,
    /// A file the audit walk found that the manifest does not list.
    New,
    /// The file could not be verified, a line could not be read, or (as the last
    /// verdict, with an empty path) the run could not go on.
    Error {
        /// The stable kind (`not_found`, `outside_root`, `malformed_line`, …).
        kind: ErrorKind,
        /// The cause in words.
        message: String,
    },
}

impl Status {
    /// The word `spate check` prints: `OK`, `FAILED`, `MODIFIED`, `CORRUPT`, `MOVED`,
    /// `MISSING`, `NEW` or `ERROR`.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Failed => "FAILED",
            Status::Modified => "MODIFIED",
            Status::Corrupt => "CORRUPT",
            Status::Moved { .. } => "MOVED",
            Status::Missing => "MISSING",
            Status::New => "NEW",
            Status::Error { .. } => "ERROR",
        }
    }

    /// Whether `spate check` fails the run (exit 1) for it: everything but OK, and but
    /// MODIFIED and MOVED, which are changes someone made, as cshatag and chkbit see
    /// them (`--fail-on-change` counts those too).
    pub fn fails(&self) -> bool {
        !matches!(self, Status::Ok | Status::Modified | Status::Moved { .. })
    }
}

/// Checks every file `manifest` lists, as `spate check` does, and yields a verdict per
/// file in manifest order (then, with [`CheckOptions::audit`], one per file found that
/// the manifest does not list). The manifest is GNU lines (`HASH  NAME`, as b3sum and
/// sha256sum write them), BSD lines (`ALGO (NAME) = HASH`) or spate's JSON Lines, mixed
/// as `spate check` accepts them. Several lines naming one file are read once.
///
/// The work runs on threads of its own; memory stays bounded however slowly the
/// iterator is consumed, and dropping it stops the run.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a"), b"hello")?;
/// std::fs::write(dir.path().join("b"), b"changed")?;
/// let manifest = format!(
///     "{}  a\n{}  b\n{}  gone\n",
///     blake3::hash(b"hello").to_hex(),
///     blake3::hash(b"world").to_hex(),
///     blake3::hash(b"x").to_hex(),
/// );
/// let options = spate::CheckOptions {
///     root: Some(dir.path().to_path_buf()),
///     ..Default::default()
/// };
/// let verdicts: Vec<_> = spate::verify(std::io::Cursor::new(manifest), &options).collect();
/// let words: Vec<_> = verdicts.iter().map(|v| v.status.word()).collect();
/// assert_eq!(words, ["OK", "FAILED", "MISSING"]);
/// assert_eq!(verdicts[1].path, std::path::Path::new("b"));
/// assert_eq!(verdicts[1].line, Some(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify<R: Read + Send + 'static>(manifest: R, options: &CheckOptions) -> Verify {
    let options = options.clone();
    // Bounded: a caller that falls behind pauses the readers.
    let (tx, rx) = mpsc::sync_channel(1024);
    let runner = std::thread::spawn(move || {
        let mut sender = Sender { tx: tx.clone() };
        if let Err(err) = run(manifest, &options, &mut sender) {
            let kind = err
                .chain()
                .find_map(|c| c.downcast_ref::<std::io::Error>())
                .map_or(ErrorKind::Io, ErrorKind::of_io);
            let status = Status::Error {
                kind,
                message: describe_chain(&err),
            };
            let _ = tx.send(about_manifest(status, None));
        }
    });
    Verify {
        verdicts: rx,
        runner: Some(runner),
    }
}

fn run<R: Read + Send + 'static>(
    manifest: R,
    options: &CheckOptions,
    sender: &mut Sender,
) -> Result<()> {
    let read = options.read.resolve().map_err(anyhow::Error::msg)?;
    let config = CheckConfig {
        manifests: Vec::new(),
        algo: options.algo,
        root: options.root.clone(),
        ignore_missing: options.ignore_missing,
        strict: false,
        audit: options.audit.clone(),
        verbosity: Verbosity::Status,
        json: false,
        walk: options.walk.to_walk(),
        read,
        progress: ProgressMode::None,
        stats: false,
        warn: false,
        fail_on_change: false,
        update: None,
    };
    let reader = Box::new(BufReader::with_capacity(256 << 10, manifest));
    let manifest = Manifest::new("manifest".into(), reader, None, &config)?;
    check::verify(vec![manifest], &config, &Progress::hidden(), sender, None)?;
    Ok(())
}

/// The verdicts of [`verify`], in manifest order.
pub struct Verify {
    verdicts: mpsc::Receiver<Verdict>,
    runner: Option<JoinHandle<()>>,
}

impl Iterator for Verify {
    type Item = Verdict;

    fn next(&mut self) -> Option<Verdict> {
        match self.verdicts.recv() {
            Ok(verdict) => Some(verdict),
            Err(_) => {
                // Every verdict is in; a runner that panicked is the run's last word.
                let panicked = self.runner.take().is_some_and(|r| r.join().is_err());
                panicked.then(|| {
                    let status = Status::Error {
                        kind: ErrorKind::Io,
                        message: "internal error: the run panicked".into(),
                    };
                    about_manifest(status, None)
                })
            }
        }
    }
}

/// Sends the check's findings to the iterator as verdicts.
struct Sender {
    tx: SyncSender<Verdict>,
}

impl Sender {
    fn send(&self, verdict: Verdict) -> Result<()> {
        // The iterator was dropped: an error stops the run.
        self.tx
            .send(verdict)
            .map_err(|_| anyhow::anyhow!("the iterator was dropped"))
    }
}

fn about_manifest(status: Status, line: Option<u64>) -> Verdict {
    Verdict {
        path: PathBuf::new(),
        status,
        algos: Vec::new(),
        line,
    }
}

fn path_of(name: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(name))
}

impl Findings for Sender {
    fn bytes(&mut self, _len: u64) {}

    fn file(&mut self, listed: &Listed, verdict: &check::Verdict) -> Result<()> {
        let status = match verdict {
            check::Verdict::Ok(_) => Status::Ok,
            check::Verdict::Failed => Status::Failed,
            check::Verdict::Modified => Status::Modified,
            check::Verdict::Corrupt => Status::Corrupt,
            check::Verdict::Missing => Status::Missing,
            check::Verdict::Error(kind, message) => Status::Error {
                kind: *kind,
                message: message.clone(),
            },
            // Archives are verified by `spate check` only; a manifest line always has
            // a digest.
            check::Verdict::Unverified(message) => Status::Error {
                kind: ErrorKind::ChangedWhileReading,
                message: message.clone(),
            },
        };
        self.send(Verdict {
            path: path_of(listed.name()),
            status,
            algos: listed.algos_for(verdict).iter().collect(),
            line: Some(listed.line()),
        })
    }

    fn moved(&mut self, listed: &Listed, path: &Path, computed: &Digests) -> Result<()> {
        self.send(Verdict {
            path: path.to_path_buf(),
            status: Status::Moved {
                from: path_of(listed.name()),
            },
            algos: listed.matched(computed).iter().collect(),
            line: Some(listed.line()),
        })
    }

    fn new_file(&mut self, path: &Path) -> Result<()> {
        self.send(Verdict {
            path: path.to_path_buf(),
            status: Status::New,
            algos: Vec::new(),
            line: None,
        })
    }

    fn malformed(&mut self, _manifest: usize, line: u64, why: &str) -> Result<()> {
        let status = Status::Error {
            kind: ErrorKind::MalformedLine,
            message: format!("improperly formatted checksum line: {why}"),
        };
        self.send(about_manifest(status, Some(line)))
    }

    fn not_a_manifest(&mut self, _manifest: usize, lines: u64) -> Result<()> {
        let status = Status::Error {
            kind: ErrorKind::MalformedLine,
            message: format!("no checksum line in its first {lines} lines; not read further"),
        };
        self.send(about_manifest(status, None))
    }

    /// A hint for people running `spate check` from the wrong directory; the MISSING
    /// verdicts already say what a caller needs.
    fn misplaced(&mut self, _manifest: usize, _dir: &Path) -> Result<()> {
        Ok(())
    }

    fn walk_error(&mut self, path: &Path, kind: ErrorKind, cause: &str) -> Result<()> {
        self.send(Verdict {
            path: path.to_path_buf(),
            status: Status::Error {
                kind,
                message: cause.to_string(),
            },
            algos: Vec::new(),
            line: None,
        })
    }
}
