//! `spate list`: one line per entry in the format of GNU `tar -tv`, or one JSON object
//! per entry with `--json`.

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::ListConfig;
use super::index::{self, Index};
use super::input::{self, Input};
use super::members::Members;
use super::unpack::header::{Kind, Meta, Mtime, quote, short_cause};
use crate::error::ErrorKind;
use crate::progress::Progress;
use crate::report::{Problem, Reporter};

/// Lists the archive's entries (those the member filters select); `Ok(false)` when the
/// archive is corrupt or truncated, `Err` when a filter matched nothing.
pub fn run(config: &ListConfig) -> Result<bool> {
    let reporter = Reporter::new(Progress::with_unit(config.progress, "entries"));
    let result = list_all(config, &reporter);
    reporter.finish();
    result
}

fn list_all(config: &ListConfig, reporter: &Reporter) -> Result<bool> {
    let mut members = Members::new(&config.members)?;
    let mut out = Listing {
        lines: Lines {
            buf: Vec::with_capacity(FLUSH_AT * 2),
            reporter,
        },
        widths: Widths::default(),
        json: config.json,
    };
    // The table holds every header field a line shows: an archive that has one (and
    // whose table checks out) is listed without decompressing a byte of it.
    let ok = match index::open::indexed(&config.archive, reporter) {
        Some((_, index)) => {
            from_table(&index, &mut members, &mut out, reporter.progress())?;
            true
        }
        None => scan(config, &mut members, &mut out, reporter)?,
    };
    out.lines.flush().context("writing to standard output")?;
    members.finish(reporter)?;
    Ok(ok)
}

/// Lists the entries of an archive's table of contents.
fn from_table(
    index: &Index,
    members: &mut Members,
    out: &mut Listing<'_>,
    progress: &Progress,
) -> Result<()> {
    progress.set_unknown_total();
    let Some(first) = index.entries.first() else {
        return Ok(());
    };
    // One value refilled for each entry: its buffers are reused, not reallocated.
    let mut meta = first.to_meta();
    for entry in &index.entries {
        progress.done(0);
        if entry.kind() == Kind::Meta || !members.select(&entry.name) {
            continue;
        }
        meta.name.clone_from(&entry.name);
        meta.kind = entry.kind();
        meta.link.clone_from(&entry.link);
        meta.mode = entry.mode;
        meta.uid = entry.uid;
        meta.gid = entry.gid;
        meta.user.clone_from(&entry.user);
        meta.group.clone_from(&entry.group);
        meta.size = entry.size;
        meta.mtime = entry.mtime;
        meta.device = entry.device;
        out.entry(&meta)?;
    }
    Ok(())
}

/// Lists the entries of the archive as its headers come, decompressing it whole;
/// `Ok(false)` when it is corrupt or truncated.
fn scan(
    config: &ListConfig,
    members: &mut Members,
    out: &mut Listing<'_>,
    reporter: &Reporter,
) -> Result<bool> {
    let progress = reporter.progress();
    let Input { stream, label, .. } = input::open(&config.archive, progress)?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .with_context(|| format!("reading {label}"))?;
    let mut ok = true;
    let mut last: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.lines.flush()?;
                let cause = short_cause(&e);
                let words = match &last {
                    Some(name) => {
                        format!(
                            "truncated or corrupt after entry \"{}\": {cause}",
                            quote(name)
                        )
                    }
                    None => format!(
                        "cannot read the first entry (not a tar archive, or truncated): {cause}"
                    ),
                };
                reporter.error(&Problem::new(&label, ErrorKind::CorruptArchive, words));
                ok = false;
                break;
            }
        };
        progress.done(0);
        let name = entry.path_bytes().into_owned();
        match Meta::read(&mut entry) {
            Ok(meta) if meta.kind == Kind::Meta => {}
            Ok(meta) if !members.select(&meta.name) => {}
            Ok(meta) => out.entry(&meta)?,
            Err(e) => {
                out.lines.flush()?;
                let words = format!("unreadable header: {}", short_cause(&e));
                reporter.error(&Problem::new(
                    quote(&name),
                    ErrorKind::CorruptArchive,
                    words,
                ));
                ok = false;
            }
        }
        last = Some(name);
    }
    Ok(ok)
}

/// The listing as it is written: `tar -tv` lines or JSON objects.
struct Listing<'a> {
    lines: Lines<'a>,
    widths: Widths,
    json: bool,
}

impl Listing<'_> {
    /// Adds the entry's line to the batch (rendered in place: no buffer per line).
    fn entry(&mut self, meta: &Meta) -> Result<()> {
        if self.json {
            push_json(&mut self.lines.buf, meta);
        } else {
            self.widths.push_line(&mut self.lines.buf, meta);
        }
        if self.lines.buf.len() >= FLUSH_AT {
            self.lines.flush()?;
        }
        Ok(())
    }
}

/// Listing lines are written in batches of about this many bytes.
const FLUSH_AT: usize = 64 << 10;

/// Lines on their way to stdout, written through the reporter so a bar on the same
/// terminal never tears them.
struct Lines<'a> {
    buf: Vec<u8>,
    reporter: &'a Reporter,
}

impl Lines<'_> {
    fn flush(&mut self) -> Result<()> {
        self.reporter
            .results(&self.buf)
            .context("writing to standard output")?;
        self.buf.clear();
        Ok(())
    }
}

/// GNU tar's column logic: owner/group and size share a field that only ever widens,
/// so columns line up as far as the entries seen so far allow.
struct Widths {
    user_group_size: usize,
    users: Owner,
    groups: Owner,
}

/// The owner (or group) of the last line, as shown: most entries have the same one.
#[derive(Default)]
struct Owner {
    last: Option<(Option<Vec<u8>>, u64)>,
    shown: String,
}

impl Owner {
    fn name(&mut self, name: Option<&[u8]>, id: u64) -> String {
        let same = matches!(&self.last, Some((n, i)) if n.as_deref() == name && *i == id);
        if !same {
            self.shown = owner_name(name, id);
            self.last = Some((name.map(<[u8]>::to_vec), id));
        }
        self.shown.clone()
    }
}

impl Default for Widths {
    fn default() -> Widths {
        // GNU tar's starting width (UGSWIDTH).
        Widths {
            user_group_size: 19,
            users: Owner::default(),
            groups: Owner::default(),
        }
    }
}

impl Widths {
    fn push_line(&mut self, out: &mut Vec<u8>, meta: &Meta) {
        use std::io::Write;
        let user = self.users.name(meta.user.as_deref(), meta.uid);
        let group = self.groups.name(meta.group.as_deref(), meta.gid);
        let size = match (meta.kind, meta.device) {
            (Kind::Char | Kind::Block, Some((major, minor))) => format!("{major},{minor}"),
            _ => meta.size.to_string(),
        };
        let pad = user.chars().count() + 1 + group.chars().count() + 1 + size.len();
        self.user_group_size = self.user_group_size.max(pad);
        let size_width = self.user_group_size - pad + size.len();
        // Straight into the batch: a listing is tens of thousands of these lines, and
        // from an index nothing else is done for them.
        out.extend_from_slice(mode_string(meta).as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(out, " {user}/{group} {size:>size_width$} ");
        push_date(out, meta.mtime);
        out.push(b' ');
        out.extend_from_slice(quote(&meta.name).as_bytes());
        match (meta.kind, &meta.link) {
            (Kind::Symlink, Some(target)) => {
                out.extend_from_slice(b" -> ");
                out.extend_from_slice(quote(target).as_bytes());
            }
            (Kind::HardLink, Some(target)) => {
                out.extend_from_slice(b" link to ");
                out.extend_from_slice(quote(target).as_bytes());
            }
            _ => {}
        }
        out.push(b'\n');
    }
}

fn owner_name(name: Option<&[u8]>, id: u64) -> String {
    match name {
        Some(name) => quote(name),
        None => id.to_string(),
    }
}

/// `-rw-r--r--` and friends, with `h` for hard links as GNU tar shows them.
fn mode_string(meta: &Meta) -> String {
    let kind = match meta.kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::HardLink => 'h',
        Kind::Char => 'c',
        Kind::Block => 'b',
        Kind::Fifo => 'p',
        Kind::Meta | Kind::Other(_) => '?',
    };
    let m = meta.mode;
    let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
    let special = |exec: u32, special: u32, set: char| match (m & exec != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => set.to_ascii_uppercase(),
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't'),
    ]
    .iter()
    .collect()
}

/// `YYYY-MM-DD HH:MM` in UTC (GNU tar uses the local time zone; UTC keeps the listing
/// the same wherever it is made).
#[cfg(test)]
fn date(mtime: Mtime) -> String {
    let mut out = Vec::with_capacity(16);
    push_date(&mut out, mtime);
    String::from_utf8(out).unwrap_or_default()
}

/// [`date`], written onto `out`.
fn push_date(out: &mut Vec<u8>, mtime: Mtime) {
    use std::io::Write;
    let days = mtime.secs.div_euclid(86_400);
    let seconds = mtime.secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_json(out: &mut Vec<u8>, meta: &Meta) {
    let mut obj = Map::new();
    crate::manifest::push_json_path(&mut obj, &meta.name);
    obj.insert("type".into(), Value::from(meta.kind.word()));
    obj.insert("mode".into(), Value::from(meta.mode));
    obj.insert("uid".into(), Value::from(meta.uid));
    obj.insert("gid".into(), Value::from(meta.gid));
    let text = |name: &Option<Vec<u8>>| match name {
        Some(name) => Value::from(String::from_utf8_lossy(name).into_owned()),
        None => Value::Null,
    };
    obj.insert("user".into(), text(&meta.user));
    obj.insert("group".into(), text(&meta.group));
    obj.insert("size".into(), Value::from(meta.size));
    obj.insert("mtime".into(), Value::from(meta.mtime.secs));
    if let Some(link) = &meta.link {
        // The same convention as `path`: exact bytes in hex when not UTF-8.
        let mut link_obj = Map::new();
        crate::manifest::push_json_path(&mut link_obj, link);
        if let Some(text) = link_obj.remove("path") {
            obj.insert("link".into(), text);
        }
        if let Some(hex) = link_obj.remove("path_hex") {
            obj.insert("link_hex".into(), hex);
        }
    }
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &Value::Object(obj));
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_follow_ls() {
        let meta = |kind, mode| Meta {
            name: b"x".to_vec(),
            kind,
            link: None,
            mode,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: 0,
            mtime: Mtime { secs: 0, nanos: 0 },
            device: None,
            layout: crate::archive::unpack::header::Layout::Plain,
        };
        assert_eq!(mode_string(&meta(Kind::File, 0o644)), "-rw-r--r--");
        assert_eq!(mode_string(&meta(Kind::Dir, 0o1777)), "drwxrwxrwt");
        assert_eq!(mode_string(&meta(Kind::HardLink, 0o4644)), "hrwSr--r--");
        assert_eq!(mode_string(&meta(Kind::File, 0o6755)), "-rwsr-sr-x");
        assert_eq!(mode_string(&meta(Kind::Fifo, 0o1600)), "prw------T");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        let at = |secs| date(Mtime { secs, nanos: 0 });
        assert_eq!(at(0), "1970-01-01 00:00");
        assert_eq!(at(981_173_106), "2001-02-03 04:05");
        assert_eq!(at(951_782_400), "2000-02-29 00:00");
        assert_eq!(at(-1), "1969-12-31 23:59");
        assert_eq!(at(4_102_444_800), "2100-01-01 00:00");
    }
}
