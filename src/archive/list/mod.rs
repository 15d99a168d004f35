//! `spate list`: one line per entry in the format of GNU `tar -tv` (`line.rs`), or one
//! JSON object per entry with `--json`.

mod line;
mod table;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::ListConfig;
use super::index::{self, Digests};
use super::input::{self, Input};
use super::members::Members;
use super::unpack::header::{Kind, Meta, quote, short_cause};
use crate::error::ErrorKind;
use crate::progress::Progress;
use crate::report::{Problem, Reporter};
use line::{Row, Widths};
use table::{Listed, from_table};

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
    let table = index::open::indexed_blocks(&config.archive, reporter, Digests::Skip);
    let ok = match table {
        Some((_, table)) => {
            let listed = from_table(&table, &mut members, &mut out, reporter)?;
            // The process ends after the listing, which frees the table faster than
            // handing its buffers back.
            std::mem::forget(table);
            match listed {
                Listed::All => true,
                Listed::Nothing(why) => {
                    index::open::ignored(&config.archive, &why, reporter);
                    scan(config, &mut members, &mut out, reporter)?
                }
                Listed::Part(why) => {
                    out.lines.flush()?;
                    let label = config.archive.display().to_string();
                    reporter.error(&Problem::new(&label, ErrorKind::CorruptArchive, why));
                    false
                }
            }
        }
        None => scan(config, &mut members, &mut out, reporter)?,
    };
    out.lines.flush().context("writing to standard output")?;
    // The process ends next, which frees this buffer faster than handing it back.
    std::mem::forget(std::mem::take(&mut out.lines.buf));
    members.finish(reporter)?;
    Ok(ok)
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
            Ok(meta) => out.entry(&Row::of_meta(&meta))?,
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
    fn entry(&mut self, row: &Row<'_>) -> Result<()> {
        if self.json {
            push_json(&mut self.lines.buf, row);
        } else {
            self.widths.push_line(&mut self.lines.buf, row);
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

fn push_json(out: &mut Vec<u8>, meta: &Row<'_>) {
    let mut obj = Map::new();
    crate::manifest::push_json_path(&mut obj, meta.name);
    obj.insert("type".into(), Value::from(meta.kind.word()));
    obj.insert("mode".into(), Value::from(meta.mode));
    obj.insert("uid".into(), Value::from(meta.uid));
    obj.insert("gid".into(), Value::from(meta.gid));
    let text = |name: Option<&[u8]>| match name {
        Some(name) => Value::from(String::from_utf8_lossy(name).into_owned()),
        None => Value::Null,
    };
    obj.insert("user".into(), text(meta.user));
    obj.insert("group".into(), text(meta.group));
    obj.insert("size".into(), Value::from(meta.size));
    obj.insert("mtime".into(), Value::from(meta.mtime.secs));
    if let Some(link) = meta.link {
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
