//! `spate pack`, `spate unpack` and `spate list`: the arguments of the archive jobs.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::shared::{IoArgs, ProgressArgs, WalkArgs, parse_size_arg};
use crate::archive::{Compression, ListConfig, PackConfig, UnpackConfig};
use crate::read;

pub(super) const PACK_EXAMPLES: &str = "\
Examples:
  spate pack -o photos.tar.zst ~/Photos          # zstd on every core, from the extension
  spate pack --manifest src.b3 -o src.tgz src/   # archive and checksum in one read
  spate pack --reproducible -o - dist | ssh host 'cat > dist.tar.zst'

pack reads with one reader (ring or thread) unless -j says otherwise: compression keeps
the cores busy, and one reader with many files in flight keeps up with it.";

#[derive(Args, Debug)]
pub(super) struct PackArgs {
    /// Files and directories to pack (stored under these names, without a leading '/').
    #[arg(required = true)]
    paths: Vec<OsString>,

    /// Archive to write ('-' for standard output); .tar, .tar.gz/.tgz, .tar.zst,
    /// .tar.xz or .tar.bz2 picks the compression.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,

    /// Compression, overriding the output's extension [default: from it; zstd for '-'].
    #[arg(long, value_enum)]
    compress: Option<CompressionArg>,

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

    #[command(flatten)]
    progress: ProgressArgs,

    /// No progress (unless --progress says), no summary and no notices about skipped
    /// entries (errors are still shown).
    #[arg(short, long)]
    quiet: bool,

    /// Print the summary (entries, bytes in and out, ratio, time) on stderr even when it
    /// is not a terminal.
    #[arg(long)]
    stats: bool,
}

impl PackArgs {
    pub(super) fn config(&self) -> Result<PackConfig> {
        let stdout = self.output.as_os_str() == "-";
        let chosen = self.compress.map(Compression::from);
        let compression = match (chosen, Compression::from_name(&self.output)) {
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
            progress: self.progress.mode(self.quiet),
            notices: !self.quiet,
            summary: self.stats || (!self.quiet && std::io::stderr().is_terminal()),
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

pub(super) const UNPACK_EXAMPLES: &str = "\
Examples:
  spate unpack photos.tar.zst -C restore/        # refuses names that leave restore/
  curl -s URL | spate unpack - -C src --strip-components 1

Symbolic links are created as stored, absolute targets too (as GNU tar does); no entry
is ever written through a symbolic link, whether the archive made it or it was there.";

#[derive(Args, Debug)]
pub(super) struct UnpackArgs {
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

    #[command(flatten)]
    progress: ProgressArgs,

    /// No progress (unless --progress says), no summary and no notices about skipped
    /// entries.
    #[arg(short, long)]
    quiet: bool,

    /// Print the summary (entries, bytes, time, throughput) on stderr even when it is
    /// not a terminal.
    #[arg(long)]
    stats: bool,
}

impl UnpackArgs {
    pub(super) fn config(&self) -> UnpackConfig {
        UnpackConfig {
            archive: self.archive.clone(),
            dest: self.dest.clone(),
            strip_components: self.strip_components,
            overwrite: self.overwrite,
            allow_special: self.allow_special,
            same_permissions: self.same_permissions,
            max_size: self.max_size,
            quiet: self.quiet,
            progress: self.progress.mode(self.quiet),
            summary: self.stats || (!self.quiet && std::io::stderr().is_terminal()),
        }
    }
}

pub(super) const LIST_EXAMPLES: &str = "\
Examples:
  spate list photos.tar.zst
  spate list --json backup.tgz | jq -r .path";

#[derive(Args, Debug)]
pub(super) struct ListArgs {
    /// Archive to list ('-' for standard input).
    archive: PathBuf,

    /// One JSON object per entry.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    progress: ProgressArgs,
}

impl ListArgs {
    pub(super) fn config(&self) -> ListConfig {
        ListConfig {
            archive: self.archive.clone(),
            json: self.json,
            progress: self.progress.mode(false),
        }
    }
}

/// `--compress` of pack: a compression format by name.
// No doc comments on the variants: `--help` lists the names alone, as it always has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Self {
        match arg {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::Xz => Compression::Xz,
            CompressionArg::Bzip2 => Compression::Bzip2,
        }
    }
}
