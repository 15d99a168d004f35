//! `pack` and `pack_to`: write a tar archive of a tree from Rust code, through the
//! same walk, readers, tar writer and compressors as `spate pack`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::archive::{ArchiveError, Collector, ProgressCallback};
use super::options::{ReadOptions, WalkOptions};
use crate::archive::{Compression, PackConfig, pack};
use crate::error::describe_io;
use crate::output::{Cleanup, Output};
use crate::progress::ProgressMode;
use crate::report::Reporter;

/// The archive's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A plain `.tar`.
    Tar,
    /// `.tar.gz`, as `gzip` writes it.
    Gzip,
    /// `.tar.zst`, as `zstd` writes it.
    Zstd,
    /// `.tar.xz`, as `xz` writes it.
    Xz,
    /// `.tar.bz2`, as `bzip2` writes it.
    Bzip2,
}

impl Format {
    fn compression(self) -> Compression {
        match self {
            Format::Tar => Compression::None,
            Format::Gzip => Compression::Gzip,
            Format::Zstd => Compression::Zstd,
            Format::Xz => Compression::Xz,
            Format::Bzip2 => Compression::Bzip2,
        }
    }
}

/// How [`pack`] writes the archive. The defaults are `spate pack`'s.
#[derive(Clone, Default)]
pub struct PackOptions {
    /// The compression; `None`: from the output's name (`.tar`, `.tar.gz`/`.tgz`,
    /// `.tar.zst`/`.tzst`, `.tar.xz`/`.txz`, `.tar.bz2`/`.tbz2`), and zstd for
    /// [`pack_to`].
    pub format: Option<Format>,
    /// The format's level (`None`: zstd 3, gzip and xz 6, bzip2 9, as the tools).
    pub level: Option<i32>,
    /// Compression threads, as `zstd -T`: `None` or 0 one per core, 1 the format's
    /// single-threaded encoder (the same bytes as `gzip`, `xz` or `zstd` alone).
    pub threads: Option<u32>,
    /// Relative paths are found beneath this directory and stored as given (`tar -C`).
    pub directory: Option<PathBuf>,
    /// The same tree gives the same bytes: owners 0, sorted order, and mtimes clamped
    /// to [`PackOptions::mtime`] when given. (`SOURCE_DATE_EPOCH` is the command's to
    /// read, not the library's.)
    pub reproducible: bool,
    /// With `reproducible`: no mtime later than this (seconds since the epoch).
    pub mtime: Option<u64>,
    /// Also write a BLAKE3 manifest of every packed file here (b3sum's format).
    pub manifest: Option<PathBuf>,
    /// Which files the walk visits.
    pub walk: WalkOptions,
    /// How files are read (default: one reader, as `spate pack`: the compressor is the
    /// slower stage).
    pub read: ReadOptions,
    /// Called as the run goes on.
    pub progress: Option<ProgressCallback>,
}

/// What [`pack`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    /// Members in the archive.
    pub entries: u64,
    /// Bytes of the tar stream.
    pub tar_bytes: u64,
    /// Bytes of the archive (compressed).
    pub archive_bytes: u64,
    /// Entries that could not be packed, each in the words `spate pack` prints on
    /// stderr (`DIR/secret: opening: Permission denied`); the run went on without them.
    pub problems: Vec<String>,
}

/// Packs `paths` (files and directories, stored under the names given, with a leading
/// `/` and anything up to a last `..` removed, as GNU tar does) into the archive file
/// `output`, written to a temporary file beside it and renamed when complete. Prints
/// nothing: entries that could not be packed are in the summary's `problems`.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("src"))?;
/// std::fs::write(dir.path().join("src/a.txt"), b"hello")?;
/// let options = spate::PackOptions {
///     directory: Some(dir.path().to_path_buf()),
///     ..Default::default()
/// };
/// let archive = dir.path().join("src.tar.zst");
/// let summary = spate::pack(&["src"], &archive, &options)?;
/// assert_eq!(summary.entries, 2); // src/ and src/a.txt
/// assert!(summary.problems.is_empty());
/// assert_eq!(std::fs::metadata(&archive)?.len(), summary.archive_bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pack<P: AsRef<Path>>(
    paths: &[P],
    output: impl AsRef<Path>,
    options: &PackOptions,
) -> Result<PackSummary, ArchiveError> {
    let output = output.as_ref();
    // `-` is a file name here; standard output is `pack_to(…, std::io::stdout(), …)`.
    let output = if output.as_os_str() == "-" {
        Path::new(".").join(output)
    } else {
        output.to_path_buf()
    };
    let format = match options.format {
        Some(format) => format.compression(),
        None => Compression::from_name(&output).ok_or_else(|| {
            ArchiveError::Options(format!(
                "cannot tell the compression from {}: name it .tar, .tar.gz, .tar.zst, \
                 .tar.xz or .tar.bz2, or give a format",
                output.display()
            ))
        })?,
    };
    run(paths, output, None, format, options)
}

/// [`pack`], writing the archive to `writer` (zstd unless
/// [`PackOptions::format`] says otherwise). The writer is flushed, not synced; on an
/// error it holds part of an archive. The walk cannot know which file a writer writes
/// to: to put the archive inside the tree being packed, use [`pack`], which leaves its
/// own archive out (as GNU tar does).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.txt"), b"hello")?;
/// let options = spate::PackOptions {
///     directory: Some(dir.path().to_path_buf()),
///     format: Some(spate::Format::Tar),
///     ..Default::default()
/// };
/// let archive = std::fs::File::create(dir.path().join("out.tar"))?;
/// let summary = spate::pack_to(&["a.txt"], archive, &options)?;
/// assert_eq!(summary.entries, 1);
/// let bytes = std::fs::read(dir.path().join("out.tar"))?;
/// assert_eq!(&bytes[..5], b"a.txt"); // the first header's name
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pack_to<P: AsRef<Path>, W: Write + Send + 'static>(
    paths: &[P],
    writer: W,
    options: &PackOptions,
) -> Result<PackSummary, ArchiveError> {
    let format = options.format.unwrap_or(Format::Zstd).compression();
    let out = Output::writer(Box::new(writer));
    run(paths, PathBuf::from("-"), Some(out), format, options)
}

fn run<P: AsRef<Path>>(
    paths: &[P],
    output: PathBuf,
    writer: Option<Output>,
    compression: Compression,
    options: &PackOptions,
) -> Result<PackSummary, ArchiveError> {
    if let Some(level) = options.level {
        let levels = compression.levels();
        if !levels.contains(&level) {
            return Err(ArchiveError::Options(format!(
                "level {level} is out of range for {} ({}..={})",
                compression.name(),
                levels.start(),
                levels.end()
            )));
        }
    }
    if let Some(dir) = &options.directory {
        // As tar: a -C that cannot be entered ends the run before anything is written.
        let refused = match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some("Not a directory".to_string()),
            Err(e) => Some(describe_io(&e)),
        };
        if let Some(why) = refused {
            let message = format!("{}: cannot change to it: {why}", dir.display());
            return Err(ArchiveError::Options(message));
        }
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let threads = match options.threads {
        None | Some(0) => cores,
        // The job's 0: the plain single-threaded encoder on a thread of its own.
        Some(1) => 0,
        Some(n) => n,
    };
    let mut read = options.read.clone();
    read.jobs = read.jobs.or(Some(1));
    let config = PackConfig {
        paths: paths
            .iter()
            .map(|p| p.as_ref().as_os_str().to_os_string())
            .collect(),
        directory: options.directory.clone(),
        output,
        compression,
        level: options.level,
        threads,
        index: true,
        reproducible: options.reproducible,
        clamp_mtime: options.mtime.filter(|_| options.reproducible),
        manifest: options.manifest.clone(),
        walk: options.walk.to_walk(),
        read: read.resolve().map_err(ArchiveError::Options)?,
        progress: ProgressMode::None,
        notices: false,
        summary: false,
    };
    let (progress, collector) = Collector::progress(options.progress.clone(), true, "files");
    // No signal handler removes it: the temporary file goes when dropped, on an error.
    let cleanup = Arc::new(Cleanup::default());
    let reporter = Reporter::with_skipped(progress.clone(), config.notices);
    let result = pack::pack(&config, &cleanup, writer, &reporter);
    // Also when the run stopped early: the callback's thread ends here.
    progress.finish();
    let (_, summary, _) = result?;
    Ok(PackSummary {
        entries: summary.entries,
        tar_bytes: summary.tar_bytes,
        archive_bytes: summary.archive_bytes,
        problems: collector.problems(),
    })
}
