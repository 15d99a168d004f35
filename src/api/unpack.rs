//! `unpack` and `unpack_from`: extract a tar archive from Rust code, with every safety
//! rule of `spate unpack` (names and links confined beneath the destination, files
//! written under a temporary name and renamed, a size budget against bombs).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::archive::{ArchiveError, Collector, ProgressCallback};
use crate::archive::{UnpackConfig, unpack};
use crate::output::Cleanup;
use crate::progress::ProgressMode;
use crate::report::Reporter;

/// How [`unpack`] extracts. The defaults are `spate unpack`'s.
#[derive(Clone)]
pub struct UnpackOptions {
    /// Leading path components removed from every name (`--strip-components`).
    pub strip_components: usize,
    /// Replace files that exist (default: leave them, and count them as problems).
    pub overwrite: bool,
    /// Create device nodes and FIFOs (default: skip them).
    pub allow_special: bool,
    /// Keep setuid, setgid and sticky bits (default: dropped).
    pub same_permissions: bool,
    /// Stop when the entries would write more than this many bytes in all (default
    /// 1 TiB): a decompression bomb ends as a problem, not a full disk.
    pub max_size: u64,
    /// Called as the run goes on.
    pub progress: Option<ProgressCallback>,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            strip_components: 0,
            overwrite: false,
            allow_special: false,
            same_permissions: false,
            max_size: 1 << 40,
            progress: None,
        }
    }
}

/// What [`unpack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    /// Entries read from the archive.
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Bytes of the archive read (compressed).
    pub archive_bytes: u64,
    /// Entries refused or not extracted, each in the words `spate unpack` prints on
    /// stderr (`../evil: refused: …`, `1 file exists; use --overwrite`), and damage
    /// that ended the run early (a truncated archive).
    pub problems: Vec<String>,
}

/// Extracts the archive file `archive` (tar, or tar compressed with gzip, zstd, xz or
/// bzip2, told from its first bytes) beneath `dest`, created if missing. Names that
/// would leave `dest` (absolute, `..`, through a symbolic link) are refused, as are
/// existing files unless [`UnpackOptions::overwrite`]. Prints nothing: refused entries
/// are in the summary's `problems`; an input that is not an archive is an error and
/// creates nothing.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir(dir.path().join("src"))?;
/// std::fs::write(dir.path().join("src/a.txt"), b"hello")?;
/// let options = spate::PackOptions {
///     directory: Some(dir.path().to_path_buf()),
///     ..Default::default()
/// };
/// spate::pack(&["src"], dir.path().join("src.tar.gz"), &options)?;
///
/// let dest = dir.path().join("out");
/// let summary = spate::unpack(dir.path().join("src.tar.gz"), &dest, &Default::default())?;
/// assert_eq!(summary.entries, 2);
/// assert!(summary.problems.is_empty());
/// assert_eq!(std::fs::read(dest.join("src/a.txt"))?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn unpack(
    archive: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    options: &UnpackOptions,
) -> Result<UnpackSummary, ArchiveError> {
    let archive = archive.as_ref();
    // `-` is a file name here; standard input is `unpack_from(std::io::stdin(), …)`.
    let archive = if archive.as_os_str() == "-" {
        Path::new(".").join(archive)
    } else {
        archive.to_path_buf()
    };
    run(archive, None, dest.as_ref(), options)
}

/// [`unpack`], reading the archive from `reader`.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// // An archive from elsewhere: one name tries to leave the destination.
/// let mut tar = tar::Builder::new(Vec::new());
/// let mut header = tar::Header::new_gnu();
/// header.set_size(5);
/// header.set_mode(0o644);
/// header.set_uid(0);
/// header.set_gid(0);
/// header.set_mtime(0);
/// header.as_old_mut().name[..13].copy_from_slice(b"../escape.txt");
/// header.set_cksum();
/// tar.append(&header, &b"hello"[..])?;
/// tar.append_data(&mut header, "inside.txt", &b"hello"[..])?;
/// let bytes = tar.into_inner()?;
///
/// let dest = dir.path().join("out");
/// let summary = spate::unpack_from(std::io::Cursor::new(bytes), &dest, &Default::default())?;
/// assert_eq!(summary.problems.len(), 1, "{:?}", summary.problems); // the `..` name
/// assert!(!dir.path().join("escape.txt").exists());
/// assert_eq!(std::fs::read(dest.join("inside.txt"))?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn unpack_from<R: Read + Send + 'static>(
    reader: R,
    dest: impl AsRef<Path>,
    options: &UnpackOptions,
) -> Result<UnpackSummary, ArchiveError> {
    run(
        PathBuf::from("-"),
        Some(Box::new(reader)),
        dest.as_ref(),
        options,
    )
}

fn run(
    archive: PathBuf,
    reader: Option<Box<dyn Read + Send>>,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackSummary, ArchiveError> {
    let config = UnpackConfig {
        archive,
        dest: dest.to_path_buf(),
        strip_components: options.strip_components,
        overwrite: options.overwrite,
        allow_special: options.allow_special,
        same_permissions: options.same_permissions,
        max_size: options.max_size,
        writers: None,
        // Skipped devices and FIFOs are what was asked for, not problems.
        quiet: true,
        members: Vec::new(),
        to_stdout: false,
        progress: ProgressMode::None,
        summary: false,
    };
    let (progress, collector) = Collector::progress(options.progress.clone(), false, "entries");
    // No signal handler removes it: a temporary file goes when dropped, on an error.
    let cleanup = Arc::new(Cleanup::default());
    let reporter = Reporter::with_skipped(progress.clone(), !config.quiet);
    let result = unpack::extract_all(&config, &cleanup, reader, &reporter);
    progress.finish();
    let (_, summary, _) = result?;
    Ok(UnpackSummary {
        entries: summary.entries,
        bytes: summary.tar_bytes,
        archive_bytes: summary.archive_bytes,
        problems: collector.problems(),
    })
}
