//! What one archive entry says about itself, gathered from the ustar/GNU header, GNU
//! long names and PAX extended headers into one value, for `unpack` and `list` alike.
//!
//! The `tar` crate already applies GNU long names (`L`/`K`), PAX `path`, `linkpath`,
//! `size`, `uid` and `gid`, and expands old GNU sparse entries (`S`). This adds what it
//! leaves out: PAX `mtime` (with nanoseconds), `uname`/`gname`, and the PAX sparse
//! formats GNU tar writes with `--format=posix -S`, whose real name and size live in
//! `GNU.sparse.*` keys.

use std::io::{self, Read};

use super::sparse::PaxSparse;

/// The kind of an entry, as far as extraction cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
    Char,
    Block,
    Fifo,
    /// PAX global header, GNU volume label: metadata about the archive, not a file.
    Meta,
    /// Anything else, by its type byte.
    Other(u8),
}

impl Kind {
    pub fn of(entry_type: tar::EntryType) -> Kind {
        match entry_type.as_byte() {
            b'0' | b'\0' | b'7' | b'S' => Kind::File,
            b'5' | b'D' => Kind::Dir,
            b'2' => Kind::Symlink,
            b'1' => Kind::HardLink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'6' => Kind::Fifo,
            b'g' | b'V' => Kind::Meta,
            other => Kind::Other(other),
        }
    }

    /// The word `list --json` uses.
    pub fn word(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::HardLink => "hardlink",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Fifo => "fifo",
            Kind::Meta | Kind::Other(_) => "other",
        }
    }
}

/// A modification time: seconds since 1970 (negative before) and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtime {
    pub secs: i64,
    pub nanos: u32,
}

/// How the entry's data maps onto the file it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The data is the file.
    Plain,
    /// Old GNU sparse (`S`): the `tar` crate hands over the data with the holes filled
    /// in as zeros, so only the writing differs (holes are punched back).
    GnuSparse,
    /// PAX sparse: the data is only the non-hole segments.
    PaxSparse(PaxSparse),
}

/// Everything spate uses from one entry's headers.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The name, exactly as stored (bytes; for PAX sparse files, the real name).
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Symbolic link target or hard link target.
    pub link: Option<Vec<u8>>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub user: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
    /// Size of the file the entry describes (for sparse files, with the holes).
    pub size: u64,
    pub mtime: Mtime,
    /// Device numbers of character and block devices.
    pub device: Option<(u32, u32)>,
    pub layout: Layout,
}

impl Meta {
    /// Reads the metadata of `entry`; an error means a header field cannot be decoded.
    pub fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
        let pax = PaxKeys::read(entry)?;
        let header = entry.header();
        let entry_type = header.entry_type();
        let kind = Kind::of(entry_type);
        let mut name = entry.path_bytes().into_owned();
        let mut size = entry.size();
        let mut layout = if entry_type.is_gnu_sparse() {
            Layout::GnuSparse
        } else {
            Layout::Plain
        };
        if kind == Kind::File
            && let Some(sparse) = PaxSparse::from_keys(&pax.sparse, size)?
        {
            if let Some(real) = &sparse.name {
                name = real.clone();
            }
            size = sparse.real_size;
            layout = Layout::PaxSparse(sparse);
        }
        let link = match kind {
            Kind::Symlink | Kind::HardLink => entry.link_name_bytes().map(|l| l.into_owned()),
            _ => None,
        };
        let header = entry.header();
        let mtime = match pax.mtime {
            Some(mtime) => mtime,
            None => Mtime {
                secs: i64::try_from(header.mtime()?).unwrap_or(i64::MAX),
                nanos: 0,
            },
        };
        let device = match kind {
            Kind::Char | Kind::Block => match (header.device_major()?, header.device_minor()?) {
                (Some(major), Some(minor)) => Some((major, minor)),
                _ => Some((0, 0)),
            },
            _ => None,
        };
        let non_empty = |b: Option<&[u8]>| b.filter(|b| !b.is_empty()).map(<[u8]>::to_vec);
        Ok(Meta {
            name,
            kind,
            link,
            mode: header.mode()?,
            uid: header.uid()?,
            gid: header.gid()?,
            user: pax.user.or_else(|| non_empty(header.username_bytes())),
            group: pax.group.or_else(|| non_empty(header.groupname_bytes())),
            size,
            mtime,
            device,
            layout,
        })
    }
}

/// The PAX keys the `tar` crate does not apply itself.
#[derive(Default)]
struct PaxKeys {
    mtime: Option<Mtime>,
    user: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
    /// `GNU.sparse.*` keys, in order (format 0.0 repeats keys).
    sparse: Vec<(String, Vec<u8>)>,
}

impl PaxKeys {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<PaxKeys> {
        let mut keys = PaxKeys::default();
        let Some(extensions) = entry.pax_extensions()? else {
            return Ok(keys);
        };
        // The `tar` crate splits records at newlines rather than by their length, so
        // a value holding a newline (a file name can) comes out as malformed pieces.
        // They are skipped, as the crate itself does when it looks up `path`.
        for extension in extensions.flatten() {
            let value = extension.value_bytes();
            match extension.key_bytes() {
                b"mtime" => keys.mtime = Some(parse_pax_time(value)?),
                b"uname" => keys.user = Some(value.to_vec()),
                b"gname" => keys.group = Some(value.to_vec()),
                key if key.starts_with(b"GNU.sparse.") => keys
                    .sparse
                    .push((String::from_utf8_lossy(key).into_owned(), value.to_vec())),
                _ => {}
            }
        }
        Ok(keys)
    }
}

/// A PAX time: `[-]SECONDS[.FRACTION]`.
fn parse_pax_time(value: &[u8]) -> io::Result<Mtime> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad PAX time {:?}", String::from_utf8_lossy(value)),
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: i64 = whole.parse().map_err(|_| bad())?;
    // Nanoseconds: the first nine digits, padded with zeros.
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    Ok(match (negative, nanos) {
        (false, _) => Mtime { secs, nanos },
        (true, 0) => Mtime {
            secs: -secs,
            nanos: 0,
        },
        (true, _) => Mtime {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        },
    })
}

/// Longest cause [`short_cause`] prints, in characters.
const CAUSE_MAX: usize = 160;

/// An error met reading an archive, in one short line. The `tar` crate's messages
/// about a header field it cannot read quote the field's raw bytes and the entry's
/// name ("numeric field did not have utf-8 text: … when getting cksum for …"): in a
/// damaged archive that is binary noise, hundreds of bytes of it, and says less than
/// the field's name. Any other message is quoted and cut to `CAUSE_MAX`.
pub fn short_cause(e: &io::Error) -> String {
    let text = e.to_string();
    if let Some((_, rest)) = text.split_once(" when getting ") {
        let field: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return format!("corrupt header (unreadable {field} field)");
    }
    let quoted = quote(text.as_bytes());
    match quoted.char_indices().nth(CAUSE_MAX) {
        Some((cut, _)) => format!("{}…", &quoted[..cut]),
        None => quoted,
    }
}

/// A name for messages and listings, quoted as GNU tar's default `escape` style does:
/// backslash and control characters escaped, bytes that are not UTF-8 in octal, so a
/// name can never forge a line of output.
pub fn quote(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0b' => out.push_str("\\v"),
                '\x0c' => out.push_str("\\f"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\{b:03o}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_and_without_fractions() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).unwrap();
        assert_eq!(
            t("1577934245"),
            Mtime {
                secs: 1577934245,
                nanos: 0
            }
        );
        assert_eq!(
            t("1577934245.123456789"),
            Mtime {
                secs: 1577934245,
                nanos: 123456789
            }
        );
        assert_eq!(
            t("12.5"),
            Mtime {
                secs: 12,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            t("-1.25"),
            Mtime {
                secs: -2,
                nanos: 750_000_000
            }
        );
        assert_eq!(
            t("1.1234567899"),
            Mtime {
                secs: 1,
                nanos: 123456789
            }
        );
        assert!(parse_pax_time(b"x").is_err());
        assert!(parse_pax_time(b".5").is_err());
        assert!(parse_pax_time(b"1.5x").is_err());
    }

    #[test]
    fn quoting_escapes_what_could_forge_a_line() {
        assert_eq!(quote(b"plain/name.txt"), "plain/name.txt");
        assert_eq!(quote(b"new\nline"), "new\\nline");
        assert_eq!(quote(b"back\\slash"), "back\\\\slash");
        assert_eq!(quote(b"bad\xffutf8"), "bad\\377utf8");
        assert_eq!(quote("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(quote(b"esc\x1b"), "esc\\033");
    }
}
