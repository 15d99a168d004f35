//! The table of contents frame, version 2 (layout in `format.rs`): encoding it from
//! [`Toc`], and decoding it in steps so that a reader takes only what it needs: the
//! head ([`Head::decode`]), then the metadata section ([`decode_metadata`], all that
//! `list` and `unpack` need), then, for `check`, the digest section
//! ([`TocView::attach_digests`]). Each step checks its own BLAKE3 before it trusts a
//! byte, and the head's BLAKE3 covers the other two sums.

use std::collections::HashMap;
use std::io;

use super::format::{TOC_MAGIC, TOC_TAG, TOC_VERSION, Toc, TocEntry, u32_at, u64_at};
use super::view::{Columns, DigestSection, Owner, TocView};

/// Bytes of the TOC content before the metadata section: tag, version, three zero
/// bytes, member count, tar length, frame count, the metadata section's length
/// uncompressed and compressed, the digest section's length, then three BLAKE3s:
/// metadata section (compressed bytes), digest section, and the head before it.
pub const HEAD_LEN: usize = 4 + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 32 * 3;
/// Bytes of the TOC frame before its metadata section (skippable header and head).
pub const FRAME_HEAD_LEN: usize = 8 + HEAD_LEN;
/// Fixed bytes a member takes in the metadata section's columns (names and link
/// targets come on top): type 1, flags 1, mode 4, owner 4, size 8, mtime 8 + 4,
/// header offset 8, name length 4, link length 4, device 8.
pub const FIXED_PER_MEMBER: usize = 1 + 1 + 4 + 4 + 8 + 8 + 4 + 8 + 4 + 4 + 8;
/// The largest metadata section spate decodes (uncompressed): 1 GiB is millions of
/// members.
const MAX_METADATA: usize = 1 << 30;

/// Member flags in the metadata section.
pub const HAS_LINK: u8 = 1;
pub const HAS_DEVICE: u8 = 2;
/// Owner dictionary entry flags.
const HAS_USER: u8 = 1;
const HAS_GROUP: u8 = 2;

/// The TOC frame, whole: skippable header, head, metadata section, digest section.
pub fn encode_toc(toc: &Toc, level: i32) -> io::Result<Vec<u8>> {
    let metadata = encode_metadata(&toc.entries);
    let packed = zstd::bulk::compress(&metadata, level)?;
    let digests = encode_digests(&toc.entries);
    let mut head = Vec::with_capacity(HEAD_LEN);
    head.extend_from_slice(TOC_TAG);
    head.extend_from_slice(&[TOC_VERSION, 0, 0, 0]);
    head.extend_from_slice(&too_big(toc.entries.len())?.to_le_bytes());
    head.extend_from_slice(&toc.tar_len.to_le_bytes());
    head.extend_from_slice(&toc.frames.to_le_bytes());
    head.extend_from_slice(&too_big(metadata.len())?.to_le_bytes());
    head.extend_from_slice(&too_big(packed.len())?.to_le_bytes());
    head.extend_from_slice(&too_big(digests.len())?.to_le_bytes());
    head.extend_from_slice(blake3::hash(&packed).as_bytes());
    head.extend_from_slice(blake3::hash(&digests).as_bytes());
    let sum = blake3::hash(&head);
    head.extend_from_slice(sum.as_bytes());
    let content = head.len() + packed.len() + digests.len();
    let mut out = Vec::with_capacity(8 + content);
    out.extend_from_slice(&TOC_MAGIC.to_le_bytes());
    out.extend_from_slice(&too_big(content)?.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&packed);
    out.extend_from_slice(&digests);
    Ok(out)
}

fn too_big(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::other("the table of contents is over 4 GiB"))
}

/// The metadata section, uncompressed: the owner dictionary, then one column per
/// field (layout in `format.rs`).
fn encode_metadata(entries: &[TocEntry]) -> Vec<u8> {
    let names: usize = entries.iter().map(|e| e.name.len()).sum();
    let links: usize = entries
        .iter()
        .filter_map(|e| e.link.as_ref())
        .map(Vec::len)
        .sum();
    let mut out = Vec::with_capacity(64 + entries.len() * FIXED_PER_MEMBER + names + links);
    // Nearly every member of an archive has the same owner: a dictionary keeps the
    // four fields out of the columns.
    type OwnerKey<'a> = (u64, u64, Option<&'a [u8]>, Option<&'a [u8]>);
    let mut dictionary: HashMap<OwnerKey<'_>, u32> = HashMap::new();
    let mut owners: Vec<OwnerKey<'_>> = Vec::new();
    let owner_of: Vec<u32> = entries
        .iter()
        .map(|e| {
            let key = (e.uid, e.gid, e.user.as_deref(), e.group.as_deref());
            *dictionary.entry(key).or_insert_with(|| {
                owners.push(key);
                owners.len() as u32 - 1
            })
        })
        .collect();
    out.extend_from_slice(&(owners.len() as u32).to_le_bytes());
    for (uid, gid, user, group) in &owners {
        out.push(flag(user.is_some(), HAS_USER) | flag(group.is_some(), HAS_GROUP));
        out.extend_from_slice(&uid.to_le_bytes());
        out.extend_from_slice(&gid.to_le_bytes());
        for name in [user, group].into_iter().flatten() {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name);
        }
    }
    out.extend(entries.iter().map(|e| e.entry_type));
    out.extend(
        entries
            .iter()
            .map(|e| flag(e.link.is_some(), HAS_LINK) | flag(e.device.is_some(), HAS_DEVICE)),
    );
    for e in entries {
        out.extend_from_slice(&e.mode.to_le_bytes());
    }
    for owner in &owner_of {
        out.extend_from_slice(&owner.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.size.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.mtime.secs.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.mtime.nanos.to_le_bytes());
    }
    let mut last = 0u64;
    for e in entries {
        out.extend_from_slice(&e.header_at.wrapping_sub(last).to_le_bytes());
        last = e.header_at;
    }
    for e in entries {
        out.extend_from_slice(&(e.name.len() as u32).to_le_bytes());
    }
    for e in entries {
        let len = e.link.as_ref().map_or(0, Vec::len);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    for e in entries {
        let (major, minor) = e.device.unwrap_or((0, 0));
        out.extend_from_slice(&major.to_le_bytes());
        out.extend_from_slice(&minor.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.name);
    }
    for link in entries.iter().filter_map(|e| e.link.as_ref()) {
        out.extend_from_slice(link);
    }
    out
}

/// The digest section: a bitmap of the members that have one (bit `i % 8` of byte
/// `i / 8`), then their 32-byte BLAKE3s in member order, raw (they do not compress).
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
    pub metadata_len: usize,
    pub packed_len: usize,
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
        // Before anything else of the head: an older table's head is shorter.
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
            metadata_len: u32_at(head, 24) as usize,
            packed_len: u32_at(head, 28) as usize,
            digests_len: u32_at(head, 32) as usize,
            metadata_sum: sum_at(36),
            digests_sum: sum_at(68),
        };
        let total = FRAME_HEAD_LEN as u64 + parsed.packed_len as u64 + parsed.digests_len as u64;
        // Every member takes its fixed bytes and at least one of name: a count beyond
        // what the lengths hold is a lie, not a reason to allocate.
        let least = parsed.count.saturating_mul(FIXED_PER_MEMBER + 1);
        if total != frame_len || parsed.metadata_len > MAX_METADATA || least > parsed.metadata_len {
            return Err("the table of contents' lengths disagree".into());
        }
        Ok(parsed)
    }

    /// Where the digest section starts in the TOC frame.
    pub fn digests_at(&self) -> u64 {
        FRAME_HEAD_LEN as u64 + self.packed_len as u64
    }
}

/// Whether `bytes` (at least 8) begin a TOC frame, and its whole length if so.
pub fn toc_frame_len(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= 8 && u32_at(bytes, 0) == TOC_MAGIC).then(|| 8 + u64::from(u32_at(bytes, 4)))
}

/// The metadata section (`packed`, as stored), checked against the head's BLAKE3,
/// decompressed and validated: a view of every member without its digest.
pub fn decode_metadata(head: &Head, packed: &[u8]) -> Result<TocView, String> {
    if packed.len() != head.packed_len || blake3::hash(packed).as_bytes() != &head.metadata_sum {
        return Err("the table of contents fails its checksum".into());
    }
    let mut metadata = Vec::with_capacity(head.metadata_len);
    zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(packed, &mut metadata))
        .map_err(|e| format!("the table of contents does not decompress: {e}"))?;
    if metadata.len() != head.metadata_len {
        return Err("the table of contents' lengths disagree".into());
    }
    validate(metadata, head)
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
    let mut view = decode_metadata(&head, &bytes[FRAME_HEAD_LEN..digests_at])?;
    view.attach_digests(&head, bytes[digests_at..].to_vec())?;
    Ok(view.to_toc())
}

/// Reads the columns' places and checks every member, rewriting in place the columns
/// a reader wants as running totals (header offsets, the ends of names and links).
fn validate(mut bytes: Vec<u8>, head: &Head) -> Result<TocView, String> {
    let damaged = || "the table of contents' records are damaged".to_string();
    let n = head.count;
    let mut cur = Cursor {
        at: 0,
        len: bytes.len(),
    };
    // The owner dictionary.
    let count = u32_at(bytes.get(..4).ok_or_else(damaged)?, 0) as usize;
    cur.take(4)?;
    if count > bytes.len() / 17 {
        return Err(damaged());
    }
    let mut owners = Vec::with_capacity(count);
    for _ in 0..count {
        let flags = bytes[cur.take(1)?];
        if flags & !(HAS_USER | HAS_GROUP) != 0 {
            return Err(damaged());
        }
        let ids = cur.take(16)?;
        let mut name = |bit: u8| -> Result<Option<(usize, usize)>, String> {
            if flags & bit == 0 {
                return Ok(None);
            }
            let len = u32_at(&bytes, cur.take(4)?) as usize;
            Ok(Some((cur.take(len)?, len)))
        };
        let user = name(HAS_USER)?;
        let group = name(HAS_GROUP)?;
        owners.push(Owner {
            uid: u64_at(&bytes, ids),
            gid: u64_at(&bytes, ids + 8),
            user,
            group,
        });
    }
    let mut cols = Columns {
        types: cur.take(n)?,
        flags: cur.take(n)?,
        modes: cur.take(n * 4)?,
        owners: cur.take(n * 4)?,
        sizes: cur.take(n * 8)?,
        secs: cur.take(n * 8)?,
        nanos: cur.take(n * 4)?,
        offsets: cur.take(n * 8)?,
        name_ends: cur.take(n * 4)?,
        link_ends: cur.take(n * 4)?,
        devices: cur.take(n * 8)?,
        names: 0,
        links: 0,
    };
    // Names and links fill the rest exactly; their lengths become running ends.
    let mut names_len = 0u32;
    let mut links_len = 0u32;
    let mut last: Option<u64> = None;
    for i in 0..n {
        let flags = bytes[cols.flags + i];
        let owner = u32_at(&bytes, cols.owners + i * 4) as usize;
        let nanos = u32_at(&bytes, cols.nanos + i * 4);
        let name_len = u32_at(&bytes, cols.name_ends + i * 4);
        let link_len = u32_at(&bytes, cols.link_ends + i * 4);
        let device = u64_at(&bytes, cols.devices + i * 8);
        if flags & !(HAS_LINK | HAS_DEVICE) != 0
            || owner >= owners.len()
            || nanos >= 1_000_000_000
            || name_len == 0
            || (flags & HAS_LINK == 0 && link_len != 0)
            || (flags & HAS_DEVICE == 0 && device != 0)
        {
            return Err(damaged());
        }
        let name_start = names_len as usize;
        names_len = names_len.checked_add(name_len).ok_or_else(damaged)?;
        links_len = links_len.checked_add(link_len).ok_or_else(damaged)?;
        bytes[cols.name_ends + i * 4..][..4].copy_from_slice(&names_len.to_le_bytes());
        bytes[cols.link_ends + i * 4..][..4].copy_from_slice(&links_len.to_le_bytes());
        let step = u64_at(&bytes, cols.offsets + i * 8);
        let header_at = last.unwrap_or(0).checked_add(step).ok_or_else(damaged)?;
        // Members are in stream order, each at its own 512-byte block.
        if last.is_some() && step == 0 || header_at % 512 != 0 || header_at >= head.tar_len {
            let names = cur.at;
            let name = bytes
                .get(names + name_start..names + names_len as usize)
                .unwrap_or_default();
            return Err(format!(
                "the table of contents places \"{}\" at an impossible offset",
                String::from_utf8_lossy(name)
            ));
        }
        bytes[cols.offsets + i * 8..][..8].copy_from_slice(&header_at.to_le_bytes());
        last = Some(header_at);
    }
    cols.names = cur.take(names_len as usize)?;
    cols.links = cur.take(links_len as usize)?;
    if cur.at != bytes.len() {
        return Err(damaged());
    }
    Ok(TocView::new(
        bytes,
        n,
        owners,
        cols,
        head.tar_len,
        head.frames,
    ))
}

/// Where the next column starts, within a section of `len` bytes.
struct Cursor {
    at: usize,
    len: usize,
}

impl Cursor {
    /// The next `len` bytes' offset.
    fn take(&mut self, len: usize) -> Result<usize, String> {
        let start = self.at;
        self.at = (self.at.checked_add(len))
            .filter(|&end| end <= self.len)
            .ok_or_else(|| "the table of contents' records are damaged".to_string())?;
        Ok(start)
    }
}
