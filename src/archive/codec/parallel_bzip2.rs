//! bzip2 on several threads, as pbzip2 and lbzip2 write it: each piece of the stream
//! its own bzip2 stream, concatenated. bzip2's blocks are independent anyway (at most
//! 900 kB), so little is lost, and `bzip2 -d`, `tar -xj` and spate's own reader all read
//! concatenated streams. The pieces are compressed on the pool of [`super::chunk_pool`].

use std::io::{self, Write};

use super::chunk_pool;
use super::compressor::Chunks;
use crate::output::Output;

/// Compresses every chunk of `chunks` at `level` on `threads` pool threads, in order,
/// into `out`.
pub(super) fn compress(
    chunks: Chunks,
    out: &mut Output,
    level: u32,
    threads: usize,
) -> io::Result<()> {
    // Streams of whole blocks: a 1 MiB chunk would end in a 150 kB block, and such
    // short blocks made the archive 2.4% larger than one stream; four full blocks per
    // stream keep it within a few hundredths of a percent.
    let pieces = pieces(chunks, 4 * level.clamp(1, 9) as usize * 100_000);
    let one = move |data: &[u8]| -> io::Result<Vec<u8>> {
        let mut enc = bzip2::write::BzEncoder::new(
            Vec::with_capacity(data.len() / 3),
            bzip2::Compression::new(level),
        );
        enc.write_all(data)?;
        enc.finish()
    };
    let mut any = false;
    chunk_pool::in_order(
        pieces,
        None,
        out,
        chunk_pool::Pool {
            threads,
            name: "spate-bzip2",
            prime: 0,
        },
        move |chunk, _| Ok((one(chunk)?, ())),
        |_, ()| any = true,
    )?;
    if !any {
        // An empty input is still one (empty) stream, not an empty file.
        Write::write_all(out, &one(&[])?)?;
    }
    Ok(())
}

/// The same bytes as `chunks`, cut into pieces of `size` bytes (the last may be
/// shorter); each chunk goes back to its sender once copied.
fn pieces(chunks: Chunks, size: usize) -> impl Iterator<Item = Vec<u8>> {
    let Chunks { rx, spent } = chunks;
    let mut rx = rx.into_iter();
    let (mut chunk, mut at) = (Vec::new(), 0);
    std::iter::from_fn(move || {
        let mut piece = Vec::with_capacity(size);
        while piece.len() < size {
            if at == chunk.len() {
                let Some(next) = rx.next() else { break };
                let used = std::mem::replace(&mut chunk, next);
                if used.capacity() > 0 {
                    let _ = spent.try_send(used);
                }
                at = 0;
                continue;
            }
            let n = (chunk.len() - at).min(size - piece.len());
            piece.extend_from_slice(&chunk[at..at + n]);
            at += n;
        }
        (!piece.is_empty()).then_some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::codec::{Compression, Decoder, EncodeOptions, Encoder};
    use crate::output::Cleanup;
    use std::io::Read;
    use std::sync::Arc;

    #[test]
    fn bzip2_on_threads_is_concatenated_streams_that_bzip2_and_spate_read() {
        // Level 1: 100 kB blocks, so 2 MB become five streams of 400 kB.
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bz2");
        let out = Output::open(Some(&path), &Arc::new(Cleanup::default())).unwrap();
        let options = EncodeOptions {
            compression: Compression::Bzip2,
            level: Some(1),
            threads: 2,
            index: false,
        };
        let mut enc = Encoder::start(options, out).unwrap();
        Write::write_all(&mut enc, &data).unwrap();
        enc.finish().unwrap().commit().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let streams = bytes.windows(4).filter(|w| w == b"BZh1").count();
        assert!(streams >= 5, "{streams} streams");

        let mut back = Vec::new();
        let file = std::fs::File::open(&path).unwrap();
        Decoder::start(Box::new(file))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "spate's reader");
        let peer = std::process::Command::new("bzip2")
            .arg("-dc")
            .arg(&path)
            .output()
            .expect("bzip2 is installed (.ci/run installs it)");
        assert!(peer.status.success() && peer.stdout == data, "bzip2 -dc");
    }
}
