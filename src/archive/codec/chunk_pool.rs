//! Compressing a stream's chunks on a pool of threads and writing them in order: the
//! engine under pack's parallel gzip and bzip2.
//!
//! Each chunk goes to a pool thread with the tail of the chunk before it (for formats
//! that prime the next chunk with history); the results are written in chunk order,
//! and each input chunk goes back to its sender for reuse. At most two chunks per
//! thread are in flight, so memory stays at a few chunks whatever the stream's length.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

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
    let Pool {
        threads,
        name,
        prime,
    } = pool;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        // Without a handler rayon aborts the process on a panic, leaving the
        // temporary output behind. The panic hook has already printed the message;
        // the job's result channel closes unsent, and `write_next` fails the stream.
        .panic_handler(|_| {})
        .build()
        .map_err(io::Error::other)?;
    let job = Arc::new(job);
    // Two chunks per thread in flight: one being compressed, one ready to start.
    let most = 2 * threads.max(1);
    let mut in_flight: VecDeque<Receiver<Done<T>>> = VecDeque::new();
    let mut tail: Vec<u8> = Vec::new();
    for chunk in chunks {
        if in_flight.len() >= most {
            write_next(&mut in_flight, out, spent, &mut written)?;
        }
        let primed = std::mem::replace(
            &mut tail,
            chunk[chunk.len().saturating_sub(prime)..].to_vec(),
        );
        let (tx, rx) = sync_channel(1);
        let job = Arc::clone(&job);
        pool.spawn(move || {
            let compressed = job(&chunk, &primed);
            let _ = tx.send(Done { compressed, chunk });
        });
        in_flight.push_back(rx);
    }
    while !in_flight.is_empty() {
        write_next(&mut in_flight, out, spent, &mut written)?;
    }
    Ok(())
}

/// Waits for the oldest chunk in flight and writes it.
fn write_next<W: Write, T>(
    in_flight: &mut VecDeque<Receiver<Done<T>>>,
    out: &mut W,
    spent: Option<&SyncSender<Vec<u8>>>,
    written: &mut impl FnMut(usize, T),
) -> io::Result<()> {
    let Some(rx) = in_flight.pop_front() else {
        return Ok(());
    };
    // A job always sends its result: a closed channel means it panicked.
    let done = rx
        .recv()
        .map_err(|_| io::Error::other("a compression thread panicked"))?;
    let (bytes, side) = done.compressed?;
    out.write_all(&bytes)?;
    written(done.chunk.len(), side);
    if let Some(spent) = spent {
        let _ = spent.try_send(done.chunk);
    }
    Ok(())
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
