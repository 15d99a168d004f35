//! Independent zstd frames compressed on a pool of threads and written in order: the
//! data frames of the indexed `.tar.zst`.
//!
//! The writer decides where each frame ends (at tar member boundaries) and pushes the
//! frame's bytes whole; each is compressed on its own by one pool thread, single
//! threaded at the level, as `zstd -<level>` would compress that piece alone, with the
//! content size and the content checksum in the frame. The same input therefore gives
//! the same bytes whatever the number of threads. At most two frames per thread are in
//! flight, so memory stays at a few frames per thread whatever the archive's size.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use super::chunk_pool::{Ordered, Pool, Written};

/// One frame as written: its compressed and decompressed sizes, and the low 32 bits of
/// the XXH64 of its decompressed bytes (the zstd content checksum, which the seekable
/// format's seek table repeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSizes {
    pub c_size: u32,
    pub d_size: u32,
    pub checksum: u32,
}

/// Compresses pushed frames on a pool and writes them to `out` in order.
pub struct ZstdFrames<W: Write> {
    out: W,
    ordered: Ordered<()>,
    /// Frames written so far, in order.
    written: Vec<FrameSizes>,
    /// Input buffers the pool is done with, to fill again: a fresh multi-MiB allocation
    /// costs a page fault and a page clear every 4 KiB.
    spare: Vec<Vec<u8>>,
    /// Output buffers written out, for the pool to compress into again, for the same
    /// reason: a frame's output is allocated for the worst case (its input's size), of
    /// which the compressed bytes fault in about a quarter.
    spare_out: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<W: Write> ZstdFrames<W> {
    /// Starts `threads` pool threads (at least one) compressing at `level`.
    pub fn new(out: W, level: i32, threads: usize) -> io::Result<ZstdFrames<W>> {
        let pool = Pool {
            threads,
            name: "spate-zstd",
            prime: 0,
        };
        let spare_out: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let outputs = Arc::clone(&spare_out);
        let ordered = Ordered::new(pool, move |frame, _| {
            let buf = outputs
                .lock()
                .map_or_else(|_| None, |mut spare| spare.pop())
                .unwrap_or_default();
            Ok((compress(frame, level, buf)?, ()))
        })?;
        Ok(ZstdFrames {
            out,
            ordered,
            written: Vec::new(),
            spare: Vec::new(),
            spare_out,
        })
    }

    /// Starts compressing one frame's bytes (at most 4 GiB, the seek table's limit);
    /// once enough frames are in flight, first writes the oldest.
    pub fn push(&mut self, frame: Vec<u8>) -> io::Result<()> {
        if u32::try_from(frame.len()).is_err() {
            return Err(io::Error::other("a zstd frame of 4 GiB or more"));
        }
        let (written, spare, spare_out) = (&mut self.written, &mut self.spare, &self.spare_out);
        self.ordered.push(frame, &mut self.out, &mut |w| {
            record(w, written, spare, spare_out)
        })
    }

    /// An empty buffer to fill with the next frame, reused when one is back.
    pub fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// The output.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Writes every frame still in flight; returns the output and every frame's sizes,
    /// in order.
    pub fn finish(mut self) -> io::Result<(W, Vec<FrameSizes>)> {
        let (written, spare, spare_out) = (&mut self.written, &mut self.spare, &self.spare_out);
        self.ordered
            .finish(&mut self.out, &mut |w| record(w, written, spare, spare_out))?;
        Ok((self.out, self.written))
    }

    /// Frames pushed so far (written or in flight).
    pub fn pushed(&self) -> usize {
        self.written.len() + self.ordered.in_flight()
    }
}

/// Notes a frame that is out, and keeps its buffers for reuse.
fn record(
    w: Written<()>,
    written: &mut Vec<FrameSizes>,
    spare: &mut Vec<Vec<u8>>,
    spare_out: &Mutex<Vec<Vec<u8>>>,
) {
    let c = &w.compressed;
    // The checksum flag is set on every frame, so its last 4 bytes are the checksum.
    let checksum = c.len().checked_sub(4).map_or(0, |at| {
        u32::from_le_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]])
    });
    written.push(FrameSizes {
        c_size: c.len() as u32,
        d_size: w.chunk.len() as u32,
        checksum,
    });
    // Every buffer comes back from a frame in flight, so the spares never outnumber
    // the frames the pool holds at once.
    spare.push(w.chunk);
    if let Ok(mut outputs) = spare_out.lock() {
        outputs.push(w.compressed);
    }
}

thread_local! {
    /// Each pool thread's compression context and its level: a context holds a few MiB
    /// of tables, worth keeping from one frame to the next.
    static CONTEXT: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// One zstd frame of `data` at `level`, with its content size and content checksum,
/// in `out` (emptied first, grown to the worst case).
fn compress(data: &[u8], level: i32, mut out: Vec<u8>) -> io::Result<Vec<u8>> {
    CONTEXT.with(|cell| {
        let mut cell = cell.borrow_mut();
        let context = match &mut *cell {
            Some((l, context)) if *l == level => context,
            slot => {
                let mut context = zstd::bulk::Compressor::new(level)?;
                context.include_checksum(true)?;
                context.include_contentsize(true)?;
                &mut slot.insert((level, context)).1
            }
        };
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        context.compress_to_buffer(data, &mut out)?;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(data: &[u8], cuts: &[usize], threads: usize) -> (Vec<u8>, Vec<FrameSizes>) {
        let mut frames = ZstdFrames::new(Vec::new(), 3, threads).unwrap();
        let mut from = 0;
        for &to in cuts.iter().chain([data.len()].iter()) {
            let mut buf = frames.buffer(to - from);
            buf.extend_from_slice(&data[from..to]);
            frames.push(buf).unwrap();
            from = to;
        }
        frames.finish().unwrap()
    }

    #[test]
    fn frames_are_independent_and_the_bytes_do_not_depend_on_threads() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7000) as u8)
            .collect();
        let cuts = [1_000_000, 1_000_001, 2_500_000];
        let (one, sizes) = frames_of(&data, &cuts, 1);
        let (three, sizes3) = frames_of(&data, &cuts, 3);
        assert!(one == three, "same bytes on 1 and 3 threads");
        assert_eq!(sizes, sizes3);
        assert_eq!(sizes.len(), 4);
        let mut at = 0usize;
        let mut from = 0usize;
        for (frame, to) in sizes.iter().zip(cuts.iter().chain([data.len()].iter())) {
            let bytes = &one[at..at + frame.c_size as usize];
            let back = zstd::bulk::decompress(bytes, 1 << 24).unwrap();
            assert!(back == data[from..*to], "frame decompresses alone");
            assert_eq!(frame.d_size as usize, to - from);
            at += frame.c_size as usize;
            from = *to;
        }
        assert_eq!(at, one.len());
        let whole = zstd::stream::decode_all(one.as_slice()).unwrap();
        assert!(whole == data, "the frames are one zstd stream");
    }
}
