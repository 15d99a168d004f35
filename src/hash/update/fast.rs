//! A fast path for reading OLD: the lines `spate hash --json` itself writes (keys in
//! sorted order, no spaces, plain `path`, lowercase digests, whole numbers) are taken
//! apart in place. Building a JSON map per line was a third of an unchanged tree's
//! `--update` time, more than the `stat` of every file. Anything else (an escape in the
//! name, `path_hex`, an unknown key, a number that is not plainly written) gets `None`
//! and goes to the general parser, which accepts or refuses it as it always did; so
//! this path can only ever agree with it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::algo::{ALL, Digests};
use crate::manifest::FileMeta;

use super::old::OldRecord;

/// The record of `line` when it is in the exact form spate writes, else `None`.
pub(super) fn parse(line: &[u8]) -> Option<OldRecord> {
    let mut rest = line.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let mut path = None;
    let mut numbers: [Option<&[u8]>; 6] = [None; 6];
    let mut found: [Option<&[u8]>; ALL.len()] = [None; ALL.len()];
    loop {
        let (key, after) = string(rest)?;
        let after = after.strip_prefix(b":")?;
        let (value, after) = if after.first() == Some(&b'"') {
            let (text, after) = string(after)?;
            (Value::Text(text), after)
        } else {
            let end = after.iter().position(|&b| b == b',').unwrap_or(after.len());
            (Value::Number(&after[..end]), &after[end..])
        };
        match (key, value) {
            (b"path", Value::Text(text)) => set(&mut path, text)?,
            (key, Value::Number(n)) => {
                let slot = NUMBERS.iter().position(|k| k.as_bytes() == key)?;
                set(&mut numbers[slot], n)?;
            }
            (key, Value::Text(hex)) => {
                let slot = ALL.iter().position(|a| a.name().as_bytes() == key)?;
                let algo = ALL[slot];
                let lower = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
                if hex.len() != algo.hex_len() || !hex.iter().all(lower) {
                    return None;
                }
                set(&mut found[slot], hex)?;
            }
        }
        if after.is_empty() {
            break;
        }
        rest = after.strip_prefix(b",")?;
    }
    let [size, mtime, ctime, inode, dev, hashed] = numbers;
    let digests: Digests = ALL
        .iter()
        .zip(found)
        .filter_map(|(algo, hex)| Some((*algo, std::str::from_utf8(hex?).ok()?.to_string())))
        .collect();
    if digests.is_empty() {
        return None;
    }
    let path = std::str::from_utf8(path?).ok()?;
    Some(OldRecord {
        path: PathBuf::from(OsStr::from_bytes(path.as_bytes())),
        size: whole(size?)?.try_into().ok()?,
        digests,
        meta: FileMeta {
            mtime_ns: whole(mtime?)?.try_into().ok()?,
            ctime_ns: whole(ctime?)?.try_into().ok()?,
            inode: whole(inode?)?.try_into().ok()?,
            dev: whole(dev?)?.try_into().ok()?,
            hashed_ns: match hashed {
                Some(n) => Some(whole(n)?.try_into().ok()?),
                None => None,
            },
        },
    })
}

/// The number fields, in the order of the destructuring in [`parse`].
const NUMBERS: [&str; 6] = ["size", "mtime_ns", "ctime_ns", "inode", "dev", "hashed_ns"];

enum Value<'a> {
    Text(&'a [u8]),
    Number(&'a [u8]),
}

/// A quoted string without escapes or control characters at the start of `rest`, and
/// what follows it.
fn string(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if rest[end] != b'"' {
        return None;
    }
    Some((&rest[..end], &rest[end + 1..]))
}

/// A whole number written as JSON writes it (an optional minus, no leading zero).
fn whole(text: &[u8]) -> Option<i128> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits[0] != b'0');
    if !plain || digits.len() > 20 {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Fills `slot`, refusing a key given twice.
fn set<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::Algo;
    use crate::manifest::parse::{self, Hints};
    use crate::manifest::{self as m, Format, Style};
    use std::path::Path;

    /// What the general parser makes of `line`.
    fn general(line: &[u8]) -> Option<(PathBuf, u64, Digests, FileMeta)> {
        let (record, meta) =
            parse::parse_json_line(line, &Hints::for_manifest(b"", None)).ok()??;
        let digests = record
            .expected
            .iter()
            .filter_map(|e| Some((e.algos.iter().next()?, e.hex.clone())))
            .collect();
        Some((
            PathBuf::from(OsStr::from_bytes(&record.name)),
            record.size?,
            digests,
            meta?,
        ))
    }

    #[test]
    fn agrees_with_the_general_parser_or_defers_to_it() {
        let style = Style {
            format: Format::Json,
            zero: false,
        };
        let digests: Digests = vec![
            (Algo::Blake3, "ab".repeat(32)),
            (Algo::Sha256, "0f".repeat(32)),
            (Algo::Md5, "12".repeat(16)),
        ];
        let meta = FileMeta {
            mtime_ns: -1_500_000_000,
            ctime_ns: 1_700_000_000_123_456_789,
            inode: u64::MAX,
            dev: 2049,
            hashed_ns: Some(1_700_000_001_000_000_000),
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for name in [
            &b"t/plain"[..],
            b"t/with space/\xc3\xa9",
            b"t/quote\"d",
            b"t/back\\slash",
            b"t/new\nline",
            b"t/not-utf8-\xff",
        ] {
            let mut out = Vec::new();
            let path = Path::new(OsStr::from_bytes(name));
            m::push_with_meta(&mut out, style, path, 42, &digests, Some(&meta));
            out.pop(); // the newline
            lines.push(out);
        }
        let plain = String::from_utf8(lines[0].clone()).unwrap();
        for edited in [
            plain.replace("\"size\":42", "\"size\":042"),
            plain.replace("\"size\":42", "\"size\":4.2e1"),
            plain.replace("\"size\":42", "\"size\":+42"),
            plain.replace("\"dev\":2049", "\"dev\":-1"),
            plain.replace("\"md5\":\"", "\"md5\":\"A"),
            plain.replace("\"path\"", "\"extra\":1,\"path\""),
            plain.replace(",\"hashed_ns\":1700000001000000000", ""),
            plain.replace(",\"inode\":18446744073709551615", ""),
            plain.replace("{", "{ "),
            format!("{plain},\"size\":42}}"),
        ] {
            lines.push(edited.into_bytes());
        }
        let mut fast_ones = 0;
        for line in &lines {
            let Some(fast) = parse(line) else {
                continue;
            };
            fast_ones += 1;
            let expected = general(line)
                .unwrap_or_else(|| panic!("only the fast path took {}", line.escape_ascii()));
            assert_eq!(
                (fast.path, fast.size, fast.digests, fast.meta),
                expected,
                "{}",
                line.escape_ascii()
            );
        }
        assert!(fast_ones == 3, "the plain lines take the fast path");
        assert!(parse(&lines[0]).is_some());
        assert!(parse(&lines[3]).is_none(), "an escape defers");
        assert!(parse(&lines[5]).is_none(), "path_hex defers");
    }
}
