//! Compressing a stream's chunks on a pool of threads and writing them in order: the
//! engine under pack's parallel gzip and bzip2, and under the indexed `.tar.zst`'s
//! frames.
//!
//! Each chunk goes to a pool thread with the tail of the chunk before it (for formats
//! that prime the next chunk with history); the results are written in chunk order,
//! and each input chunk goes back to its sender for reuse. At most two chunks per
//! thread are in flight, so memory stays at a few chunks whatever the stream's length.
//!
//! [`Ordered`] is pushed one chunk at a time, by a writer that decides where chunks
//! end (the indexed writer cuts at tar member boundaries); [`in_order`] drains a
//! channel of fixed-size chunks through it.
//!
//! The pool's threads block on a channel between jobs. (A rayon pool did the same
//! work, but its idle threads spin and call `sched_yield` before they sleep: about
//! 1,400 calls a run packing a cargo registry, taken from the walk and the readers on
//! a machine whose cores the compression already fills.)

use std::collections::VecDeque;
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

/// What a pool thread hands back for one chunk.
struct Done<T> {
    compressed: io::Result<(Vec<u8>, T)>,
    /// The input, returned for reuse.
    chunk: Vec<u8>,
}

/// How a format uses the pool.
pub struct Pool {
    pub threads: usize,
    /// Thread names are `name-N`.
    pub name: &'static str,
    /// Bytes from the end of the previous chunk each job gets (0: none).
    pub prime: usize,
}

/// A job: compresses a chunk, given the last [`Pool::prime`] bytes of the chunk before
/// it, into bytes and a side result.
type Job<T> = dyn Fn(&[u8], &[u8]) -> io::Result<(Vec<u8>, T)> + Send + Sync;

/// One chunk written out: the input and the compressed bytes as written (both for
/// reuse), and the job's side result.
pub struct Written<T> {
    pub chunk: Vec<u8>,
    pub compressed: Vec<u8>,
    pub side: T,
}

/// A task for a pool thread.
type Task = Box<dyn FnOnce() + Send>;

/// Threads that run tasks in the order they are sent, each blocked on the channel
/// while there is none. Dropping the pool ends the threads once the tasks already
/// sent are done; nobody waits for them (a failed run exits without them).
struct Threads {
    tasks: Sender<Task>,
}

impl Threads {
    fn start(threads: usize, name: &'static str) -> io::Result<Threads> {
        let (tasks, rx) = channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    loop {
                        // No task panics while the lock is held, so it is never poisoned.
                        let task = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(task) = task else { return };
                        // The panic hook has already printed the message; the task's
                        // result channel closes unsent and `write_next` fails the
                        // stream. The thread lives on for the tasks queued behind it.
                        let _ = catch_unwind(AssertUnwindSafe(task));
                    }
                })
                .map_err(|e| io::Error::new(e.kind(), format!("starting {name}: {e}")))?;
        }
        Ok(Threads { tasks })
    }

    fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        // The threads only end once this sender is dropped: the send cannot fail
        // while they are there, and a task that finds none has its result channel
        // closed unsent, which `write_next` reports.
        let _ = self.tasks.send(Box::new(task));
    }
}

/// Chunks compressed on a pool and written in the order they were pushed.
pub struct Ordered<T> {
    pool: Threads,
    job: Arc<Job<T>>,
    prime: usize,
    /// Chunks in flight at most: two per thread, one being compressed and one ready.
    most: usize,
    in_flight: VecDeque<Receiver<Done<T>>>,
    tail: Vec<u8>,
}

impl<T: Send + 'static> Ordered<T> {
    /// Starts the pool's threads.
    pub fn new<F>(pool: Pool, job: F) -> io::Result<Ordered<T>>
    where
        F: Fn(&[u8], &[u8]) -> io::Result<(Vec<u8>, T)> + Send + Sync + 'static,
    {
        let Pool {
            threads,
            name,
            prime,
        } = pool;
        let threads = threads.max(1);
        Ok(Ordered {
            pool: Threads::start(threads, name)?,
            job: Arc::new(job),
            prime,
            most: 2 * threads,
            in_flight: VecDeque::new(),
            tail: Vec::new(),
        })
    }

    /// Starts compressing `chunk`; when the window is full, first waits for the oldest
    /// chunk in flight and writes it to `out` (then `written` sees it).
    pub fn push<W: Write>(
        &mut self,
        chunk: Vec<u8>,
        out: &mut W,
        written: &mut impl FnMut(Written<T>),
    ) -> io::Result<()> {
        if self.in_flight.len() >= self.most {
            self.write_next(out, written)?;
        }
        let primed = if self.prime == 0 {
            Vec::new()
        } else {
            std::mem::replace(
                &mut self.tail,
                chunk[chunk.len().saturating_sub(self.prime)..].to_vec(),
            )
        };
        let (tx, rx) = sync_channel(1);
        let job = Arc::clone(&self.job);
        self.pool.spawn(move || {
            let compressed = job(&chunk, &primed);
            let _ = tx.send(Done { compressed, chunk });
        });
        self.in_flight.push_back(rx);
        Ok(())
    }

    /// Chunks pushed and not yet written.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Writes every chunk still in flight, in order.
    pub fn finish<W: Write>(
        &mut self,
        out: &mut W,
        written: &mut impl FnMut(Written<T>),
    ) -> io::Result<()> {
        while !self.in_flight.is_empty() {
            self.write_next(out, written)?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk in flight and writes it.
    fn write_next<W: Write>(
        &mut self,
        out: &mut W,
        written: &mut impl FnMut(Written<T>),
    ) -> io::Result<()> {
        let Some(rx) = self.in_flight.pop_front() else {
            return Ok(());
        };
        // A job always sends its result: a closed channel means it panicked.
        let done = rx
            .recv()
            .map_err(|_| io::Error::other("a compression thread panicked"))?;
        let (bytes, side) = done.compressed?;
        out.write_all(&bytes)?;
        written(Written {
            chunk: done.chunk,
            compressed: bytes,
            side,
        });
        Ok(())
    }
}

/// Compresses every chunk from `chunks` with `job` on the pool's threads, writing the
/// results to `out` in order. `job` gets the chunk and the last `pool.prime` bytes of
/// the chunk before it; `written` sees each chunk's length and the job's side result
/// once its bytes are out. Chunks go back through `spent`, when given, for reuse.
pub fn in_order<W, T, F>(
    chunks: impl IntoIterator<Item = Vec<u8>>,
    spent: Option<&SyncSender<Vec<u8>>>,
    out: &mut W,
    pool: Pool,
    job: F,
    mut written: impl FnMut(usize, T),
) -> io::Result<()>
where
    W: Write,
    T: Send + 'static,
    F: Fn(&[u8], &[u8]) -> io::Result<(Vec<u8>, T)> + Send + Sync + 'static,
{
    let mut ordered = Ordered::new(pool, job)?;
    let mut done = |w: Written<T>| {
        written(w.chunk.len(), w.side);
        if let Some(spent) = spent {
            let _ = spent.try_send(w.chunk);
        }
    };
    for chunk in chunks {
        ordered.push(chunk, out, &mut done)?;
    }
    ordered.finish(out, &mut done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_fails_the_stream_instead_of_aborting() {
        let chunks = (0..8u8).map(|i| vec![i; 1000]);
        let mut out = Vec::new();
        let pool = Pool {
            threads: 2,
            name: "test-pool",
            prime: 0,
        };
        let result = in_order(
            chunks,
            None,
            &mut out,
            pool,
            |chunk, _| {
                assert!(chunk[0] != 3, "a job that panics");
                Ok((chunk.to_vec(), ()))
            },
            |_, ()| {},
        );
        let err = result.expect_err("the stream fails");
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(
            out.len(),
            3 * 1000,
            "the chunks before it were written in order"
        );
    }
}
