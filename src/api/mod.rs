//! The library's front door: hash a tree, verify a manifest, pack and unpack archives
//! from Rust code, through the same walker, readers and safety rules as the commands,
//! with results as values instead of lines on a terminal.

mod archive;
mod hash;
mod options;
mod pack;
mod unpack;
mod verify;

pub use archive::{ArchiveError, ProgressCallback, ProgressUpdate};
pub use hash::{FileDigest, HashError, HashOptions, HashTree, hash_tree};
pub use options::{Io, ReadOptions, WalkOptions};
pub use pack::{Format, PackOptions, PackSummary, pack, pack_to};
pub use unpack::{UnpackOptions, UnpackSummary, unpack, unpack_from};
pub use verify::{CheckOptions, Status, Verdict, Verify, verify};
