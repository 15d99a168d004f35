//! Writing an indexed `.tar.zst`: the tar stream comes in, zstd frames cut at member
//! boundaries go out, and [`IndexedWriter::finish`] appends the table of contents and
//! the seek table (layout in `format.rs`).
//!
//! A frame ends at the first member boundary after it holds `target` bytes, so small
//! members never straddle two frames and one member can be read by decompressing only
//! its own frames; a large member is cut every `2 × target` bytes, which bounds memory
//! whatever the file's size. Each frame is compressed on its own, on a pool of threads
//! ([`ZstdFrames`]), while the next one fills: the frames go out in order, and the seek
//! table's entries are taken from them as they are written.

use std::io::{self, Write};

use super::format::{self, Frame, Toc, TocDigest, TocEntry};
use crate::archive::codec::{FrameSizes, ZstdFrames};

/// Frames' input size, before the first member boundary ends one. Measured against
/// `tar | zstd -T0 -3` on trees nobody here generated (README, "Indexed .tar.zst"):
/// smaller frames cost ratio (each starts with an empty window), larger ones cost
/// memory (two per compression thread in flight) and the work of reading one member.
pub const FRAME_TARGET: usize = 4 << 20;

/// Tar bytes in, indexed zstd archive out.
pub struct IndexedWriter<W: Write> {
    frames: ZstdFrames<W>,
    level: i32,
    target: usize,
    /// The frame being filled.
    buf: Vec<u8>,
    /// Tar stream offset of `buf`'s first byte.
    d_offset: u64,
    entries: Vec<TocEntry>,
}

impl<W: Write> IndexedWriter<W> {
    /// Compresses at zstd `level` on one thread of its own, cutting frames after
    /// `target` bytes of input.
    #[cfg_attr(not(test), allow(dead_code))] // pack gives the threads; the tests do not
    pub fn new(out: W, level: i32, target: usize) -> io::Result<IndexedWriter<W>> {
        IndexedWriter::with_threads(out, level, target, 1)
    }

    /// As [`IndexedWriter::new`], compressing frames on `threads` threads (at least
    /// one). The bytes written do not depend on the number of threads.
    pub fn with_threads(
        out: W,
        level: i32,
        target: usize,
        threads: usize,
    ) -> io::Result<IndexedWriter<W>> {
        let target = target.max(1);
        Ok(IndexedWriter {
            frames: ZstdFrames::new(out, level, threads)?,
            level,
            target,
            buf: Vec::with_capacity(target.saturating_mul(2)),
            d_offset: 0,
            entries: Vec::new(),
        })
    }

    /// Records a member whose first header byte is the next byte written (ending the
    /// frame here when it is full enough); returns its index for
    /// [`IndexedWriter::set_digest`].
    pub fn begin_member(&mut self, mut entry: TocEntry) -> io::Result<usize> {
        if self.buf.len() >= self.target {
            self.end_frame()?;
        }
        entry.header_at = self.d_offset + self.buf.len() as u64;
        self.entries.push(entry);
        Ok(self.entries.len() - 1)
    }

    /// The content digest of member `index`, known once its data was read.
    pub fn set_digest(&mut self, index: usize, digest: TocDigest) {
        if let Some(entry) = self.entries.get_mut(index) {
            entry.digest = Some(digest);
        }
    }

    /// Ends the frame before the tar stream's end-of-archive blocks, so that they sit
    /// in a frame of their own (which merging archives drops).
    pub fn end_of_members(&mut self) -> io::Result<()> {
        self.end_frame()
    }

    /// Writes the last frames, the table of contents and the seek table; returns the
    /// output.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_frame()?;
        // The table needs the frames' count, not their sizes: it is encoded while the
        // pool compresses the last frames, instead of on its own at the end with every
        // other thread done (about 1% of packing a cargo registry's wall time).
        let toc = Toc {
            entries: std::mem::take(&mut self.entries),
            tar_len: self.d_offset,
            frames: u32::try_from(self.frames.pushed())
                .map_err(|_| io::Error::other("more than 2^32 frames"))?,
        };
        let count = toc.frames;
        let toc = format::encode_toc(&toc, self.level)?;
        let (mut out, sizes) = self.frames.finish()?;
        if sizes.len() != count as usize {
            return Err(io::Error::other(format!(
                "internal error: {count} frames counted, {} written",
                sizes.len()
            )));
        }
        let frames = placed(&sizes);
        out.write_all(&toc)?;
        out.write_all(&format::encode_seek_table(&frames))?;
        out.flush()?;
        Ok(out)
    }

    /// The output, as messages name it.
    pub fn get_ref(&self) -> &W {
        self.frames.get_ref()
    }

    /// Hands the frame being filled to the compression threads.
    fn end_frame(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self.frames.buffer(self.target.saturating_mul(2));
        let frame = std::mem::replace(&mut self.buf, next);
        self.d_offset += frame.len() as u64;
        self.frames.push(frame)
    }

    fn max(&self) -> usize {
        self.target.saturating_mul(2)
    }
}

/// Each frame with its offsets in the archive and in the tar stream.
fn placed(sizes: &[FrameSizes]) -> Vec<Frame> {
    let (mut c_offset, mut d_offset) = (0u64, 0u64);
    sizes
        .iter()
        .map(|s| {
            let frame = Frame {
                c_offset,
                c_size: s.c_size,
                d_offset,
                d_size: s.d_size,
                checksum: s.checksum,
            };
            c_offset += u64::from(s.c_size);
            d_offset += u64::from(s.d_size);
            frame
        })
        .collect()
}

impl<W: Write> Write for IndexedWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= self.max() {
            self.end_frame()?;
        }
        let n = bytes.len().min(self.max() - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::read::{FrameReader, read_frame, read_index};
    use super::super::{Found, format::TocEntry};
    use super::*;
    use crate::archive::unpack::header::Mtime;
    use std::io::Read;
    use std::sync::Arc;

    fn entry(name: &str) -> TocEntry {
        TocEntry {
            name: name.as_bytes().to_vec(),
            entry_type: b'0',
            link: None,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: 0,
            mtime: Mtime { secs: 0, nanos: 0 },
            device: None,
            header_at: 0,
            digest: None,
        }
    }

    #[test]
    fn frames_end_at_member_boundaries_and_the_stream_reads_back() {
        let mut file = tempfile::tempfile().unwrap();
        let mut writer = IndexedWriter::new(&mut file, 3, 1000).unwrap();
        let mut stream = Vec::new();
        for (i, len) in [512usize, 1024, 512, 5120, 512].into_iter().enumerate() {
            let at = writer.begin_member(entry(&format!("m{i}"))).unwrap();
            writer.set_digest(at, [i as u8; 16]);
            let bytes: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
            writer.write_all(&bytes).unwrap();
            stream.extend_from_slice(&bytes);
        }
        writer.finish().unwrap();
        let Found::Indexed(index) = read_index(&file).unwrap() else {
            panic!("no index found");
        };
        assert_eq!(index.tar_len, stream.len() as u64);
        let starts: Vec<u64> = index.entries.iter().map(|e| e.header_at).collect();
        assert_eq!(starts, [0, 512, 1536, 2048, 7168]);
        // [m0 m1] is over 1000 bytes: m2 starts a frame; m3 is cut every 2000 bytes.
        for e in &index.entries {
            let frame = index.frame_at(e.header_at).unwrap();
            assert!(index.frames[frame].d_offset <= e.header_at);
        }
        assert_eq!(index.frames[1].d_offset, 1536, "a frame ends at a member");
        assert_eq!(index.frames[2].d_offset, 3536, "a large member is cut");
        let file = Arc::new(file);
        let mut back = Vec::new();
        FrameReader::new(Arc::clone(&file), index.frames.clone(), 0, 0)
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == stream);
        let mut from_m2 = Vec::new();
        FrameReader::new(Arc::clone(&file), index.frames.clone(), 1, 0)
            .read_to_end(&mut from_m2)
            .unwrap();
        assert!(from_m2 == stream[1536..]);
        for frame in &index.frames {
            read_frame(&file, frame).unwrap();
        }
        assert_eq!(index.entries[3].digest, Some([3; 16]));
    }

    #[test]
    fn a_flipped_data_byte_fails_the_frame_not_the_index() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = IndexedWriter::new(file.as_file_mut(), 3, 1 << 20).unwrap();
        writer.begin_member(entry("a")).unwrap();
        writer.write_all(&[1u8; 4096]).unwrap();
        writer.finish().unwrap();
        let mut bytes = std::fs::read(file.path()).unwrap();
        bytes[20] ^= 1;
        std::fs::write(file.path(), &bytes).unwrap();
        let file = std::fs::File::open(file.path()).unwrap();
        let Found::Indexed(index) = read_index(&file).unwrap() else {
            panic!("the index itself is intact");
        };
        assert!(read_frame(&file, &index.frames[0]).is_err());
    }

    #[test]
    fn zstd_reads_the_archive_as_one_stream() {
        let mut out = Vec::new();
        let mut writer = IndexedWriter::new(&mut out, 3, 100).unwrap();
        let mut stream = Vec::new();
        for i in 0..10u8 {
            writer.begin_member(entry("x")).unwrap();
            writer.write_all(&[i; 300]).unwrap();
            stream.extend_from_slice(&[i; 300]);
        }
        writer.finish().unwrap();
        let back = zstd::stream::decode_all(&out[..]).unwrap();
        assert!(back == stream);
    }
}
