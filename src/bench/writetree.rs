//! `--write-tree N×SIZE`: the metadata-heavy write job. It creates N files of SIZE in
//! a fresh directory under the target directory, one after another: create, write,
//! fsync, close, and an fsync of the directory at the end, so every file and its name
//! are on the disk when the clock stops (fio's `create_on_open=1 fsync_on_close=1`, plus
//! the directory). It reports files/s, MB/s and each file's latency from create to
//! fsync done, and removes the directory afterwards, and on SIGINT/SIGTERM.
//!
//! Blocking calls, whatever `--io` says: one file at a time is what an untar or a
//! package manager does, and fsync has no queue depth to fill. `--jobs J` runs J such
//! threads, each writing its share of the N files into its own subdirectory and
//! fsyncing it (fio's `numjobs` with `nrfiles` per job, elbencho's threads): several
//! writers at once, without all of them contending for one directory's lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};

use super::data::{Pattern, stamp_slice};
use super::job::{DirStats, JobSpec};
use super::report::{Cpu, DirReport, JobReport};
use super::samples::{Counters, Sampler};
use crate::output::Cleanup;

/// How many files of what size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub files: u64,
    pub size: u64,
}

impl Shape {
    /// `1000x4K` as fio and CrystalDiskMark write sizes (`1000×4K` in the report).
    pub fn label(self) -> String {
        format!("{}x{}", self.files, super::size_label(self.size))
    }
}

/// Distinct data the files are cut from, at most: 16 MiB, so that a deduplicating file
/// system sees no repeats within 4096 files of 4 KiB, at a bounded cost in memory.
const RING_BYTES: u64 = 16 << 20;

/// Largest single write of a file's bytes.
const CHUNK: usize = 1 << 20;

/// The fresh directory of one run, removed when dropped (and by the signal thread on
/// SIGINT/SIGTERM).
struct Scratch {
    dir: Option<tempfile::TempDir>,
    cleanup: Arc<Cleanup>,
}

impl Scratch {
    fn create(parent: &Path, cleanup: &Arc<Cleanup>) -> Result<Scratch> {
        let meta = std::fs::metadata(parent).map_err(|e| {
            anyhow::anyhow!("{}: {}", parent.display(), crate::error::describe_io(&e))
        })?;
        if !meta.is_dir() {
            bail!("{}: not a directory", parent.display());
        }
        let dir = tempfile::Builder::new()
            .prefix(".spate-write-tree-")
            .tempdir_in(parent)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: creating the --write-tree directory: {}",
                    parent.display(),
                    crate::error::describe_io(&e)
                )
            })?;
        cleanup.register_dir(dir.path());
        Ok(Scratch {
            dir: Some(dir),
            cleanup: Arc::clone(cleanup),
        })
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("."), |d| d.path())
    }

    /// Removes the directory and everything in it.
    fn remove(mut self) -> std::io::Result<()> {
        match self.dir.take() {
            Some(dir) => {
                self.cleanup.unregister_dir(dir.path());
                dir.close()
            }
            None => Ok(()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            self.cleanup.unregister_dir(dir.path());
            // TempDir removes the tree when dropped.
        }
    }
}

/// One worker's part of a run: which files it writes, in which directory.
struct Share {
    dir: PathBuf,
    /// Numbers of its files, unique over the run (they name the files and stamp
    /// their blocks).
    files: std::ops::Range<u64>,
}

/// Splits `shape.files` over `workers` as evenly as counts allow, the first ones one
/// file more (fio cannot split unevenly in one section: `--emit-fio` writes two). One
/// worker writes into `top` itself; several each into their own subdirectory, made
/// (and its name made durable) before the clock, as fio creates a job's directories
/// during setup.
fn shares(top: &Path, shape: Shape, workers: u64) -> std::io::Result<Vec<Share>> {
    if workers <= 1 {
        return Ok(vec![Share {
            dir: top.to_path_buf(),
            files: 0..shape.files,
        }]);
    }
    let mut shares = Vec::with_capacity(workers as usize);
    let mut next = 0;
    for w in 0..workers {
        let count = shape.files / workers + u64::from(w < shape.files % workers);
        let dir = top.join(format!("w{w}"));
        std::fs::create_dir(&dir)?;
        shares.push(Share {
            dir,
            files: next..next + count,
        });
        next += count;
    }
    File::open(top).and_then(|d| d.sync_all())?;
    Ok(shares)
}

/// What one worker saw.
struct Done {
    stats: DirStats,
    error: Option<String>,
}

/// Runs the job once in a fresh directory below `parent`, `spec.jobs` workers each
/// writing its share of the files; a directory that cannot be made or removed is an
/// error of the run, a file that cannot be written one of the job (in its report, as
/// an I/O error of a file job).
pub fn run(
    parent: &Path,
    spec: &JobSpec,
    shape: Shape,
    pattern: Pattern,
    cleanup: &Arc<Cleanup>,
) -> Result<JobReport> {
    let total = shape.files.saturating_mul(shape.size);
    if let Ok(Some(free)) = super::testfile::free_space(parent)
        && total > free
    {
        bail!(
            "{}: not enough free space for --write-tree {} ({} available)",
            parent.display(),
            shape.label(),
            humansize::format_size(free, humansize::BINARY)
        );
    }
    let scratch = Scratch::create(parent, cleanup)?;
    let workers = spec.jobs.max(1) as u64;
    let shares = shares(scratch.path(), shape, workers).map_err(|e| {
        anyhow::anyhow!(
            "{}: creating the --write-tree directory: {}",
            parent.display(),
            crate::error::describe_io(&e)
        )
    })?;
    // Filled before the clock: 16 MiB over all workers, each its own slice of it (at
    // least 64 KiB, so writes stay large), no bigger than what it writes.
    let rings: Vec<Vec<u8>> = shares
        .iter()
        .enumerate()
        .map(|(w, share)| {
            let wants = (share.files.end - share.files.start).saturating_mul(shape.size);
            let len = (RING_BYTES / workers).max(64 << 10).min(wants).max(1);
            let mut ring = vec![0u8; len as usize];
            pattern.fill(&mut ring, 0x7EE + w as u64);
            ring
        })
        .collect();
    let mut report = JobReport::for_spec(spec, false);
    let counters = Counters {
        bytes: Arc::new(AtomicU64::new(0)),
        files: Some(Arc::new(AtomicU64::new(0))),
    };
    // A failing disk does not get better by asking again: the first error stops
    // every worker.
    let failed = AtomicBool::new(false);
    let cpu = Cpu::now();
    let started = Instant::now();
    let sampler = Sampler::start(counters.clone(), started);
    let done: Vec<Done> = std::thread::scope(|scope| {
        let threads: Vec<_> = shares
            .iter()
            .zip(rings)
            .map(|(share, ring)| {
                let (counters, failed) = (&counters, &failed);
                scope.spawn(move || write_share(share, shape, ring, pattern, counters, failed))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| Done {
                    stats: DirStats::new(),
                    error: Some("a worker thread died".into()),
                })
            })
            .collect()
    });
    let mut stats = DirStats::new();
    let mut first_error: Option<String> = None;
    for d in &done {
        stats.merge(&d.stats);
        if first_error.is_none() {
            first_error.clone_from(&d.error);
        }
    }
    if first_error.is_some() {
        wait_if_interrupted(cleanup);
    }
    let elapsed = started.elapsed();
    report.cpu = Cpu::now().since(cpu);
    report.samples = sampler.finish();
    report.cpu.instruments_s = report.samples.cpu_s;
    report.elapsed_s = elapsed.as_secs_f64();
    report.write = DirReport::new(&stats, elapsed);
    report.files = Some(stats.ios);
    report.files_per_s = Some(stats.ios as f64 / elapsed.as_secs_f64().max(1e-9));
    report.errors = done.iter().filter(|d| d.error.is_some()).count() as u64;
    report.error = first_error;
    let dir = scratch.path().to_path_buf();
    scratch.remove().map_err(|e| {
        wait_if_interrupted(cleanup);
        removal_error(&dir, &e)
    })?;
    Ok(report)
}

/// One worker: its files one after another, then an fsync of its directory, so its
/// names are on the disk when it is done.
fn write_share(
    share: &Share,
    shape: Shape,
    mut ring: Vec<u8>,
    pattern: Pattern,
    counters: &Counters,
    failed: &AtomicBool,
) -> Done {
    let mut stats = DirStats::new();
    let mut at = 0usize;
    for n in share.files.clone() {
        if failed.load(Ordering::Relaxed) {
            return Done { stats, error: None };
        }
        let path = share.dir.join(format!("{n:08}"));
        let t0 = Instant::now();
        if let Err(err) = write_file(&path, shape.size, &mut ring, &mut at, pattern, n) {
            failed.store(true, Ordering::Relaxed);
            let error = Some(format!("file {n}: {err}"));
            return Done { stats, error };
        }
        stats.ios += 1;
        stats.bytes += shape.size;
        stats
            .latency
            .saturating_record(t0.elapsed().as_nanos().max(1) as u64);
        counters.bytes.fetch_add(shape.size, Ordering::Relaxed);
        if let Some(files) = &counters.files {
            files.fetch_add(1, Ordering::Relaxed);
        }
    }
    // The names are on the disk only once the directory is.
    let error = File::open(&share.dir)
        .and_then(|d| d.sync_all())
        .err()
        .map(|e| format!("fsync of the directory: {}", crate::error::describe_io(&e)));
    Done { stats, error }
}

/// Never returns once SIGINT/SIGTERM came: the signal thread removed the directory
/// under us and is exiting with 130 or 143, and an error from here would race it to
/// the exit status.
fn wait_if_interrupted(cleanup: &Cleanup) {
    while cleanup.interrupted() {
        std::thread::park();
    }
}

fn removal_error(dir: &Path, err: &std::io::Error) -> anyhow::Error {
    let parent = dir.parent().map_or(PathBuf::from("."), Path::to_path_buf);
    anyhow::anyhow!(
        "{}: removing the --write-tree directory: {}",
        parent.display(),
        crate::error::describe_io(err)
    )
}

/// Creates `path` (it must not exist), writes `size` bytes cut from `ring` at `at`,
/// each 4 KiB block stamped with the file's number, fsyncs and closes it.
fn write_file(
    path: &Path,
    size: u64,
    ring: &mut [u8],
    at: &mut usize,
    pattern: Pattern,
    n: u64,
) -> Result<(), String> {
    let describe =
        |what: &str, e: std::io::Error| format!("{what}: {}", crate::error::describe_io(&e));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| describe("creating", e))?;
    let mut left = size;
    while left > 0 {
        if *at >= ring.len() {
            *at = 0;
        }
        let len = (left.min(CHUNK as u64) as usize).min(ring.len() - *at);
        let chunk = &mut ring[*at..*at + len];
        if pattern.stamped() {
            stamp_slice(chunk, (size - left) ^ n.rotate_left(24), n);
        }
        file.write_all(chunk).map_err(|e| describe("writing", e))?;
        *at += len;
        left -= len as u64;
    }
    file.sync_all().map_err(|e| describe("fsync", e))
}
