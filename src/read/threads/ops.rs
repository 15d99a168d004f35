//! The threads backend's offset operations (`spate bench --io threads`): one blocking
//! `pread`/`pwrite` thread per buffer, which is how a thread pool keeps that many
//! operations in flight (fio's `psync` with `numjobs = iodepth`).

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::sync::Mutex;
use std::time::Instant;

use crate::read::buffer::AlignedBuf;
use crate::read::ops::{Dir, OpRecorder, OpSource, OpsWorker};

/// Runs the workers' operations on `file`; returns one recorder per thread.
pub fn run<S: OpSource, R: OpRecorder>(
    file: &File,
    workers: Vec<OpsWorker<S>>,
    new_recorder: &(dyn Fn() -> R + Sync),
) -> io::Result<Vec<R>> {
    let (sources, buffers): (Vec<_>, Vec<_>) = workers
        .into_iter()
        .map(|w| (Mutex::new(w.source), w.buffers))
        .unzip();
    std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .zip(buffers)
            .flat_map(|(source, buffers)| buffers.into_iter().map(move |buf| (source, buf)))
            .map(|(source, mut buf)| {
                scope.spawn(move || {
                    let mut recorder = new_recorder();
                    serve(file, source, &mut buf, &mut recorder);
                    recorder
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| io::Error::other("an I/O thread panicked"))
            })
            .collect()
    })
}

/// One thread: takes operations until the source runs dry.
fn serve<S: OpSource, R: OpRecorder>(
    file: &File,
    source: &Mutex<S>,
    buf: &mut AlignedBuf,
    recorder: &mut R,
) {
    loop {
        let op = match source.lock() {
            Ok(mut source) => source.next_op().inspect(|op| {
                if op.dir == Dir::Write {
                    source.prepare_write(op, buf);
                }
            }),
            Err(_) => None,
        };
        let Some(op) = op else { break };
        let started = Instant::now();
        let result = match op.dir {
            Dir::Read => pread(file, buf, op.len, op.offset),
            Dir::Write => pwrite(file, buf, op.len, op.offset),
            Dir::Sync => file.sync_all().map(|()| 0),
        };
        recorder.done(op, started, result);
    }
}

fn pread(file: &File, buf: &mut AlignedBuf, len: usize, offset: u64) -> io::Result<usize> {
    debug_assert!(len <= buf.capacity());
    retry(|| {
        // SAFETY: the buffer is valid for `capacity() >= len` writable bytes.
        unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                len,
                offset as libc::off_t,
            )
        }
    })
}

fn pwrite(file: &File, buf: &AlignedBuf, len: usize, offset: u64) -> io::Result<usize> {
    debug_assert!(len <= buf.len());
    retry(|| {
        // SAFETY: the buffer holds at least `len` initialised bytes.
        unsafe {
            libc::pwrite(
                file.as_raw_fd(),
                buf.as_ptr().cast(),
                len,
                offset as libc::off_t,
            )
        }
    })
}

/// Runs a syscall returning a byte count, retrying on EINTR.
fn retry(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
