//! The byte layout of an indexed `.tar.zst`'s two trailing skippable frames: the table
//! of contents (spate's own) and the seek table (the zstd seekable format's, so that
//! other seekable readers can use it). Encoding and decoding only; reading them from a
//! file is `read.rs`, writing the archive is `writer.rs`.
//!
//! The archive, front to back:
//! - data frames: ordinary zstd frames with a content checksum; together one zstd
//!   stream whose content is the tar stream;
//! - the TOC frame: a skippable frame (magic [`TOC_MAGIC`]) whose content is, version
//!   3 (`toc.rs` encodes and decodes it, `block.rs` a block):
//!   - the head, 136 bytes: `"SPTI"`, the version byte, three zero bytes, member count
//!     (u32), tar length (u64), data frame count (u32), members per block (u32), the
//!     owner dictionary's length (u32), the metadata section's length (u32), the
//!     digest section's length (u32), the BLAKE3 of the metadata section as stored,
//!     the BLAKE3 of the digest section, and the BLAKE3 of the head's first 104 bytes
//!     (everything before it);
//!   - the metadata section: the owner dictionary (a varint count, then per owner a
//!     flags byte, 1 user name, 2 group name, uid and gid as varints and the names
//!     present, each a varint length and its bytes), the block directory (per block:
//!     compressed length u32, decompressed length u32, header offset of its first
//!     member u64), then the blocks, each one zstd frame of the varint columns of its
//!     members (layout in `block.rs`);
//!   - the digest section, raw (digests do not compress): a bitmap of the members that
//!     have a digest (member *i* is bit `i % 8` of byte `i / 8`; the spare bits of the
//!     last byte are zero), then the digests of those members, in order: the first
//!     [`DIGEST_LEN`] bytes of each one's BLAKE3.
//!
//!   A reader that needs no digest reads the head and the metadata section and neither
//!   reads nor hashes the digests.
//! - the seek table, last: a skippable frame (magic [`SEEK_TABLE_MAGIC`]) holding, per
//!   data frame, compressed size, decompressed size and checksum (the low 32 bits of
//!   the XXH64 of the decompressed bytes), each u32, then the footer: frame count
//!   (u32), descriptor (u8, bit 7: checksums present) and [`SEEKABLE_MAGIC`] (u32).
//!
//! Every integer is little-endian. The seek table lists the data frames only, so a
//! seekable reader's offsets (the sum of the sizes before a frame) are right; the TOC
//! frame starts where the last data frame ends and ends where the seek table starts.

use super::super::unpack::header::{Kind, Layout, Meta, Mtime};
pub use super::toc::encode_toc;

/// Skippable frame magic of the seek table (the zstd seekable format's).
pub const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5E;
/// Last four bytes of a seekable archive.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Skippable frame magic of spate's table of contents.
pub const TOC_MAGIC: u32 = 0x184D_2A5B;
/// First bytes of the TOC frame's content.
pub const TOC_TAG: &[u8; 4] = b"SPTI";
/// The TOC layout this code reads and writes.
pub const TOC_VERSION: u8 = 3;
/// Bytes of a member's digest in the table: the first 16 of its BLAKE3 (BLAKE3's
/// output is extendable, so this is also its 16-byte output). 128 bits is far beyond
/// what accidental damage collides with, and the table is not authenticated anyway:
/// whoever can rewrite the data can rewrite the table.
pub const DIGEST_LEN: usize = 16;
/// A member's digest as the table keeps it.
pub type TocDigest = [u8; DIGEST_LEN];

/// What the table keeps of a member's BLAKE3: its first [`DIGEST_LEN`] bytes.
pub fn toc_digest(hash: &blake3::Hash) -> TocDigest {
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&hash.as_bytes()[..DIGEST_LEN]);
    out
}

/// Bytes of the seek table footer.
pub const FOOTER_LEN: usize = 9;
/// Bytes of one seek table entry with checksums.
pub const ENTRY_LEN: usize = 12;

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
    /// The first [`DIGEST_LEN`] bytes of the BLAKE3 of the file's content (for a hard
    /// link, its target's), when it was read whole and unchanged.
    pub digest: Option<TocDigest>,
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

pub(super) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

pub(super) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::super::toc::decode_toc;
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
            digest: Some([7; DIGEST_LEN]),
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
    fn the_metadata_is_read_without_the_digests_and_checked_on_its_own() {
        use super::super::toc::{FRAME_HEAD_LEN, Head, decode_metadata};
        let mut entries: Vec<TocEntry> = (0..20).map(|i| entry("f", i * 512)).collect();
        entries[3].digest = None;
        entries[19].digest = Some([9; DIGEST_LEN]);
        let toc = Toc {
            entries,
            tar_len: 1 << 20,
            frames: 1,
        };
        let bytes = encode_toc(&toc, 3).unwrap();
        let head = Head::decode(&bytes[..FRAME_HEAD_LEN], bytes.len() as u64).unwrap();
        let digests_at = head.digests_at() as usize;
        assert_eq!(
            bytes.len() - digests_at,
            3 + 19 * DIGEST_LEN,
            "bitmap and raw digests"
        );
        let view = decode_metadata(&head, bytes[FRAME_HEAD_LEN..digests_at].to_vec()).unwrap();
        assert!(!view.has_digests() && view.digest(0).is_none());
        let mut without = toc.clone();
        for e in &mut without.entries {
            e.digest = None;
        }
        assert_eq!(view.to_toc().unwrap(), without);
        // A flip anywhere before the digest section fails the metadata read; one in the
        // digests is found by whoever reads them.
        for at in 8..digests_at {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let read = Head::decode(&bad[..FRAME_HEAD_LEN], bad.len() as u64)
                .and_then(|h| decode_metadata(&h, bad[FRAME_HEAD_LEN..digests_at].to_vec()));
            assert!(read.is_err(), "flip at {at} accepted");
        }
        let mut view = view;
        view.attach_digests(&head, bytes[digests_at..].to_vec())
            .unwrap();
        assert_eq!(view.digest(3), None);
        assert_eq!(view.digest(19), Some(&[9; DIGEST_LEN]));
        assert_eq!(view.to_toc().unwrap(), toc);
    }

    #[test]
    fn an_empty_toc_round_trips_and_a_count_beyond_the_lengths_is_refused() {
        let toc = Toc {
            entries: Vec::new(),
            tar_len: 1024,
            frames: 1,
        };
        let bytes = encode_toc(&toc, 3).unwrap();
        assert_eq!(decode_toc(&bytes).unwrap(), toc);
        // A head whose own checksum is right but whose count the section cannot hold.
        let one = Toc {
            entries: vec![entry("a", 0)],
            ..toc
        };
        let mut lying = encode_toc(&one, 3).unwrap();
        lying[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let sum = blake3::hash(&lying[8..112]);
        lying[112..144].copy_from_slice(sum.as_bytes());
        let why = decode_toc(&lying).unwrap_err();
        assert!(why.contains("lengths disagree"), "{why}");
    }

    #[test]
    fn blocks_of_many_members_round_trip_every_field() {
        use super::super::block::MEMBERS_PER_BLOCK;
        // Two and a bit blocks; names sharing prefixes or not, long names (offsets
        // off the prediction), links, devices, nanoseconds, mtimes going back.
        let mut at = 0u64;
        let entries: Vec<TocEntry> = (0..2 * MEMBERS_PER_BLOCK + 7)
            .map(|i| {
                let mut e = entry("f", at);
                e.name = match i % 5 {
                    0 => format!("dir{}/", i / 5).into_bytes(),
                    1 => format!("dir{}/file{i}", i / 5).into_bytes(),
                    2 => format!("dir{}/file{i}.longer", i / 5).into_bytes(),
                    3 => "x".repeat(200 + i % 300).into_bytes(),
                    _ => format!("other/{i}").into_bytes(),
                };
                e.size = (i as u64 * 7919) % 5000;
                e.mtime = Mtime {
                    secs: 1_700_000_000 - (i as i64 % 13) * 1000,
                    nanos: if i % 3 == 0 { 0 } else { i as u32 * 1001 },
                };
                e.link = (i % 7 == 0).then(|| format!("target{i}").into_bytes());
                e.device = (i % 11 == 0).then_some((i as u32, 1 << 20));
                e.uid = (i % 4) as u64;
                e.digest = (i % 9 != 0).then_some([i as u8; DIGEST_LEN]);
                // A long name takes more header blocks than the prediction.
                at += 512 + e.size.div_ceil(512) * 512 + if i % 5 == 3 { 1024 } else { 0 };
                e
            })
            .collect();
        let toc = Toc {
            entries,
            tar_len: at + 1024,
            frames: 9,
        };
        let bytes = encode_toc(&toc, 3).unwrap();
        assert_eq!(decode_toc(&bytes).unwrap(), toc);
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
