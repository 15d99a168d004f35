//! `spate unpack X.tar.zst MEMBER|GLOB…` (and `-O`) from the index: only the frames
//! that hold the selected members are read, and each only as far as it must be.
//!
//! The members are not extracted here. The table picks them and this module hands the
//! ordinary unpack loop a tar stream made of just those members' bytes (each from its
//! first header block to the end of its data) followed by the two zero blocks that end
//! an archive, so every rule of the safe unpack (confinement, temp-then-rename, modes and
//! times last, refusing existing files, hard links) applies unchanged.
//!
//! The table is trusted only as far as it is checked: before anything is extracted,
//! every picked member's offset must hold a tar header (with a good checksum) naming
//! that member with that type (and, for a link, that target), and the member must end
//! before the next one's header and inside the stream. One that does not makes the
//! table broken: one warning line, and the archive is read from the start instead.
//!
//! Frames are decompressed as a stream ([`Cursor`]) from the start of the frame that
//! holds a member up to the member's end, not beyond: the rest of the frame is not
//! decompressed, so its checksum (which covers the whole frame) is not checked. What is
//! checked instead: a file's data against the BLAKE3 the table keeps for it (read
//! from the same bytes as they are handed on; a mismatch fails the member's last read,
//! so its temporary file is never renamed). A member with data but no digest (sparse,
//! or a file that changed while it was packed) has every frame it lies in read to the
//! end and checked before anything is extracted, as whole frames always are.

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::Path;

use anyhow::Result;

use super::cursor::Cursor;
use super::open::{ignored, indexed_blocks};
use super::{DIGEST_LEN, Digests, EntryRef, Loaded, TocDigest};
use crate::archive::members::Members;
use crate::archive::unpack::header::{Kind, Layout, Meta, quote, short_cause};
use crate::progress::Progress;
use crate::report::Reporter;

/// Bytes of a tar block.
const BLOCK: u64 = 512;
/// Header bytes kept from the check for the extraction that follows, in all: a
/// selection of many members has the rest decompressed again rather than held.
const KEPT_HEADS: usize = 4 << 20;

/// The selected members of an archive, as a tar stream, and the archive's name for
/// messages.
pub(crate) struct Selected {
    pub stream: Box<dyn Read + Send>,
    pub label: String,
}

/// The selected members of the archive at `path` as a tar stream, when the archive has
/// an index and the filters `given` select by name; `None`: read the archive from the
/// start (no filters, no index, or an index found broken, which is said on `reporter`).
pub(crate) fn open(
    path: &Path,
    given: &[OsString],
    reporter: &Reporter,
) -> Result<Option<Selected>> {
    if given.is_empty() {
        return Ok(None);
    }
    // The table as read, its blocks decoded one at a time, not as one owned entry per
    // member: a name test per member is all most of them get. The digests are read:
    // they check what is extracted.
    let Some((file, table)) = indexed_blocks(path, reporter, Digests::Read) else {
        return Ok(None);
    };
    // The unpack loop applies the same filters again to the stream, which holds exactly
    // what they select here; this copy only picks.
    let mut members = Members::new(given)?;
    let mut cursor = Cursor::new(file, table.frames.clone())?;
    let mut segments: Vec<Segment> = Vec::new();
    let mut kept = 0;
    let toc = &table.toc;
    let mut blocks = toc.members();
    let mut loaded = Loaded::default();
    for b in 0..blocks.blocks() {
        // A block that does not decode or check out makes the table broken, as a
        // member found elsewhere than it says does: nothing was extracted yet.
        if let Err(why) = blocks.load_into(b, &mut loaded) {
            ignored(path, &why, reporter);
            return Ok(None);
        }
        let last_block = b + 1 == blocks.blocks();
        for j in 0..loaded.len() {
            // The name first: it rules out nearly every entry.
            if !members.select(loaded.name(j)) {
                continue;
            }
            let entry = toc.entry(&loaded, j);
            if entry.kind() == Kind::Meta {
                continue;
            }
            let limit = match j + 1 < loaded.len() {
                true => Limit {
                    at: loaded.header_at(j + 1),
                    last: false,
                },
                false => Limit {
                    at: toc.end_of(&loaded),
                    last: last_block,
                },
            };
            let digest = toc.digest(entry.index);
            match check(&mut cursor, &entry, limit, digest) {
                Ok(mut segment) => {
                    let len = segment.head.as_ref().map_or(0, Vec::len);
                    if kept + len > KEPT_HEADS {
                        segment.head = None;
                    } else {
                        kept += len;
                    }
                    segments.push(segment);
                }
                Err(why) => {
                    ignored(path, &why, reporter);
                    return Ok(None);
                }
            }
        }
    }
    let progress = reporter.progress().clone();
    progress.set_unknown_total();
    let picked = Picked {
        cursor,
        segments: segments.into_iter(),
        current: None,
        end_blocks: 2 * BLOCK as usize,
        progress,
    };
    Ok(Some(Selected {
        stream: Box::new(picked),
        label: path.display().to_string(),
    }))
}

/// One member's bytes in the tar stream, as the check found them.
struct Segment {
    /// Where its first header block is in the tar stream.
    start: u64,
    /// Its header blocks (GNU long names, PAX records, the header itself), when kept
    /// from the check so that they are not decompressed again (up to [`KEPT_HEADS`]).
    head: Option<Vec<u8>>,
    /// Where its data starts in the tar stream, and its bytes there, padded to blocks.
    data_at: u64,
    data_len: u64,
    /// The BLAKE3 its first `size` bytes of data must have, when the frames it lies in
    /// are not all checked before extraction.
    digest: Option<Digest>,
}

struct Digest {
    want: TocDigest,
    size: u64,
}

/// Where the member after one starts: the next member's header, or the end of the tar
/// stream after the last member.
#[derive(Clone, Copy)]
struct Limit {
    at: u64,
    last: bool,
}

/// Checks that `entry` is where the table says, and finds where it ends (before
/// `limit`); reads its frames whole (which checks them) when its data has no digest.
fn check(
    cursor: &mut Cursor,
    entry: &EntryRef<'_>,
    limit: Limit,
    digest: Option<&TocDigest>,
) -> Result<Segment, String> {
    let start = entry.header_at;
    let name = quote(entry.name);
    let wrong = |what: String| {
        format!("the table places \"{name}\" at byte {start} of the tar stream, where {what}")
    };
    cursor.seek(start).map_err(|e| e.to_string())?;
    let mut reader = Recorder {
        cursor,
        head: Vec::new(),
        failed: None,
    };
    let parsed = read_header(&mut reader, &wrong);
    // A frame that could not be read is said as such rather than as a bad header.
    if let Some(why) = reader.failed {
        return Err(why);
    }
    let (meta, found_type, data_offset, stored) = parsed?;
    let mut head = reader.head;
    if meta.name != entry.name {
        return Err(wrong(format!("the header names \"{}\"", quote(&meta.name))));
    }
    if found_type != entry.entry_type {
        return Err(wrong(format!(
            "the header's type is '{}', not '{}'",
            found_type.escape_ascii(),
            entry.entry_type.escape_ascii()
        )));
    }
    if matches!(meta.kind, Kind::Symlink | Kind::HardLink) && meta.link.as_deref() != entry.link {
        return Err(wrong(format!(
            "the header links to \"{}\"",
            quote(meta.link.as_deref().unwrap_or_default())
        )));
    }
    let data_at = start + data_offset;
    let data_len = stored.div_ceil(BLOCK) * BLOCK;
    let end = data_at
        .checked_add(data_len)
        .ok_or_else(|| wrong("the header's size overflows".into()))?;
    if end > limit.at {
        return Err(wrong(format!(
            "a member of {} bytes would run past byte {}, where {}",
            end - start,
            limit.at,
            if limit.last {
                "the tar stream ends"
            } else {
                "the next member starts"
            }
        )));
    }
    // Only the header blocks: reading a PAX sparse map may have gone into the data.
    let head_len = usize::try_from(data_offset).unwrap_or(usize::MAX);
    if head.len() < head_len {
        return Err(wrong(
            "the headers end before the member's data starts".into(),
        ));
    }
    head.truncate(head_len);
    let digest = match digest {
        Some(&want) if meta.kind == Kind::File && meta.layout == Layout::Plain => {
            Some(Digest { want, size: stored })
        }
        _ => None,
    };
    if digest.is_none() && stored > 0 {
        cursor
            .read_through(end)
            .and_then(|()| cursor.finish_frame())
            .map_err(|e| e.to_string())?;
    }
    Ok(Segment {
        start,
        head: Some(head),
        data_at,
        data_len,
        digest,
    })
}

/// What the header at the reader's start says: its metadata, type byte, where its data
/// starts (from the first header block) and the bytes the data takes in the stream.
fn read_header(
    reader: &mut Recorder<'_>,
    wrong: &dyn Fn(String) -> String,
) -> Result<(Meta, u8, u64, u64), String> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive
        .entries()
        .map_err(|e| wrong(format!("nothing can be read ({})", short_cause(&e))))?;
    let mut header = match entries.next() {
        None => return Err(wrong("the stream has no member".into())),
        Some(Err(e)) => return Err(wrong(format!("is no tar header ({})", short_cause(&e)))),
        Some(Ok(header)) => header,
    };
    let data_offset = header.raw_file_position();
    let meta = Meta::read(&mut header)
        .map_err(|e| wrong(format!("the header is unreadable ({})", short_cause(&e))))?;
    let entry_type = header.header().entry_type();
    // The bytes the member's data takes in the stream: an old GNU sparse member stores
    // only its data segments, which its header's size counts.
    let stored = if entry_type.is_gnu_sparse() {
        header.header().entry_size().map_err(|e| short_cause(&e))?
    } else {
        header.size()
    };
    Ok((meta, entry_type.as_byte(), data_offset, stored))
}

/// The tar stream as the check reads it, keeping the bytes read (the headers).
struct Recorder<'a> {
    cursor: &'a mut Cursor,
    head: Vec<u8>,
    /// Why a frame could not be read, said as such rather than as a bad header.
    failed: Option<String>,
}

impl Read for Recorder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.cursor.read(buf) {
            Ok(n) => {
                self.head.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }
}

/// The picked members one after another, then the end of the archive.
struct Picked {
    cursor: Cursor,
    segments: std::vec::IntoIter<Segment>,
    current: Option<Current>,
    /// Zero bytes still to give after the last member.
    end_blocks: usize,
    /// Counts the bytes handed on (the tar stream's; nothing here is compressed).
    progress: Progress,
}

/// The member being handed on.
struct Current {
    segment: Segment,
    /// Bytes of its headers given, then of its data.
    head_given: usize,
    data_given: u64,
    hasher: Option<blake3::Hasher>,
}

impl Read for Picked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(current) = &mut self.current {
                let n = current.read(&mut self.cursor, buf)?;
                if n > 0 || buf.is_empty() {
                    self.progress.advance(n as u64);
                    return Ok(n);
                }
            }
            match self.segments.next() {
                Some(segment) => {
                    self.current = Some(Current {
                        hasher: segment.digest.as_ref().map(|_| blake3::Hasher::new()),
                        segment,
                        head_given: 0,
                        data_given: 0,
                    })
                }
                None => break,
            }
        }
        self.current = None;
        let n = buf.len().min(self.end_blocks);
        buf[..n].fill(0);
        self.end_blocks -= n;
        Ok(n)
    }
}

impl Current {
    /// The member's next bytes; 0 once all are given.
    fn read(&mut self, cursor: &mut Cursor, buf: &mut [u8]) -> io::Result<usize> {
        let head_len =
            usize::try_from(self.segment.data_at - self.segment.start).unwrap_or(usize::MAX);
        if self.head_given < head_len {
            let want = buf.len().min(head_len - self.head_given);
            let n = match &self.segment.head {
                Some(head) => {
                    buf[..want].copy_from_slice(&head[self.head_given..self.head_given + want]);
                    want
                }
                // Read again from the frames the check read them from.
                None => {
                    let at = self.segment.start + self.head_given as u64;
                    read_at(cursor, at, &mut buf[..want])?
                }
            };
            self.head_given += n;
            return Ok(n);
        }
        let left = self.segment.data_len - self.data_given;
        if left == 0 {
            return Ok(0);
        }
        let at = self.segment.data_at + self.data_given;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_at(cursor, at, &mut buf[..want])?;
        if let (Some(digest), Some(hasher)) = (&self.segment.digest, &mut self.hasher) {
            // Only the data, not the padding after it.
            let data_left = digest.size.saturating_sub(self.data_given);
            let hashed = usize::try_from(data_left).unwrap_or(usize::MAX).min(n);
            hasher.update(&buf[..hashed]);
            if hashed > 0
                && hashed as u64 == data_left
                && hasher.finalize().as_bytes()[..DIGEST_LEN] != digest.want
            {
                // Failing the read that would complete the data: the member's temporary
                // file is removed, not renamed.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "its data does not match the BLAKE3 digest in the table of contents",
                ));
            }
        }
        self.data_given += n as u64;
        Ok(n)
    }
}

/// Bytes of the tar stream from `at` on, moving the cursor there first if it is
/// elsewhere.
fn read_at(cursor: &mut Cursor, at: u64, buf: &mut [u8]) -> io::Result<usize> {
    if cursor.pos() != at {
        cursor.seek(at)?;
    }
    let n = cursor.read(buf)?;
    if n == 0 && !buf.is_empty() {
        // Checked against the stream's length before: cannot happen.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the tar stream ends inside a member",
        ));
    }
    Ok(n)
}
