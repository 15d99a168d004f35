//! The archive jobs: `pack` (tree → tar → compressor → file), `unpack` (file →
//! decompressor → tar entries → confined writes beneath a directory) and `list`.
//!
//! Headers are read and written with the `tar` crate; extraction safety is spate's own
//! code (never the crate's `unpack`).

pub mod codec;
mod counting;
pub mod files_from;
pub mod index;
pub(crate) mod input;
pub mod list;
mod member_sink;
pub mod members;
mod owners;
pub mod pack;
mod stored_names;
mod streamed;
pub mod unpack;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::progress::ProgressMode;
use crate::read::ReadOptions;
use crate::walk::WalkOptions;
pub use codec::Compression;

/// Everything `spate pack` needs to know.
#[derive(Debug, Clone)]
pub struct PackConfig {
    /// Files and directories to pack, stored under the names given (a leading `/` and
    /// anything up to a last `..` removed, as GNU tar does).
    pub paths: Vec<OsString>,
    /// Relative `paths` are found beneath this directory (`tar -C`); their names are
    /// stored as given.
    pub directory: Option<PathBuf>,
    /// Archive to write atomically; `-` for standard output.
    pub output: PathBuf,
    pub compression: Compression,
    /// `None`: the default setting (see [`codec::EncodeOptions::level`]).
    pub level: Option<i32>,
    /// Compression worker threads; 0: the format's single-threaded encoder on a thread
    /// of its own.
    pub threads: u32,
    /// zstd: write an indexed archive (`index`); `false`: one plain stream.
    pub index: bool,
    /// Same tree → same bytes: fixed owner, clamped mtimes, sorted order.
    pub reproducible: bool,
    /// Upper bound on mtimes with `--reproducible` (from `--mtime` or
    /// `SOURCE_DATE_EPOCH`); `None`: keep them.
    pub clamp_mtime: Option<u64>,
    /// Also write a BLAKE3 manifest of every packed file here.
    pub manifest: Option<PathBuf>,
    pub walk: WalkOptions,
    pub read: ReadOptions,
    pub progress: ProgressMode,
    pub notices: bool,
    /// Print the summary line (entries, ratio) at the end.
    pub summary: bool,
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
    /// Writer threads for a whole indexed archive; `None`: by the destination's file
    /// system ([`unpack`]'s policy).
    pub writers: Option<usize>,
    /// No notices about skipped entries.
    pub quiet: bool,
    /// Only these members (exact names, a directory with everything under it, or
    /// globs); empty: all.
    pub members: Vec<OsString>,
    /// Write the contents of the selected files to standard output instead of disk.
    pub to_stdout: bool,
    pub progress: ProgressMode,
    /// Print the summary line (entries, bytes, rate) at the end.
    pub summary: bool,
}

/// Everything `spate list` needs to know.
#[derive(Debug, Clone)]
pub struct ListConfig {
    /// Archive to read; `-` for standard input.
    pub archive: PathBuf,
    /// Only these members, as for [`UnpackConfig::members`].
    pub members: Vec<OsString>,
    /// One JSON object per entry instead of `tar -tv` lines.
    pub json: bool,
    pub progress: ProgressMode,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::codec::Decoder;
    use super::unpack::header::Meta;
    use super::unpack::names::{self, Placement};

    /// What `unpack` and `list` do with an archive, short of writing files: decompress,
    /// read every header and name, drain the data.
    fn read_archive(bytes: Vec<u8>) {
        let Ok(decoder) = Decoder::start(Box::new(std::io::Cursor::new(bytes))) else {
            return;
        };
        let mut archive = tar::Archive::new(decoder);
        let Ok(entries) = archive.entries() else {
            return;
        };
        for entry in entries.take(1000) {
            let Ok(mut entry) = entry else { break };
            if let Ok(meta) = Meta::read(&mut entry)
                && let Ok(Placement::At(path)) = names::place(&meta.name, 0)
            {
                for c in path.components() {
                    assert!(!c.is_empty() && c.as_slice() != b".." && !c.contains(&b'/'));
                }
            }
            if std::io::copy(&mut entry, &mut std::io::sink()).is_err() {
                break;
            }
        }
    }

    /// A small valid archive to mutate.
    fn sample() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("a/b.txt", &b"hello"[..]), ("c", &[0u8; 700][..])] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            builder.append_data(&mut h, name, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            read_archive(bytes);
        }

        #[test]
        fn damaged_archives_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = sample();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= value;
            }
            let keep = cut.index(bytes.len() + 1);
            bytes.truncate(keep.max(1));
            read_archive(bytes);
        }
    }
}
