//! Command-line interface: parses arguments into job configurations and maps the result
//! to an exit code. Exit codes: 0 all good, 1 some file failed, 2 usage or fatal error,
//! 130/143 interrupted by SIGINT/SIGTERM.

mod docs;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::archive::{self, Compression, ListConfig, PackConfig, UnpackConfig};
use crate::bench::{self, BenchConfig, job::JobSpec, job::Rw};
use crate::check::{self, CheckConfig, Verbosity};
use crate::hash::{self, HashConfig, digest::Algo};
use crate::manifest::Format;
use crate::merge::MergeConfig;
use crate::output::{self, Cleanup};
use crate::read::{self, IoMode};
use crate::shard::Shard;
use crate::walk::WalkOptions;

/// Exit code: everything succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code: the run finished, but some files failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad usage or a fatal error.
pub const EXIT_FATAL: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "spate",
    version,
    about = "Push whole directory trees through fast async file I/O: checksum, archive, benchmark."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Hash files and directory trees; print a manifest b3sum/sha256sum can check.
    #[command(after_help = HASH_EXAMPLES)]
    Hash(HashArgs),
    /// Verify files against manifests from spate, b3sum or sha256sum and friends.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Pack files and trees into a tar archive, compressed by the output's extension.
    #[command(after_help = PACK_EXAMPLES)]
    Pack(PackArgs),
    /// Extract an archive (any compression, found from its first bytes) safely beneath DIR.
    #[command(after_help = UNPACK_EXAMPLES)]
    Unpack(UnpackArgs),
    /// List an archive's entries, like `tar -tv`.
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Merge shard manifests into one, in walk order; refuse conflicting digests.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge(MergeArgs),
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one per subcommand into a directory.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManArgs),
    /// Measure disk throughput on a test file of its own (like fio or CrystalDiskMark),
    /// or how fast an existing tree reads.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
}

const BENCH_EXAMPLES: &str = "\
Examples:
  spate bench /mnt/data                          # SEQ1M Q8T1 ... RND4K Q1T1, read and write
  spate bench --rw randread --bs 4k --iodepth 32 --direct --size 4GiB .
  spate bench --rw write --bs 1M --fsync --json /tmp | jq '.jobs[0].write.mb_s'
  spate bench --tree ~/Photos                    # files/s and MB/s before hashing it";

#[derive(Args, Debug)]
struct BenchArgs {
    /// Directory for the test file (created there, removed at the end) [default: .].
    #[arg(value_name = "DIR", conflicts_with = "tree")]
    dir: Option<PathBuf>,

    /// One job instead of the preset: read, write, randread, randwrite or randrw.
    #[arg(long, value_enum)]
    rw: Option<Rw>,

    /// Percentage of reads in a randrw job.
    #[arg(long, value_name = "PCT", default_value_t = 50, requires = "rw",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    rwmixread: u8,

    /// Bytes per operation [default: 1M for read/write, 4k for random jobs].
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg, requires = "rw")]
    bs: Option<u64>,

    /// Operations in flight per worker (uring: per ring; threads: threads per worker).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "rw",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    iodepth: u32,

    /// Workers, each on its own slice of the test file (--tree: rings or threads).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,

    /// Size of the test file.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg, default_value = "1GiB")]
    size: u64,

    /// Longest a job runs, in seconds; it ends sooner after one pass over the file.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    runtime: f64,

    /// O_DIRECT: bypass the page cache (aligned buffers; --bs a multiple of 512).
    #[arg(long)]
    direct: bool,

    /// Write jobs: end with an fsync, counted in the time (the preset always does).
    #[arg(long, requires = "rw")]
    fsync: bool,

    /// Keep the test file's pages in the page cache before read jobs (default: drop
    /// them, as fio does, so reads measure the disk).
    #[arg(long)]
    cached: bool,

    /// Read every file below DIR instead (nothing is written): files/s, MB/s and
    /// per-file latency.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["rw", "size", "direct", "fsync", "cached"])]
    tree: Option<PathBuf>,

    /// I/O engine: io_uring (falls back to threads where unavailable), or threads.
    #[arg(long = "io", value_enum, default_value = "auto")]
    io: IoMode,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// No progress line and no notices.
    #[arg(short, long)]
    quiet: bool,
}

const PACK_EXAMPLES: &str = "\
Examples:
  spate pack -o photos.tar.zst ~/Photos          # zstd on every core, from the extension
  spate pack --manifest src.b3 -o src.tgz src/   # archive and checksum in one read
  spate pack --reproducible -o - dist | ssh host 'cat > dist.tar.zst'

pack reads with one reader (ring or thread) unless -j says otherwise: compression keeps
the cores busy, and one reader with many files in flight keeps up with it.";

const UNPACK_EXAMPLES: &str = "\
Examples:
  spate unpack photos.tar.zst -C restore/        # refuses names that leave restore/
  curl -s URL | spate unpack - -C src --strip-components 1

Symbolic links are created as stored, absolute targets too (as GNU tar does); no entry
is ever written through a symbolic link, whether the archive made it or it was there.";

const LIST_EXAMPLES: &str = "\
Examples:
  spate list photos.tar.zst
  spate list --json backup.tgz | jq -r .path";

#[derive(Args, Debug)]
struct PackArgs {
    /// Files and directories to pack (stored under these names, without a leading '/').
    #[arg(required = true)]
    paths: Vec<OsString>,

    /// Archive to write ('-' for standard output); .tar, .tar.gz/.tgz, .tar.zst,
    /// .tar.xz or .tar.bz2 picks the compression.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,

    /// Compression, overriding the output's extension [default: from it; zstd for '-'].
    #[arg(long, value_enum)]
    compress: Option<Compression>,

    /// Compression level, as the tool's own (gzip 1-9, zstd 1-22, xz 0-9, bzip2 1-9)
    /// [default: gzip 6, xz 6, bzip2 9; zstd: level 2 with a larger hash table and longer
    /// minimum matches, a little smaller than level 3 on text at a fifth less CPU].
    #[arg(long)]
    level: Option<i32>,

    /// Compression worker threads; 0 compresses on one thread of its own [default: all
    /// cores].
    #[arg(long)]
    threads: Option<u32>,

    /// Same tree, same bytes: owner 0/0 with no names, mtimes clamped to --mtime or
    /// SOURCE_DATE_EPOCH (when set).
    #[arg(long)]
    reproducible: bool,

    /// With --reproducible: latest mtime stored (seconds since 1970).
    #[arg(long, value_name = "SECONDS", requires = "reproducible")]
    mtime: Option<u64>,

    /// Also write a BLAKE3 manifest of every packed file, from the same read.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,

    #[command(flatten)]
    walk: WalkArgs,

    #[command(flatten)]
    io: IoArgs,

    /// No progress bar and no notices about skipped entries (errors are still shown).
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct UnpackArgs {
    /// Archive to extract ('-' for standard input).
    archive: PathBuf,

    /// Directory to extract into (created if missing).
    #[arg(
        short = 'C',
        long = "directory",
        value_name = "DIR",
        default_value = "."
    )]
    dest: PathBuf,

    /// Remove N leading components from every name.
    #[arg(long, value_name = "N", default_value_t = 0)]
    strip_components: usize,

    /// Replace files that already exist (default: refuse).
    #[arg(long)]
    overwrite: bool,

    /// Create device nodes and FIFOs (default: skip them).
    #[arg(long)]
    allow_special: bool,

    /// Keep setuid, setgid and sticky bits (default: dropped).
    #[arg(long)]
    same_permissions: bool,

    /// Stop when the entries would write more than SIZE in all (decompression bombs).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg, default_value = "1TiB")]
    max_size: u64,

    /// No notices about skipped entries.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Archive to list ('-' for standard input).
    archive: PathBuf,

    /// One JSON object per entry.
    #[arg(long)]
    json: bool,
}

const CHECK_EXAMPLES: &str = "\
Examples:
  spate check doc.b3                    # paths are relative to the manifest's directory
  spate check -q SHA256SUMS             # print only files that are not OK
  spate check --audit /data data.b3     # also list files under /data the manifest lacks (NEW)
  find . -type f -exec sha256sum {} + | spate check -   # read the manifest from stdin";

#[derive(Args, Debug)]
struct CheckArgs {
    /// Manifests to verify ('-' reads standard input): GNU lines ('HASH  NAME'), BSD
    /// lines ('ALGO (NAME) = HASH') or spate's JSON Lines.
    #[arg(required = true)]
    manifests: Vec<OsString>,

    /// Algorithm of lines that do not name one [default: from the digest length; 64 hex
    /// digits are BLAKE3 or SHA-256, from the manifest's name or else either].
    #[arg(short = 'a', long = "algo", value_enum)]
    algo: Option<Algo>,

    /// Directory the manifest's paths are relative to [default: the manifest's directory].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Check lines that name absolute paths (refused by default).
    #[arg(long)]
    allow_absolute: bool,

    /// Say nothing about listed files that do not exist.
    #[arg(long)]
    ignore_missing: bool,

    /// Fail when a line is malformed.
    #[arg(long)]
    strict: bool,

    /// Also walk DIR and report files no manifest lists as NEW (repeatable).
    #[arg(long, value_name = "DIR")]
    audit: Vec<PathBuf>,

    /// Print only files that are not OK (and the summary when something failed).
    #[arg(short, long)]
    quiet: bool,

    /// Print nothing: the exit code says whether everything verified.
    #[arg(long, conflicts_with = "quiet")]
    status: bool,

    /// One JSON object per file: path, status, algos, manifest, line, error.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    walk: WalkArgs,

    #[command(flatten)]
    shard: ShardArgs,

    #[command(flatten)]
    io: IoArgs,
}

const HASH_EXAMPLES: &str = "\
Examples:
  spate hash /usr/share/doc > doc.b3        # BLAKE3 manifest; verify with b3sum -c doc.b3
  spate hash -a sha256 -o photos.sha256 ~/Photos   # sha256sum -c photos.sha256 checks it
  spate hash -a sha256 -a md5 --json data/  # several digests from one read, JSON Lines";

#[derive(Args, Debug)]
struct HashArgs {
    /// Files and directories to hash; '-' or nothing reads standard input.
    paths: Vec<OsString>,

    /// Digest algorithm; repeat for several digests from one read.
    #[arg(short = 'a', long = "algo", value_enum, default_value = "blake3")]
    algos: Vec<Algo>,

    /// BSD-style lines: 'BLAKE3 (path) = hash' (implied by more than one --algo).
    #[arg(long, conflicts_with = "json")]
    tag: bool,

    /// JSON Lines: one object per file with path, size and one field per digest.
    #[arg(long)]
    json: bool,

    /// Write the manifest to FILE atomically instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    walk: WalkArgs,

    #[command(flatten)]
    shard: ShardArgs,

    #[command(flatten)]
    io: IoArgs,

    /// No progress bar and no notices about skipped entries (errors are still shown).
    #[arg(short, long)]
    quiet: bool,

    /// Print a summary (files, bytes, skipped, errors, time, throughput) on stderr.
    #[arg(long)]
    stats: bool,
}

/// Options of the walk stage, shared by every job that walks a tree.
#[derive(Args, Debug)]
struct WalkArgs {
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

/// Options of the read stage, shared by every job that reads files.
#[derive(Args, Debug)]
struct IoArgs {
    /// I/O backend: io_uring (falls back to threads where unavailable), or threads.
    #[arg(long = "io", value_enum, default_value = "auto")]
    io: IoMode,

    /// Rings (uring) or reader threads (threads), 1 to 1024 [default: cores; for
    /// threads 2 × cores, at least 16].
    #[arg(short = 'j', long, value_parser = parse_jobs)]
    jobs: Option<usize>,

    /// Files in flight at once over all readers, 1 to 65536 [default: 32; with
    /// io_uring, up to 128 while reads miss the page cache].
    #[arg(long, value_name = "N", value_parser = parse_queue_depth)]
    queue_depth: Option<usize>,

    /// Size of each read, e.g. 256k, 1MiB (at most 1 GiB; all read buffers together at
    /// most 16 GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    buffer_size: Option<u64>,

    /// Read large files into buffers instead of memory-mapping them.
    #[arg(long)]
    no_mmap: bool,
}

/// Most rings or reader threads: the threads default (2 × cores) of a 512-core
/// machine. Past a few readers per core each only waits for a core; a larger number is
/// a typo, and `-j 100000000` spent its first minute starting readers.
const MAX_JOBS: usize = 1024;

/// Most files in flight. The deepest device queue there is (NVMe: 65536 commands)
/// cannot take more; a larger number only sizes channels and pools, and a huge one
/// overflowed their allocations (a panic) or exhausted memory.
const MAX_QUEUE_DEPTH: usize = 65536;

/// Most bytes the read buffer pool may hold (it is the run's memory bound: one buffer
/// per file in flight plus read-ahead per job). The defaults hold tens of MiB; 16 GiB
/// leaves room for deliberate large-memory runs, yet refuses products that can only be
/// typos before they end in an allocation failure or the OOM killer (`--queue-depth
/// 100000000` was killed) instead of a message. A fixed bound rather than a share of
/// RAM, so one command line is accepted or refused alike on every machine.
const MAX_READ_BUFFERS: u64 = 16 << 30;

fn parse_jobs(s: &str) -> Result<usize, String> {
    parse_count(s, MAX_JOBS)
}

fn parse_queue_depth(s: &str) -> Result<usize, String> {
    parse_count(s, MAX_QUEUE_DEPTH)
}

/// A whole number from 1 to `max`; clap names the option in front of the error.
fn parse_count(s: &str, max: usize) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("must be a whole number from 1 to {max}"))
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    let n = parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{e}"))?;
    if n == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(n)
}

impl WalkArgs {
    fn options(&self) -> WalkOptions {
        WalkOptions {
            exclude: self.exclude.clone(),
            follow: self.follow,
            one_file_system: self.one_file_system,
            ..Default::default()
        }
    }
}

impl IoArgs {
    /// Probes the backend and applies the user's overrides to the defaults.
    fn options(&self, quiet: bool) -> Result<read::ReadOptions> {
        let (backend, notice) = read::select(self.io)?;
        if let (Some(notice), false) = (notice, quiet) {
            let _ = writeln!(std::io::stderr(), "spate: {notice}");
        }
        let mut options = hash::default_read_options(backend);
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
                size <= 1 << 30,
                "--buffer-size must be at most 1 GiB (got {size} bytes)"
            );
            options.buffer_size = size as usize;
        }
        check_read_buffers(&options)?;
        Ok(options)
    }
}

/// Refuses settings whose buffer pool would hold more than [`MAX_READ_BUFFERS`].
fn check_read_buffers(options: &read::ReadOptions) -> Result<()> {
    let buffers = options.pool_buffers();
    let bytes = (buffers as u64).saturating_mul(options.buffer_size as u64);
    anyhow::ensure!(
        bytes <= MAX_READ_BUFFERS,
        "--queue-depth, --jobs and --buffer-size would hold {bytes} bytes of read buffers \
         ({buffers} of {} bytes); at most {} GiB",
        options.buffer_size,
        MAX_READ_BUFFERS >> 30
    );
    Ok(())
}

impl HashArgs {
    fn config(&self) -> Result<HashConfig> {
        hash::validate_paths(&self.paths)?;
        let mut algos = self.algos.clone();
        // `-a sha256 -a sha256` means one digest.
        let mut seen = Vec::new();
        algos.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        let format = if self.json {
            Format::Json
        } else if self.tag || algos.len() > 1 {
            // GNU lines do not name their algorithm: with several digests per file only
            // BSD lines can be checked unambiguously.
            Format::Tag
        } else {
            Format::Gnu
        };
        Ok(HashConfig {
            paths: self.paths.clone(),
            algos,
            format,
            output: self.output.clone(),
            walk: WalkOptions {
                shard: self.shard.select_for_walk(&self.paths)?,
                ..self.walk.options()
            },
            read: self.io.options(self.quiet)?,
            progress: !self.quiet,
            notices: !self.quiet,
            stats: self.stats,
        })
    }
}

impl CheckArgs {
    fn config(&self) -> Result<CheckConfig> {
        let verbosity = if self.status {
            Verbosity::Status
        } else if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        };
        Ok(CheckConfig {
            manifests: self.manifests.clone(),
            algo: self.algo,
            root: self.root.clone(),
            allow_absolute: self.allow_absolute,
            ignore_missing: self.ignore_missing,
            strict: self.strict,
            audit: self.audit.clone(),
            verbosity,
            json: self.json,
            walk: WalkOptions {
                shard: self.shard.select()?,
                ..self.walk.options()
            },
            read: self.io.options(self.quiet || self.status)?,
            progress: !(self.quiet || self.status),
        })
    }
}

impl PackArgs {
    fn config(&self) -> Result<PackConfig> {
        let stdout = self.output.as_os_str() == "-";
        let compression = match (self.compress, Compression::from_name(&self.output)) {
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) if stdout => Compression::Zstd,
            (None, None) => anyhow::bail!(
                "cannot tell the compression from {}: name it .tar, .tar.gz, .tar.zst, \
                 .tar.xz or .tar.bz2, or give --compress",
                self.output.display()
            ),
        };
        let levels = compression.levels();
        if let Some(level) = self.level {
            anyhow::ensure!(
                levels.contains(&level),
                "--level {level} is out of range for {} ({}..={})",
                compression.name(),
                levels.start(),
                levels.end()
            );
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        let clamp_mtime = match (self.reproducible, self.mtime) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => Some(v.trim().parse().map_err(|_| {
                    anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
                })?),
                Err(_) => None,
            },
        };
        Ok(PackConfig {
            paths: self.paths.clone(),
            output: self.output.clone(),
            compression,
            level: self.level,
            threads: self.threads.unwrap_or(cores),
            reproducible: self.reproducible,
            clamp_mtime,
            manifest: self.manifest.clone(),
            walk: self.walk.options(),
            read: self.pack_read_options()?,
            progress: !self.quiet,
            notices: !self.quiet,
        })
    }

    /// The read stage for packing: one reader unless `-j` says otherwise. Compression
    /// keeps every core busy, and one ring (or thread) with 32 files in flight keeps up
    /// with it; a second one only competed with the compressor for the cores (measured
    /// 4% slower on the benchmark's text tree, with either backend).
    fn pack_read_options(&self) -> Result<read::ReadOptions> {
        let mut options = self.io.options(self.quiet)?;
        if self.io.jobs.is_none() {
            options.jobs = 1;
        }
        Ok(options)
    }
}

impl BenchArgs {
    fn config(&self) -> Result<BenchConfig> {
        let (backend, notice) = read::select(self.io)?;
        if let (Some(notice), false) = (notice, self.quiet) {
            let _ = writeln!(std::io::stderr(), "spate: {notice}");
        }
        anyhow::ensure!(
            self.runtime.is_finite() && self.runtime > 0.0,
            "--runtime must be a positive number of seconds"
        );
        let runtime = std::time::Duration::from_secs_f64(self.runtime.min(1e9));
        let work = if let Some(root) = &self.tree {
            let mut options = hash::default_read_options(backend);
            if let Some(jobs) = self.jobs {
                options.jobs = jobs as usize;
            }
            bench::Work::Tree {
                root: root.clone(),
                read: options,
            }
        } else {
            anyhow::ensure!(
                self.rw.is_some() || self.jobs.is_none(),
                "--jobs needs --rw (the preset runs one worker per test, as T1 says) or --tree"
            );
            let jobs = match self.rw {
                None => bench::preset(runtime),
                Some(rw) => {
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
                        "--bs × --iodepth × --jobs would hold {memory} bytes of buffers; \
                         at most 4 GiB"
                    );
                    vec![JobSpec {
                        name: format!("{} {} Q{depth}T{jobs}", rw.name(), size_label(bs)),
                        rw,
                        rwmixread: self.rwmixread,
                        bs,
                        iodepth: depth as usize,
                        jobs: jobs as usize,
                        runtime,
                        fsync: self.fsync,
                    }]
                }
            };
            bench::Work::File(bench::FileWork {
                dir: self.dir.clone().unwrap_or_else(|| PathBuf::from(".")),
                size: self.size,
                direct: self.direct,
                cached: self.cached,
                jobs,
            })
        };
        Ok(BenchConfig {
            work,
            backend,
            json: self.json,
            progress: !self.quiet,
        })
    }
}

/// A block size as fio and CrystalDiskMark write it: `4K`, `1M`, or bytes.
fn size_label(bs: u64) -> String {
    match bs {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

impl UnpackArgs {
    fn config(&self) -> UnpackConfig {
        UnpackConfig {
            archive: self.archive.clone(),
            dest: self.dest.clone(),
            strip_components: self.strip_components,
            overwrite: self.overwrite,
            allow_special: self.allow_special,
            same_permissions: self.same_permissions,
            max_size: self.max_size,
            quiet: self.quiet,
        }
    }
}

/// Parses the command line, runs the job and returns the process exit code.
pub fn main() -> i32 {
    // Die quietly on a closed pipe (`spate hash DIR | head -1`), as coreutils do. And
    // turn an exceeded file-size limit into an EFBIG write error instead of a kill, so
    // the temporary output is removed like after any other write failure.
    // SAFETY: setting signal dispositions at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                EXIT_FATAL
            } else {
                EXIT_OK
            };
        }
    };
    let cleanup = Arc::new(Cleanup::default());
    match run(cli, &cleanup) {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_FAILED,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "spate: {err:#}");
            EXIT_FATAL
        }
    }
}

fn run(cli: Cli, cleanup: &Arc<Cleanup>) -> Result<bool> {
    output::handle_signals(Arc::clone(cleanup))?;
    match cli.command {
        Command::Hash(args) => {
            let config = args.config()?;
            hash::run(&config, cleanup)
        }
        Command::Check(args) => {
            let config = args.config()?;
            check::run(&config)
        }
        Command::Pack(args) => {
            let config = args.config()?;
            archive::pack::run(&config, cleanup)
        }
        Command::Unpack(args) => archive::unpack::run(&args.config(), cleanup),
        Command::List(args) => archive::list::run(&ListConfig {
            archive: args.archive.clone(),
            json: args.json,
        }),
        Command::Merge(args) => crate::merge::run(&args.config(), cleanup),
        Command::Completions(args) => {
            docs::completions(Cli::command(), args.shell).map(|()| true)
        }
        Command::Man(args) => docs::man(Cli::command(), args.out.as_deref()).map(|()| true),
        Command::Bench(args) => bench::run(&args.config()?, cleanup),
    }
}

/// `--shard K/N`, or `--shards N` with the index from the scheduler's environment.
#[derive(Args, Debug)]
struct ShardArgs {
    /// Only shard K of N (0-based): files whose path (as written in the manifest) hashes
    /// to K mod N. Every worker must be given the same paths.
    #[arg(long, value_name = "K/N", conflicts_with = "shards")]
    shard: Option<Shard>,

    /// N shards, this worker's index taken from JOB_COMPLETION_INDEX (Kubernetes) or
    /// SLURM_ARRAY_TASK_ID (Slurm: use --array=0-(N-1)).
    #[arg(long, value_name = "N")]
    shards: Option<u64>,
}

impl ShardArgs {
    fn select(&self) -> Result<Option<Shard>> {
        match (self.shard, self.shards) {
            (Some(shard), _) => Ok(Some(shard)),
            (None, Some(count)) => Shard::from_env(count, |var| std::env::var(var).ok()).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// [`ShardArgs::select`], refused for standard input: it has no path to shard by.
    fn select_for_walk(&self, paths: &[OsString]) -> Result<Option<Shard>> {
        let shard = self.select()?;
        anyhow::ensure!(
            shard.is_none() || !(paths.is_empty() || paths == ["-"]),
            "--shard and --shards split a tree: give the files or directories to walk"
        );
        Ok(shard)
    }
}

const MERGE_EXAMPLES: &str = "\
Examples:
  spate merge --shards 4 part-0.b3 part-1.b3 part-2.b3 part-3.b3 -o all.b3
  spate merge -o all.json shards/*.json     # JSON Lines in, JSON Lines out
  spate merge old.b3 new.b3 | b3sum -c      # refuses a path listed with two digests";

#[derive(Args, Debug)]
struct MergeArgs {
    /// Manifests to merge, each in the order `spate hash` wrote it, all in one format.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,

    /// Write the merged manifest to FILE atomically instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// The inputs are the N shards of one tree: report shards no input lists a file of.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    shards: Option<u64>,

    /// No notices about paths listed twice with the same digest.
    #[arg(short, long)]
    quiet: bool,
}

impl MergeArgs {
    fn config(&self) -> MergeConfig {
        MergeConfig {
            inputs: self.inputs.clone(),
            output: self.output.clone(),
            shards: self.shards,
            quiet: self.quiet,
        }
    }
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  spate completions bash > /etc/bash_completion.d/spate
  spate completions zsh > \"${fpath[1]}/_spate\"
  spate completions fish > ~/.config/fish/completions/spate.fish";

#[derive(Args, Debug)]
struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

const MAN_EXAMPLES: &str = "\
Examples:
  spate man | man -l -                      # read it now
  spate man --out /usr/local/share/man/man1 # spate.1, spate-hash.1, ...";

#[derive(Args, Debug)]
struct ManArgs {
    /// Write spate.1 and one page per subcommand into DIR instead of printing spate.1.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_pool_too_large_to_count_is_refused_not_wrapped_around() {
        let mut options = hash::default_read_options(read::BackendKind::Threads);
        check_read_buffers(&options).expect("the defaults fit");
        // Counted without saturation, the read-ahead room wraps this around to a pool
        // of three buffers.
        options.queue_depth = usize::MAX;
        options.jobs = 1;
        let err = check_read_buffers(&options).expect_err("no such pool fits");
        assert!(err.to_string().contains("at most 16 GiB"), "{err}");
    }
}
