//! One file written under a temporary name beside its target and renamed into place
//! once complete, with its owner, mode and time set last: the one way `unpack` puts a
//! file on disk, whether the entry loop writes it or a writer thread does.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::confine;
use super::header::Mtime;
use super::{Problem, failed, refused};
use crate::error::ErrorKind;
use crate::output::Cleanup;

/// What is set on a file once its data is written.
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    /// Permission bits, already filtered by `--same-permissions`.
    pub mode: u32,
    pub mtime: Mtime,
    /// Owner to restore (when running as root).
    pub owner: Option<(u64, u64)>,
    /// `--overwrite`: an existing non-directory of that name may be replaced.
    pub overwrite: bool,
    /// The file gets its owner and mode by being created (with `mode`): neither is
    /// set after. Two system calls less per file; only when nothing could make them
    /// differ (see `Extractor::finish`).
    pub preset: bool,
}

/// Names for temporary files, unique within the run whichever thread asks.
pub struct Temps {
    pid: u32,
    counter: AtomicU64,
    cleanup: Arc<Cleanup>,
}

impl Temps {
    pub fn new(cleanup: Arc<Cleanup>) -> Temps {
        Temps {
            pid: std::process::id(),
            counter: AtomicU64::new(0),
            cleanup,
        }
    }

    /// A new temporary file in `dir`, deleted unless kept. Short names: the target's
    /// own name may already be as long as a name can be.
    fn create(&self, dir: &Arc<OwnedFd>, mode: u32) -> Result<TempFile, Problem> {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
            let name = format!(".spate-{}-{n}.tmp", self.pid);
            match confine::create_file(dir, name.as_bytes(), mode) {
                Ok(file) => {
                    // The signal thread removes it by a path through our descriptor of
                    // its directory, which stays open as long as the temporary file.
                    let by_fd = PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
                    self.cleanup.register(&by_fd);
                    return Ok(TempFile {
                        dir: Arc::clone(dir),
                        name: name.into_bytes(),
                        file: Some(file),
                        registered: Some((by_fd, Arc::clone(&self.cleanup))),
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(failed("creating the file")(e)),
            }
        }
    }
}

/// Checks whether `name` may be created in `dir`: `Ok(false)` free, `Ok(true)` taken
/// by a non-directory that `overwrite` lets us replace.
pub fn make_room(dir: &OwnedFd, name: &[u8], overwrite: bool) -> Result<bool, Problem> {
    match confine::lstat(dir.as_raw_fd(), name).map_err(failed("checking the name"))? {
        None => Ok(false),
        Some(st) if confine::is_dir(&st) => Err(refused("a directory exists with that name")),
        Some(_) if overwrite => Ok(true),
        Some(_) => Err(Problem::Exists),
    }
}

/// Writes the file `name` in `dir`: `fill` writes its data into a temporary file,
/// which then gets its owner, mode and time and is renamed to `name`.
///
/// Whether the name is free is found out by the rename itself (it never replaces
/// anything without `--overwrite`, and never a directory), and looked into only
/// when it fails: one system call less per file than checking first.
pub fn write_file(
    temps: &Temps,
    dir: &Arc<OwnedFd>,
    name: &[u8],
    finish: &Finish,
    fill: impl FnOnce(&mut File) -> Result<(), Problem>,
) -> Result<(), Problem> {
    // Owner-only until its owner is set, unless it is created as it will be.
    let mut temp = temps.create(dir, if finish.preset { finish.mode } else { 0o600 })?;
    let file = temp
        .file
        .as_mut()
        .ok_or_else(|| Problem::Failed(ErrorKind::Io, "temporary file gone".into()))?;
    fill(file)?;
    let fd = file.as_raw_fd();
    if !finish.preset {
        if let Some((uid, gid)) = finish.owner {
            // Ownership is best effort, as for GNU tar without --same-owner errors.
            let _ = confine::set_owner_fd(fd, uid, gid);
        }
        // After chown, which clears setuid/setgid.
        confine::set_mode_fd(fd, finish.mode).map_err(failed("setting the mode"))?;
    }
    confine::set_mtime_fd(fd, finish.mtime).map_err(failed("setting the time"))?;
    match confine::renameat(dir, &temp.name, name, finish.overwrite) {
        Ok(()) => {}
        // The name is taken: by a directory (which nothing replaces), or by something
        // `--overwrite` was not given for.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::EISDIR)) => {
            make_room(dir, name, finish.overwrite)?;
            return Err(Problem::Exists);
        }
        Err(e) => return Err(failed("renaming into place")(e)),
    }
    temp.keep();
    Ok(())
}

/// A file being written under a temporary name; removed when dropped unless kept.
struct TempFile {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    file: Option<File>,
    /// Where the signal thread would remove it from.
    registered: Option<(PathBuf, Arc<Cleanup>)>,
}

impl TempFile {
    fn keep(mut self) {
        self.file = None;
        self.name.clear();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some((path, cleanup)) = self.registered.take() {
            cleanup.unregister(&path);
        }
        if !self.name.is_empty() {
            let _ = confine::unlinkat(&self.dir, &self.name);
        }
    }
}
