//! The read stage: backends that turn an [`Entry`] into the file's bytes.
//!
//! A backend opens each file, reads it in pooled, page-aligned chunks and hands every
//! chunk, in file order, to a [`Sink`] made for that file by the job's [`SinkFactory`].
//! It knows nothing about hashing or tar. Chunks of [`OFFLOAD_THRESHOLD`] bytes or more
//! (and every chunk for a sink that [may wait](Sink::may_wait) for its consumer) are fed
//! to the sink off the I/O thread, so heavy CPU work or a wait never stalls reads.
//!
//! Two implementations, chosen once at start ([`select`]), each in a folder of its own
//! with both halves of the engine: whole-file reads ([`Backend`], for hash, check and
//! pack) and reads and writes at offsets ([`ops`], for bench):
//! - [`uring`]: tokio-uring, one runtime per thread, many files and chunks in flight.
//!   Every use of tokio-uring lives in that folder.
//! - [`threads`]: a pool of blocking `pread`/`pwrite` workers.

pub mod buffer;
pub mod confined;
pub mod limits;
pub mod mapped;
pub mod ops;
pub mod probe;
pub mod threads;
pub mod uring;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{ErrorKind, describe_io};
use crate::walk::{Entry, Identity};
use buffer::BufferPool;

/// Chunks at least this large are handed to the sink on a blocking thread.
pub const OFFLOAD_THRESHOLD: usize = 1 << 20;

/// Per-file consumer of bytes: one is made for each file by a [`SinkFactory`].
pub trait Sink: Send + 'static {
    /// What the sink produces for a file read to the end.
    type Output: Send + 'static;
    /// Receives the next chunk of the file, in order.
    fn update(&mut self, data: &[u8]);
    /// Called once after end-of-file with the number of bytes fed.
    fn finish(self, len: u64) -> Self::Output;
    /// True when `update` may wait for a consumer on another thread (pack's streamed
    /// members wait for the tar writer). The uring backend then never feeds the sink
    /// on its ring's thread, where a wait would stall every other file of that ring,
    /// among them perhaps the very file the consumer is waiting for.
    fn may_wait(&self) -> bool {
        false
    }
}

/// Makes a [`Sink`] for every file a backend reads.
pub trait SinkFactory: Send + Sync + 'static {
    /// What the job attaches to each file (the digests `check` expects, the archive
    /// member `pack` writes): it travels with the entry to the reader, where `make` sees
    /// it, and back with the file's result.
    type Tag: Send + 'static;
    type Sink: Sink;
    fn make(&self, entry: &Entry, tag: &Self::Tag) -> Self::Sink;
    /// Reading `entry` failed (its sink, if one was made, is already dropped). Called at
    /// once, before the result travels back: a tag holding something its sink would have
    /// taken (pack's channel to the tar writer, who waits on it) lets go of it here.
    fn unread(&self, _entry: &Entry, _tag: &Self::Tag) {}
}

/// Output type of the sinks a factory makes.
pub type SinkOutput<F> = <<F as SinkFactory>::Sink as Sink>::Output;

/// Why a file could not be read to the end. The text is in words (no "os error N");
/// [`ReadError::kind`] is the stable name for JSON.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// An operation on the file failed.
    #[error("{op}: {}", describe_io(.err))]
    Io { op: &'static str, err: io::Error },
    /// Size or modification time moved while the file was read: the bytes seen are not
    /// one consistent version of the file.
    #[error("changed while reading ({0})")]
    Changed(String),
    /// The path is no longer a regular file (replaced after the walk).
    #[error("no longer a regular file; skipped")]
    NotRegular,
}

impl ReadError {
    pub(crate) fn io(op: &'static str, err: io::Error) -> Self {
        ReadError::Io { op, err }
    }

    /// The stable kind of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReadError::Io { err, .. } => ErrorKind::of_io(err),
            ReadError::Changed(_) => ErrorKind::ChangedWhileReading,
            ReadError::NotRegular => ErrorKind::NotRegularFile,
        }
    }
}

/// What a reader reports for one file.
pub struct FileResult<O, T> {
    pub seq: u64,
    pub path: PathBuf,
    /// The job's tag, as it came with the entry.
    pub tag: T,
    pub result: Result<(O, u64), ReadError>,
}

/// Entries travel from the walker to the readers in small batches, each with its job's
/// tag, and results back in the same batches: one wake-up of a sleeping thread per batch
/// instead of per file (per-file wake-ups cost a fifth of the run on trees of small
/// files).
pub type Batch<T> = Vec<(Entry, T)>;

/// Where readers deliver the results of one batch; returns false when nobody listens any
/// more (the run is being torn down), which makes the reader stop.
pub type Report<O, T> = Arc<dyn Fn(Vec<FileResult<O, T>>) -> bool + Send + Sync>;

/// Which backend a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring where it works, else the thread pool (with a notice).
    Auto,
    /// io_uring only; fails when the kernel refuses it.
    Uring,
    /// Blocking `pread` workers.
    Threads,
}

/// The backend a run uses, after probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Uring,
    Threads,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Uring => "uring",
            BackendKind::Threads => "threads",
        }
    }
}

/// How to read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub backend: BackendKind,
    /// Rings (uring) or worker threads (threads).
    pub jobs: usize,
    /// Files in flight at once, over all rings or workers.
    pub queue_depth: usize,
    /// How far the uring backend may raise the files in flight while reads keep
    /// missing the page cache (taken as `queue_depth` when lower).
    pub max_queue_depth: usize,
    /// Size of each read (and each pooled buffer).
    pub buffer_size: usize,
    /// Chunks of one large file in flight at once (uring).
    pub readahead: usize,
    /// Files at least this large, when mostly in the page cache, are read through
    /// memory maps instead of buffers (`None`: never).
    pub mmap_threshold: Option<u64>,
}

/// Files at least this large are hashed through memory maps by default (`--no-mmap`
/// turns that off): BLAKE3 on two cores outruns the copy into buffers.
pub const MMAP_THRESHOLD: u64 = 8 << 20;

impl ReadOptions {
    /// Default read settings for hashing on this machine (see the README's measurements).
    /// Every job that reads files starts from them; the command line applies its
    /// overrides on top.
    pub fn defaults(backend: BackendKind) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ReadOptions {
            backend,
            jobs: match backend {
                BackendKind::Uring => cores,
                // Threads waiting on the device cost no CPU, and a cold tree of small
                // files wants many reads in flight: 16 threads read one 32% faster than 4
                // here (30,000 files, 2 cores), and no slower once cached.
                BackendKind::Threads => (cores * 2).max(16),
            },
            queue_depth: 32,
            max_queue_depth: 128,
            buffer_size: 1 << 20,
            readahead: 3,
            mmap_threshold: Some(MMAP_THRESHOLD),
        }
    }

    /// Whether a file of `size` bytes is read through memory maps.
    pub fn maps(&self, size: u64) -> bool {
        self.mmap_threshold.is_some_and(|t| size >= t)
    }
}

impl ReadOptions {
    /// Buffers the pool needs: one per file in flight plus read-ahead room per job.
    /// Saturates instead of overflowing, so settings too large to hold are refused by
    /// the caller's bound rather than wrapping around to a small pool.
    pub fn pool_buffers(&self) -> usize {
        let per_job = self.readahead.saturating_sub(1).max(1).saturating_mul(2);
        self.queue_depth
            .saturating_add(self.jobs.saturating_mul(per_job))
    }
}

/// Resolves `--io` to a backend. `auto` probes io_uring once and falls back to threads,
/// returning the notice to show; `uring` fails with the probe's reason.
pub fn select(mode: IoMode) -> anyhow::Result<(BackendKind, Option<String>)> {
    match mode {
        IoMode::Threads => Ok((BackendKind::Threads, None)),
        IoMode::Uring => match probe::probe() {
            Ok(()) => Ok((BackendKind::Uring, None)),
            Err(why) => anyhow::bail!("--io uring: io_uring is not available: {why}"),
        },
        IoMode::Auto => match probe::probe() {
            Ok(()) => Ok((BackendKind::Uring, None)),
            Err(why) => Ok((
                BackendKind::Threads,
                Some(format!(
                    "io_uring unavailable ({why}); using the thread-pool backend"
                )),
            )),
        },
    }
}

/// What every reader thread or task shares: settings, buffers, the queue of work, the
/// job's sink factory and where results go. Cloning shares the same pool and channels.
pub struct Readers<F: SinkFactory> {
    pub options: ReadOptions,
    pub pool: BufferPool,
    pub entries: async_channel::Receiver<Batch<F::Tag>>,
    pub factory: Arc<F>,
    pub results: Report<SinkOutput<F>, F::Tag>,
}

impl<F: SinkFactory> Clone for Readers<F> {
    fn clone(&self) -> Self {
        Readers {
            options: self.options.clone(),
            pool: self.pool.clone(),
            entries: self.entries.clone(),
            factory: Arc::clone(&self.factory),
            results: Arc::clone(&self.results),
        }
    }
}

/// A reader pool: the one interface every job reads through, whichever engine is
/// underneath (like fio's ioengine table). A backend knows nothing about hashing or tar.
pub trait Backend {
    /// Starts the reader threads. They take batches from `readers.entries` until it
    /// closes, read each file into buffers from the pool, feed a sink made by the
    /// factory, send one [`FileResult`] per entry to `readers.results`, and exit; join
    /// the returned handles.
    fn start<F: SinkFactory>(&self, readers: Readers<F>) -> Vec<std::thread::JoinHandle<()>>;
}

/// Starts the backend chosen in `options` with a buffer pool sized from them.
pub fn start<F: SinkFactory>(
    options: &ReadOptions,
    entries: async_channel::Receiver<Batch<F::Tag>>,
    factory: Arc<F>,
    results: Report<SinkOutput<F>, F::Tag>,
) -> Vec<std::thread::JoinHandle<()>> {
    let readers = Readers {
        options: options.clone(),
        pool: BufferPool::new(options.pool_buffers(), options.buffer_size),
        entries,
        factory,
        results,
    };
    match options.backend {
        BackendKind::Uring => uring::Uring.start(readers),
        BackendKind::Threads => threads::Threads.start(readers),
    }
}

/// Opens the file an entry names, for reading: in one confined lookup beneath its
/// directory when the job asked for one (the descriptor read is the one that lookup
/// produced, so a name swapped for a link out of the tree is refused, never followed),
/// else by its path.
pub(crate) fn open_entry(entry: &Entry) -> io::Result<std::fs::File> {
    match &entry.beneath {
        Some(beneath) => confined::open_for_reading(beneath),
        None => threads::open_nonblocking(&entry.path),
    }
}

/// Fills in the size and mtime of an entry the walk listed without them, from the
/// opened file (which must still be a regular file).
pub(crate) fn complete_entry(
    entry: &mut Entry,
    fd: std::os::unix::io::RawFd,
) -> Result<(), ReadError> {
    if entry.stat_known {
        return Ok(());
    }
    let (size, mtime, regular, identity) = fstat(fd).map_err(|e| ReadError::io("stat", e))?;
    if !regular {
        return Err(ReadError::NotRegular);
    }
    (entry.size, entry.mtime, entry.identity) = (size, mtime, identity);
    entry.stat_known = true;
    Ok(())
}

/// Checks an open file after end-of-file: still a regular file, and its size and
/// modification time as the walk saw them (or as `complete_entry` took them from the open
/// file), with every byte read.
pub(crate) fn check_after_reading(
    entry: &Entry,
    fd: std::os::unix::io::RawFd,
    read: u64,
) -> Result<(), ReadError> {
    let (size, mtime, regular, _) = fstat(fd).map_err(|e| ReadError::io("stat", e))?;
    if !regular {
        return Err(ReadError::NotRegular);
    }
    verify_unchanged(entry, read, size, mtime)
}

/// Compares a file after end-of-file with what the walk saw: a different size or
/// modification time means the bytes read are not one consistent version.
fn verify_unchanged(
    entry: &Entry,
    read: u64,
    now_size: u64,
    now_mtime: (i64, i64),
) -> Result<(), ReadError> {
    if read != now_size {
        return Err(ReadError::Changed(format!(
            "read {read} bytes, size is now {now_size}"
        )));
    }
    if now_size != entry.size {
        return Err(ReadError::Changed(format!(
            "size was {} when listed, {now_size} after reading",
            entry.size
        )));
    }
    if now_mtime != entry.mtime {
        return Err(ReadError::Changed("modified during the run".into()));
    }
    Ok(())
}

/// Size, modification time, "is a regular file" and the rest of the identity of an
/// open file.
fn fstat(fd: std::os::unix::io::RawFd) -> io::Result<(u64, (i64, i64), bool, Identity)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `struct stat` on success; we read it only then.
    let st = unsafe {
        if libc::fstat(fd, st.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        st.assume_init()
    };
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    let identity = Identity {
        ctime: (st.st_ctime, st.st_ctime_nsec),
        inode: st.st_ino,
        dev: st.st_dev,
    };
    Ok((
        st.st_size as u64,
        (st.st_mtime, st.st_mtime_nsec),
        regular,
        identity,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts bytes: enough to see what a backend fed.
    struct Count(u64);

    impl Sink for Count {
        type Output = u64;
        fn update(&mut self, data: &[u8]) {
            self.0 += data.len() as u64;
        }
        fn finish(self, _len: u64) -> u64 {
            self.0
        }
    }

    struct CountFactory;

    impl SinkFactory for CountFactory {
        type Tag = ();
        type Sink = Count;
        fn make(&self, _entry: &Entry, _tag: &()) -> Count {
            Count(0)
        }
    }

    /// Reads one entry on `backend` with small buffers, so 200 KiB is several chunks.
    fn read_one(backend: BackendKind, entry: Entry) -> Result<(u64, u64), ReadError> {
        read_with_buffers(backend, entry, 64 << 10)
    }

    fn read_with_buffers(
        backend: BackendKind,
        entry: Entry,
        buffer_size: usize,
    ) -> Result<(u64, u64), ReadError> {
        let options = ReadOptions {
            backend,
            jobs: 1,
            queue_depth: 4,
            max_queue_depth: 16,
            buffer_size,
            readahead: 2,
            mmap_threshold: None,
        };
        let (tx, rx) = async_channel::bounded(4);
        let (results_tx, results_rx) = std::sync::mpsc::channel();
        let report: Report<u64, ()> = Arc::new(move |r| results_tx.send(r).is_ok());
        let handles = start(&options, rx, Arc::new(CountFactory), report);
        tx.send_blocking(vec![(entry, ())]).expect("readers listen");
        drop(tx);
        let mut results = results_rx.recv().expect("one batch of results");
        for handle in handles {
            handle.join().expect("reader thread");
        }
        results.remove(0).result
    }

    /// An entry as the walk would have made it for `path`.
    fn walked(path: &std::path::Path) -> Entry {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).unwrap();
        Entry {
            seq: 0,
            path: path.to_path_buf(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            stat_known: true,
            identity: Identity::default(),
            beneath: None,
        }
    }

    const BACKENDS: [BackendKind; 2] = [BackendKind::Uring, BackendKind::Threads];

    #[test]
    fn a_file_deleted_after_the_walk_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        std::fs::write(&path, b"x").unwrap();
        let entry = walked(&path);
        std::fs::remove_file(&path).unwrap();
        for backend in BACKENDS {
            match read_one(backend, entry.clone()) {
                Err(ReadError::Io { op, err }) => {
                    assert_eq!(op, "opening", "{backend:?}");
                    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{backend:?}");
                }
                other => panic!("{backend:?}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn a_file_that_changed_since_the_walk_is_reported_changed() {
        let dir = tempfile::tempdir().unwrap();
        for len in [100usize, 200 << 10] {
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, vec![1u8; len]).unwrap();
            let entry = walked(&path);
            for backend in BACKENDS {
                assert_eq!(
                    read_one(backend, entry.clone()).ok(),
                    Some((len as u64, len as u64))
                );
                // It grew, it shrank, it was rewritten in place: never a digest.
                let grew = Entry {
                    size: entry.size - 10,
                    ..entry.clone()
                };
                let shrank = Entry {
                    size: entry.size + 10,
                    ..entry.clone()
                };
                let touched = Entry {
                    mtime: (entry.mtime.0 - 1, entry.mtime.1),
                    ..entry.clone()
                };
                for (what, changed) in [("grew", grew), ("shrank", shrank), ("rewritten", touched)]
                {
                    match read_one(backend, changed) {
                        Err(ReadError::Changed(_)) => {}
                        other => panic!("{backend:?} {len} {what}: {:?}", other.map(|_| ())),
                    }
                }
            }
        }
    }

    #[test]
    fn a_directory_swapped_in_for_a_file_is_not_read_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("was-a-file");
        std::fs::write(&path, b"abc").unwrap();
        let entry = walked(&path);
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        for backend in BACKENDS {
            assert!(read_one(backend, entry.clone()).is_err(), "{backend:?}");
        }
    }

    #[test]
    fn an_entry_listed_without_stat_takes_size_from_the_opened_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![5u8; 200 << 10]).unwrap();
        let sub = dir.path().join("now-a-dir");
        std::fs::create_dir(&sub).unwrap();
        let unlisted = |path: &std::path::Path| Entry {
            seq: 0,
            path: path.to_path_buf(),
            size: 0,
            mtime: (0, 0),
            stat_known: false,
            identity: Identity::default(),
            beneath: None,
        };
        for backend in BACKENDS {
            let (fed, len) = read_one(backend, unlisted(&file)).unwrap();
            assert_eq!((fed, len), (200 << 10, 200 << 10), "{backend:?}");
            let err = read_one(backend, unlisted(&sub)).unwrap_err();
            assert!(matches!(err, ReadError::NotRegular), "{backend:?}: {err}");
        }
    }

    #[test]
    fn files_around_the_small_buffer_size_are_read_whole_and_growth_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0usize,
            1,
            (64 << 10) - 1,
            64 << 10,
            (64 << 10) + 1,
            300 << 10,
        ] {
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, vec![9u8; len]).unwrap();
            let entry = walked(&path);
            for backend in BACKENDS {
                let read = read_with_buffers(backend, entry.clone(), 1 << 20);
                assert_eq!(
                    read.ok(),
                    Some((len as u64, len as u64)),
                    "{backend:?} {len}"
                );
                // Listed smaller than it is: the read must not stop at the listed size.
                if len > 0 {
                    let grew = Entry {
                        size: (len as u64).min(60 << 10) - 1,
                        ..entry.clone()
                    };
                    match read_with_buffers(backend, grew, 1 << 20) {
                        Err(ReadError::Changed(_)) => {}
                        other => panic!("{backend:?} {len}: {:?}", other.map(|_| ())),
                    }
                }
            }
        }
    }
}
