//! Argument groups that several commands share — the walk (`--exclude`, `-L`, `-x`),
//! the read stage (`--io`, `-j`, `--queue-depth`, `--buffer-size`, `--no-mmap`) and
//! sharding (`--shard`, `--shards`) — and their validation into [`WalkOptions`],
//! [`ReadOptions`](read::ReadOptions) and [`Shard`]. The limits live here because they
//! guard the command line: a job given options directly trusts its caller.
//!
//! Also the value enums of `--io` and `--algo`: the library's [`IoMode`] and [`Algo`]
//! know nothing of clap, so the command line has its own, converted on the way in.

use std::ffi::OsString;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::algo::Algo;
use crate::progress::ProgressMode;
use crate::read::limits::{self, MAX_JOBS, MAX_QUEUE_DEPTH, MAX_READ_BUFFERS};
use crate::read::{self, IoMode};
use crate::shard::Shard;
use crate::walk::WalkOptions;

/// Options of the walk stage, shared by every job that walks a tree.
#[derive(Args, Debug)]
pub(super) struct WalkArgs {
    /// Leave out entries whose name or path matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,

    /// Follow symbolic links (loops are detected and reported).
    #[arg(short = 'L', long)]
    follow: bool,

    /// Stay on the file system of each starting path.
    #[arg(short = 'x', long)]
    one_file_system: bool,
}

impl WalkArgs {
    pub(super) fn options(&self) -> WalkOptions {
        WalkOptions {
            exclude: self.exclude.clone(),
            follow: self.follow,
            one_file_system: self.one_file_system,
            ..Default::default()
        }
    }
}

/// Options of the read stage, shared by every job that reads files.
#[derive(Args, Debug)]
pub(super) struct IoArgs {
    /// I/O backend: io_uring (falls back to threads where unavailable), or threads.
    #[arg(long = "io", value_enum, default_value = "auto")]
    pub(super) io: IoArg,

    /// Rings (uring) or reader threads (threads), 1 to 1024 [default: cores; for
    /// threads 2 × cores, at least 16].
    #[arg(short = 'j', long, value_parser = parse_jobs)]
    pub(super) jobs: Option<usize>,

    /// Files in flight at once over all readers, 1 to 65536 [default: 32; with
    /// io_uring, up to 128 while reads miss the page cache].
    #[arg(long, value_name = "N", value_parser = parse_queue_depth)]
    pub(super) queue_depth: Option<usize>,

    /// Size of each read, e.g. 256k, 1MiB (at most 1 GiB; all read buffers together at
    /// most 16 GiB).
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size_arg)]
    pub(super) buffer_size: Option<u64>,

    /// Read large files into buffers instead of memory-mapping them.
    #[arg(long)]
    pub(super) no_mmap: bool,
}

impl IoArgs {
    /// Probes the backend and applies the user's overrides to the defaults.
    pub(super) fn options(&self, quiet: bool) -> Result<read::ReadOptions> {
        let (backend, notice) = read::select(self.io.into())?;
        if let (Some(notice), false) = (notice, quiet) {
            crate::report::text::say_plainly(&notice);
        }
        let mut options = read::ReadOptions::defaults(backend);
        if let Some(jobs) = self.jobs {
            options.jobs = jobs;
        }
        if let Some(depth) = self.queue_depth {
            // A depth the user chose is kept, cold cache or not.
            options.queue_depth = depth;
            options.max_queue_depth = depth;
        }
        if self.no_mmap {
            options.mmap_threshold = None;
        }
        if let Some(size) = self.buffer_size {
            anyhow::ensure!(
                size <= limits::MAX_BUFFER_SIZE as u64,
                "--buffer-size must be at most 1 GiB (got {size} bytes)"
            );
            options.buffer_size = size as usize;
        }
        check_read_buffers(&options)?;
        Ok(options)
    }
}

/// `--io`: which backend to read with. The variants' doc comments are the help that
/// `--help` shows for each value.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum IoArg {
    /// io_uring where it works, else the thread pool (with a notice).
    Auto,
    /// io_uring only; fails when the kernel refuses it.
    Uring,
    /// Blocking `pread` workers.
    Threads,
}

impl From<IoArg> for IoMode {
    fn from(arg: IoArg) -> Self {
        match arg {
            IoArg::Auto => IoMode::Auto,
            IoArg::Uring => IoMode::Uring,
            IoArg::Threads => IoMode::Threads,
        }
    }
}

/// Refuses settings whose buffer pool would hold more than [`MAX_READ_BUFFERS`].
fn check_read_buffers(options: &read::ReadOptions) -> Result<()> {
    let buffers = options.pool_buffers();
    let bytes = limits::pool_bytes(options);
    anyhow::ensure!(
        bytes <= MAX_READ_BUFFERS,
        "--queue-depth, --jobs and --buffer-size would hold {bytes} bytes of read buffers \
         ({buffers} of {} bytes); at most {} GiB",
        options.buffer_size,
        MAX_READ_BUFFERS >> 30
    );
    Ok(())
}

pub(super) fn parse_jobs(s: &str) -> Result<usize, String> {
    parse_count(s, MAX_JOBS)
}

pub(super) fn parse_queue_depth(s: &str) -> Result<usize, String> {
    parse_count(s, MAX_QUEUE_DEPTH)
}

/// A whole number from 1 to `max`; clap names the option in front of the error.
fn parse_count(s: &str, max: usize) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("must be a whole number from 1 to {max}"))
}

/// `--progress`, shared by every long job.
#[derive(Args, Debug)]
pub(super) struct ProgressArgs {
    /// Progress on stderr [default: auto; none with -q]. Until the total is known it
    /// says "counting…" with what was found so far, never a percentage.
    #[arg(long, value_enum, value_name = "WHEN")]
    progress: Option<ProgressArg>,
}

impl ProgressArgs {
    /// The mode asked for; `-q` (`quiet`) turns the default off, not an explicit one.
    pub(super) fn mode(&self, quiet: bool) -> ProgressMode {
        match (self.progress, quiet) {
            (Some(arg), _) => arg.into(),
            (None, true) => ProgressMode::None,
            (None, false) => ProgressMode::Auto,
        }
    }
}

/// `--progress`: how progress is shown. The variants' doc comments are the help that
/// `--help` shows for each value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgressArg {
    /// A bar when stderr is a terminal (not TERM=dumb); nothing otherwise.
    Auto,
    /// A bar; where stderr cannot show one (not a terminal, TERM=dumb), plain lines.
    Bar,
    /// A line every 5 s on stderr (elapsed, files, bytes, rate, ETA) and one at the
    /// end, for logs without a terminal (Slurm, Kubernetes).
    Plain,
    /// Nothing.
    None,
}

impl From<ProgressArg> for ProgressMode {
    fn from(arg: ProgressArg) -> Self {
        match arg {
            ProgressArg::Auto => ProgressMode::Auto,
            ProgressArg::Bar => ProgressMode::Bar,
            ProgressArg::Plain => ProgressMode::Plain,
            ProgressArg::None => ProgressMode::None,
        }
    }
}

/// `-a`/`--algo` of hash and check: a checksum algorithm by its [`Algo::name`], in the
/// order of [`crate::algo::ALL`] (a test holds both to it).
// No doc comments on the variants: `--help` lists the names alone, as it always has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum AlgoArg {
    Blake3,
    Sha256,
    Sha512,
    Sha1,
    Md5,
    Xxh3,
}

impl From<AlgoArg> for Algo {
    fn from(arg: AlgoArg) -> Self {
        match arg {
            AlgoArg::Blake3 => Algo::Blake3,
            AlgoArg::Sha256 => Algo::Sha256,
            AlgoArg::Sha512 => Algo::Sha512,
            AlgoArg::Sha1 => Algo::Sha1,
            AlgoArg::Md5 => Algo::Md5,
            AlgoArg::Xxh3 => Algo::Xxh3,
        }
    }
}

/// `--shard K/N`, or `--shards N` with the index from the scheduler's environment.
#[derive(Args, Debug)]
pub(super) struct ShardArgs {
    /// Only shard K of N, counted from 1 (1/4 ... 4/4, as cargo nextest --partition
    /// count:K/N): the files whose path, as written in the manifest, hashes to K-1 mod N.
    /// Every worker must be given the same paths from the same directory.
    #[arg(long, value_name = "K/N", conflicts_with = "shards")]
    shard: Option<Shard>,

    /// N shards; this worker's 0-based index i is taken from JOB_COMPLETION_INDEX
    /// (Kubernetes) or SLURM_ARRAY_TASK_ID (Slurm: use --array=0-(N-1)), and it runs
    /// shard i+1 of N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    shards: Option<u64>,
}

impl ShardArgs {
    pub(super) fn select(&self) -> Result<Option<Shard>> {
        match (self.shard, self.shards) {
            (Some(shard), _) => Ok(Some(shard)),
            (None, Some(count)) => Shard::from_env(count, |var| std::env::var(var).ok()).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// [`ShardArgs::select`], refused for standard input: it has no path to shard by.
    pub(super) fn select_for_walk(&self, paths: &[OsString]) -> Result<Option<Shard>> {
        let shard = self.select()?;
        anyhow::ensure!(
            shard.is_none() || !(paths.is_empty() || paths == ["-"]),
            "--shard and --shards split a tree: give the files or directories to walk"
        );
        Ok(shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_pool_too_large_to_count_is_refused_not_wrapped_around() {
        let mut options = read::ReadOptions::defaults(read::BackendKind::Threads);
        check_read_buffers(&options).expect("the defaults fit");
        // Counted without saturation, the read-ahead room wraps this around to a pool
        // of three buffers.
        options.queue_depth = usize::MAX;
        options.jobs = 1;
        let err = check_read_buffers(&options).expect_err("no such pool fits");
        assert!(err.to_string().contains("at most 16 GiB"), "{err}");
    }

    #[test]
    fn algo_accepts_every_algorithm_under_its_own_name_in_table_order() {
        let expected: Vec<&str> = crate::algo::ALL.iter().map(|a| a.name()).collect();
        let shown: Vec<String> = AlgoArg::value_variants()
            .iter()
            .map(|v| {
                v.to_possible_value()
                    .expect("not hidden")
                    .get_name()
                    .to_owned()
            })
            .collect();
        let converted: Vec<&str> = AlgoArg::value_variants()
            .iter()
            .map(|&v| Algo::from(v).name())
            .collect();
        assert_eq!(shown, expected);
        assert_eq!(converted, expected);
    }
}
