//! The walk stage: turns the paths a user named into a stream of files to read.
//!
//! The walker runs on its own thread (there is no readdir over io_uring) and sends
//! [`Entry`] values into a bounded channel, so a tree of millions of files never sits in
//! memory. Everything it does not send to the readers (symlinks it does not follow,
//! FIFOs, sockets, devices, unreadable directories) becomes a [`Notice`] that goes
//! straight to the printer with its own sequence number, keeping stderr in walk order.

use std::ffi::OsString;
use std::fs::FileType;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{ErrorKind, describe_io};
use crate::output::OwnFiles;
use crate::read::confined::Beneath;
use crate::shard::Shard;

/// A regular file found by the walk, on its way to a reader.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Position in the output, set by the pipeline; results are printed in this order.
    pub seq: u64,
    /// The path as the user will see it (root as given, joined with the names below it).
    pub path: PathBuf,
    /// Size from the walk's `lstat`/`stat`; readers compare it with what they read.
    pub size: u64,
    /// Modification time (seconds, nanoseconds) seen by the walk.
    pub mtime: (i64, i64),
    /// Whether `size` and `mtime` (and `identity`) were filled in before reading. When
    /// false (the walk skipped the `stat`), the reader takes them from the file it opened.
    pub stat_known: bool,
    /// Change time, inode and device from the same `stat`: what a JSON manifest records
    /// so that `hash --update` can tell an unchanged file without reading it. All zero
    /// for jobs that list files from elsewhere (`check`, `pack`) and do not need them.
    pub identity: Identity,
    /// Set when the file must be opened beneath a directory the job holds open, in one
    /// confined lookup, instead of by `path` (`check`: names from a manifest).
    pub beneath: Option<Beneath>,
}

/// What identifies one version of a file besides its size and mtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity {
    /// Status change time (seconds, nanoseconds): moves on every write, chmod, rename
    /// or link, and cannot be set back by `touch`.
    pub ctime: (i64, i64),
    pub inode: u64,
    pub dev: u64,
}

impl Identity {
    /// The identity in `meta` (from `lstat`, or `stat` when following links).
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            ctime: (meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// Something the walk reports instead of a file to read.
#[derive(Debug)]
pub struct Notice {
    pub seq: u64,
    pub path: PathBuf,
    pub kind: NoticeKind,
}

#[derive(Debug)]
pub enum NoticeKind {
    /// Not an error: skipped by design (symlink not followed, FIFO, socket, device).
    Skipped(&'static str),
    /// The walk could not go on below or at this path; counts as a failure. The kind,
    /// and the cause in words.
    Error(ErrorKind, String),
}

/// How to walk.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Glob patterns; a match on the file name or the whole path excludes the entry
    /// (and everything below it, for a directory).
    pub exclude: Vec<String>,
    /// Follow symbolic links (with loop detection).
    pub follow: bool,
    /// Do not cross file-system boundaries.
    pub one_file_system: bool,
    /// Send only this shard's files (and notices about non-directories); see [`crate::shard`].
    pub shard: Option<Shard>,
    /// `stat` every file during the walk, so sizes are known before reading (a progress
    /// bar's byte total needs them). Otherwise readers take size and mtime from the
    /// opened file: one path lookup and `stat` fewer per file. On the benchmark's 30,000
    /// cached files that was 2-7% faster; on the same tree cold, 3-7% slower (the walk's
    /// `stat` had been loading inodes ahead of the readers). Warm trees are the common
    /// case for repeated checksumming, so the job's walk skips it; a progress display
    /// counts with a walk of its own that asks for it (`pipeline::run`).
    pub sizes_upfront: bool,
    /// The files the run itself writes (its output's temporary file, and the file under
    /// the output's final name that it replaces): reported as skipped, never read.
    pub own_outputs: OwnFiles,
}

/// What the walker sends on.
pub enum Found {
    File(Entry),
    Notice(Notice),
}

/// Compiles the exclude patterns once.
pub fn compile_excludes(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).with_context(|| format!("invalid --exclude pattern {p:?}"))?;
        builder.add(glob);
    }
    builder.build().context("building --exclude patterns")
}

pub(crate) fn is_excluded(set: &GlobSet, path: &Path) -> bool {
    if set.is_empty() {
        return false;
    }
    set.is_match(path) || path.file_name().is_some_and(|name| set.is_match(name))
}

/// Describes a file type the readers must never open.
pub(crate) fn special_kind(ft: &FileType) -> Option<&'static str> {
    if ft.is_fifo() {
        Some("skipped FIFO")
    } else if ft.is_socket() {
        Some("skipped socket")
    } else if ft.is_block_device() {
        Some("skipped block device")
    } else if ft.is_char_device() {
        Some("skipped character device")
    } else {
        None
    }
}

/// Walks `roots` in order, each sorted by file name, calling `send` for every file and
/// notice (with `seq` 0: the caller numbers them). Returns early (without error) when
/// `send` returns false, meaning the run is being torn down.
pub fn walk(
    roots: &[OsString],
    options: &WalkOptions,
    mut send: impl FnMut(Found) -> bool,
) -> Result<()> {
    entries(roots, options, |item| {
        let found = match item {
            Ok(entry) => match classify(entry, options.sizes_upfront) {
                Some(found) => found,
                None => return true,
            },
            Err(notice) => Found::Notice(notice),
        };
        !in_shard(&found, options.shard) || send(found)
    })
}

/// Every entry below `roots` (directories and links included), with the walk settings
/// every job shares: sorted by file name, excluded names pruned, links followed and file
/// systems crossed as asked. An entry that cannot be read comes as an error notice, and
/// one of the run's own output files as a skipped one. Stops early when `visit`
/// returns false.
pub(crate) fn entries(
    roots: &[OsString],
    options: &WalkOptions,
    mut visit: impl FnMut(Result<walkdir::DirEntry, Notice>) -> bool,
) -> Result<()> {
    let excludes = compile_excludes(&options.exclude)?;
    for root in roots {
        let walker = walkdir::WalkDir::new(root)
            .follow_links(options.follow)
            .same_file_system(options.one_file_system)
            // Siblings are `parent/name` with one shared parent, so comparing whole
            // paths as bytes orders them as their names do, without walkdir's
            // `file_name()` parse of both paths on every comparison (2-3% of a run on
            // trees of tiny files).
            .sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()))
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !is_excluded(&excludes, e.path()));
        for item in walker {
            let item = item.map_err(|err| Notice {
                seq: 0,
                path: err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(root)),
                kind: walk_error(&err),
            });
            let item = item.and_then(|entry| match options.own_outputs.find_walked(&entry) {
                Some(why) => Err(Notice {
                    seq: 0,
                    path: entry.into_path(),
                    kind: NoticeKind::Skipped(why),
                }),
                None => Ok(entry),
            });
            if !visit(item) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Whether this worker reports `found`. Files, skipped entries and errors about a leaf
/// (a dangling link) go to their shard only; other errors go to every worker, since an
/// unreadable directory or a missing root may hide files of any shard.
fn in_shard(found: &Found, shard: Option<Shard>) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some(shard) = shard else { return true };
    match found {
        Found::File(entry) => shard.contains(entry.path.as_os_str().as_bytes()),
        Found::Notice(Notice {
            path,
            kind: NoticeKind::Skipped(_),
            ..
        }) => shard.contains(path.as_os_str().as_bytes()),
        Found::Notice(Notice { path, .. }) => {
            !is_leaf(path) || shard.contains(path.as_os_str().as_bytes())
        }
    }
}

/// True when `path` exists and is not a directory, even through a link (errors are rare,
/// so the extra `stat` costs nothing).
fn is_leaf(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) => !meta.is_dir(),
        Err(_) => std::fs::symlink_metadata(path).is_ok(),
    }
}

/// The notice for an entry the walk could not read: its kind, and the cause in words.
pub(crate) fn walk_error(err: &walkdir::Error) -> NoticeKind {
    if let Some(ancestor) = err.loop_ancestor() {
        let cause = format!("symbolic link loop (points back to {})", ancestor.display());
        return NoticeKind::Error(ErrorKind::SymlinkLoop, cause);
    }
    match err.io_error() {
        Some(io) => NoticeKind::Error(ErrorKind::of_io(io), describe_io(io)),
        None => NoticeKind::Error(ErrorKind::Io, err.to_string()),
    }
}

/// Decides what one directory entry becomes: a file to read, a notice, or nothing
/// (directories themselves produce no output).
fn classify(entry: walkdir::DirEntry, stat: bool) -> Option<Found> {
    let ft = entry.file_type();
    if ft.is_dir() {
        return None;
    }
    if ft.is_symlink() {
        // With --follow walkdir resolves links itself, so a symlink type here means a
        // link we do not follow (or a dangling one).
        return Some(Found::Notice(Notice {
            seq: 0,
            path: entry.into_path(),
            kind: NoticeKind::Skipped("skipped symbolic link (use --follow to hash its target)"),
        }));
    }
    if let Some(what) = special_kind(&ft) {
        return Some(Found::Notice(Notice {
            seq: 0,
            path: entry.into_path(),
            kind: NoticeKind::Skipped(what),
        }));
    }
    if !stat {
        return Some(Found::File(Entry {
            seq: 0,
            size: 0,
            mtime: (0, 0),
            stat_known: false,
            identity: Identity::default(),
            beneath: None,
            path: entry.into_path(),
        }));
    }
    match entry.metadata() {
        Ok(meta) => Some(Found::File(Entry {
            seq: 0,
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            stat_known: true,
            identity: Identity::of(&meta),
            beneath: None,
            path: entry.into_path(),
        })),
        Err(err) => Some(Found::Notice(Notice {
            seq: 0,
            path: entry.into_path(),
            kind: walk_error(&err),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_deleted_mid_walk_is_reported_and_the_walk_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        for name in ["a/f", "b/g", "c/h"] {
            std::fs::create_dir_all(t.join(name).parent().unwrap()).unwrap();
            std::fs::write(t.join(name), b"x").unwrap();
        }
        let mut files = Vec::new();
        let mut errors = Vec::new();
        let options = WalkOptions::default();
        walk(&[t.clone().into_os_string()], &options, |found| {
            match found {
                Found::File(entry) => {
                    // The walk has listed t/ already; b/ goes away before it is entered.
                    if entry.path.ends_with("a/f") {
                        std::fs::remove_dir_all(t.join("b")).unwrap();
                    }
                    files.push(entry.path);
                }
                Found::Notice(notice) => errors.push(notice),
            }
            true
        })
        .unwrap();
        assert_eq!(files, vec![t.join("a/f"), t.join("c/h")]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, t.join("b"));
        assert!(
            matches!(&errors[0].kind, NoticeKind::Error(_, e) if e.contains("No such file")),
            "{errors:?}"
        );
    }

    #[test]
    fn exclude_matches_name_or_whole_path() {
        let set = compile_excludes(&["*.o".into(), "a/skip/**".into()]).unwrap();
        assert!(is_excluded(&set, Path::new("x/y/z.o")));
        assert!(is_excluded(&set, Path::new("a/skip/deep/f")));
        assert!(!is_excluded(&set, Path::new("a/keep/f.c")));
    }

    #[test]
    fn bad_exclude_pattern_is_an_error_naming_it() {
        let err = compile_excludes(&["a[".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("a["));
    }
}
