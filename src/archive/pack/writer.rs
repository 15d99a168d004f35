//! Pack's writer: appends every member to the one tar stream, in walk order, on the
//! job's own thread.

use std::collections::HashMap;
use std::io;

use anyhow::Result;
use tar::{EntryType, Header};

use super::{Kind, Member, names};
use crate::archive::PackConfig;
use crate::archive::codec::Encoder;
use crate::archive::counting::Counted;
use crate::archive::member_sink::Collected;
use crate::archive::owners::Owners;
use crate::archive::stored_names::Removed;
use crate::archive::streamed::{Incoming, StreamEnd, archived_anyway};
use crate::pipeline::Outcome;
use crate::progress::Progress;
use crate::report::{Cause, Problem, Reporter};

/// Appends members to the tar stream in walk order.
pub(super) struct Writer<'a> {
    pub(super) tar: tar::Builder<Counted<Encoder>>,
    /// Members appended, for the summary.
    pub(super) entries: u64,
    pub(super) config: &'a PackConfig,
    pub(super) owners: Owners,
    /// Digests of files with several links, for the manifest lines of later links.
    pub(super) links: HashMap<(u64, u64), blake3::Hash>,
    /// Prefixes of names already announced as removed.
    pub(super) removed: Removed,
    pub(super) manifest_buf: Vec<u8>,
    pub(super) failed: u64,
    /// The archive as messages name it ("standard output" for `-`).
    pub(super) output_name: String,
    /// What went into the archive of the streamed file whose outcome comes next.
    pub(super) streamed: Option<StreamEnd>,
    /// Its place in the index, for its digest.
    pub(super) streamed_toc: Option<usize>,
    /// `--shard`: directories held back to be written after every file.
    pub(super) deferred_dirs: Option<Vec<Member>>,
    /// Say GNU tar's "Removing leading …" notices: not in shards after the first.
    pub(super) says_notices: bool,
}

impl Writer<'_> {
    pub(super) fn write(
        &mut self,
        outcome: Outcome<Collected, Member>,
        reporter: &Reporter,
    ) -> Result<()> {
        if let Outcome::Read { tag: member, .. } | Outcome::Note(member) = &outcome
            && self.config.notices
            && self.says_notices
            && let Some(line) = self.removed.notice(&member.removed)
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
                names::append(
                    &mut self.tar,
                    &mut header,
                    &member.name,
                    None,
                    output.data.as_slice(),
                )
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
        names::append(&mut self.tar, &mut header, &member.name, None, &mut body)
            .map_err(|e| self.stream_error(e))?;
        self.entries += 1;
        self.streamed = Some(StreamEnd {
            archived: true,
            received: body.received(),
        });
        Ok(())
    }

    pub(super) fn write_member(&mut self, member: Member) -> Result<()> {
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
                names::append(&mut self.tar, &mut header, &member.name, None, io::empty())
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
                names::append(
                    &mut self.tar,
                    &mut header,
                    &member.name,
                    Some(target),
                    io::empty(),
                )
                .map_err(|e| self.stream_error(e))?;
                self.entries += 1;
                if let Kind::HardLink(_) = member.kind
                    && let Some(digest) = member.inode.and_then(|i| self.links.get(&i)).copied()
                {
                    self.record_digest(&member, Some(digest), toc);
                }
            }
            Kind::Announce => {}
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

    /// A failed write into the tar stream. The compressor stage hands back the error
    /// that stopped it (the output's OS error, or a compressor thread that died), so
    /// this names the real cause.
    pub(super) fn stream_error(&self, e: io::Error) -> anyhow::Error {
        anyhow::Error::new(e).context(format!("writing {}", self.output_name))
    }
}
