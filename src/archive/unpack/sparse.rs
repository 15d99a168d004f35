//! PAX sparse files, as GNU tar writes them with `--format=posix -S` (format 1.0, its
//! default) or older (0.1, 0.0). The `tar` crate expands only the old GNU `S` entries;
//! for these it hands over the raw data, so the map of data segments is read here.
//!
//! Format 1.0 stores the real name and size in `GNU.sparse.name`/`GNU.sparse.realsize`
//! and puts the map at the start of the data: decimal numbers, one per line (the count,
//! then offset and length of each segment), padded to a 512-byte block. Formats 0.x put
//! the map in the PAX header itself.

use std::io::{self, Read};

use super::write::DataError;

/// Segments a sparse map may hold at most: a map is kept in memory whole (it precedes
/// the data it describes), so a hostile count must not decide how much memory we take.
const MAX_SEGMENTS: usize = 1 << 20;

/// A PAX sparse entry's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaxSparse {
    /// The real name (the header's name is a `GNUSparseFile.PID/NAME` stand-in).
    pub name: Option<Vec<u8>>,
    /// Size of the file, holes included.
    pub real_size: u64,
    /// Bytes of data stored in the archive (the map too, for format 1.0).
    pub stored: u64,
    /// Segments `(offset, length)` given in the header (0.x); `None`: the map leads
    /// the data (1.0).
    pub map: Option<Vec<(u64, u64)>>,
}

impl PaxSparse {
    /// Recognises the `GNU.sparse.*` keys of one entry; `None` when there are none.
    pub fn from_keys(keys: &[(String, Vec<u8>)], stored: u64) -> io::Result<Option<PaxSparse>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let get = |key: &str| {
            keys.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_slice())
        };
        let name = get("GNU.sparse.name").map(<[u8]>::to_vec);
        let number = |key: &str| get(key).map(parse_number).transpose();
        let version = (number("GNU.sparse.major")?, number("GNU.sparse.minor")?);
        if version == (Some(1), Some(0)) {
            let real_size = number("GNU.sparse.realsize")?
                .ok_or_else(|| malformed("GNU.sparse.realsize missing"))?;
            return Ok(Some(PaxSparse {
                name,
                real_size,
                stored,
                map: None,
            }));
        }
        let real_size = match number("GNU.sparse.size")? {
            Some(size) => size,
            None => number("GNU.sparse.realsize")?
                .ok_or_else(|| malformed("GNU.sparse.size missing"))?,
        };
        let map = if let Some(map) = get("GNU.sparse.map") {
            // 0.1: "offset,length,offset,length,..."
            let numbers = map
                .split(|&b| b == b',')
                .map(parse_number)
                .collect::<io::Result<Vec<u64>>>()?;
            pairs(&numbers)?
        } else {
            // 0.0: the keys offset and numbytes, repeated in order.
            let numbers = keys
                .iter()
                .filter(|(k, _)| k == "GNU.sparse.offset" || k == "GNU.sparse.numbytes")
                .map(|(_, v)| parse_number(v))
                .collect::<io::Result<Vec<u64>>>()?;
            if numbers.is_empty() {
                return Err(malformed("unknown GNU sparse format"));
            }
            pairs(&numbers)?
        };
        Ok(Some(PaxSparse {
            name,
            real_size,
            stored,
            map: Some(map),
        }))
    }
}

fn pairs(numbers: &[u64]) -> io::Result<Vec<(u64, u64)>> {
    if !numbers.len().is_multiple_of(2) || numbers.len() / 2 > MAX_SEGMENTS {
        return Err(malformed("bad sparse map"));
    }
    Ok(numbers.chunks(2).map(|p| (p[0], p[1])).collect())
}

fn parse_number(text: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(text)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| malformed("bad number in sparse header"))
}

fn malformed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// Reads a format 1.0 map from the start of the entry's data; returns the segments
/// and the bytes of data the map took.
pub fn read_map(src: &mut impl Read, stored: u64) -> Result<(Vec<(u64, u64)>, u64), DataError> {
    let mut numbers: Vec<u64> = Vec::new();
    let mut wanted: Option<usize> = None;
    let mut current: Option<u64> = None;
    let mut consumed = 0u64;
    let mut block = [0u8; 512];
    loop {
        if consumed + 512 > stored {
            return Err(DataError::Malformed(
                "sparse map runs past the entry".into(),
            ));
        }
        read_block(src, &mut block, stored - consumed)?;
        consumed += 512;
        for &b in &block {
            match b {
                b'0'..=b'9' => {
                    let n = current.unwrap_or(0);
                    let n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(b - b'0')))
                        .ok_or_else(|| {
                            DataError::Malformed("number too large in sparse map".into())
                        })?;
                    current = Some(n);
                }
                b'\n' => {
                    let n = current
                        .take()
                        .ok_or_else(|| DataError::Malformed("empty line in sparse map".into()))?;
                    match wanted {
                        None => {
                            let count = usize::try_from(n).unwrap_or(usize::MAX);
                            if count > MAX_SEGMENTS {
                                return Err(DataError::Malformed(format!(
                                    "sparse map of {n} segments (at most {MAX_SEGMENTS})"
                                )));
                            }
                            wanted = Some(count * 2);
                        }
                        Some(_) => numbers.push(n),
                    }
                    if wanted == Some(numbers.len()) {
                        let map = numbers.chunks(2).map(|p| (p[0], p[1])).collect();
                        return Ok((map, consumed));
                    }
                }
                _ => return Err(DataError::Malformed("bad byte in sparse map".into())),
            }
        }
    }
}

fn read_block(src: &mut impl Read, block: &mut [u8; 512], left: u64) -> Result<(), DataError> {
    let mut filled = 0;
    while filled < block.len() {
        match src.read(&mut block[filled..]) {
            Ok(0) => {
                return Err(DataError::Truncated {
                    missing: left - filled as u64,
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::Stream(e)),
        }
    }
    Ok(())
}

/// Checks that segments are in order, inside the file, and no more than the data the
/// entry holds.
pub fn check_map(map: &[(u64, u64)], real_size: u64, data: u64) -> Result<(), DataError> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(offset, length) in map {
        let bad = |why: &str| DataError::Malformed(format!("sparse map: {why}"));
        if offset < end {
            return Err(bad("segments out of order or overlapping"));
        }
        end = offset
            .checked_add(length)
            .filter(|&e| e <= real_size)
            .ok_or_else(|| bad("segment past the end of the file"))?;
        total = total
            .checked_add(length)
            .filter(|&t| t <= data)
            .ok_or_else(|| bad("more data listed than the entry holds"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn reads_a_one_zero_map_from_the_data() {
        let mut data = b"2\n4997120\n4096\n10485760\n0\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(&[7u8; 4096]);
        let mut src = &data[..];
        let (map, consumed) = read_map(&mut src, data.len() as u64).unwrap();
        assert_eq!(map, vec![(4997120, 4096), (10485760, 0)]);
        assert_eq!(consumed, 512);
        assert_eq!(src.len(), 4096);
        check_map(&map, 10485760, 4096).unwrap();
        assert!(check_map(&map, 10485759, 4096).is_err());
        assert!(check_map(&map, 10485760, 4095).is_err());
    }

    #[test]
    fn refuses_hostile_maps() {
        let mut huge = b"99999999999\n".to_vec();
        huge.resize(512, 0);
        assert!(matches!(
            read_map(&mut &huge[..], 512),
            Err(DataError::Malformed(_))
        ));
        let short = b"1\n0\n".to_vec();
        assert!(matches!(
            read_map(&mut &short[..], 512),
            Err(DataError::Truncated { .. })
        ));
        assert!(check_map(&[(10, 5), (12, 1)], 100, 100).is_err());
    }

    #[test]
    fn recognises_the_formats() {
        let one = PaxSparse::from_keys(
            &keys(&[
                ("GNU.sparse.major", "1"),
                ("GNU.sparse.minor", "0"),
                ("GNU.sparse.name", "dir/f"),
                ("GNU.sparse.realsize", "100"),
            ]),
            1024,
        )
        .unwrap()
        .unwrap();
        assert_eq!(one.name.as_deref(), Some(&b"dir/f"[..]));
        assert_eq!((one.real_size, one.map), (100, None));
        let zero_one = PaxSparse::from_keys(
            &keys(&[("GNU.sparse.size", "100"), ("GNU.sparse.map", "0,10,50,10")]),
            20,
        )
        .unwrap()
        .unwrap();
        assert_eq!(zero_one.map, Some(vec![(0, 10), (50, 10)]));
        assert!(PaxSparse::from_keys(&[], 0).unwrap().is_none());
    }
}
