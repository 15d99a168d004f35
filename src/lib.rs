//! spate: push whole directory trees through fast async file I/O.
//!
//! From Rust, [`hash_tree`] hashes a tree and yields each file's digests in walk order:
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("a"), b"hello")?;
//! let options = spate::HashOptions {
//!     algos: vec![spate::Algo::Blake3, spate::Algo::Sha256],
//!     ..Default::default()
//! };
//! for file in spate::hash_tree(&[dir.path()], &options) {
//!     let file = file?;
//!     for (algo, hex) in &file.digests {
//!         println!("{algo} {hex}  {}", file.path.display());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same crate verifies manifests ([`verify`]), and writes and extracts tar archives
//! ([`pack`], [`pack_to`], [`unpack`], [`unpack_from`]). Each call prints nothing:
//! results, per-file problems and progress come back as values.
//!
//! Inside, the pipeline, in the order a byte travels: a walker thread lists the tree
//! into a bounded channel (`walk`); a backend (io_uring or a `pread` pool) reads each
//! file in pooled chunks (`read`); a job stage consumes the chunks (`hash`, `check`,
//! `archive`); `pipeline` puts results back into walk order for the one thread that
//! writes them. Those modules are the crate's own; the calls above are its interface.
//!
//! The binary is a thin wrapper around [`cli::main`].

#![warn(missing_docs)]

mod api;

pub(crate) mod algo;
pub(crate) mod archive;
pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod civil;
pub mod cli;
pub(crate) mod error;
pub(crate) mod hash;
pub(crate) mod manifest;
pub(crate) mod memory;
pub(crate) mod merge;
pub(crate) mod output;
pub(crate) mod pipeline;
pub(crate) mod progress;
pub(crate) mod read;
pub(crate) mod reorder;
pub(crate) mod report;
pub(crate) mod shard;
pub(crate) mod signals;
pub(crate) mod walk;

pub use algo::Algo;
pub use api::*;
pub use error::ErrorKind;
