//! Opening an archive for `unpack` and `list`: the file or standard input, the
//! decompressor thread, and a check of the first header.
//!
//! The check comes before anything else happens, so that a file that is not a tar
//! archive at all (a PNG, a zip, a text file) is one short fatal error and `unpack`
//! creates nothing, not even its `-C` directory; damage found after a good entry is
//! reported by the entry loop instead, naming the entry it follows.

use std::io::{self, Chain, Cursor, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::codec::{Compression, Decoder};
use crate::progress::Progress;

/// Bytes of a tar header block.
const BLOCK: usize = 512;
/// Bytes shown from a stream that is not a tar archive.
const SHOWN: usize = 16;

/// The decompressed tar stream, its first block already read and put back in front.
pub type TarStream = Chain<Cursor<Vec<u8>>, Decoder>;

/// An archive whose first header looked right.
pub struct Input {
    pub stream: TarStream,
    /// The archive as messages name it ("standard input" for `-`).
    pub label: String,
}

/// The archive as read, counted into the progress display (on the decompressor's
/// thread, which owns it).
struct Counted<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Opens `path` (`-`: standard input), starts the decompressor and checks the first
/// header. A stream that starts with a zero block is an empty archive; an empty
/// stream is no archive (GNU tar: "This does not look like a tar archive"), since
/// even an empty archive has its end blocks: whatever should have written it failed.
///
/// `progress` follows the archive's bytes as read (compressed), against the archive's
/// size when it is a file.
pub fn open(path: &Path, progress: &Progress) -> Result<Input> {
    let (reader, label) = open_reader(path, progress)?;
    start(reader, label, progress)
}

/// [`open`] for an archive already open as `reader` (library use), named `label` in
/// messages; its size is not known.
pub fn from_reader(
    reader: Box<dyn Read + Send>,
    label: String,
    progress: &Progress,
) -> Result<Input> {
    progress.set_unknown_total();
    start(reader, label, progress)
}

/// Starts the decompressor on `reader` and checks the first header.
fn start(reader: Box<dyn Read + Send>, label: String, progress: &Progress) -> Result<Input> {
    let reader: Box<dyn Read + Send> = Box::new(Counted {
        inner: reader,
        progress: progress.clone(),
    });
    let mut decoder = Decoder::start(reader).with_context(|| format!("reading {label}"))?;
    let first = read_block(&mut decoder).with_context(|| format!("reading {label}"))?;
    if !is_tar_block(&first) {
        let inside = match decoder.compression() {
            Compression::None => String::new(),
            c => format!("{} data, but ", c.name()),
        };
        let shown = hex(&first[..first.len().min(SHOWN)]);
        if first.is_empty() {
            bail!("{label}: {inside}not a tar archive (empty)");
        }
        if first.len() < BLOCK {
            bail!(
                "{label}: {inside}not a tar archive ({} bytes, less than one header: {shown})",
                first.len()
            );
        }
        bail!("{label}: {inside}not a tar archive (first bytes: {shown})");
    }
    Ok(Input {
        stream: Cursor::new(first).chain(decoder),
        label,
    })
}

fn open_reader(path: &Path, progress: &Progress) -> Result<(Box<dyn Read + Send>, String)> {
    if path.as_os_str() == "-" {
        progress.set_unknown_total();
        return Ok((Box::new(io::stdin()), "standard input".into()));
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // A pipe or a device has no size to go by.
    match file.metadata() {
        Ok(meta) if meta.is_file() => progress.set_known_total(meta.len()),
        _ => progress.set_unknown_total(),
    }
    Ok((Box::new(file), path.display().to_string()))
}

/// The first block of the stream, or less when the stream is shorter.
fn read_block(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(BLOCK);
    reader.take(BLOCK as u64).read_to_end(&mut block)?;
    Ok(block)
}

/// Whether `block` is a whole tar header block the tar reader accepts: all zeros
/// (the end of an empty archive), or a header whose checksum matches, by the rule the
/// `tar` crate reads with.
pub(super) fn is_tar_block(block: &[u8]) -> bool {
    if block.len() < BLOCK {
        return false;
    }
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    tar::Header::from_byte_slice(block).cksum().ok() == Some(sum)
}

fn hex(bytes: &[u8]) -> String {
    let words: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_and_zero_blocks_pass_and_anything_else_does_not() {
        let mut header = tar::Header::new_gnu();
        header.set_path("a").unwrap();
        header.set_size(0);
        header.set_cksum();
        assert!(is_tar_block(header.as_bytes()));
        assert!(is_tar_block(&[0; BLOCK]));
        let mut bad = header.as_bytes().to_vec();
        bad[0] = b'b';
        assert!(!is_tar_block(&bad));
        assert!(!is_tar_block(&header.as_bytes()[..300]));
        assert!(!is_tar_block(&[b'x'; BLOCK]));
    }
}
