//! Path operations confined beneath the destination directory.
//!
//! Every operation starts from a directory descriptor and names a single component:
//! directories are opened one component at a time with `O_NOFOLLOW | O_DIRECTORY`,
//! and the final step is an `*at` call that does not follow a symbolic link either
//! (`O_CREAT | O_EXCL`, `mkdirat`, `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`,
//! `renameat`, `AT_SYMLINK_NOFOLLOW`). Components are plain names ([`RelPath`]), never
//! `.` or `..`. So no symbolic link is ever followed, whether an earlier entry of the
//! archive made it or it was there before (the CVE-2025-45582 pattern), and nothing can
//! be reached that is not beneath the destination.
//!
//! cap-std's `Dir` is not used here: it follows symbolic links that stay inside its
//! root, and the rule here is stricter (no link is followed at all); it also lacks
//! `mknodat`, `fchownat` and `utimensat` on links.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::header::{Mtime, quote};
use super::names::RelPath;

/// Why a directory on the way to an entry cannot be used.
#[derive(Debug)]
pub enum WalkError {
    /// A component is a symbolic link (named by the path up to it).
    Symlink(Vec<u8>),
    /// A component is neither a directory nor a link.
    NotDir(Vec<u8>),
    /// A component does not exist (lookups only; walks that create make it).
    Missing(Vec<u8>),
    Io(Vec<u8>, io::Error),
}

impl WalkError {
    /// Whether this is a refusal (the archive asks for something unsafe) rather than
    /// an ordinary failure.
    pub fn is_refusal(&self) -> bool {
        matches!(self, WalkError::Symlink(_))
    }

    /// The stable kind of the error.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            WalkError::Symlink(_) => ErrorKind::OutsideRoot,
            WalkError::NotDir(_) => ErrorKind::Io,
            WalkError::Missing(_) => ErrorKind::NotFound,
            WalkError::Io(_, e) => ErrorKind::of_io(e),
        }
    }
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::Symlink(p) => write!(
                f,
                "would go through the symbolic link {}; not followed",
                quote(p)
            ),
            WalkError::NotDir(p) => write!(f, "{} exists and is not a directory", quote(p)),
            WalkError::Missing(p) => write!(f, "{} does not exist", quote(p)),
            WalkError::Io(p, e) => {
                write!(f, "opening {}: {}", quote(p), crate::error::describe_io(e))
            }
        }
    }
}

/// The destination directory, and the directories of the last path walked to (entries
/// of an archive come grouped by directory, a directory's files often before and after
/// its subdirectories).
pub struct Root {
    root: Arc<OwnedFd>,
    root_creates: Creates,
    /// Each component of the last path walked to with its descriptor, outermost first:
    /// the next walk starts from the longest prefix it shares, so going from `a/b/c`
    /// back to `a/b` opens nothing.
    chain: Vec<(Vec<u8>, Arc<OwnedFd>, Creates)>,
    /// What a file created in the directory last walked to gets.
    last: Creates,
}

/// What a new file gets in a directory without being asked: its group (the
/// directory's when it is setgid, else ours), and whether its mode is the one given
/// to `open` less the umask (not when a default ACL decides it). Knowing it lets a
/// file be created with its final mode, and its owner and mode left alone after.
#[derive(Debug, Clone, Copy)]
pub struct Creates {
    pub gid: u32,
    pub open_mode: bool,
}

impl Creates {
    fn of(dir: RawFd) -> Creates {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid descriptor; the struct is read only when fstat filled it.
        let st = unsafe { (libc::fstat(dir, st.as_mut_ptr()) == 0).then(|| st.assume_init()) };
        let Some(st) = st else {
            // Nothing known: the owner and mode are set after creation, as always.
            return Creates {
                gid: u32::MAX,
                open_mode: false,
            };
        };
        let gid = if st.st_mode & libc::S_ISGID != 0 {
            st.st_gid
        } else {
            // SAFETY: getegid has no preconditions.
            unsafe { libc::getegid() }
        };
        let name = c"system.posix_acl_default";
        // SAFETY: valid descriptor and NUL-terminated name; a null buffer of size 0
        // asks for the value's size only.
        let acl = unsafe { libc::fgetxattr(dir, name.as_ptr(), std::ptr::null_mut(), 0) };
        let no_acl = acl < 0
            && matches!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::ENODATA | libc::EOPNOTSUPP)
            );
        Creates {
            gid,
            open_mode: no_acl,
        }
    }
}

/// The process's umask, from `/proc/self/status` (reading it with `umask` would set
/// it for a moment, for every thread); all bits when unknown, so that nothing relies
/// on it.
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        })
        .unwrap_or(0o7777)
}

impl Root {
    /// Opens the destination, creating it (and its parents) if missing. The
    /// destination is the user's choice, so this one path is followed as given.
    pub fn open(dest: &Path) -> Result<Root> {
        std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
        let fd = open_dir_raw(libc::AT_FDCWD, dest.as_os_str().as_bytes(), false)
            .with_context(|| format!("opening {}", dest.display()))?;
        let creates = Creates::of(fd.as_raw_fd());
        Ok(Root {
            root: Arc::new(fd),
            root_creates: creates,
            chain: Vec::new(),
            last: creates,
        })
    }

    /// The destination directory.
    pub fn fd(&self) -> &OwnedFd {
        &self.root
    }

    /// What a file created in the directory last walked to gets.
    pub fn creates(&self) -> Creates {
        self.last
    }

    /// The directory holding `path`, creating missing directories on the way (with the
    /// default mode; those the archive names get theirs at the end).
    pub fn parent_of(&mut self, path: &RelPath) -> Result<Arc<OwnedFd>, WalkError> {
        self.dir(path.dirs(), true)
    }

    /// The directory holding `path`, which must already exist.
    pub fn existing_parent_of(&mut self, path: &RelPath) -> Result<Arc<OwnedFd>, WalkError> {
        self.dir(path.dirs(), false)
    }

    /// The directory at `components` (empty: the destination itself).
    pub fn dir(&mut self, components: &[Vec<u8>], create: bool) -> Result<Arc<OwnedFd>, WalkError> {
        // The cached chain stays right because nothing here ever removes or replaces a
        // directory: a descriptor opened once names the same directory for the whole run.
        let common = self
            .chain
            .iter()
            .zip(components)
            .take_while(|((cached, _, _), part)| cached == *part)
            .count();
        self.chain.truncate(common);
        let (mut current, mut creates) = match self.chain.last() {
            Some((_, fd, creates)) => (Arc::clone(fd), *creates),
            None => (Arc::clone(&self.root), self.root_creates),
        };
        for (i, part) in components.iter().enumerate().skip(common) {
            let here = || components[..=i].join(&b'/');
            let next = match open_dir_raw(current.as_raw_fd(), part, true) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    match mkdirat(current.as_raw_fd(), part, 0o777) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(WalkError::Io(here(), e)),
                    }
                    open_dir_raw(current.as_raw_fd(), part, true)
                        .map_err(|e| classify(current.as_raw_fd(), part, here(), e))?
                }
                Err(e) => return Err(classify(current.as_raw_fd(), part, here(), e)),
            };
            current = Arc::new(next);
            creates = Creates::of(current.as_raw_fd());
            self.chain
                .push((part.clone(), Arc::clone(&current), creates));
        }
        self.last = creates;
        Ok(current)
    }
}

/// Names the reason an open of a directory component failed.
fn classify(dir: RawFd, name: &[u8], here: Vec<u8>, e: io::Error) -> WalkError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => WalkError::Missing(here),
        Some(libc::ELOOP | libc::ENOTDIR) => match lstat(dir, name) {
            Ok(Some(st)) if is_symlink(&st) => WalkError::Symlink(here),
            _ => WalkError::NotDir(here),
        },
        _ => WalkError::Io(here, e),
    }
}

fn cstring(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens a directory; with `nofollow`, a symbolic link fails (ELOOP or ENOTDIR).
fn open_dir_raw(dir: RawFd, name: &[u8], nofollow: bool) -> io::Result<OwnedFd> {
    let c_name = cstring(name)?;
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: valid descriptor (or AT_FDCWD) and NUL-terminated name.
    let fd = unsafe { libc::openat(dir, c_name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates a new file for writing; fails if anything (a link too) has the name.
pub fn create_file(dir: &OwnedFd, name: &[u8], mode: u32) -> io::Result<File> {
    let c_name = cstring(name)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid descriptor and NUL-terminated name; the mode is passed as the
    // variadic argument open expects with O_CREAT.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            flags,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens a new file without a name in `dir` (`O_TMPFILE`): nobody can see it until
/// [`link_anonymous`] gives it one, and it is gone with its descriptor if that never
/// happens (an error, a signal, a crash), so there is nothing to clean up. Opened with
/// `openat2` (Linux 5.6) rather than `openat`, so that this one call can be refused
/// on its own (the tests make it fail with strace, as a file system without
/// `O_TMPFILE` would).
pub fn create_anonymous(dir: &OwnedFd, mode: u32) -> io::Result<File> {
    // SAFETY: open_how is plain data; zero is a valid value for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode & 0o7777);
    // SAFETY: valid directory descriptor, NUL-terminated path and a properly sized
    // open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c".".as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as RawFd) })
}

/// Whether an error of [`create_anonymous`] means that files without a name cannot be
/// made here at all (a file system without `O_TMPFILE`, a kernel without it or without
/// `openat2`, a seccomp filter) rather than an answer about this file.
pub fn anonymous_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EOPNOTSUPP
                | libc::EISDIR
                | libc::EINVAL
                | libc::ENOSYS
                | libc::EPERM
                | libc::E2BIG
        )
    )
}

/// How a file without a name is linked into a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkBy {
    /// `linkat(fd, "", ..., AT_EMPTY_PATH)`: needs `CAP_DAC_READ_SEARCH`.
    Descriptor,
    /// `linkat(AT_FDCWD, "/proc/self/fd/N", ..., AT_SYMLINK_FOLLOW)`: anybody, with
    /// /proc mounted.
    Proc,
}

/// Gives the file without a name `file` the name `name` in `dir`. Never replaces
/// anything: `EEXIST` when the name is taken (by a symbolic link too, which is not
/// followed).
pub fn link_anonymous(file: &File, by: LinkBy, dir: &OwnedFd, name: &[u8]) -> io::Result<()> {
    let c_name = cstring(name)?;
    let ret = match by {
        // SAFETY: valid descriptors, an empty and a NUL-terminated name.
        LinkBy::Descriptor => unsafe {
            libc::linkat(
                file.as_raw_fd(),
                c"".as_ptr(),
                dir.as_raw_fd(),
                c_name.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        },
        LinkBy::Proc => {
            let by_fd = cstring(format!("/proc/self/fd/{}", file.as_raw_fd()).as_bytes())?;
            // SAFETY: valid descriptor and NUL-terminated names. The magic link names
            // our own open file, whatever its path.
            unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    by_fd.as_ptr(),
                    dir.as_raw_fd(),
                    c_name.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            }
        }
    };
    check(ret)
}

pub fn mkdirat(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let c_name = cstring(name)?;
    // SAFETY: valid descriptor and NUL-terminated name.
    check(unsafe { libc::mkdirat(dir, c_name.as_ptr(), mode as libc::mode_t) })
}

pub fn symlinkat(target: &[u8], dir: &OwnedFd, name: &[u8]) -> io::Result<()> {
    let (c_target, c_name) = (cstring(target)?, cstring(name)?);
    // SAFETY: NUL-terminated strings and a valid descriptor.
    check(unsafe { libc::symlinkat(c_target.as_ptr(), dir.as_raw_fd(), c_name.as_ptr()) })
}

/// Hard-links `from_dir/from` as `to_dir/to`; a link at `from` is linked itself, not
/// followed.
pub fn linkat(from_dir: &OwnedFd, from: &[u8], to_dir: &OwnedFd, to: &[u8]) -> io::Result<()> {
    let (c_from, c_to) = (cstring(from)?, cstring(to)?);
    // SAFETY: valid descriptors and NUL-terminated names; flags 0 follows nothing.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            c_from.as_ptr(),
            to_dir.as_raw_fd(),
            c_to.as_ptr(),
            0,
        )
    })
}

/// Renames within one directory. With `replace` false the rename fails (EEXIST) if
/// the name was taken meanwhile.
pub fn renameat(dir: &OwnedFd, from: &[u8], to: &[u8], replace: bool) -> io::Result<()> {
    let (c_from, c_to) = (cstring(from)?, cstring(to)?);
    let flags = if replace { 0 } else { libc::RENAME_NOREPLACE };
    // SAFETY: valid descriptor and NUL-terminated names.
    let ret = unsafe {
        libc::renameat2(
            dir.as_raw_fd(),
            c_from.as_ptr(),
            dir.as_raw_fd(),
            c_to.as_ptr(),
            flags,
        )
    };
    match check(ret) {
        // File systems without RENAME_NOREPLACE: check, then rename (a race with
        // another process remains there, as for GNU tar).
        Err(e) if !replace && e.raw_os_error() == Some(libc::EINVAL) => {
            if lstat(dir.as_raw_fd(), to)?.is_some() {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            // SAFETY: as above.
            check(unsafe {
                libc::renameat(
                    dir.as_raw_fd(),
                    c_from.as_ptr(),
                    dir.as_raw_fd(),
                    c_to.as_ptr(),
                )
            })
        }
        other => other,
    }
}

/// Removes a non-directory.
pub fn unlinkat(dir: &OwnedFd, name: &[u8]) -> io::Result<()> {
    let c_name = cstring(name)?;
    // SAFETY: valid descriptor and NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c_name.as_ptr(), 0) })
}

pub fn mknodat(dir: &OwnedFd, name: &[u8], mode: u32, device: (u32, u32)) -> io::Result<()> {
    let c_name = cstring(name)?;
    let dev = libc::makedev(device.0, device.1);
    // SAFETY: valid descriptor and NUL-terminated name.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), c_name.as_ptr(), mode as libc::mode_t, dev) })
}

pub fn readlinkat(dir: &OwnedFd, name: &[u8]) -> io::Result<Vec<u8>> {
    let c_name = cstring(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid descriptor, NUL-terminated name, and a buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `lstat` of `name` in `dir`; `None` if there is no such name.
pub fn lstat(dir: RawFd, name: &[u8]) -> io::Result<Option<libc::stat>> {
    let c_name = cstring(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid descriptor and NUL-terminated name; fstatat fills the whole struct
    // on success and it is read only then.
    unsafe {
        if libc::fstatat(
            dir,
            c_name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(st.assume_init()))
    }
}

pub fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn timespecs(mtime: Mtime) -> [libc::timespec; 2] {
    [
        // Access time: left as it is (the time of extraction), as GNU tar does.
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime.secs as libc::time_t,
            tv_nsec: mtime.nanos as libc::c_long,
        },
    ]
}

/// Sets the modification time of an open file or directory.
pub fn set_mtime_fd(fd: RawFd, mtime: Mtime) -> io::Result<()> {
    let times = timespecs(mtime);
    // SAFETY: valid descriptor and a two-element timespec array.
    check(unsafe { libc::futimens(fd, times.as_ptr()) })
}

/// Sets the modification time of `name` itself (a link is not followed).
pub fn set_mtime_at(dir: &OwnedFd, name: &[u8], mtime: Mtime) -> io::Result<()> {
    let c_name = cstring(name)?;
    let times = timespecs(mtime);
    // SAFETY: valid descriptor, NUL-terminated name, two-element timespec array.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub fn set_mode_fd(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) })
}

pub fn set_owner_fd(fd: RawFd, uid: u64, gid: u64) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchown(fd, uid as libc::uid_t, gid as libc::gid_t) })
}

/// Sets the owner of `name` itself (a link is not followed).
pub fn set_owner_at(dir: &OwnedFd, name: &[u8], uid: u64, gid: u64) -> io::Result<()> {
    let c_name = cstring(name)?;
    // SAFETY: valid descriptor and NUL-terminated name.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            uid as libc::uid_t,
            gid as libc::gid_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::unpack::names::{Placement, place};

    fn rel(name: &str) -> RelPath {
        match place(name.as_bytes(), 0) {
            Ok(Placement::At(p)) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn walks_never_follow_links() {
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("dest");
        std::fs::create_dir_all(dest.join("real")).unwrap();
        std::os::unix::fs::symlink("real", dest.join("inside")).unwrap();
        std::os::unix::fs::symlink(outer.path(), dest.join("outside")).unwrap();
        std::fs::write(dest.join("file"), b"x").unwrap();
        let mut root = Root::open(&dest).unwrap();

        assert!(root.parent_of(&rel("real/f")).is_ok());
        assert!(root.parent_of(&rel("new/deeper/f")).is_ok());
        assert!(dest.join("new/deeper").is_dir());
        for (path, symlink) in [("inside/f", true), ("outside/x/f", true), ("file/f", false)] {
            match root.parent_of(&rel(path)) {
                Err(e) => assert_eq!(e.is_refusal(), symlink, "{path}: {e}"),
                Ok(_) => panic!("{path} walked"),
            }
        }
        assert!(!outer.path().join("x").exists());
        assert!(matches!(
            root.existing_parent_of(&rel("nope/f")),
            Err(WalkError::Missing(_))
        ));
    }
}
