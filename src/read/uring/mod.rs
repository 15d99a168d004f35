//! The io_uring backend. Every use of io_uring in spate is in this folder, so the
//! backend can be swapped without touching a job.
//!
//! Both halves of the engine: [`files`] reads whole files for hash, check and pack, on
//! tokio-uring; [`ops`] keeps reads and writes at offsets in flight for bench, on a ring
//! it drives itself (the `io-uring` crate) so that an operation costs what it costs fio.

pub mod files;
pub mod ops;

use tokio_uring::buf::{IoBuf, IoBufMut};

use super::buffer::{AlignedBuf, PooledBuf};

pub use files::Uring;

// SAFETY: the pointer stays valid and fixed while the buffer is owned by an operation
// (the allocation never moves), and `bytes_total` is the allocation's size.
unsafe impl IoBuf for PooledBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.inner().as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.inner().len()
    }
    fn bytes_total(&self) -> usize {
        self.inner().capacity()
    }
}

// SAFETY: the kernel writes at most `bytes_total` bytes at `stable_mut_ptr`, and
// tokio-uring calls `set_init` with the count it reports written.
unsafe impl IoBufMut for PooledBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.inner_mut().as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        let inner = self.inner_mut();
        if pos > inner.len() {
            // SAFETY: forwarded from the caller's contract.
            unsafe { inner.set_len(pos) };
        }
    }
}

// SAFETY: the allocation never moves while an operation owns the buffer, and
// `bytes_total` is its size.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the kernel writes at most `bytes_total` bytes at `stable_mut_ptr`, and
// tokio-uring calls `set_init` with the count it reports written.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.len() {
            // SAFETY: forwarded from the caller's contract.
            unsafe { self.set_len(pos) };
        }
    }
}
