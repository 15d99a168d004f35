//! `spate bench`: the arguments of a disk benchmark (fio's names where fio has one) or
//! of a tree read, validated into a [`BenchConfig`]. `--rw` has its own value enum,
//! as the library's [`Rw`] knows nothing of clap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::shared::{IoArg, ProgressArgs};
use super::units::{parse_duration_arg, parse_size_arg};
use crate::bench::{self, BenchConfig, data::Pattern, job::JobSpec, job::Rw};
use crate::read;

pub(super) const BENCH_EXAMPLES: &str = "\
Examples:
  spate bench /mnt/data                          # CrystalDiskMark's grid, O_DIRECT
  spate bench --loops 3 --buffered .             # best of 3, through the page cache
  spate bench --rw randread --bs 4k --iodepth 32 --direct --size 4GiB .
  spate bench --rw write --bs 1M --end-fsync --json /tmp | jq '.jobs[0].write.mb_s'
  spate bench --rw randwrite --fsync 1 --runtime 10s .   # fsync after every write, as fio
  spate bench --tree ~/Photos                    # files/s and MB/s before hashing it
  spate bench --write-tree 1000x4K /mnt/data     # create, write, fsync 1000 files
  spate bench --write-tree 1000x4K --jobs 4 .    # 4 writers, 250 files each
  spate bench --emit-fio /mnt/data > cdm.fio     # then: fio cdm.fio --output-format=json
  spate bench --fio-json fio.json                # fio's figures in spate's grid
  spate bench --compare old.json new.json        # side by side, ratios to the first
  spate bench --json --report run.html . > run.json   # with charts
  spate bench --compare run.json --report run.svg     # redraw a saved run";

#[derive(Args, Debug)]
pub(super) struct BenchArgs {
    /// Directory for the test file (created there, removed at the end) [default: .].
    #[arg(value_name = "DIR", conflicts_with = "tree")]
    dir: Option<PathBuf>,

    /// One job instead of the preset: read, write, randread, randwrite or randrw.
    ///
    /// The preset is CrystalDiskMark's SEQ1M Q8T1, SEQ1M Q1T1, RND4K Q32T1 and RND4K
    /// Q1T1. Unlike CrystalDiskMark, which runs every read first, each test's read runs
    /// and then its write, so each row of the read|write grid is printed whole as it
    /// finishes.
    #[arg(long, value_enum)]
    rw: Option<RwArg>,

    /// Percentage of reads in a randrw job.
    #[arg(long, value_name = "PCT", default_value_t = 50, requires = "rw",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    rwmixread: u8,

    /// Bytes per operation, e.g. 4k, 1M [default: 1M for read/write, 4k for random jobs].
    #[arg(long, visible_alias = "blocksize", value_name = "SIZE", value_parser = parse_size_arg,
          requires = "rw")]
    bs: Option<u64>,

    /// Operations in flight per worker (uring: per ring; threads: threads per worker).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "rw",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    iodepth: u32,

    /// Workers, each on its own slice of the test file (--tree: rings or threads;
    /// --write-tree: threads, each writing its share of the files in its own
    /// subdirectory).
    #[arg(long, visible_alias = "numjobs", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,

    /// Size of the test file.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg, default_value = "1GiB")]
    size: u64,

    /// Longest a job runs: 500ms, 10s, 2m, 1h, or a bare number of seconds, as fio; it
    /// ends sooner after one pass over the file.
    #[arg(long, value_name = "TIME", value_parser = parse_duration_arg, default_value = "5")]
    runtime: Duration,

    /// O_DIRECT: bypass the page cache (aligned buffers; --bs a multiple of 512). The
    /// preset uses it by default, as CrystalDiskMark; a --rw job is buffered unless
    /// asked, as fio's direct=0. Unlike fio's default (malloc), the buffers are on
    /// transparent huge pages where the kernel has them, so a buffer of up to 2 MiB is
    /// one request to the device in every run; fio's 4 KiB pages land where they
    /// happen to, and a 1 MiB direct request can go out split in two (a virtio disk
    /// takes 254 segments): fio's iomem=shmhuge gives it the same buffers.
    #[arg(long)]
    direct: bool,

    /// The preset through the page cache instead of O_DIRECT. Without it, where the
    /// file system refuses O_DIRECT (ramfs, some FUSE) the preset says so in one line
    /// and runs buffered, and the report says "O_DIRECT refused".
    #[arg(long, conflicts_with_all = ["direct", "rw"])]
    buffered: bool,

    /// Run every job N times and report the best, as CrystalDiskMark's count (default
    /// 5 there); --json also lists every run and the median. fio's loops= sums its
    /// runs instead.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    loops: u32,

    /// Write jobs: one fsync when the writes are done, counted in the time, as fio's
    /// --end_fsync=1 (the preset's writes always end so).
    #[arg(long, alias = "end_fsync", requires = "rw")]
    end_fsync: bool,

    /// Write jobs: an fsync after every N writes of each worker, as fio's --fsync=N; their
    /// count and latency are reported as `sync`.
    // A bare `--fsync` (what once meant --end-fsync) gets its own refusal, not clap's
    // "a value is required".
    #[arg(long, value_name = "N", requires = "rw", num_args = 0..=1,
          default_missing_value = "", value_parser = parse_fsync_every)]
    fsync: Option<u64>,

    /// What is written (and laid out for reads): random (nothing to compress or
    /// dedupe), zero (fio's zero_buffers) or compressible:PCT (PCT% of every 4 KiB
    /// block zeros, fio's buffer_compress_percentage). Filled once per job before the
    /// clock, not per write; writes cycle through 16 MiB of distinct buffers per job
    /// (more only if bs × iodepth × jobs is), every 4 KiB block stamped unique, so a
    /// deduplicating or compressing device cannot write less than asked.
    #[arg(long, value_name = "PATTERN", default_value = "random", value_parser = Pattern::parse)]
    pattern: Pattern,

    /// Keep the test file's pages in the page cache before read jobs (default: drop
    /// them, as fio does, so reads measure the disk).
    #[arg(long)]
    cached: bool,

    /// Create N files of SIZE (1000x4K, 1000×4K) in a new directory in DIR instead,
    /// one after another: create, write, fsync, close, then an fsync of the directory;
    /// files/s, MB/s and per-file latency from create to fsync done. The directory is
    /// removed afterwards, and on Ctrl-C. Blocking calls whatever --io says; --jobs J
    /// splits the N files over J threads (the first N mod J one more), each in its own
    /// subdirectory which it fsyncs at its end; files/s and MB/s are their sum. N counts
    /// all files, where fio's nrfiles counts per job. --emit-fio gives fio's nearest job
    /// (create_on_open, fsync_on_close; numjobs and nrfiles per job, a directory per
    /// job), which does not fsync the directories.
    #[arg(long, value_name = "NxSIZE", value_parser = parse_shape,
          conflicts_with_all = ["rw", "tree", "size", "direct", "buffered", "cached", "runtime"])]
    write_tree: Option<bench::writetree::Shape>,

    /// Read every file below DIR instead (nothing is written): files/s, MB/s and
    /// per-file latency.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["rw", "size", "direct", "buffered", "loops", "pattern", "end_fsync", "fsync", "cached"])]
    tree: Option<PathBuf>,

    /// Print the equivalent fio job file (one [section] per job, run one after another)
    /// and exit without measuring: fio FILE --output-format=json checks a figure.
    #[arg(long, conflicts_with_all = ["tree", "json"])]
    emit_fio: bool,

    /// Show a fio --output-format=json result as spate's read|write grid (job names
    /// with - read as spaces, so --emit-fio's sections line up with spate's tests).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tree", "json", "emit_fio", "dir"])]
    fio_json: Option<PathBuf>,

    /// Show saved results side by side, with each one's MB/s over the first's (B/A):
    /// spate --json reports or fio JSON results, from any machine. One file with
    /// --report draws that run again.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["tree", "json", "emit_fio", "fio_json", "dir"])]
    compare: Vec<PathBuf>,

    /// Also draw the report into FILE.html (the grid or comparison as a table, then the
    /// charts) or FILE.svg (the charts): throughput every 100 ms per job, files/s for
    /// tree workloads, and latency percentile curves (HdrHistogram). Self-contained: no
    /// script, nothing fetched. Written under a temporary name, renamed when complete.
    #[arg(long, value_name = "FILE", conflicts_with = "emit_fio")]
    report: Option<PathBuf>,

    /// I/O engine: io_uring (falls back to threads where unavailable), or threads.
    #[arg(long = "io", value_enum, default_value = "auto")]
    io: IoArg,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    progress: ProgressArgs,

    /// No progress line (unless --progress says) and no notices. --progress applies
    /// in full to --tree; a file job draws its line on a terminal only (no plain
    /// lines), unless --progress=none.
    #[arg(short, long)]
    quiet: bool,
}

/// `--rw`: the access pattern of the one job, as fio names it. The variants' doc
/// comments are the help that `--help` shows for each value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RwArg {
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
}

impl From<RwArg> for Rw {
    fn from(arg: RwArg) -> Self {
        match arg {
            RwArg::Read => Rw::Read,
            RwArg::Write => Rw::Write,
            RwArg::Randread => Rw::Randread,
            RwArg::Randwrite => Rw::Randwrite,
            RwArg::Randrw => Rw::Randrw,
        }
    }
}

impl BenchArgs {
    pub(super) fn config(&self) -> Result<BenchConfig> {
        let (backend, notice) = read::select(self.io.into())?;
        if let (Some(notice), false) = (notice, self.quiet) {
            crate::report::text::say_plainly(&notice);
        }
        let runtime = self.runtime;
        anyhow::ensure!(
            self.compare.len() != 1 || self.report.is_some(),
            "--compare needs two results or more (one, with --report, draws it again)"
        );
        if let Some(path) = &self.report {
            bench::page::Format::of(path)?;
        }
        let work = if !self.compare.is_empty() {
            bench::Work::Compare(self.compare.clone())
        } else if let Some(path) = &self.fio_json {
            bench::Work::ShowFio(path.clone())
        } else {
            match (&self.tree, self.write_tree) {
                (_, Some(shape)) => {
                    let jobs = self.jobs.unwrap_or(1);
                    anyhow::ensure!(
                        shape.files >= u64::from(jobs),
                        "--write-tree {} with --jobs {jobs}: fewer files than writers",
                        shape.label()
                    );
                    let work = bench::WriteTreeWork {
                        dir: self.dir.clone().unwrap_or_else(|| PathBuf::from(".")),
                        shape,
                        jobs,
                        loops: self.loops,
                        pattern: self.pattern,
                    };
                    if self.emit_fio {
                        bench::Work::EmitFioWriteTree(work)
                    } else {
                        bench::Work::WriteTree(work)
                    }
                }
                (Some(root), None) => self.tree_work(root, backend),
                (None, None) => match self.file_work(runtime)? {
                    bench::Work::File(work) if self.emit_fio => bench::Work::EmitFio(work),
                    work => work,
                },
            }
        };
        Ok(BenchConfig {
            work,
            backend,
            json: self.json,
            report: self.report.clone(),
            progress: self.progress.mode(self.quiet),
        })
    }

    /// `--tree`: every file below the root, read with the usual read settings and
    /// `--jobs` rings or threads.
    fn tree_work(&self, root: &Path, backend: read::BackendKind) -> bench::Work {
        let mut options = read::ReadOptions::defaults(backend);
        if let Some(jobs) = self.jobs {
            options.jobs = jobs as usize;
        }
        bench::Work::Tree {
            root: root.to_path_buf(),
            read: options,
        }
    }

    /// A test file of our own, and the preset's jobs or the one `--rw` describes.
    fn file_work(&self, runtime: Duration) -> Result<bench::Work> {
        anyhow::ensure!(
            self.rw.is_some() || self.jobs.is_none(),
            "--jobs needs --rw, --tree or --write-tree (the preset runs one worker per test, \
             as T1 says)"
        );
        let preset = self.rw.is_none();
        let jobs = match self.rw {
            None => bench::preset(runtime, self.pattern),
            Some(rw) => vec![self.one_job(rw.into(), runtime)?],
        };
        Ok(bench::Work::File(bench::FileWork {
            dir: self.dir.clone().unwrap_or_else(|| PathBuf::from(".")),
            size: self.size,
            // The preset measures the disk as CrystalDiskMark does, with O_DIRECT; an
            // explicit --direct must get it or fail.
            direct: self.direct || (preset && !self.buffered),
            direct_fallback: preset && !self.direct,
            cached: self.cached,
            loops: self.loops,
            pattern: self.pattern,
            grid: preset,
            jobs,
        }))
    }

    /// The job `--rw` describes, with fio's block size for its pattern unless `--bs`.
    fn one_job(&self, rw: Rw, runtime: Duration) -> Result<JobSpec> {
        let bs = self
            .bs
            .unwrap_or(if rw.is_random() { 4096 } else { 1 << 20 });
        anyhow::ensure!(bs <= 1 << 30, "--bs must be at most 1 GiB");
        anyhow::ensure!(
            !self.direct || bs.is_multiple_of(512),
            "--direct needs --bs to be a multiple of 512 bytes (got {bs})"
        );
        let depth = self.iodepth;
        let jobs = self.jobs.unwrap_or(1);
        // Every operation in flight owns a buffer: that is the run's memory.
        let memory = bs * u64::from(depth) * u64::from(jobs);
        anyhow::ensure!(
            memory <= 4 << 30,
            "--bs × --iodepth × --jobs would hold {memory} bytes of buffers; at most 4 GiB"
        );
        Ok(JobSpec {
            name: format!("{} {} Q{depth}T{jobs}", rw.name(), bench::size_label(bs)),
            rw,
            rwmixread: self.rwmixread,
            bs,
            iodepth: depth as usize,
            jobs: jobs as usize,
            runtime,
            end_fsync: self.end_fsync,
            fsync_every: self.fsync.unwrap_or(0),
            pattern: self.pattern,
        })
    }
}

/// `--write-tree N×SIZE`: a count of files and their size (`1000x4K`, `1000×4K`).
fn parse_shape(s: &str) -> Result<bench::writetree::Shape, String> {
    let usage = || format!("'{s}': give NxSIZE, a count of files and their size, e.g. 1000x4K");
    let (n, size) = s.split_once(['x', 'X', '×']).ok_or_else(usage)?;
    let files = n
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(usage)?;
    let size = parse_size_arg(size.trim()).map_err(|e| format!("'{s}': SIZE {e}"))?;
    Ok(bench::writetree::Shape { files, size })
}

/// `--fsync N`: a number of writes, as fio's `fsync=N`.
fn parse_fsync_every(s: &str) -> Result<u64, String> {
    s.parse::<u64>().ok().filter(|&n| n >= 1).ok_or_else(|| {
        "N is a number of writes between fsyncs, as fio's --fsync=N; for one fsync after \
         the last write use --end-fsync"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rw_accepts_each_pattern_under_the_name_its_report_shows() {
        for &arg in RwArg::value_variants() {
            let shown = arg.to_possible_value().expect("not hidden");
            assert_eq!(shown.get_name(), Rw::from(arg).name());
        }
    }
}
