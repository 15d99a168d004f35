//! Output destinations: standard output, or a file written atomically.
//!
//! A file output is written to a temporary file in the target's directory and renamed
//! over the target only when the run finishes; on an error the temporary file is removed
//! when it is dropped, and on SIGINT/SIGTERM the signal thread ([`crate::signals`])
//! removes it before exiting. Either way no half-written file is ever left under the
//! name the user gave.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// Temporary files to delete if the process is interrupted, and what to say first.
#[derive(Default)]
pub struct Cleanup {
    paths: Mutex<Vec<PathBuf>>,
    /// Directories a job made and fills (bench's --write-tree): removed with all they hold.
    dirs: Mutex<Vec<PathBuf>>,
    /// Set once SIGINT/SIGTERM came: the process is about to exit with 130 or 143.
    interrupted: std::sync::atomic::AtomicBool,
    /// Run on SIGINT/SIGTERM after the files are gone: a job that streams results (bench
    /// keeps the rows it finished) writes what it has before the process exits.
    last_words: Mutex<Vec<Box<dyn Fn() + Send>>>,
}

impl Cleanup {
    pub(crate) fn register(&self, path: &Path) {
        self.lock().push(path.to_path_buf());
    }

    pub(crate) fn unregister(&self, path: &Path) {
        self.lock().retain(|p| p != path);
    }

    /// Whether the run is being interrupted: a job whose files just vanished under it
    /// should wait for the exit rather than report the error.
    pub(crate) fn interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A directory of our own to remove, with everything in it, on SIGINT/SIGTERM.
    pub(crate) fn register_dir(&self, path: &Path) {
        self.dirs_lock().push(path.to_path_buf());
    }

    pub(crate) fn unregister_dir(&self, path: &Path) {
        self.dirs_lock().retain(|p| p != path);
    }

    fn dirs_lock(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes every registered file (signal path: errors are ignored, nothing else can
    /// be done about them), then runs the [`Cleanup::on_interrupt`] hooks.
    pub fn remove_all(&self) {
        self.interrupted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for path in self.lock().drain(..) {
            let _ = std::fs::remove_file(path);
        }
        for dir in self.dirs_lock().drain(..) {
            remove_busy_dir(&dir);
        }
        let hooks = self.last_words.lock().unwrap_or_else(|p| p.into_inner());
        for hook in hooks.iter() {
            hook();
        }
    }

    /// Registers `hook` to run when the run is interrupted, after the temporary files
    /// are removed and before the process exits.
    pub(crate) fn on_interrupt(&self, hook: Box<dyn Fn() + Send>) {
        self.last_words
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The file a final name stands for: a symbolic link's target, followed as a shell's
/// `>` and `tar -f` follow it (renaming over the link would replace the link with a
/// file and leave its target stale). A dangling link's target is created.
pub fn through_links(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // As many hops as the kernel follows before ELOOP; a loop then fails to open.
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    path
}

/// Removes a directory another thread may still be creating files in: renamed first,
/// so that thread's next create fails (it names files by the old path) instead of
/// landing between remove_dir_all's listing and its rmdir.
fn remove_busy_dir(dir: &Path) {
    let mut gone = dir.as_os_str().to_owned();
    gone.push(".removing");
    let gone = PathBuf::from(gone);
    let target = if std::fs::rename(dir, &gone).is_ok() {
        gone
    } else {
        dir.to_path_buf()
    };
    // A file being written when the rename came is removed with the rest; only a
    // create racing a failed rename could need a second pass.
    for _ in 0..10 {
        match std::fs::remove_dir_all(&target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => continue,
            _ => break,
        }
    }
}

/// Where results go, and how many bytes went there.
pub struct Output {
    dest: Dest,
    written: u64,
}

enum Dest {
    Stdout(io::Stdout),
    File(AtomicFile),
    /// An existing device, FIFO or socket named by `-o` (`/dev/null`, a tape, a pipe
    /// another program reads): written in place, as tar and zstd write to it. The
    /// temporary file and rename would replace the node with a regular file.
    Special(File, PathBuf),
    /// A caller's writer (the library's `pack_to`), written as it is.
    Writer(Box<dyn Write + Send>),
}

impl Output {
    /// `None` or `-` means standard output; anything else an atomically written file.
    pub fn open(path: Option<&Path>, cleanup: &Arc<Cleanup>) -> Result<Output> {
        let dest = match path {
            None => Dest::Stdout(io::stdout()),
            Some(p) if p.as_os_str() == "-" => Dest::Stdout(io::stdout()),
            Some(p) if is_special(p) => Dest::Special(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{}: cannot open: {}",
                            p.display(),
                            crate::error::describe_io(&e)
                        )
                    })?,
                p.to_path_buf(),
            ),
            Some(p) => Dest::File(AtomicFile::create(&through_links(p), Arc::clone(cleanup))?),
        };
        Ok(Output { dest, written: 0 })
    }

    /// Bytes go to `writer` (library use): nothing to rename or remove.
    pub fn writer(writer: Box<dyn Write + Send>) -> Output {
        Output {
            dest: Dest::Writer(writer),
            written: 0,
        }
    }

    /// Whether the bytes go to standard output (which may share a terminal with a
    /// progress bar).
    pub fn is_stdout(&self) -> bool {
        matches!(self.dest, Dest::Stdout(_))
    }

    /// Bytes written so far (what a summary reports as the output's size).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes bytes, naming the destination in the error.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        match &mut self.dest {
            Dest::Stdout(out) => {
                let mut lock = out.lock();
                lock.write_all(bytes)
                    .and_then(|()| lock.flush())
                    .context("writing to standard output")
            }
            Dest::File(file) => file
                .file
                .write_all(bytes)
                .with_context(|| format!("writing {}", file.target.display())),
            Dest::Special(file, path) => file
                .write_all(bytes)
                .with_context(|| format!("writing {}", path.display())),
            Dest::Writer(writer) => writer.write_all(bytes).context("writing the output"),
        }
    }

    /// What the output is, for error messages: the target's path or "standard output".
    pub fn describe(&self) -> String {
        match &self.dest {
            Dest::Stdout(_) => "standard output".into(),
            Dest::File(file) => file.target.display().to_string(),
            Dest::Special(_, path) => path.display().to_string(),
            Dest::Writer(_) => "the output".into(),
        }
    }

    /// (device, inode) of the file the bytes go into: the temporary file, or the
    /// regular file standard output is redirected to. `None` when standard output is
    /// a pipe, a terminal or anything else that is not a regular file.
    pub fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let meta = match &self.dest {
            Dest::Stdout(out) => File::from(out.as_fd().try_clone_to_owned()?).metadata()?,
            Dest::File(file) => file.file.metadata()?,
            Dest::Special(file, _) => file.metadata()?,
            Dest::Writer(_) => return Ok(None),
        };
        Ok(meta.is_file().then(|| (meta.dev(), meta.ino())))
    }

    /// Finishes the output: for a file, flush, sync and rename into place.
    pub fn commit(self) -> Result<()> {
        match self.dest {
            Dest::Stdout(out) => out.lock().flush().context("writing to standard output"),
            Dest::File(file) => file.commit(),
            // Nothing to rename, and devices may refuse fsync (/dev/null says EINVAL).
            Dest::Special(mut file, path) => file
                .flush()
                .with_context(|| format!("writing {}", path.display())),
            Dest::Writer(mut writer) => writer.flush().context("writing the output"),
        }
    }
}

/// Plain byte writes, for encoders that wrap the output; errors carry no context, so
/// callers add [`Output::describe`].
impl Write for Output {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = match &mut self.dest {
            Dest::Stdout(out) => out.write(bytes),
            Dest::File(file) => file.file.write(bytes),
            Dest::Special(file, _) => file.write(bytes),
            Dest::Writer(writer) => writer.write(bytes),
        }?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.dest {
            Dest::Stdout(out) => out.flush(),
            Dest::File(file) => file.file.flush(),
            Dest::Special(file, _) => file.flush(),
            Dest::Writer(writer) => writer.flush(),
        }
    }
}

/// Whether `path` names an existing node that is neither a regular file nor a
/// directory (followed through symbolic links): a device, FIFO or socket.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// A file that appears under its name only once complete.
pub struct AtomicFile {
    file: File,
    temp: Option<tempfile::TempPath>,
    target: PathBuf,
    cleanup: Arc<Cleanup>,
}

impl AtomicFile {
    /// Creates the temporary file beside `target` (same directory, so the final rename
    /// cannot cross file systems).
    pub fn create(target: &Path, cleanup: Arc<Cleanup>) -> Result<Self> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .with_context(|| format!("{}: not a file name", target.display()))?;
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        // Created 0666 less the umask, like any file a shell redirection makes (the
        // temporary file's usual 0600 would carry over through the rename).
        use std::os::unix::fs::PermissionsExt;
        let named = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o666))
            .prefix(&prefix)
            .suffix(".spate-tmp")
            .tempfile_in(dir)
            // Named as the user named it: the temporary name is ours.
            .with_context(|| format!("{}: cannot create", target.display()))?;
        let (file, temp) = named.into_parts();
        cleanup.register(&temp);
        Ok(AtomicFile {
            file,
            temp: Some(temp),
            target: target.to_path_buf(),
            cleanup,
        })
    }

    fn commit(mut self) -> Result<()> {
        let what = || format!("writing {}", self.target.display());
        self.file.flush().with_context(what)?;
        self.file.sync_all().with_context(what)?;
        let temp = self.temp.take().context("output already committed")?;
        let temp_path = temp.to_path_buf();
        let result = temp
            .persist(&self.target)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming the finished output to {}", self.target.display()));
        self.cleanup.unregister(&temp_path);
        result
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            self.cleanup.unregister(&temp);
            // TempPath deletes the file when dropped.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_output_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        let cleanup = Arc::new(Cleanup::default());
        let mut out = Output::open(Some(&target), &cleanup).unwrap();
        out.write_all(b"partial").unwrap();
        drop(out);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn committed_output_appears_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        let cleanup = Arc::new(Cleanup::default());
        let mut out = Output::open(Some(&target), &cleanup).unwrap();
        out.write_all(b"all of it").unwrap();
        assert!(!target.exists(), "nothing under the name before commit");
        out.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"all of it");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

/// The files a run writes, which its walk must never read or store (GNU tar's "file is
/// the archive; not dumped"): an archive or manifest under its temporary name, which
/// sorts early (`.x.tar.XXXXXX.spate-tmp`) and grows while the walk goes on, and under
/// its final name, where an earlier run's output lies, about to be replaced. Files are
/// known by device and inode, so another path to the same file (`dir/../dir/x.tar`, a
/// hard link, a followed symbolic link) is left out too, and by path as named.
#[derive(Debug, Clone, Default)]
pub struct OwnFiles {
    ids: HashMap<(u64, u64), &'static str>,
    paths: Vec<(PathBuf, &'static str)>,
}

impl OwnFiles {
    /// A final name (`None`: standard output, which has none), and the file now under
    /// it, if any.
    pub fn add_final(&mut self, path: Option<&Path>, why: &'static str) -> Result<()> {
        let Some(path) = path else { return Ok(()) };
        let path = &through_links(path);
        self.paths.push((absolute(path)?, why));
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            self.ids.insert((meta.dev(), meta.ino()), why);
        }
        Ok(())
    }

    /// The file an output is writing into: its temporary file, or whatever standard
    /// output is redirected to.
    pub fn add_open(&mut self, out: &Output, why: &'static str) -> Result<()> {
        let id = out
            .identity()
            .with_context(|| format!("examining {}", out.describe()))?;
        if let Some(id) = id {
            self.ids.insert(id, why);
        }
        Ok(())
    }

    /// Why the walked entry at `path` must not be packed, if it is one of ours.
    fn find(&self, path: &Path, meta: &std::fs::Metadata) -> Option<&'static str> {
        if let Some(why) = self.ids.get(&(meta.dev(), meta.ino())) {
            return Some(why);
        }
        if meta.is_dir() || self.paths.is_empty() {
            return None;
        }
        let path = absolute(path).ok()?;
        self.paths
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, why)| *why)
    }

    /// [`OwnFiles::find`] for an entry of a walk that has not `stat`ed it: the inode
    /// from the directory listing, or the file name, says when a `stat` is needed, so
    /// a run with no output file of its own (or a tree without it) costs nothing.
    pub fn find_walked(&self, entry: &walkdir::DirEntry) -> Option<&'static str> {
        use walkdir::DirEntryExt;
        let ino = entry.ino();
        let maybe = self.ids.keys().any(|&(_, i)| i == ino)
            || self
                .paths
                .iter()
                .any(|(p, _)| p.file_name() == Some(entry.file_name()));
        if !maybe {
            return None;
        }
        let meta = entry.metadata().ok()?;
        self.find(entry.path(), &meta)
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}
