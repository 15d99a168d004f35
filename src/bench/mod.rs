//! `spate bench`: disk throughput measured the way fio measures it, on a test file of
//! our own, or a read-only pass over an existing tree.
//!
//! The job logic (what to read or write where, timing, histograms) is here; the engines
//! that keep operations in flight are the read backends' second half, [`crate::read::ops`]
//! (blocking `pread`/`pwrite` threads, or io_uring rings).
//!
//! ```text
//! test file (testfile) ─▶ per job: drop cache ─▶ engine(JobOps → I/O → Recorder) ─▶ report
//! ```

pub mod data;
pub mod fio;
pub mod job;
pub mod live;
pub mod meta;
pub mod page;
pub mod plot;
pub mod report;
pub mod results;
pub mod samples;
pub mod stream;
pub mod testfile;
pub mod tree;
pub mod writetree;

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
use data::Pattern;
use job::{JobOps, JobSpec, Recorder, Rw};
use live::Live;
use report::{Cpu, DirReport, FileReport, JobReport, PatternReport, SyncReport};
use samples::{Counters, Sampler};
use stream::Stream;
use testfile::TestFile;

/// Everything `spate bench` needs to know.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub work: Work,
    pub backend: BackendKind,
    /// Print the report as JSON instead of a table.
    pub json: bool,
    /// Also draw the report into this `.html` or `.svg` file (`--report`).
    pub report: Option<PathBuf>,
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
    /// Print the fio job file of these jobs and measure nothing (`--emit-fio`).
    EmitFio(FileWork),
    /// Show a fio JSON result as the grid (`--fio-json`).
    ShowFio(PathBuf),
    /// Saved results side by side (`--compare`).
    Compare(Vec<PathBuf>),
    /// Create, write and fsync many files (`--write-tree N×SIZE`).
    WriteTree(WriteTreeWork),
    /// Print the fio job file of `--write-tree` and measure nothing.
    EmitFioWriteTree(WriteTreeWork),
}

/// `--write-tree`: `shape.files` files of `shape.size` bytes in a fresh directory in
/// `dir`, written by `jobs` threads, `loops` times.
#[derive(Debug, Clone)]
pub struct WriteTreeWork {
    pub dir: PathBuf,
    pub shape: writetree::Shape,
    /// Writers, each with its share of the files in its own subdirectory.
    pub jobs: u32,
    pub loops: u32,
    pub pattern: Pattern,
}

impl WriteTreeWork {
    /// The job as the report names it: `write-tree 1000x4K`, and `write-tree 1000x4K
    /// T4` with 4 writers (CrystalDiskMark's T for threads).
    pub fn spec(&self) -> JobSpec {
        let threads = match self.jobs {
            0 | 1 => String::new(),
            n => format!(" T{n}"),
        };
        JobSpec {
            name: format!("write-tree {}{threads}", self.shape.label()),
            rw: Rw::WriteTree,
            rwmixread: 100,
            bs: self.shape.size,
            iodepth: 1,
            jobs: self.jobs.max(1) as usize,
            runtime: Duration::MAX,
            end_fsync: false,
            fsync_every: 1,
            pattern: self.pattern,
        }
    }
}

/// A size as fio and CrystalDiskMark write it: `4K`, `1M`, or bytes.
pub fn size_label(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// Jobs on a temporary test file of `size` bytes in `dir`.
#[derive(Debug, Clone)]
pub struct FileWork {
    pub dir: PathBuf,
    pub size: u64,
    /// Open the file with O_DIRECT.
    pub direct: bool,
    /// Where the file system refuses O_DIRECT, run buffered with a notice instead of
    /// failing (the preset, whose direct I/O is a default and not a request).
    pub direct_fallback: bool,
    /// Keep the file's pages cached before read jobs.
    pub cached: bool,
    /// Runs of every job; the report keeps the best (CrystalDiskMark's count) and the
    /// median.
    pub loops: u32,
    /// What is written, the layout included.
    pub pattern: Pattern,
    /// Print the read|write grid (the preset) instead of the table of jobs.
    pub grid: bool,
    pub jobs: Vec<JobSpec>,
}

/// CrystalDiskMark's default tests, each test's read and then its write, so that a
/// row of the read|write grid is whole when it is printed. (CrystalDiskMark runs every
/// read first and then every write; its window can fill a column afterwards, a pipe
/// cannot.) Writes end with an fsync inside the timing: otherwise a buffered write job
/// measures memory.
pub fn preset(runtime: Duration, pattern: Pattern) -> Vec<JobSpec> {
    let tests = [
        ("SEQ1M", false, 1 << 20, 8),
        ("SEQ1M", false, 1 << 20, 1),
        ("RND4K", true, 4096, 32),
        ("RND4K", true, 4096, 1),
    ];
    let mut jobs = Vec::new();
    for (label, random, bs, depth) in tests {
        for write in [false, true] {
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
                pattern,
            });
        }
    }
    jobs
}

/// Runs the benchmark and prints its report (and draws it, with `--report`); false
/// when a job had I/O errors.
pub fn run(config: &BenchConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    let picture = config
        .report
        .as_deref()
        .map(|path| page::create(path, cleanup))
        .transpose()?;
    let draw = |all: &[results::Results]| match picture {
        Some(picture) => page::write(picture, all),
        None => Ok(()),
    };
    match &config.work {
        Work::Tree { root, read } => {
            let report = tree::run(root, read, config.progress)?;
            print(config.json, &report, || report.render())?;
            draw(&redrawn(&report)?)?;
            Ok(report.errors == 0)
        }
        Work::File(work) => {
            let (clean, report) = run_on_file(config, work, cleanup)?;
            draw(&redrawn(&report)?)?;
            Ok(clean)
        }
        Work::EmitFio(work) => {
            emit_text(&fio::job_file(work, config.backend))?;
            Ok(true)
        }
        Work::WriteTree(work) => {
            let (clean, report) = run_write_tree(config, work, cleanup)?;
            draw(&redrawn(&report)?)?;
            Ok(clean)
        }
        Work::EmitFioWriteTree(work) => {
            emit_text(&fio::write_tree_job_file(work))?;
            Ok(true)
        }
        Work::ShowFio(path) => {
            let loaded = results::load(path)?;
            emit_text(&results::grid(&loaded))?;
            draw(&[loaded])?;
            Ok(true)
        }
        Work::Compare(paths) => {
            let all = paths
                .iter()
                .map(|p| results::load(p))
                .collect::<Result<Vec<_>>>()?;
            // One file is "draw this run again": its grid, as --fio-json shows one.
            match all.as_slice() {
                [one] => emit_text(&results::grid(one))?,
                _ => emit_text(&results::compare(&all))?,
            }
            draw(&all)?;
            Ok(true)
        }
    }
}

/// A report as `--json` prints it, read back as `--compare` reads a saved one: the
/// report of a run is drawn from exactly what its JSON would redraw.
fn redrawn<T: serde::Serialize>(report: &T) -> Result<Vec<results::Results>> {
    let doc = serde_json::to_value(report)?;
    Ok(results::spate_results(&doc).into_iter().collect())
}

fn emit_text(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
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

/// Creates the test file, runs every job on it (`loops` times each), prints each
/// result as it finishes, and removes the file; whether no job had I/O errors, and
/// the report as `--json` gives it.
fn run_on_file(
    config: &BenchConfig,
    work: &FileWork,
    cleanup: &Arc<Cleanup>,
) -> Result<(bool, serde_json::Value)> {
    let FileWork {
        dir, size, jobs, ..
    } = work;
    let size = *size;
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
    // Before the test file is laid out: the time is when the run started.
    let meta = meta::Meta::collect(dir);
    let test = TestFile::create(dir, size, cleanup)?;
    let (file, direct) = open_test_file(&test, work)?;
    if jobs.iter().any(|j| j.rw.reads()) {
        test.lay_out(work.pattern)?;
    } else {
        test.reserve()?;
    }
    let reads = jobs.iter().any(|j| j.rw.reads());
    let head = FileReport {
        dir: dir.display().to_string(),
        file_size: size,
        backend: config.backend.name(),
        direct,
        direct_refused: work.direct && !direct,
        cached: work.cached,
        cache_dropped: reads && !work.cached,
        meta,
        pattern: PatternReport {
            name: work.pattern.name(),
            generate_mb_s: data::generation_rate(work.pattern) / 1e6,
        },
        loops: work.loops,
        interrupted: false,
        write_tree: None,
        jobs: Vec::new(),
    };
    let stream = Stream::start(config.json, work.grid, head, reads, cleanup)?;
    for spec in jobs {
        let mut runs = Vec::with_capacity(work.loops as usize);
        for _ in 0..work.loops {
            let drop_cache = spec.rw.reads() && !work.cached;
            if drop_cache {
                test.drop_cache(&file)?;
            }
            testfile::advise(&file, spec.rw.is_random())?;
            let report = run_job(&file, size, spec, config, drop_cache);
            if let Some(err) = &report.error {
                report_job_error(&test, spec, &report, err, direct);
                runs.push(report);
                // A failing disk does not get better by asking again.
                break;
            }
            runs.push(report);
        }
        stream.job_done(JobReport::best_of(spec, runs))?;
    }
    stream.finish()
}

/// Runs `--write-tree` (`loops` times), printing its row as the other jobs' and
/// removing its files after each run; whether it had no I/O errors, and the report.
fn run_write_tree(
    config: &BenchConfig,
    work: &WriteTreeWork,
    cleanup: &Arc<Cleanup>,
) -> Result<(bool, serde_json::Value)> {
    let spec = work.spec();
    let head = FileReport {
        dir: work.dir.display().to_string(),
        file_size: work.shape.files.saturating_mul(work.shape.size),
        // Blocking calls, whatever --io says.
        backend: BackendKind::Threads.name(),
        direct: false,
        direct_refused: false,
        cached: false,
        cache_dropped: false,
        meta: meta::Meta::collect(&work.dir),
        pattern: PatternReport {
            name: work.pattern.name(),
            generate_mb_s: data::generation_rate(work.pattern) / 1e6,
        },
        loops: work.loops,
        interrupted: false,
        write_tree: Some(report::WriteTreeReport {
            files: work.shape.files,
            file_size: work.shape.size,
            numjobs: spec.jobs,
        }),
        jobs: Vec::new(),
    };
    let stream = Stream::start(config.json, false, head, false, cleanup)?;
    let mut runs = Vec::with_capacity(work.loops as usize);
    for _ in 0..work.loops {
        let report = writetree::run(&work.dir, &spec, work.shape, work.pattern, cleanup)?;
        if let Some(err) = &report.error {
            crate::report::text::say_plainly(&format_args!(
                "{}: {}: {err}",
                work.dir.display(),
                spec.name
            ));
            runs.push(report);
            break;
        }
        runs.push(report);
    }
    stream.job_done(JobReport::best_of(&spec, runs))?;
    stream.finish()
}

/// Opens the test file with O_DIRECT when asked. Where the file system refuses it and
/// the run allows (`direct_fallback`), says so in one line and opens it buffered.
/// Returns the file and whether it is open with O_DIRECT.
fn open_test_file(test: &TestFile, work: &FileWork) -> Result<(File, bool)> {
    match test.open_raw(work.direct) {
        Ok(file) => Ok((file, work.direct)),
        Err(err) if work.direct_fallback && TestFile::refuses_direct(work.direct, &err) => {
            crate::report::text::say_plainly(&format_args!(
                "{}: the file system refuses O_DIRECT; running buffered instead",
                test.dir().display()
            ));
            Ok((test.open(false)?, false))
        }
        Err(err) => Err(test.open_error(work.direct, &err)),
    }
}

/// `spate: DIR: JOB: cause`, for the first I/O error of a job.
fn report_job_error(test: &TestFile, spec: &JobSpec, report: &JobReport, err: &str, direct: bool) {
    // EINVAL on an O_DIRECT operation is nearly always alignment.
    let hint = if direct && err.ends_with("Invalid argument") {
        " (O_DIRECT needs --bs to be a multiple of the device's logical block size)"
    } else {
        ""
    };
    let more = match report.errors {
        1 => String::new(),
        n => format!(" (and {} more errors)", n - 1),
    };
    // Said after the job, with no display up: the run's own line.
    crate::report::text::say_plainly(&format_args!(
        "{}: {}: {err}{hint}{more}",
        test.dir().display(),
        spec.name
    ));
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
    let (buffers, spares): (Vec<_>, Vec<_>) =
        (0..spec.jobs).map(|w| data::job_buffers(spec, w)).unzip();

    let cpu = Cpu::now();
    let started = Instant::now();
    let sampler = Sampler::start(
        Counters {
            bytes: Arc::clone(&moved),
            files: None,
        },
        started,
    );
    let deadline = started + spec.runtime;
    let workers = buffers
        .into_iter()
        .enumerate()
        .zip(spares)
        .map(|((w, buffers), spares)| OpsWorker {
            source: JobOps::new(spec, file_size, w, deadline).with_spares(spares),
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
    report.samples = sampler.finish();
    report.cpu.instruments_s = report.samples.cpu_s + live.finish();

    report.elapsed_s = elapsed.as_secs_f64();
    report.in_flight_mean = total.in_flight_mean();
    report.read = DirReport::new(&total.read, elapsed);
    report.write = DirReport::new(&total.write, elapsed);
    report.sync = SyncReport::new(&total.sync);
    report.errors = total.errors;
    report.error = total.first_error;
    report
}
