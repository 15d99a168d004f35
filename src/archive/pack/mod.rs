//! `spate pack`: walk → read → tar entries → compressor → archive file.
//!
//! The walk lists every entry (directories, symbolic links and hard links too) and
//! hands regular files to the same readers `spate hash` uses, with their one rule for
//! a file that changed while it was read. A file of up to [`INLINE_MAX`] bytes comes
//! back whole, with its BLAKE3 digest when a manifest is wanted, computed on the
//! reader's thread from the same bytes. The writer (this thread) gets every entry in
//! walk order and appends it to one tar stream, which the compressor stage turns into
//! the archive on threads of its own.
//!
//! Larger files are not held whole: their readers hand them to the writer in pieces
//! while reading ([`streamed`](super::streamed)), a few MiB ahead of it, so memory
//! stays bounded by `IN_FLIGHT` × [`INLINE_MAX`] plus a few MiB per streamed file
//! whatever the tree.
//!
//! The steps are modules of their own: [`source`] turns the walk into members,
//! [`writer`] appends them to the tar stream, [`toc`] records each in an indexed
//! archive's table of contents (with its digest), and [`shard`] decides what
//! `--shard K/N` packs and writes its directories last.

mod shard;
mod source;
mod toc;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use super::PackConfig;
use super::codec::{Compression, EncodeOptions, Encoder};
use super::counting::{Counted, count_files};
use super::member_sink::CollectFactory;
use super::owners::Owners;
use super::stored_names::{Removed, Root};
use super::streamed::{Incoming, Outgoing};
use crate::output::{Cleanup, Output, OwnFiles};
use crate::pipeline::{self, Feed};
use crate::progress::{ArchiveSummary, Progress};
use crate::report::Reporter;
use crate::walk;
pub(super) use shard::ShardSelect;
use source::list_members;
use writer::Writer;

/// Files up to this size are read by the pipeline and held whole until written.
pub const INLINE_MAX: u64 = 1 << 20;
/// Entries in flight or waiting to be written: with [`INLINE_MAX`], at most 64 MiB of
/// file data is held at once.
const IN_FLIGHT: u64 = 64;

/// One archive member, as the walk saw it.
pub struct Member {
    /// Name in the archive: the path as given, without what GNU tar removes.
    name: Vec<u8>,
    /// What was removed from the front of the name (`/`, `../`): announced once.
    removed: Vec<u8>,
    /// The path as given (beneath `-C DIR`), for the manifest.
    given: PathBuf,
    /// Where it is on disk.
    path: PathBuf,
    pub(super) kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Modification time as the walk saw it (seconds, nanoseconds): the header stores
    /// the seconds, the readers' change check compares both.
    mtime: (i64, i64),
    size: u64,
    /// (device, inode) of a regular file with more than one link.
    inode: Option<(u64, u64)>,
}

pub enum Kind {
    Dir,
    /// A regular file read by the pipeline.
    File,
    /// A regular file larger than [`INLINE_MAX`], as the walk found it.
    LargeFile,
    /// Such a file's turn to be written: its bytes as the readers send them.
    StreamStart(Incoming),
    /// Such a file on its way to the readers: where their sink sends the bytes.
    StreamRead(Outgoing),
    Symlink(Vec<u8>),
    /// A further name of a file already in the archive, under this name.
    HardLink(Vec<u8>),
    /// Not a member: an entry another `--shard` packs, whose removed prefix is news.
    Announce,
}

/// Runs the job. `Ok(false)` when some entries could not be packed (each reported).
pub fn run(config: &PackConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    let started = Instant::now();
    let reporter = Reporter::with_skipped(Progress::new(config.progress), config.notices);
    let (ok, summary, output_name) = pack(config, cleanup, None, &reporter)?;
    if config.summary {
        reporter.say(&format!(
            "{}{}",
            summary.render_pack(&output_name, started),
            crate::memory::peak_rss_text()
        ));
    }
    Ok(ok)
}

/// Packs into `config.output`, or into `writer` when given; says whether every entry
/// was packed, what was written, and the archive's name for messages. Everything it
/// has to say goes through `reporter`.
pub(crate) fn pack(
    config: &PackConfig,
    cleanup: &Arc<Cleanup>,
    writer: Option<Output>,
    reporter: &Reporter,
) -> Result<(bool, ArchiveSummary, String)> {
    walk::compile_excludes(&config.walk.exclude)?;
    let out_path =
        (writer.is_none() && config.output.as_os_str() != "-").then_some(config.output.as_path());
    // The files under the final names are looked at before the temporary files exist:
    // an earlier run's archive there is about to be replaced, not packed.
    let mut own = OwnFiles::default();
    own.add_final(out_path, ARCHIVE_ITSELF)?;
    own.add_final(config.manifest.as_deref(), MANIFEST_ITSELF)?;
    let out = match writer {
        Some(out) => out,
        None => Output::open(out_path, cleanup)?,
    };
    own.add_open(&out, ARCHIVE_ITSELF)?;
    let mut manifest = match &config.manifest {
        Some(path) => Some(Output::open(Some(path), cleanup)?),
        None => None,
    };
    if let Some(m) = &manifest {
        own.add_open(m, MANIFEST_ITSELF)?;
    }
    let output_name = out.describe();
    let encoder = Encoder::start(
        EncodeOptions {
            compression: config.compression,
            level: config.level,
            threads: config.threads,
            index: config.index,
        },
        out,
    )?;
    let mut writer = Writer {
        tar: tar::Builder::new(Counted {
            inner: encoder,
            bytes: 0,
        }),
        entries: 0,
        config,
        owners: Owners::default(),
        links: HashMap::new(),
        removed: Removed::default(),
        manifest_buf: Vec::new(),
        failed: 0,
        output_name,
        streamed: None,
        streamed_toc: None,
        deferred_dirs: config.walk.shard.map(|_| Vec::new()),
        says_notices: ShardSelect::new(config.walk.shard).says_notices(),
    };

    let progress = reporter.progress();
    let walk_options = walk::WalkOptions {
        own_outputs: own,
        ..config.walk.clone()
    };
    let roots: Vec<Root> = config
        .paths
        .iter()
        .map(|p| Root::new(config.directory.as_deref(), p))
        .collect();
    {
        // The same roots, and the same shard, as the walk below.
        let roots = roots.clone();
        let walk_options = walk_options.clone();
        progress.count_ahead(move |tally| count_files(&roots, &walk_options, tally));
    }
    let buffer_size = config.read.buffer_size;
    let source =
        { move |feed: &mut Feed<Member>| list_members(&roots, &walk_options, buffer_size, feed) };
    // The table of contents of an indexed archive carries every file's BLAKE3, as the
    // manifest does: both come from the same read.
    let indexed = config.index && config.compression == Compression::Zstd;
    let factory = Arc::new(CollectFactory {
        digest: config.manifest.is_some() || indexed,
    });
    let result = pipeline::run_source(
        source,
        IN_FLIGHT,
        &config.read,
        factory,
        progress,
        |outcome| {
            writer.write(outcome, reporter)?;
            if let Some(m) = manifest
                .as_mut()
                .filter(|_| writer.manifest_buf.len() >= 64 << 10)
            {
                m.write_all(&writer.manifest_buf)?;
                writer.manifest_buf.clear();
            }
            Ok(())
        },
    );
    reporter.finish();
    result?;

    writer.write_deferred_dirs()?;
    let failed = writer.failed;
    let manifest_buf = std::mem::take(&mut writer.manifest_buf);
    let output_name = std::mem::take(&mut writer.output_name);
    let entries = writer.entries;
    writer
        .tar
        .get_mut()
        .inner
        .end_of_members()
        .with_context(|| format!("writing {output_name}"))?;
    let counted = writer
        .tar
        .into_inner()
        .with_context(|| format!("writing {output_name}"))?;
    let out = counted.inner.finish()?;
    let summary = ArchiveSummary {
        entries,
        tar_bytes: counted.bytes,
        archive_bytes: out.written(),
    };
    out.commit()?;
    if let Some(mut m) = manifest {
        m.write_all(&manifest_buf)?;
        m.commit()?;
    }
    Ok((failed == 0, summary, output_name))
}

const ARCHIVE_ITSELF: &str = "the archive being written; not packed";
const MANIFEST_ITSELF: &str = "the manifest being written; not packed";
