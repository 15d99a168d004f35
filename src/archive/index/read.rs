//! Finding and checking an archive's index from the end of the file, and reading its
//! frames: one at a time ([`read_frame`]) or as a stream ([`FrameReader`]).
//!
//! Nothing here trusts the table further than it checked it: the seek table must add
//! up to the file's length, the TOC must pass its BLAKE3, and every frame read must
//! decompress to the size and checksum the seek table gives. What a member's offset
//! points at is checked by whoever reads the member (a tar header with that name).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::format::{self, FOOTER_LEN, Footer, Frame, TocEntry};
use super::toc::{self, FRAME_HEAD_LEN, Head};
use super::view::TocView;

/// The largest frame spate reads: its own are at most a few MiB, and a table that
/// says more must not make it allocate gigabytes.
const MAX_FRAME: usize = 64 << 20;

/// An archive's index, checked against the file.
#[derive(Debug, Clone)]
pub struct Index {
    pub frames: Vec<Frame>,
    pub entries: Vec<TocEntry>,
    /// Bytes of the tar stream (the data frames' content).
    pub tar_len: u64,
}

impl Index {
    /// The frame holding byte `tar_offset` of the tar stream.
    pub fn frame_at(&self, tar_offset: u64) -> Option<usize> {
        let i = self
            .frames
            .partition_point(|f| f.d_offset + u64::from(f.d_size) <= tar_offset);
        (i < self.frames.len()).then_some(i)
    }
}

/// An archive's index as read by [`read_table`]: the table of contents as a
/// [`TocView`] (digests included only when asked for), checked against the file.
#[derive(Debug, Clone)]
pub struct Table {
    pub frames: Vec<Frame>,
    pub toc: TocView,
    /// Bytes of the tar stream (the data frames' content).
    pub tar_len: u64,
}

impl Table {
    /// The owned form (every member a [`TocEntry`], every block decoded and checked).
    #[allow(dead_code)]
    pub fn to_index(&self) -> Result<Index, String> {
        Ok(Index {
            frames: self.frames.clone(),
            entries: self.toc.to_entries()?,
            tar_len: self.tar_len,
        })
    }
}

/// Which parts of the table of contents [`read_table`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digests {
    /// The digest section too (check, audit, merge).
    Read,
    /// The metadata only (list, unpack): the digest section is neither read nor
    /// hashed, and [`TocView::digest`] answers `None`.
    Skip,
}

/// What the end of an archive holds.
#[derive(Debug)]
pub enum Found<T = Index> {
    Indexed(T),
    /// No index: a plain stream (GNU tar's, `--no-index`, another compressor), or
    /// another tool's seekable archive without spate's table of contents.
    Plain,
    /// An index is there but disagrees with the file; says why.
    Broken(String),
}

/// Reads the index at the end of `file`, touching only the table's bytes, digests
/// included, every member decoded and checked.
pub fn read_index(file: &File) -> io::Result<Found> {
    Ok(match read_table(file, Digests::Read)? {
        Found::Indexed(table) => match table.toc.to_entries() {
            Ok(entries) => Found::Indexed(Index {
                entries,
                frames: table.frames,
                tar_len: table.tar_len,
            }),
            Err(why) => Found::Broken(why),
        },
        Found::Plain => Found::Plain,
        Found::Broken(why) => Found::Broken(why),
    })
}

/// Reads the index at the end of `file` as a [`TocView`], touching only the bytes of
/// the tables it needs: the footer, the seek table, the TOC's head and metadata, and
/// the digests when `digests` says so. The members' blocks are checked as they are
/// decoded ([`TocView::members`]), or all at once by [`TocView::check_members`].
pub fn read_table(file: &File, digests: Digests) -> io::Result<Found<Table>> {
    let len = file.metadata()?.len();
    if len < FOOTER_LEN as u64 {
        return Ok(Found::Plain);
    }
    let mut tail = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut tail, len - FOOTER_LEN as u64)?;
    let Some(footer) = Footer::decode(&tail) else {
        return Ok(Found::Plain);
    };
    Ok(match checked(file, len, footer, digests)? {
        Ok(Some(index)) => Found::Indexed(index),
        Ok(None) => Found::Plain,
        Err(why) => Found::Broken(why),
    })
}

/// The index, or why it cannot be believed; `Ok(None)`: a seek table without spate's
/// TOC.
fn checked(
    file: &File,
    len: u64,
    footer: Footer,
    digests: Digests,
) -> io::Result<Result<Option<Table>, String>> {
    let table_len = footer.table_len();
    if table_len > len {
        return Ok(Err("the seek table is longer than the file".into()));
    }
    let table_at = len - table_len;
    let mut table = vec![0u8; table_len as usize];
    file.read_exact_at(&mut table, table_at)?;
    let frames = match format::decode_seek_table(&table, footer) {
        Ok(frames) => frames,
        Err(why) => return Ok(Err(why)),
    };
    if frames
        .iter()
        .any(|f| f.d_size as usize > MAX_FRAME || f.c_size as usize > MAX_FRAME)
    {
        return Ok(Err("the seek table lists a frame over 64 MiB".into()));
    }
    let data_end: u64 = frames.iter().map(|f| u64::from(f.c_size)).sum();
    if data_end > table_at {
        return Ok(Err(format!(
            "the seek table lists {data_end} bytes of frames; the file has {table_at}"
        )));
    }
    let toc_len = table_at - data_end;
    if toc_len == 0 {
        return Ok(Ok(None));
    }
    if toc_len < 8 {
        return Ok(Err("the table of contents is cut short".into()));
    }
    // The skippable frame's header and the TOC head in one read; a v1 table or another
    // tool's frame is told apart by the first 8 bytes alone.
    let mut head = [0u8; FRAME_HEAD_LEN];
    let head_len = (toc_len as usize).min(FRAME_HEAD_LEN);
    file.read_exact_at(&mut head[..head_len], data_end)?;
    if toc::toc_frame_len(&head[..head_len]) != Some(toc_len) {
        return Ok(Err(
            "the seek table's frames do not end where the table of contents starts".into(),
        ));
    }
    let head = match Head::decode(&head[..head_len], toc_len) {
        Ok(head) => head,
        Err(why) => return Ok(Err(why)),
    };
    // Each section read into a buffer of its own: one read of both and a split would
    // copy the digests once more (and fault in their pages twice).
    let sections_at = data_end + FRAME_HEAD_LEN as u64;
    let mut section = vec![0u8; head.metadata_len];
    file.read_exact_at(&mut section, sections_at)?;
    let mut digest_bytes = Vec::new();
    if digests == Digests::Read {
        digest_bytes = vec![0u8; head.digests_len];
        file.read_exact_at(&mut digest_bytes, sections_at + head.metadata_len as u64)?;
    }
    let mut view = match toc::decode_metadata(&head, section) {
        Ok(view) => view,
        Err(why) => return Ok(Err(why)),
    };
    if digests == Digests::Read
        && let Err(why) = view.attach_digests(&head, digest_bytes)
    {
        return Ok(Err(why));
    }
    let tar_len: u64 = frames.iter().map(|f| u64::from(f.d_size)).sum();
    if view.frames as usize != frames.len() || view.tar_len != tar_len {
        return Ok(Err(
            "the table of contents and the seek table disagree".into()
        ));
    }
    Ok(Ok(Some(Table {
        frames,
        toc: view,
        tar_len,
    })))
}

/// Reads and decompresses one frame, checking its size and checksum.
pub fn read_frame(file: &File, frame: &Frame) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    read_frame_into(file, frame, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// [`read_frame`] into `out` (its old contents replaced), with `packed` as room for the
/// compressed bytes: a reader of many frames that keeps both buffers reuses their
/// memory instead of faulting in fresh pages for every frame.
pub fn read_frame_into(
    file: &File,
    frame: &Frame,
    packed: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    packed.resize(frame.c_size as usize, 0);
    file.read_exact_at(packed, frame.c_offset)
        .map_err(|e| damaged(frame, &format!("cannot be read: {e}")))?;
    out.clear();
    out.reserve(frame.d_size as usize);
    zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(packed.as_slice(), out))
        .map_err(|e| damaged(frame, &format!("does not decompress: {e}")))?;
    if out.len() != frame.d_size as usize {
        return Err(damaged(
            frame,
            "decompresses to another size than the index says",
        ));
    }
    let sum = match verified_checksum(packed) {
        Some(sum) => sum,
        None => checksum(out),
    };
    if sum != frame.checksum {
        return Err(damaged(frame, "fails its checksum"));
    }
    Ok(())
}

/// The content checksum stored at the end of `packed` when it is exactly one zstd
/// frame that carries one (as every frame spate writes does): the decompressor has
/// then checked it against the content already (the same low 32 bits of the XXH64),
/// so hashing the content a second time would only cost time (4% of an unpack).
fn verified_checksum(packed: &[u8]) -> Option<u32> {
    const MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();
    const CHECKSUM_FLAG: u8 = 1 << 2;
    let descriptor = *packed.get(4)?;
    let one_frame = zstd::zstd_safe::find_frame_compressed_size(packed).ok()? == packed.len();
    if !packed.starts_with(&MAGIC) || descriptor & CHECKSUM_FLAG == 0 || !one_frame {
        return None;
    }
    let tail = packed.get(packed.len().checked_sub(4)?..)?;
    Some(u32::from_le_bytes(tail.try_into().ok()?))
}

/// The checksum the seek table keeps: the low 32 bits of the XXH64 (seed 0).
pub fn checksum(data: &[u8]) -> u32 {
    xxhash_rust::xxh64::xxh64(data, 0) as u32
}

fn damaged(frame: &Frame, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the frame at byte {} {what}", frame.c_offset),
    )
}

/// The tar stream from a frame on, decompressed one frame at a time, each checked.
pub struct FrameReader {
    file: Arc<File>,
    frames: Vec<Frame>,
    next: usize,
    buf: Vec<u8>,
    at: usize,
    skip: u64,
}

impl FrameReader {
    /// Reads from frame `from_frame` on, starting `skip` bytes into it.
    pub fn new(file: Arc<File>, frames: Vec<Frame>, from_frame: usize, skip: u64) -> FrameReader {
        FrameReader {
            file,
            frames,
            next: from_frame,
            buf: Vec::new(),
            at: 0,
            skip,
        }
    }
}

impl Read for FrameReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            let Some(frame) = self.frames.get(self.next) else {
                return Ok(0);
            };
            self.buf = read_frame(&self.file, frame)?;
            self.next += 1;
            let skip = usize::try_from(self.skip).unwrap_or(usize::MAX);
            self.at = skip.min(self.buf.len());
            self.skip -= self.at as u64;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
