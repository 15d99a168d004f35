//! `spate pack`, `spate unpack` and `spate list`: the arguments of the archive jobs.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::shared::{
    IoArg, IoArgs, ProgressArgs, ShardArgs, WalkArgs, parse_jobs, parse_queue_depth,
};
use super::units::parse_size_arg;
use crate::archive::{Compression, ListConfig, PackConfig, UnpackConfig, files_from};
use crate::read;
use crate::walk::WalkOptions;

pub(super) const PACK_EXAMPLES: &str = "\
Examples:
  spate pack -o photos.tar.zst ~/Photos          # stores home/USER/Photos/..., with a notice
  spate pack -o photos.tar.zst -C ~ Photos       # stores Photos/...
  spate pack --manifest src.b3 -o src.tgz src/   # archive and checksum in one read
  find . -name '*.rs' -print0 | spate pack --null -T - -o rs.tar.zst
  spate pack --reproducible -o - dist | ssh host 'cat > dist.tar.zst'

Member names are the paths as given (under -C, relative to DIR), as GNU tar stores them:
a leading '/' and anything up to a last '..' are removed, with a one-time notice
('Removing leading '/' from member names'). -o, -T and --manifest are relative to the
directory spate was started in; the manifest lists the paths as given.
pack reads with one reader (ring or thread) unless --readers says otherwise: compression
keeps the cores busy, and one reader with many files in flight keeps up with it.

A .tar.zst (and '-') is indexed: zstd frames of about 4 MiB cut at member boundaries, then
a table of contents (every member's name, metadata, place and BLAKE3) and the zstd
seekable format's seek table, in skippable frames. It is one ordinary zstd stream of one
ordinary tar stream: tar -xf, zstd -dc | tar -x and any zstd reader read it unchanged,
byte for byte what --no-index writes; spate lists it from the table and extracts one
member without decompressing the rest. .tar, .tar.gz, .tar.xz and .tar.bz2 are plain
streams.


--shard K/N packs the files `spate hash --shard K/N` hashes, with two differences: every
directory goes to shard 1 only (merged, each is stored once, ahead of its files; a
shard unpacked alone gets its files' directories created with default modes), and all
names of a hard-linked file go to the shard of its first name. Notices about skipped
sockets, FIFOs and devices, and GNU tar's 'Removing leading ...', are printed by shard 1
alone (unlike hash --shard, which gives each to its file's shard), so the N shards'
stderr, one after another, is the unsharded run's; an entry that cannot be read is
reported by the shard that would have packed it, an unreadable directory by every
shard. Join the parts with `spate merge -o all.tar.zst part-1.tar.zst ... part-N.tar.zst`:
  spate pack --shard 2/3 -o part-2.tar.zst tree   # on each worker, same path, same cwd";

#[derive(Args, Debug)]
pub(super) struct PackArgs {
    /// Files and directories to pack, stored under these names (relative to -C DIR;
    /// without a leading '/' or '../').
    #[arg(required_unless_present = "files_from")]
    paths: Vec<OsString>,

    /// Archive to write ('-' for standard output); .tar, .tar.gz/.tgz, .tar.zst,
    /// .tar.xz or .tar.bz2 picks the compression.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,

    /// Take PATHs (and -T names) relative to DIR, as tar -C: the names are stored as
    /// given, the files read from DIR.
    #[arg(short = 'C', long = "directory", value_name = "DIR")]
    directory: Option<PathBuf>,

    /// Also pack the names listed in FILE, one per line ('-': standard input), after
    /// the PATHs; names are taken verbatim (as tar --verbatim-files-from), empty lines
    /// skipped. Repeatable.
    #[arg(short = 'T', long = "files-from", value_name = "FILE")]
    files_from: Vec<PathBuf>,

    /// -T lists are separated by NUL bytes instead of newlines (find -print0).
    #[arg(long, requires = "files_from")]
    null: bool,

    /// Compression, overriding the output's extension [default: from it; zstd for '-'].
    #[arg(long, value_enum, conflicts_with_all = ["gzip", "bzip2", "xz", "zstd"])]
    compress: Option<CompressionArg>,

    /// gzip, whatever the output's name (as tar -z).
    #[arg(short = 'z', long, conflicts_with_all = ["bzip2", "xz", "zstd"])]
    gzip: bool,

    /// bzip2, whatever the output's name (as tar -j).
    #[arg(short = 'j', long, conflicts_with_all = ["xz", "zstd"])]
    bzip2: bool,

    /// xz, whatever the output's name (as tar -J).
    #[arg(short = 'J', long, conflicts_with = "zstd")]
    xz: bool,

    /// zstd, whatever the output's name (as tar --zstd).
    #[arg(long)]
    zstd: bool,

    /// Compression level, as the tool's own (gzip 1-9, zstd 1-22, xz 0-9, bzip2 1-9)
    /// [default: the tool's own default with its own parameters: gzip 6, zstd 3, xz 6,
    /// bzip2 9].
    #[arg(long)]
    level: Option<i32>,

    /// Compression threads, as zstd -T: 0 for one per core, 1 for the format's plain
    /// single-threaded stream [default: one per core]. An indexed .tar.zst compresses
    /// each frame on one thread, so it is the same bytes whatever N.
    #[arg(long, value_name = "N")]
    threads: Option<u32>,

    /// zstd: one plain stream (libzstd's own multithreaded encoder), without frames cut
    /// at members, table of contents or seek table. The default .tar.zst already reads
    /// with every zstd and tar tool; this only gives up spate's instant list, member
    /// extraction and parallel unpack, for a slightly smaller archive.
    #[arg(long)]
    no_index: bool,

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
    shard: ShardArgs,

    #[command(flatten)]
    io: PackIoArgs,

    #[command(flatten)]
    progress: ProgressArgs,

    /// No progress (unless --progress says), no summary and no notices (skipped
    /// entries, removed leading '/'); errors are still shown.
    #[arg(short, long)]
    quiet: bool,

    /// Print the summary (entries, bytes in and out, ratio, time) on stderr even when it
    /// is not a terminal.
    #[arg(long)]
    stats: bool,
}

/// The read stage of pack, under a heading of its own: compression, not reading, is
/// what a user tunes first. No short options: tar's -j means bzip2.
#[derive(Args, Debug)]
struct PackIoArgs {
    /// I/O backend: io_uring (falls back to threads where unavailable), or threads.
    #[arg(
        long = "io",
        value_enum,
        default_value = "auto",
        help_heading = "I/O tuning"
    )]
    io: IoArg,

    /// Rings (uring) or reader threads (threads), 1 to 1024 [default: 1].
    #[arg(long, alias = "jobs", value_name = "N", value_parser = parse_jobs, help_heading = "I/O tuning")]
    readers: Option<usize>,

    /// Files in flight at once over all readers, 1 to 65536 [default: 32; with
    /// io_uring, up to 128 while reads miss the page cache].
    #[arg(long, value_name = "N", value_parser = parse_queue_depth, help_heading = "I/O tuning")]
    queue_depth: Option<usize>,

    /// Size of each read, e.g. 256k, 1MiB (at most 1 GiB; all read buffers together at
    /// most 16 GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg, help_heading = "I/O tuning")]
    buffer_size: Option<u64>,

    /// Read large files into buffers instead of memory-mapping them.
    #[arg(long, help_heading = "I/O tuning")]
    no_mmap: bool,
}

impl PackArgs {
    pub(super) fn config(&self) -> Result<PackConfig> {
        let stdout = self.output.as_os_str() == "-";
        let flag = [
            (self.gzip, Compression::Gzip),
            (self.bzip2, Compression::Bzip2),
            (self.xz, Compression::Xz),
            (self.zstd, Compression::Zstd),
        ]
        .into_iter()
        .find_map(|(set, c)| set.then_some(c));
        let chosen = self.compress.map(Compression::from).or(flag);
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
        // zstd's -T: 0 is one per core. One thread is the plain single-threaded
        // encoder on a thread of its own (the job's 0), which writes exactly what
        // `gzip`, `xz` or `zstd` alone would.
        let threads = match self.threads {
            None | Some(0) => cores,
            Some(1) => 0,
            Some(n) => n,
        };
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
        if let Some(dir) = &self.directory {
            // As tar: a -C that cannot be entered ends the run before anything is written.
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => anyhow::bail!("{}: cannot change to it: Not a directory", dir.display()),
                Err(e) => anyhow::bail!(
                    "{}: cannot change to it: {}",
                    dir.display(),
                    crate::error::describe_io(&e)
                ),
            }
        }
        let mut paths = self.paths.clone();
        for list in &self.files_from {
            paths.extend(files_from::read(list, self.null)?);
        }
        let shard = self.shard.select_for_walk(&paths)?;
        Ok(PackConfig {
            paths,
            directory: self.directory.clone(),
            output: self.output.clone(),
            compression,
            level: self.level,
            threads,
            index: !self.no_index,
            reproducible: self.reproducible,
            clamp_mtime,
            manifest: self.manifest.clone(),
            walk: WalkOptions {
                shard,
                ..self.walk.options()
            },
            read: self.pack_read_options()?,
            progress: self.progress.mode(self.quiet),
            notices: !self.quiet,
            summary: self.stats || (!self.quiet && std::io::stderr().is_terminal()),
        })
    }

    /// The read stage for packing: one reader unless `--readers` says otherwise.
    /// Compression keeps every core busy, and one ring (or thread) with 32 files in
    /// flight keeps up with it; a second one only competed with the compressor for the
    /// cores (measured 4% slower on the benchmark's text tree, with either backend).
    fn pack_read_options(&self) -> Result<read::ReadOptions> {
        let io = IoArgs {
            io: self.io.io,
            jobs: Some(self.io.readers.unwrap_or(1)),
            queue_depth: self.io.queue_depth,
            buffer_size: self.io.buffer_size,
            no_mmap: self.io.no_mmap,
        };
        io.options(self.quiet)
    }
}

pub(super) const UNPACK_EXAMPLES: &str = "\
Examples:
  spate unpack photos.tar.zst -C restore/        # refuses names that leave restore/
  spate unpack photos.tar.zst Photos/2024 '*.raw'   # only those (and what is under them)
  spate unpack -O backup.tgz etc/fstab           # a member's contents to standard output
  curl -s URL | spate unpack - -C src --strip-components 1

MEMBERs are matched as GNU tar matches them: a name selects that entry and everything
under it; one with *, ? or [ is a pattern (as tar --wildcards; * matches '/' too). A
MEMBER that matches nothing is reported ('not found in archive') and the exit status is 2,
after the rest is extracted. Existing files are kept, unlike tar: each is left as it is,
and one line at the end says how many ('N files exist; use --overwrite'; exit 1).

Symbolic links are created as stored, absolute targets too (as GNU tar does); no entry
is ever written through a symbolic link, whether the archive made it or it was there.

Unlike tar, no file is ever seen half written under its name: each is written without
a name (O_TMPFILE) and linked into place when complete, or, where the file system
refuses that (and to replace a file with --overwrite), under a temporary name renamed
into place.

MEMBERs of an indexed .tar.zst (spate pack's default) are found in its table: only the
frames holding them are read, each only as far as the member goes, and each member is
checked to start with a tar header of that name before anything is written. A frame
left before its end has no checksum to check (it covers the whole frame): a file's data
is checked against its BLAKE3 in the table instead, and one that differs is not
extracted (with -O, like zstd -dc, what came before is already written). A table that
disagrees with the file is ignored with one line ('index ignored: WHY; reading the
whole archive').

A hard link whose target was not extracted before it (selected without its target, or
a target the archive lacks) is not made ('cannot hard link to \"TARGET\"'); the rest is
extracted and the exit status is 2, as GNU tar's ('Cannot hard link to'). Select the
target too.

A whole indexed .tar.zst is decompressed on every core and its files written by
writer threads (--writers: one per core on a tmpfs; on disk file systems 0, the files
written in archive order by the loop that reads the entries), with the
same rules; messages about files that could not be written may then come a few entries
late.";

#[derive(Args, Debug)]
pub(super) struct UnpackArgs {
    /// Archive to extract ('-' for standard input).
    archive: PathBuf,

    /// Extract only these members (names, directories with what is under them, or
    /// patterns).
    #[arg(value_name = "MEMBER|GLOB")]
    members: Vec<OsString>,

    /// Write the selected files' contents to standard output, one after another, as tar
    /// -O; nothing is written to disk.
    #[arg(short = 'O', long, conflicts_with_all = ["dest", "overwrite", "strip_components"])]
    to_stdout: bool,

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

    /// Threads writing files, for a whole indexed .tar.zst (other archives are written
    /// by the entry loop) [default: one per core on a tmpfs or ramfs; 0 on other file
    /// systems: the entry loop writes every file in archive order, as tar does; on
    /// ext4 a writer thread beside it made the kernel's inode allocation cost more].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=256))]
    writers: Option<u16>,

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
            writers: self.writers.map(usize::from),
            quiet: self.quiet,
            members: self.members.clone(),
            to_stdout: self.to_stdout,
            progress: self.progress.mode(self.quiet),
            summary: self.stats || (!self.quiet && std::io::stderr().is_terminal()),
        }
    }
}

pub(super) const LIST_EXAMPLES: &str = "\
Examples:
  spate list photos.tar.zst
  spate list photos.tar.zst Photos/2024 '*.raw'  # only those (as unpack selects them)
  spate list --json backup.tgz | jq -r .path

An indexed .tar.zst (spate pack's default) is listed from its table alone, without
decompressing it; a table that disagrees with the file is ignored with one line, and
archives without one are read whole, as tar reads them.";

#[derive(Args, Debug)]
pub(super) struct ListArgs {
    /// Archive to list ('-' for standard input).
    archive: PathBuf,

    /// List only these members (names, directories with what is under them, or
    /// patterns, as unpack takes them); one that matches nothing is an error (exit 2).
    #[arg(value_name = "MEMBER|GLOB")]
    members: Vec<OsString>,

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
            members: self.members.clone(),
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
