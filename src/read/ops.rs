//! The engine's second half: reads and writes at offsets of one open file, as many in
//! flight as the job asks for (what `spate bench` measures).
//!
//! Like fio's job/ioengine split, an engine only knows how to keep operations in flight.
//! Each worker asks its [`OpSource`] for the next operation, times it from submission to
//! completion (fio's clat) and hands the result to an [`OpRecorder`]. What the operations
//! are, what is written and what the timings mean belong to the job.

use std::fs::File;
use std::io;
use std::time::Instant;

use super::BackendKind;
use super::buffer::AlignedBuf;

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Read,
    Write,
    /// An fsync of the whole file (fio's `fsync=N`); offset and length are unused and
    /// the buffer is left alone.
    Sync,
}

/// One operation for an engine to perform.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub offset: u64,
    pub len: usize,
    pub dir: Dir,
}

/// Hands out one worker's operations.
pub trait OpSource: Send + 'static {
    /// The next operation, or `None` when the worker is done.
    fn next_op(&mut self) -> Option<Op>;
    /// Called with the buffer of a write before it is submitted: the job may change its
    /// bytes (bench makes every written block unique, so no layer can deduplicate it).
    fn prepare_write(&mut self, op: &Op, buf: &mut AlignedBuf);
}

/// Receives every finished operation of one engine thread or ring.
pub trait OpRecorder: Send + 'static {
    /// `result` is the byte count the kernel reported, or its error.
    fn done(&mut self, op: Op, started: Instant, result: io::Result<usize>);
}

/// One worker's share of a job: its operations, and one buffer per operation in flight
/// (all the memory a job uses, made before the clock starts).
pub struct OpsWorker<S> {
    pub source: S,
    pub buffers: Vec<AlignedBuf>,
}

/// Runs every worker's operations on `file` with the chosen backend: the uring backend
/// keeps one ring per worker with one operation in flight per buffer; the threads
/// backend one blocking thread per buffer (fio's `psync` with `numjobs = iodepth`).
/// Returns the recorders `new_recorder` made (one per ring or thread), or why the
/// backend could not be set up.
pub fn run<S: OpSource, R: OpRecorder>(
    backend: BackendKind,
    file: &File,
    workers: Vec<OpsWorker<S>>,
    new_recorder: &(dyn Fn() -> R + Sync),
) -> io::Result<Vec<R>> {
    match backend {
        BackendKind::Uring => super::uring::ops::run(file, workers, new_recorder),
        BackendKind::Threads => super::threads::ops::run(file, workers, new_recorder),
    }
}
