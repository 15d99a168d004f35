//! [`TocView`]: a table of contents as read, its metadata blocks still compressed, and
//! [`Members`], which decodes them one block at a time into the same buffers and hands
//! out members as [`EntryRef`]s borrowing from them, so that reading a table of tens of
//! thousands of members allocates a few small buffers, not one per member nor one for
//! the whole table. Built by `toc.rs`; blocks decoded (and their members checked) by
//! `block.rs`.

use super::block::{Block, Bounds};
use super::format::{DIGEST_LEN, Toc, TocDigest, TocEntry};
use crate::archive::unpack::header::Kind;

/// A table of contents: the metadata section as stored (checked against its BLAKE3),
/// and the digests when the digest section was read too.
#[derive(Debug, Clone)]
pub struct TocView {
    /// The metadata section: owner dictionary, block directory, compressed blocks.
    section: Vec<u8>,
    count: usize,
    per_block: usize,
    owners: Vec<Owner>,
    blocks: Vec<BlockAt>,
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

/// Where a block is in the section, as the directory says.
#[derive(Debug, Clone)]
pub(super) struct BlockAt {
    pub at: usize,
    pub packed_len: usize,
    pub raw_len: usize,
    /// The header offset of its first member.
    pub first_at: u64,
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
        (last_ok && bytes.len() == bitmap_len + seen as usize * DIGEST_LEN).then_some(
            DigestSection {
                bytes,
                before,
                bitmap_len,
            },
        )
    }

    fn get(&self, i: usize) -> Option<&TocDigest> {
        let byte = self.bytes[i / 8];
        let bit = 1u8 << (i % 8);
        if byte & bit == 0 {
            return None;
        }
        let rank = self.before[i / 8] as usize + (byte & (bit - 1)).count_ones() as usize;
        let at = self.bitmap_len + rank * DIGEST_LEN;
        self.bytes.get(at..at + DIGEST_LEN)?.try_into().ok()
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
    pub mtime: crate::archive::unpack::header::Mtime,
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
        section: Vec<u8>,
        count: usize,
        per_block: usize,
        owners: Vec<Owner>,
        blocks: Vec<BlockAt>,
        tar_len: u64,
        frames: u32,
    ) -> TocView {
        TocView {
            section,
            count,
            per_block,
            owners,
            blocks,
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

    /// Blocks of members.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the digest section was read (see [`TocView::digest`]).
    #[allow(dead_code)] // check's side of the API; the tests use it today
    pub fn has_digests(&self) -> bool {
        self.digests.is_some()
    }

    /// The digest of member `i`'s content (the first [`DIGEST_LEN`] bytes of its
    /// BLAKE3; for a hard link, its target's), when it was read whole and unchanged;
    /// always `None` when the digest section was not read.
    pub fn digest(&self, i: usize) -> Option<&TocDigest> {
        self.digests.as_ref().filter(|_| i < self.count)?.get(i)
    }

    /// A reader of the members, block by block.
    pub fn members(&self) -> Members<'_> {
        Members {
            view: self,
            decompressor: None,
            loaded: Loaded::default(),
        }
    }

    /// The members of a block decoded by [`Members::load_into`], in archive order.
    pub fn entries<'a>(
        &'a self,
        loaded: &'a Loaded,
    ) -> impl ExactSizeIterator<Item = EntryRef<'a>> + 'a {
        let count = loaded.number.map_or(0, |_| loaded.block.count);
        (0..count).map(move |j| self.entry(loaded, j))
    }

    /// Where the member after `loaded`'s last starts: the next block's first, or the
    /// end of the tar stream after the last block.
    pub fn end_of(&self, loaded: &Loaded) -> u64 {
        let next = loaded.number.map_or(0, |b| b + 1);
        self.blocks.get(next).map_or(self.tar_len, |n| n.first_at)
    }

    /// Member `j` (below [`Loaded::len`]) of the block `loaded`.
    pub fn entry<'a>(&'a self, loaded: &'a Loaded, j: usize) -> EntryRef<'a> {
        let b = &loaded.block;
        let owner = &self.owners[b.owners[j] as usize];
        let text = |at: Option<(usize, usize)>| at.map(|(at, len)| &self.section[at..at + len]);
        EntryRef {
            index: loaded.number.unwrap_or(0) * self.per_block + j,
            name: b.name(j),
            entry_type: b.entry_type(j),
            link: b.link(j),
            mode: b.modes[j],
            uid: owner.uid,
            gid: owner.gid,
            user: text(owner.user),
            group: text(owner.group),
            size: b.sizes[j],
            mtime: b.mtimes[j],
            device: b.device(j),
            header_at: b.offsets[j],
        }
    }

    /// Decodes every block, checking every member; the first fault in words.
    pub fn check_members(&self) -> Result<(), String> {
        let mut members = self.members();
        (0..self.blocks()).try_for_each(|b| members.load(b))
    }

    /// Every member as an owned [`TocEntry`] (every block decoded and checked).
    pub fn to_entries(&self) -> Result<Vec<TocEntry>, String> {
        let mut members = self.members();
        let mut out = Vec::with_capacity(self.count);
        for b in 0..self.blocks() {
            members.load(b)?;
            out.extend(
                members
                    .entries()
                    .map(|e| e.to_entry(self.digest(e.index).copied())),
            );
        }
        Ok(out)
    }

    /// The table as an owned [`Toc`].
    #[allow(dead_code)] // merge's form of a table; the tests compare with it
    pub fn to_toc(&self) -> Result<Toc, String> {
        Ok(Toc {
            entries: self.to_entries()?,
            tar_len: self.tar_len,
            frames: self.frames,
        })
    }
}

/// The members of a [`TocView`], one decoded block at a time.
pub struct Members<'a> {
    view: &'a TocView,
    /// Made on the first block (a decompression context costs more than a small block).
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    loaded: Loaded,
}

/// A decoded block, its buffers reused from one block to the next; it can be decoded
/// on one thread and read on another.
#[derive(Debug, Default)]
pub struct Loaded {
    block: Block,
    /// The block's number; `None` before a block decoded whole.
    number: Option<usize>,
}

impl Loaded {
    /// Members in the block (0 before one was decoded whole).
    pub fn len(&self) -> usize {
        self.number.map_or(0, |_| self.block.count)
    }

    #[allow(dead_code)] // for the readers that take the block, as len() is
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Member `j`'s name, without the rest of it: a selection by name tests every
    /// member and wants little else of most.
    pub fn name(&self, j: usize) -> &[u8] {
        self.block.name(j)
    }

    /// The bytes of the block's names together.
    pub fn names_len(&self) -> usize {
        self.block.names.len()
    }

    /// Member `j`'s header offset.
    pub fn header_at(&self, j: usize) -> u64 {
        self.block.offsets[j]
    }
}

impl<'a> Members<'a> {
    /// Blocks in the table.
    pub fn blocks(&self) -> usize {
        self.view.blocks()
    }

    /// Decompresses and decodes block `b` (below [`Members::blocks`]), checking each of
    /// its members; [`Members::entries`] then gives them.
    pub fn load(&mut self, b: usize) -> Result<(), String> {
        if self.loaded.number == Some(b) {
            return Ok(());
        }
        let mut loaded = std::mem::take(&mut self.loaded);
        let result = self.load_into(b, &mut loaded);
        self.loaded = loaded;
        result
    }

    /// Decodes block `b` into `into` (its buffers reused), checking each member.
    pub fn load_into(&mut self, b: usize, into: &mut Loaded) -> Result<(), String> {
        into.number = None;
        let view = self.view;
        let place = &view.blocks[b];
        let packed = &view.section[place.at..place.at + place.packed_len];
        let decompressor = match &mut self.decompressor {
            Some(d) => d,
            None => self.decompressor.insert(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| format!("the table of contents does not decompress: {e}"))?,
            ),
        };
        let block = &mut into.block;
        block.raw.clear();
        block.raw.reserve(place.raw_len);
        decompressor
            .decompress_to_buffer(packed, &mut block.raw)
            .map_err(|e| format!("the table of contents does not decompress: {e}"))?;
        if block.raw.len() != place.raw_len {
            return Err("the table of contents' lengths disagree".into());
        }
        let first = b * view.per_block;
        let count = view.per_block.min(view.count - first);
        let bounds = Bounds {
            first_at: place.first_at,
            end: view
                .blocks
                .get(b + 1)
                .map_or(view.tar_len, |next| next.first_at),
            owners: view.owners.len(),
        };
        block.decode(count, &bounds)?;
        into.number = Some(b);
        Ok(())
    }

    /// The members of the block loaded last, in archive order (none before a load).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = EntryRef<'_>> + '_ {
        self.view.entries(&self.loaded)
    }

    /// Where the member after the block loaded last starts: the next block's first, or
    /// the end of the tar stream after the last block.
    #[allow(dead_code)] // the readers hold their own decoded blocks
    pub fn end(&self) -> u64 {
        self.view.end_of(&self.loaded)
    }
}

impl EntryRef<'_> {
    /// The member as an owned [`TocEntry`], with `digest`.
    pub fn to_entry(self, digest: Option<TocDigest>) -> TocEntry {
        TocEntry {
            name: self.name.to_vec(),
            entry_type: self.entry_type,
            link: self.link.map(<[u8]>::to_vec),
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            user: self.user.map(<[u8]>::to_vec),
            group: self.group.map(<[u8]>::to_vec),
            size: self.size,
            mtime: self.mtime,
            device: self.device,
            header_at: self.header_at,
            digest,
        }
    }
}
