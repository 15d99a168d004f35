//! The benchmark's own test file: created beside nothing the user owns (a fresh
//! temporary name in the target directory), removed when the run ends, on an error,
//! and on SIGINT/SIGTERM through the [`Cleanup`] registry.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use humansize::{BINARY, format_size};

use super::data::{Pattern, pattern_buffer, stamp};
use crate::output::Cleanup;

/// Size of each write while laying the file out.
const LAYOUT_CHUNK: usize = 1 << 20;

/// A temporary test file; deleted when dropped.
pub struct TestFile {
    path: tempfile::TempPath,
    size: u64,
    cleanup: Arc<Cleanup>,
}

impl TestFile {
    /// Creates an empty test file in `dir` after checking that `size` bytes fit there.
    pub fn create(dir: &Path, size: u64, cleanup: &Arc<Cleanup>) -> Result<TestFile> {
        let meta = std::fs::metadata(dir).with_context(|| dir.display().to_string())?;
        if !meta.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        let free = free_space(dir).with_context(|| format!("{}: statvfs", dir.display()))?;
        if let Some(free) = free
            && size > free
        {
            bail!(
                "{}: not enough free space for a {} test file ({} available); \
                 give a smaller --size",
                dir.display(),
                format_size(size, BINARY),
                format_size(free, BINARY)
            );
        }
        let file = tempfile::Builder::new()
            .prefix(".spate-bench-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .with_context(|| format!("{}: creating the test file", dir.display()))?;
        let (_, path) = file.into_parts();
        cleanup.register(&path);
        Ok(TestFile {
            path,
            size,
            cleanup: Arc::clone(cleanup),
        })
    }

    /// Opens the file for the jobs, with O_DIRECT when asked; a file system that
    /// refuses O_DIRECT (ramfs, some FUSE) gets a clear error instead of odd figures.
    pub fn open(&self, direct: bool) -> Result<File> {
        self.open_raw(direct)
            .map_err(|err| self.open_error(direct, &err))
    }

    /// Opens the file for the jobs; the OS error as it is.
    pub fn open_raw(&self, direct: bool) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if direct {
            options.custom_flags(libc::O_DIRECT);
        }
        options.open(&self.path)
    }

    /// Whether `err` from [`TestFile::open_raw`] means the file system refuses O_DIRECT.
    pub fn refuses_direct(direct: bool, err: &io::Error) -> bool {
        direct && err.raw_os_error() == Some(libc::EINVAL)
    }

    /// The message for an error of [`TestFile::open_raw`].
    pub fn open_error(&self, direct: bool, err: &io::Error) -> anyhow::Error {
        if Self::refuses_direct(direct, err) {
            anyhow::anyhow!(
                "{}: the file system refuses O_DIRECT (--direct): {}",
                self.dir().display(),
                crate::error::describe_io(err)
            )
        } else {
            anyhow::anyhow!(
                "{}: opening the test file: {}",
                self.dir().display(),
                crate::error::describe_io(err)
            )
        }
    }

    /// The directory the test file is in: what messages name, as the file's own name
    /// is a random one the user never chose.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Fills the whole file with `pattern` and syncs it, so read jobs read real blocks
    /// (a sparse file reads as zeros without touching the disk).
    pub fn lay_out(&self, pattern: Pattern) -> Result<()> {
        let what = || format!("{}: laying out the test file", self.dir().display());
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(what)?;
        let mut buf = pattern_buffer(LAYOUT_CHUNK, 0x1A40, pattern);
        let mut offset = 0u64;
        while offset < self.size {
            let len = (self.size - offset).min(LAYOUT_CHUNK as u64) as usize;
            if pattern.stamped() {
                stamp(&mut buf, len, offset, 0);
            }
            write_all_at(&file, &buf[..len], offset).with_context(what)?;
            offset += len as u64;
        }
        file.sync_all().with_context(what)
    }

    /// Gives the file its size without writing it (write-only runs): allocated where
    /// the file system can, so a full disk shows up now and not halfway through a job.
    pub fn reserve(&self) -> Result<()> {
        let what = || format!("{}: allocating the test file", self.dir().display());
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(what)?;
        // SAFETY: plain syscall on an open descriptor.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, self.size as libc::off_t) };
        match rc {
            0 => Ok(()),
            libc::EOPNOTSUPP | libc::EINVAL => file.set_len(self.size).with_context(what),
            err => Err(io::Error::from_raw_os_error(err)).with_context(what),
        }
    }

    /// Writes back dirty pages and drops the file's pages from the page cache, as
    /// fio's `invalidate=1` does before every job: buffered reads then come from the
    /// disk, not from memory.
    pub fn drop_cache(&self, file: &File) -> Result<()> {
        let what = || {
            format!(
                "{}: dropping the test file's cached pages",
                self.dir().display()
            )
        };
        file.sync_all().with_context(what)?;
        // SAFETY: plain syscall on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc)).with_context(what);
        }
        Ok(())
    }
}

/// Tells the kernel how a job will read the file, as fio does by default
/// (`fadvise_hint=1`): sequential doubles the readahead window, random turns it off.
pub fn advise(file: &File, random: bool) -> Result<()> {
    let advice = if random {
        libc::POSIX_FADV_RANDOM
    } else {
        libc::POSIX_FADV_SEQUENTIAL
    };
    // SAFETY: plain syscall on an open descriptor.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, advice) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc)).context("posix_fadvise");
    }
    Ok(())
}

impl Drop for TestFile {
    fn drop(&mut self) {
        // TempPath removes the file itself when dropped.
        self.cleanup.unregister(&self.path);
    }
}

/// Bytes an unprivileged user may still write below `dir`; `None` when the file system
/// does not say (ramfs and some FUSE file systems report a size of zero).
pub fn free_space(dir: &Path) -> io::Result<Option<u64>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs writes a whole `struct statvfs` on success; we read it only then.
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        st.assume_init()
    };
    if st.f_blocks == 0 {
        return Ok(None);
    }
    Ok(Some(
        (st.f_bavail as u64).saturating_mul(st.f_frsize as u64),
    ))
}

fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    while !buf.is_empty() {
        let n = file.write_at(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}
