//! Compression stages: the compressor thread `pack` writes its tar stream into, and the
//! decompressor thread `unpack` and `list` read a tar stream from.
//!
//! Compression is the slowest stage of packing, so it runs on threads of its own, fed
//! 1 MiB chunks over a bounded channel: the walk and the readers never wait on it
//! except when the channel is full, and memory stays at a few chunks.
//!
//! - `format.rs`: the formats, named by extension or detected by magic number, and
//!   their levels;
//! - `encode.rs`: [`Encoder`], which picks how each format is compressed;
//! - `compressor.rs`: the compressor thread and the chunks it is fed;
//! - `parallel_gzip.rs` and `parallel_bzip2.rs`: gzip and bzip2 on several threads, on
//!   the pool of `chunk_pool.rs`;
//! - `zstd_frames.rs`: independent zstd frames on that pool, cut where the writer says
//!   (the indexed `.tar.zst`'s data frames);
//! - `decode.rs`: [`Decoder`], the decompressor thread.

mod chunk_pool;
mod compressor;
mod decode;
mod encode;
mod format;
mod parallel_bzip2;
mod parallel_gzip;
mod zstd_frames;

pub use decode::Decoder;
pub use encode::{EncodeOptions, Encoder};
pub use format::Compression;
pub use zstd_frames::{FrameSizes, ZstdFrames};

/// Size of the chunks passed between stages.
pub const CHUNK: usize = 1 << 20;
/// Chunks queued between two stages at most.
const QUEUE: usize = 4;
