//! What pack records in an indexed archive's table of contents: an entry for each
//! member as its header says it (written before the header, so the encoder knows
//! where the member starts), and the file's BLAKE3 digest once the read has made it —
//! the same digest the `--manifest` line carries, of which the table keeps the first
//! 16 bytes.

use anyhow::Result;
use tar::Header;

use super::Member;
use super::writer::Writer;
use crate::archive::index::{TocEntry, toc_digest};
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
        digest: Option<blake3::Hash>,
        toc: Option<usize>,
    ) {
        let Some(digest) = digest else { return };
        if let Some(at) = toc {
            self.tar.get_mut().inner.set_digest(at, toc_digest(&digest));
        }
        if let Some(inode) = member.inode {
            self.links.entry(inode).or_insert(digest);
        }
        // Digests are also made for the index alone: no manifest, no lines to keep.
        if self.config.manifest.is_none() {
            return;
        }
        let digests = vec![(Algo::Blake3, digest.to_hex().to_string())];
        manifest::push_record(
            &mut self.manifest_buf,
            Format::Gnu,
            &member.given,
            member.size,
            &digests,
        );
    }
}
