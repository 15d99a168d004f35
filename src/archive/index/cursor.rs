//! The tar stream of an indexed archive read from any offset, decompressing only from
//! the start of the frame that holds the offset to where the reader stops: a frame is
//! read and decompressed a little at a time rather than whole, so that a member near
//! the start of a 4 MiB frame costs a few KiB of reading and decompressing, and memory
//! stays one frame's size whatever the member's size.
//!
//! zstd decompresses each frame straight into one buffer of the frame's size
//! (`StableOutBuffer`: no window of its own), backed by huge pages where the kernel
//! has them (`frame_buf.rs`), so the bytes are read from where they were decompressed
//! and a few MiB cost a few page faults, not hundreds. Its input is fed a little at a
//! time, so it still stops within a block of where the reader stops.
//!
//! A frame read to its end is checked before its last bytes are handed on: zstd checks
//! the frame's own checksum (the XXH64 in its trailer), this checks that it is the one
//! the seek table gives (or hashes the frame itself when it carries none), and that the
//! frame holds exactly the bytes the table says. A frame left before its end cannot be
//! checked: whoever stops early checks what it used another way (`extract.rs`: the
//! member's header against the table of contents, its data against the table's
//! BLAKE3).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use xxhash_rust::xxh64::Xxh64;
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use super::Frame;
use super::frame_buf::FrameBuf;

/// Compressed bytes read from the file at a time: small, since a member near a frame's
/// start needs only the first few KiB, and large enough that a whole frame takes few
/// reads.
const READ_CHUNK: usize = 128 << 10;
/// Compressed bytes handed to zstd at a time: zstd decompresses a block (at most
/// 128 KiB) once it has all of it, so a small feed stops it close to where the reader
/// stops.
const FEED: usize = 16 << 10;
/// Room past the frame's size in its buffer: a frame that decompresses to more than
/// the seek table says shows it by one more block, which must fit to be noticed as
/// such (zstd would otherwise stop with an error of its own).
const SLACK: usize = (128 << 10) + 64;
/// A zstd frame's header: magic (4 bytes), then the descriptor byte, whose bit 2 says
/// the frame ends with a checksum of its content (the low 32 bits of its XXH64).
const DESCRIPTOR_AT: usize = 4;
const CHECKSUM_FLAG: u8 = 1 << 2;
/// Largest window a frame may ask for: spate's frames hold at most 8 MiB, and a table
/// may list frames of up to 64 MiB (`read.rs`); a hostile frame must not make the
/// decoder allocate more.
const WINDOW_LOG_MAX: u32 = 26;

/// The tar stream from any offset on; see the module's documentation.
pub struct Cursor {
    file: Arc<File>,
    frames: Vec<Frame>,
    decoder: Decoder<'static>,
    /// The frame being decompressed; `None` before the first read.
    frame: Option<usize>,
    /// Compressed bytes of the frame, `packed[packed_at..packed_len]` not yet decoded.
    packed: Vec<u8>,
    packed_at: usize,
    packed_len: usize,
    /// Compressed bytes of the frame read from the file so far.
    read: u64,
    /// The frame's bytes from its start; those not yet handed on: `out[out_at..out_len]`.
    out: FrameBuf,
    out_at: usize,
    out_len: usize,
    /// Decompressed bytes of the frame so far.
    produced: u64,
    /// The frame has been decompressed to its end and checked.
    done: bool,
    /// spate's own XXH64 of the frame, for a frame without a checksum of its own.
    hasher: Option<Xxh64>,
}

impl Cursor {
    /// A cursor at the start of the tar stream the `frames` of `file` hold.
    pub fn new(file: Arc<File>, frames: Vec<Frame>) -> io::Result<Cursor> {
        let mut decoder = Decoder::new()?;
        decoder.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(WINDOW_LOG_MAX))?;
        decoder.set_parameter(zstd::stream::raw::DParameter::StableOutBuffer(true))?;
        Ok(Cursor {
            file,
            frames,
            decoder,
            frame: None,
            packed: Vec::new(),
            packed_at: 0,
            packed_len: 0,
            read: 0,
            out: FrameBuf::new(),
            out_at: 0,
            out_len: 0,
            produced: 0,
            done: false,
            hasher: None,
        })
    }

    /// Offset in the tar stream of the next byte [`Cursor::read`] returns.
    pub fn pos(&self) -> u64 {
        match self.frame {
            Some(i) => {
                self.frames[i].d_offset + self.produced - (self.out_len - self.out_at) as u64
            }
            None => 0,
        }
    }

    /// Moves to `target`: forward within the frame by decompressing up to it, anywhere
    /// else by starting afresh at the frame that holds it. The frames passed over are
    /// not read, hence not checked. At or past the stream's end, reads return 0.
    pub fn seek(&mut self, target: u64) -> io::Result<()> {
        let Some(i) = self.frame_at(target) else {
            self.skip_frames_to_end();
            return Ok(());
        };
        if self.frame != Some(i) || target < self.pos() {
            self.start(i)?;
        }
        self.discard_to(target)
    }

    /// Reads on (checking every frame it finishes) to `target`, which must not be
    /// behind the cursor.
    pub fn read_through(&mut self, target: u64) -> io::Result<()> {
        while self.pos() < target {
            if self.out_at == self.out_len && !self.next()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar stream ends early",
                ));
            }
            let n = (self.out_len - self.out_at)
                .min(usize::try_from(target - self.pos()).unwrap_or(usize::MAX));
            self.out_at += n;
        }
        Ok(())
    }

    /// Reads the current frame to its end, which checks it.
    pub fn finish_frame(&mut self) -> io::Result<()> {
        while self.frame.is_some() && !self.done {
            self.out_at = self.out_len;
            self.fill()?;
        }
        self.out_at = self.out_len;
        Ok(())
    }

    /// The frame holding byte `pos` of the tar stream.
    fn frame_at(&self, pos: u64) -> Option<usize> {
        let i = self
            .frames
            .partition_point(|f| f.d_offset + u64::from(f.d_size) <= pos);
        (i < self.frames.len()).then_some(i)
    }

    /// Past the last frame: nothing more to read.
    fn skip_frames_to_end(&mut self) {
        let Some(last) = self.frames.last() else {
            return;
        };
        self.frame = Some(self.frames.len() - 1);
        self.produced = u64::from(last.d_size);
        self.out_at = 0;
        self.out_len = 0;
        self.done = true;
    }

    /// Discards bytes of the current frame up to `target`, which lies in it.
    fn discard_to(&mut self, target: u64) -> io::Result<()> {
        while self.pos() < target {
            if self.out_at == self.out_len {
                if self.done {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the tar stream ends early",
                    ));
                }
                self.fill()?;
                continue;
            }
            let left = usize::try_from(target - self.pos()).unwrap_or(usize::MAX);
            self.out_at += (self.out_len - self.out_at).min(left);
        }
        Ok(())
    }

    /// Starts decompressing frame `i` from its first byte.
    fn start(&mut self, i: usize) -> io::Result<()> {
        self.decoder.reinit()?;
        self.out.reserve(out_cap(&self.frames[i]))?;
        self.frame = Some(i);
        self.packed_at = 0;
        self.packed_len = 0;
        self.read = 0;
        self.out_at = 0;
        self.out_len = 0;
        self.produced = 0;
        self.done = false;
        self.hasher = None;
        Ok(())
    }

    /// More bytes in `out` (which must be empty), from the current frame or the next;
    /// `false` at the end of the stream.
    fn next(&mut self) -> io::Result<bool> {
        loop {
            match self.frame {
                None => {
                    if self.frames.is_empty() {
                        return Ok(false);
                    }
                    self.start(0)?;
                }
                Some(i) if self.done => {
                    if i + 1 >= self.frames.len() {
                        return Ok(false);
                    }
                    self.start(i + 1)?;
                }
                Some(_) => {
                    self.fill()?;
                    if self.out_len > self.out_at {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Decompresses the next bytes of the current frame into `out` (which must be
    /// empty). When they are the frame's last, the frame is finished and checked first.
    fn fill(&mut self) -> io::Result<()> {
        let i = self.frame.expect("a frame was started");
        let frame = self.frames[i];
        // zstd's output buffer: the same for the whole frame, as StableOutBuffer asks.
        let cap = out_cap(&frame);
        loop {
            self.refill(&frame)?;
            let before = self.out_len;
            let end = self.packed_len.min(self.packed_at + FEED);
            let mut input = InBuffer {
                src: &self.packed[..end],
                pos: self.packed_at,
            };
            let mut output = OutBuffer::around_pos(&mut self.out.as_mut_slice()[..cap], before);
            let hint = self
                .decoder
                .run(&mut input, &mut output)
                .map_err(|e| damaged(&frame, &format!("does not decompress: {e}")))?;
            let now = output.pos();
            let n = now - before;
            self.packed_at = input.pos;
            self.produced += n as u64;
            if self.produced > u64::from(frame.d_size) {
                return Err(wrong_size(&frame));
            }
            if let Some(hasher) = &mut self.hasher {
                hasher.update(&self.out.as_slice()[before..now]);
            }
            self.out_len = now;
            if hint == 0 {
                return self.finished(&frame);
            }
            if self.produced == u64::from(frame.d_size) {
                return self.finish_trailer(&frame);
            }
            if n > 0 {
                return Ok(());
            }
            if self.packed_at == self.packed_len && self.read == u64::from(frame.c_size) {
                return Err(damaged(&frame, "is cut short"));
            }
        }
    }

    /// Reads the next compressed bytes of the frame when all read so far are decoded.
    /// The last read takes the frame's last four bytes (its checksum) whole.
    fn refill(&mut self, frame: &Frame) -> io::Result<()> {
        let left = u64::from(frame.c_size) - self.read;
        if self.packed_at < self.packed_len || left == 0 {
            return Ok(());
        }
        let mut len = usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK);
        if left - (len as u64) < 4 {
            len = left as usize;
        }
        if self.packed.len() < len {
            self.packed.resize(len, 0);
        }
        self.file
            .read_exact_at(&mut self.packed[..len], frame.c_offset + self.read)
            .map_err(|e| {
                let cause = crate::error::describe_io(&e);
                damaged(frame, &format!("cannot be read: {cause}"))
            })?;
        if self.read == 0 {
            let flags = self.packed.get(DESCRIPTOR_AT).copied().unwrap_or(0);
            if flags & CHECKSUM_FLAG == 0 {
                self.hasher = Some(Xxh64::new(0));
            }
        }
        self.read += len as u64;
        self.packed_at = 0;
        self.packed_len = len;
        Ok(())
    }

    /// Every byte of the frame is out: lets zstd read the rest (its checksum), which
    /// must produce nothing more.
    fn finish_trailer(&mut self, frame: &Frame) -> io::Result<()> {
        let cap = out_cap(frame);
        loop {
            self.refill(frame)?;
            let mut input = InBuffer {
                src: &self.packed[..self.packed_len],
                pos: self.packed_at,
            };
            let mut output =
                OutBuffer::around_pos(&mut self.out.as_mut_slice()[..cap], self.out_len);
            let hint = self
                .decoder
                .run(&mut input, &mut output)
                .map_err(|e| damaged(frame, &format!("does not decompress: {e}")))?;
            self.packed_at = input.pos;
            if output.pos() > self.out_len {
                return Err(wrong_size(frame));
            }
            if hint == 0 {
                return self.finished(frame);
            }
            if self.packed_at == self.packed_len && self.read == u64::from(frame.c_size) {
                return Err(damaged(frame, "is cut short"));
            }
        }
    }

    /// zstd says the frame ended (and, when it carries one, that its checksum
    /// matched): it must end where the seek table says, with the table's size and
    /// checksum.
    fn finished(&mut self, frame: &Frame) -> io::Result<()> {
        if self.produced != u64::from(frame.d_size) {
            return Err(wrong_size(frame));
        }
        if self.packed_at != self.packed_len || self.read != u64::from(frame.c_size) {
            return Err(damaged(frame, "ends before the seek table says"));
        }
        let sum = match self.hasher.take() {
            Some(hasher) => hasher.digest() as u32,
            // The last read holds the trailer whole (see `refill`).
            None => match self.packed[..self.packed_len].last_chunk::<4>() {
                Some(tail) => u32::from_le_bytes(*tail),
                None => return Err(damaged(frame, "is cut short")),
            },
        };
        if sum != frame.checksum {
            return Err(damaged(frame, "fails its checksum"));
        }
        self.done = true;
        Ok(())
    }
}

impl io::Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_at == self.out_len && !self.next()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out_len - self.out_at);
        buf[..n].copy_from_slice(&self.out.as_slice()[self.out_at..self.out_at + n]);
        self.out_at += n;
        Ok(n)
    }
}

/// The part of the buffer zstd decompresses a frame into: the frame and [`SLACK`].
fn out_cap(frame: &Frame) -> usize {
    frame.d_size as usize + SLACK
}

fn damaged(frame: &Frame, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the frame at byte {} {what}", frame.c_offset),
    )
}

fn wrong_size(frame: &Frame) -> io::Error {
    damaged(frame, "decompresses to another size than the index says")
}
