//! The thread-pool backend: blocking `pread`/`pwrite` workers.
//!
//! Used where io_uring is unavailable, and as the reference the uring backend must
//! match byte for byte. Both halves of the engine: [`files`] reads whole files for hash,
//! check and pack; [`ops`] keeps reads and writes at offsets in flight for bench.

pub mod files;
pub mod ops;

pub use files::Threads;
pub(crate) use files::open_nonblocking;
