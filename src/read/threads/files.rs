//! The threads backend's file reads: each worker reads one file at a time, chunk by
//! chunk, feeding the sink on its own thread.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::thread::JoinHandle;

use crate::read::buffer::{BufferPool, PooledBuf};
use crate::read::mapped;
use crate::read::{
    Backend, FileResult, ReadError, ReadOptions, Readers, Sink, SinkFactory, SinkOutput,
};
use crate::walk::Entry;

/// The threads backend: blocking `pread` worker threads.
pub struct Threads;

impl Backend for Threads {
    fn start<F: SinkFactory>(&self, readers: Readers<F>) -> Vec<JoinHandle<()>> {
        (0..readers.options.jobs.max(1))
            .map(|i| {
                let readers = readers.clone();
                std::thread::Builder::new()
                    .name(format!("spate-read-{i}"))
                    .spawn(move || serve(&readers))
                    .expect("spawning a reader thread")
            })
            .collect()
    }
}

/// Reads entries until the channel closes (or the results' receiver is gone).
pub(crate) fn serve<F: SinkFactory>(readers: &Readers<F>) {
    let Readers {
        options,
        pool,
        entries,
        factory,
        results,
    } = readers;
    while let Ok(batch) = entries.recv_blocking() {
        let done = batch
            .into_iter()
            .map(|(mut entry, tag)| {
                let result = read_file(&mut entry, &tag, options, pool, factory.as_ref());
                if result.is_err() {
                    factory.unread(&entry, &tag);
                }
                FileResult {
                    result,
                    seq: entry.seq,
                    path: entry.path,
                    tag,
                }
            })
            .collect();
        if !results(done) {
            break;
        }
    }
}

/// Opens a file for reading without ever blocking on it: `O_NONBLOCK` keeps a FIFO that
/// replaced the file after the walk from hanging the open, and `O_NOCTTY` keeps a
/// terminal from becoming ours.
pub(crate) fn open_nonblocking(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

fn read_file<F: SinkFactory>(
    entry: &mut Entry,
    tag: &F::Tag,
    options: &ReadOptions,
    pool: &BufferPool,
    factory: &F,
) -> Result<(SinkOutput<F>, u64), ReadError> {
    let file = crate::read::open_entry(entry).map_err(|e| ReadError::io("opening", e))?;
    crate::read::complete_entry(entry, file.as_raw_fd())?;
    let entry = &*entry;
    let mut sink = factory.make(entry, tag);
    let offset = if options.maps(entry.size) && mapped::mostly_cached(file.as_raw_fd(), entry.size)
    {
        mapped::feed_mapped(file.as_raw_fd(), entry.size, &mut sink)?
    } else {
        read_buffered(&file, entry, pool, &mut sink)?
    };
    crate::read::check_after_reading(entry, file.as_raw_fd(), offset)?;
    Ok((sink.finish(offset), offset))
}

/// Reads the file chunk by chunk into pooled buffers, feeding the sink on this thread.
fn read_buffered<S: Sink>(
    file: &File,
    entry: &Entry,
    pool: &BufferPool,
    sink: &mut S,
) -> Result<u64, ReadError> {
    let mut offset = 0u64;
    loop {
        let mut buf = pool.get_blocking();
        let n = pread(file, &mut buf, offset).map_err(|e| ReadError::io("reading", e))?;
        if n == 0 {
            break;
        }
        sink.update(&buf);
        offset += n as u64;
        // A short read from a regular file means end-of-file; skipping the extra
        // zero-length read saves a syscall on every small file.
        if n < buf.inner().capacity() {
            break;
        }
        // Reading past the listed size means the file grew (or was replaced by a device
        // that never ends): stop instead of reading forever.
        if offset > entry.size {
            return Err(ReadError::Changed(format!(
                "grew past its listed size of {}",
                entry.size
            )));
        }
    }
    Ok(offset)
}

/// Reads into the whole of `buf` at `offset`, retrying on EINTR.
fn pread(file: &File, buf: &mut PooledBuf, offset: u64) -> std::io::Result<usize> {
    let inner = buf.inner_mut();
    loop {
        // SAFETY: the pointer is valid for `capacity()` writable bytes, which is what we
        // pass; the kernel writes at most that many.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                inner.as_mut_ptr().cast(),
                inner.capacity(),
                offset as libc::off_t,
            )
        };
        if n >= 0 {
            // SAFETY: the kernel wrote n bytes from the start.
            unsafe { inner.set_len(n as usize) };
            return Ok(n as usize);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
