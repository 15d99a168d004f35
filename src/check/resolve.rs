//! Finding the file a manifest line names: as written (the default, as `sha256sum -c`),
//! or without ever leaving the `--root` directory (the confined mode).
//!
//! With `--root`, the manifest may come from someone else. A line naming
//! `../../etc/shadow`, or a path that passes through a symbolic link pointing out of the
//! tree, must not make spate read (and so confirm or deny the digest of) a file outside
//! the root. The kernel does the confinement: `openat2(…, RESOLVE_BENEATH)` refuses any
//! resolution that would leave the root directory, including through `..` and symbolic
//! links. Where `openat2` is missing (Linux before 5.6, or filtered by seccomp), the same
//! rule is applied to the canonical path, which costs a few more system calls per file.
//!
//! The lookup here only decides what to report without reading (MISSING, not a regular
//! file, outside the root) and gives the readers the size to compare. It is not what
//! makes reading safe: the name may change after it. The readers open the file again
//! beneath the root's descriptor in one confined lookup ([`Beneath`],
//! [`crate::read::confined`]) and read the descriptor that lookup returned.

use std::cell::RefCell;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::error::{ErrorKind, OUTSIDE_ROOT, describe_io};
use crate::read::confined::{self, Beneath};
use crate::walk::Identity;

/// What a manifest path turned out to be.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file: its size and modification time for the readers to compare, and
    /// how they open it (`None`: by its path, for an absolute name).
    File {
        size: u64,
        mtime: (i64, i64),
        /// ctime, inode and device, for the metadata `check --update` records.
        identity: Identity,
        beneath: Option<Beneath>,
    },
    /// Nothing there (or a parent is not a directory).
    Missing,
    /// Something was there but cannot be verified; the cause, for the report.
    Error(ErrorKind, String),
}

/// The directory manifest paths are relative to.
pub struct Root {
    /// As the user gave it (`--root`): joined with manifest paths to
    /// make the paths the readers open.
    path: PathBuf,
    /// Every lookup starts here and may not leave it; shared with the readers.
    dir: Arc<OwnedFd>,
    canonical: PathBuf,
    /// The directory of the last file looked up, kept open: manifests list files
    /// directory by directory, so most lookups reuse it and cost one `fstatat`.
    last_dir: RefCell<Option<(PathBuf, OwnedFd)>>,
}

impl Root {
    /// Opens `path` as the root.
    pub fn open(path: &Path) -> Result<Root> {
        let dir = File::open(path)
            .with_context(|| format!("cannot open root directory {}", path.display()))?;
        let canonical = std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve root directory {}", path.display()))?;
        anyhow::ensure!(
            dir.metadata().map(|m| m.is_dir()).unwrap_or(false),
            "root {} is not a directory",
            path.display()
        );
        Ok(Root {
            path: path.to_path_buf(),
            dir: Arc::new(OwnedFd::from(dir)),
            canonical,
            last_dir: RefCell::new(None),
        })
    }

    /// The path the readers should open for the manifest name `name` (relative).
    pub fn join(&self, name: &Path) -> PathBuf {
        self.path.join(name)
    }

    /// The root's canonical path (for matching against a walk in `--audit`).
    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    /// Looks up the relative path `name` beneath the root, following symbolic links
    /// only while they stay beneath it.
    pub fn resolve(&self, name: &Path) -> Resolved {
        let resolved = self.look_up(name);
        match resolved {
            Resolved::File {
                size,
                mtime,
                identity,
                ..
            } if confined::openat2_usable() => match self.beneath(name) {
                Ok(beneath) => Resolved::File {
                    size,
                    mtime,
                    identity,
                    beneath: Some(beneath),
                },
                Err(e) => from_open_error(&e),
            },
            other => other,
        }
    }

    /// What the readers open for `name`: the root's descriptor and the name as written,
    /// looked up again by `openat2` beneath the root.
    fn beneath(&self, name: &Path) -> io::Result<Beneath> {
        Ok(Beneath {
            dir: Arc::clone(&self.dir),
            name: c_string(name.as_os_str())?,
        })
    }

    fn look_up(&self, name: &Path) -> Resolved {
        if confined::openat2_usable() {
            let quick = self.resolve_in_parent(name);
            let full = match quick {
                Ok(Some(resolved)) => return resolved,
                Ok(None) => self.open_beneath(name, libc::O_PATH),
                Err(e) => Err(e),
            };
            match full {
                Ok(fd) => return describe(File::from(fd).metadata(), None),
                Err(e) if confined::note_if_unusable(&e) => {}
                Err(e) => return from_open_error(&e),
            }
        }
        self.resolve_canonical(name)
    }

    /// The common case in one system call: the parent directory, opened beneath the
    /// root (and cached), holds the file under its final name, and that name is not a
    /// symbolic link. `Ok(None)` when the full lookup must decide: the final component
    /// is a link, `..` or `.`.
    fn resolve_in_parent(&self, name: &Path) -> io::Result<Option<Resolved>> {
        let Some(Component::Normal(base)) = name.components().next_back() else {
            return Ok(None);
        };
        let parent = name.parent().unwrap_or(Path::new(""));
        let mut cache = self.last_dir.borrow_mut();
        let dir_fd = if parent.as_os_str().is_empty() {
            self.dir.as_raw_fd()
        } else {
            let cached = cache.as_ref().filter(|(p, _)| p == parent);
            match cached {
                Some((_, fd)) => fd.as_raw_fd(),
                None => {
                    let fd = match self.open_beneath(parent, libc::O_PATH | libc::O_DIRECTORY) {
                        Ok(fd) => fd,
                        Err(e) if confined::note_if_unusable(&e) => return Err(e),
                        Err(e) => return Ok(Some(from_open_error(&e))),
                    };
                    let raw = fd.as_raw_fd();
                    *cache = Some((parent.to_path_buf(), fd));
                    raw
                }
            }
        };
        match fstatat(dir_fd, base) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => Ok(None),
            Ok(st) => Ok(Some(describe_stat(&st))),
            Err(e) => Ok(Some(from_open_error(&e))),
        }
    }

    fn open_beneath(&self, name: &Path, flags: i32) -> io::Result<OwnedFd> {
        confined::openat2_beneath(self.dir.as_raw_fd(), &c_string(name.as_os_str())?, flags)
    }

    /// The fallback: canonicalize and compare prefixes. The readers then open the
    /// canonical name (links already resolved) one component at a time without
    /// following any link, so one swapped in after this lookup is refused.
    fn resolve_canonical(&self, name: &Path) -> Resolved {
        let full = match std::fs::canonicalize(self.path.join(name)) {
            Ok(full) => full,
            Err(e) => return from_open_error(&e),
        };
        let Ok(inside) = full.strip_prefix(&self.canonical) else {
            return Resolved::Error(ErrorKind::OutsideRoot, OUTSIDE_ROOT.into());
        };
        let beneath = match self.beneath(inside) {
            Ok(beneath) => beneath,
            Err(e) => return from_open_error(&e),
        };
        describe(std::fs::metadata(&full), Some(beneath))
    }
}

fn c_string(name: &std::ffi::OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Looks a name up as `sha256sum -c` would open it: relative to the current directory,
/// absolute as it is, `..` and symbolic links followed. The readers then open it by path.
pub fn resolve_as_written(path: &Path) -> Resolved {
    describe(std::fs::metadata(path), None)
}

fn from_open_error(e: &io::Error) -> Resolved {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Resolved::Missing,
        Some(libc::EXDEV) => Resolved::Error(ErrorKind::OutsideRoot, OUTSIDE_ROOT.into()),
        Some(libc::ELOOP) => Resolved::Error(
            ErrorKind::SymlinkLoop,
            "too many levels of symbolic links".into(),
        ),
        _ => Resolved::Error(ErrorKind::of_io(e), describe_io(e)),
    }
}

/// `lstat` of `name` in the directory `dir_fd`.
fn fstatat(dir_fd: i32, name: &std::ffi::OsStr) -> io::Result<libc::stat> {
    let c_name =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd and NUL-terminated name; fstatat fills the whole struct on
    // success and we read it only then.
    unsafe {
        if libc::fstatat(
            dir_fd,
            c_name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(st.assume_init())
    }
}

fn describe_stat(st: &libc::stat) -> Resolved {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Resolved::File {
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            identity: Identity {
                ctime: (st.st_ctime, st.st_ctime_nsec),
                inode: st.st_ino,
                dev: st.st_dev,
            },
            beneath: None,
        },
        libc::S_IFDIR => Resolved::Error(ErrorKind::IsADirectory, IS_DIR.into()),
        _ => Resolved::Error(ErrorKind::NotRegularFile, NOT_REGULAR.into()),
    }
}

const IS_DIR: &str = "is a directory";
const NOT_REGULAR: &str = "not a regular file; not opened";

fn describe(meta: io::Result<std::fs::Metadata>, beneath: Option<Beneath>) -> Resolved {
    match meta {
        Ok(m) if m.is_file() => Resolved::File {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            identity: Identity::of(&m),
            beneath,
        },
        Ok(m) if m.is_dir() => Resolved::Error(ErrorKind::IsADirectory, IS_DIR.into()),
        Ok(_) => Resolved::Error(ErrorKind::NotRegularFile, NOT_REGULAR.into()),
        Err(e) => from_open_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_beneath_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root_path = outer.path().join("root");
        std::fs::create_dir_all(root_path.join("sub")).unwrap();
        std::fs::write(outer.path().join("secret"), b"x").unwrap();
        std::fs::write(root_path.join("sub/f"), b"abc").unwrap();
        std::os::unix::fs::symlink("../secret", root_path.join("escape")).unwrap();
        std::os::unix::fs::symlink("sub/f", root_path.join("inside")).unwrap();
        let root = Root::open(&root_path).unwrap();

        assert!(matches!(
            root.resolve(Path::new("sub/f")),
            Resolved::File { size: 3, .. }
        ));
        assert!(matches!(
            root.resolve(Path::new("inside")),
            Resolved::File { size: 3, .. }
        ));
        assert!(matches!(
            root.resolve(Path::new("sub/../sub/f")),
            Resolved::File { .. }
        ));
        assert!(matches!(root.resolve(Path::new("nope")), Resolved::Missing));
        assert!(matches!(
            root.resolve(Path::new("sub/f/x")),
            Resolved::Missing
        ));
        std::os::unix::fs::symlink("..", root_path.join("sub/up")).unwrap();
        for escape in [
            "../secret",
            "escape",
            "sub/../../secret",
            "sub/up/../secret",
        ] {
            match root.resolve(Path::new(escape)) {
                Resolved::Error(kind, why) => {
                    assert_eq!(kind, ErrorKind::OutsideRoot, "{escape}");
                    assert!(why.contains("outside"), "{escape}: {why}");
                }
                other => panic!("{escape}: {other:?}"),
            }
        }
        assert!(matches!(
            root.resolve(Path::new("sub")),
            Resolved::Error(..)
        ));
        // The fallback applies the same rule.
        assert!(matches!(
            root.resolve_canonical(Path::new("escape")),
            Resolved::Error(..)
        ));
        assert!(matches!(
            root.resolve_canonical(Path::new("inside")),
            Resolved::File { size: 3, .. }
        ));
    }
}
