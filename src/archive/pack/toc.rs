//! What pack records in an indexed archive's table of contents: an entry for each
//! member as its header says it (written before the header, so the encoder knows
//! where the member starts), and the file's BLAKE3 digest once the read has made it —
//! the same digest the `--manifest` line carries, of which the table keeps the first
//! 16 bytes.

use anyhow::Result;
use tar::Header;

use super::Member;
use super::writer::Writer;
use crate::archive::index::{DIGEST_LEN, TocDigest, TocEntry};
use crate::archive::unpack::header::Mtime;
use crate::hash::digest::Algo;
use crate::manifest::{self, Format};

impl Writer<'_> {
    /// Records, in an indexed archive, the member whose header comes next.
    pub(super) fn begin(
        &mut self,
        header: &Header,
        name: &[u8],
        link: Option<&[u8]>,
    ) -> Result<Option<usize>> {
        let entry = || TocEntry {
            // As the header will say them: [`super::names`] stores both exactly.
            name: name.to_vec(),
            entry_type: header.entry_type().as_byte(),
            link: link.map(<[u8]>::to_vec),
            mode: header.mode().unwrap_or(0),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            user: header
                .username_bytes()
                .filter(|u| !u.is_empty())
                .map(<[u8]>::to_vec),
            group: header
                .groupname_bytes()
                .filter(|g| !g.is_empty())
                .map(<[u8]>::to_vec),
            size: header.size().unwrap_or(0),
            mtime: Mtime {
                secs: i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(i64::MAX),
                nanos: 0,
            },
            device: None,
            header_at: 0,
            digest: None,
        };
        self.tar
            .get_mut()
            .inner
            .begin_member(entry)
            .map_err(|e| self.stream_error(e))
    }

    pub(super) fn record_digest(
        &mut self,
        member: &Member,
        digest: Option<String>,
        toc: Option<usize>,
    ) {
        let Some(hex) = digest else { return };
        if let (Some(at), Some(bytes)) = (toc, digest_bytes(&hex)) {
            self.tar.get_mut().inner.set_digest(at, bytes);
        }
        if let Some(inode) = member.inode {
            self.links.entry(inode).or_insert_with(|| hex.clone());
        }
        // Digests are also made for the index alone: no manifest, no lines to keep.
        if self.config.manifest.is_none() {
            return;
        }
        let digests = vec![(Algo::Blake3, hex)];
        manifest::push_record(
            &mut self.manifest_buf,
            Format::Gnu,
            &member.given,
            member.size,
            &digests,
        );
    }
}

/// A hex BLAKE3 digest (the 64 digits `--manifest` writes) as the table keeps it: its
/// first [`DIGEST_LEN`] bytes.
fn digest_bytes(hex: &str) -> Option<TocDigest> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; DIGEST_LEN];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}
