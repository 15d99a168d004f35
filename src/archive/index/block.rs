//! One metadata block of the table of contents (version 3): the fields of up to
//! [`MEMBERS_PER_BLOCK`] members as varint columns, compressed as a zstd frame of its
//! own. Blocks are independent (names are front-coded, mtimes and header offsets
//! predicted, only within a block), so a reader decodes one at a time into the same
//! small buffers instead of decompressing the whole table at once.
//!
//! Decompressed, a block of `n` members is, in order (layout also in the README):
//! type bytes (n), flags (n: 1 link target, 2 device, 4 nanoseconds), modes,
//! owners (dictionary places), sizes, mtime seconds as zigzag differences from the
//! previous member's (the first from 0), nanoseconds (flag 4 only), header offsets
//! as zigzag differences from the predicted one, name prefix lengths shared with the
//! previous name (the first 0), name suffix lengths, link target lengths (flag 1
//! only), device major and minor (flag 2 only), all varints; then the name suffixes
//! and the link targets, concatenated.

use super::format::TocEntry;
use super::varint::{self, Reader};
use crate::archive::unpack::header::Mtime;

/// Members in a block (the last may hold fewer). Measured on /usr/share/{doc,man},
/// /usr/share, /usr/lib and a cargo registry (README, "Indexed .tar.zst"): from 512
/// to 8192 members the metadata shrinks by 6 to 15%, the table by 2 to 6%; 2048 is
/// within 2% of 4096's size with half its buffers (about 200 KB decoded, which stay in
/// cache), and gives a reader on two cores more blocks to overlap.
pub const MEMBERS_PER_BLOCK: usize = 2048;

/// Member flags.
pub const HAS_LINK: u8 = 1;
pub const HAS_DEVICE: u8 = 2;
pub const HAS_NANOS: u8 = 4;

/// The fewest bytes a member takes decompressed: a type byte, a flags byte and one
/// byte each for mode, owner, size, mtime, header offset, shared prefix and suffix
/// length.
pub const LEAST_PER_MEMBER: usize = 9;

/// Bytes of a tar block.
const TAR_BLOCK: u64 = 512;

/// Where a member's header is expected: right after the previous member's header block
/// and its data, padded (true unless the previous one had a long name, PAX records or
/// sparse data).
fn predicted(previous_at: u64, previous_size: u64) -> Option<u64> {
    let data = previous_size.checked_add(TAR_BLOCK - 1)? / TAR_BLOCK * TAR_BLOCK;
    previous_at.checked_add(TAR_BLOCK)?.checked_add(data)
}

/// The block of `entries` (with their owners' dictionary places), uncompressed.
pub fn encode(entries: &[TocEntry], owners: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 24);
    out.extend(entries.iter().map(|e| e.entry_type));
    out.extend(entries.iter().map(flags_of));
    for e in entries {
        varint::put(&mut out, u64::from(e.mode));
    }
    for &owner in owners {
        varint::put(&mut out, u64::from(owner));
    }
    for e in entries {
        varint::put(&mut out, e.size);
    }
    let mut last = 0i64;
    for e in entries {
        varint::put_signed(&mut out, e.mtime.secs.wrapping_sub(last));
        last = e.mtime.secs;
    }
    for e in entries.iter().filter(|e| e.mtime.nanos != 0) {
        varint::put(&mut out, u64::from(e.mtime.nanos));
    }
    let mut expect = entries.first().map_or(0, |e| e.header_at);
    for e in entries {
        varint::put_signed(&mut out, e.header_at.wrapping_sub(expect) as i64);
        expect = predicted(e.header_at, e.size).unwrap_or(0);
    }
    // Each name's shared prefix, found once for the three columns that use it: names
    // of a source tree share most of their bytes, which made this the table's largest
    // cost when it was compared three times.
    let mut previous: &[u8] = &[];
    let shares: Vec<usize> = entries
        .iter()
        .map(|e| {
            let share = shared(previous, &e.name);
            previous = &e.name;
            share
        })
        .collect();
    for &share in &shares {
        varint::put(&mut out, share as u64);
    }
    for (e, &share) in entries.iter().zip(&shares) {
        varint::put(&mut out, (e.name.len() - share) as u64);
    }
    for link in entries.iter().filter_map(|e| e.link.as_ref()) {
        varint::put(&mut out, link.len() as u64);
    }
    for (major, minor) in entries.iter().filter_map(|e| e.device) {
        varint::put(&mut out, u64::from(major));
        varint::put(&mut out, u64::from(minor));
    }
    for (e, &share) in entries.iter().zip(&shares) {
        out.extend_from_slice(&e.name[share..]);
    }
    for link in entries.iter().filter_map(|e| e.link.as_ref()) {
        out.extend_from_slice(link);
    }
    out
}

fn flags_of(e: &TocEntry) -> u8 {
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    flag(e.link.is_some(), HAS_LINK)
        | flag(e.device.is_some(), HAS_DEVICE)
        | flag(e.mtime.nanos != 0, HAS_NANOS)
}

/// Bytes `name` shares with the start of `previous`, capped so that at least one byte
/// of `name` is its own (a suffix is never empty unless the name is).
fn shared(previous: &[u8], name: &[u8]) -> usize {
    let most = name.len().saturating_sub(1).min(previous.len());
    common_prefix(&previous[..most], &name[..most])
}

/// Length of the common prefix of `a` and `b` (of equal length), eight bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut at = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        if x != y {
            // Little-endian: the first differing byte holds the lowest set bit.
            return at + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + a[at..]
        .iter()
        .zip(&b[at..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// What a block is checked against: where it sits among the others.
pub struct Bounds {
    /// The directory's header offset of its first member.
    pub first_at: u64,
    /// Where the next block's first member is (or the tar stream's length): every
    /// member of this block is before it.
    pub end: u64,
    /// Owners in the dictionary.
    pub owners: usize,
}

/// A decoded block, its buffers reused from one block to the next.
#[derive(Debug, Default, Clone)]
pub struct Block {
    /// The block decompressed (types, flags and link targets are read from it).
    pub raw: Vec<u8>,
    pub count: usize,
    pub modes: Vec<u32>,
    pub owners: Vec<u32>,
    pub sizes: Vec<u64>,
    pub mtimes: Vec<Mtime>,
    pub offsets: Vec<u64>,
    /// Names rebuilt from the front coding, concatenated, and where each ends.
    pub names: Vec<u8>,
    pub name_ends: Vec<u32>,
    /// Each member's link target as a range of `raw` (empty without one).
    pub links: Vec<(u32, u32)>,
    pub devices: Vec<(u32, u32)>,
}

fn damaged() -> String {
    "the table of contents' records are damaged".into()
}

impl Block {
    /// Decodes `self.raw` (a decompressed block of `count` members) and checks every
    /// member: known flags, an owner in the dictionary, nanoseconds below 10⁹, a
    /// non-empty name, and header offsets on 512-byte blocks, strictly increasing from
    /// `bounds.first_at` and before `bounds.end`.
    pub fn decode(&mut self, count: usize, bounds: &Bounds) -> Result<(), String> {
        self.count = count;
        let raw = std::mem::take(&mut self.raw);
        let result = self.decode_columns(&raw, count, bounds);
        self.raw = raw;
        result.ok_or_else(damaged)?
    }

    fn decode_columns(
        &mut self,
        raw: &[u8],
        n: usize,
        bounds: &Bounds,
    ) -> Option<Result<(), String>> {
        let mut r = Reader::new(raw);
        r.bytes(n)?; // the types, read from `raw` as they are wanted
        let flags = r.bytes(n)?;
        if flags
            .iter()
            .any(|f| f & !(HAS_LINK | HAS_DEVICE | HAS_NANOS) != 0)
        {
            return None;
        }
        self.modes.clear();
        self.modes.reserve(n);
        for _ in 0..n {
            self.modes.push(r.get_u32()?);
        }
        self.owners.clear();
        self.owners.reserve(n);
        for _ in 0..n {
            let owner = r.get_u32()?;
            if owner as usize >= bounds.owners {
                return None;
            }
            self.owners.push(owner);
        }
        self.sizes.clear();
        self.sizes.reserve(n);
        for _ in 0..n {
            self.sizes.push(r.get()?);
        }
        self.mtimes.clear();
        self.mtimes.reserve(n);
        let mut secs = 0i64;
        for _ in 0..n {
            secs = secs.wrapping_add(r.get_signed()?);
            self.mtimes.push(Mtime { secs, nanos: 0 });
        }
        for (mtime, _) in self
            .mtimes
            .iter_mut()
            .zip(flags)
            .filter(|(_, f)| *f & HAS_NANOS != 0)
        {
            let nanos = r.get_u32()?;
            if nanos == 0 || nanos >= 1_000_000_000 {
                return None;
            }
            mtime.nanos = nanos;
        }
        self.offsets.clear();
        self.offsets.reserve(n);
        let mut expect = bounds.first_at;
        let mut last: Option<u64> = None;
        // The first member at an offset that cannot be: named once the names are read.
        let mut bad = None;
        for i in 0..n {
            let at = expect.checked_add_signed(r.get_signed()?)?;
            // Members are in stream order, each at its own 512-byte block, the first
            // where the directory says.
            let in_order = match last {
                None => at == bounds.first_at,
                Some(last) => at > last,
            };
            if bad.is_none() && (!in_order || !at.is_multiple_of(TAR_BLOCK) || at >= bounds.end) {
                bad = Some(i);
            }
            self.offsets.push(at);
            last = Some(at);
            expect = predicted(at, self.sizes[i])?;
        }
        self.decode_names(&mut r, n, flags)?;
        Some(match bad {
            None => Ok(()),
            Some(i) => Err(format!(
                "the table of contents places \"{}\" at an impossible offset",
                String::from_utf8_lossy(self.name(i))
            )),
        })
    }

    /// The name columns, the link lengths, the devices, then the blobs, which must end
    /// the block exactly.
    fn decode_names(&mut self, r: &mut Reader<'_>, n: usize, flags: &[u8]) -> Option<()> {
        let raw = r.all();
        let shared_at = r.at;
        for _ in 0..n {
            r.get()?;
        }
        let suffix_at = r.at;
        for _ in 0..n {
            r.get()?;
        }
        let mut link_lens = Vec::new();
        for _ in flags.iter().filter(|f| *f & HAS_LINK != 0) {
            link_lens.push(usize::try_from(r.get()?).ok()?);
        }
        self.devices.clear();
        self.devices.reserve(n);
        for f in flags {
            if f & HAS_DEVICE != 0 {
                self.devices.push((r.get_u32()?, r.get_u32()?));
            } else {
                self.devices.push((0, 0));
            }
        }
        let mut shared = Reader::new(&raw[shared_at..suffix_at]);
        let mut suffixes = Reader::new(&raw[suffix_at..]);
        self.names.clear();
        self.name_ends.clear();
        self.name_ends.reserve(n);
        let mut start = 0usize;
        for _ in 0..n {
            let keep = usize::try_from(shared.get()?).ok()?;
            let len = usize::try_from(suffixes.get()?).ok()?;
            let previous = self.names.len() - start;
            if keep > previous || keep + len == 0 {
                return None;
            }
            let suffix = r.bytes(len)?;
            let at = self.names.len();
            self.names.extend_from_within(start..start + keep);
            self.names.extend_from_slice(suffix);
            start = at;
            self.name_ends.push(u32::try_from(self.names.len()).ok()?);
        }
        self.links.clear();
        self.links.reserve(n);
        let mut lens = link_lens.into_iter();
        for f in flags {
            if f & HAS_LINK != 0 {
                let len = lens.next()?;
                let from = r.at;
                r.bytes(len)?;
                self.links
                    .push((u32::try_from(from).ok()?, u32::try_from(r.at).ok()?));
            } else {
                self.links.push((0, 0));
            }
        }
        r.is_done().then_some(())
    }

    /// Member `i`'s name.
    pub fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.name_ends[i - 1] as usize
        };
        &self.names[start..self.name_ends[i] as usize]
    }

    pub fn entry_type(&self, i: usize) -> u8 {
        self.raw[i]
    }

    pub fn flags(&self, i: usize) -> u8 {
        self.raw[self.count + i]
    }

    pub fn link(&self, i: usize) -> Option<&[u8]> {
        let (from, to) = self.links[i];
        (self.flags(i) & HAS_LINK != 0).then(|| &self.raw[from as usize..to as usize])
    }

    pub fn device(&self, i: usize) -> Option<(u32, u32)> {
        (self.flags(i) & HAS_DEVICE != 0).then(|| self.devices[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_prefix_is_the_bytewise_one_and_leaves_a_byte_of_the_name() {
        let bytewise = |previous: &[u8], name: &[u8]| {
            let most = name.len().saturating_sub(1).min(previous.len());
            previous[..most]
                .iter()
                .zip(name)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let names: Vec<Vec<u8>> = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh/",
            "abcdefgx",
            "src/index.crates.io-1949cf8c6b5b557f/zstd-sys/zstd/lib/compress/a.c",
            "src/index.crates.io-1949cf8c6b5b557f/zstd-sys/zstd/lib/compress/b.c",
            "src/index.crates.io-1949cf8c6b5b557f/zstd-sys/zstd/lib/compress/",
            "src/index.crates.io-1949cf8c6b5b557f/zstd-sys/zstd/lib/compress/a.c/x",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        for previous in &names {
            for name in &names {
                assert_eq!(
                    shared(previous, name),
                    bytewise(previous, name),
                    "{previous:?} {name:?}"
                );
            }
        }
    }
}
