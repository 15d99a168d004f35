//! The process's own peak memory, for `--stats` and the check summary.

/// Peak resident set size in KiB (`VmHWM` of /proc/self/status): the high-water mark of
/// this process image only. (`getrusage`'s `ru_maxrss` would also count the memory of
/// the parent that spawned us, which exec carries over into it.) `None` off Linux.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `peak RSS 23.4 MiB`, or nothing when unknown.
pub fn peak_rss_text() -> String {
    match peak_rss_kib() {
        Some(kib) => format!(
            "; peak RSS {}",
            humansize::format_size(kib * 1024, humansize::BINARY)
        ),
        None => String::new(),
    }
}

/// Size of a transparent huge page on x86-64 and aarch64 with 4 KiB base pages;
/// elsewhere the alignment is merely generous.
pub const HUGE_PAGE: usize = 2 << 20;

/// Zero-filled anonymous memory mapped on a huge-page boundary and offered to the
/// kernel for transparent huge pages (`MADV_HUGEPAGE`), unmapped when dropped. Where
/// transparent huge pages are off, or none is free, the memory is ordinary 4 KiB pages.
/// Used where a buffer's pages matter: one fault per 2 MiB instead of 512, and one
/// physical segment per I/O request instead of wherever each 4 KiB page fell.
pub struct HugeMap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value alone.
unsafe impl Send for HugeMap {}
// SAFETY: `&HugeMap` gives out only the pointer; whoever writes through it (buffers
// carved from the mapping) holds a disjoint part.
unsafe impl Sync for HugeMap {}

impl HugeMap {
    /// Maps at least `len` bytes: a whole number of huge pages.
    pub fn new(len: usize) -> std::io::Result<HugeMap> {
        let too_big = || std::io::Error::other("a mapping larger than the address space");
        let len = len
            .max(1)
            .checked_next_multiple_of(HUGE_PAGE)
            .ok_or_else(too_big)?;
        // One huge page more than needed, then cut down to a 2 MiB aligned start: only
        // aligned 2 MiB ranges can become huge pages.
        let over = len.checked_add(HUGE_PAGE).ok_or_else(too_big)?;
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
            return Err(std::io::Error::last_os_error());
        }
        let start = raw as usize;
        let head = start.next_multiple_of(HUGE_PAGE) - start;
        let tail = over - head - len;
        // SAFETY: both ranges lie inside the mapping just made and outside the part
        // kept; madvise only advises on the part kept.
        let kept = unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            let kept = raw.cast::<u8>().add(head);
            if tail > 0 {
                libc::munmap(kept.add(len).cast(), tail);
            }
            // Advice only: without transparent huge pages the memory stays ordinary.
            libc::madvise(kept.cast(), len, libc::MADV_HUGEPAGE);
            kept
        };
        let ptr = std::ptr::NonNull::new(kept).ok_or_else(std::io::Error::last_os_error)?;
        Ok(HugeMap { ptr, len })
    }

    /// The start of the mapping (on a huge-page boundary).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Bytes mapped: a whole number of huge pages.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for HugeMap {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` kept, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_known_and_plausible() {
        let kib = super::peak_rss_kib().expect("Linux has /proc/self/status");
        assert!(kib > 100 && kib < 64 << 20, "{kib} KiB");
    }
}
