//! The io_uring backend, on tokio-uring. Every use of tokio-uring in spate is in this
//! file, so the backend can be swapped (compio, raw `io-uring`) without touching a stage.
//!
//! Thread-per-core: each reader thread runs its own tokio-uring runtime with
//! `queue_depth / jobs` worker tasks, all pulling entries from the shared bounded walk
//! channel. Operations a runtime's tasks submit between two waits go to the kernel in
//! one `io_uring_enter`, which is where io_uring saves syscalls on small files.
//!
//! Small files (one chunk) are read with a single awaited read and hashed inline on the
//! ring's thread: handing each to a blocking thread halved small-file throughput in the
//! prototype. Large files keep `readahead` chunk reads in flight while the previous chunk
//! is fed to the sink on a blocking thread.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::rc::Rc;
use std::thread::JoinHandle;

use tokio_uring::buf::{IoBuf, IoBufMut};
use tokio_uring::fs::{File, OpenOptions};

use super::buffer::{BufferPool, PooledBuf};
use super::mapped;
use super::{
    Backend, FileResult, OFFLOAD_THRESHOLD, ReadError, ReadOptions, Readers, Sink, SinkFactory,
    SinkOutput,
};
use crate::walk::Entry;

// SAFETY: the pointer stays valid and fixed while the buffer is owned by an operation
// (the allocation never moves), and `bytes_total` is the allocation's size.
unsafe impl IoBuf for PooledBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.inner().as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.inner().len()
    }
    fn bytes_total(&self) -> usize {
        self.inner().capacity()
    }
}

// SAFETY: the kernel writes at most `bytes_total` bytes at `stable_mut_ptr`, and
// tokio-uring calls `set_init` with the count it reports written.
unsafe impl IoBufMut for PooledBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.inner_mut().as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        let inner = self.inner_mut();
        if pos > inner.len() {
            // SAFETY: forwarded from the caller's contract.
            unsafe { inner.set_len(pos) };
        }
    }
}

/// The uring backend: tokio-uring runtimes, one per job thread.
pub struct Uring;

impl Backend for Uring {
    fn start<F: SinkFactory>(&self, readers: Readers<F>) -> Vec<JoinHandle<()>> {
        let jobs = readers.options.jobs.max(1);
        let base = readers.options.queue_depth.div_ceil(jobs).max(1);
        let max = readers.options.max_queue_depth.div_ceil(jobs).max(base);
        (0..jobs)
            .map(|i| {
                let readers = readers.clone();
                std::thread::Builder::new()
                    .name(format!("spate-ring-{i}"))
                    .spawn(move || run_ring(readers, base, max))
                    .expect("spawning a ring thread")
            })
            .collect()
    }
}

/// Most bytes a file may have to be read into a small buffer (below the pool's size):
/// the files that crowd a cold tree, many of them in flight at once, cost this much
/// memory each instead of a whole read buffer.
const SMALL_BUFFER: usize = 64 << 10;

fn run_ring<F: SinkFactory>(readers: Readers<F>, base: usize, workers: usize) {
    let options = &readers.options;
    let ring_size = (workers * (options.readahead + 2))
        .next_power_of_two()
        .clamp(64, 4096) as u32;
    let runtime = match tokio_uring::Runtime::new(tokio_uring::builder().entries(ring_size)) {
        Ok(rt) => rt,
        Err(err) => {
            // The start-up probe passed, so this is a late refusal (e.g. out of locked
            // memory). Serve this thread's share with blocking reads instead of failing.
            eprintln!("spate: setting up an io_uring ring failed ({err}); this reader uses pread");
            super::threads::serve(&readers);
            return;
        }
    };
    let gate = Rc::new(Gate::new(base, workers));
    let small = BufferPool::new(workers, SMALL_BUFFER.min(options.buffer_size));
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let Readers {
                    options,
                    pool,
                    entries,
                    factory,
                    results,
                } = readers.clone();
                let (gate, small) = (Rc::clone(&gate), small.clone());
                let pools = Pools { small, pool };
                tokio_uring::spawn(async move {
                    loop {
                        gate.enter().await;
                        let Ok(batch) = entries.recv().await else {
                            gate.leave();
                            break;
                        };
                        let mut done = Vec::with_capacity(batch.len());
                        for mut entry in batch {
                            let result =
                                read_file(&mut entry, &options, &pools, &gate, factory.as_ref())
                                    .await;
                            done.push(FileResult {
                                seq: entry.seq,
                                path: entry.path,
                                result,
                            });
                        }
                        gate.leave();
                        if !results(done) {
                            break;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// Lets a ring's workers take batches only while fewer than `limit` of them are busy.
///
/// Files already in the page cache are best served by few workers: with four times as
/// many, a tree of 4 KiB files hashed 18% slower. Files that must come from the device
/// want many reads in flight: four times as many made the same tree 30% faster cold,
/// and /usr/share 18%. So the limit starts at the ring's share of `--queue-depth`,
/// rises by one for every read that misses the cache, up to the ring's share of the
/// maximum, and falls back by one for every [`HITS_PER_STEP`] reads that hit it.
struct Gate {
    busy: Cell<usize>,
    limit: Cell<usize>,
    hits: Cell<usize>,
    base: usize,
    max: usize,
    freed: tokio::sync::Notify,
}

/// Reads served from the page cache that lower a [`Gate`]'s limit by one.
const HITS_PER_STEP: usize = 8;

impl Gate {
    fn new(base: usize, max: usize) -> Self {
        Gate {
            busy: Cell::new(0),
            limit: Cell::new(base),
            hits: Cell::new(0),
            base,
            max,
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Waits until this worker may take work. (All workers of a ring share its one
    /// thread, so nothing runs between the check and the wait.)
    async fn enter(&self) {
        while self.busy.get() >= self.limit.get() {
            self.freed.notified().await;
        }
        self.busy.set(self.busy.get() + 1);
    }

    fn leave(&self) {
        self.busy.set(self.busy.get() - 1);
        self.freed.notify_one();
    }

    /// Records whether a read found its file in the page cache.
    fn saw(&self, cached: bool) {
        if !cached {
            self.hits.set(0);
            if self.limit.get() < self.max {
                self.limit.set(self.limit.get() + 1);
                self.freed.notify_one();
            }
            return;
        }
        self.hits.set(self.hits.get() + 1);
        if self.hits.get() >= HITS_PER_STEP && self.limit.get() > self.base {
            self.hits.set(0);
            self.limit.set(self.limit.get() - 1);
        }
    }
}

/// The buffers a ring's workers read into.
struct Pools {
    /// Buffers of [`SMALL_BUFFER`] bytes for small files, one per worker of the ring.
    small: BufferPool,
    /// The run's read buffers, shared by every ring.
    pool: BufferPool,
}

async fn read_file<F: SinkFactory>(
    entry: &mut Entry,
    options: &ReadOptions,
    pools: &Pools,
    gate: &Gate,
    factory: &F,
) -> Result<(SinkOutput<F>, u64), ReadError> {
    let file = match entry.beneath {
        // tokio-uring has no confined open (openat2 with RESOLVE_BENEATH): it is one
        // system call on this thread, and the ring reads the descriptor it produced.
        Some(_) => super::open_entry(entry).map(File::from_std),
        None => {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(&entry.path)
                .await
        }
    }
    .map_err(|e| ReadError::io("opening", e))?;
    let file = Rc::new(file);
    super::complete_entry(entry, file.as_raw_fd())?;
    let entry = &*entry;
    let mut sink = factory.make(entry);
    let pool = if entry.size < pools.small.buffer_size() as u64 {
        &pools.small
    } else {
        &pools.pool
    };
    let cap = pool.buffer_size() as u64;

    let (sink, len) =
        if options.maps(entry.size) && mapped::mostly_cached(file.as_raw_fd(), entry.size) {
            // Large file: mapped windows, hashed on a blocking thread. The raw descriptor
            // stays valid there because `file` lives until that thread is done.
            let (fd, size) = (file.as_raw_fd(), entry.size);
            let (sink, len) = tokio::task::spawn_blocking(move || {
                let len = mapped::feed_mapped(fd, size, &mut sink);
                (sink, len)
            })
            .await
            .map_err(|e| ReadError::io("hashing", io::Error::other(e)))?;
            (sink, len?)
        } else if entry.size < cap {
            // One chunk expected, fed inline. A file already in the page cache is read
            // right here without waiting (RWF_NOWAIT), so its bytes are hashed while
            // still in this core's cache; otherwise a single awaited read. (A batch of
            // ring reads copies every file of the batch before any is hashed: measured
            // 5-25% slower than a thread pool on cached small files, depending on how
            // busy the machine's caches were.)
            let mut buf = pool.get().await;
            let cached = read_if_cached(file.as_raw_fd(), &mut buf, entry.size);
            gate.saw(cached.is_some());
            let (res, buf) = match cached {
                Some(n) => (Ok(n), buf),
                None => read_at(Rc::clone(&file), buf, 0).await,
            };
            let n = res.map_err(|e| ReadError::io("reading", e))? as u64;
            sink.update(&buf);
            if n == cap {
                return Err(grew(entry));
            }
            (sink, n)
        } else {
            read_chunks(&file, entry, pool, sink, options.readahead.max(1)).await?
        };

    // A plain fstat, not io_uring's statx: the kernel always hands statx to an io-wq
    // worker thread, and that round trip costs more than the syscall it replaces.
    super::check_after_reading(entry, file.as_raw_fd(), len)?;
    Ok((sink.finish(len), len))
}

fn grew(entry: &Entry) -> ReadError {
    ReadError::Changed(format!("grew past its listed size of {}", entry.size))
}

/// Reads a multi-chunk file with up to `readahead` reads in flight, feeding each chunk to
/// the sink in order. Returns the number of bytes read.
async fn read_chunks<S: Sink>(
    file: &Rc<File>,
    entry: &Entry,
    pool: &BufferPool,
    mut sink: S,
    readahead: usize,
) -> Result<(S, u64), ReadError> {
    let cap = pool.buffer_size() as u64;
    let mut inflight = VecDeque::new();
    let mut next = 0u64;
    let mut len = 0u64;
    loop {
        while inflight.len() < readahead && (inflight.is_empty() || next < entry.size) {
            let buf = if inflight.is_empty() {
                pool.get().await
            } else {
                match pool.try_get() {
                    Some(buf) => buf,
                    None => break,
                }
            };
            inflight.push_back(tokio_uring::spawn(read_at(Rc::clone(file), buf, next)));
            next += cap;
        }
        let Some(read) = inflight.pop_front() else {
            break;
        };
        let (res, buf) = read
            .await
            .map_err(|e| ReadError::io("reading", io::Error::other(e)))?;
        let n = res.map_err(|e| ReadError::io("reading", e))? as u64;
        if n == 0 {
            break;
        }
        len += n;
        sink = feed(sink, buf).await?;
        if n < cap {
            break;
        }
        if len > entry.size {
            return Err(grew(entry));
        }
    }
    Ok((sink, len))
}

/// Feeds one chunk to the sink: inline when small, on a blocking thread when large so the
/// ring keeps submitting reads meanwhile (the sink travels there and back).
async fn feed<S: Sink>(mut sink: S, buf: PooledBuf) -> Result<S, ReadError> {
    if buf.len() < OFFLOAD_THRESHOLD {
        sink.update(&buf);
        return Ok(sink);
    }
    tokio::task::spawn_blocking(move || {
        sink.update(&buf);
        sink
    })
    .await
    .map_err(|e| ReadError::io("hashing", io::Error::other(e)))
}

/// Reads the start of the file into `buf` if every byte up to `size` is in the page
/// cache, without blocking; `None` when any of it would have to come from the device
/// (or the kernel cannot tell), leaving the read to the ring.
fn read_if_cached(fd: std::os::unix::io::RawFd, buf: &mut PooledBuf, size: u64) -> Option<usize> {
    let inner = buf.inner_mut();
    inner.clear();
    let iov = libc::iovec {
        iov_base: inner.as_mut_ptr().cast(),
        iov_len: inner.capacity(),
    };
    // SAFETY: one iovec over the buffer's own `capacity()` writable bytes.
    let n = unsafe { libc::preadv2(fd, &iov, 1, 0, libc::RWF_NOWAIT) };
    // A short read may mean the rest is not cached: only a read reaching the listed
    // size counts (a longer one means the file grew, which the caller notices).
    let n = usize::try_from(n).ok().filter(|&n| n as u64 >= size)?;
    // SAFETY: the kernel wrote `n <= capacity()` bytes.
    unsafe { inner.set_len(n) };
    Some(n)
}

/// One read of a whole buffer at `offset`.
async fn read_at(
    file: Rc<File>,
    mut buf: PooledBuf,
    offset: u64,
) -> (io::Result<usize>, PooledBuf) {
    buf.inner_mut().clear();
    file.read_at(buf, offset).await
}

#[cfg(test)]
mod gate_tests {
    use super::{Gate, HITS_PER_STEP};

    /// Whether `enter` completes without waiting.
    fn enters_now(gate: &Gate) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::select! {
                biased;
                _ = gate.enter() => true,
                _ = std::future::ready(()) => false,
            }
        })
    }

    #[test]
    fn the_limit_rises_on_misses_and_falls_back_on_hits() {
        let gate = Gate::new(2, 4);
        assert!(enters_now(&gate) && enters_now(&gate));
        assert!(!enters_now(&gate), "a third worker waits at the base limit");
        for _ in 0..10 {
            gate.saw(false);
        }
        assert_eq!(
            gate.limit.get(),
            4,
            "misses raise it to the maximum, no further"
        );
        assert!(enters_now(&gate) && enters_now(&gate));
        assert!(!enters_now(&gate));
        for _ in 0..HITS_PER_STEP {
            gate.saw(true);
        }
        assert_eq!(gate.limit.get(), 3);
        for _ in 0..10 * HITS_PER_STEP {
            gate.saw(true);
        }
        assert_eq!(gate.limit.get(), 2, "hits lower it to the base, no further");
        for _ in 0..4 {
            gate.leave();
        }
        assert!(enters_now(&gate));
    }
}

// ---------------------------------------------------------------------------------------
// The bench engine: `spate bench --io uring`. It lives here because this is the one file
// that uses tokio-uring; what to read or write where, the timing and the histogram are
// `crate::bench`'s, which hands it an `EngineJob`.
// ---------------------------------------------------------------------------------------

/// Runs `spate bench` jobs on tokio-uring: one ring per worker, `iodepth` tasks per ring,
/// each owning one buffer and keeping one operation in flight.
pub mod bench_engine {
    use std::cell::RefCell;
    use std::io;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    use tokio_uring::buf::{BoundedBuf, IoBuf, IoBufMut};
    use tokio_uring::fs::File;

    use crate::bench::data::stamp;
    use crate::bench::job::{Dir, EngineJob, OpSource, Recorder, Worker};
    use crate::read::buffer::AlignedBuf;

    // SAFETY: the allocation never moves while an operation owns the buffer, and
    // `bytes_total` is its size.
    unsafe impl IoBuf for AlignedBuf {
        fn stable_ptr(&self) -> *const u8 {
            self.as_ptr()
        }
        fn bytes_init(&self) -> usize {
            self.len()
        }
        fn bytes_total(&self) -> usize {
            self.capacity()
        }
    }

    // SAFETY: the kernel writes at most `bytes_total` bytes at `stable_mut_ptr`, and
    // tokio-uring calls `set_init` with the count it reports written.
    unsafe impl IoBufMut for AlignedBuf {
        fn stable_mut_ptr(&mut self) -> *mut u8 {
            self.as_mut_ptr()
        }
        unsafe fn set_init(&mut self, pos: usize) {
            if pos > self.len() {
                // SAFETY: forwarded from the caller's contract.
                unsafe { self.set_len(pos) };
            }
        }
    }

    /// Runs the job's operations on `file`; returns one recorder per worker, or why a
    /// ring could not be set up.
    pub fn run(file: &std::fs::File, job: EngineJob) -> io::Result<Vec<Recorder>> {
        let EngineJob { workers, progress } = job;
        let files = workers
            .iter()
            .map(|_| file.try_clone())
            .collect::<io::Result<Vec<_>>>()?;
        std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .into_iter()
                .zip(files)
                .map(|(worker, file)| {
                    let progress = Arc::clone(&progress);
                    scope.spawn(move || run_ring(file, worker, progress))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("a ring thread panicked")))
                })
                .collect()
        })
    }

    fn run_ring(
        file: std::fs::File,
        worker: Worker,
        progress: Arc<AtomicU64>,
    ) -> io::Result<Recorder> {
        let Worker { source, buffers } = worker;
        let runtime = bench_ring(buffers.len())?;
        runtime.block_on(async move {
            let file = Rc::new(File::from_std(file));
            let source = Rc::new(RefCell::new(source));
            let recorder = Rc::new(RefCell::new(Recorder::new(progress)));
            let slots: Vec<_> = buffers
                .into_iter()
                .map(|buf| {
                    tokio_uring::spawn(slot(
                        Rc::clone(&file),
                        Rc::clone(&source),
                        Rc::clone(&recorder),
                        buf,
                    ))
                })
                .collect();
            for slot in slots {
                slot.await.map_err(io::Error::other)?;
            }
            Rc::try_unwrap(recorder)
                .map(RefCell::into_inner)
                .map_err(|_| io::Error::other("a slot outlived its ring"))
        })
    }

    /// Submission entries per ring. tokio-uring hands its queued entries to the kernel
    /// when it parks or when the submission queue is full; the kernel plugs a batch of
    /// more than two and the device sees none of it until the whole batch is issued. A
    /// short queue makes the ring submit every few entries while the rest are prepared,
    /// which keeps the device as busy as fio does submitting one by one
    /// (`iodepth_batch_submit=1`); measured 10-15% more 4 KiB IOPS at depth 32 than
    /// one batch of 32.
    const SUBMIT_BATCH: u32 = 4;

    /// A runtime whose completion queue holds every operation in flight, with
    /// COOP_TASKRUN as fio sets it (completions wait for our next syscall instead of
    /// interrupting us); without it on kernels older than 5.19.
    fn bench_ring(in_flight: usize) -> io::Result<tokio_uring::Runtime> {
        let cq = (in_flight as u32 * 2).next_power_of_two().clamp(8, 8192);
        let runtime = |coop: bool| {
            let mut ring = tokio_uring::uring_builder();
            ring.setup_cqsize(cq);
            if coop {
                ring.setup_coop_taskrun();
            }
            tokio_uring::Runtime::new(
                tokio_uring::builder()
                    .entries(SUBMIT_BATCH)
                    .uring_builder(&ring),
            )
        };
        runtime(true).or_else(|_| runtime(false))
    }

    /// One in-flight operation at a time, over and over, until the source runs dry.
    async fn slot(
        file: Rc<File>,
        source: Rc<RefCell<OpSource>>,
        recorder: Rc<RefCell<Recorder>>,
        mut buf: AlignedBuf,
    ) {
        let mut counter = 0u64;
        loop {
            let Some(op) = source.borrow_mut().next_op() else {
                break;
            };
            if op.dir == Dir::Write {
                counter += 1;
                stamp(&mut buf, op.len, op.offset, counter);
            }
            let started = Instant::now();
            let (result, slice) = match op.dir {
                Dir::Read => file.read_at(buf.slice(..op.len), op.offset).await,
                Dir::Write => file.write_at(buf.slice(..op.len), op.offset).submit().await,
            };
            buf = slice.into_inner();
            recorder.borrow_mut().done(op, started, result);
        }
    }
}
