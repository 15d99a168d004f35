//! The archive jobs: `pack` (tree → tar → compressor → file), `unpack` (file →
//! decompressor → tar entries → confined writes beneath a directory) and `list`.
//!
//! Headers are read and written with the `tar` crate; extraction safety is spate's own
//! code (never the crate's `unpack`).

pub mod codec;
pub mod list;
mod owners;
pub mod pack;
pub mod unpack;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::read::ReadOptions;
use crate::walk::WalkOptions;
pub use codec::Compression;

/// Everything `spate pack` needs to know.
#[derive(Debug, Clone)]
pub struct PackConfig {
    /// Files and directories to pack, stored under the names given (a leading `/` is
    /// removed, as GNU tar does).
    pub paths: Vec<OsString>,
    /// Archive to write atomically; `-` for standard output.
    pub output: PathBuf,
    pub compression: Compression,
    /// `None`: the default setting (see [`codec::EncodeOptions::level`]).
    pub level: Option<i32>,
    /// zstd worker threads.
    pub threads: u32,
    /// Same tree → same bytes: fixed owner, clamped mtimes, sorted order.
    pub reproducible: bool,
    /// Upper bound on mtimes with `--reproducible` (from `--mtime` or
    /// `SOURCE_DATE_EPOCH`); `None`: keep them.
    pub clamp_mtime: Option<u64>,
    /// Also write a BLAKE3 manifest of every packed file here.
    pub manifest: Option<PathBuf>,
    pub walk: WalkOptions,
    pub read: ReadOptions,
    pub progress: bool,
    pub notices: bool,
}

/// Everything `spate unpack` needs to know.
#[derive(Debug, Clone)]
pub struct UnpackConfig {
    /// Archive to read; `-` for standard input.
    pub archive: PathBuf,
    /// Directory to extract beneath (created if missing).
    pub dest: PathBuf,
    /// Leading path components removed from every name.
    pub strip_components: usize,
    /// Replace existing files (default: refuse, with a message).
    pub overwrite: bool,
    /// Create device nodes and FIFOs (default: skip them with a notice).
    pub allow_special: bool,
    /// Keep setuid/setgid/sticky bits (default: dropped).
    pub same_permissions: bool,
    /// Refuse to write more than this many bytes in all (decompression bombs).
    pub max_size: u64,
    /// No notices about skipped entries.
    pub quiet: bool,
}

/// Everything `spate list` needs to know.
#[derive(Debug, Clone)]
pub struct ListConfig {
    /// Archive to read; `-` for standard input.
    pub archive: PathBuf,
    /// One JSON object per entry instead of `tar -tv` lines.
    pub json: bool,
}
