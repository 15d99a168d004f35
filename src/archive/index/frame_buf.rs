//! One frame's decompressed bytes, in anonymous memory the kernel may back with 2 MiB
//! pages. Extracting one member decompresses up to a few MiB of its frame once per
//! run; in 4 KiB pages every page of that is a page fault (about 3.4 µs each on this
//! project's VM, most of a one-member extraction's system time), in huge pages it is
//! one fault per 2 MiB. Where transparent huge pages are off the memory is ordinary.

use std::io;

use crate::memory::HugeMap;

/// A zero-filled buffer that only grows; see the module's documentation.
pub struct FrameBuf {
    map: Option<HugeMap>,
}

impl FrameBuf {
    pub const fn new() -> FrameBuf {
        FrameBuf { map: None }
    }

    /// Makes the buffer at least `len` bytes long. A larger buffer is a new mapping:
    /// what the old one held is gone.
    pub fn reserve(&mut self, len: usize) -> io::Result<()> {
        if len <= self.len() {
            return Ok(());
        }
        // The old mapping goes first, so the two are never held at once.
        self.map = None;
        self.map = Some(HugeMap::new(len)?);
        Ok(())
    }

    fn len(&self) -> usize {
        self.map.as_ref().map_or(0, HugeMap::len)
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.map {
            // SAFETY: the mapping's `len()` bytes are mapped, readable and initialised
            // (zero or written since).
            Some(map) => unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) },
            None => &[],
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.map {
            // SAFETY: as `as_slice`, and `&mut self` makes the borrow unique.
            Some(map) => unsafe { std::slice::from_raw_parts_mut(map.as_ptr(), map.len()) },
            None => &mut [],
        }
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
        assert_eq!(
            buf.as_slice().as_ptr() as usize % crate::memory::HUGE_PAGE,
            0
        );
        assert!(buf.as_slice().iter().all(|&b| b == 0));
        buf.as_mut_slice()[..5].copy_from_slice(b"hello");
        buf.reserve(crate::memory::HUGE_PAGE).unwrap();
        assert_eq!(&buf.as_slice()[..5], b"hello");
        buf.reserve(crate::memory::HUGE_PAGE + 1).unwrap();
        assert_eq!(buf.as_slice().len(), 2 * crate::memory::HUGE_PAGE);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }
}
