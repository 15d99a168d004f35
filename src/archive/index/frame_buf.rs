//! One frame's decompressed bytes, in anonymous memory the kernel may back with 2 MiB
//! pages. Extracting one member decompresses up to a few MiB of its frame once per
//! run; in 4 KiB pages every page of that is a page fault (about 3.4 µs each on this
//! project's VM, most of a one-member extraction's system time), in huge pages it is
//! one fault per 2 MiB. Where transparent huge pages are off the memory is ordinary.

use std::io;
use std::ptr::NonNull;

/// Huge page size on x86-64 and aarch64 with 4 KiB base pages; elsewhere the
/// alignment is merely generous.
const HUGE: usize = 2 << 20;

/// A zero-filled buffer that only grows; see the module's documentation.
pub struct FrameBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value alone.
unsafe impl Send for FrameBuf {}

impl FrameBuf {
    pub const fn new() -> FrameBuf {
        FrameBuf {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    /// Makes the buffer at least `len` bytes long. A larger buffer is a new mapping:
    /// what the old one held is gone.
    pub fn reserve(&mut self, len: usize) -> io::Result<()> {
        if len <= self.len {
            return Ok(());
        }
        let size = len.next_multiple_of(HUGE);
        // Map one huge page more than needed, then cut the mapping down to a 2 MiB
        // aligned start: only aligned 2 MiB ranges can become huge pages.
        let over = size + HUGE;
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(HUGE);
        let head = aligned - start;
        let tail = over - head - size;
        // SAFETY: both ranges lie inside the mapping just made and outside the part
        // kept; madvise only advises on the part kept.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + size) as *mut libc::c_void, tail);
            }
            // Advice only: without transparent huge pages the memory stays ordinary.
            libc::madvise(aligned as *mut libc::c_void, size, libc::MADV_HUGEPAGE);
        }
        self.release();
        self.ptr = NonNull::new(aligned as *mut u8).ok_or_else(io::Error::last_os_error)?;
        self.len = size;
        Ok(())
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes from `ptr` are mapped, readable and initialised (zero or
        // written since), or `len` is 0 and `ptr` dangling, which a 0-length slice allows.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    fn release(&mut self) {
        if self.len > 0 {
            // SAFETY: `ptr..ptr+len` is the mapping `reserve` kept, unmapped once.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            }
            self.ptr = NonNull::dangling();
            self.len = 0;
        }
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_zero_filled_and_keeps_what_was_written_until_it_grows() {
        let mut buf = FrameBuf::new();
        assert!(buf.as_slice().is_empty());
        buf.reserve(5).unwrap();
        assert!(buf.as_slice().len() >= 5);
        assert_eq!(buf.as_slice().as_ptr() as usize % HUGE, 0);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
        buf.as_mut_slice()[..5].copy_from_slice(b"hello");
        buf.reserve(HUGE).unwrap();
        assert_eq!(&buf.as_slice()[..5], b"hello");
        buf.reserve(HUGE + 1).unwrap();
        assert_eq!(buf.as_slice().len(), 2 * HUGE);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }
}
