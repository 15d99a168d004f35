//! `spate unpack X.tar.zst MEMBER|GLOB…` (and `-O`) from the index: only the frames
//! that hold the selected members are decompressed.
//!
//! The members are not extracted here. The table picks them and this module hands the
//! ordinary unpack loop a tar stream made of just those members' bytes (each from its
//! first header block to the end of its data) followed by the two zero blocks that end
//! an archive, so every rule of the safe unpack (confinement, temp-then-rename, modes and
//! times last, refusing existing files, hard links) applies unchanged.
//!
//! The table is trusted only as far as it is checked: before anything is extracted,
//! every picked member's offset must hold a tar header (with a good checksum) naming
//! that member with that type, and the member must end before the next one's header
//! and inside the stream. One that does not makes the table broken: one warning line,
//! and the archive is read from the start instead.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use super::open::{ignored, indexed};
use super::{Frame, Index, read_frame};
use crate::archive::input::{self, Input};
use crate::archive::members::Members;
use crate::archive::unpack::header::{Kind, Meta, quote, short_cause};
use crate::report::Reporter;

/// Bytes of a tar block.
const BLOCK: u64 = 512;
/// Decompressed frames kept from the check for the extraction that follows, so that a
/// frame holding several picked headers is decompressed once, not twice.
const KEPT_BYTES: usize = 64 << 20;

/// The selected members of the archive at `path` as a tar stream, when the archive has
/// an index and the filters `given` select by name; `None`: read the archive from the
/// start (no filters, no index, or an index found broken, which is said on `reporter`).
pub(crate) fn open(path: &Path, given: &[OsString], reporter: &Reporter) -> Result<Option<Input>> {
    if given.is_empty() {
        return Ok(None);
    }
    let Some((file, index)) = indexed(path, reporter) else {
        return Ok(None);
    };
    // The unpack loop applies the same filters again to the stream, which holds exactly
    // what they select here; this copy only picks.
    let mut members = Members::new(given)?;
    let mut frames = Frames::new(file, index.frames.clone());
    let mut segments = Vec::new();
    for (i, entry) in index.entries.iter().enumerate() {
        if entry.kind() == Kind::Meta || !members.select(&entry.name) {
            continue;
        }
        match check(&mut frames, &index, i) {
            Ok(segment) => segments.push(segment),
            Err(why) => {
                ignored(path, &why, reporter);
                return Ok(None);
            }
        }
    }
    frames.keep = false;
    let picked = Picked {
        frames,
        segments: segments.into_iter(),
        current: None,
        end_blocks: 2 * BLOCK as usize,
    };
    let label = path.display().to_string();
    input::from_reader(Box::new(picked), label, reporter.progress()).map(Some)
}

/// One member's bytes in the tar stream: `start..end`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u64,
    end: u64,
}

/// Checks that member `i` of the table is where the table says, and finds where it ends.
fn check(frames: &mut Frames, index: &Index, i: usize) -> Result<Segment, String> {
    let entry = &index.entries[i];
    let start = entry.header_at;
    let name = quote(&entry.name);
    let wrong = |what: String| {
        format!("the table places \"{name}\" at byte {start} of the tar stream, where {what}")
    };
    let mut reader = At {
        frames,
        pos: start,
        failed: None,
    };
    let (found, stored) = {
        let mut archive = tar::Archive::new(&mut reader);
        let mut entries = archive
            .entries()
            .map_err(|e| wrong(format!("nothing can be read ({})", short_cause(&e))))?;
        let mut header = match entries.next() {
            None => return Err(wrong("the stream has no member".into())),
            Some(Err(e)) => return Err(wrong(format!("is no tar header ({})", short_cause(&e)))),
            Some(Ok(header)) => header,
        };
        let meta = Meta::read(&mut header)
            .map_err(|e| wrong(format!("the header is unreadable ({})", short_cause(&e))))?;
        let entry_type = header.header().entry_type();
        // The bytes the member's data takes in the stream: an old GNU sparse member
        // stores only its data segments, which its header's size counts.
        let stored = if entry_type.is_gnu_sparse() {
            header.header().entry_size().map_err(|e| short_cause(&e))?
        } else {
            header.size()
        };
        ((meta.name, entry_type.as_byte()), stored)
    };
    if let Some(why) = reader.failed {
        return Err(why);
    }
    let (found_name, found_type) = found;
    if found_name != entry.name {
        return Err(wrong(format!(
            "the header names \"{}\"",
            quote(&found_name)
        )));
    }
    if found_type != entry.entry_type {
        return Err(wrong(format!(
            "the header's type is '{}', not '{}'",
            found_type.escape_ascii(),
            entry.entry_type.escape_ascii()
        )));
    }
    // Headers read so far (long names, PAX records, the header itself), then the data
    // padded to whole blocks.
    let end = reader
        .pos
        .checked_add(stored.div_ceil(BLOCK) * BLOCK)
        .ok_or_else(|| wrong("the header's size overflows".into()))?;
    let limit = index
        .entries
        .get(i + 1)
        .map_or(index.tar_len, |next| next.header_at);
    if end > limit {
        return Err(wrong(format!(
            "a member of {} bytes would run past byte {limit}, where {}",
            end - start,
            if i + 1 < index.entries.len() {
                "the next member starts"
            } else {
                "the tar stream ends"
            }
        )));
    }
    Ok(Segment { start, end })
}

/// The archive's data frames, decompressed on demand, each checked against the seek
/// table by [`read_frame`].
struct Frames {
    file: Arc<File>,
    list: Vec<Frame>,
    /// While checking: keep what is decompressed (up to [`KEPT_BYTES`]) for extracting.
    keep: bool,
    kept: BTreeMap<usize, Arc<Vec<u8>>>,
    kept_bytes: usize,
    /// The frame read last, which the next read most likely wants again.
    current: Option<(usize, Arc<Vec<u8>>)>,
}

impl Frames {
    fn new(file: Arc<File>, list: Vec<Frame>) -> Frames {
        Frames {
            file,
            list,
            keep: true,
            kept: BTreeMap::new(),
            kept_bytes: 0,
            current: None,
        }
    }

    /// Bytes of the tar stream from `pos` on, as many as one frame holds; 0 at the end.
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let i = self
            .list
            .partition_point(|f| f.d_offset + u64::from(f.d_size) <= pos);
        let Some(frame) = self.list.get(i).copied() else {
            return Ok(0);
        };
        let data = self.frame(i)?;
        // `pos` lies in the frame, whose data is `d_size` bytes (checked on reading).
        let at = usize::try_from(pos - frame.d_offset).unwrap_or(usize::MAX);
        let n = buf.len().min(data.len().saturating_sub(at));
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }

    fn frame(&mut self, i: usize) -> io::Result<Arc<Vec<u8>>> {
        if let Some((at, data)) = &self.current
            && *at == i
        {
            return Ok(Arc::clone(data));
        }
        let data = match self.kept.remove(&i) {
            Some(data) => {
                self.kept_bytes -= data.len();
                data
            }
            None => Arc::new(read_frame(&self.file, &self.list[i])?),
        };
        if self.keep && self.kept_bytes + data.len() <= KEPT_BYTES {
            self.kept_bytes += data.len();
            self.kept.insert(i, Arc::clone(&data));
        }
        self.current = Some((i, Arc::clone(&data)));
        Ok(data)
    }
}

/// The tar stream from a position on, for checking one member's headers.
struct At<'a> {
    frames: &'a mut Frames,
    pos: u64,
    /// Why a frame could not be read, said as such rather than as a bad header.
    failed: Option<String>,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.frames.read_at(self.pos, buf) {
            Ok(n) => {
                self.pos += n as u64;
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
    frames: Frames,
    segments: std::vec::IntoIter<Segment>,
    current: Option<Segment>,
    /// Zero bytes still to give after the last member.
    end_blocks: usize,
}

impl Read for Picked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(segment) = &mut self.current
                && segment.start < segment.end
            {
                let left = usize::try_from(segment.end - segment.start).unwrap_or(usize::MAX);
                let want = buf.len().min(left);
                let n = self.frames.read_at(segment.start, &mut buf[..want])?;
                if n == 0 {
                    // Checked against the stream's length before: cannot happen.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the tar stream ends inside a member",
                    ));
                }
                segment.start += n as u64;
                return Ok(n);
            }
            match self.segments.next() {
                Some(segment) => self.current = Some(segment),
                None => break,
            }
        }
        let n = buf.len().min(self.end_blocks);
        buf[..n].fill(0);
        self.end_blocks -= n;
        Ok(n)
    }
}
