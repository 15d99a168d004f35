//! The bytes a benchmark writes: random, so that a compressing or deduplicating file
//! system cannot make a write look faster than the disk is.

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

/// A page-aligned buffer of at least `len` bytes (aligned for O_DIRECT), filled with
/// random data to its capacity.
pub fn random_buffer(len: usize, seed: u64) -> AlignedBuf {
    let mut buf = AlignedBuf::new(len);
    let cap = buf.capacity();
    // SAFETY: the pointer is valid for `cap` bytes, and all of them are written before
    // they are marked filled.
    unsafe {
        let bytes = std::slice::from_raw_parts_mut(buf.as_mut_ptr(), cap);
        XorShift::new(seed.wrapping_add(0x5EED)).fill(bytes);
        buf.set_len(cap);
    }
    buf
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
