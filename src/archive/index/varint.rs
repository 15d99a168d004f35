//! LEB128 varints (seven bits a byte, least significant group first, the high bit set
//! on every byte but the last) and zigzag for signed values: the integer form of the
//! table of contents' metadata blocks.

/// Appends `value` as a varint.
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a signed value, zigzagged (0, −1, 1, −2, … as 0, 1, 2, 3, …) so that small
/// differences either way take one byte.
pub fn put_signed(out: &mut Vec<u8>, value: i64) {
    put(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Reads varints from a byte slice; every read fails (`None`) rather than running past
/// the end or overflowing 64 bits.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pub at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// The next varint.
    #[inline]
    pub fn get(&mut self) -> Option<u64> {
        // Most values of a table (modes, owners, residuals, name lengths) take one byte.
        let first = *self.bytes.get(self.at)?;
        self.at += 1;
        if first < 0x80 {
            return Some(u64::from(first));
        }
        let mut value = u64::from(first & 0x7f);
        let mut shift = 7;
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            // The tenth byte holds bit 63 only.
            if shift == 63 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }

    /// The next varint as a signed (zigzagged) value.
    #[inline]
    pub fn get_signed(&mut self) -> Option<i64> {
        let raw = self.get()?;
        Some((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    /// The next varint, when it fits in 32 bits.
    #[inline]
    pub fn get_u32(&mut self) -> Option<u32> {
        u32::try_from(self.get()?).ok()
    }

    /// The next `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// The next byte.
    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// The whole slice, read or not.
    pub fn all(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether every byte was read.
    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_overflow_is_refused() {
        let values = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let signed = [0, -1, 1, -64, 64, i64::MIN, i64::MAX];
        let mut out = Vec::new();
        values.iter().for_each(|&v| put(&mut out, v));
        signed.iter().for_each(|&v| put_signed(&mut out, v));
        let mut r = Reader::new(&out);
        for &v in &values {
            assert_eq!(r.get(), Some(v));
        }
        for &v in &signed {
            assert_eq!(r.get_signed(), Some(v));
        }
        assert!(r.is_done());
        assert_eq!(r.get(), None);
        // Eleven bytes, or a tenth byte above 1: more than 64 bits.
        assert_eq!(Reader::new(&[0xff; 11]).get(), None);
        let mut big = vec![0xff; 9];
        big.push(2);
        assert_eq!(Reader::new(&big).get(), None);
        // Cut short.
        assert_eq!(Reader::new(&[0x80]).get(), None);
    }
}
