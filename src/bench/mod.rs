//! `spate bench`: disk throughput measured the way fio measures it, on a test file of
//! our own, or a read-only pass over an existing tree.
//!
//! The job logic (what to read or write where, timing, histograms) is here; the engines
//! that keep operations in flight are the read backends' second half, [`crate::read::ops`]
//! (blocking `pread`/`pwrite` threads, or tokio-uring rings).
//!
//! ```text
//! test file (testfile) ─▶ per job: drop cache ─▶ engine(JobOps → I/O → Recorder) ─▶ report
//! ```

pub mod data;
pub mod job;
pub mod live;
pub mod report;
pub mod testfile;
pub mod tree;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::output::Cleanup;
use crate::progress::ProgressMode;
use crate::read::ops::{self, OpsWorker};
use crate::read::{BackendKind, ReadOptions};
use data::random_buffer;
use job::{JobOps, JobSpec, Recorder, Rw};
use live::Live;
use report::{Cpu, DirReport, FileReport, JobReport, SyncReport};
use testfile::TestFile;

/// Everything `spate bench` needs to know.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub work: Work,
    pub backend: BackendKind,
    /// Print the report as JSON instead of a table.
    pub json: bool,
    /// Progress of `--tree` as asked; a file job draws its line unless this is
    /// [`ProgressMode::None`] (and only on a terminal).
    pub progress: ProgressMode,
}

/// What to measure.
#[derive(Debug, Clone)]
pub enum Work {
    /// Jobs on a temporary test file.
    File(FileWork),
    /// Read every file below `root`.
    Tree { root: PathBuf, read: ReadOptions },
}

/// Jobs on a temporary test file of `size` bytes in `dir`.
#[derive(Debug, Clone)]
pub struct FileWork {
    pub dir: PathBuf,
    pub size: u64,
    /// Open the file with O_DIRECT.
    pub direct: bool,
    /// Keep the file's pages cached before read jobs.
    pub cached: bool,
    pub jobs: Vec<JobSpec>,
}

/// CrystalDiskMark's default tests, every read first and then every write (as its
/// "All" does). Writes end with an fsync inside the timing: otherwise a buffered write
/// job measures memory.
pub fn preset(runtime: Duration) -> Vec<JobSpec> {
    let tests = [
        ("SEQ1M", false, 1 << 20, 8),
        ("SEQ1M", false, 1 << 20, 1),
        ("RND4K", true, 4096, 32),
        ("RND4K", true, 4096, 1),
    ];
    let mut jobs = Vec::new();
    for write in [false, true] {
        for (label, random, bs, depth) in tests {
            let rw = match (random, write) {
                (false, false) => Rw::Read,
                (false, true) => Rw::Write,
                (true, false) => Rw::Randread,
                (true, true) => Rw::Randwrite,
            };
            let verb = if write { "write" } else { "read" };
            jobs.push(JobSpec {
                name: format!("{label} Q{depth}T1 {verb}"),
                rw,
                rwmixread: 50,
                bs,
                iodepth: depth,
                jobs: 1,
                runtime,
                end_fsync: write,
                fsync_every: 0,
            });
        }
    }
    jobs
}

/// Runs the benchmark and prints its report; false when a job had I/O errors.
pub fn run(config: &BenchConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    match &config.work {
        Work::Tree { root, read } => {
            let report = tree::run(root, read, config.progress)?;
            print(config.json, &report, || report.render())?;
            Ok(report.errors == 0)
        }
        Work::File(work) => {
            let report = run_on_file(config, work, cleanup)?;
            print(config.json, &report, || report.render())?;
            Ok(report.jobs.iter().all(|j| j.errors == 0))
        }
    }
}

fn print<T: serde::Serialize>(json: bool, data: &T, text: impl FnOnce() -> String) -> Result<()> {
    let out = if json {
        serde_json::to_string_pretty(data)? + "\n"
    } else {
        text()
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}

/// Creates the test file, runs every job on it, and removes it.
fn run_on_file(
    config: &BenchConfig,
    work: &FileWork,
    cleanup: &Arc<Cleanup>,
) -> Result<FileReport> {
    let FileWork {
        dir,
        size,
        direct,
        cached,
        jobs,
    } = work;
    let (size, direct, cached) = (*size, *direct, *cached);
    for spec in jobs {
        if spec.bs * spec.jobs as u64 > size {
            bail!(
                "--size {size} is smaller than --bs × --jobs ({} × {}) of {}",
                spec.bs,
                spec.jobs,
                spec.name
            );
        }
    }
    let test = TestFile::create(dir, size, cleanup)?;
    let file = test.open(direct)?;
    if jobs.iter().any(|j| j.rw.reads()) {
        test.lay_out()?;
    } else {
        test.reserve()?;
    }
    let mut reports = Vec::with_capacity(jobs.len());
    for spec in jobs {
        let drop_cache = spec.rw.reads() && !cached;
        if drop_cache {
            test.drop_cache(&file)?;
        }
        testfile::advise(&file, spec.rw.is_random())?;
        let report = run_job(&file, size, spec, config, drop_cache);
        if let Some(err) = &report.error {
            // EINVAL on an O_DIRECT operation is nearly always alignment.
            let hint = if direct && err.ends_with("Invalid argument") {
                " (O_DIRECT needs --bs to be a multiple of the device's logical block size)"
            } else {
                ""
            };
            let _ = writeln!(
                std::io::stderr(),
                "spate: {}: {}: {err}{hint}{}",
                test.dir().display(),
                spec.name,
                match report.errors {
                    1 => String::new(),
                    n => format!(" (and {} more errors)", n - 1),
                }
            );
        }
        reports.push(report);
    }
    Ok(FileReport {
        dir: dir.display().to_string(),
        file_size: size,
        backend: config.backend.name(),
        direct,
        cached,
        jobs: reports,
    })
}

/// Runs one job on the open test file and measures it.
fn run_job(
    file: &File,
    file_size: u64,
    spec: &JobSpec,
    config: &BenchConfig,
    cache_dropped: bool,
) -> JobReport {
    let mut report = JobReport::for_spec(spec, cache_dropped);
    let moved = Arc::new(AtomicU64::new(0));
    let one_pass = (file_size / spec.bs / spec.jobs as u64).max(1) * spec.bs * spec.jobs as u64;
    let live = Live::start(
        config.progress != ProgressMode::None,
        &spec.name,
        one_pass,
        Arc::clone(&moved),
    );
    let buffers: Vec<Vec<_>> = (0..spec.jobs)
        .map(|w| {
            (0..spec.iodepth)
                .map(|t| random_buffer(spec.bs as usize, (w * 1000 + t) as u64))
                .collect()
        })
        .collect();

    let cpu = Cpu::now();
    let started = Instant::now();
    let deadline = started + spec.runtime;
    let workers = buffers
        .into_iter()
        .enumerate()
        .map(|(w, buffers)| OpsWorker {
            source: JobOps::new(spec, file_size, w, deadline),
            buffers,
        })
        .collect();
    let new_recorder = || Recorder::new(Arc::clone(&moved));
    let mut total = Recorder::new(Arc::new(AtomicU64::new(0)));
    match ops::run(config.backend, file, workers, &new_recorder) {
        Ok(recorders) => recorders.iter().for_each(|r| total.merge(r)),
        Err(err) => total.error(format!(
            "the {} engine: {}",
            config.backend.name(),
            crate::error::describe_io(&err)
        )),
    }
    if report.end_fsync
        && let Err(err) = file.sync_all()
    {
        total.error(format!("fsync: {}", crate::error::describe_io(&err)));
    }
    let elapsed = started.elapsed();
    report.cpu = Cpu::now().since(cpu);
    live.finish();

    report.elapsed_s = elapsed.as_secs_f64();
    report.read = DirReport::new(&total.read, elapsed);
    report.write = DirReport::new(&total.write, elapsed);
    report.sync = SyncReport::new(&total.sync);
    report.errors = total.errors;
    report.error = total.first_error;
    report
}
