//! Command-line interface: parses arguments into job configurations and maps the result
//! to an exit code. Exit codes: 0 all good, 1 some file failed, 2 usage or fatal error,
//! 130/143 interrupted by SIGINT/SIGTERM.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::check::{self, CheckConfig, Verbosity};
use crate::hash::{self, HashConfig, digest::Algo};
use crate::manifest::Format;
use crate::output::{self, Cleanup};
use crate::read::{self, IoMode};
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

    /// Rings (uring) or reader threads (threads) [default: cores, or 2 × cores for threads].
    #[arg(short = 'j', long)]
    jobs: Option<usize>,

    /// Files in flight at once over all readers.
    #[arg(long, value_name = "N")]
    queue_depth: Option<usize>,

    /// Size of each read, e.g. 256k, 1MiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    buffer_size: Option<u64>,

    /// Read large files into buffers instead of memory-mapping them.
    #[arg(long)]
    no_mmap: bool,
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
            anyhow::ensure!(jobs >= 1, "--jobs must be at least 1");
            options.jobs = jobs;
        }
        if let Some(depth) = self.queue_depth {
            anyhow::ensure!(depth >= 1, "--queue-depth must be at least 1");
            options.queue_depth = depth;
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
        Ok(options)
    }
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
            walk: self.walk.options(),
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
            walk: self.walk.options(),
            read: self.io.options(self.quiet || self.status)?,
            progress: !(self.quiet || self.status),
        })
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
    }
}
