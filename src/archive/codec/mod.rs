//! Compression stages: the compressor thread `pack` writes its tar stream into, and the
//! decompressor thread `unpack` and `list` read a tar stream from.
//!
//! Compression is the slowest stage of packing, so it runs on threads of its own, fed
//! 1 MiB chunks over a bounded channel: the walk and the readers never wait on it
//! except when the channel is full, and memory stays at a few chunks. zstd goes through
//! the zstd crate's multithreaded encoder (libzstd's own worker threads): measured on
//! this project's 2-core machine it keeps up with `zstd -T0`, which async-compression's
//! `ZstdEncoder` does not (its work runs inside `poll`, on one thread). gzip with worker
//! threads goes through [`parallel_gzip`] (pigz's scheme), xz with worker threads
//! through liblzma's multithreaded encoder, bzip2 with worker threads as concatenated
//! streams (as pbzip2 writes it); without workers, gzip, xz and bzip2 go through
//! async-compression on a single-threaded tokio runtime owned by the stage's thread.

mod chunk_pool;
mod parallel_gzip;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::pin::Pin;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use async_compression::Level;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::output::Output;

/// Size of the chunks passed between stages.
pub const CHUNK: usize = 1 << 20;
/// Chunks queued between two stages at most.
const QUEUE: usize = 4;

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl Compression {
    /// From an archive's file name: `.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`,
    /// `.tar.xz`/`.txz`, `.tar.bz2`/`.tbz2`/`.tbz`. `None` for anything else.
    pub fn from_name(name: &std::path::Path) -> Option<Compression> {
        let name = name.file_name()?.to_string_lossy().to_ascii_lowercase();
        let table = [
            (".tar", Compression::None),
            (".tar.gz", Compression::Gzip),
            (".tgz", Compression::Gzip),
            (".tar.zst", Compression::Zstd),
            (".tzst", Compression::Zstd),
            (".tar.xz", Compression::Xz),
            (".txz", Compression::Xz),
            (".tar.bz2", Compression::Bzip2),
            (".tbz2", Compression::Bzip2),
            (".tbz", Compression::Bzip2),
        ];
        table
            .iter()
            .find(|(ext, _)| name.ends_with(ext))
            .map(|&(_, c)| c)
    }

    /// From the first bytes of a stream (its magic number); anything unknown is taken
    /// as an uncompressed tar stream, which the tar reader then validates.
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// The level of the tool's default, which `--level` starts from: gzip 6, zstd 3,
    /// xz 6, bzip2 9. (For zstd, spate's own default setting is [`ZSTD_DEFAULT`].)
    pub fn default_level(self) -> i32 {
        match self {
            Compression::None => 0,
            Compression::Gzip | Compression::Xz => 6,
            Compression::Zstd => 3,
            Compression::Bzip2 => 9,
        }
    }

    /// Levels the format accepts.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::None => 0..=0,
            Compression::Gzip | Compression::Bzip2 => 1..=9,
            Compression::Xz => 0..=9,
            Compression::Zstd => 1..=22,
        }
    }
}

/// spate's zstd setting when no `--level` is given: zstd's level-2 search (the `fast`
/// strategy) with a hash table of 2^17 entries instead of 2^16, matches of at least 7
/// bytes instead of 6, and 8 MiB jobs for the worker threads instead of 2 MiB.
/// Measured on the benchmark's text tree (benches/pack.sh) it compresses a little better
/// than `zstd -3` with about a fifth less CPU; on binaries (a tar of /usr/lib) it is about
/// 4% larger than `-3`. Compression is what bounds `pack`, so this is the better default
/// for trees of text; `--level 3` gives zstd's own level 3.
pub const ZSTD_DEFAULT: ZstdSetting = ZstdSetting {
    level: 2,
    hash_log: 17,
    min_match: 7,
    job_size: 8 << 20,
};

/// The parameters of [`ZSTD_DEFAULT`] that differ from a plain level.
#[derive(Debug, Clone, Copy)]
pub struct ZstdSetting {
    pub level: i32,
    pub hash_log: u32,
    pub min_match: u32,
    /// Bytes each worker thread compresses at a time.
    pub job_size: u32,
}

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions {
    pub compression: Compression,
    /// `None`: the default setting (the tool's level; for zstd, [`ZSTD_DEFAULT`]).
    pub level: Option<i32>,
    /// Worker threads (0: compress on the stage's own thread).
    pub threads: u32,
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
}

impl Encoder {
    /// Starts the compressor writing to `out`. Write errors are the output's own
    /// (`File too large (os error 27)`), whichever thread met them; [`Encoder::finish`]
    /// names the output.
    pub fn start(options: EncodeOptions, out: Output) -> Result<Encoder> {
        let what = out.describe();
        if options.compression == Compression::Zstd && options.threads > 0 {
            let enc = zstd_encoder(options, out).with_context(|| format!("writing {what}"))?;
            return Ok(Encoder::Zstd(Box::new(enc)));
        }
        let body = move |chunks| compress(options, chunks, out);
        ThreadEncoder::spawn(what.clone(), body)
            .map(Encoder::Thread)
            .with_context(|| format!("writing {what}"))
    }

    /// Flushes what is left and returns the finished output.
    pub fn finish(self) -> Result<Output> {
        let (what, result) = match self {
            Encoder::Zstd(enc) => (enc.get_ref().describe(), enc.finish()),
            Encoder::Thread(enc) => (enc.what.clone(), enc.finish()),
        };
        result.with_context(|| format!("writing {what}"))
    }
}

impl Write for Encoder {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(enc) => enc.write(bytes),
            Encoder::Thread(enc) => enc.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Collects bytes into chunks and hands them to the compressor thread.
pub struct ThreadEncoder {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    /// Chunks the compressor is done with, to fill again: fresh 1 MiB allocations
    /// would cost a page fault and a page clear every 4 KiB.
    spent: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<Output>>>,
    /// The output, as messages name it.
    what: String,
}

impl ThreadEncoder {
    /// Starts a compressor thread running `body` on the chunks written. `body` owns
    /// the output: when it fails or panics, the output (and a temporary file) is
    /// dropped with it.
    fn spawn(
        what: String,
        body: impl FnOnce(Chunks) -> io::Result<Output> + Send + 'static,
    ) -> io::Result<ThreadEncoder> {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let (spent_tx, spent) = sync_channel::<Vec<u8>>(QUEUE + 2);
        let chunks = Chunks {
            rx,
            spent: spent_tx,
        };
        let thread = std::thread::Builder::new()
            .name("spate-compress".into())
            .spawn(move || body(chunks))
            .map_err(|e| io::Error::new(e.kind(), format!("starting the compressor: {e}")))?;
        Ok(ThreadEncoder {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            spent,
            thread: Some(thread),
            what,
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut next = self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let chunk = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    /// The compressor thread ended before its input did: the error that stopped it
    /// (the output's own, as `File too large (os error 27)`), which is the real
    /// cause of the failed write.
    fn stopped(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Ok(Ok(_))) => io::Error::other("the compressor ended before its input"),
            Some(Err(_)) => io::Error::other("the compressor thread panicked"),
            // Already joined: its error was returned by an earlier write.
            None => io::Error::other("the compressor had stopped"),
        }
    }

    /// Sends what is left, waits for the compressor and returns the finished output.
    fn finish(mut self) -> io::Result<Output> {
        self.send()?;
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the compressor thread panicked")),
            None => Err(io::Error::other("the compressor had stopped")),
        }
    }
}

/// An encoder dropped without [`ThreadEncoder::finish`] (the run failed) still waits for its
/// thread, so the output it owns is dropped — and a temporary file removed — before
/// the process exits.
impl Drop for ThreadEncoder {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for ThreadEncoder {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = bytes.len().min(room);
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The chunks a compressor thread receives; each goes back once it is consumed.
struct Chunks {
    rx: Receiver<Vec<u8>>,
    spent: SyncSender<Vec<u8>>,
}

impl Chunks {
    /// Calls `f` on every chunk, in order, and hands each back for reuse.
    fn each(self, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        for chunk in self.rx {
            f(&chunk)?;
            let _ = self.spent.try_send(chunk);
        }
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
            bzip2_streams(
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
        other => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("starting the compressor's runtime: {e}"))
                })?;
            let level = Level::Precise(options.level.unwrap_or(other.default_level()));
            runtime.block_on(async move {
                let out = SyncOut(out);
                match other {
                    Compression::Gzip => {
                        let enc =
                            async_compression::tokio::write::GzipEncoder::with_quality(out, level);
                        encode_async(enc, chunks).await
                    }
                    Compression::Xz => {
                        let enc =
                            async_compression::tokio::write::XzEncoder::with_quality(out, level);
                        encode_async(enc, chunks).await
                    }
                    _ => {
                        let enc =
                            async_compression::tokio::write::BzEncoder::with_quality(out, level);
                        encode_async(enc, chunks).await
                    }
                }
            })
        }
    }
}

/// bzip2 on several threads, as pbzip2 and lbzip2 write it: each chunk its own bzip2
/// stream, concatenated. bzip2's blocks are independent anyway (at most 900 kB), so
/// little is lost, and `bzip2 -d`, `tar -xj` and spate's own reader all read
/// concatenated streams.
fn bzip2_streams(chunks: Chunks, out: &mut Output, level: u32, threads: usize) -> io::Result<()> {
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

/// A zstd encoder with spate's settings: [`ZSTD_DEFAULT`] without a level, and
/// `options.threads` worker threads.
fn zstd_encoder(options: EncodeOptions, out: Output) -> io::Result<ZstdEncoder> {
    use zstd::stream::raw::CParameter;
    let setting = options.level.is_none().then_some(ZSTD_DEFAULT);
    let level = options.level.unwrap_or(ZSTD_DEFAULT.level);
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    let mut params = Vec::new();
    if let Some(default) = setting {
        params.push(CParameter::HashLog(default.hash_log));
        params.push(CParameter::MinMatch(default.min_match));
    }
    if options.threads > 0 {
        enc.multithread(options.threads)?;
        // Each job starts afresh instead of re-indexing the end of the one before it:
        // measured, that re-indexing costs a tenth of the CPU for 0.2% of size.
        params.push(CParameter::OverlapSizeLog(1));
        if let Some(default) = setting {
            // Fewer, larger jobs: each one clears its tables and starts with an empty
            // history, so 8 MiB jobs were both smaller and about 5% faster than the
            // 2 MiB ones level 2 picks.
            params.push(CParameter::JobSize(default.job_size));
        }
    }
    for param in params {
        enc.set_parameter(param)?;
    }
    Ok(enc)
}

type ZstdEncoder = zstd::stream::write::Encoder<'static, Output>;

/// The async-compression encoders share no trait for `into_inner`; this one covers them.
trait IntoInner: AsyncWrite + Unpin {
    fn into_out(self) -> Output;
}

macro_rules! into_inner {
    ($($t:ident),*) => {$(
        impl IntoInner for async_compression::tokio::write::$t<SyncOut> {
            fn into_out(self) -> Output {
                self.into_inner().0
            }
        }
    )*};
}
into_inner!(GzipEncoder, XzEncoder, BzEncoder);

async fn encode_async<E: IntoInner>(mut enc: E, chunks: Chunks) -> io::Result<Output> {
    // `recv()` blocks, which is fine: this runtime has no other task to run.
    for chunk in chunks.rx {
        enc.write_all(&chunk).await?;
        let _ = chunks.spent.try_send(chunk);
    }
    enc.shutdown().await?;
    Ok(enc.into_out())
}

/// A blocking [`Output`] as an `AsyncWrite`. Blocking in `poll_write` is right here:
/// the runtime belongs to the compressor thread and runs nothing else.
struct SyncOut(Output);

impl AsyncWrite for SyncOut {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.0.write(buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.flush())
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.flush())
    }
}

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
    let result = match compression {
        Compression::None => pump(input, &tx),
        Compression::Zstd => {
            zstd::stream::read::Decoder::with_buffer(input).and_then(|dec| pump(dec, &tx))
        }
        other => tokio::runtime::Builder::new_current_thread()
            .build()
            .and_then(|runtime| {
                let tx = &tx;
                runtime.block_on(async move {
                    let input = tokio::io::BufReader::with_capacity(CHUNK, SyncIn(input));
                    match other {
                        Compression::Gzip => {
                            let mut dec =
                                async_compression::tokio::bufread::GzipDecoder::new(input);
                            dec.multiple_members(true);
                            pump_async(dec, tx).await
                        }
                        Compression::Xz => {
                            let mut dec = async_compression::tokio::bufread::XzDecoder::new(input);
                            dec.multiple_members(true);
                            pump_async(dec, tx).await
                        }
                        _ => {
                            let mut dec = async_compression::tokio::bufread::BzDecoder::new(input);
                            dec.multiple_members(true);
                            pump_async(dec, tx).await
                        }
                    }
                })
            }),
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

async fn pump_async(
    mut reader: impl AsyncRead + Unpin,
    tx: &SyncSender<io::Result<Vec<u8>>>,
) -> io::Result<()> {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        let mut failed = None;
        while filled < CHUNK {
            match reader.read(&mut chunk[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if !send_chunk(chunk, filled, tx) {
            return Ok(());
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

/// A blocking reader as an `AsyncRead`; see [`SyncOut`] for why blocking is right here.
struct SyncIn<R>(R);

impl<R: Read + Unpin> AsyncRead for SyncIn<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = loop {
            match self.0.read(buf.initialize_unfilled()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Cleanup;
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

    #[test]
    fn a_truncated_stream_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        let out = Output::open(Some(&path), &Arc::new(Cleanup::default())).unwrap();
        let options = EncodeOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
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

    #[test]
    fn a_compressor_thread_that_panics_fails_the_write_and_finish() {
        let panicking = || ThreadEncoder::spawn("out".into(), |_| panic!("compressor")).unwrap();
        let mut enc = panicking();
        // More chunks than the queue holds: a send either fails or waits for the panic.
        let err = Write::write_all(&mut enc, &vec![0u8; (QUEUE + 2) * CHUNK]).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let mut enc = panicking();
        Write::write_all(&mut enc, b"less than a chunk").unwrap();
        let err = enc.finish().err().expect("finish fails");
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[test]
    fn a_failed_output_write_is_reported_as_the_os_error() {
        // What the compressor thread met, not "the compressor stopped".
        let efbig = || io::Error::from_raw_os_error(libc::EFBIG);
        let mut enc = ThreadEncoder::spawn("out".into(), move |chunks| {
            chunks.each(|_| Err(efbig()))?;
            unreachable!("the first chunk fails")
        })
        .unwrap();
        let err = Write::write_all(&mut enc, &vec![0u8; (QUEUE + 2) * CHUNK]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    }

    #[test]
    fn names_pick_the_format() {
        use std::path::Path;
        assert_eq!(
            Compression::from_name(Path::new("a.tar.zst")),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_name(Path::new("a.TGZ")),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_name(Path::new("a.tar")),
            Some(Compression::None)
        );
        assert_eq!(Compression::from_name(Path::new("a.zip")), None);
    }
}
