//! The reading end of the decompressor stage: [`Decoder`] detects the format from the
//! stream's first bytes and decompresses it on a thread of its own, which hands the tar
//! reader 1 MiB chunks over a bounded channel, then either nothing more (the end of the
//! stream) or one error.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::format::Compression;
use super::{CHUNK, QUEUE};

/// The reading end of a decompressor stage: the decompressed stream, as `Read`.
pub struct Decoder {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
    compression: Compression,
    /// Joined when the channel closes: a thread that panicked closes it too, and that
    /// must not read as the end of the archive.
    thread: Option<JoinHandle<()>>,
}

impl Decoder {
    /// Starts a thread that detects the compression of `input` from its first bytes and
    /// decompresses it. Gzip streams of several members (as `cat a.gz b.gz` makes) are
    /// read whole, as gzip does.
    pub fn start(input: Box<dyn Read + Send>) -> Result<Decoder> {
        let mut input = BufReader::with_capacity(CHUNK, input);
        let head = loop {
            match input.fill_buf() {
                Ok(head) => break head,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading the archive"),
            }
        };
        let compression = Compression::from_magic(head);
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("spate-decompress".into())
            .spawn(move || decompress(compression, input, tx))
            .context("starting the decompressor thread")?;
        Ok(Decoder {
            rx,
            chunk: Vec::new(),
            pos: 0,
            done: false,
            compression,
            thread: Some(thread),
        })
    }

    /// The channel closed: a clean end of the stream only if the thread returned.
    fn ended(&mut self) -> io::Result<usize> {
        self.done = true;
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(io::Error::other(format!(
                "{} stream: the decompressor thread panicked",
                self.compression.name()
            ))),
            _ => Ok(0),
        }
    }

    /// The compression found in the stream's magic bytes.
    pub fn compression(&self) -> Compression {
        self.compression
    }
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => return self.ended(),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The decompressor thread: sends the decompressed stream in chunks, then either
/// nothing more (end of stream) or one error.
fn decompress(
    compression: Compression,
    input: BufReader<Box<dyn Read + Send>>,
    tx: SyncSender<io::Result<Vec<u8>>>,
) {
    // Each codec's own multi-stream bufread decoder, on this thread: gzip members
    // (`cat a.gz b.gz`), xz streams and bzip2 streams (pbzip2's output) are read one
    // after another until the input ends, as gzip, xz and bzip2 do.
    let result = match compression {
        Compression::None => pump(input, &tx),
        Compression::Zstd => {
            zstd::stream::read::Decoder::with_buffer(input).and_then(|dec| pump(dec, &tx))
        }
        Compression::Gzip => pump(flate2::bufread::MultiGzDecoder::new(input), &tx),
        Compression::Xz => pump(liblzma::bufread::XzDecoder::new_multi_decoder(input), &tx),
        Compression::Bzip2 => pump(bzip2::bufread::MultiBzDecoder::new(input), &tx),
    };
    if let Err(e) = result {
        let what = format!("{} stream: {e}", compression.name());
        let _ = tx.send(Err(io::Error::new(e.kind(), what)));
    }
}

/// Sends everything `reader` yields in chunks. What was read before an error is sent
/// first, so the tar reader gets every good byte and names the entry the damage is in.
fn pump(mut reader: impl Read, tx: &SyncSender<io::Result<Vec<u8>>>) -> io::Result<()> {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        let mut failed = None;
        while filled < CHUNK {
            match reader.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if !send_chunk(chunk, filled, tx) {
            return Ok(()); // the reader stopped early
        }
        match failed {
            Some(e) => return Err(e),
            None if filled < CHUNK => return Ok(()),
            None => {}
        }
    }
}

/// Sends the first `filled` bytes of `chunk`, if any; false when nobody listens.
fn send_chunk(mut chunk: Vec<u8>, filled: usize, tx: &SyncSender<io::Result<Vec<u8>>>) -> bool {
    if filled == 0 {
        return true;
    }
    chunk.truncate(filled);
    tx.send(Ok(chunk)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::codec::{EncodeOptions, Encoder};
    use crate::output::{Cleanup, Output};
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn a_truncated_stream_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        let out = Output::open(Some(&path), &Arc::new(Cleanup::default())).unwrap();
        let options = EncodeOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
            index: false,
        };
        let mut enc = Encoder::start(options, out).unwrap();
        Write::write_all(&mut enc, &vec![7u8; 100_000]).unwrap();
        enc.finish().unwrap().commit().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() / 2);
        let mut dec = Decoder::start(Box::new(io::Cursor::new(bytes))).unwrap();
        let err = dec.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
    }

    /// Yields `first`, then panics: a decompressor thread that dies mid-stream.
    struct PanicsAfter(Option<Vec<u8>>);

    impl Read for PanicsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let first = self.0.take().expect("a reader that fails this way");
            buf[..first.len()].copy_from_slice(&first);
            Ok(first.len())
        }
    }

    #[test]
    fn a_decompressor_thread_that_panics_is_an_error_not_the_end() {
        let mut dec = Decoder::start(Box::new(PanicsAfter(Some(vec![b'x'; 600])))).unwrap();
        let mut back = Vec::new();
        let err = dec.read_to_end(&mut back).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }
}
