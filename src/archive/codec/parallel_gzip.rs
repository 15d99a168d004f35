//! gzip on several threads, the way pigz does it.
//!
//! The stream arrives in chunks; each is compressed as raw deflate on a pool thread,
//! primed with the last 32 KiB of the chunk before it (deflate's whole window, so
//! matches reach across the cut as in a one-thread stream) and ended with a sync flush,
//! which leaves it byte-aligned. One gzip header, the chunks' deflate data in order, a
//! final empty block and one trailer (the CRC-32 of everything, combined from each
//! chunk's, and the length) make a single ordinary gzip member: `gzip -d`, `zcat` and
//! `tar -xz` read it as they read gzip's own, and readers that stop after the first
//! member of a multi-member file (several libraries do) see all of it.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes of history deflate can refer back to, and so the priming each chunk gets.
const DICTIONARY: usize = 32 << 10;

/// The gzip header: magic, deflate, no flags, no mtime (the archive's own mtimes are in
/// the tar headers; a fixed header keeps the output reproducible), no extra flags, Unix.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// Compresses every chunk from `chunks` at `level` on `threads` pool threads, in
/// order, into `out`. Chunks go back through `spent` once compressed.
pub fn compress<W: Write>(
    chunks: Receiver<Vec<u8>>,
    spent: &SyncSender<Vec<u8>>,
    out: &mut W,
    level: u32,
    threads: usize,
) -> io::Result<()> {
    out.write_all(&HEADER)?;
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    super::chunk_pool::in_order(
        chunks,
        Some(spent),
        out,
        super::chunk_pool::Pool {
            threads,
            name: "spate-gzip",
            prime: DICTIONARY,
        },
        move |chunk, primed| Ok((deflate(chunk, primed, level)?, crc32fast::hash(chunk))),
        |chunk_len, chunk_crc| {
            let chunk_len = chunk_len as u64;
            crc.combine(&crc32fast::Hasher::new_with_initial_len(
                chunk_crc, chunk_len,
            ));
            len += chunk_len;
        },
    )?;
    out.write_all(&final_block()?)?;
    out.write_all(&crc.finalize().to_le_bytes())?;
    // ISIZE: the length modulo 2^32, as gzip defines it.
    out.write_all(&(len as u32).to_le_bytes())?;
    Ok(())
}

/// `chunk` as raw deflate blocks, primed with `dictionary`, ending in a sync flush.
fn deflate(chunk: &[u8], dictionary: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut deflater = Compress::new(Compression::new(level), false);
    if !dictionary.is_empty() {
        deflater
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(chunk.len() / 2 + 1024);
    loop {
        let consumed = deflater.total_in() as usize;
        deflater
            .compress_vec(&chunk[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // The flush is complete once deflate stops short of the space it was given.
        if deflater.total_in() as usize == chunk.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 << 10));
    }
}

/// An empty final deflate block, closing the stream after the last sync flush.
fn final_block() -> io::Result<Vec<u8>> {
    let mut deflater = Compress::new(Compression::new(1), false);
    let mut out = Vec::with_capacity(64);
    match deflater.compress_vec(&[], &mut out, FlushCompress::Finish) {
        Ok(Status::StreamEnd) => Ok(out),
        Ok(status) => Err(io::Error::other(format!(
            "closing the gzip stream: {status:?}"
        ))),
        Err(e) => Err(io::Error::other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::mpsc::sync_channel;

    /// Compresses `data` cut into chunks of `chunk` bytes on `threads` threads.
    fn gzip(data: &[u8], chunk: usize, threads: usize) -> Vec<u8> {
        let (tx, rx) = sync_channel(data.len() / chunk + 1);
        for piece in data.chunks(chunk) {
            tx.send(piece.to_vec()).unwrap();
        }
        drop(tx);
        let (spent, _returned) = sync_channel(1);
        let mut out = Vec::new();
        compress(rx, &spent, &mut out, 6, threads).unwrap();
        out
    }

    fn text(len: usize) -> Vec<u8> {
        let words = ["spate ", "hashes ", "packs ", "and ", "benches ", "trees\n"];
        let mut out = Vec::with_capacity(len + 16);
        let mut x = 7u64;
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn one_member_that_a_single_member_reader_decodes_whole() {
        for len in [0, 1, DICTIONARY - 1, 3 * 100_000 + 17] {
            let data = text(len);
            let packed = gzip(&data, 100_000, 3);
            // flate2's GzDecoder stops after the first member.
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{len} bytes");
        }
    }

    #[test]
    fn priming_keeps_the_size_of_a_one_thread_stream() {
        let data = text(4 << 20);
        let parallel = gzip(&data, 48 << 10, 2).len();
        let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        one.write_all(&data).unwrap();
        let one = one.finish().unwrap().len();
        // A chunk cut without priming loses its window; with it, only flush bytes.
        assert!(
            (parallel as f64) < one as f64 * 1.01,
            "parallel {parallel} bytes, one thread {one}"
        );
    }

    #[test]
    fn gzip_itself_accepts_the_stream() {
        let data = text(2 << 20);
        let packed = gzip(&data, 300_000, 2);
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip is installed (.ci/run installs it)");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&packed));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == data);
    }
}
