//! Reading large files through memory maps, safely.
//!
//! For a large file already in the page cache, copying it into buffers costs about a
//! third of the time BLAKE3 needs to hash it on two cores; mapping it costs almost
//! nothing, and is how b3sum reaches its speed. The file is mapped in windows of
//! [`MAPPING_LEN`] bytes, each unmapped once fed to the sink, so resident memory stays bounded
//! whatever the file size.
//!
//! The danger of a map is a file truncated while mapped: touching a page past the new
//! end raises SIGBUS, which would kill the process. A SIGBUS handler (installed once)
//! looks the faulting address up among the windows being read; if it is one of ours it
//! maps zero pages over the rest of the window, flags the window and returns, so the
//! read finishes and the caller reports the file as changed instead of printing a digest.
//! A SIGBUS anywhere else restores the default action and re-faults, crashing as usual;
//! so does one the kernel will not let us paper over, after a line on stderr (returning
//! would only fault again, forever).

use std::io;
use std::os::unix::io::RawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{ReadError, Sink};

/// Bytes mapped at a time.
pub const MAPPING_LEN: usize = 32 << 20;

/// Windows that may be mapped at once over all threads; more readers than this simply
/// wait for a free slot.
const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

/// The windows being read. A signal handler can only reach global state, so this and
/// [`PAGE_SIZE`] are spate's only globals; they hold addresses and a size, nothing else.
static SLOTS_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    match handle_fault(addr, &SLOTS_TABLE, page_size(), map_zeros) {
        Fault::Replaced => {}
        Fault::Unrecoverable => {
            // Returning would touch the same missing page again, and again, forever.
            // No reporter here: a signal handler may only write(2) bytes fixed in advance.
            let why = crate::report::text::SIGBUS_LINE.as_bytes();
            // SAFETY: write(2) to stderr is async-signal-safe.
            unsafe { libc::write(libc::STDERR_FILENO, why.as_ptr().cast(), why.len()) };
            fall_back_to_the_default_action();
        }
        Fault::NotOurs => fall_back_to_the_default_action(),
    }
}

/// Restores SIGBUS's default action, so the access that faulted ends the process
/// when it repeats, as it would have without our handler.
fn fall_back_to_the_default_action() {
    // SAFETY: resetting a disposition is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

/// What the SIGBUS handler made of a fault.
#[derive(Debug, PartialEq, Eq)]
enum Fault {
    /// In one of our windows: zero pages now stand where the file's were missing, and
    /// the window is flagged so the file is reported as changed.
    Replaced,
    /// In one of our windows, but the kernel refused every replacement.
    Unrecoverable,
    /// Not in any window: a real crash.
    NotOurs,
}

/// Looks the faulting address up among `slots` and maps zero pages over the rest of
/// its window with `map_zeros` (which only a signal-safe system call may implement).
fn handle_fault(
    addr: usize,
    slots: &[Slot],
    page: usize,
    map_zeros: impl Fn(usize, usize) -> bool,
) -> Fault {
    for slot in slots {
        let start = slot.start.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Acquire);
        if start == 0 || start == usize::MAX {
            continue;
        }
        let Some((from, zeros)) = zero_fill_range(addr, start, len, page) else {
            continue;
        };
        // From the faulting page on, as little as covers what is missing; failing that
        // (a split mapping needs one more map entry, which vm.max_map_count may
        // refuse), the whole window, which replaces the mapping without splitting it.
        // Either way the file's digest is thrown away.
        if map_zeros(from, zeros) || map_zeros(start, len) {
            slot.faulted.store(true, Ordering::Release);
            return Fault::Replaced;
        }
        return Fault::Unrecoverable;
    }
    Fault::NotOurs
}

/// The range to fill with zero pages after a fault at `addr` in the window of `len`
/// bytes mapped at `start` (page-aligned, as mmap returns it): from the start of the
/// faulting page to the end of the window. `None` when `addr` is outside the window.
fn zero_fill_range(addr: usize, start: usize, len: usize, page: usize) -> Option<(usize, usize)> {
    if addr < start || addr - start >= len {
        return None;
    }
    let from = addr & !(page - 1);
    Some((from, start + len - from))
}

/// Maps read-only zero pages over `len` bytes at `at`, in place of whatever was
/// mapped there; false when the kernel refuses (e.g. `at` is not page-aligned).
fn map_zeros(at: usize, len: usize) -> bool {
    // SAFETY: MAP_FIXED replaces only pages of a window this process mapped and is
    // reading (the handler passes nothing else); mmap is a plain system call, safe to
    // make from a signal handler.
    let ptr = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    ptr != libc::MAP_FAILED
}

/// The system's page size, asked once. `install_handler` asks before the handler can
/// run, so the handler only ever loads it.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Bytes per page: 4 KiB on x86-64, but 16 KiB or 64 KiB on some arm64 and POWER
/// kernels, where an address rounded to 4 KiB is not page-aligned: mmap refuses it,
/// and the guard would never replace the missing pages.
fn page_size() -> usize {
    let known = PAGE_SIZE.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    // SAFETY: sysconf has no preconditions.
    let asked = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    // Linux always answers; should it not, the smallest page there is keeps the
    // residency probes aligned, and a remap that then fails is caught, not repeated.
    let page = usize::try_from(asked)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    PAGE_SIZE.store(page, Ordering::Relaxed);
    page
}

fn install_handler() {
    INSTALL.call_once(|| {
        page_size();
        // SAFETY: a zeroed sigaction with our handler and SA_SIGINFO is a valid setup.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    });
}

/// A mapped window, registered with the SIGBUS handler while it lives.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    slot: &'static Slot,
}

impl Mapping {
    fn map(fd: RawFd, offset: u64, len: usize) -> io::Result<Mapping> {
        let slot = claim_slot();
        // SAFETY: a fresh read-only shared mapping of an open file; the kernel checks
        // the arguments.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            slot.start.store(0, Ordering::Release);
            return Err(io::Error::last_os_error());
        }
        slot.len.store(len, Ordering::Release);
        slot.faulted.store(false, Ordering::Release);
        slot.start.store(ptr as usize, Ordering::Release);
        Ok(Mapping { ptr, len, slot })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes are mapped at `ptr` until drop; pages past a
        // truncation are replaced by zeros in the SIGBUS handler.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }

    fn faulted(&self) -> bool {
        self.slot.faulted.load(Ordering::Acquire)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.slot.start.store(0, Ordering::Release);
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Takes a free slot in the table, waiting (briefly) if all are in use.
fn claim_slot() -> &'static Slot {
    loop {
        for slot in &SLOTS_TABLE {
            // usize::MAX marks a slot claimed but not yet mapped.
            if slot
                .start
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slot.len.store(0, Ordering::Release);
                return slot;
            }
        }
        std::thread::yield_now();
    }
}

/// Feeds `size` bytes of the open file `fd` to `sink` through mapped windows. Returns
/// an error if the file turned out shorter than `size` while it was read.
pub fn feed_mapped<S: Sink>(fd: RawFd, size: u64, sink: &mut S) -> Result<u64, ReadError> {
    install_handler();
    let mut offset = 0u64;
    while offset < size {
        let len = (size - offset).min(MAPPING_LEN as u64) as usize;
        let window = Mapping::map(fd, offset, len).map_err(|e| ReadError::io("mapping", e))?;
        sink.update(window.bytes());
        if window.faulted() {
            return Err(ReadError::Changed("truncated while it was read".into()));
        }
        offset += len as u64;
    }
    Ok(offset)
}

/// Pieces of the file [`mostly_cached`] looks at, spread evenly over it.
const RESIDENCY_PROBES: u64 = 64;
/// Bytes in each piece.
const PROBE_LEN: u64 = 64 << 10;

/// True when at least 90% of the pages [`mostly_cached`] samples are in the page cache:
/// `RESIDENCY_PROBES` pieces of `PROBE_LEN` bytes spread over the whole file (4 MiB
/// of a large file). Maps pay off only for cached data: on a cold file, page faults read
/// in small steps and two large files at once took a third longer than buffered reads,
/// which keep several large reads queued at the device. (Asking about every page of the
/// first 256 MiB instead took 4.2 ms a cached 1 GiB file before hashing could start;
/// this takes 0.12 ms.)
pub fn mostly_cached(fd: RawFd, size: u64) -> bool {
    if size == 0 {
        return true;
    }
    residency(fd, size, probes(size, page_size() as u64))
        .is_some_and(|(pages, resident)| resident * 10 >= pages * 9)
}

/// Pages in the given (offset, length) pieces of the first `size` bytes of `fd`, and
/// how many of them are in the page cache; `None` when the kernel cannot tell.
pub fn residency(
    fd: RawFd,
    size: u64,
    pieces: impl IntoIterator<Item = (u64, u64)>,
) -> Option<(usize, usize)> {
    let len = usize::try_from(size).ok().filter(|&len| len > 0)?;
    // SAFETY: a read-only mapping that is never touched, only queried and unmapped.
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        );
        if ptr == libc::MAP_FAILED {
            return None;
        }
        let (mut pages, mut resident) = (0usize, 0usize);
        let mut vec = [0u8; (PROBE_LEN / 4096) as usize];
        let mut ok = true;
        'pieces: for (start, len) in pieces {
            // mincore answers for PROBE_LEN bytes at a time into `vec`.
            let end = (start + len).min(size);
            for at in (start..end).step_by(PROBE_LEN as usize) {
                let probe = (end - at).min(PROBE_LEN) as usize;
                let n = probe.div_ceil(page_size());
                if libc::mincore(ptr.byte_add(at as usize), probe, vec.as_mut_ptr()) != 0 {
                    ok = false;
                    break 'pieces;
                }
                pages += n;
                resident += vec[..n].iter().filter(|&&r| r & 1 == 1).count();
            }
        }
        libc::munmap(ptr, len);
        ok.then_some((pages, resident))
    }
}

/// The (offset, length) pieces [`mostly_cached`] asks about: page-aligned, inside the
/// file, the first at its start and the last at its end; the whole file when small.
fn probes(size: u64, page: u64) -> Vec<(u64, u64)> {
    if size <= RESIDENCY_PROBES * PROBE_LEN {
        return (0..size.div_ceil(PROBE_LEN))
            .map(|i| (i * PROBE_LEN, PROBE_LEN.min(size - i * PROBE_LEN)))
            .collect();
    }
    let last = (size - PROBE_LEN) / page * page;
    (0..RESIDENCY_PROBES)
        .map(|i| {
            let start = last * i / (RESIDENCY_PROBES - 1) / page * page;
            (start, PROBE_LEN.min(size - start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::io::AsRawFd;

    struct Collect(Vec<u8>);
    impl Sink for Collect {
        type Output = ();
        fn update(&mut self, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
        fn finish(self, _: u64) {}
    }

    #[test]
    fn mapped_windows_deliver_the_whole_file() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..MAPPING_LEN + 5000).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let mut sink = Collect(Vec::new());
        let n = feed_mapped(f.as_raw_fd(), data.len() as u64, &mut sink).unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(sink.0 == data);
    }

    #[test]
    fn probes_stay_inside_the_file_and_cover_both_ends() {
        for size in [
            1,
            4096,
            65_537,
            RESIDENCY_PROBES * PROBE_LEN,
            1 << 30,
            (1 << 30) + 123,
        ] {
            let probes = probes(size, 4096);
            assert!(!probes.is_empty() && probes.len() as u64 <= RESIDENCY_PROBES);
            assert_eq!(probes[0].0, 0);
            let (start, len) = *probes.last().unwrap();
            assert!(
                start + len == size || start + PROBE_LEN >= size - 4096,
                "{size}"
            );
            for (start, len) in probes {
                assert_eq!(start % 4096, 0);
                assert!(len > 0 && start + len <= size, "{size}: {start}+{len}");
            }
        }
    }

    #[test]
    fn a_dropped_file_counts_as_not_cached() {
        let mut f = tempfile::NamedTempFile::new_in(".").unwrap();
        f.write_all(&vec![3u8; 32 << 20]).unwrap();
        f.as_file().sync_all().unwrap();
        let fd = f.as_file().as_raw_fd();
        // SAFETY: advice on our own open file.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert!(!mostly_cached(fd, 32 << 20));
    }

    #[test]
    fn a_freshly_written_file_counts_as_cached() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![1u8; 1 << 20]).unwrap();
        assert!(mostly_cached(f.as_raw_fd(), 1 << 20));
    }

    #[test]
    fn truncated_file_is_an_error_not_a_crash() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 3 * 4096]).unwrap();
        // Claim a size beyond the end, as if the file was truncated after the walk.
        let mut sink = Collect(Vec::new());
        let err = feed_mapped(f.as_raw_fd(), 64 * 4096, &mut sink).unwrap_err();
        assert!(matches!(err, ReadError::Changed(_)), "{err}");
    }

    /// A window of 8 pages of `page` bytes at a page-aligned address, in a slot table
    /// of its own.
    fn one_window(page: usize) -> ([Slot; 2], usize, usize) {
        let (start, len) = (0x7f00_0000_0000 + 3 * 65536, 8 * page);
        let slots = [EMPTY, EMPTY];
        slots[1].start.store(start, Ordering::Release);
        slots[1].len.store(len, Ordering::Release);
        (slots, start, len)
    }

    #[test]
    fn the_zeroed_range_covers_the_fault_to_the_window_end_for_every_page_size() {
        for page in [4096, 16384, 65536] {
            let (_, start, len) = one_window(page);
            for addr in [start, start + 1, start + page + 100, start + len - 1] {
                let (from, zeros) = zero_fill_range(addr, start, len, page).unwrap();
                assert_eq!(from % page, 0, "page {page}, fault at +{}", addr - start);
                assert!(
                    from >= start && from <= addr && addr < from + page,
                    "{page}"
                );
                assert_eq!(from + zeros, start + len, "to the window's end ({page})");
            }
            assert_eq!(zero_fill_range(start - 1, start, len, page), None);
            assert_eq!(zero_fill_range(start + len, start, len, page), None);
        }
    }

    #[test]
    fn a_fault_in_a_window_is_replaced_and_flagged() {
        let (slots, start, len) = one_window(16384);
        let calls = std::cell::RefCell::new(Vec::new());
        let fault = handle_fault(start + 40_000, &slots, 16384, |at, n| {
            calls.borrow_mut().push((at, n));
            true
        });
        assert_eq!(fault, Fault::Replaced);
        assert_eq!(*calls.borrow(), [(start + 32768, len - 32768)]);
        assert!(slots[1].faulted.load(Ordering::Acquire));
        assert_eq!(
            handle_fault(start + len, &slots, 16384, |_, _| true),
            Fault::NotOurs
        );
    }

    #[test]
    fn a_refused_remap_falls_back_to_the_whole_window_then_gives_up() {
        let (slots, start, len) = one_window(65536);
        let whole_only = |at: usize, n: usize| (at, n) == (start, len);
        assert_eq!(
            handle_fault(start + 3 * 65536, &slots, 65536, whole_only),
            Fault::Replaced
        );
        let (slots, start, _) = one_window(65536);
        assert_eq!(
            handle_fault(start + 3 * 65536, &slots, 65536, |_, _| false),
            Fault::Unrecoverable
        );
        assert!(!slots[1].faulted.load(Ordering::Acquire));
    }

    #[test]
    fn the_kernel_refusing_a_remap_is_seen() {
        let page = page_size();
        assert!(page.is_power_of_two() && page >= 4096, "{page}");
        // An address off a page boundary, as rounding to 4 KiB gives on a kernel with
        // larger pages: mmap refuses it without mapping anything.
        assert!(!map_zeros(0x7f00_0000_0000 + 4096 + 1, page));
    }
}
