//! The bounds on read settings that `spate`'s options and the library's
//! [`crate::ReadOptions`] both enforce, so one command line and one options struct are
//! accepted or refused alike.

use super::ReadOptions;

/// Most rings or reader threads: the threads default (2 × cores) of a 512-core
/// machine. Past a few readers per core each only waits for a core; a larger number is
/// a typo, and `-j 100000000` spent its first minute starting readers.
pub const MAX_JOBS: usize = 1024;

/// Most files in flight. The deepest device queue there is (NVMe: 65536 commands)
/// cannot take more; a larger number only sizes channels and pools, and a huge one
/// overflowed their allocations (a panic) or exhausted memory.
pub const MAX_QUEUE_DEPTH: usize = 65536;

/// Largest single read buffer.
pub const MAX_BUFFER_SIZE: usize = 1 << 30;

/// Most bytes the read buffer pool may hold (it is the run's memory bound: one buffer
/// per file in flight plus read-ahead per job). The defaults hold tens of MiB; 16 GiB
/// leaves room for deliberate large-memory runs, yet refuses products that can only be
/// typos before they end in an allocation failure or the OOM killer (`--queue-depth
/// 100000000` was killed) instead of a message. A fixed bound rather than a share of
/// RAM, so one command line is accepted or refused alike on every machine.
pub const MAX_READ_BUFFERS: u64 = 16 << 30;

/// Bytes the buffer pool of `options` would hold.
pub fn pool_bytes(options: &ReadOptions) -> u64 {
    (options.pool_buffers() as u64).saturating_mul(options.buffer_size as u64)
}
