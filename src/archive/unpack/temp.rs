//! One file written without a name, or under a temporary name beside its target, and
//! given its name once complete, with its owner, mode and time set first: the one way
//! `unpack` puts a file on disk, whether the entry loop writes it or a writer thread
//! does. No file is ever seen under its name half written.
//!
//! Where the file system allows it (tmpfs, ext4, xfs, btrfs: `O_TMPFILE`), the file is
//! made without a name and linked into place: one directory update per file instead of
//! two (create a temporary name, rename it), and nothing to remove after an error or a
//! signal. Where it does not, or the name is already taken and `--overwrite` allows
//! replacing it, a temporary name is renamed into place as before.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::confine::{self, LinkBy};
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

/// How new files are made for the run, whichever thread asks: names for temporary
/// files, unique within the run, and whether files without a name are made.
pub struct Temps {
    pid: u32,
    counter: AtomicU64,
    cleanup: Arc<Cleanup>,
    /// How files without a name are linked into place ([`NO_ANONYMOUS`],
    /// [`BY_DESCRIPTOR`] or [`BY_PROC`]): found out once, and set to [`NO_ANONYMOUS`]
    /// the first time the file system refuses one, so a run pays for at most one
    /// refused call.
    anonymous: AtomicU8,
}

const NO_ANONYMOUS: u8 = 0;
const BY_DESCRIPTOR: u8 = 1;
const BY_PROC: u8 = 2;

impl Temps {
    /// For a run writing into `root`: whether files without a name are made there is
    /// asked once, here, rather than by the first files of every writer thread at
    /// once.
    pub fn new(cleanup: Arc<Cleanup>, root: &OwnedFd) -> Temps {
        let mut anonymous = link_by();
        if anonymous != NO_ANONYMOUS
            && let Err(e) = confine::create_anonymous(root, 0o600)
            && confine::anonymous_unsupported(&e)
        {
            anonymous = NO_ANONYMOUS;
        }
        Temps {
            pid: std::process::id(),
            counter: AtomicU64::new(0),
            cleanup,
            anonymous: AtomicU8::new(anonymous),
        }
    }

    /// How a file without a name is linked, if such files are made.
    fn anonymous(&self) -> Option<LinkBy> {
        match self.anonymous.load(Ordering::Relaxed) {
            BY_DESCRIPTOR => Some(LinkBy::Descriptor),
            BY_PROC => Some(LinkBy::Proc),
            _ => None,
        }
    }

    /// Links the file without a name `file` as `name` in `dir`. Without
    /// `CAP_DAC_READ_SEARCH` after all (root of a user namespace: the kernel answers
    /// ENOENT), through /proc from then on.
    fn link(&self, file: &File, by: LinkBy, dir: &OwnedFd, name: &[u8]) -> std::io::Result<()> {
        match confine::link_anonymous(file, by, dir, name) {
            Err(e) if by == LinkBy::Descriptor && e.raw_os_error() == Some(libc::ENOENT) => {
                confine::link_anonymous(file, LinkBy::Proc, dir, name)?;
                self.anonymous.store(BY_PROC, Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    }

    /// A fresh temporary name in `dir`, registered for removal on a signal.
    fn name(&self, dir: &Arc<OwnedFd>) -> (String, PathBuf) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!(".spate-{}-{n}.tmp", self.pid);
        // The signal thread removes it by a path through our descriptor of its
        // directory, which stays open as long as the temporary file.
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
        (name, by_fd)
    }

    /// A new temporary file in `dir`, deleted unless kept. Short names: the target's
    /// own name may already be as long as a name can be.
    fn create(&self, dir: &Arc<OwnedFd>, mode: u32) -> Result<TempFile, Problem> {
        loop {
            let (name, by_fd) = self.name(dir);
            match confine::create_file(dir, name.as_bytes(), mode) {
                Ok(file) => {
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

    /// Puts the complete file without a name `file` in place as `name`: linked, which
    /// never replaces anything; where the name is taken and may be replaced, linked
    /// under a temporary name and renamed over it, as a named temporary file is.
    fn put_anonymous(
        &self,
        file: &File,
        by: LinkBy,
        dir: &Arc<OwnedFd>,
        name: &[u8],
        overwrite: bool,
    ) -> Result<(), Problem> {
        match self.link(file, by, dir, name) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(failed("creating the file")(e)),
        }
        if !make_room(dir, name, overwrite)? {
            // Removed meanwhile (by somebody else): free once more, or taken again.
            return match self.link(file, by, dir, name) {
                Ok(()) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(Problem::Exists),
                Err(e) => Err(failed("creating the file")(e)),
            };
        }
        let temp = loop {
            let (temp, by_fd) = self.name(dir);
            // Registered before it exists: a signal in between must not leave it.
            self.cleanup.register(&by_fd);
            match self.link(file, by, dir, temp.as_bytes()) {
                Ok(()) => {
                    break TempFile {
                        dir: Arc::clone(dir),
                        name: temp.into_bytes(),
                        file: None,
                        registered: Some((by_fd, Arc::clone(&self.cleanup))),
                    };
                }
                Err(e) => {
                    self.cleanup.unregister(&by_fd);
                    match e.raw_os_error() {
                        Some(libc::EEXIST) => continue,
                        _ => return Err(failed("creating the file")(e)),
                    }
                }
            }
        };
        rename_into_place(temp, name, overwrite)
    }
}

/// How files without a name can be linked by this process: by descriptor with
/// `CAP_DAC_READ_SEARCH` (root), else through /proc when it is mounted, else not at
/// all (then every file gets a temporary name).
fn link_by() -> u8 {
    const CAP_DAC_READ_SEARCH: u32 = 2;
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
        });
    match caps {
        Some(caps) if caps >> CAP_DAC_READ_SEARCH & 1 == 1 => BY_DESCRIPTOR,
        Some(_) if Path::new("/proc/self/fd").is_dir() => BY_PROC,
        _ => NO_ANONYMOUS,
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

/// Writes the file `name` in `dir`: `fill` writes its data into a file without a
/// name (or under a temporary name), which then gets its owner, mode and time and is
/// linked (or renamed) to `name`.
///
/// Whether the name is free is found out by the link or rename itself (neither
/// replaces anything without `--overwrite`, nor ever a directory), and looked into
/// only when it fails: one system call less per file than checking first.
pub fn write_file(
    temps: &Temps,
    dir: &Arc<OwnedFd>,
    name: &[u8],
    finish: &Finish,
    fill: impl FnOnce(&mut File) -> Result<(), Problem>,
) -> Result<(), Problem> {
    // Owner-only until its owner is set, unless it is created as it will be. A file
    // without a name gets the same mode, umask and default ACL as a named one.
    let mode = if finish.preset { finish.mode } else { 0o600 };
    if let Some(by) = temps.anonymous() {
        match confine::create_anonymous(dir, mode) {
            Ok(mut file) => {
                fill(&mut file)?;
                set_attributes(&file, finish)?;
                return temps.put_anonymous(&file, by, dir, name, finish.overwrite);
            }
            Err(e) if confine::anonymous_unsupported(&e) => {
                temps.anonymous.store(NO_ANONYMOUS, Ordering::Relaxed);
            }
            Err(e) => return Err(failed("creating the file")(e)),
        }
    }
    let mut temp = temps.create(dir, mode)?;
    let file = temp
        .file
        .as_mut()
        .ok_or_else(|| Problem::Failed(ErrorKind::Io, "temporary file gone".into()))?;
    fill(file)?;
    set_attributes(file, finish)?;
    temp.file = None;
    rename_into_place(temp, name, finish.overwrite)
}

/// Sets what a file gets once its data is written: owner and mode (unless it was
/// created with them), then time.
fn set_attributes(file: &File, finish: &Finish) -> Result<(), Problem> {
    let fd = file.as_raw_fd();
    if !finish.preset {
        if let Some((uid, gid)) = finish.owner {
            // Ownership is best effort, as for GNU tar without --same-owner errors.
            let _ = confine::set_owner_fd(fd, uid, gid);
        }
        // After chown, which clears setuid/setgid.
        confine::set_mode_fd(fd, finish.mode).map_err(failed("setting the mode"))?;
    }
    confine::set_mtime_fd(fd, finish.mtime).map_err(failed("setting the time"))
}

/// Renames the complete temporary file `temp` to `name` in its directory.
fn rename_into_place(temp: TempFile, name: &[u8], overwrite: bool) -> Result<(), Problem> {
    match confine::renameat(&temp.dir, &temp.name, name, overwrite) {
        Ok(()) => {}
        // The name is taken: by a directory (which nothing replaces), or by something
        // `--overwrite` was not given for.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::EISDIR)) => {
            make_room(&temp.dir, name, overwrite)?;
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
