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
//! The pipeline, in the order a byte travels:
//! - [`walk`]: a walker thread lists the tree into a bounded channel;
//! - [`read`]: a backend (io_uring or a `pread` pool) reads each file in pooled chunks;
//! - a job stage consumes the chunks: [`hash`] computes digests;
//! - [`bench`](mod@bench) measures disk throughput on a test file of its own, like fio;
//! - [`pipeline`] puts results back into walk order, and the job writes them with
//!   [`manifest`] formatting to an [`output`];
//! - [`signals`] removes unfinished output files when SIGINT or SIGTERM stops a run;
//! - [`algo`] is the table of checksum algorithms that digests and manifests share;
//! - [`shard`] splits a tree between workers, and [`merge`] joins their manifests.
//!
//! The binary is a thin wrapper around [`cli::main`].

mod api;

pub mod algo;
pub mod archive;
pub mod bench;
pub mod check;
pub mod cli;
pub mod error;
pub mod hash;
pub mod manifest;
pub mod memory;
pub mod merge;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod read;
pub mod reorder;
pub mod shard;
pub mod signals;
pub mod walk;

pub use algo::Algo;
pub use api::*;
pub use error::ErrorKind;
