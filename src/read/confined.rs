//! Opening a file beneath a directory in one kernel lookup.
//!
//! `spate check` reads files a manifest names, and a manifest may come from someone who
//! can also write into the tree. Looking a name up once to confirm it stays beneath the
//! root and then opening it again by path leaves a window in which the name can become a
//! symbolic link to a file outside (a file only root can read, say), and its digest would
//! then be confirmed or denied. So the descriptor that is read must come from the
//! confined lookup itself: `openat2(root, name, RESOLVE_BENEATH)`, where the kernel
//! refuses any resolution that leaves `root` (through `..` or a symbolic link) at the
//! moment of the open. Where `openat2` is missing (Linux before 5.6, or filtered by
//! seccomp), the name is opened one component at a time with `O_NOFOLLOW`, so a symbolic
//! link anywhere on the way is refused instead of followed.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::OutsideRoot;

/// A file to open beneath a directory the job opened: what a reader opens instead of a
/// path when the job must not be tricked out of a tree.
#[derive(Debug, Clone)]
pub struct Beneath {
    /// The directory every lookup starts from and may not leave.
    pub dir: Arc<OwnedFd>,
    /// The name relative to `dir`.
    pub name: CString,
}

/// Flags every read open uses: `O_NONBLOCK` keeps a FIFO swapped in for the file from
/// hanging the open, and `O_NOCTTY` keeps a terminal from becoming ours.
pub const READ_FLAGS: i32 = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;

/// Set once `openat2` has been found unusable, so it is not tried for every file.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Whether `openat2` is worth trying (it has not failed as unsupported yet).
pub fn openat2_usable() -> bool {
    !NO_OPENAT2.load(Ordering::Relaxed)
}

/// Whether an `openat2` error means the call itself is unavailable (old kernel, seccomp)
/// rather than an answer about the path; remembers it for every later lookup.
pub fn note_if_unusable(e: &io::Error) -> bool {
    let unusable = matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::E2BIG)
    );
    if unusable {
        NO_OPENAT2.store(true, Ordering::Relaxed);
    }
    unusable
}

/// `openat2(dir, name, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: symbolic links are
/// followed only while they stay beneath `dir`; `EXDEV` when the name leads out.
pub fn openat2_beneath(dir: RawFd, name: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; zero is a valid value for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid directory fd, NUL-terminated path and a properly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Opens `name` beneath `dir` one component at a time, refusing every symbolic link
/// (`ELOOP`) and every `..`: the fallback where `openat2` is missing. The caller passes
/// a name with links already resolved (a canonical path) when links inside the tree are
/// to be allowed; one that appears later is refused, never followed.
pub fn open_nofollow(dir: RawFd, name: &[u8], flags: i32) -> io::Result<OwnedFd> {
    let parts: Vec<&[u8]> = name
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let mut current: Option<OwnedFd> = None;
    for part in dirs {
        let at = current.as_ref().map_or(dir, AsRawFd::as_raw_fd);
        let next = openat(at, part, libc::O_PATH | libc::O_DIRECTORY)?;
        current = Some(next);
    }
    let at = current.as_ref().map_or(dir, AsRawFd::as_raw_fd);
    openat(at, last, flags)
}

/// One `openat` of a single name with `O_NOFOLLOW`; `..` is refused as leaving.
fn openat(dir: RawFd, part: &[u8], flags: i32) -> io::Result<OwnedFd> {
    if part == b".." {
        return Err(outside());
    }
    let c_part = CString::new(part).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid directory fd and NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir,
            c_part.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a file for reading beneath its directory: the one lookup whose descriptor is
/// then read. Errors keep their OS cause, except a refusal to leave the directory, which
/// is said in words.
pub fn open_for_reading(file: &Beneath) -> io::Result<File> {
    let dir = file.dir.as_raw_fd();
    if openat2_usable() {
        match openat2_beneath(dir, &file.name, READ_FLAGS) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(e) if note_if_unusable(&e) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Err(outside()),
            Err(e) => return Err(e),
        }
    }
    match open_nofollow(dir, file.name.as_bytes(), READ_FLAGS) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(io::Error::other(
            "a symbolic link appeared on the way; not followed",
        )),
        other => other.map(File::from),
    }
}

fn outside() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, OutsideRoot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn beneath(dir: &std::path::Path, name: &str) -> Beneath {
        let dir = File::open(dir).unwrap();
        Beneath {
            dir: Arc::new(OwnedFd::from(dir)),
            name: CString::new(name).unwrap(),
        }
    }

    fn read(file: io::Result<File>) -> io::Result<String> {
        let mut s = String::new();
        file?.read_to_string(&mut s)?;
        Ok(s)
    }

    #[test]
    fn opens_inside_and_refuses_every_way_out() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(outer.path().join("secret"), b"secret").unwrap();
        std::fs::write(root.join("sub/f"), b"inside").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("sub/escape")).unwrap();
        std::os::unix::fs::symlink("sub/f", root.join("link")).unwrap();

        assert_eq!(
            read(open_for_reading(&beneath(&root, "sub/f"))).unwrap(),
            "inside"
        );
        for name in ["escape", "sub/escape", "../secret", "sub/../../secret"] {
            let err = read(open_for_reading(&beneath(&root, name))).unwrap_err();
            assert!(err.to_string().contains("outside"), "{name}: {err}");
        }
        // The fallback never follows a link, even one that stays inside, and never `..`.
        let dir = File::open(&root).unwrap();
        let fd = dir.as_raw_fd();
        assert!(open_nofollow(fd, b"sub/f", READ_FLAGS).is_ok());
        for name in ["link", "escape", "sub/escape", "../secret", "sub/../f"] {
            assert!(
                open_nofollow(fd, name.as_bytes(), READ_FLAGS).is_err(),
                "{name}"
            );
        }
    }
}
