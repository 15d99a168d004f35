//! The uring backend's file reads: whole files, in order, for hash, check and pack.
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

use tokio_uring::fs::{File, OpenOptions};

use crate::read::buffer::{BufferPool, PooledBuf};
use crate::read::mapped;
use crate::read::{
    Backend, FileResult, OFFLOAD_THRESHOLD, ReadError, ReadOptions, Readers, Sink, SinkFactory,
    SinkOutput,
};
use crate::walk::Entry;

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
            crate::report::text::say_plainly(&format_args!(
                "setting up an io_uring ring failed ({}); this reader uses pread",
                crate::error::describe_io(&err)
            ));
            crate::read::threads::files::serve(&readers);
            return;
        }
    };
    let gate = Rc::new(Gate::new(base, workers));
    let small = BufferPool::new(workers, SMALL_BUFFER.min(options.buffer_size));
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            {
                let Readers {
                    options,
                    pool,
                    entries,
                    factory,
                    results,
                } = readers.clone();
                let (gate, small) = (Rc::clone(&gate), small.clone());
                let pools = Pools { small, pool };
                tasks.spawn_local(async move {
                    loop {
                        gate.enter().await;
                        let Ok(batch) = entries.recv().await else {
                            gate.leave();
                            break;
                        };
                        let mut done = Vec::with_capacity(batch.len());
                        for (mut entry, tag) in batch {
                            let result = read_file(
                                &mut entry,
                                &tag,
                                &options,
                                &pools,
                                &gate,
                                factory.as_ref(),
                            )
                            .await;
                            if result.is_err() {
                                factory.unread(&entry, &tag);
                            }
                            done.push(FileResult {
                                seq: entry.seq,
                                path: entry.path,
                                tag,
                                result,
                            });
                        }
                        gate.leave();
                        if !results(done) {
                            break;
                        }
                    }
                });
            }
        }
        // A worker that panicked takes the ring thread down with it at once, so the
        // pipeline's join sees the panic instead of waiting for results that never come.
        while let Some(done) = tasks.join_next().await {
            if let Err(err) = done
                && err.is_panic()
            {
                std::panic::resume_unwind(err.into_panic());
            }
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
    tag: &F::Tag,
    options: &ReadOptions,
    pools: &Pools,
    gate: &Gate,
    factory: &F,
) -> Result<(SinkOutput<F>, u64), ReadError> {
    let file = match entry.beneath {
        // tokio-uring has no confined open (openat2 with RESOLVE_BENEATH): it is one
        // system call on this thread, and the ring reads the descriptor it produced.
        Some(_) => crate::read::open_entry(entry).map(File::from_std),
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
    crate::read::complete_entry(entry, file.as_raw_fd())?;
    let entry = &*entry;
    let mut sink = factory.make(entry, tag);
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
            if sink.may_wait() {
                sink = offload(sink, buf).await?;
            } else {
                sink.update(&buf);
            }
            if n == cap {
                return Err(grew(entry));
            }
            (sink, n)
        } else {
            read_chunks(&file, entry, pool, sink, options.readahead.max(1)).await?
        };

    // A plain fstat, not io_uring's statx: the kernel always hands statx to an io-wq
    // worker thread, and that round trip costs more than the syscall it replaces.
    crate::read::check_after_reading(entry, file.as_raw_fd(), len)?;
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

/// Feeds one chunk to the sink: inline when small, on a blocking thread when large (or
/// when the sink may wait) so the ring keeps submitting reads meanwhile.
async fn feed<S: Sink>(mut sink: S, buf: PooledBuf) -> Result<S, ReadError> {
    if buf.len() < OFFLOAD_THRESHOLD && !sink.may_wait() {
        sink.update(&buf);
        return Ok(sink);
    }
    offload(sink, buf).await
}

/// Feeds one chunk to the sink on a blocking thread (the sink travels there and back).
async fn offload<S: Sink>(mut sink: S, buf: PooledBuf) -> Result<S, ReadError> {
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
