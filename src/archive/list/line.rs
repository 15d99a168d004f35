//! One `tar -tv` line per entry, written straight into the listing's buffer: integers
//! by hand, and the parts that repeat from line to line (owner, mode string, date)
//! kept from the line before, since a listing from a table does nothing else and is
//! tens of thousands of these lines.

use super::super::unpack::header::{Kind, Meta, Mtime, quote};
use crate::archive::index::EntryRef;
use crate::civil::civil_from_days;

/// One entry as a listing shows it, borrowed from a header's [`Meta`] (a scan) or a
/// table's [`EntryRef`]: both render through the same code, so a listing from the
/// table cannot differ from one of the whole archive.
pub(super) struct Row<'a> {
    pub name: &'a [u8],
    pub kind: Kind,
    pub link: Option<&'a [u8]>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub user: Option<&'a [u8]>,
    pub group: Option<&'a [u8]>,
    pub size: u64,
    pub mtime: Mtime,
    pub device: Option<(u32, u32)>,
}

impl<'a> Row<'a> {
    pub fn of_meta(meta: &'a Meta) -> Row<'a> {
        Row {
            name: &meta.name,
            kind: meta.kind,
            link: meta.link.as_deref(),
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            user: meta.user.as_deref(),
            group: meta.group.as_deref(),
            size: meta.size,
            mtime: meta.mtime,
            device: meta.device,
        }
    }

    pub fn of_entry(entry: &EntryRef<'a>, kind: Kind) -> Row<'a> {
        Row {
            name: entry.name,
            kind,
            link: entry.link,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            user: entry.user,
            group: entry.group,
            size: entry.size,
            mtime: entry.mtime,
            device: entry.device,
        }
    }
}

/// GNU tar's column logic: owner/group and size share a field that only ever widens,
/// so columns line up as far as the entries seen so far allow.
pub(super) struct Widths {
    user_group_size: usize,
    users: Owner,
    groups: Owner,
    mode: Option<((Kind, u32), [u8; 10])>,
    day: Option<(i64, Vec<u8>)>,
}

impl Default for Widths {
    fn default() -> Widths {
        // GNU tar's starting width (UGSWIDTH).
        Widths {
            user_group_size: 19,
            users: Owner::default(),
            groups: Owner::default(),
            mode: None,
            day: None,
        }
    }
}

/// The owner (or group) of the last line, as shown: most entries have the same one.
#[derive(Default)]
struct Owner {
    last: Option<(Option<Vec<u8>>, u64)>,
    /// Where the last name was read from: a table's names all live in its owner
    /// dictionary, so the same address is the same name without comparing bytes.
    last_at: Option<(usize, usize, u64)>,
    shown: Vec<u8>,
    chars: usize,
}

impl Owner {
    /// The name as shown and its width in characters.
    fn name(&mut self, name: Option<&[u8]>, id: u64) -> (&[u8], usize) {
        let at = name.map(|n| (n.as_ptr() as usize, n.len(), id));
        if at.is_some() && at == self.last_at {
            return (self.shown.as_slice(), self.chars);
        }
        self.last_at = at;
        let same = matches!(&self.last, Some((n, i)) if n.as_deref() == name && *i == id);
        if !same {
            let shown = match name {
                Some(name) => quote(name),
                None => id.to_string(),
            };
            self.chars = shown.chars().count();
            self.shown = shown.into_bytes();
            self.last = Some((name.map(<[u8]>::to_vec), id));
        }
        (self.shown.as_slice(), self.chars)
    }
}

impl Widths {
    /// GNU tar's state after lines whose widest owner/group/size field was `width`:
    /// how a block listed on another thread starts where the blocks before it left off.
    pub fn starting_at(width: usize) -> Widths {
        Widths {
            user_group_size: width,
            ..Widths::default()
        }
    }

    /// The owner/group/size field's width so far.
    pub fn width(&self) -> usize {
        self.user_group_size
    }

    pub fn push_line(&mut self, out: &mut Vec<u8>, row: &Row<'_>) {
        let mut numbers = itoa::Buffer::new();
        let mut minor = itoa::Buffer::new();
        let mut device = [0u8; 24];
        let size: &[u8] = match (row.kind, row.device) {
            (Kind::Char | Kind::Block, Some((major, min))) => {
                let major = numbers.format(major).as_bytes();
                let min = minor.format(min).as_bytes();
                let len = major.len() + 1 + min.len();
                device[..major.len()].copy_from_slice(major);
                device[major.len()] = b',';
                device[major.len() + 1..len].copy_from_slice(min);
                &device[..len]
            }
            _ => numbers.format(row.size).as_bytes(),
        };
        out.extend_from_slice(self.mode_string(row.kind, row.mode));
        out.push(b' ');
        let (user, user_chars) = self.users.name(row.user, row.uid);
        out.extend_from_slice(user);
        out.push(b'/');
        let (group, group_chars) = self.groups.name(row.group, row.gid);
        out.extend_from_slice(group);
        let pad = user_chars + 1 + group_chars + 1 + size.len();
        self.user_group_size = self.user_group_size.max(pad);
        // The size right-aligned in what the widest owner/group/size so far left.
        out.resize(out.len() + 1 + self.user_group_size - pad, b' ');
        out.extend_from_slice(size);
        out.push(b' ');
        self.push_date(out, row.mtime);
        out.push(b' ');
        push_quoted(out, row.name);
        match (row.kind, row.link) {
            (Kind::Symlink, Some(target)) => {
                out.extend_from_slice(b" -> ");
                push_quoted(out, target);
            }
            (Kind::HardLink, Some(target)) => {
                out.extend_from_slice(b" link to ");
                push_quoted(out, target);
            }
            _ => {}
        }
        out.push(b'\n');
    }

    fn mode_string(&mut self, kind: Kind, mode: u32) -> &[u8] {
        if self
            .mode
            .as_ref()
            .is_none_or(|(key, _)| *key != (kind, mode))
        {
            self.mode = Some(((kind, mode), mode_string(kind, mode)));
        }
        match &self.mode {
            Some((_, text)) => text,
            None => &[],
        }
    }

    /// `YYYY-MM-DD HH:MM` in UTC (GNU tar uses the local time zone; UTC keeps the
    /// listing the same wherever it is made). The date part is kept for the next line:
    /// the members of one package share their day.
    fn push_date(&mut self, out: &mut Vec<u8>, mtime: Mtime) {
        let days = mtime.secs.div_euclid(86_400);
        if self.day.as_ref().is_none_or(|(day, _)| *day != days) {
            // Days change often in a listing (every file of a package has its own
            // time): digits by hand, not through `format!`.
            let (year, month, day) = civil_from_days(days);
            let mut text = Vec::with_capacity(10);
            if (0..10_000).contains(&year) {
                let year = year as u32;
                text.extend_from_slice(&[
                    b'0' + (year / 1000) as u8,
                    b'0' + (year / 100 % 10) as u8,
                    b'0' + (year / 10 % 10) as u8,
                    b'0' + (year % 10) as u8,
                ]);
            } else {
                text.extend_from_slice(format!("{year:04}").as_bytes());
            }
            for (sep, n) in [(b'-', month), (b'-', day)] {
                text.extend_from_slice(&[sep, b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
            }
            self.day = Some((days, text));
        }
        if let Some((_, text)) = &self.day {
            out.extend_from_slice(text);
        }
        let seconds = mtime.secs.rem_euclid(86_400) as u32;
        let (hours, minutes) = (seconds / 3600, seconds % 3600 / 60);
        out.extend_from_slice(&[
            b' ',
            b'0' + (hours / 10) as u8,
            b'0' + (hours % 10) as u8,
            b':',
            b'0' + (minutes / 10) as u8,
            b'0' + (minutes % 10) as u8,
        ]);
    }
}

/// The name as [`quote`] shows it, without building a string when there is nothing to
/// escape (printable ASCII without a backslash: nearly every name).
fn push_quoted(out: &mut Vec<u8>, name: &[u8]) {
    // No early exit: the compiler checks many bytes at a time.
    let escape = name.iter().fold(false, |any, &b| {
        any | !(b' '..=b'~').contains(&b) | (b == b'\\')
    });
    if !escape {
        out.extend_from_slice(name);
    } else {
        out.extend_from_slice(quote(name).as_bytes());
    }
}

/// `-rw-r--r--` and friends, with `h` for hard links as GNU tar shows them.
pub(super) fn mode_string(kind: Kind, m: u32) -> [u8; 10] {
    let kind = match kind {
        Kind::File => b'-',
        Kind::Dir => b'd',
        Kind::Symlink => b'l',
        Kind::HardLink => b'h',
        Kind::Char => b'c',
        Kind::Block => b'b',
        Kind::Fifo => b'p',
        Kind::Meta | Kind::Other(_) => b'?',
    };
    let bit = |mask: u32, c: u8| if m & mask != 0 { c } else { b'-' };
    let special = |exec: u32, special: u32, set: u8| match (m & exec != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => set.to_ascii_uppercase(),
        (true, false) => b'x',
        (false, false) => b'-',
    };
    [
        kind,
        bit(0o400, b'r'),
        bit(0o200, b'w'),
        special(0o100, 0o4000, b's'),
        bit(0o040, b'r'),
        bit(0o020, b'w'),
        special(0o010, 0o2000, b's'),
        bit(0o004, b'r'),
        bit(0o002, b'w'),
        special(0o001, 0o1000, b't'),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_follow_ls() {
        let text = |kind, mode| String::from_utf8(mode_string(kind, mode).to_vec()).unwrap();
        assert_eq!(text(Kind::File, 0o644), "-rw-r--r--");
        assert_eq!(text(Kind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(text(Kind::HardLink, 0o4644), "hrwSr--r--");
        assert_eq!(text(Kind::File, 0o6755), "-rwsr-sr-x");
        assert_eq!(text(Kind::Fifo, 0o1600), "prw------T");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        let mut widths = Widths::default();
        let mut at = |secs| {
            let mut out = Vec::new();
            widths.push_date(&mut out, Mtime { secs, nanos: 0 });
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0), "1970-01-01 00:00");
        assert_eq!(at(981_173_106), "2001-02-03 04:05");
        assert_eq!(at(981_173_106 + 3600 * 19), "2001-02-03 23:05");
        assert_eq!(at(951_782_400), "2000-02-29 00:00");
        assert_eq!(at(-1), "1969-12-31 23:59");
        assert_eq!(at(4_102_444_800), "2100-01-01 00:00");
    }

    #[test]
    fn names_are_quoted_as_quote_does_with_or_without_the_fast_path() {
        for name in [
            &b"plain/name.txt"[..],
            b"with space",
            b"back\\slash",
            b"new\nline",
            b"caf\xc3\xa9",
            b"bad\xff",
        ] {
            let mut out = Vec::new();
            push_quoted(&mut out, name);
            assert_eq!(out, quote(name).into_bytes());
        }
    }
}
