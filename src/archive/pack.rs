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
use super::codec::{Compression, EncodeOptions, Encoder};
use super::counting::{Counted, count_files};
use super::index::TocEntry;
use super::member_sink::{CollectFactory, Collected};
use super::owners::Owners;
use super::shard_select::ShardSelect;
use super::stored_names::{self, Removed, Root, stored_name};
use super::streamed::{self, Incoming, Outgoing, Slots, StreamEnd, archived_anyway};
use super::unpack::header::Mtime;
use crate::error::{ErrorKind, describe_io};
use crate::hash::digest::Algo;
use crate::manifest::{self, Format};
use crate::output::{Cleanup, Output, OwnFiles};
use crate::pipeline::{self, Feed, Item, Outcome};
use crate::progress::{ArchiveSummary, Progress};
use crate::report::{Cause, Problem, Reporter};
use crate::walk::{self, Entry, Notice, NoticeKind};

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
        // The same paths the walk below reads: under -C, beneath its directory.
        let paths: Vec<OsString> = roots
            .iter()
            .map(|r| r.disk().as_os_str().to_owned())
            .collect();
        let walk_options = walk_options.clone();
        progress.count_ahead(move |tally| count_files(&paths, &walk_options, tally));
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

/// The source: walks every root in order and pushes one item per entry. Roots are
/// walked one at a time so that each entry's name can be made from the name its root
/// was given by.
fn list_members(
    roots: &[Root],
    options: &walk::WalkOptions,
    buffer_size: usize,
    feed: &mut Feed<Member>,
) -> Result<()> {
    let mut inodes: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut select = ShardSelect::new(options.shard);
    let mut going = true;
    let slots = Slots::new();
    for root in roots {
        let disk = [root.disk().as_os_str().to_owned()];
        walk::entries(&disk, options, |item| {
            let item = match item {
                Ok(entry) => member_item(entry, root, &mut inodes, &mut select),
                Err(notice) => Some(Item::Notice(notice)),
            };
            going = match item {
                Some(Item::File(
                    entry,
                    member @ Member {
                        kind: Kind::LargeFile,
                        ..
                    },
                )) => push_streamed(feed, &slots, buffer_size, entry, member),
                Some(item) => feed.push(item),
                None => true,
            };
            going
        })?;
        if !going {
            break;
        }
    }
    Ok(())
}

/// Pushes a large file as a stream: once one of the [`streamed::OPEN`] places is free,
/// so that memory stays bounded however many large files follow.
fn push_streamed(
    feed: &mut Feed<Member>,
    slots: &Arc<Slots>,
    buffer_size: usize,
    entry: Entry,
    member: Member,
) -> bool {
    let slot = match slots.try_take() {
        Some(slot) => slot,
        // The writer gives a place back only once it has reached a streamed file, so
        // everything before it goes out first.
        None if feed.flush() => slots.take(),
        None => return false,
    };
    let (outgoing, incoming) = streamed::stream(member.size, buffer_size, slot);
    let start = member.with_kind(Kind::StreamStart(incoming));
    let read = member.with_kind(Kind::StreamRead(outgoing));
    feed.push_streamed(start, entry, read)
}

impl Member {
    /// The same member, as another step of its way into the archive.
    fn with_kind(&self, kind: Kind) -> Member {
        Member {
            name: self.name.clone(),
            removed: self.removed.clone(),
            given: self.given.clone(),
            path: self.path.clone(),
            kind,
            ..*self
        }
    }
}

fn notice(path: PathBuf, kind: NoticeKind) -> Item<Member> {
    Item::Notice(Notice { seq: 0, path, kind })
}

/// Decides what one walked entry becomes.
fn member_item(
    entry: walkdir::DirEntry,
    root: &Root,
    inodes: &mut HashMap<(u64, u64), Vec<u8>>,
    select: &mut ShardSelect,
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
    if !select.keeps(&given, &ft, &meta) {
        return None; // another `--shard`'s
    }
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
    if matches!(member.kind, Kind::File | Kind::LargeFile) {
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
    /// What went into the archive of the streamed file whose outcome comes next.
    streamed: Option<StreamEnd>,
    /// Its place in the index, for its digest.
    streamed_toc: Option<usize>,
    /// `--shard`: directories held back to be written after every file.
    deferred_dirs: Option<Vec<Member>>,
}

impl Writer<'_> {
    fn write(&mut self, outcome: Outcome<Collected, Member>, reporter: &Reporter) -> Result<()> {
        if let Outcome::Read { tag: member, .. } | Outcome::Note(member) = &outcome
            && let Some(line) = self.removed.notice(&member.removed)
            && self.config.notices
        {
            reporter.say(&line);
        }
        match outcome {
            Outcome::Read {
                output,
                tag:
                    member @ Member {
                        kind: Kind::StreamRead(_),
                        ..
                    },
                ..
            } => {
                // Its bytes are in the archive already; it was read to the end, unchanged.
                let toc = self.streamed_toc.take();
                if self.streamed.take().is_some_and(|end| end.archived) {
                    self.record_digest(&member, output.digest, toc);
                }
            }
            Outcome::Read {
                output,
                tag: member,
                ..
            } => {
                let mut header = self.header(&member, EntryType::Regular);
                header.set_size(output.data.len() as u64);
                let toc = self.begin(&header, &member.name, None)?;
                self.tar
                    .append_data(&mut header, os(&member.name), output.data.as_slice())
                    .map_err(|e| self.stream_error(e))?;
                self.entries += 1;
                self.record_digest(&member, output.digest, toc);
            }
            Outcome::Failed {
                path, error, tag, ..
            } => {
                self.failed += 1;
                match (&tag.kind, self.streamed.take()) {
                    (Kind::StreamRead(_), Some(end)) if end.archived => {
                        // The cause in words (never "os error N"), then what the member holds.
                        let mut problem = Problem::read(&path, error);
                        let words = archived_anyway(&problem.cause, tag.size, end.received);
                        problem.cause = Cause::Words(words);
                        reporter.error(&problem);
                    }
                    _ => reporter.read_failed(&path, error),
                }
            }
            Outcome::Notice(notice) => {
                if reporter.walk_notice(&notice) {
                    self.failed += 1;
                }
            }
            Outcome::Note(mut member) => match std::mem::replace(&mut member.kind, Kind::File) {
                Kind::StreamStart(incoming) => {
                    self.write_streamed(&member, incoming, reporter.progress())?
                }
                kind => {
                    member.kind = kind;
                    self.write_member(member)?;
                }
            },
        }
        Ok(())
    }

    /// Writes a large file's member as its reader sends the bytes. The header goes out
    /// with the size the walk saw and the member is that long whatever happens to the
    /// file meanwhile (cut or padded with zeros, as GNU tar does), so the archive stays
    /// readable; whether the file changed is the reader's verdict, in the file's
    /// outcome, which comes next.
    fn write_streamed(
        &mut self,
        member: &Member,
        incoming: Incoming,
        progress: &Progress,
    ) -> Result<()> {
        let Some(mut body) = incoming.body(member.size, progress) else {
            self.streamed = Some(StreamEnd {
                archived: false,
                received: 0,
            });
            return Ok(());
        };
        let mut header = self.header(member, EntryType::Regular);
        header.set_size(member.size);
        self.streamed_toc = self.begin(&header, &member.name, None)?;
        self.tar
            .append_data(&mut header, os(&member.name), &mut body)
            .map_err(|e| self.stream_error(e))?;
        self.entries += 1;
        self.streamed = Some(StreamEnd {
            archived: true,
            received: body.received(),
        });
        Ok(())
    }

    fn write_member(&mut self, member: Member) -> Result<()> {
        if matches!(member.kind, Kind::Dir)
            && let Some(dirs) = self.deferred_dirs.as_mut()
        {
            dirs.push(member);
            return Ok(());
        }
        match &member.kind {
            Kind::Dir => {
                let mut header = self.header(&member, EntryType::Directory);
                header.set_size(0);
                self.begin(&header, &member.name, None)?;
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
                let toc = self.begin(&header, &member.name, Some(target))?;
                self.tar
                    .append_link(&mut header, os(&member.name), os(target))
                    .map_err(|e| self.stream_error(e))?;
                self.entries += 1;
                if let Kind::HardLink(_) = member.kind
                    && let Some(digest) = member.inode.and_then(|i| self.links.get(&i)).cloned()
                {
                    self.record_digest(&member, Some(digest), toc);
                }
            }
            Kind::File | Kind::LargeFile | Kind::StreamStart(_) | Kind::StreamRead(_) => {
                anyhow::bail!("internal error: a pipeline file came back as a note")
            }
        }
        Ok(())
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

    /// `--shard`: the directories, after every file and starting a frame, so that
    /// `spate merge` can move them behind every part's files (whose extraction would
    /// otherwise change their mtimes again).
    fn write_deferred_dirs(&mut self) -> Result<()> {
        let Some(dirs) = self.deferred_dirs.take().filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        // Ending the frame here is what `end_of_members` does.
        self.tar
            .get_mut()
            .inner
            .end_of_members()
            .map_err(|e| self.stream_error(e))?;
        for member in dirs {
            self.write_member(member)?;
        }
        Ok(())
    }

    /// Records, in an indexed archive, the member whose header comes next.
    fn begin(
        &mut self,
        header: &Header,
        name: &[u8],
        link: Option<&[u8]>,
    ) -> Result<Option<usize>> {
        let entry = || TocEntry {
            // As the header will say them: the tar crate rewrites short names.
            name: stored_names::as_stored(name, false),
            entry_type: header.entry_type().as_byte(),
            link: link.map(|l| stored_names::as_stored(l, true)),
            mode: header.mode().unwrap_or(0),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            user: header
                .username_bytes()
                .filter(|u| !u.is_empty())
                .map(<[u8]>::to_vec),
            group: header
                .groupname_bytes()
                .filter(|g| !g.is_empty())
                .map(<[u8]>::to_vec),
            size: header.size().unwrap_or(0),
            mtime: Mtime {
                secs: i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(i64::MAX),
                nanos: 0,
            },
            device: None,
            header_at: 0,
            digest: None,
        };
        self.tar
            .get_mut()
            .inner
            .begin_member(entry)
            .map_err(|e| self.stream_error(e))
    }

    fn record_digest(&mut self, member: &Member, digest: Option<String>, toc: Option<usize>) {
        let Some(hex) = digest else { return };
        if let (Some(at), Some(bytes)) = (toc, digest_bytes(&hex)) {
            self.tar.get_mut().inner.set_digest(at, bytes);
        }
        if let Some(inode) = member.inode {
            self.links.entry(inode).or_insert_with(|| hex.clone());
        }
        // Digests are also made for the index alone: no manifest, no lines to keep.
        if self.config.manifest.is_none() {
            return;
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

    /// A failed write into the tar stream. The compressor stage hands back the error
    /// that stopped it (the output's OS error, or a compressor thread that died), so
    /// this names the real cause.
    fn stream_error(&self, e: io::Error) -> anyhow::Error {
        anyhow::Error::new(e).context(format!("writing {}", self.output_name))
    }
}

/// A hex BLAKE3 digest as its 32 bytes.
fn digest_bytes(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

fn os(bytes: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}
