//! Page-aligned read buffers and the pool that bounds a run's memory.
//!
//! A plain `Vec<u8>` usually starts 16 bytes past a page boundary, and the kernel's
//! copy from the page cache into such a buffer measured about 4× slower than into an
//! aligned one. Every read in spate therefore lands in an [`AlignedBuf`], and every
//! buffer comes from one [`BufferPool`] whose size is the memory bound of the run.

use std::alloc::{self, Layout};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use event_listener::{Event, EventListener, IntoNotification, Listener};

use crate::memory::HugeMap;

/// Alignment of every read buffer: one page.
pub const ALIGN: usize = 4096;

/// A heap buffer aligned to [`ALIGN`], with a fixed capacity and a filled length.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    /// The mapping the buffer is a slice of ([`AlignedBuf::in_region`]), kept alive by
    /// the buffer; `None`: the buffer owns a heap allocation of its own.
    region: Option<Arc<HugeMap>>,
}

// SAFETY: AlignedBuf owns its bytes exclusively, like a Vec<u8>: its own allocation,
// or a part of a shared mapping that no other buffer's range overlaps.
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
        AlignedBuf {
            ptr,
            cap,
            len: 0,
            region: None,
        }
    }

    /// Carves `count` buffers of `cap` bytes each (rounded up to a whole page) out of
    /// one new mapping on transparent huge pages, back to back, or `None` where the
    /// mapping fails.
    ///
    /// A buffer of 4 KiB pages lies wherever the page allocator put each page, and
    /// that changes from run to run: the same 1 MiB buffer measured 9 physical
    /// segments in one process and 256 in the next. A block device takes a bounded
    /// number of segments per request (virtio-blk: 254), so a 1 MiB direct read into
    /// scattered pages goes out as two requests that cannot merge with their
    /// neighbours, and a sequential direct read at Q8 ran at half the speed it reached
    /// into contiguous pages (1.0 against 2.4 GB/s here, by the allocator's luck
    /// alone). On a huge page a buffer of up to 2 MiB is one segment, every run.
    pub fn in_region(count: usize, cap: usize) -> Option<Vec<AlignedBuf>> {
        let cap = cap.max(1).div_ceil(ALIGN) * ALIGN;
        if count == 0 {
            return Some(Vec::new());
        }
        let region = Arc::new(HugeMap::new(count.checked_mul(cap)?).ok()?);
        let bufs = (0..count)
            .map(|i| AlignedBuf {
                // SAFETY: i * cap + cap <= count * cap <= region.len(): inside the
                // mapping, whose start is not null.
                ptr: unsafe { NonNull::new_unchecked(region.as_ptr().add(i * cap)) },
                cap,
                len: 0,
                region: Some(Arc::clone(&region)),
            })
            .collect();
        Some(bufs)
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
        if self.region.is_none() {
            // SAFETY: allocated in `new` with the same layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) }
        }
    }
}

/// A fixed set of equally sized buffers shared by every reader of a run.
///
/// Taking a buffer waits while all are in use; dropping a [`PooledBuf`] gives it back.
/// The pool holds `count × size` bytes at most, whatever the tree looks like.
///
/// Free buffers are a stack: the buffer given back last is lent out first. A reader
/// working through small files so keeps reusing the one buffer whose lines are still in
/// its core's cache, and the kernel's copy from the page cache writes into cached lines
/// instead of fetching cold ones from memory first (a queue cycled through every buffer
/// of the pool, 32 MiB and more, which no cache holds).
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

struct Shared {
    free: Mutex<Vec<AlignedBuf>>,
    /// Notified once per buffer given back, for a reader waiting for one.
    returned: Event,
    size: usize,
}

impl Shared {
    fn pop(&self) -> Option<AlignedBuf> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }
}

impl BufferPool {
    /// A pool of `count` buffers of `size` bytes each (size rounded up to a page).
    pub fn new(count: usize, size: usize) -> Self {
        let size = size.max(1).div_ceil(ALIGN) * ALIGN;
        let free = (0..count.max(1)).map(|_| AlignedBuf::new(size)).collect();
        BufferPool {
            shared: Arc::new(Shared {
                free: Mutex::new(free),
                returned: Event::new(),
                size,
            }),
        }
    }

    /// Size of each buffer in bytes.
    pub fn buffer_size(&self) -> usize {
        self.shared.size
    }

    fn wrap(&self, mut buf: AlignedBuf) -> PooledBuf {
        buf.clear();
        PooledBuf {
            buf: Some(buf),
            home: Arc::clone(&self.shared),
        }
    }

    /// Waits for a free buffer.
    pub async fn get(&self) -> PooledBuf {
        loop {
            match self.take_or_listen() {
                Ok(buf) => return buf,
                Err(listener) => listener.await,
            }
        }
    }

    /// Blocks the thread until a buffer is free.
    pub fn get_blocking(&self) -> PooledBuf {
        loop {
            match self.take_or_listen() {
                Ok(buf) => return buf,
                Err(listener) => listener.wait(),
            }
        }
    }

    /// A free buffer, or a listener to wait on for the next one given back. It listens
    /// before looking a second time, so a buffer given back in between is seen either by
    /// that look or by the notification.
    fn take_or_listen(&self) -> Result<PooledBuf, EventListener> {
        if let Some(buf) = self.shared.pop() {
            return Ok(self.wrap(buf));
        }
        let listener = self.shared.returned.listen();
        match self.shared.pop() {
            Some(buf) => Ok(self.wrap(buf)),
            None => Err(listener),
        }
    }

    /// A free buffer if there is one now. Read-ahead uses this, so that a task already
    /// holding a buffer never waits for a second one (which could deadlock the pool).
    pub fn try_get(&self) -> Option<PooledBuf> {
        self.shared.pop().map(|buf| self.wrap(buf))
    }
}

/// A buffer on loan from a [`BufferPool`]; it goes back when dropped.
pub struct PooledBuf {
    buf: Option<AlignedBuf>,
    home: Arc<Shared>,
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
            self.home
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(buf);
            self.home.returned.notify(1.additional());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_carved_into_disjoint_page_aligned_buffers_from_a_huge_page_boundary() {
        let mut bufs = AlignedBuf::in_region(3, 1_000_000).expect("mapped");
        let cap = 1_003_520; // 1,000,000 rounded up to a page
        assert_eq!(bufs.len(), 3);
        let base = bufs[0].as_ptr() as usize;
        assert_eq!(base % crate::memory::HUGE_PAGE, 0);
        for (i, buf) in bufs.iter_mut().enumerate() {
            assert_eq!(buf.capacity(), cap);
            assert_eq!(buf.as_ptr() as usize, base + i * cap, "back to back");
            // SAFETY: the buffer is valid for its capacity, all written before set_len.
            unsafe {
                std::ptr::write_bytes(buf.as_mut_ptr(), i as u8 + 1, cap);
                buf.set_len(cap);
            }
        }
        for (i, buf) in bufs.iter().enumerate() {
            assert!(
                buf.iter().all(|&b| b == i as u8 + 1),
                "buffer {i} kept its bytes"
            );
        }
        // A buffer may go while the others are in use: the mapping stays.
        drop(bufs.remove(0));
        assert!(bufs[1].iter().all(|&b| b == 3));
        assert!(
            AlignedBuf::in_region(0, 4096)
                .expect("nothing to map")
                .is_empty()
        );
    }

    #[test]
    fn a_region_asks_the_kernel_for_huge_pages() {
        let bufs = AlignedBuf::in_region(2, 1 << 20).expect("mapped");
        let start = bufs[0].as_ptr() as usize;
        // The mapping's flags in /proc/self/smaps: `hg` is MADV_HUGEPAGE's advice.
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut inside = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= start && start < hi;
            } else if inside && let Some(rest) = line.strip_prefix("VmFlags:") {
                flags = Some(rest.to_string());
            }
        }
        let flags = flags.expect("the region's mapping is in smaps");
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "VmFlags:{flags}"
        );
    }

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

    #[test]
    fn the_buffer_given_back_last_is_lent_first() {
        let pool = BufferPool::new(4, 4096);
        let a = pool.get_blocking();
        let b = pool.get_blocking();
        let b_ptr = b.inner().as_ptr();
        drop(a);
        drop(b);
        assert_eq!(pool.get_blocking().inner().as_ptr(), b_ptr);
    }

    #[test]
    fn waiting_readers_wake_when_buffers_come_back() {
        let pool = BufferPool::new(2, 4096);
        let held: Vec<_> = (0..2).map(|_| pool.get_blocking()).collect();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || drop(pool.get_blocking()))
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let a = pool.get_blocking();
        let b = pool.get_blocking();
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || runtime.block_on(async { drop(pool.get().await) }))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(a);
        waiter.join().unwrap();
        drop(b);
        assert!(pool.try_get().is_some());
    }
}
