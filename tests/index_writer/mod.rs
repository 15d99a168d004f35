//! An indexed `.tar.zst` written from the byte layout the README gives (not with
//! spate's own writer), for tests that need archives `spate pack` never writes:
//! hostile names, tables that lie about offsets. Also finds the two tables in an
//! archive, for tests that damage them, and decodes the table of contents from the
//! same layout, for tests that check what pack wrote.
#![allow(dead_code)]

/// One member as the table of contents records it.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Vec<u8>,
    pub entry_type: u8,
    pub link: Option<Vec<u8>>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub user: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
    pub size: u64,
    pub mtime: i64,
    pub header_at: u64,
    /// The first 16 bytes of the member's BLAKE3.
    pub digest: Option<[u8; 16]>,
}

/// The members of a plain tar stream, each at its first header block (its GNU long
/// name or PAX header when it has one); `None` when some header cannot be read.
pub fn members_of(tar: &[u8]) -> Option<Vec<Member>> {
    let mut starts = Vec::new();
    let mut pending = None;
    let mut raw = tar::Archive::new(tar);
    for entry in raw.entries().ok()?.raw(true) {
        let entry = entry.ok()?;
        let kind = entry.header().entry_type();
        let at = entry.raw_header_position();
        if kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions() {
            pending.get_or_insert(at);
        } else {
            // PAX global headers too: the tar crate hands them on as entries.
            starts.push(pending.take().unwrap_or(at));
        }
    }
    let mut archive = tar::Archive::new(tar);
    let mut members = Vec::new();
    for (entry, header_at) in archive.entries().ok()?.zip(starts) {
        let entry = entry.ok()?;
        let header = entry.header();
        let non_empty = |b: Option<&[u8]>| b.filter(|b| !b.is_empty()).map(<[u8]>::to_vec);
        let entry_type = header.entry_type().as_byte();
        members.push(Member {
            name: entry.path_bytes().into_owned(),
            entry_type,
            link: entry.link_name_bytes().map(|l| l.into_owned()),
            mode: header.mode().ok()?,
            uid: header.uid().ok()?,
            gid: header.gid().ok()?,
            user: non_empty(header.username_bytes()),
            group: non_empty(header.groupname_bytes()),
            size: if entry_type == b'0' { entry.size() } else { 0 },
            mtime: header.mtime().ok()? as i64,
            header_at,
            digest: None,
        });
    }
    Some(members)
}

/// The tar stream `tar` as an indexed `.tar.zst` whose table lists `members`: data
/// frames cut at member starts once a frame holds `frame_bytes`, the TOC frame, then the
/// seek table.
pub fn write(tar: &[u8], members: &[Member], frame_bytes: usize) -> Vec<u8> {
    let mut cuts: Vec<usize> = vec![0];
    for m in members {
        let at = m.header_at as usize;
        if at > *cuts.last().unwrap() && at - cuts.last().unwrap() >= frame_bytes {
            cuts.push(at);
        }
    }
    cuts.push(tar.len());
    let frames: Vec<&[u8]> = cuts.windows(2).map(|p| &tar[p[0]..p[1]]).collect();
    write_frames(&frames, members)
}

/// The tar stream cut as `frames` (each compressed as one zstd frame), then a table
/// of contents listing `members`, then the seek table.
pub fn write_frames(frames: &[&[u8]], members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut table = Vec::new();
    for data in frames {
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        std::io::Write::write_all(&mut encoder, data).unwrap();
        let frame = encoder.finish().unwrap();
        table.push((
            frame.len() as u32,
            data.len() as u32,
            xxhash_rust::xxh64::xxh64(data, 0) as u32,
        ));
        out.extend_from_slice(&frame);
    }
    let tar_len = frames.iter().map(|f| f.len() as u64).sum();
    out.extend_from_slice(&toc_frame(members, tar_len, table.len() as u32));
    let content = table.len() * 12 + 9;
    out.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
    out.extend_from_slice(&(content as u32).to_le_bytes());
    for (c, d, sum) in &table {
        out.extend_from_slice(&c.to_le_bytes());
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&sum.to_le_bytes());
    }
    out.extend_from_slice(&(table.len() as u32).to_le_bytes());
    out.push(0x80);
    out.extend_from_slice(&0x8F92_EAB1u32.to_le_bytes());
    out
}

/// Members per block in the tables written here: smaller than spate's, so that the
/// tests' archives have several blocks.
pub const PER_BLOCK: usize = 5;

/// LEB128: seven bits a byte, least significant first, high bit on all but the last.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Zigzag: 0, -1, 1, -2, ... as 0, 1, 2, 3, ...
fn zigzag(out: &mut Vec<u8>, v: i64) {
    varint(
        out,
        if v < 0 {
            (!(v as u64)) * 2 + 1
        } else {
            v as u64 * 2
        },
    );
}

/// Where the next header is expected: previous offset + 512 + size rounded up to 512.
fn predict(at: u64, size: u64) -> u64 {
    at + 512 + size.div_ceil(512) * 512
}

/// The TOC frame, version 3: the 136-byte head, the metadata section (owner
/// dictionary, block directory, blocks of varint columns, each a zstd frame), the
/// digest section (bitmap, then the 16-byte digests present).
fn toc_frame(members: &[Member], tar_len: u64, frames: u32) -> Vec<u8> {
    // Owner dictionary: one entry per distinct (uid, gid, user, group), in order of
    // first use.
    type Owner = (u64, u64, Option<Vec<u8>>, Option<Vec<u8>>);
    let mut owners: Vec<Owner> = Vec::new();
    let mut owner_of = Vec::new();
    for m in members {
        let key = (m.uid, m.gid, m.user.clone(), m.group.clone());
        let i = owners.iter().position(|o| *o == key).unwrap_or_else(|| {
            owners.push(key);
            owners.len() - 1
        });
        owner_of.push(i as u64);
    }
    let mut meta = Vec::new();
    varint(&mut meta, owners.len() as u64);
    for (uid, gid, user, group) in &owners {
        meta.push(u8::from(user.is_some()) | (u8::from(group.is_some()) << 1));
        varint(&mut meta, *uid);
        varint(&mut meta, *gid);
        for name in [user, group].into_iter().flatten() {
            varint(&mut meta, name.len() as u64);
            meta.extend_from_slice(name);
        }
    }
    let dictionary_len = meta.len();
    let mut blocks = Vec::new();
    for (block, owner_of) in members.chunks(PER_BLOCK).zip(owner_of.chunks(PER_BLOCK)) {
        let mut raw = Vec::new();
        raw.extend(block.iter().map(|m| m.entry_type));
        raw.extend(block.iter().map(|m| u8::from(m.link.is_some())));
        block.iter().for_each(|m| varint(&mut raw, m.mode.into()));
        owner_of.iter().for_each(|&o| varint(&mut raw, o));
        block.iter().for_each(|m| varint(&mut raw, m.size));
        let mut secs = 0;
        for m in block {
            zigzag(&mut raw, m.mtime - secs);
            secs = m.mtime;
        }
        let mut expect = block[0].header_at;
        for m in block {
            zigzag(&mut raw, m.header_at as i64 - expect as i64);
            expect = predict(m.header_at, m.size);
        }
        // Front coding: the prefix shared with the previous name, leaving at least
        // one byte of each name its own (an empty name, which a hostile test may
        // want, shares nothing and stores nothing).
        let mut previous: &[u8] = &[];
        let mut shared = Vec::new();
        for m in block {
            let same = previous
                .iter()
                .zip(&m.name)
                .take_while(|(a, b)| a == b)
                .count();
            let same = same.min(m.name.len().saturating_sub(1));
            shared.push(same);
            varint(&mut raw, same as u64);
            previous = &m.name;
        }
        for (m, same) in block.iter().zip(&shared) {
            varint(&mut raw, (m.name.len() - same) as u64);
        }
        for link in block.iter().filter_map(|m| m.link.as_ref()) {
            varint(&mut raw, link.len() as u64);
        }
        for (m, same) in block.iter().zip(&shared) {
            raw.extend_from_slice(&m.name[*same..]);
        }
        for link in block.iter().filter_map(|m| m.link.as_ref()) {
            raw.extend_from_slice(link);
        }
        let packed = zstd::bulk::compress(&raw, 3).unwrap();
        meta.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        meta.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        meta.extend_from_slice(&block[0].header_at.to_le_bytes());
        blocks.push(packed);
    }
    for packed in blocks {
        meta.extend_from_slice(&packed);
    }
    let mut digests = vec![0u8; members.len().div_ceil(8)];
    for (i, m) in members.iter().enumerate() {
        if m.digest.is_some() {
            digests[i / 8] |= 1 << (i % 8);
        }
    }
    for digest in members.iter().filter_map(|m| m.digest.as_ref()) {
        digests.extend_from_slice(digest);
    }
    let mut content = b"SPTI\x03\0\0\0".to_vec();
    content.extend_from_slice(&(members.len() as u32).to_le_bytes());
    content.extend_from_slice(&tar_len.to_le_bytes());
    content.extend_from_slice(&frames.to_le_bytes());
    content.extend_from_slice(&(PER_BLOCK as u32).to_le_bytes());
    content.extend_from_slice(&(dictionary_len as u32).to_le_bytes());
    content.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    content.extend_from_slice(&(digests.len() as u32).to_le_bytes());
    content.extend_from_slice(blake3::hash(&meta).as_bytes());
    content.extend_from_slice(blake3::hash(&digests).as_bytes());
    let sum = blake3::hash(&content);
    content.extend_from_slice(sum.as_bytes());
    assert_eq!(content.len(), 136);
    content.extend_from_slice(&meta);
    content.extend_from_slice(&digests);
    let mut out = Vec::new();
    out.extend_from_slice(&0x184D_2A5Bu32.to_le_bytes());
    out.extend_from_slice(&(content.len() as u32).to_le_bytes());
    out.extend_from_slice(&content);
    out
}

/// An indexed archive's table of contents, decoded from the README's layout (every
/// checksum checked, every length accounted for).
#[derive(Debug)]
pub struct Toc {
    pub tar_len: u64,
    pub frames: u32,
    pub members: Vec<Member>,
    /// Where the digest section starts, from the start of the archive.
    pub digests_at: usize,
    /// Members per block, as the head says.
    pub per_block: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads LEB128 and zigzag values from a slice, panicking past its end.
struct Varints<'a> {
    b: &'a [u8],
    at: usize,
}

impl Varints<'_> {
    fn next(&mut self) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.b[self.at];
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
        }
        panic!("varint over 64 bits");
    }

    fn signed(&mut self) -> i64 {
        let v = self.next();
        if v & 1 == 1 {
            !(v >> 1) as i64
        } else {
            (v >> 1) as i64
        }
    }

    fn take(&mut self, len: usize) -> Vec<u8> {
        self.at += len;
        self.b[self.at - len..self.at].to_vec()
    }
}

/// Decodes the table of contents of `archive` (whole); panics on any disagreement.
pub fn read_toc(archive: &[u8]) -> Toc {
    let (toc_at, seek_at, _) = layout(archive);
    let frame = &archive[toc_at..seek_at];
    assert_eq!(u32_at(frame, 0), 0x184D_2A5B, "TOC frame magic");
    assert_eq!(
        u32_at(frame, 4) as usize + 8,
        frame.len(),
        "TOC frame length"
    );
    let head = &frame[8..144];
    assert_eq!(&head[..8], b"SPTI\x03\0\0\0", "TOC tag and version 3");
    assert_eq!(
        blake3::hash(&head[..104]).as_bytes(),
        &head[104..],
        "head BLAKE3"
    );
    let count = u32_at(head, 8) as usize;
    let per_block = u32_at(head, 24) as usize;
    assert!(per_block >= 1);
    let (dictionary_len, meta_len, digests_len) = (
        u32_at(head, 28) as usize,
        u32_at(head, 32) as usize,
        u32_at(head, 36) as usize,
    );
    assert_eq!(144 + meta_len + digests_len, frame.len(), "section lengths");
    let meta = &frame[144..144 + meta_len];
    let digests = &frame[144 + meta_len..];
    assert_eq!(
        blake3::hash(meta).as_bytes(),
        &head[40..72],
        "metadata BLAKE3"
    );
    assert_eq!(
        blake3::hash(digests).as_bytes(),
        &head[72..104],
        "digests BLAKE3"
    );
    let mut dict = Varints {
        b: &meta[..dictionary_len],
        at: 0,
    };
    let mut owners = Vec::new();
    for _ in 0..dict.next() {
        let flags = dict.take(1)[0];
        assert_eq!(flags & !3, 0, "owner flags");
        let (uid, gid) = (dict.next(), dict.next());
        let user = (flags & 1 != 0).then(|| {
            let len = dict.next() as usize;
            dict.take(len)
        });
        let group = (flags & 2 != 0).then(|| {
            let len = dict.next() as usize;
            dict.take(len)
        });
        owners.push((uid, gid, user, group));
    }
    assert_eq!(dict.at, dictionary_len, "the dictionary fills its length");
    let blocks = count.div_ceil(per_block);
    let mut packed_at = dictionary_len + blocks * 16;
    let mut digest_at = count.div_ceil(8);
    let mut members = Vec::new();
    for b in 0..blocks {
        let entry = dictionary_len + b * 16;
        let (packed_len, raw_len) = (u32_at(meta, entry) as usize, u32_at(meta, entry + 4));
        let first_at = u64_at(meta, entry + 8);
        let raw =
            zstd::bulk::decompress(&meta[packed_at..packed_at + packed_len], 1 << 28).unwrap();
        packed_at += packed_len;
        assert_eq!(raw.len(), raw_len as usize, "block {b} length");
        let n = per_block.min(count - b * per_block);
        let mut r = Varints { b: &raw, at: 0 };
        let types = r.take(n);
        let flags = r.take(n);
        let modes: Vec<u64> = (0..n).map(|_| r.next()).collect();
        let owner_of: Vec<u64> = (0..n).map(|_| r.next()).collect();
        let sizes: Vec<u64> = (0..n).map(|_| r.next()).collect();
        let mut secs = 0i64;
        let mtimes: Vec<i64> = (0..n)
            .map(|_| {
                secs += r.signed();
                secs
            })
            .collect();
        for f in &flags {
            if f & 4 != 0 {
                let nanos = r.next();
                assert!((1..1_000_000_000).contains(&nanos));
            }
        }
        let mut expect = first_at;
        let mut offsets = Vec::new();
        for size in &sizes {
            let at = (expect as i64 + r.signed()) as u64;
            offsets.push(at);
            expect = predict(at, *size);
        }
        assert_eq!(offsets[0], first_at, "block {b}: first offset");
        let shared: Vec<usize> = (0..n).map(|_| r.next() as usize).collect();
        let rest: Vec<usize> = (0..n).map(|_| r.next() as usize).collect();
        let link_lens: Vec<usize> = flags
            .iter()
            .filter(|f| *f & 1 != 0)
            .map(|_| r.next() as usize)
            .collect();
        for f in &flags {
            if f & 2 != 0 {
                r.next();
                r.next();
            }
        }
        let mut previous: Vec<u8> = Vec::new();
        let mut names = Vec::new();
        for (same, rest) in shared.iter().zip(&rest) {
            let mut name = previous[..*same].to_vec();
            name.extend_from_slice(&r.take(*rest));
            assert!(!name.is_empty(), "block {b}: an empty name");
            previous = name.clone();
            names.push(name);
        }
        let mut link_lens = link_lens.into_iter();
        for i in 0..n {
            let link = (flags[i] & 1 != 0).then(|| {
                let len = link_lens.next().unwrap();
                r.take(len)
            });
            let (uid, gid, user, group) = owners[owner_of[i] as usize].clone();
            let m = b * per_block + i;
            let digest = ((digests[m / 8] >> (m % 8)) & 1 != 0).then(|| {
                digest_at += 16;
                digests[digest_at - 16..digest_at].try_into().unwrap()
            });
            members.push(Member {
                name: names[i].clone(),
                entry_type: types[i],
                link,
                mode: modes[i] as u32,
                uid,
                gid,
                user,
                group,
                size: sizes[i],
                mtime: mtimes[i],
                header_at: offsets[i],
                digest,
            });
        }
        assert_eq!(r.at, raw.len(), "block {b}: names and links end it");
    }
    assert_eq!(
        packed_at,
        meta.len(),
        "the blocks fill the metadata section"
    );
    assert_eq!(digest_at, digests.len(), "the digests fill their section");
    Toc {
        tar_len: u64_at(head, 12),
        frames: u32_at(head, 20),
        members,
        digests_at: toc_at + 144 + meta_len,
        per_block,
    }
}

/// An indexed `.tar.zst` of a tar stream given member by member (each member's
/// blocks: headers and data, padded): each member in a zstd frame of its own, the
/// end-of-archive blocks in the last, then the table of contents (each member's fields
/// from its first header) and the seek table. Members need not be sane: this is how
/// the hostile-archive tests get an index.
pub fn indexed_tar_zst(members: &[Vec<u8>]) -> Vec<u8> {
    let mut frames: Vec<Vec<u8>> = members.to_vec();
    match frames.last_mut() {
        Some(last) => last.extend_from_slice(&[0; 1024]),
        None => frames.push(vec![0; 1024]),
    }
    let mut at = 0u64;
    let mut table = Vec::new();
    for member in members {
        let header = tar::Header::from_byte_slice(&member[..512]);
        table.push(Member {
            name: header.path_bytes().into_owned(),
            entry_type: header.entry_type().as_byte(),
            link: header
                .link_name_bytes()
                .filter(|l| !l.is_empty())
                .map(|l| l.into_owned()),
            mode: header.mode().unwrap_or(0),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            user: None,
            group: None,
            size: header.entry_size().unwrap_or(0),
            mtime: header.mtime().unwrap_or(0) as i64,
            header_at: at,
            digest: None,
        });
        at += member.len() as u64;
    }
    let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    write_frames(&frames, &table)
}

/// Where an indexed archive's parts are: (TOC frame start, seek table start, the data
/// frames' compressed sizes).
pub fn layout(archive: &[u8]) -> (usize, usize, Vec<u32>) {
    let len = archive.len();
    let word = |at: usize| u32::from_le_bytes(archive[at..at + 4].try_into().unwrap());
    assert_eq!(word(len - 4), 0x8F92_EAB1, "not a seekable archive");
    let frames = word(len - 9) as usize;
    let seek_at = len - (8 + frames * 12 + 9);
    let sizes: Vec<u32> = (0..frames).map(|i| word(seek_at + 8 + i * 12)).collect();
    let toc_at = sizes.iter().map(|&c| c as usize).sum();
    (toc_at, seek_at, sizes)
}
