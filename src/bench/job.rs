//! What one benchmark job does, independent of the engine that does it: which offsets
//! to read or write and what to write ([`JobOps`]), and what happened ([`Recorder`]).
//!
//! Like fio's job/ioengine split, an engine (`read::ops`) only knows how to keep
//! `iodepth` operations in flight. It asks a [`JobOps`] for the next operation, times it
//! from submission to completion (fio's clat) and hands the result to a [`Recorder`].

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::data::{Pattern, XorShift, stamp};
use crate::read::buffer::AlignedBuf;
use crate::read::ops::{Dir, Op, OpRecorder, OpSource};

/// The access pattern of a job, as fio's `--rw` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rw {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads at offsets aligned to the block size.
    Randread,
    /// Random writes at offsets aligned to the block size.
    Randwrite,
    /// Random reads and writes, `--rwmixread` percent of them reads.
    Randrw,
    /// `--write-tree`: files created, written and fsynced one after another.
    #[serde(rename = "write-tree")]
    WriteTree,
}

impl Rw {
    pub fn name(self) -> &'static str {
        match self {
            Rw::Read => "read",
            Rw::Write => "write",
            Rw::Randread => "randread",
            Rw::Randwrite => "randwrite",
            Rw::Randrw => "randrw",
            Rw::WriteTree => "write-tree",
        }
    }

    pub fn is_random(self) -> bool {
        matches!(self, Rw::Randread | Rw::Randwrite | Rw::Randrw)
    }

    /// Whether the job reads (so the file must hold data first).
    pub fn reads(self) -> bool {
        matches!(self, Rw::Read | Rw::Randread | Rw::Randrw)
    }

    /// Whether the job writes.
    pub fn writes(self) -> bool {
        matches!(self, Rw::Write | Rw::Randwrite | Rw::Randrw | Rw::WriteTree)
    }
}

/// One job's settings.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Label in the report, e.g. `SEQ1M Q8T1 read`.
    pub name: String,
    pub rw: Rw,
    /// Percentage of reads in a `randrw` job.
    pub rwmixread: u8,
    /// Bytes per operation.
    pub bs: u64,
    /// Operations in flight per worker.
    pub iodepth: usize,
    /// Workers, each on its own slice of the file.
    pub jobs: usize,
    /// Longest the job runs; it ends earlier after one pass over the file.
    pub runtime: Duration,
    /// Write jobs: fsync once at the end, inside the timed part (fio's `end_fsync=1`).
    pub end_fsync: bool,
    /// Write jobs: an fsync after every this many writes of a worker, 0 for none
    /// (fio's `fsync=N`).
    pub fsync_every: u64,
    /// What written blocks hold.
    pub pattern: Pattern,
}

/// Hands out one worker's operations: one pass over its slice of the file, sequential
/// or at random block-aligned offsets, until the deadline.
pub struct JobOps {
    rw: Rw,
    rwmixread: u8,
    bs: u64,
    /// First byte of this worker's slice, and its length in whole blocks.
    base: u64,
    blocks: u64,
    next_block: u64,
    left: u64,
    deadline: Instant,
    rng: XorShift,
    /// Writes so far, stamped into each written block.
    writes: u64,
    /// `fsync=N`: N, and the writes handed out since the last fsync.
    fsync_every: u64,
    unsynced: u64,
    pattern: Pattern,
    /// Filled write buffers not in flight, least recently written first: a write takes
    /// the oldest and leaves its own, so consecutive writes never carry the same data.
    spares: VecDeque<AlignedBuf>,
}

impl JobOps {
    /// The source for worker `index` of `spec`, on a file of `file_size` bytes.
    pub fn new(spec: &JobSpec, file_size: u64, index: usize, deadline: Instant) -> Self {
        let blocks_total = file_size / spec.bs;
        let blocks = (blocks_total / spec.jobs as u64).max(1);
        JobOps {
            rw: spec.rw,
            rwmixread: spec.rwmixread,
            bs: spec.bs,
            base: blocks * index as u64 * spec.bs,
            blocks,
            next_block: 0,
            left: blocks,
            deadline,
            rng: XorShift::new(0x5EED ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            writes: 0,
            fsync_every: spec.fsync_every,
            unsynced: 0,
            pattern: spec.pattern,
            spares: VecDeque::new(),
        }
    }

    /// Writes cycle through `spares` as well as the buffers in flight
    /// ([`super::data::job_buffers`]).
    pub fn with_spares(mut self, spares: Vec<AlignedBuf>) -> Self {
        self.spares = spares.into();
        self
    }
}

impl OpSource for JobOps {
    /// The next operation, or `None` when the pass is complete or time is up.
    fn next_op(&mut self) -> Option<Op> {
        if Instant::now() >= self.deadline {
            return None;
        }
        // fio counts the writes it issued and queues a sync after every N of them, the
        // last N of the pass included.
        if self.fsync_every > 0 && self.unsynced == self.fsync_every {
            self.unsynced = 0;
            return Some(Op {
                offset: 0,
                len: 0,
                dir: Dir::Sync,
            });
        }
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let block = if self.rw.is_random() {
            // With replacement, like fio's norandommap: a random map costs memory and
            // CPU, and the disk cannot tell the difference.
            self.rng.below(self.blocks)
        } else {
            let b = self.next_block;
            self.next_block += 1;
            b
        };
        let dir = match self.rw {
            Rw::Read | Rw::Randread => Dir::Read,
            Rw::Write | Rw::Randwrite | Rw::WriteTree => Dir::Write,
            Rw::Randrw if self.rng.below(100) < u64::from(self.rwmixread) => Dir::Read,
            Rw::Randrw => Dir::Write,
        };
        if dir == Dir::Write {
            self.unsynced += 1;
        }
        Some(Op {
            offset: self.base + block * self.bs,
            len: self.bs as usize,
            dir,
        })
    }

    /// Makes every written block differ from every earlier write, so no layer below
    /// (compression, deduplication) can write less than asked.
    fn prepare_write(&mut self, op: &Op, buf: &mut AlignedBuf) {
        self.writes += 1;
        // A swap of two owned buffers, no copy: the engine's buffer is idle until
        // this write is submitted.
        if let Some(next) = self.spares.pop_front() {
            self.spares.push_back(std::mem::replace(buf, next));
        }
        if self.pattern.stamped() {
            stamp(buf, op.len, op.offset, self.writes);
        }
    }
}

/// Counts, bytes and completion latencies of one direction.
pub struct DirStats {
    pub ios: u64,
    pub bytes: u64,
    /// Nanoseconds, 3 significant digits, up to an hour.
    pub latency: Histogram<u64>,
    /// Every operation's latency added up, exactly: the time-weighted sum of the
    /// operations in flight (Little's law), so that over the job's time it gives how
    /// many the engine kept in flight on average.
    pub latency_sum_ns: u128,
}

impl Default for DirStats {
    fn default() -> Self {
        Self::new()
    }
}

impl DirStats {
    pub fn new() -> Self {
        DirStats {
            ios: 0,
            bytes: 0,
            latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("constant histogram bounds are valid"),
            latency_sum_ns: 0,
        }
    }

    pub fn merge(&mut self, other: &DirStats) {
        self.ios += other.ios;
        self.bytes += other.bytes;
        self.latency_sum_ns += other.latency_sum_ns;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

/// What one worker (or thread) saw; merged into the job's figures at the end.
pub struct Recorder {
    pub read: DirStats,
    pub write: DirStats,
    /// `fsync=N`'s fsyncs: count and latency (no bytes).
    pub sync: DirStats,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Bytes moved so far over all workers, for the progress line.
    progress: Arc<AtomicU64>,
    /// The first operation's start and the last one's completion: the time the
    /// engine had operations in flight (thread start and ring setup left out, as fio
    /// sets its ring up before its clock).
    busy: Option<(Instant, Instant)>,
}

impl Recorder {
    pub fn new(progress: Arc<AtomicU64>) -> Self {
        Recorder {
            read: DirStats::new(),
            write: DirStats::new(),
            sync: DirStats::new(),
            errors: 0,
            first_error: None,
            progress,
            busy: None,
        }
    }

    /// Records a failure that is not one operation's (e.g. the final fsync).
    pub fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }

    /// Operations in flight on average from the first start to the last completion,
    /// all workers together (fio's `iodepth × numjobs` when every slot is kept busy):
    /// the summed latencies over that time, by Little's law. `None` before any
    /// operation finished.
    pub fn in_flight_mean(&self) -> Option<f64> {
        let sum = self.read.latency_sum_ns + self.write.latency_sum_ns + self.sync.latency_sum_ns;
        let (first, last) = self.busy?;
        (sum > 0).then(|| sum as f64 / (last - first).as_nanos().max(1) as f64)
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.read.merge(&other.read);
        self.write.merge(&other.write);
        self.sync.merge(&other.sync);
        self.errors += other.errors;
        self.busy = match (self.busy, other.busy) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            (a, b) => a.or(b),
        };
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

impl OpRecorder for Recorder {
    /// Records one finished operation started at `started`.
    fn done(&mut self, op: Op, started: Instant, result: io::Result<usize>) {
        let now = Instant::now();
        let elapsed = now - started;
        self.busy = Some(match self.busy {
            Some((first, last)) => (first.min(started), last.max(now)),
            None => (started, now),
        });
        match result {
            Ok(n) => {
                let stats = match op.dir {
                    Dir::Read => &mut self.read,
                    Dir::Write => &mut self.write,
                    Dir::Sync => &mut self.sync,
                };
                stats.ios += 1;
                stats.bytes += n as u64;
                stats.latency_sum_ns += elapsed.as_nanos();
                stats
                    .latency
                    .saturating_record(elapsed.as_nanos().max(1) as u64);
                if !super::samples::BASELINE {
                    self.progress.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Err(err) if op.dir == Dir::Sync => {
                self.error(format!("fsync: {}", crate::error::describe_io(&err)))
            }
            Err(err) => self.error(format!(
                "{} {} bytes at offset {}: {}",
                if op.dir == Dir::Read {
                    "reading"
                } else {
                    "writing"
                },
                op.len,
                op.offset,
                crate::error::describe_io(&err)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rw: Rw, jobs: usize) -> JobSpec {
        JobSpec {
            name: "t".into(),
            rw,
            rwmixread: 50,
            bs: 4096,
            iodepth: 1,
            jobs,
            runtime: Duration::from_secs(60),
            end_fsync: false,
            fsync_every: 0,
            pattern: Pattern::Random,
        }
    }

    fn all_ops(mut source: JobOps) -> Vec<Op> {
        std::iter::from_fn(|| source.next_op()).collect()
    }

    #[test]
    fn sequential_covers_each_block_once_in_order() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ops = all_ops(JobOps::new(&spec(Rw::Read, 1), 40960, 0, deadline));
        let offsets: Vec<u64> = ops.iter().map(|o| o.offset).collect();
        assert_eq!(offsets, (0..10).map(|b| b * 4096).collect::<Vec<_>>());
    }

    #[test]
    fn workers_get_disjoint_slices() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let a = all_ops(JobOps::new(&spec(Rw::Randread, 2), 40960, 0, deadline));
        let b = all_ops(JobOps::new(&spec(Rw::Randread, 2), 40960, 1, deadline));
        assert_eq!((a.len(), b.len()), (5, 5));
        assert!(a.iter().all(|o| o.offset < 20480 && o.offset % 4096 == 0));
        assert!(b.iter().all(|o| (20480..40960).contains(&o.offset)));
    }

    #[test]
    fn randrw_mixes_about_as_asked() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = spec(Rw::Randrw, 1);
        s.rwmixread = 70;
        let ops = all_ops(JobOps::new(&s, 4096 * 10_000, 0, deadline));
        let reads = ops.iter().filter(|o| o.dir == Dir::Read).count();
        assert!((6500..7500).contains(&reads), "{reads} reads of 10000");
    }

    #[test]
    fn fsync_every_n_writes_as_fio() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut s = spec(Rw::Write, 1);
        s.fsync_every = 3;
        let ops = all_ops(JobOps::new(&s, 4096 * 10, 0, deadline));
        let dirs: String = ops
            .iter()
            .map(|o| if o.dir == Dir::Sync { 'S' } else { 'w' })
            .collect();
        assert_eq!(dirs, "wwwSwwwSwwwSw");
        s.fsync_every = 5;
        let ops = all_ops(JobOps::new(&s, 4096 * 10, 0, deadline));
        assert_eq!(
            ops.last().map(|o| o.dir),
            Some(Dir::Sync),
            "after the last 5 too"
        );
    }

    #[test]
    fn stops_at_the_deadline() {
        let past = Instant::now();
        assert!(
            JobOps::new(&spec(Rw::Read, 1), 40960, 0, past)
                .next_op()
                .is_none()
        );
    }
}
