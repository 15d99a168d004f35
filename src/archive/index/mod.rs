//! Indexed `.tar.zst` archives: a zstd stream cut into frames at member boundaries,
//! followed by a table of contents and the zstd seekable format's seek table, both in
//! skippable frames that every zstd decoder passes over (`zstd -dc x.tar.zst | tar -x`
//! reads it unchanged). With them, spate lists an archive from its table, extracts
//! one member by decompressing only its frames, and unpacks frames in parallel.
//!
//! - `format.rs`: the byte layout of the two tables;
//! - `toc.rs`: encoding and decoding the table of contents, section by section;
//! - `block.rs`: one block of members' metadata, as varint columns;
//! - `varint.rs`: the LEB128 and zigzag integers the blocks are made of;
//! - `view.rs`: [`TocView`], the table as read, and [`Members`], its members decoded
//!   one block at a time into reused buffers;
//! - `read.rs`: finding and checking the index at the end of a file, reading frames;
//! - `writer.rs`: [`IndexedWriter`], which pack writes the tar stream into;
//! - `open.rs`: whether an archive named on the command line is read from its index;
//! - `cursor.rs`: the tar stream from any offset, each frame decompressed only as far
//!   as it is read;
//! - `extract.rs`: the members `unpack MEMBER…` selects, as a tar stream of just them.

// The reading side is used by list, unpack and check as they learn the index; until
// then only the tests here read it.
mod block;
mod cursor;
pub(crate) mod extract;
#[allow(dead_code)]
mod format;
mod frame_buf;
pub(crate) mod open;
#[allow(dead_code)]
mod read;
mod toc;
mod varint;
mod view;
mod writer;

#[allow(unused_imports)]
pub use format::{DIGEST_LEN, Frame, Toc, TocDigest, TocEntry, toc_digest};
#[allow(unused_imports)]
pub use read::{
    Digests, Found, FrameReader, Index, Table, read_frame, read_frame_into, read_index, read_table,
};
#[allow(unused_imports)]
pub use view::{EntryRef, Loaded, Members, TocView};
pub use writer::{FRAME_TARGET, IndexedWriter};
pub mod merge;
