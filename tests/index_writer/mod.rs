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
    pub digest: Option<[u8; 32]>,
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

/// The TOC frame, version 2: the 132-byte head, the metadata section (one zstd frame
/// of an owner dictionary and one column per field), the digest section (bitmap, then
/// the digests present).
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
        owner_of.push(i as u32);
    }
    let mut meta = Vec::new();
    meta.extend_from_slice(&(owners.len() as u32).to_le_bytes());
    for (uid, gid, user, group) in &owners {
        meta.push(u8::from(user.is_some()) | (u8::from(group.is_some()) << 1));
        meta.extend_from_slice(&uid.to_le_bytes());
        meta.extend_from_slice(&gid.to_le_bytes());
        for name in [user, group].into_iter().flatten() {
            meta.extend_from_slice(&(name.len() as u32).to_le_bytes());
            meta.extend_from_slice(name);
        }
    }
    let mut last = 0u64;
    let mut columns: [Vec<u8>; 11] = Default::default();
    for (m, owner) in members.iter().zip(&owner_of) {
        columns[0].push(m.entry_type);
        columns[1].push(u8::from(m.link.is_some()));
        columns[2].extend_from_slice(&m.mode.to_le_bytes());
        columns[3].extend_from_slice(&owner.to_le_bytes());
        columns[4].extend_from_slice(&m.size.to_le_bytes());
        columns[5].extend_from_slice(&m.mtime.to_le_bytes());
        columns[6].extend_from_slice(&0u32.to_le_bytes());
        columns[7].extend_from_slice(&m.header_at.wrapping_sub(last).to_le_bytes());
        last = m.header_at;
        columns[8].extend_from_slice(&(m.name.len() as u32).to_le_bytes());
        let link_len = m.link.as_ref().map_or(0, Vec::len) as u32;
        columns[9].extend_from_slice(&link_len.to_le_bytes());
        columns[10].extend_from_slice(&[0; 8]);
    }
    for column in &columns {
        meta.extend_from_slice(column);
    }
    for m in members {
        meta.extend_from_slice(&m.name);
    }
    for link in members.iter().filter_map(|m| m.link.as_ref()) {
        meta.extend_from_slice(link);
    }
    let packed = zstd::bulk::compress(&meta, 3).unwrap();
    let mut digests = vec![0u8; members.len().div_ceil(8)];
    for (i, m) in members.iter().enumerate() {
        if m.digest.is_some() {
            digests[i / 8] |= 1 << (i % 8);
        }
    }
    for digest in members.iter().filter_map(|m| m.digest.as_ref()) {
        digests.extend_from_slice(digest);
    }
    let mut content = b"SPTI\x02\0\0\0".to_vec();
    content.extend_from_slice(&(members.len() as u32).to_le_bytes());
    content.extend_from_slice(&tar_len.to_le_bytes());
    content.extend_from_slice(&frames.to_le_bytes());
    content.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    content.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    content.extend_from_slice(&(digests.len() as u32).to_le_bytes());
    content.extend_from_slice(blake3::hash(&packed).as_bytes());
    content.extend_from_slice(blake3::hash(&digests).as_bytes());
    let sum = blake3::hash(&content);
    content.extend_from_slice(sum.as_bytes());
    assert_eq!(content.len(), 132);
    content.extend_from_slice(&packed);
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
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
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
    let head = &frame[8..140];
    assert_eq!(&head[..8], b"SPTI\x02\0\0\0", "TOC tag and version 2");
    assert_eq!(
        blake3::hash(&head[..100]).as_bytes(),
        &head[100..],
        "head BLAKE3"
    );
    let count = u32_at(head, 8) as usize;
    let (meta_len, packed_len, digests_len) = (
        u32_at(head, 24) as usize,
        u32_at(head, 28) as usize,
        u32_at(head, 32) as usize,
    );
    assert_eq!(
        140 + packed_len + digests_len,
        frame.len(),
        "section lengths"
    );
    let packed = &frame[140..140 + packed_len];
    let digests = &frame[140 + packed_len..];
    assert_eq!(
        blake3::hash(packed).as_bytes(),
        &head[36..68],
        "metadata BLAKE3"
    );
    assert_eq!(
        blake3::hash(digests).as_bytes(),
        &head[68..100],
        "digests BLAKE3"
    );
    let meta = zstd::stream::decode_all(packed).unwrap();
    assert_eq!(meta.len(), meta_len, "metadata length");
    let mut at = 4;
    let mut owners = Vec::new();
    for _ in 0..u32_at(&meta, 0) {
        let flags = meta[at];
        let (uid, gid) = (u64_at(&meta, at + 1), u64_at(&meta, at + 9));
        at += 17;
        let mut name = |bit: u8| {
            (flags & bit != 0).then(|| {
                let len = u32_at(&meta, at) as usize;
                at += 4 + len;
                meta[at - len..at].to_vec()
            })
        };
        let user = name(1);
        let group = name(2);
        owners.push((uid, gid, user, group));
    }
    // The columns, in order, by their width.
    let mut starts = Vec::new();
    for width in [1, 1, 4, 4, 8, 8, 4, 8, 4, 4, 8] {
        starts.push(at);
        at += count * width;
    }
    let [
        types,
        flags,
        modes,
        owner_col,
        sizes,
        secs,
        nanos,
        steps,
        name_lens,
        link_lens,
        _,
    ] = starts[..]
    else {
        unreachable!()
    };
    let mut names_at = at;
    let names_len: usize = (0..count)
        .map(|i| u32_at(&meta, name_lens + i * 4) as usize)
        .sum();
    let mut links_at = names_at + names_len;
    let mut digest_at = count.div_ceil(8);
    let mut header_at = 0u64;
    let mut members = Vec::new();
    for i in 0..count {
        let name_len = u32_at(&meta, name_lens + i * 4) as usize;
        let link_len = u32_at(&meta, link_lens + i * 4) as usize;
        let name = meta[names_at..names_at + name_len].to_vec();
        names_at += name_len;
        let link = (meta[flags + i] & 1 != 0).then(|| {
            links_at += link_len;
            meta[links_at - link_len..links_at].to_vec()
        });
        header_at += u64_at(&meta, steps + i * 8);
        assert!(u32_at(&meta, nanos + i * 4) < 1_000_000_000);
        let owner = u32_at(&meta, owner_col + i * 4) as usize;
        let (uid, gid, user, group) = owners[owner].clone();
        let digest = ((digests[i / 8] >> (i % 8)) & 1 != 0).then(|| {
            digest_at += 32;
            digests[digest_at - 32..digest_at].try_into().unwrap()
        });
        members.push(Member {
            name,
            entry_type: meta[types + i],
            link,
            mode: u32_at(&meta, modes + i * 4),
            uid,
            gid,
            user,
            group,
            size: u64_at(&meta, sizes + i * 8),
            mtime: u64_at(&meta, secs + i * 8) as i64,
            header_at,
            digest,
        });
    }
    assert_eq!(
        links_at,
        meta.len(),
        "names and links fill the metadata section"
    );
    assert_eq!(digest_at, digests.len(), "the digests fill their section");
    Toc {
        tar_len: u64_at(head, 12),
        frames: u32_at(head, 20),
        members,
        digests_at: toc_at + 140 + packed_len,
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
