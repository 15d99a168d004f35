//! The table of contents frame, version 3 (layout in `format.rs`): encoding it from
//! [`Toc`], and decoding it in steps so that a reader takes only what it needs: the
//! head ([`Head::decode`]), then the metadata section ([`decode_metadata`]: its owner
//! dictionary and block directory; the blocks, all that `list` and `unpack` need, are
//! decoded one at a time by `view.rs`), then, for `check`, the digest section
//! ([`TocView::attach_digests`]). Each step checks its own BLAKE3 before it trusts a
//! byte, and the head's BLAKE3 covers the other two sums.

use std::collections::HashMap;
use std::io;

use super::block::{self, LEAST_PER_MEMBER, MEMBERS_PER_BLOCK};
use super::format::{TOC_MAGIC, TOC_TAG, TOC_VERSION, Toc, TocEntry, u32_at, u64_at};
use super::varint::{self, Reader};
use super::view::{BlockAt, DigestSection, Owner, TocView};

/// Bytes of the TOC content before the metadata section: tag, version, three zero
/// bytes, member count, tar length, frame count, members per block, the owner
/// dictionary's length, the metadata section's length, the digest section's length,
/// then three BLAKE3s: metadata section, digest section, and the head before it.
pub const HEAD_LEN: usize = 4 + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 32 * 3;
/// Bytes of the TOC frame before its metadata section (skippable header and head).
pub const FRAME_HEAD_LEN: usize = 8 + HEAD_LEN;
/// Bytes of a block's entry in the block directory: compressed and decompressed
/// lengths (u32 each) and the header offset of its first member (u64).
pub const DIRECTORY_ENTRY: usize = 16;
/// The largest block spate decompresses: thousands of members with names and link
/// targets of a few KiB each.
pub const MAX_BLOCK: usize = 256 << 20;

/// Owner dictionary entry flags.
const HAS_USER: u8 = 1;
const HAS_GROUP: u8 = 2;

/// The TOC frame, whole: skippable header, head, metadata section, digest section.
pub fn encode_toc(toc: &Toc, level: i32) -> io::Result<Vec<u8>> {
    let per_block = MEMBERS_PER_BLOCK;
    let (metadata, dictionary_len) = encode_metadata(&toc.entries, level, per_block)?;
    let digests = encode_digests(&toc.entries);
    let mut head = Vec::with_capacity(HEAD_LEN);
    head.extend_from_slice(TOC_TAG);
    head.extend_from_slice(&[TOC_VERSION, 0, 0, 0]);
    head.extend_from_slice(&too_big(toc.entries.len())?.to_le_bytes());
    head.extend_from_slice(&toc.tar_len.to_le_bytes());
    head.extend_from_slice(&toc.frames.to_le_bytes());
    head.extend_from_slice(&(per_block as u32).to_le_bytes());
    head.extend_from_slice(&too_big(dictionary_len)?.to_le_bytes());
    head.extend_from_slice(&too_big(metadata.len())?.to_le_bytes());
    head.extend_from_slice(&too_big(digests.len())?.to_le_bytes());
    head.extend_from_slice(blake3::hash(&metadata).as_bytes());
    head.extend_from_slice(blake3::hash(&digests).as_bytes());
    let sum = blake3::hash(&head);
    head.extend_from_slice(sum.as_bytes());
    let content = head.len() + metadata.len() + digests.len();
    let mut out = Vec::with_capacity(8 + content);
    out.extend_from_slice(&TOC_MAGIC.to_le_bytes());
    out.extend_from_slice(&too_big(content)?.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&metadata);
    out.extend_from_slice(&digests);
    Ok(out)
}

fn too_big(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::other("the table of contents is over 4 GiB"))
}

/// The metadata section as stored: the owner dictionary, the block directory, then
/// the blocks, each a zstd frame; and the dictionary's length.
fn encode_metadata(
    entries: &[TocEntry],
    level: i32,
    per_block: usize,
) -> io::Result<(Vec<u8>, usize)> {
    // Nearly every member of an archive has the same owner: a dictionary keeps the
    // four fields out of the blocks.
    type OwnerKey<'a> = (u64, u64, Option<&'a [u8]>, Option<&'a [u8]>);
    let mut dictionary: HashMap<OwnerKey<'_>, u32> = HashMap::new();
    let mut owners: Vec<OwnerKey<'_>> = Vec::new();
    // Runs of members share an owner: the last one is compared before the names are
    // hashed.
    let mut last: Option<(OwnerKey<'_>, u32)> = None;
    let owner_of: Vec<u32> = entries
        .iter()
        .map(|e| {
            let key = (e.uid, e.gid, e.user.as_deref(), e.group.as_deref());
            if let Some((last_key, place)) = last
                && last_key == key
            {
                return place;
            }
            let place = *dictionary.entry(key).or_insert_with(|| {
                owners.push(key);
                owners.len() as u32 - 1
            });
            last = Some((key, place));
            place
        })
        .collect();
    let mut out = Vec::new();
    varint::put(&mut out, owners.len() as u64);
    for (uid, gid, user, group) in &owners {
        out.push(flag(user.is_some(), HAS_USER) | flag(group.is_some(), HAS_GROUP));
        varint::put(&mut out, *uid);
        varint::put(&mut out, *gid);
        for name in [user, group].into_iter().flatten() {
            varint::put(&mut out, name.len() as u64);
            out.extend_from_slice(name);
        }
    }
    let dictionary_len = out.len();
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    let mut blocks = Vec::new();
    for (chunk, owners) in entries.chunks(per_block).zip(owner_of.chunks(per_block)) {
        let raw = block::encode(chunk, owners);
        if raw.len() > MAX_BLOCK {
            return Err(io::Error::other(
                "the members' names are too long for the table of contents",
            ));
        }
        let packed = compressor.compress(&raw)?;
        out.extend_from_slice(&too_big(packed.len())?.to_le_bytes());
        out.extend_from_slice(&too_big(raw.len())?.to_le_bytes());
        out.extend_from_slice(&chunk[0].header_at.to_le_bytes());
        blocks.push(packed);
    }
    for packed in blocks {
        out.extend_from_slice(&packed);
    }
    Ok((out, dictionary_len))
}

/// The digest section: a bitmap of the members that have one (bit `i % 8` of byte
/// `i / 8`), then their digests (BLAKE3, first 16 bytes) in member order, raw (they do
/// not compress).
fn encode_digests(entries: &[TocEntry]) -> Vec<u8> {
    let mut out = vec![0u8; entries.len().div_ceil(8)];
    for (i, e) in entries.iter().enumerate() {
        if e.digest.is_some() {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    for digest in entries.iter().filter_map(|e| e.digest.as_ref()) {
        out.extend_from_slice(digest);
    }
    out
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

/// What the TOC head says, checked against its own BLAKE3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub count: usize,
    pub tar_len: u64,
    pub frames: u32,
    pub per_block: usize,
    pub dictionary_len: usize,
    pub metadata_len: usize,
    pub digests_len: usize,
    metadata_sum: [u8; 32],
    digests_sum: [u8; 32],
}

impl Head {
    /// The head from the TOC frame's first [`FRAME_HEAD_LEN`] bytes; `frame_len` is
    /// the whole frame's length (what the seek table leaves for it), which the lengths
    /// inside must add up to.
    pub fn decode(bytes: &[u8], frame_len: u64) -> Result<Head, String> {
        if toc_frame_len(bytes) != Some(frame_len) {
            return Err("the table of contents' frame header is damaged".into());
        }
        let content = &bytes[8..];
        if content.len() < 5 || &content[..4] != TOC_TAG {
            return Err("the table of contents is damaged".into());
        }
        // Before anything else of the head: another version's head has another length.
        if content[4] != TOC_VERSION {
            return Err(format!(
                "the table of contents is version {}, this spate reads {TOC_VERSION}",
                content[4]
            ));
        }
        let Some(head) = content.get(..HEAD_LEN) else {
            return Err("the table of contents is cut short".into());
        };
        let (signed, sum) = head.split_at(HEAD_LEN - 32);
        if blake3::hash(signed).as_bytes() != sum || head[5..8] != [0, 0, 0] {
            return Err("the table of contents fails its checksum".into());
        }
        let sum_at = |at: usize| -> [u8; 32] {
            let mut sum = [0u8; 32];
            sum.copy_from_slice(&head[at..at + 32]);
            sum
        };
        let parsed = Head {
            count: u32_at(head, 8) as usize,
            tar_len: u64_at(head, 12),
            frames: u32_at(head, 20),
            per_block: u32_at(head, 24) as usize,
            dictionary_len: u32_at(head, 28) as usize,
            metadata_len: u32_at(head, 32) as usize,
            digests_len: u32_at(head, 36) as usize,
            metadata_sum: sum_at(40),
            digests_sum: sum_at(72),
        };
        let total = FRAME_HEAD_LEN as u64 + parsed.metadata_len as u64 + parsed.digests_len as u64;
        // The directory takes 16 bytes a block: a count the section cannot hold is a
        // lie, not a reason to allocate.
        let directory = parsed.blocks().saturating_mul(DIRECTORY_ENTRY);
        if total != frame_len
            || parsed.per_block == 0
            || parsed.dictionary_len.saturating_add(directory) > parsed.metadata_len
        {
            return Err("the table of contents' lengths disagree".into());
        }
        Ok(parsed)
    }

    /// Blocks of members in the metadata section.
    pub fn blocks(&self) -> usize {
        self.count.div_ceil(self.per_block.max(1))
    }

    /// Where the digest section starts in the TOC frame.
    #[cfg(test)]
    pub fn digests_at(&self) -> u64 {
        FRAME_HEAD_LEN as u64 + self.metadata_len as u64
    }
}

/// Whether `bytes` (at least 8) begin a TOC frame, and its whole length if so.
pub fn toc_frame_len(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= 8 && u32_at(bytes, 0) == TOC_MAGIC).then(|| 8 + u64::from(u32_at(bytes, 4)))
}

/// The metadata section (`section`, as stored), checked against the head's BLAKE3:
/// its owner dictionary and block directory read and checked, its blocks left
/// compressed (each is decoded, and its members checked, when a reader gets to it).
pub fn decode_metadata(head: &Head, section: Vec<u8>) -> Result<TocView, String> {
    if section.len() != head.metadata_len || blake3::hash(&section).as_bytes() != &head.metadata_sum
    {
        return Err("the table of contents fails its checksum".into());
    }
    let damaged = || "the table of contents' records are damaged".to_string();
    let owners = decode_owners(&section[..head.dictionary_len]).ok_or_else(damaged)?;
    let blocks = head.blocks();
    let directory_end = head.dictionary_len + blocks * DIRECTORY_ENTRY;
    let mut at = directory_end;
    let mut places = Vec::with_capacity(blocks);
    let mut last: Option<u64> = None;
    for b in 0..blocks {
        let entry = head.dictionary_len + b * DIRECTORY_ENTRY;
        let packed_len = u32_at(&section, entry) as usize;
        let raw_len = u32_at(&section, entry + 4) as usize;
        let first_at = u64_at(&section, entry + 8);
        let members = head.per_block.min(head.count - b * head.per_block);
        // Blocks start in stream order, each on a tar block; the members inside are
        // checked as the block is decoded.
        if raw_len > MAX_BLOCK
            || raw_len < members * LEAST_PER_MEMBER
            || last.is_some_and(|last| first_at <= last)
            || !first_at.is_multiple_of(512)
            || first_at >= head.tar_len
        {
            return Err(damaged());
        }
        last = Some(first_at);
        places.push(BlockAt {
            at,
            packed_len,
            raw_len,
            first_at,
        });
        at = at.checked_add(packed_len).ok_or_else(damaged)?;
    }
    if at != section.len() {
        return Err(damaged());
    }
    Ok(TocView::new(
        section,
        head.count,
        head.per_block,
        owners,
        places,
        head.tar_len,
        head.frames,
    ))
}

/// The owner dictionary: a count, then per owner a flags byte, uid, gid and the names
/// present; `None` when it is not exactly that.
fn decode_owners(bytes: &[u8]) -> Option<Vec<Owner>> {
    let mut r = Reader::new(bytes);
    let count = usize::try_from(r.get()?).ok()?;
    // Each owner takes at least three bytes.
    if count > bytes.len() / 3 {
        return None;
    }
    let mut owners = Vec::with_capacity(count);
    for _ in 0..count {
        let flags = r.byte()?;
        if flags & !(HAS_USER | HAS_GROUP) != 0 {
            return None;
        }
        let uid = r.get()?;
        let gid = r.get()?;
        let mut name = |bit: u8| -> Option<Option<(usize, usize)>> {
            if flags & bit == 0 {
                return Some(None);
            }
            let len = usize::try_from(r.get()?).ok()?;
            let at = r.at;
            r.bytes(len)?;
            Some(Some((at, len)))
        };
        let user = name(HAS_USER)?;
        let group = name(HAS_GROUP)?;
        owners.push(Owner {
            uid,
            gid,
            user,
            group,
        });
    }
    r.is_done().then_some(owners)
}

impl TocView {
    /// Adds the digest section (`bytes`, as stored), checked against the head's BLAKE3.
    pub fn attach_digests(&mut self, head: &Head, bytes: Vec<u8>) -> Result<(), String> {
        if bytes.len() != head.digests_len || blake3::hash(&bytes).as_bytes() != &head.digests_sum {
            return Err("the table of contents fails its checksum".into());
        }
        let section = DigestSection::new(bytes, self.len())
            .ok_or("the table of contents' digests are damaged")?;
        self.set_digests(section);
        Ok(())
    }
}

/// The TOC frame (`bytes`, whole), checked and decoded, digests included (the
/// readers go section by section, through `read.rs`).
#[cfg(test)]
pub fn decode_toc(bytes: &[u8]) -> Result<Toc, String> {
    let head = Head::decode(bytes, bytes.len() as u64)?;
    let digests_at = head.digests_at() as usize;
    let mut view = decode_metadata(&head, bytes[FRAME_HEAD_LEN..digests_at].to_vec())?;
    view.attach_digests(&head, bytes[digests_at..].to_vec())?;
    view.to_toc()
}
