//! A large file streamed into `pack`'s tar stream by the writer itself, in pieces,
//! instead of being held whole.

use std::fs::File;
use std::io::{self, Read};

use super::codec::CHUNK;
use crate::progress::Progress;
use crate::read::ReadError;

/// Reads exactly `left` bytes of a file for its tar entry: zeros after an early end
/// (noting the error), nothing past the size in the header.
pub(super) struct Tracked {
    pub(super) file: File,
    pub(super) left: u64,
    pub(super) read: u64,
    pub(super) error: Option<ReadError>,
    pub(super) hasher: Option<blake3::Hasher>,
    pub(super) progress: Progress,
}

impl Read for Tracked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(CHUNK).min(self.left as usize);
        let n = if self.error.is_some() {
            0
        } else {
            loop {
                match self.file.read(&mut buf[..want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.error = Some(ReadError::io("reading", e));
                        break 0;
                    }
                }
            }
        };
        let n = if n == 0 {
            if self.error.is_none() {
                self.error = Some(ReadError::Changed(format!(
                    "shrank to {} bytes; padded with zeros",
                    self.read
                )));
            }
            buf[..want].fill(0);
            want
        } else {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
            self.read += n as u64;
            n
        };
        self.left -= n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
