//! The bytes a benchmark writes: random by default, so that a compressing or
//! deduplicating file system cannot make a write look faster than the disk is; zeros
//! or partly compressible data on request (`--pattern`), to measure what such a file
//! system gains.
//!
//! Buffers are filled once per job, before the clock starts, never per operation: a
//! write only gets its 4 KiB blocks stamped ([`stamp`], 8 bytes a block), so the
//! generator cannot become the bottleneck (KDiskMark's refill_buffers did).

use crate::read::buffer::AlignedBuf;

/// xorshift64*: fast, and random enough for offsets and for data no file system can
/// compress.
#[derive(Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` for offsets (n is far below 2^64).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// SplitMix64's output function: distinct seeds to unrelated 64-bit states.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the written blocks hold (`--pattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Random bytes, every 4 KiB block stamped unique: nothing to compress or dedupe.
    Random,
    /// Zeros, written as they are (fio's `zero_buffers`): as much as a file system can
    /// compress and deduplicate.
    Zero,
    /// PCT% of every 4 KiB block zeros, the rest random (fio's
    /// `buffer_compress_percentage`); blocks are still stamped unique.
    Compressible(u8),
}

impl Pattern {
    /// `random`, `zero` or `compressible:PCT`, as `--pattern` takes it.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        match s {
            "random" => Ok(Pattern::Random),
            "zero" | "zeros" => Ok(Pattern::Zero),
            _ => s
                .strip_prefix("compressible:")
                .map(|pct| pct.trim_end_matches('%'))
                .and_then(|pct| pct.parse::<u8>().ok())
                .filter(|&pct| pct <= 100)
                .map(Pattern::Compressible)
                .ok_or_else(|| {
                    "use random, zero or compressible:PCT (PCT from 0 to 100)".to_string()
                }),
        }
    }

    /// The name `--pattern` takes and the report shows.
    pub fn name(self) -> String {
        match self {
            Pattern::Random => "random".into(),
            Pattern::Zero => "zero".into(),
            Pattern::Compressible(pct) => format!("compressible:{pct}"),
        }
    }

    /// Whether writes get their blocks stamped unique (zeros stay zeros).
    pub fn stamped(self) -> bool {
        self != Pattern::Zero
    }

    /// Fills `bytes` with this pattern.
    pub fn fill(self, bytes: &mut [u8], seed: u64) {
        // Mixed first: XorShift::new sets the low bit, so seeds n and n + 1 could
        // otherwise start the same stream and fill two buffers alike.
        let mut rng = XorShift::new(splitmix64(seed));
        match self {
            Pattern::Random => rng.fill(bytes),
            Pattern::Zero => bytes.fill(0),
            Pattern::Compressible(pct) => {
                for block in bytes.chunks_mut(4096) {
                    let random = block.len() * (100 - usize::from(pct)) / 100;
                    let (head, tail) = block.split_at_mut(random);
                    rng.fill(head);
                    tail.fill(0);
                }
            }
        }
    }
}

/// A page-aligned buffer of at least `len` bytes (aligned for O_DIRECT), filled with
/// random data to its capacity.
#[cfg(test)]
pub fn random_buffer(len: usize, seed: u64) -> AlignedBuf {
    pattern_buffer(len, seed, Pattern::Random)
}

/// A page-aligned buffer of at least `len` bytes, filled with `pattern` to its capacity.
pub fn pattern_buffer(len: usize, seed: u64, pattern: Pattern) -> AlignedBuf {
    let mut buf = AlignedBuf::new(len);
    fill(&mut buf, seed, pattern);
    buf
}

/// Fills `buf` with `pattern` to its capacity.
fn fill(buf: &mut AlignedBuf, seed: u64, pattern: Pattern) {
    let cap = buf.capacity();
    // SAFETY: the pointer is valid for `cap` bytes, and all of them are written before
    // they are marked filled.
    unsafe {
        let bytes = std::slice::from_raw_parts_mut(buf.as_mut_ptr(), cap);
        pattern.fill(bytes, seed);
        buf.set_len(cap);
    }
}

/// Distinct data a write job cycles through, per job: the buffers in flight and, up to
/// this much, spare buffers filled before the clock starts. Written blocks then repeat
/// no sooner than every 16 MiB (besides the stamp that makes every 4 KiB block unique),
/// so neither a deduplicating nor a compressing device can write less than asked,
/// while memory stays bounded.
pub const WRITE_RING_BYTES: u64 = 16 << 20;

/// The buffers of worker `worker` of a job, filled with its pattern: one per operation
/// in flight, then the spares a write job cycles through as well (enough that the
/// job's buffers add up to [`WRITE_RING_BYTES`]; none for a job that only reads, or
/// whose buffers in flight hold that much already).
///
/// They are carved from one mapping on transparent huge pages where the kernel has
/// them ([`AlignedBuf::in_region`]): every buffer of up to 2 MiB is then one physical
/// segment, so the requests the device sees do not depend on where the page allocator
/// happened to put 4 KiB pages in this run.
pub fn job_buffers(
    spec: &super::job::JobSpec,
    worker: usize,
) -> (Vec<AlignedBuf>, Vec<AlignedBuf>) {
    let spares = if spec.rw.writes() {
        let per_worker = WRITE_RING_BYTES / spec.jobs as u64;
        (per_worker / spec.bs).saturating_sub(spec.iodepth as u64) as usize
    } else {
        0
    };
    let count = spec.iodepth + spares;
    let bs = spec.bs as usize;
    let mut all = AlignedBuf::in_region(count, bs)
        .unwrap_or_else(|| (0..count).map(|_| AlignedBuf::new(bs)).collect());
    for (i, buf) in all.iter_mut().enumerate() {
        let seed = match i.checked_sub(spec.iodepth) {
            None => (worker * 1000 + i) as u64,
            // Seeds apart from those of the buffers in flight (worker × 1000 + slot).
            Some(spare) => ((worker as u64) << 32) | (0x8000_0000 + spare as u64),
        };
        fill(buf, seed, spec.pattern);
    }
    let spares = all.split_off(spec.iodepth.min(all.len()));
    (all, spares)
}

/// The generator's throughput for `pattern`, bytes per second: the time to fill 16 MiB
/// of memory already faulted in (what the report gives as `generate_mb_s`, to show it
/// is far above the disk; first-touch page faults are the allocator's cost, not the
/// generator's).
pub fn generation_rate(pattern: Pattern) -> f64 {
    const LEN: usize = 16 << 20;
    let mut buf = pattern_buffer(LEN, 1, pattern);
    // SAFETY: the whole capacity was written by pattern_buffer.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr(), buf.capacity()) };
    let started = std::time::Instant::now();
    pattern.fill(bytes, 2);
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    std::hint::black_box(&buf);
    LEN as f64 / secs
}

/// Makes the first `len` bytes of a buffer unique before it is written again: the
/// first 8 bytes of every 4 KiB block get the offset and a counter, so a deduplicating
/// file system sees no two equal blocks (fio's `scramble_buffers`), at the cost of a
/// few stores instead of refilling the buffer.
pub fn stamp(buf: &mut AlignedBuf, len: usize, offset: u64, counter: u64) {
    let len = len.min(buf.len());
    // SAFETY: the first `buf.len() >= len` bytes are initialised, the pointer is valid
    // for them, and `buf` is borrowed mutably while the slice lives.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr(), len) };
    stamp_slice(bytes, offset, counter);
}

/// [`stamp`] on bytes of our own.
pub fn stamp_slice(bytes: &mut [u8], offset: u64, counter: u64) {
    for (i, block) in bytes.chunks_mut(4096).enumerate() {
        let tag = (offset + i as u64 * 4096) ^ counter.rotate_left(40);
        let n = block.len().min(8);
        block[..n].copy_from_slice(&tag.to_le_bytes()[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_buffers_fill_one_huge_page_mapping_and_only_writes_get_spares() {
        use super::super::job::{JobSpec, Rw};
        let spec = |rw| JobSpec {
            name: "t".into(),
            rw,
            rwmixread: 50,
            bs: 1 << 20,
            iodepth: 8,
            jobs: 2,
            runtime: std::time::Duration::from_secs(1),
            end_fsync: false,
            fsync_every: 0,
            pattern: Pattern::Random,
        };
        let (reads, none) = job_buffers(&spec(Rw::Read), 0);
        assert_eq!((reads.len(), none.len()), (8, 0));
        // 16 MiB over 2 workers: 8 MiB each, all of it in flight already.
        let (writes, spares) = job_buffers(&spec(Rw::Write), 1);
        assert_eq!((writes.len(), spares.len()), (8, 0));
        let one = JobSpec {
            jobs: 1,
            ..spec(Rw::Write)
        };
        let (writes, spares) = job_buffers(&one, 0);
        assert_eq!((writes.len(), spares.len()), (8, 8));
        let all: Vec<&AlignedBuf> = writes.iter().chain(&spares).collect();
        let base = all[0].as_ptr() as usize;
        assert_eq!(
            base % crate::memory::HUGE_PAGE,
            0,
            "on a huge-page boundary"
        );
        for (i, buf) in all.iter().enumerate() {
            assert_eq!(
                buf.as_ptr() as usize,
                base + (i << 20),
                "one mapping, in order"
            );
            assert_eq!(buf.len(), 1 << 20, "filled");
        }
        assert!(all[0][..] != all[8][..], "spares hold other data");
    }

    #[test]
    fn stamped_blocks_differ() {
        let mut buf = random_buffer(8192, 1);
        let copy = buf.to_vec();
        stamp(&mut buf, 8192, 0, 1);
        assert_ne!(buf[..4096], buf[4096..]);
        assert_ne!(&buf[..], &copy[..], "stamping changes the bytes");
        assert_eq!(
            buf[8..4096],
            copy[8..4096],
            "and only the first 8 of a block"
        );
    }

    #[test]
    fn patterns_compress_as_named() {
        let compressed = |p: Pattern| {
            let buf = pattern_buffer(1 << 20, 3, p);
            zstd::bulk::compress(&buf, 3).unwrap().len() as f64 / buf.len() as f64
        };
        assert!(compressed(Pattern::Random) > 0.99);
        assert!(compressed(Pattern::Zero) < 0.01);
        let half = compressed(Pattern::Compressible(50));
        assert!((0.45..0.55).contains(&half), "{half}");
        let most = compressed(Pattern::Compressible(90));
        assert!((0.07..0.13).contains(&most), "{most}");
        assert_eq!(
            Pattern::parse("compressible:101"),
            Err(Pattern::parse("x").unwrap_err())
        );
        assert_eq!(
            Pattern::parse("compressible:40%"),
            Ok(Pattern::Compressible(40))
        );
    }

    #[test]
    fn neighbouring_seeds_fill_different_buffers() {
        let bufs: Vec<Vec<u8>> = (0..64)
            .map(|seed| random_buffer(4096, seed).to_vec())
            .collect();
        let distinct: std::collections::HashSet<&Vec<u8>> = bufs.iter().collect();
        assert_eq!(distinct.len(), bufs.len());
    }

    #[test]
    fn random_data_does_not_compress() {
        let buf = random_buffer(1 << 16, 7);
        let distinct = buf.iter().collect::<std::collections::HashSet<_>>().len();
        assert_eq!(distinct, 256);
        assert!(
            buf.chunks(8)
                .zip(buf.chunks(8).skip(1))
                .all(|(a, b)| a != b)
        );
    }
}
