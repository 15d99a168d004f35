//! Page-aligned read buffers and the pool that bounds a run's memory.
//!
//! A plain `Vec<u8>` usually starts 16 bytes past a page boundary, and the kernel's
//! copy from the page cache into such a buffer measured about 4× slower than into an
//! aligned one. Every read in spate therefore lands in an [`AlignedBuf`], and every
//! buffer comes from one [`BufferPool`] whose size is the memory bound of the run.

use std::alloc::{self, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

/// Alignment of every read buffer: one page.
pub const ALIGN: usize = 4096;

/// A heap buffer aligned to [`ALIGN`], with a fixed capacity and a filled length.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads the initialised prefix.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates `cap` bytes (rounded up to a whole page). Pages are not touched, so an
    /// unused buffer costs address space, not resident memory.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1).div_ceil(ALIGN) * ALIGN;
        let layout = Self::layout(cap);
        // SAFETY: layout has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, cap, len: 0 }
    }

    fn layout(cap: usize) -> Layout {
        // cap is a non-zero multiple of ALIGN, which is a power of two: always valid.
        Layout::from_size_align(cap, ALIGN).expect("page-multiple layout is valid")
    }

    /// Total bytes the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Pointer to the start, for the kernel to fill.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Pointer to the start.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Marks the first `len` bytes as filled.
    ///
    /// # Safety
    /// The first `len` bytes must have been written, and `len <= capacity()`.
    pub unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.cap);
        self.len = len;
    }

    /// Forgets the contents; the next read fills from the start.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written (set_len's contract).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) }
    }
}

/// A fixed set of equally sized buffers shared by every reader of a run.
///
/// Taking a buffer waits while all are in use; dropping a [`PooledBuf`] gives it back.
/// The pool holds `count × size` bytes at most, whatever the tree looks like.
#[derive(Clone)]
pub struct BufferPool {
    tx: async_channel::Sender<AlignedBuf>,
    rx: async_channel::Receiver<AlignedBuf>,
    size: usize,
}

impl BufferPool {
    /// A pool of `count` buffers of `size` bytes each (size rounded up to a page).
    pub fn new(count: usize, size: usize) -> Self {
        let count = count.max(1);
        let (tx, rx) = async_channel::bounded(count);
        for _ in 0..count {
            // Cannot fail: the channel has room for exactly `count` buffers.
            let _ = tx.try_send(AlignedBuf::new(size));
        }
        let size = size.max(1).div_ceil(ALIGN) * ALIGN;
        BufferPool { tx, rx, size }
    }

    /// Size of each buffer in bytes.
    pub fn buffer_size(&self) -> usize {
        self.size
    }

    fn wrap(&self, mut buf: AlignedBuf) -> PooledBuf {
        buf.clear();
        PooledBuf {
            buf: Some(buf),
            home: self.tx.clone(),
        }
    }

    /// Waits for a free buffer.
    pub async fn get(&self) -> PooledBuf {
        match self.rx.recv().await {
            Ok(buf) => self.wrap(buf),
            // The pool holds both ends, so the channel never closes while `self` lives.
            Err(_) => self.wrap(AlignedBuf::new(self.size)),
        }
    }

    /// Blocks the thread until a buffer is free.
    pub fn get_blocking(&self) -> PooledBuf {
        match self.rx.recv_blocking() {
            Ok(buf) => self.wrap(buf),
            Err(_) => self.wrap(AlignedBuf::new(self.size)),
        }
    }

    /// A free buffer if there is one now. Read-ahead uses this, so that a task already
    /// holding a buffer never waits for a second one (which could deadlock the pool).
    pub fn try_get(&self) -> Option<PooledBuf> {
        self.rx.try_recv().ok().map(|buf| self.wrap(buf))
    }
}

/// A buffer on loan from a [`BufferPool`]; it goes back when dropped.
pub struct PooledBuf {
    buf: Option<AlignedBuf>,
    home: async_channel::Sender<AlignedBuf>,
}

impl PooledBuf {
    /// The underlying buffer.
    pub fn inner(&self) -> &AlignedBuf {
        self.buf.as_ref().expect("buffer present until drop")
    }

    /// The underlying buffer, writable.
    pub fn inner_mut(&mut self) -> &mut AlignedBuf {
        self.buf.as_mut().expect("buffer present until drop")
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.inner()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let _ = self.home.try_send(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned() {
        let pool = BufferPool::new(3, 10_000);
        let bufs: Vec<_> = (0..3).map(|_| pool.get_blocking()).collect();
        for b in &bufs {
            assert_eq!(b.inner().as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.inner().capacity(), 12_288);
        }
    }

    #[test]
    fn pool_is_bounded_and_buffers_come_back() {
        let pool = BufferPool::new(2, 4096);
        let a = pool.get_blocking();
        let _b = pool.get_blocking();
        assert!(pool.try_get().is_none(), "a third buffer must not exist");
        drop(a);
        assert!(
            pool.try_get().is_some(),
            "a dropped buffer returns to the pool"
        );
    }
}
