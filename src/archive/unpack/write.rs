//! Copying one entry's data from the archive stream into an open file, in bounded
//! chunks: memory stays at one buffer however large the entry claims to be.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::header::{Layout, Meta};
use super::sparse;

/// Bytes copied per read: large enough that per-call overhead vanishes.
const BUFFER: usize = 256 << 10;

/// Why an entry's data could not be written. Which side failed matters: after a
/// stream error the archive cannot be read on, after a write error it can.
#[derive(Debug)]
pub enum DataError {
    /// Reading the archive failed (corrupt compressed stream, I/O error).
    Stream(io::Error),
    /// The archive ended this many bytes before the entry's data did.
    Truncated { missing: u64 },
    /// The entry's own structure is wrong (a bad sparse map).
    Malformed(String),
    /// Writing the file failed.
    Write(io::Error),
}

/// Reusable copy buffer.
pub struct Copier {
    buf: Vec<u8>,
}

impl Default for Copier {
    fn default() -> Copier {
        Copier {
            buf: vec![0; BUFFER],
        }
    }
}

impl Copier {
    /// Writes the file `meta` describes from the entry's data `src` into `file`.
    pub fn write_entry(
        &mut self,
        src: &mut impl Read,
        file: &mut File,
        meta: &Meta,
    ) -> Result<(), DataError> {
        match &meta.layout {
            Layout::Plain => self.copy(src, file, meta.size, false),
            Layout::GnuSparse => {
                self.copy(src, file, meta.size, true)?;
                file.set_len(meta.size).map_err(DataError::Write)
            }
            Layout::PaxSparse(layout) => {
                let (map, consumed) = match &layout.map {
                    Some(map) => (map.clone(), 0),
                    None => sparse::read_map(src, layout.stored)?,
                };
                sparse::check_map(&map, layout.real_size, layout.stored - consumed)?;
                for (offset, length) in map {
                    file.seek(SeekFrom::Start(offset))
                        .map_err(DataError::Write)?;
                    self.copy(src, file, length, false)?;
                }
                file.set_len(layout.real_size).map_err(DataError::Write)
            }
        }
    }

    /// Writes the file `meta` describes to `out` as one stream, holes as zeros: what
    /// `tar -O` writes.
    pub fn stream_entry(
        &mut self,
        src: &mut impl Read,
        out: &mut impl Write,
        meta: &Meta,
    ) -> Result<(), DataError> {
        let Layout::PaxSparse(layout) = &meta.layout else {
            // Old GNU sparse data comes from the `tar` crate with the holes filled in.
            return self.chunks(src, meta.size, |chunk| out.write_all(chunk));
        };
        let (map, consumed) = match &layout.map {
            Some(map) => (map.clone(), 0),
            None => sparse::read_map(src, layout.stored)?,
        };
        sparse::check_map(&map, layout.real_size, layout.stored - consumed)?;
        let mut at = 0;
        for (offset, length) in map {
            write_zeros(out, offset - at)?;
            self.chunks(src, length, |chunk| out.write_all(chunk))?;
            at = offset + length;
        }
        write_zeros(out, layout.real_size - at)
    }

    /// Copies exactly `len` bytes; with `holes`, chunks of zeros are skipped over
    /// instead of written, so an expanded sparse file is sparse again on disk.
    fn copy(
        &mut self,
        src: &mut impl Read,
        file: &mut File,
        len: u64,
        holes: bool,
    ) -> Result<(), DataError> {
        self.chunks(src, len, |chunk| {
            if holes && chunk.iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(chunk.len() as i64)).map(drop)
            } else {
                file.write_all(chunk)
            }
        })
    }

    /// Reads exactly `len` bytes of `src`, handing each chunk to `write`.
    fn chunks(
        &mut self,
        src: &mut impl Read,
        len: u64,
        mut write: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), DataError> {
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n = match src.read(&mut self.buf[..want]) {
                Ok(0) => return Err(DataError::Truncated { missing: left }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DataError::Stream(e)),
            };
            write(&self.buf[..n]).map_err(DataError::Write)?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// `len` zero bytes, for the holes of a sparse file written as a stream.
fn write_zeros(out: &mut impl Write, len: u64) -> Result<(), DataError> {
    io::copy(&mut io::repeat(0).take(len), out)
        .map(drop)
        .map_err(DataError::Write)
}
