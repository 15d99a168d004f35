//! The decompressed tar stream of an indexed archive, read by offset ranges, with a
//! frame that failed to decompress standing as a hole of its known size.
//!
//! A damaged frame must not end the check: the seek table says how many bytes it held,
//! so the members after it (in the frames after it) are still found where the table of
//! contents puts them and verified. Reading into a hole is an error that names the
//! frame; skipping over one is not.

use std::io::{self, Read};
use std::sync::Arc;

use super::frames::AheadFrames;
use crate::archive::index::Frame;

/// Bytes from which a run of a member is hashed on rayon's pool: below it, the
/// hand-over costs more than it saves.
const PARALLEL_HASH: usize = 1 << 20;

/// A frame that could not be decompressed or verified.
pub(super) struct BadFrame {
    /// 1-based, as messages number frames.
    pub number: usize,
    pub cause: String,
}

enum Chunk {
    Data(Vec<u8>),
    /// The frame of this number (1-based) failed; its bytes are unknown.
    Hole(usize),
}

pub(super) struct TarStream {
    frames: AheadFrames,
    table: Arc<Vec<Frame>>,
    chunk: Chunk,
    /// Offset in the tar stream where `chunk` starts, and its length.
    chunk_at: u64,
    chunk_len: u64,
    /// Offset in the tar stream of the next byte read.
    at: u64,
    /// Frames found bad since the caller last asked.
    bad: Vec<BadFrame>,
    /// Decompressed bytes handed over, for the progress display.
    pub(super) done: u64,
    /// The damaged frame a read last ran into.
    hit: Option<usize>,
}

impl TarStream {
    pub(super) fn new(frames: AheadFrames, table: Arc<Vec<Frame>>) -> TarStream {
        TarStream {
            frames,
            table,
            chunk: Chunk::Data(Vec::new()),
            chunk_at: 0,
            chunk_len: 0,
            at: 0,
            bad: Vec::new(),
            done: 0,
            hit: None,
        }
    }

    /// Offset of the next byte.
    pub(super) fn at(&self) -> u64 {
        self.at
    }

    /// Frames found bad since the last call, to be reported once each.
    pub(super) fn take_bad(&mut self) -> Vec<BadFrame> {
        std::mem::take(&mut self.bad)
    }

    /// The damaged frame the last failed read ran into, if that is why it failed.
    pub(super) fn take_hit(&mut self) -> Option<usize> {
        self.hit.take()
    }

    /// Makes the chunk hold the byte at `self.at`; false at the end of the frames.
    fn fill(&mut self) -> bool {
        while self.at >= self.chunk_at + self.chunk_len {
            let Some((i, decoded)) = self.frames.next_frame() else {
                return false;
            };
            let frame = &self.table[i];
            self.chunk_at = frame.d_offset;
            self.chunk_len = u64::from(frame.d_size);
            let chunk = match decoded {
                Ok(data) => {
                    self.done += data.len() as u64;
                    Chunk::Data(data)
                }
                Err(e) => {
                    self.bad.push(BadFrame {
                        number: i + 1,
                        cause: crate::archive::unpack::header::short_cause(&e),
                    });
                    Chunk::Hole(i + 1)
                }
            };
            if let Chunk::Data(old) = std::mem::replace(&mut self.chunk, chunk) {
                self.frames.recycle(old);
            }
        }
        true
    }

    /// Reads into `buf` no further than offset `end`. `Ok(0)` at `end` or at the end of
    /// the frames; an error inside a frame that failed.
    pub(super) fn read_until(&mut self, end: u64, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= end || buf.is_empty() || !self.fill() {
            return Ok(0);
        }
        match &self.chunk {
            Chunk::Hole(number) => {
                self.hit = Some(*number);
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("in frame {number}, which is damaged"),
                ))
            }
            Chunk::Data(data) => {
                let from = (self.at - self.chunk_at) as usize;
                let n = buf
                    .len()
                    .min(data.len() - from)
                    .min(usize::try_from(end - self.at).unwrap_or(usize::MAX));
                buf[..n].copy_from_slice(&data[from..from + n]);
                self.at += n as u64;
                Ok(n)
            }
        }
    }

    /// Hashes the stream up to `end` into `hasher` straight from the frames (no copy);
    /// the bytes hashed (fewer at the end of the frames), or an error inside a frame
    /// that failed, as [`TarStream::read_until`] says it.
    pub(super) fn hash_until(&mut self, end: u64, hasher: &mut blake3::Hasher) -> io::Result<u64> {
        let start = self.at;
        while self.at < end && self.fill() {
            match &self.chunk {
                Chunk::Hole(number) => {
                    self.hit = Some(*number);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("in frame {number}, which is damaged"),
                    ));
                }
                Chunk::Data(data) => {
                    let from = (self.at - self.chunk_at) as usize;
                    let n = (data.len() - from)
                        .min(usize::try_from(end - self.at).unwrap_or(usize::MAX));
                    let bytes = &data[from..from + n];
                    // Large runs on every core (the decompressing workers are a few
                    // frames ahead and wait on this thread otherwise).
                    if n >= PARALLEL_HASH {
                        hasher.update_rayon(bytes);
                    } else {
                        hasher.update(bytes);
                    }
                    self.at += n as u64;
                }
            }
        }
        Ok(self.at - start)
    }

    /// Moves on to offset `end` (never back), over damaged frames too.
    pub(super) fn skip_to(&mut self, end: u64) {
        while self.at < end && self.fill() {
            self.at = end.min(self.chunk_at + self.chunk_len);
        }
    }
}

/// The stream up to `end`, as a reader.
pub(super) struct Span<'a> {
    pub stream: &'a mut TarStream,
    pub end: u64,
}

impl Read for Span<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read_until(self.end, buf)
    }
}
