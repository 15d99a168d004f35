//! The byte layout of an indexed `.tar.zst`'s two trailing skippable frames: the table
//! of contents (spate's own) and the seek table (the zstd seekable format's, so that
//! other seekable readers can use it). Encoding and decoding only; reading them from a
//! file is `read.rs`, writing the archive is `writer.rs`.
//!
//! The archive, front to back:
//! - data frames: ordinary zstd frames with a content checksum; together one zstd
//!   stream whose content is the tar stream;
//! - the TOC frame: a skippable frame (magic [`TOC_MAGIC`]) whose content is
//!   `"SPTI"`, a version byte, three zero bytes, entry count (u32), tar length (u64),
//!   data frame count (u32), body length uncompressed (u32) and compressed (u32), the
//!   body (one zstd frame of records, see [`encode_records`]), and the BLAKE3 of every
//!   content byte before it (32 bytes);
//! - the seek table, last: a skippable frame (magic [`SEEK_TABLE_MAGIC`]) holding, per
//!   data frame, compressed size, decompressed size and checksum (the low 32 bits of
//!   the XXH64 of the decompressed bytes), each u32, then the footer: frame count
//!   (u32), descriptor (u8, bit 7: checksums present) and [`SEEKABLE_MAGIC`] (u32).
//!
//! Every integer is little-endian. The seek table lists the data frames only, so a
//! seekable reader's offsets (the sum of the sizes before a frame) are right; the TOC
//! frame starts where the last data frame ends and ends where the seek table starts.

use std::io;

use super::super::unpack::header::{Kind, Layout, Meta, Mtime};

/// Skippable frame magic of the seek table (the zstd seekable format's).
pub const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5E;
/// Last four bytes of a seekable archive.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Skippable frame magic of spate's table of contents.
pub const TOC_MAGIC: u32 = 0x184D_2A5B;
/// First bytes of the TOC frame's content.
pub const TOC_TAG: &[u8; 4] = b"SPTI";
/// The TOC layout this code reads and writes.
pub const TOC_VERSION: u8 = 1;
/// Bytes of the seek table footer.
pub const FOOTER_LEN: usize = 9;
/// Bytes of one seek table entry with checksums.
pub const ENTRY_LEN: usize = 12;
/// Bytes of the TOC content before the body.
const TOC_HEAD_LEN: usize = 4 + 1 + 3 + 4 + 8 + 4 + 4 + 4;
/// The largest TOC body spate decodes (uncompressed): 1 GiB is millions of members.
const MAX_BODY: usize = 1 << 30;

/// One data frame: where it is in the archive and in the tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub c_offset: u64,
    pub c_size: u32,
    pub d_offset: u64,
    pub d_size: u32,
    /// Low 32 bits of the XXH64 (seed 0) of the decompressed bytes.
    pub checksum: u32,
}

/// One member of the archive, as the table of contents records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// The name as stored (after GNU long names).
    pub name: Vec<u8>,
    /// The tar type byte (`'0'`, `'5'`, `'2'`, `'1'`, ...).
    pub entry_type: u8,
    /// Symbolic or hard link target.
    pub link: Option<Vec<u8>>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub user: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
    /// Size of the file's data (0 for anything else).
    pub size: u64,
    pub mtime: Mtime,
    pub device: Option<(u32, u32)>,
    /// Offset in the tar stream of the member's first header block (its GNU long name
    /// or PAX header when it has one).
    pub header_at: u64,
    /// BLAKE3 of the file's content (for a hard link, its target's), when it was read
    /// whole and unchanged.
    pub digest: Option<[u8; 32]>,
}

impl TocEntry {
    pub fn kind(&self) -> Kind {
        Kind::of(tar::EntryType::new(self.entry_type))
    }

    /// The entry as `list` and `unpack` see a header.
    pub fn to_meta(&self) -> Meta {
        Meta {
            name: self.name.clone(),
            kind: self.kind(),
            link: self.link.clone(),
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            user: self.user.clone(),
            group: self.group.clone(),
            size: self.size,
            mtime: self.mtime,
            device: self.device,
            layout: Layout::Plain,
        }
    }
}

/// The TOC frame's content, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toc {
    pub entries: Vec<TocEntry>,
    pub tar_len: u64,
    pub frames: u32,
}

/// The seek table frame, whole: skippable header, entries, footer.
pub fn encode_seek_table(frames: &[Frame]) -> Vec<u8> {
    let content = frames.len() * ENTRY_LEN + FOOTER_LEN;
    let mut out = Vec::with_capacity(8 + content);
    out.extend_from_slice(&SEEK_TABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&(content as u32).to_le_bytes());
    for frame in frames {
        out.extend_from_slice(&frame.c_size.to_le_bytes());
        out.extend_from_slice(&frame.d_size.to_le_bytes());
        out.extend_from_slice(&frame.checksum.to_le_bytes());
    }
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.push(0x80);
    out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    out
}

/// What a seek table footer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub frames: u32,
    pub checksums: bool,
}

impl Footer {
    /// The footer in the last [`FOOTER_LEN`] bytes; `None` when they do not end in the
    /// seekable magic (not a seekable archive).
    pub fn decode(bytes: &[u8; FOOTER_LEN]) -> Option<Footer> {
        let magic = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        (magic == SEEKABLE_MAGIC).then(|| Footer {
            frames: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            checksums: bytes[4] & 0x80 != 0,
        })
    }

    fn entry_len(self) -> usize {
        if self.checksums { 12 } else { 8 }
    }

    /// Bytes of the whole seek table frame.
    pub fn table_len(self) -> u64 {
        8 + u64::from(self.frames) * self.entry_len() as u64 + FOOTER_LEN as u64
    }
}

/// The frames a seek table frame (`bytes`, whole) lists, with their offsets.
pub fn decode_seek_table(bytes: &[u8], footer: Footer) -> Result<Vec<Frame>, String> {
    if bytes.len() as u64 != footer.table_len() {
        return Err("the seek table is cut short".into());
    }
    let magic = u32_at(bytes, 0);
    let size = u32_at(bytes, 4) as usize;
    if magic != SEEK_TABLE_MAGIC || size != bytes.len() - 8 {
        return Err("the seek table's frame header is damaged".into());
    }
    if !footer.checksums {
        return Err("the seek table has no frame checksums".into());
    }
    let mut frames = Vec::with_capacity(footer.frames as usize);
    let (mut c_offset, mut d_offset) = (0u64, 0u64);
    for entry in bytes[8..bytes.len() - FOOTER_LEN].chunks_exact(footer.entry_len()) {
        let frame = Frame {
            c_offset,
            c_size: u32_at(entry, 0),
            d_offset,
            d_size: u32_at(entry, 4),
            checksum: u32_at(entry, 8),
        };
        c_offset += u64::from(frame.c_size);
        d_offset += u64::from(frame.d_size);
        frames.push(frame);
    }
    Ok(frames)
}

/// The TOC frame, whole: skippable header, head, compressed body, BLAKE3.
pub fn encode_toc(toc: &Toc, level: i32) -> io::Result<Vec<u8>> {
    let body = encode_records(&toc.entries);
    let packed = zstd::bulk::compress(&body, level)?;
    let mut content = Vec::with_capacity(TOC_HEAD_LEN + packed.len() + 32);
    content.extend_from_slice(TOC_TAG);
    content.extend_from_slice(&[TOC_VERSION, 0, 0, 0]);
    content.extend_from_slice(&(toc.entries.len() as u32).to_le_bytes());
    content.extend_from_slice(&toc.tar_len.to_le_bytes());
    content.extend_from_slice(&toc.frames.to_le_bytes());
    content.extend_from_slice(&too_big(body.len())?.to_le_bytes());
    content.extend_from_slice(&too_big(packed.len())?.to_le_bytes());
    content.extend_from_slice(&packed);
    let sum = blake3::hash(&content);
    content.extend_from_slice(sum.as_bytes());
    let mut out = Vec::with_capacity(8 + content.len());
    out.extend_from_slice(&TOC_MAGIC.to_le_bytes());
    out.extend_from_slice(&too_big(content.len())?.to_le_bytes());
    out.extend_from_slice(&content);
    Ok(out)
}

fn too_big(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::other("the table of contents is over 4 GiB"))
}

/// Whether `bytes` (at least 8) begin a TOC frame, and its whole length if so.
pub fn toc_frame_len(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= 8 && u32_at(bytes, 0) == TOC_MAGIC).then(|| 8 + u64::from(u32_at(bytes, 4)))
}

/// The TOC frame (`bytes`, whole), checked against its own BLAKE3 and decoded.
pub fn decode_toc(bytes: &[u8]) -> Result<Toc, String> {
    if toc_frame_len(bytes) != Some(bytes.len() as u64) {
        return Err("the table of contents' frame header is damaged".into());
    }
    let content = &bytes[8..];
    if content.len() < TOC_HEAD_LEN + 32 || &content[..4] != TOC_TAG {
        return Err("the table of contents is damaged".into());
    }
    if content[4] != TOC_VERSION {
        return Err(format!(
            "the table of contents is version {}, this spate reads {TOC_VERSION}",
            content[4]
        ));
    }
    let (signed, sum) = content.split_at(content.len() - 32);
    if blake3::hash(signed).as_bytes() != sum {
        return Err("the table of contents fails its checksum".into());
    }
    let count = u32_at(content, 8) as usize;
    let tar_len = u64::from_le_bytes(content[12..20].try_into().unwrap_or_default());
    let frames = u32_at(content, 20);
    let body_len = u32_at(content, 24) as usize;
    let packed_len = u32_at(content, 28) as usize;
    if TOC_HEAD_LEN + packed_len != signed.len() || body_len > MAX_BODY {
        return Err("the table of contents' lengths disagree".into());
    }
    let body = zstd::bulk::decompress(&signed[TOC_HEAD_LEN..], body_len)
        .map_err(|e| format!("the table of contents does not decompress: {e}"))?;
    if body.len() != body_len {
        return Err("the table of contents' lengths disagree".into());
    }
    let entries = decode_records(&body, count, tar_len)?;
    Ok(Toc {
        entries,
        tar_len,
        frames,
    })
}

const HAS_LINK: u8 = 1;
const HAS_USER: u8 = 2;
const HAS_GROUP: u8 = 4;
const HAS_DEVICE: u8 = 8;
const HAS_DIGEST: u8 = 16;

/// The records of the TOC body, one per member, in archive order: a presence byte
/// (1 link, 2 user, 4 group, 8 device, 16 digest), the type byte, the name
/// (LEB128 length, bytes), mode, uid, gid and size (LEB128), mtime seconds (zigzag
/// LEB128) and nanoseconds (LEB128), `header_at` as the LEB128 difference from the
/// previous record's (from 0 for the first), then the link, user and group names
/// (length, bytes), the device (major, minor) and the 32-byte digest, each only when
/// its presence bit is set.
pub fn encode_records(entries: &[TocEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 96);
    let mut last = 0u64;
    for e in entries {
        let presence = flag(e.link.is_some(), HAS_LINK)
            | flag(e.user.is_some(), HAS_USER)
            | flag(e.group.is_some(), HAS_GROUP)
            | flag(e.device.is_some(), HAS_DEVICE)
            | flag(e.digest.is_some(), HAS_DIGEST);
        out.push(presence);
        out.push(e.entry_type);
        put_bytes(&mut out, &e.name);
        put(&mut out, u64::from(e.mode));
        put(&mut out, e.uid);
        put(&mut out, e.gid);
        put(&mut out, e.size);
        put(&mut out, zigzag(e.mtime.secs));
        put(&mut out, u64::from(e.mtime.nanos));
        put(&mut out, e.header_at.wrapping_sub(last));
        last = e.header_at;
        for field in [&e.link, &e.user, &e.group].into_iter().flatten() {
            put_bytes(&mut out, field);
        }
        if let Some((major, minor)) = e.device {
            put(&mut out, u64::from(major));
            put(&mut out, u64::from(minor));
        }
        if let Some(digest) = &e.digest {
            out.extend_from_slice(digest);
        }
    }
    out
}

fn decode_records(body: &[u8], count: usize, tar_len: u64) -> Result<Vec<TocEntry>, String> {
    let damaged = || "the table of contents' records are damaged".to_string();
    // Every record is at least 11 bytes: a count beyond that is a lie, not a reason to
    // allocate.
    if count > body.len() / 11 + 1 {
        return Err(damaged());
    }
    let mut cur = Cursor { bytes: body, at: 0 };
    let mut entries = Vec::with_capacity(count);
    let mut last: Option<u64> = None;
    for _ in 0..count {
        let presence = cur.byte().ok_or_else(damaged)?;
        let entry_type = cur.byte().ok_or_else(damaged)?;
        let name = cur.bytes().ok_or_else(damaged)?;
        let mode = u32::try_from(cur.num().ok_or_else(damaged)?).map_err(|_| damaged())?;
        let uid = cur.num().ok_or_else(damaged)?;
        let gid = cur.num().ok_or_else(damaged)?;
        let size = cur.num().ok_or_else(damaged)?;
        let secs = unzigzag(cur.num().ok_or_else(damaged)?);
        let nanos = u32::try_from(cur.num().ok_or_else(damaged)?).map_err(|_| damaged())?;
        let step = cur.num().ok_or_else(damaged)?;
        let header_at = last.unwrap_or(0).checked_add(step).ok_or_else(damaged)?;
        // Members are in stream order, each at its own 512-byte block.
        if last.is_some() && step == 0 || header_at % 512 != 0 || header_at >= tar_len {
            return Err(format!(
                "the table of contents places \"{}\" at an impossible offset",
                String::from_utf8_lossy(&name)
            ));
        }
        last = Some(header_at);
        let mut optional = |bit: u8| -> Result<Option<Vec<u8>>, String> {
            if presence & bit == 0 {
                return Ok(None);
            }
            cur.bytes().map(Some).ok_or_else(damaged)
        };
        let link = optional(HAS_LINK)?;
        let user = optional(HAS_USER)?;
        let group = optional(HAS_GROUP)?;
        let device = if presence & HAS_DEVICE != 0 {
            let major = cur.num().and_then(|n| u32::try_from(n).ok());
            let minor = cur.num().and_then(|n| u32::try_from(n).ok());
            Some((major.ok_or_else(damaged)?, minor.ok_or_else(damaged)?))
        } else {
            None
        };
        let digest = if presence & HAS_DIGEST != 0 {
            let bytes = cur.take(32).ok_or_else(damaged)?;
            Some(bytes.try_into().map_err(|_| damaged())?)
        } else {
            None
        };
        if name.is_empty() {
            return Err(damaged());
        }
        entries.push(TocEntry {
            name,
            entry_type,
            link,
            mode,
            uid,
            gid,
            user,
            group,
            size,
            mtime: Mtime { secs, nanos },
            device,
            header_at,
            digest,
        });
    }
    if cur.at != body.len() {
        return Err(damaged());
    }
    Ok(entries)
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// LEB128.
fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn num(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(len)?;
        let bytes = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = usize::try_from(self.num()?).ok()?;
        self.take(len).map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, header_at: u64) -> TocEntry {
        TocEntry {
            name: name.as_bytes().to_vec(),
            entry_type: b'0',
            link: (name == "l").then(|| b"target".to_vec()),
            mode: 0o644,
            uid: 1000,
            gid: 100,
            user: Some(b"someone".to_vec()),
            group: None,
            size: 12345,
            mtime: Mtime { secs: -5, nanos: 7 },
            device: (name == "dev").then_some((8, 1)),
            header_at,
            digest: Some([7; 32]),
        }
    }

    #[test]
    fn the_toc_round_trips_and_rejects_any_flipped_byte() {
        let toc = Toc {
            entries: vec![entry("a", 0), entry("l", 1024), entry("dev", 1 << 20)],
            tar_len: 2 << 20,
            frames: 3,
        };
        let bytes = encode_toc(&toc, 3).unwrap();
        assert_eq!(decode_toc(&bytes).unwrap(), toc);
        for at in 8..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode_toc(&bad).is_err(), "flip at {at} accepted");
        }
    }

    #[test]
    fn the_seek_table_round_trips() {
        let frames = vec![
            Frame {
                c_offset: 0,
                c_size: 100,
                d_offset: 0,
                d_size: 4096,
                checksum: 1,
            },
            Frame {
                c_offset: 100,
                c_size: 50,
                d_offset: 4096,
                d_size: 1024,
                checksum: 2,
            },
        ];
        let bytes = encode_seek_table(&frames);
        let footer = Footer::decode(bytes[bytes.len() - FOOTER_LEN..].try_into().unwrap()).unwrap();
        assert_eq!(footer.table_len(), bytes.len() as u64);
        assert_eq!(decode_seek_table(&bytes, footer).unwrap(), frames);
    }

    #[test]
    fn offsets_out_of_order_or_off_a_block_are_refused() {
        for entries in [
            vec![entry("a", 1024), entry("b", 512)],
            vec![entry("a", 0), entry("b", 0)],
            vec![entry("a", 100)],
            vec![entry("a", 4 << 20)],
        ] {
            let toc = Toc {
                entries,
                tar_len: 2 << 20,
                frames: 1,
            };
            let bytes = encode_toc(&toc, 3).unwrap();
            assert!(decode_toc(&bytes).is_err());
        }
    }
}
