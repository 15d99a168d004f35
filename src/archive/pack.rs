//! `spate pack`: walk → read → tar entries → compressor → archive file.
//!
//! The walk lists every entry (directories, symbolic links and hard links too) and
//! hands regular files to the same readers `spate hash` uses. A file of up to
//! [`INLINE_MAX`] bytes comes back whole, with its BLAKE3 digest when a manifest is
//! wanted, computed on the reader's thread from the same bytes. The writer (this
//! thread) gets every entry in walk order and appends it to one tar stream, which the
//! compressor stage turns into the archive on threads of its own.
//!
//! Larger files are not held in memory: the writer streams them from disk itself in
//! 1 MiB pieces. That keeps memory bounded by `IN_FLIGHT` × [`INLINE_MAX`]
//! whatever the tree, at the price of reading large files one at a time — which costs
//! little, since compressing is far slower than reading.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tar::{EntryType, Header};

use super::PackConfig;
use super::codec::{EncodeOptions, Encoder};
use super::counting::{Counted, count_files};
use super::owners::Owners;
use super::stored_names::{Removed, Root, stored_name};
use super::streamed::Tracked;
use crate::error::{ErrorKind, describe_io};
use crate::hash::digest::Algo;
use crate::manifest::{self, Format};
use crate::output::{Cleanup, Output, OwnFiles};
use crate::pipeline::{self, Feed, Item, Outcome};
use crate::progress::{ArchiveSummary, Progress};
use crate::read::{Sink, SinkFactory};
use crate::walk::{self, Entry, Notice, NoticeKind};

/// Files up to this size are read by the pipeline and held whole until written.
pub const INLINE_MAX: u64 = 1 << 20;
/// Entries in flight or waiting to be written: with [`INLINE_MAX`], at most 64 MiB of
/// file data is held at once.
const IN_FLIGHT: u64 = 64;

/// One archive member, as the walk saw it.
struct Member {
    /// Name in the archive: the path as given, without what GNU tar removes.
    name: Vec<u8>,
    /// What was removed from the front of the name (`/`, `../`): announced once.
    removed: Vec<u8>,
    /// The path as given (beneath `-C DIR`), for the manifest.
    given: PathBuf,
    /// Where it is on disk.
    path: PathBuf,
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Modification time as the walk saw it (seconds, nanoseconds): the header stores
    /// the seconds, the change check after streaming compares both.
    mtime: (i64, i64),
    size: u64,
    /// (device, inode) of a regular file with more than one link.
    inode: Option<(u64, u64)>,
}

enum Kind {
    Dir,
    /// A regular file read by the pipeline.
    File,
    /// A regular file larger than [`INLINE_MAX`], streamed by the writer.
    LargeFile,
    Symlink(Vec<u8>),
    /// A further name of a file already in the archive, under this name.
    HardLink(Vec<u8>),
}

/// Runs the job. `Ok(false)` when some entries could not be packed (each reported).
pub fn run(config: &PackConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    let started = Instant::now();
    let progress = Progress::new(config.progress);
    let (ok, summary, output_name) = pack(config, cleanup, None, &progress)?;
    if config.summary {
        progress.println(&format!(
            "spate: {}",
            summary.render_pack(&output_name, started)
        ));
    }
    Ok(ok)
}

/// Packs into `config.output`, or into `writer` when given; says whether every entry
/// was packed, what was written, and the archive's name for messages. Everything it
/// has to say goes through `progress`.
pub(crate) fn pack(
    config: &PackConfig,
    cleanup: &Arc<Cleanup>,
    writer: Option<Output>,
    progress: &Progress,
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
    };

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
        // The same paths the walk below reads: under -C, beneath its directory.
        let paths: Vec<OsString> = roots
            .iter()
            .map(|r| r.disk().as_os_str().to_owned())
            .collect();
        let walk_options = walk_options.clone();
        progress.count_ahead(move |tally| count_files(&paths, &walk_options, tally));
    }
    let source = { move |feed: &mut Feed<Member>| list_members(&roots, &walk_options, feed) };
    let factory = Arc::new(CollectFactory {
        digest: config.manifest.is_some(),
    });
    let result = pipeline::run_source(
        source,
        IN_FLIGHT,
        &config.read,
        factory,
        progress,
        |outcome| {
            writer.write(outcome, progress)?;
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
    progress.finish();
    result?;

    let failed = writer.failed;
    let manifest_buf = std::mem::take(&mut writer.manifest_buf);
    let output_name = std::mem::take(&mut writer.output_name);
    let entries = writer.entries;
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

/// The source: walks every root in order and pushes one item per entry. Roots are
/// walked one at a time so that each entry's name can be made from the name its root
/// was given by.
fn list_members(
    roots: &[Root],
    options: &walk::WalkOptions,
    feed: &mut Feed<Member>,
) -> Result<()> {
    let mut inodes: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut going = true;
    for root in roots {
        let disk = [root.disk().as_os_str().to_owned()];
        walk::entries(&disk, options, |item| {
            let item = match item {
                Ok(entry) => member_item(entry, root, &mut inodes),
                Err(notice) => Some(Item::Notice(notice)),
            };
            if let Some(Item::Note(Member {
                kind: Kind::LargeFile,
                size,
                ..
            })) = &item
            {
                feed.found_elsewhere(*size);
            }
            going = item.is_none_or(|item| feed.push(item));
            going
        })?;
        if !going {
            break;
        }
    }
    Ok(())
}

fn notice(path: PathBuf, kind: NoticeKind) -> Item<Member> {
    Item::Notice(Notice { seq: 0, path, kind })
}

/// Decides what one walked entry becomes.
fn member_item(
    entry: walkdir::DirEntry,
    root: &Root,
    inodes: &mut HashMap<(u64, u64), Vec<u8>>,
) -> Option<Item<Member>> {
    let ft = entry.file_type();
    if let Some(what) = walk::special_kind(&ft) {
        return Some(notice(entry.into_path(), NoticeKind::Skipped(what)));
    }
    let meta = match entry.metadata() {
        Ok(meta) => meta,
        Err(err) => return Some(notice(entry.into_path(), walk::walk_error(&err))),
    };
    let path = entry.into_path();
    let given = root.given_path(&path);
    let (name, removed) = stored_name(&given);
    let removed = removed.to_vec();
    let Some(mut name) = name else {
        return None; // the root `/` or `..` itself: nothing to store
    };
    let kind = if ft.is_dir() {
        name.push(b'/');
        Kind::Dir
    } else if ft.is_symlink() {
        match std::fs::read_link(&path) {
            Ok(target) => Kind::Symlink(target.into_os_string().into_vec()),
            Err(e) => {
                return Some(notice(
                    path,
                    NoticeKind::Error(
                        ErrorKind::of_io(&e),
                        format!("reading link: {}", describe_io(&e)),
                    ),
                ));
            }
        }
    } else if meta.nlink() > 1
        && let Some(first) = inodes.get(&(meta.dev(), meta.ino()))
    {
        Kind::HardLink(first.clone())
    } else if meta.len() <= INLINE_MAX {
        Kind::File
    } else {
        Kind::LargeFile
    };
    let is_file = matches!(kind, Kind::File | Kind::LargeFile);
    let linked = matches!(kind, Kind::File | Kind::LargeFile | Kind::HardLink(_));
    let inode = (linked && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
    if let (Some(inode), true) = (inode, is_file) {
        inodes.insert(inode, name.clone());
    }
    let member = Member {
        name,
        removed,
        given,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        size: if is_file { meta.len() } else { 0 },
        inode,
        path: path.clone(),
    };
    if matches!(member.kind, Kind::File) {
        let entry = Entry {
            seq: 0,
            path,
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            stat_known: true,
            identity: Default::default(),
            beneath: None,
        };
        return Some(Item::File(entry, member));
    }
    Some(Item::Note(member))
}

/// A file read whole, and its BLAKE3 digest when asked for.
pub struct Collected {
    data: Vec<u8>,
    digest: Option<String>,
}

/// Collects a file's bytes (and hashes them on the reader's thread).
pub struct Collector {
    data: Vec<u8>,
    hasher: Option<blake3::Hasher>,
}

impl Sink for Collector {
    type Output = Collected;

    fn update(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
    }

    fn finish(self, _len: u64) -> Collected {
        Collected {
            data: self.data,
            digest: self.hasher.map(|h| h.finalize().to_hex().to_string()),
        }
    }
}

struct CollectFactory {
    digest: bool,
}

impl SinkFactory for CollectFactory {
    type Tag = Member;
    type Sink = Collector;

    fn make(&self, entry: &Entry, _member: &Member) -> Collector {
        Collector {
            data: Vec::with_capacity(entry.size as usize),
            hasher: self.digest.then(blake3::Hasher::new),
        }
    }
}

/// Appends members to the tar stream in walk order.
struct Writer<'a> {
    tar: tar::Builder<Counted<Encoder>>,
    /// Members appended, for the summary.
    entries: u64,
    config: &'a PackConfig,
    owners: Owners,
    /// Digests of files with several links, for the manifest lines of later links.
    links: HashMap<(u64, u64), String>,
    /// Prefixes of names already announced as removed.
    removed: Removed,
    manifest_buf: Vec<u8>,
    failed: u64,
    /// The archive as messages name it ("standard output" for `-`).
    output_name: String,
}

impl Writer<'_> {
    fn write(&mut self, outcome: Outcome<Collected, Member>, progress: &Progress) -> Result<()> {
        if let Outcome::Read { tag: member, .. } | Outcome::Note(member) = &outcome
            && let Some(line) = self.removed.notice(&member.removed)
            && self.config.notices
        {
            progress.println(&line);
        }
        match outcome {
            Outcome::Read {
                output,
                tag: member,
                ..
            } => {
                let mut header = self.header(&member, EntryType::Regular);
                header.set_size(output.data.len() as u64);
                self.tar
                    .append_data(&mut header, os(&member.name), output.data.as_slice())
                    .map_err(|e| self.stream_error(e))?;
                self.entries += 1;
                self.record_digest(&member, output.digest);
            }
            Outcome::Failed { path, error, .. } => self.report(progress, &path, &error.to_string()),
            Outcome::Notice(Notice { path, kind, .. }) => match kind {
                NoticeKind::Skipped(why) => {
                    if self.config.notices {
                        progress.println(&format!("spate: {}: {why}", path.display()));
                    }
                }
                NoticeKind::Error(_, cause) => self.report(progress, &path, &cause),
            },
            Outcome::Note(member) => self.write_member(member, progress)?,
        }
        Ok(())
    }

    fn write_member(&mut self, member: Member, progress: &Progress) -> Result<()> {
        match &member.kind {
            Kind::Dir => {
                let mut header = self.header(&member, EntryType::Directory);
                header.set_size(0);
                self.tar
                    .append_data(&mut header, os(&member.name), io::empty())
                    .map_err(|e| self.stream_error(e))?;
                self.entries += 1;
            }
            Kind::Symlink(target) | Kind::HardLink(target) => {
                let kind = match member.kind {
                    Kind::Symlink(_) => EntryType::Symlink,
                    _ => EntryType::Link,
                };
                let mut header = self.header(&member, kind);
                header.set_size(0);
                self.tar
                    .append_link(&mut header, os(&member.name), os(target))
                    .map_err(|e| self.stream_error(e))?;
                self.entries += 1;
                if let Kind::HardLink(_) = member.kind
                    && let Some(digest) = member.inode.and_then(|i| self.links.get(&i)).cloned()
                {
                    self.record_digest(&member, Some(digest));
                }
            }
            Kind::LargeFile => match self.stream_large(&member, progress) {
                Ok(digest) => {
                    // Also when reading failed part-way: zeros pad the member.
                    self.entries += 1;
                    progress.done(0);
                    self.record_digest(&member, digest);
                }
                Err(Stream::Skipped(why)) => self.report(progress, &member.path, &why),
                Err(Stream::Fatal(e)) => return Err(e),
            },
            Kind::File => {
                anyhow::bail!("internal error: a pipeline file came back as a note")
            }
        }
        Ok(())
    }

    /// Streams a large file into the archive. The header goes out first with the size
    /// the walk saw, so a file that shrinks is padded with zeros (and reported) to
    /// keep the archive readable; one that grows or changes is reported too.
    fn stream_large(
        &mut self,
        member: &Member,
        progress: &Progress,
    ) -> Result<Option<String>, Stream> {
        let file = crate::read::threads::open_nonblocking(&member.path)
            .map_err(|e| Stream::Skipped(format!("opening: {}", crate::error::describe_io(&e))))?;
        let mut header = self.header(member, EntryType::Regular);
        header.set_size(member.size);
        let mut reader = Tracked {
            file,
            left: member.size,
            read: 0,
            error: None,
            hasher: self.config.manifest.is_some().then(blake3::Hasher::new),
            progress: progress.clone(),
        };
        self.tar
            .append_data(&mut header, os(&member.name), &mut reader)
            .map_err(|e| Stream::Fatal(self.stream_error(e)))?;
        if let Some(e) = reader.error.take() {
            self.failed += 1;
            let line = format!("spate: {}: {e}", member.path.display());
            progress.println(&line);
            return Ok(None);
        }
        let meta = reader
            .file
            .metadata()
            .map_err(|e| Stream::Skipped(format!("stat: {}", crate::error::describe_io(&e))))?;
        // The read backends' rule: size, and modification time to the nanosecond, as
        // the walk saw them (a rewrite within the same second moves only the
        // nanoseconds).
        if meta.len() != member.size || (meta.mtime(), meta.mtime_nsec()) != member.mtime {
            self.failed += 1;
            let line = format!(
                "spate: {}: changed while reading (archived {} bytes of it)",
                member.path.display(),
                member.size
            );
            progress.println(&line);
            return Ok(None);
        }
        Ok(reader.hasher.map(|h| h.finalize().to_hex().to_string()))
    }

    fn header(&mut self, member: &Member, kind: EntryType) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(member.mode);
        let mut mtime = member.mtime.0.max(0) as u64;
        if let Some(clamp) = self.config.clamp_mtime {
            mtime = mtime.min(clamp);
        }
        header.set_mtime(mtime);
        if self.config.reproducible {
            header.set_uid(0);
            header.set_gid(0);
        } else {
            header.set_uid(u64::from(member.uid));
            header.set_gid(u64::from(member.gid));
            // Names that do not fit the header are left out; the numbers remain.
            if let Some(user) = self.owners.user(member.uid) {
                let _ = header.set_username(user);
            }
            if let Some(group) = self.owners.group(member.gid) {
                let _ = header.set_groupname(group);
            }
        }
        header
    }

    fn record_digest(&mut self, member: &Member, digest: Option<String>) {
        let Some(hex) = digest else { return };
        if let Some(inode) = member.inode {
            self.links.entry(inode).or_insert_with(|| hex.clone());
        }
        let digests = vec![(Algo::Blake3, hex)];
        manifest::push_record(
            &mut self.manifest_buf,
            Format::Gnu,
            &member.given,
            member.size,
            &digests,
        );
    }

    fn report(&mut self, progress: &Progress, path: &Path, cause: &str) {
        self.failed += 1;
        progress.println(&format!("spate: {}: {cause}", path.display()));
    }

    /// A failed write into the tar stream. The compressor stage hands back the error
    /// that stopped it (the output's OS error, or a compressor thread that died), so
    /// this names the real cause.
    fn stream_error(&self, e: io::Error) -> anyhow::Error {
        anyhow::Error::new(e).context(format!("writing {}", self.output_name))
    }
}

enum Stream {
    /// The file could not be archived; the run goes on.
    Skipped(String),
    /// The archive itself failed.
    Fatal(anyhow::Error),
}

fn os(bytes: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}
