//! Manifest lines: the exact text `b3sum`, `sha256sum` and friends print and read.
//!
//! A line is `HASH  PATH` (GNU style) or `ALGO (PATH) = HASH` (BSD style, `--tag`).
//! When the path contains a backslash, a newline or a carriage return, the whole line
//! starts with `\` and those bytes are written as `\\`, `\n` and `\r`, which is the rule
//! of GNU coreutils 9 (b3sum 1.2 escapes only `\` and newline; the extra `\r` escape
//! keeps a line from being misread on a CRLF-converting system and newer b3sum reads it).
//! Every other byte, including bytes that are not UTF-8, is written as is, so a name
//! round-trips exactly through `sha256sum -c` and `spate check`.

pub mod meta;
pub mod parse;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::algo::Digests;
pub use meta::FileMeta;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `HASH  PATH`, as b3sum / sha256sum.
    Gnu,
    /// `ALGO (PATH) = HASH`, as `sha256sum --tag`.
    Tag,
    /// One JSON object per line.
    Json,
    /// `HASH` alone, as `b3sum --no-names`.
    NoNames,
    /// The digest's bytes, not hex, with nothing after them, as `b3sum --raw`.
    Raw,
}

/// How text lines end: the format, and `sha256sum -z`'s NUL terminator, with which
/// names are written as they are (a NUL cannot be in a name, so nothing needs escaping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub format: Format,
    pub zero: bool,
}

/// True when the name needs the leading-backslash escape.
pub fn needs_escape(name: &[u8]) -> bool {
    name.iter().any(|&b| matches!(b, b'\\' | b'\n' | b'\r'))
}

/// Appends `name` with `\`, newline and carriage return escaped.
pub(crate) fn push_escaped(out: &mut Vec<u8>, name: &[u8]) {
    for &b in name {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// Appends the manifest line(s) for one file to `out`: one line per digest in the text
/// formats, one object in JSON.
pub fn push_record(out: &mut Vec<u8>, format: Format, path: &Path, size: u64, digests: &Digests) {
    let style = Style {
        format,
        zero: false,
    };
    push_styled(out, style, path, size, digests);
}

/// [`push_record`] with the line ending of `style`.
pub fn push_styled(out: &mut Vec<u8>, style: Style, path: &Path, size: u64, digests: &Digests) {
    push_with_meta(out, style, path, size, digests, None);
}

/// [`push_styled`] with the file's metadata, which only JSON records: the GNU and BSD
/// lines stay exactly what the peers write.
pub fn push_with_meta(
    out: &mut Vec<u8>,
    style: Style,
    path: &Path,
    size: u64,
    digests: &Digests,
    meta: Option<&FileMeta>,
) {
    let name = path.as_os_str().as_bytes();
    let end = if style.zero { b'\0' } else { b'\n' };
    match style.format {
        Format::Raw => {
            for (_, hex) in digests {
                out.extend(hex_bytes(hex));
            }
        }
        Format::NoNames => {
            for (_, hex) in digests {
                out.extend_from_slice(hex.as_bytes());
                out.push(end);
            }
        }
        Format::Gnu | Format::Tag => {
            let format = style.format;
            let escape = !style.zero && needs_escape(name);
            for (algo, hex) in digests {
                if escape {
                    out.push(b'\\');
                }
                if format == Format::Gnu {
                    out.extend_from_slice(hex.as_bytes());
                    out.extend_from_slice(b"  ");
                    push_name(out, name, escape);
                } else {
                    out.extend_from_slice(algo.tag().as_bytes());
                    out.extend_from_slice(b" (");
                    push_name(out, name, escape);
                    out.extend_from_slice(b") = ");
                    out.extend_from_slice(hex.as_bytes());
                }
                out.push(end);
            }
        }
        Format::Json => push_json(out, name, size, digests, meta),
    }
}

/// One JSON object, keys in sorted order: the bytes `serde_json` writes for a map of
/// these fields, without building one (a map per file was most of the time spent
/// writing a `--update` of an unchanged tree).
fn push_json(
    out: &mut Vec<u8>,
    name: &[u8],
    size: u64,
    digests: &Digests,
    meta: Option<&FileMeta>,
) {
    enum Field<'a> {
        Text(&'a str),
        Unsigned(u64),
        Signed(i64),
    }
    let (path, hex) = match std::str::from_utf8(name) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), None),
        Err(_) => (
            String::from_utf8_lossy(name),
            Some(name.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        ),
    };
    let mut fields: Vec<(&str, Field)> = Vec::with_capacity(8 + digests.len());
    fields.push(("path", Field::Text(&path)));
    if let Some(hex) = &hex {
        fields.push(("path_hex", Field::Text(hex)));
    }
    fields.push(("size", Field::Unsigned(size)));
    if let Some(meta) = meta {
        fields.push(("mtime_ns", Field::Signed(meta.mtime_ns)));
        fields.push(("ctime_ns", Field::Signed(meta.ctime_ns)));
        fields.push(("inode", Field::Unsigned(meta.inode)));
        fields.push(("dev", Field::Unsigned(meta.dev)));
        if let Some(hashed) = meta.hashed_ns {
            fields.push(("hashed_ns", Field::Signed(hashed)));
        }
    }
    for (algo, hex) in digests {
        fields.push((algo.name(), Field::Text(hex)));
    }
    fields.sort_by_key(|(key, _)| *key);
    fields.dedup_by_key(|(key, _)| *key);
    out.push(b'{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        let _ = match value {
            Field::Text(text) => serde_json::to_writer(&mut *out, text),
            Field::Unsigned(n) => serde_json::to_writer(&mut *out, n),
            Field::Signed(n) => serde_json::to_writer(&mut *out, n),
        };
    }
    out.extend_from_slice(b"}\n");
}

/// The bytes a lower-case hex digest spells.
fn hex_bytes(hex: &str) -> impl Iterator<Item = u8> + '_ {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    };
    hex.as_bytes()
        .chunks_exact(2)
        .map(move |pair| digit(pair[0]) << 4 | digit(pair[1]))
}

fn push_name(out: &mut Vec<u8>, name: &[u8], escape: bool) {
    if escape {
        push_escaped(out, name);
    } else {
        out.extend_from_slice(name);
    }
}

/// JSON strings must be Unicode: a UTF-8 name goes in `path`; any other name goes in
/// `path` with U+FFFD replacements (for people) plus its exact bytes in hex as
/// `path_hex` (for programs).
pub fn push_json_path(obj: &mut Map<String, Value>, name: &[u8]) {
    match std::str::from_utf8(name) {
        Ok(s) => {
            obj.insert("path".into(), Value::from(s));
        }
        Err(_) => {
            obj.insert(
                "path".into(),
                Value::from(String::from_utf8_lossy(name).into_owned()),
            );
            let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
            obj.insert("path_hex".into(), Value::from(hex));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::Algo;
    use std::ffi::OsStr;

    fn line(format: Format, name: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let digests = vec![(Algo::Sha256, "ab".to_string())];
        push_record(
            &mut out,
            format,
            Path::new(OsStr::from_bytes(name)),
            1,
            &digests,
        );
        out
    }

    #[test]
    fn plain_names_are_not_escaped() {
        assert_eq!(line(Format::Gnu, b"a b"), b"ab  a b\n");
        assert_eq!(line(Format::Tag, b"a b"), b"SHA256 (a b) = ab\n");
    }

    #[test]
    fn special_bytes_get_the_leading_backslash() {
        assert_eq!(line(Format::Gnu, b"a\\b\nc\rd"), b"\\ab  a\\\\b\\nc\\rd\n");
        assert_eq!(line(Format::Tag, b"x\ny"), b"\\SHA256 (x\\ny) = ab\n");
    }

    #[test]
    fn json_lines_are_what_serde_json_writes_for_the_same_map() {
        let meta = FileMeta {
            mtime_ns: -5,
            ctime_ns: 6,
            inode: u64::MAX,
            dev: 8,
            hashed_ns: Some(9),
        };
        let digests = vec![
            (Algo::Sha256, "ab".to_string()),
            (Algo::Blake3, "cd".to_string()),
            (Algo::Xxh3, "ef".to_string()),
        ];
        for name in [&b"a \"q\" \\ \n\t\x01 \xc3\xa9"[..], b"g\xffh"] {
            for meta in [None, Some(&meta)] {
                let style = Style {
                    format: Format::Json,
                    zero: false,
                };
                let mut ours = Vec::new();
                let path = Path::new(OsStr::from_bytes(name));
                push_with_meta(&mut ours, style, path, 3, &digests, meta);
                let mut obj = Map::new();
                push_json_path(&mut obj, name);
                obj.insert("size".into(), Value::from(3));
                if let Some(meta) = meta {
                    meta.insert_into(&mut obj);
                }
                for (algo, hex) in &digests {
                    obj.insert(algo.name().into(), Value::from(hex.as_str()));
                }
                let mut theirs = serde_json::to_vec(&Value::Object(obj)).unwrap();
                theirs.push(b'\n');
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs)
                );
            }
        }
    }

    #[test]
    fn non_utf8_names_are_written_raw_and_as_hex_in_json() {
        assert_eq!(line(Format::Gnu, b"g\xffh"), b"ab  g\xffh\n");
        let json = line(Format::Json, b"g\xffh");
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["path_hex"], "67ff68");
        assert_eq!(v["sha256"], "ab");
        assert_eq!(v["size"], 1);
    }
}
