//! An indexed `.tar.zst` written from the byte layout the README gives (not with
//! spate's own writer), for tests that need archives `spate pack` never writes:
//! hostile names, tables that lie about offsets. Also finds the two tables in an
//! archive, for tests that damage them.
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
    let mut out = Vec::new();
    let mut table = Vec::new();
    for pair in cuts.windows(2) {
        let data = &tar[pair[0]..pair[1]];
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
    out.extend_from_slice(&toc_frame(members, tar.len() as u64, table.len() as u32));
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

fn toc_frame(members: &[Member], tar_len: u64, frames: u32) -> Vec<u8> {
    let mut body = Vec::new();
    let mut last = 0u64;
    for m in members {
        let presence = u8::from(m.link.is_some())
            | u8::from(m.user.is_some()) << 1
            | u8::from(m.group.is_some()) << 2;
        body.push(presence);
        body.push(m.entry_type);
        put_bytes(&mut body, &m.name);
        put(&mut body, u64::from(m.mode));
        put(&mut body, m.uid);
        put(&mut body, m.gid);
        put(&mut body, m.size);
        put(&mut body, ((m.mtime << 1) ^ (m.mtime >> 63)) as u64);
        put(&mut body, 0);
        put(&mut body, m.header_at.wrapping_sub(last));
        last = m.header_at;
        for field in [&m.link, &m.user, &m.group].into_iter().flatten() {
            put_bytes(&mut body, field);
        }
    }
    let packed = zstd::bulk::compress(&body, 3).unwrap();
    let mut content = Vec::new();
    content.extend_from_slice(b"SPTI");
    content.extend_from_slice(&[1, 0, 0, 0]);
    content.extend_from_slice(&(members.len() as u32).to_le_bytes());
    content.extend_from_slice(&tar_len.to_le_bytes());
    content.extend_from_slice(&frames.to_le_bytes());
    content.extend_from_slice(&(body.len() as u32).to_le_bytes());
    content.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    content.extend_from_slice(&packed);
    let sum = blake3::hash(&content);
    content.extend_from_slice(sum.as_bytes());
    let mut out = Vec::new();
    out.extend_from_slice(&0x184D_2A5Bu32.to_le_bytes());
    out.extend_from_slice(&(content.len() as u32).to_le_bytes());
    out.extend_from_slice(&content);
    out
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
