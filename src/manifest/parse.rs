//! Reading manifest lines back: every format `spate hash`, b3sum and coreutils write.
//!
//! `check` is a security tool, so the parser is strict where a lenient reading could
//! turn into a false "OK": a line it cannot read in exactly one way is malformed. After
//! a leading `\` only the escapes `\\`, `\n` and `\r` are valid (b3sum's rule); a name
//! may not contain a NUL byte; a digest must have the length of its algorithm.
//!
//! Accepted lines (a trailing CR is dropped, so CRLF files work):
//! - `HASH  NAME` and `HASH *NAME` (text and binary mode of the GNU tools, and b3sum);
//! - `ALGO (NAME) = HASH` (BSD style, `--tag`), e.g. `SHA256 (a.txt) = …`;
//! - `{"path": …, "blake3": …}` (spate's `--json`; `path_hex` wins over `path`);
//! - blank lines and lines starting with `#` are skipped.

use serde_json::{Map, Value};

use crate::algo::{Algo, AlgoSet};
use crate::manifest::FileMeta;

/// Longest line read; anything longer is malformed. A real line is a digest and a path
/// of at most 4096 bytes, twice that when escaped.
pub const MAX_LINE: usize = 64 * 1024;

/// One expected digest. `algos` has more than one member only for a GNU line whose
/// digest length fits several algorithms (64 hex digits: BLAKE3 or SHA-256) when
/// nothing else says which: the line then verifies if either digest matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub algos: AlgoSet,
    /// Lower-case hex.
    pub hex: String,
}

/// One file named by a manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The name exactly as it was before escaping: raw bytes, never lossy.
    pub name: Vec<u8>,
    pub expected: Vec<Expected>,
    /// Size in bytes, when the line says (JSON lines do).
    pub size: Option<u64>,
}

/// What decides the algorithm of a GNU line, whose text does not name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// `-a`: every line must be of this algorithm.
    pub forced: Option<Algo>,
    /// What a 64-digit GNU line is: from the manifest's name (`*.b3`, `SHA256SUMS`) or,
    /// when that says nothing, both BLAKE3 and SHA-256.
    pub digits_64: AlgoSet,
    /// The manifest is an archive's table of contents, whose BLAKE3 digests are 16
    /// bytes (32 digits): the start of the file's.
    pub table_digests: bool,
}

impl Hints {
    /// Hints for a manifest called `name` (its file name), with `-a` if given.
    pub fn for_manifest(name: &[u8], forced: Option<Algo>) -> Self {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        let mut digits_64 = AlgoSet::default();
        if ["b3", "blake3"]
            .iter()
            .any(|k| lower.ends_with(&format!(".{k}")) || lower.contains(&format!("{k}sum")))
        {
            digits_64.insert(Algo::Blake3);
        }
        if lower.contains("sha256") {
            digits_64.insert(Algo::Sha256);
        }
        if digits_64.is_empty() {
            digits_64 = AlgoSet::one(Algo::Blake3).union(AlgoSet::one(Algo::Sha256));
        }
        Hints {
            forced,
            digits_64,
            table_digests: false,
        }
    }
}

/// Parses one line (without its `\n`). `Ok(None)` for blank lines and comments; `Err`
/// says why a line is malformed.
pub fn parse_line(line: &[u8], hints: &Hints) -> Result<Option<Record>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"#") {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    let record = if line.starts_with(b"{") {
        parse_json(line, hints)?
    } else {
        let (escaped, body) = match line.strip_prefix(b"\\") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let (raw_name, expected) = match split_tag(body) {
            Some((algo, name, hex)) => (name, tagged(algo, hex, hints)?),
            None => {
                let (hex, name) = split_gnu(body)?;
                (name, untagged(hex, hints)?)
            }
        };
        let name = if escaped {
            unescape(raw_name)?
        } else {
            raw_name.to_vec()
        };
        Record {
            name,
            expected: vec![expected],
            size: None,
        }
    };
    if record.name.is_empty() {
        return Err("empty file name".into());
    }
    if record.name.contains(&0) {
        return Err("NUL byte in file name".into());
    }
    Ok(Some(record))
}

/// Splits a BSD line `ALGO (NAME) = HASH`. The name may itself contain `) = `, so the
/// digest is what follows the last one.
fn split_tag(body: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let open = body.windows(2).position(|w| w == b" (")?;
    let algo = std::str::from_utf8(&body[..open]).ok()?;
    if algo.is_empty() || !algo.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let rest = &body[open + 2..];
    let close = rest.windows(4).rposition(|w| w == b") = ")?;
    Some((algo, &rest[..close], &rest[close + 4..]))
}

/// Splits a GNU line `HASH  NAME` or `HASH *NAME`.
fn split_gnu(body: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let digits = body.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err("expected a hex digest or 'ALGO (name) = digest'".into());
    }
    match &body[digits..] {
        [b' ', b' ' | b'*', name @ ..] => Ok((&body[..digits], name)),
        _ => Err("expected two spaces or ' *' between digest and name".into()),
    }
}

/// Names that `--tag` lines use; coreutils' `cksum` also writes `SHA2-256`.
fn algo_from_tag(tag: &str) -> Option<Algo> {
    match tag.to_ascii_uppercase().as_str() {
        "SHA2-256" => Some(Algo::Sha256),
        "SHA2-512" => Some(Algo::Sha512),
        "XXH3-64" | "XXH3_64" => Some(Algo::Xxh3),
        other => Algo::from_tag(other),
    }
}

fn tagged(tag: &str, hex: &[u8], hints: &Hints) -> Result<Expected, String> {
    let algo = algo_from_tag(tag).ok_or_else(|| format!("unknown algorithm {tag:?}"))?;
    if let Some(forced) = hints.forced
        && forced != algo
    {
        return Err(format!("a {algo} line, but -a {forced} was given"));
    }
    Ok(Expected {
        algos: AlgoSet::one(algo),
        hex: digest_hex(hex, algo.hex_len())?,
    })
}

fn untagged(hex: &[u8], hints: &Hints) -> Result<Expected, String> {
    let algos = match hints.forced {
        Some(algo) => AlgoSet::one(algo),
        None => match hex.len() {
            16 => AlgoSet::one(Algo::Xxh3),
            32 => AlgoSet::one(Algo::Md5),
            40 => AlgoSet::one(Algo::Sha1),
            64 => hints.digits_64,
            128 => AlgoSet::one(Algo::Sha512),
            n => return Err(format!("a {n}-digit digest fits no known algorithm")),
        },
    };
    let len = algos.iter().next().map_or(0, Algo::hex_len);
    Ok(Expected {
        algos,
        hex: digest_hex(hex, len)?,
    })
}

/// Validates a digest: exactly `len` hex digits; returned in lower case.
fn digest_hex(hex: &[u8], len: usize) -> Result<String, String> {
    if hex.len() != len || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!("digest is not {len} hex digits"));
    }
    Ok(String::from_utf8_lossy(hex).to_ascii_lowercase())
}

/// Undoes the escaping of a line that starts with `\`.
fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'\\') => out.push(b'\\'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(&other) => {
                return Err(format!(
                    "invalid escape '\\{}' in file name",
                    other.escape_ascii()
                ));
            }
            None => return Err("file name ends in a lone backslash".into()),
        }
    }
    Ok(out)
}

/// Parses a `--json` line as [`parse_line`] does, with the file's metadata when the
/// line has it (`Ok((record, None))` for a line without). `Ok(None)` for a blank line or
/// a comment; a line that is not a JSON object is malformed.
pub fn parse_json_line(
    line: &[u8],
    hints: &Hints,
) -> Result<Option<(Record, Option<FileMeta>)>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"#") {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    if !line.starts_with(b"{") {
        return Err("not a JSON object".into());
    }
    let obj = json_object(line)?;
    let meta = FileMeta::from_json(&obj)?;
    let record = json_record(&obj, hints)?;
    if record.name.is_empty() {
        return Err("empty file name".into());
    }
    if record.name.contains(&0) {
        return Err("NUL byte in file name".into());
    }
    Ok(Some((record, meta)))
}

/// Parses one line as [`parse_line`] does, with the file's metadata when it is a JSON
/// line that has it (`spate check`'s MODIFIED and CORRUPT need it). Metadata that is
/// there but incomplete or not numbers is dropped, not an error: the digest is still
/// checked, as on a line without it, rather than the file going unverified.
pub fn parse_line_with_meta(
    line: &[u8],
    hints: &Hints,
) -> Result<Option<(Record, Option<FileMeta>)>, String> {
    let json = line.strip_suffix(b"\r").unwrap_or(line).starts_with(b"{");
    if json && let Ok(parsed) = parse_json_line(line, hints) {
        return Ok(parsed);
    }
    Ok(parse_line(line, hints)?.map(|record| (record, None)))
}

fn json_object(line: &[u8]) -> Result<Map<String, Value>, String> {
    serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))
}

/// Parses a `--json` line: `path` or `path_hex`, optional `size`, one field per digest.
fn parse_json(line: &[u8], hints: &Hints) -> Result<Record, String> {
    json_record(&json_object(line)?, hints)
}

fn json_record(obj: &Map<String, Value>, hints: &Hints) -> Result<Record, String> {
    let name = match (obj.get("path_hex"), obj.get("path")) {
        (Some(Value::String(hex)), _) => decode_hex(hex).ok_or("invalid path_hex")?,
        (None, Some(Value::String(path))) => path.as_bytes().to_vec(),
        _ => return Err("no \"path\" string".into()),
    };
    let size = match obj.get("size") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or("\"size\" is not a whole number")?),
    };
    let mut expected = Vec::new();
    for algo in crate::algo::ALL {
        if hints.forced.is_some_and(|f| f != algo) {
            continue;
        }
        match obj.get(algo.name()) {
            None => {}
            Some(Value::String(hex)) => {
                let len = match algo {
                    Algo::Blake3 if hints.table_digests && hex.len() == 32 => 32,
                    _ => algo.hex_len(),
                };
                expected.push(Expected {
                    algos: AlgoSet::one(algo),
                    hex: digest_hex(hex.as_bytes(), len).map_err(|e| format!("{algo}: {e}"))?,
                })
            }
            Some(_) => return Err(format!("\"{algo}\" is not a string")),
        }
    }
    if expected.is_empty() {
        return Err(match hints.forced {
            Some(algo) => format!("no \"{algo}\" digest"),
            None => "no digest field".into(),
        });
    }
    Ok(Record {
        name,
        expected,
        size,
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Format, push_record};
    use proptest::prelude::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn hints() -> Hints {
        Hints::for_manifest(b"sums.txt", None)
    }

    fn parse(line: &[u8]) -> Record {
        parse_line(line, &hints()).unwrap().unwrap()
    }

    #[test]
    fn gnu_text_and_binary_lines() {
        let r = parse(format!("{SHA}  a b").as_bytes());
        assert_eq!(r.name, b"a b");
        assert_eq!(r.expected[0].hex, SHA);
        assert_eq!(
            r.expected[0].algos.iter().count(),
            2,
            "64 digits: ambiguous"
        );
        let r = parse(format!("{SHA} *bin").as_bytes());
        assert_eq!(r.name, b"bin");
        let r = parse(format!("{SHA}  *star").as_bytes());
        assert_eq!(
            r.name, b"*star",
            "a leading '*' after two spaces is the name"
        );
        let r = parse(b"900150983cd24fb0d6963f7d28e17f72  x\r");
        assert_eq!(r.name, b"x", "CRLF");
        assert_eq!(r.expected[0].algos, AlgoSet::one(Algo::Md5));
    }

    #[test]
    fn tag_lines_name_their_algorithm() {
        let r = parse(format!("SHA256 (a) = b) = {SHA}").as_bytes());
        assert_eq!(r.name, b"a) = b");
        assert_eq!(r.expected[0].algos, AlgoSet::one(Algo::Sha256));
        let r = parse(format!("SHA2-256 (x) = {SHA}").as_bytes());
        assert_eq!(r.expected[0].algos, AlgoSet::one(Algo::Sha256));
        assert!(parse_line(format!("MD5 (x) = {SHA}").as_bytes(), &hints()).is_err());
        assert!(parse_line(format!("BLAKE2b (x) = {SHA}").as_bytes(), &hints()).is_err());
    }

    #[test]
    fn escapes_are_strict() {
        let r = parse(format!("\\{SHA}  a\\\\b\\nc\\rd").as_bytes());
        assert_eq!(r.name, b"a\\b\nc\rd");
        let r = parse(format!("{SHA}  a\\nb").as_bytes());
        assert_eq!(r.name, b"a\\nb", "no leading backslash: taken literally");
        assert!(parse_line(format!("\\{SHA}  a\\tb").as_bytes(), &hints()).is_err());
        assert!(parse_line(format!("\\{SHA}  a\\").as_bytes(), &hints()).is_err());
    }

    #[test]
    fn bad_lines_are_errors_and_comments_are_skipped() {
        assert_eq!(parse_line(b"# comment", &hints()), Ok(None));
        assert_eq!(parse_line(b"  \r", &hints()), Ok(None));
        for bad in [
            format!("{SHA} x"),
            format!("{}  x", &SHA[..63]),
            format!("{SHA}  "),
            format!("{SHA}  a\0b"),
            "zz  x".to_string(),
        ] {
            assert!(parse_line(bad.as_bytes(), &hints()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forced_algorithm_and_name_hints() {
        let forced = Hints::for_manifest(b"x", Some(Algo::Sha256));
        let r = parse_line(format!("{SHA}  f").as_bytes(), &forced)
            .unwrap()
            .unwrap();
        assert_eq!(r.expected[0].algos, AlgoSet::one(Algo::Sha256));
        assert!(parse_line(b"900150983cd24fb0d6963f7d28e17f72  x", &forced).is_err());
        assert_eq!(
            Hints::for_manifest(b"doc.b3", None).digits_64,
            AlgoSet::one(Algo::Blake3)
        );
        assert_eq!(
            Hints::for_manifest(b"SHA256SUMS", None).digits_64,
            AlgoSet::one(Algo::Sha256)
        );
    }

    #[test]
    fn json_lines() {
        let r = parse(format!(r#"{{"path":"a","size":3,"sha256":"{SHA}"}}"#).as_bytes());
        assert_eq!((r.name.as_slice(), r.size), (&b"a"[..], Some(3)));
        let r = parse(format!(r#"{{"path":"?","path_hex":"67ff","sha256":"{SHA}"}}"#).as_bytes());
        assert_eq!(r.name, b"g\xff");
        assert!(parse_line(br#"{"path":"a"}"#, &hints()).is_err());
        assert!(parse_line(b"{not json", &hints()).is_err());
    }

    #[test]
    fn metadata_comes_with_json_lines_and_incomplete_metadata_is_dropped() {
        let full = format!(
            r#"{{"path":"a","size":3,"sha256":"{SHA}","mtime_ns":5,"ctime_ns":6,"inode":7,"dev":8}}"#
        );
        let (_, meta) = parse_line_with_meta(full.as_bytes(), &hints())
            .unwrap()
            .unwrap();
        assert_eq!(meta.map(|m| (m.mtime_ns, m.inode)), Some((5, 7)));
        let partial = format!(r#"{{"path":"a","size":3,"sha256":"{SHA}","mtime_ns":5}}"#);
        let (record, meta) = parse_line_with_meta(partial.as_bytes(), &hints())
            .unwrap()
            .unwrap();
        assert_eq!((record.name.as_slice(), meta), (&b"a"[..], None));
        let gnu = format!("{SHA}  a");
        let (_, meta) = parse_line_with_meta(gnu.as_bytes(), &hints())
            .unwrap()
            .unwrap();
        assert_eq!(meta, None);
        assert!(parse_line_with_meta(b"{not json", &hints()).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_line(&line, &hints());
        }

        #[test]
        fn every_name_written_reads_back(
            name in proptest::collection::vec(1u8..=255, 1..60),
            format in prop_oneof![Just(Format::Gnu), Just(Format::Tag), Just(Format::Json)],
        ) {
            let mut out = Vec::new();
            let path = Path::new(OsStr::from_bytes(&name));
            push_record(&mut out, format, path, 3, &vec![(Algo::Sha256, SHA.to_string())]);
            prop_assert_eq!(out.pop(), Some(b'\n'));
            let r = parse_line(&out, &hints()).unwrap().unwrap();
            prop_assert_eq!(&r.name, &name);
            prop_assert_eq!(&r.expected[0].hex, SHA);
        }
    }
}
