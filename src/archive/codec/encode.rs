//! The writing end of the compressor stage: [`Encoder`] picks, for each format and
//! number of worker threads, how the tar stream is compressed, and sets each codec up.
//!
//! zstd goes through the zstd crate's multithreaded encoder (libzstd's own worker
//! threads): measured on this project's 2-core machine it keeps up with `zstd -T0`, which
//! async-compression's `ZstdEncoder` does not (its work runs inside `poll`, on one
//! thread). The other formats run on the compressor thread of [`super::compressor`]:
//! gzip with worker threads through [`super::parallel_gzip`] (pigz's scheme), xz with
//! worker threads through liblzma's multithreaded encoder, bzip2 with worker threads as
//! concatenated streams ([`super::parallel_bzip2`], as pbzip2 writes it); without
//! workers, gzip, xz and bzip2 go through the sync flate2, liblzma and bzip2 encoders on
//! that thread (measured as fast as async-compression, which only wrapped them, #18).

use std::io::{self, Write};

use anyhow::{Context, Result};

use super::compressor::{Chunks, ThreadEncoder};
use super::format::Compression;
use super::{parallel_bzip2, parallel_gzip};
use crate::archive::index::{FRAME_TARGET, IndexedWriter, TocEntry};
use crate::output::Output;

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions {
    pub compression: Compression,
    /// `None`: the tool's own default level ([`Compression::default_level`]).
    pub level: Option<i32>,
    /// Worker threads (0: compress on the stage's own thread).
    pub threads: u32,
    /// zstd only: write an indexed archive (frames cut at member boundaries, a table
    /// of contents and a seek table, `archive::index`) instead of one plain stream.
    pub index: bool,
}

/// The writing end of a compressor stage. [`Encoder::finish`] returns the output,
/// complete, for the caller to commit.
pub enum Encoder {
    /// zstd with worker threads: libzstd's workers already compress off the writer's
    /// thread, so the writer hands its bytes straight to the encoder, which copies them
    /// once into the job being filled. (A compressor thread in between cost a copy and a
    /// hand-off per MiB, about 3% of pack's CPU.)
    Zstd(Box<ZstdEncoder>),
    /// Every other codec: compressed on a thread of its own.
    Thread(ThreadEncoder),
    /// An indexed `.tar.zst`: the writer tells it where members begin.
    Indexed(Box<IndexedWriter<Output>>),
}

impl Encoder {
    /// Starts the compressor writing to `out`. Write errors are the output's own
    /// (`File too large (os error 27)`), whichever thread met them; [`Encoder::finish`]
    /// names the output.
    pub fn start(options: EncodeOptions, out: Output) -> Result<Encoder> {
        let what = out.describe();
        if options.compression == Compression::Zstd && options.index {
            let level = options.level.unwrap_or(Compression::Zstd.default_level());
            // As zstd -T: frames compressed on `threads` threads; the job's 0 (from
            // `--threads 1`) is one thread of its own.
            let threads = (options.threads as usize).max(1);
            let enc = IndexedWriter::with_threads(out, level, FRAME_TARGET, threads)
                .with_context(|| format!("writing {what}"))?;
            return Ok(Encoder::Indexed(Box::new(enc)));
        }
        if options.compression == Compression::Zstd && options.threads > 0 {
            let enc = zstd_encoder(options, out).with_context(|| format!("writing {what}"))?;
            return Ok(Encoder::Zstd(Box::new(enc)));
        }
        let body = move |chunks| compress(options, chunks, out);
        ThreadEncoder::spawn(what.clone(), body)
            .map(Encoder::Thread)
            .with_context(|| format!("writing {what}"))
    }

    /// Records, in an indexed archive, a member whose first header byte is the next
    /// byte written; its index there, for [`Encoder::set_digest`].
    pub fn begin_member(&mut self, entry: impl FnOnce() -> TocEntry) -> io::Result<Option<usize>> {
        match self {
            Encoder::Indexed(enc) => enc.begin_member(entry()).map(Some),
            _ => Ok(None),
        }
    }

    /// The content digest of the member at `index` (from [`Encoder::begin_member`]).
    pub fn set_digest(&mut self, index: usize, digest: crate::archive::index::TocDigest) {
        if let Encoder::Indexed(enc) = self {
            enc.set_digest(index, digest);
        }
    }

    /// Every member is written; what follows is the end-of-archive blocks.
    pub fn end_of_members(&mut self) -> io::Result<()> {
        match self {
            Encoder::Indexed(enc) => enc.end_of_members(),
            _ => Ok(()),
        }
    }

    /// Flushes what is left and returns the finished output.
    pub fn finish(self) -> Result<Output> {
        let (what, result) = match self {
            Encoder::Zstd(enc) => (enc.get_ref().describe(), enc.finish()),
            Encoder::Thread(enc) => (enc.what.clone(), enc.finish()),
            Encoder::Indexed(enc) => {
                let what = enc.get_ref().describe();
                (what, enc.finish())
            }
        };
        result.with_context(|| format!("writing {what}"))
    }
}

impl Write for Encoder {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(enc) => enc.write(bytes),
            Encoder::Thread(enc) => enc.write(bytes),
            Encoder::Indexed(enc) => enc.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compressor thread: every chunk, compressed, into `out`. Errors are returned
/// as they came (the output's own OS error, unwrapped), for the writer to report.
fn compress(options: EncodeOptions, chunks: Chunks, out: Output) -> io::Result<Output> {
    match options.compression {
        Compression::None => {
            let mut out = out;
            chunks.each(|chunk| Write::write_all(&mut out, chunk))?;
            Ok(out)
        }
        Compression::Zstd => {
            let mut enc = zstd_encoder(options, out)?;
            chunks.each(|chunk| Write::write_all(&mut enc, chunk))?;
            enc.finish()
        }
        Compression::Xz if options.threads > 0 => {
            // liblzma's own multithreaded encoder, as `xz -T`: the stream is cut into
            // independent blocks (three dictionaries long) compressed on its threads.
            let level = options.level.unwrap_or(Compression::Xz.default_level());
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(options.threads)
                .preset(u32::try_from(level).unwrap_or(6))
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(io::Error::other)?;
            let mut enc = liblzma::write::XzEncoder::new_stream(out, stream);
            chunks.each(|chunk| Write::write_all(&mut enc, chunk))?;
            enc.finish()
        }
        Compression::Bzip2 if options.threads > 0 => {
            let mut out = out;
            let level = options.level.unwrap_or(Compression::Bzip2.default_level());
            parallel_bzip2::compress(
                chunks,
                &mut out,
                u32::try_from(level).unwrap_or(9),
                options.threads as usize,
            )?;
            Ok(out)
        }
        Compression::Gzip if options.threads > 0 => {
            let mut out = out;
            let level = options.level.unwrap_or(Compression::Gzip.default_level());
            parallel_gzip::compress(
                chunks.rx,
                &chunks.spent,
                &mut out,
                u32::try_from(level).unwrap_or(6),
                options.threads as usize,
            )?;
            Ok(out)
        }
        Compression::Gzip => {
            let level = options.level.unwrap_or(Compression::Gzip.default_level());
            let level = flate2::Compression::new(u32::try_from(level).unwrap_or(6));
            let mut enc = flate2::write::GzEncoder::new(out, level);
            chunks.each(|chunk| enc.write_all(chunk))?;
            enc.finish()
        }
        Compression::Xz => {
            let level = options.level.unwrap_or(Compression::Xz.default_level());
            let mut enc = liblzma::write::XzEncoder::new(out, u32::try_from(level).unwrap_or(6));
            chunks.each(|chunk| enc.write_all(chunk))?;
            enc.finish()
        }
        Compression::Bzip2 => {
            let level = options.level.unwrap_or(Compression::Bzip2.default_level());
            let level = bzip2::Compression::new(u32::try_from(level).unwrap_or(9));
            let mut enc = bzip2::write::BzEncoder::new(out, level);
            chunks.each(|chunk| enc.write_all(chunk))?;
            enc.finish()
        }
    }
}

/// A zstd encoder at `options.level` (default 3) with zstd's own parameters for that
/// level, and `options.threads` worker threads: what `zstd -T<threads> -<level>` does.
/// libzstd picks the job size and the overlap between jobs from the level, so the
/// archive is within a fraction of a percent of `tar | zstd -T0 -3` (benches/pack.sh).
fn zstd_encoder(options: EncodeOptions, out: Output) -> io::Result<ZstdEncoder> {
    let level = options.level.unwrap_or(Compression::Zstd.default_level());
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    if options.threads > 0 {
        enc.multithread(options.threads)?;
    }
    Ok(enc)
}

type ZstdEncoder = zstd::stream::write::Encoder<'static, Output>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::codec::{CHUNK, Decoder};
    use crate::output::Cleanup;
    use std::io::Read;
    use std::sync::Arc;

    #[test]
    fn every_format_round_trips_and_is_detected_by_magic() {
        let data: Vec<u8> = (0..3 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        for (compression, threads) in [
            (Compression::None, 2),
            (Compression::Gzip, 2),
            (Compression::Gzip, 0),
            (Compression::Zstd, 2),
            (Compression::Zstd, 0),
            (Compression::Zstd, 1),
            (Compression::Xz, 2),
            (Compression::Xz, 0),
            (Compression::Bzip2, 2),
            (Compression::Bzip2, 0),
        ] {
            let path = dir
                .path()
                .join(format!("x{threads}.{}", compression.name()));
            let out = Output::open(Some(&path), &Arc::new(Cleanup::default())).unwrap();
            let options = EncodeOptions {
                compression,
                level: None,
                threads,
                // The indexed archive is one zstd stream too: threads 1 stands for it.
                index: compression == Compression::Zstd && threads == 1,
            };
            let mut enc = Encoder::start(options, out).unwrap();
            Write::write_all(&mut enc, &data).unwrap();
            enc.finish().unwrap().commit().unwrap();

            let file = std::fs::File::open(&path).unwrap();
            let mut dec = Decoder::start(Box::new(file)).unwrap();
            let mut back = Vec::new();
            dec.read_to_end(&mut back).unwrap();
            let expected = if compression == Compression::None {
                Compression::None
            } else {
                compression
            };
            assert_eq!(dec.compression(), expected);
            assert!(back == data, "{compression:?} round trip");
        }
    }
}
