//! A large file on its way into `pack`'s tar stream: read by the same readers as every
//! other file, and handed to the tar writer in pieces while it is read, instead of
//! being held whole.
//!
//! The reader's sink ([`Streamer`]) sends each piece over a small bounded channel
//! ([`stream`]); the writer takes them from the other end ([`Incoming`], then [`Body`])
//! as it writes the member. A reader gets at most [`AHEAD`] bytes ahead of the writer
//! on one file, and at most [`OPEN`] files are streamed at once ([`Slots`]), so memory
//! stays bounded whatever the file sizes, while the next files are already being read
//! when the writer reaches them.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};

use crate::progress::Progress;

/// Files streamed at once: the one being written and those read ahead of it. Each one
/// read ahead holds up to [`AHEAD`] bytes in the channel and, blocked there, its
/// reader's read-ahead buffers from the pool (3 with io_uring; 4 × 3 of the pool's 36
/// at pack's defaults, so files read beside them always find a buffer).
pub const OPEN: usize = 4;

/// Bytes a reader may run ahead of the writer on one file.
const AHEAD: usize = 4 << 20;

/// Largest piece sent at once.
const PIECE: usize = 1 << 20;

/// Both ends of a new stream, for a file `size` bytes long (as the walk saw it) read in
/// `buffer_size` pieces. `slot` is the file's place among the [`OPEN`] ones: it is
/// given back when the writer is done with the stream.
pub fn stream(size: u64, buffer_size: usize, slot: Slot) -> (Outgoing, Incoming) {
    let piece = buffer_size.clamp(1, PIECE);
    let depth = (AHEAD / piece).max(2);
    let (tx, rx) = sync_channel(depth);
    // Emptied pieces go back to the reader to be filled again, sparing an allocation
    // (and its page faults) per piece.
    let (spare_tx, spare_rx) = sync_channel(depth + 2);
    let outgoing = Outgoing(Mutex::new(Some(Box::new(Streamer {
        out: Some(tx),
        spare: spare_rx,
        left: size,
        hasher: None,
    }))));
    let incoming = Incoming {
        pieces: rx,
        spare: spare_tx,
        _slot: slot,
    };
    (outgoing, incoming)
}

/// The reader's end, in the file's tag until the reader's sink takes it. Boxed: a
/// hasher is large, and every member's tag has room for one of these.
pub struct Outgoing(Mutex<Option<Box<Streamer>>>);

impl Outgoing {
    /// The sink, once; `digest` when the manifest wants the file's BLAKE3.
    pub fn take(&self, digest: bool) -> Option<Streamer> {
        let mut streamer = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        streamer.hasher = digest.then(blake3::Hasher::new);
        Some(*streamer)
    }

    /// Ends the stream without a byte: the file could not be read.
    pub fn close(&self) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// The sink of a streamed file: sends the first `left` bytes on to the writer (a file
/// that grew is cut at the size in its header, as GNU tar does, and reported by the
/// reader as changed), hashing every byte when asked.
pub struct Streamer {
    /// `None` once the writer has gone (the run is ending).
    out: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    left: u64,
    hasher: Option<blake3::Hasher>,
}

impl Streamer {
    /// Hashes `data` and sends what the header has room for, waiting while the writer
    /// is [`AHEAD`] bytes behind.
    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        let take = data
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.left -= take as u64;
        for piece in data[..take].chunks(PIECE) {
            let Some(out) = &self.out else { return };
            let mut buf = match self.spare.try_recv() {
                Ok(buf) => buf,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(PIECE),
            };
            buf.clear();
            buf.extend_from_slice(piece);
            if out.send(buf).is_err() {
                self.out = None;
            }
        }
    }

    /// The file's BLAKE3, when asked for. Dropping the streamer ends the stream.
    pub fn finish(self) -> Option<blake3::Hash> {
        self.hasher.map(|h| h.finalize())
    }
}

/// The writer's end of a stream.
pub struct Incoming {
    pieces: Receiver<Vec<u8>>,
    spare: SyncSender<Vec<u8>>,
    _slot: Slot,
}

impl Incoming {
    /// Waits for the file's first bytes: the member's body, `size` bytes long, or
    /// `None` when the stream ended without any (the file could not be opened, or was
    /// empty by the time it was read): then nothing is archived, as for a small file
    /// that could not be read.
    pub fn body(self, size: u64, progress: &Progress) -> Option<Body> {
        let first = self.pieces.recv().ok()?;
        Some(Body {
            incoming: self,
            piece: first,
            at: 0,
            left: size,
            received: 0,
            ended: false,
            progress: progress.clone(),
        })
    }
}

/// A member's body as the tar writer reads it: the pieces in order, then zeros up to
/// the size in the header if the stream ended early (the file shrank, or a read
/// failed), so the archive stays readable (GNU tar pads the same way).
pub struct Body {
    incoming: Incoming,
    piece: Vec<u8>,
    at: usize,
    left: u64,
    /// Bytes that came from the file.
    received: u64,
    ended: bool,
    progress: Progress,
}

impl Body {
    /// Bytes of the member that came from the file; the rest are zeros.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Moves to the next piece; false when the stream has ended.
    fn next_piece(&mut self) -> bool {
        match self.incoming.pieces.recv() {
            Ok(piece) => {
                let used = std::mem::replace(&mut self.piece, piece);
                // The reader may have all the spares it can hold: then this one goes.
                let _ = self.incoming.spare.try_send(used);
                self.at = 0;
                true
            }
            Err(_) => {
                self.ended = true;
                false
            }
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        while !self.ended && self.at == self.piece.len() {
            self.next_piece();
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = if self.ended {
            buf[..want].fill(0);
            want
        } else {
            let n = want.min(self.piece.len() - self.at);
            buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
            self.at += n;
            self.received += n as u64;
            n
        };
        self.left -= n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Places for the files streamed at once.
pub struct Slots {
    open: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    pub fn new() -> Arc<Self> {
        Arc::new(Slots {
            open: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// A place, if one is free now.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        (*open < OPEN).then(|| {
            *open += 1;
            Slot(Arc::clone(self))
        })
    }

    /// Waits for a place. One is always given back: by the writer when it has written
    /// a streamed member, or when the run ends and the stream is dropped unwritten.
    pub fn take(self: &Arc<Self>) -> Slot {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while *open >= OPEN {
            open = self.freed.wait(open).unwrap_or_else(|e| e.into_inner());
        }
        *open += 1;
        Slot(Arc::clone(self))
    }
}

/// A place among the [`OPEN`] streams, given back when dropped.
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.open.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// How much of a streamed file the archive holds.
pub(super) struct StreamEnd {
    /// False when not a byte came (the file could not be opened): no member.
    pub(super) archived: bool,
    /// Bytes from the file; zeros pad the member from there to its size.
    pub(super) received: u64,
}

/// The report for a streamed file the readers found changed (or could not read to the
/// end) after its member was written: what the member holds.
pub(super) fn archived_anyway(error: &dyn std::fmt::Display, size: u64, received: u64) -> String {
    if received < size {
        format!("{error}; archived {received} bytes of it, padded with zeros to {size}")
    } else {
        format!("{error}; archived {size} bytes of it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::ProgressMode;

    fn body_of(stream_out: impl FnOnce(Streamer), size: u64) -> Option<(Vec<u8>, u64)> {
        let (outgoing, incoming) = stream(size, 4, Slots::new().take());
        let streamer = outgoing.take(false).expect("first take");
        assert!(outgoing.take(false).is_none(), "taken once");
        let writer = std::thread::spawn(move || {
            let progress = Progress::new(ProgressMode::None);
            let mut body = incoming.body(size, &progress)?;
            let mut bytes = Vec::new();
            body.read_to_end(&mut bytes).unwrap();
            Some((bytes, body.received()))
        });
        stream_out(streamer);
        writer.join().unwrap()
    }

    #[test]
    fn a_body_is_the_file_cut_or_padded_to_the_size_in_its_header() {
        let whole = |s: Streamer| {
            let mut s = s;
            s.update(b"abcdefghij");
            s.update(b"klm");
            // Finishing consumes the streamer, which ends the stream.
            let _ = s.finish();
        };
        assert_eq!(body_of(whole, 13), Some((b"abcdefghijklm".to_vec(), 13)));
        // It grew: the header's 8 bytes.
        assert_eq!(body_of(whole, 8), Some((b"abcdefgh".to_vec(), 8)));
        // It shrank: zeros after what came.
        assert_eq!(
            body_of(whole, 16),
            Some((b"abcdefghijklm\0\0\0".to_vec(), 13))
        );
        // Nothing came: no member at all.
        assert_eq!(body_of(drop, 16), None);
    }

    #[test]
    fn slots_are_given_back_when_dropped() {
        let slots = Slots::new();
        let held: Vec<Slot> = (0..OPEN).map(|_| slots.take()).collect();
        assert!(slots.try_take().is_none());
        drop(held);
        assert!(slots.try_take().is_some());
    }
}
