//! [`TocView`]: a decoded table of contents that keeps the metadata section as one
//! buffer and hands out members as [`EntryRef`]s borrowing from it, so that reading a
//! table of tens of thousands of members allocates a few buffers, not a few per
//! member. Built (and every member checked) by `toc.rs`.

use super::format::{Toc, TocEntry, u32_at, u64_at};
use super::toc::{HAS_DEVICE, HAS_LINK};
use crate::archive::unpack::header::{Kind, Mtime};

/// A decoded table of contents: every member's metadata, and their digests when the
/// digest section was read too.
#[derive(Debug, Clone)]
pub struct TocView {
    /// The metadata section, decompressed; header offsets and the ends of names and
    /// links rewritten as running totals by the decoder.
    bytes: Vec<u8>,
    count: usize,
    owners: Vec<Owner>,
    cols: Columns,
    digests: Option<DigestSection>,
    /// Bytes of the tar stream, as the table says (the reader checks it against the
    /// seek table).
    pub tar_len: u64,
    /// Data frames, as the table says.
    pub frames: u32,
}

/// One owner dictionary entry; names as (offset, length) in the section.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub uid: u64,
    pub gid: u64,
    pub user: Option<(usize, usize)>,
    pub group: Option<(usize, usize)>,
}

/// Where each column starts in the metadata section.
#[derive(Debug, Clone)]
pub(super) struct Columns {
    pub types: usize,
    pub flags: usize,
    pub modes: usize,
    pub owners: usize,
    pub sizes: usize,
    pub secs: usize,
    pub nanos: usize,
    pub offsets: usize,
    pub name_ends: usize,
    pub link_ends: usize,
    pub devices: usize,
    pub names: usize,
    pub links: usize,
}

/// The digest section: presence bitmap and digests, with the number of digests before
/// each bitmap byte so that [`TocView::digest`] finds one without counting from 0.
#[derive(Debug, Clone)]
pub(super) struct DigestSection {
    bytes: Vec<u8>,
    before: Vec<u32>,
    bitmap_len: usize,
}

impl DigestSection {
    /// `None` when the section's length is not that of its bitmap and the digests the
    /// bitmap announces, or a bit beyond the last member is set.
    pub fn new(bytes: Vec<u8>, count: usize) -> Option<DigestSection> {
        let bitmap_len = count.div_ceil(8);
        let bitmap = bytes.get(..bitmap_len)?;
        let mut before = Vec::with_capacity(bitmap_len);
        let mut seen = 0u32;
        for &b in bitmap {
            before.push(seen);
            seen += b.count_ones();
        }
        let spare = bitmap_len * 8 - count;
        let last_ok = bitmap
            .last()
            .is_none_or(|&b| spare == 0 || b >> (8 - spare) == 0);
        (last_ok && bytes.len() == bitmap_len + seen as usize * 32).then_some(DigestSection {
            bytes,
            before,
            bitmap_len,
        })
    }

    fn get(&self, i: usize) -> Option<&[u8; 32]> {
        let byte = self.bytes[i / 8];
        let bit = 1u8 << (i % 8);
        if byte & bit == 0 {
            return None;
        }
        let rank = self.before[i / 8] as usize + (byte & (bit - 1)).count_ones() as usize;
        let at = self.bitmap_len + rank * 32;
        self.bytes.get(at..at + 32)?.try_into().ok()
    }
}

/// One member, borrowed from a [`TocView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Its place in the table (for [`TocView::digest`]).
    pub index: usize,
    /// The name as stored (after GNU long names).
    pub name: &'a [u8],
    /// The tar type byte (`'0'`, `'5'`, `'2'`, `'1'`, ...).
    pub entry_type: u8,
    /// Symbolic or hard link target.
    pub link: Option<&'a [u8]>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub user: Option<&'a [u8]>,
    pub group: Option<&'a [u8]>,
    /// Size of the file's data (0 for anything else).
    pub size: u64,
    pub mtime: Mtime,
    pub device: Option<(u32, u32)>,
    /// Offset in the tar stream of the member's first header block.
    pub header_at: u64,
}

impl EntryRef<'_> {
    pub fn kind(&self) -> Kind {
        Kind::of(tar::EntryType::new(self.entry_type))
    }
}

impl TocView {
    pub(super) fn new(
        bytes: Vec<u8>,
        count: usize,
        owners: Vec<Owner>,
        cols: Columns,
        tar_len: u64,
        frames: u32,
    ) -> TocView {
        TocView {
            bytes,
            count,
            owners,
            cols,
            digests: None,
            tar_len,
            frames,
        }
    }

    pub(super) fn set_digests(&mut self, digests: DigestSection) {
        self.digests = Some(digests);
    }

    /// Members in the table.
    pub fn len(&self) -> usize {
        self.count
    }

    #[allow(dead_code)] // for the readers that take the view, as len() is
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the digest section was read (see [`TocView::digest`]).
    #[allow(dead_code)] // check's side of the API; the tests use it today
    pub fn has_digests(&self) -> bool {
        self.digests.is_some()
    }

    /// Member `i` (below [`TocView::len`]).
    pub fn entry(&self, i: usize) -> EntryRef<'_> {
        let b = &self.bytes;
        let c = &self.cols;
        let flags = b[c.flags + i];
        let end_at = |col: usize, i: usize| u32_at(b, col + i * 4) as usize;
        let span = |col: usize, blob: usize| {
            let start = if i == 0 { 0 } else { end_at(col, i - 1) };
            &b[blob + start..blob + end_at(col, i)]
        };
        let owner = &self.owners[u32_at(b, c.owners + i * 4) as usize];
        let text = |at: Option<(usize, usize)>| at.map(|(at, len)| &b[at..at + len]);
        EntryRef {
            index: i,
            name: span(c.name_ends, c.names),
            entry_type: b[c.types + i],
            link: (flags & HAS_LINK != 0).then(|| span(c.link_ends, c.links)),
            mode: u32_at(b, c.modes + i * 4),
            uid: owner.uid,
            gid: owner.gid,
            user: text(owner.user),
            group: text(owner.group),
            size: u64_at(b, c.sizes + i * 8),
            mtime: Mtime {
                secs: u64_at(b, c.secs + i * 8) as i64,
                nanos: u32_at(b, c.nanos + i * 4),
            },
            device: (flags & HAS_DEVICE != 0).then(|| {
                let at = c.devices + i * 8;
                (u32_at(b, at), u32_at(b, at + 4))
            }),
            header_at: u64_at(b, c.offsets + i * 8),
        }
    }

    /// Every member, in archive order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EntryRef<'_>> + '_ {
        (0..self.count).map(|i| self.entry(i))
    }

    /// The BLAKE3 of member `i`'s content (for a hard link, its target's), when it was
    /// read whole and unchanged; always `None` when the digest section was not read.
    pub fn digest(&self, i: usize) -> Option<&[u8; 32]> {
        self.digests.as_ref().filter(|_| i < self.count)?.get(i)
    }

    /// The member as an owned [`TocEntry`].
    pub fn to_entry(&self, i: usize) -> TocEntry {
        let e = self.entry(i);
        TocEntry {
            name: e.name.to_vec(),
            entry_type: e.entry_type,
            link: e.link.map(<[u8]>::to_vec),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            user: e.user.map(<[u8]>::to_vec),
            group: e.group.map(<[u8]>::to_vec),
            size: e.size,
            mtime: e.mtime,
            device: e.device,
            header_at: e.header_at,
            digest: self.digest(i).copied(),
        }
    }

    /// Every member as an owned [`TocEntry`].
    pub fn to_entries(&self) -> Vec<TocEntry> {
        (0..self.count).map(|i| self.to_entry(i)).collect()
    }

    /// The table as an owned [`Toc`].
    #[allow(dead_code)] // merge's form of a table; the tests compare with it
    pub fn to_toc(&self) -> Toc {
        Toc {
            entries: self.to_entries(),
            tar_len: self.tar_len,
            frames: self.frames,
        }
    }
}
