//! `spate check X.tar.zst --audit DIR`: the archive's table of contents, turned into
//! the manifest of an ordinary `check --audit` run. Every regular file (and every hard
//! link, with its target's digest) becomes a spate JSON line with its size and BLAKE3
//! (from a table, its first 16 bytes: 32 hex digits, which check compares with the
//! start of the file's BLAKE3);
//! any other member a blank line, so that a line's number is the member's number in
//! the archive. The files are then looked up, read, walked for and judged exactly as
//! a manifest's are: OK, FAILED, MISSING, NEW, MOVED.
//!
//! An archive without a table is read once to make the lines up (its files hashed on
//! the way); a table that disagrees with the archive is not trusted for this either.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::scan;
use crate::archive::index::{self, Found};
use crate::archive::unpack::header::Kind;
use crate::manifest;
use crate::progress::Progress;
use crate::report::Reporter;

/// One member as the manifest needs it.
struct Line<'a> {
    name: &'a [u8],
    kind: Kind,
    link: Option<&'a [u8]>,
    size: u64,
    /// In hex: a BLAKE3 from a scan, or the first half of one from a table.
    digest: Option<String>,
}

/// The manifest text of the archive at `path`.
pub(in crate::check) fn manifest_of(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open archive {shown}"))?;
    let found = index::read_index(&file).with_context(|| format!("reading {shown}"))?;
    let reporter = Reporter::new(Progress::hidden());
    let mut lines = Lines::default();
    match found {
        Found::Indexed(index) => {
            for e in &index.entries {
                lines.push(&Line {
                    name: &e.name,
                    kind: e.kind(),
                    link: e.link.as_deref(),
                    size: e.size,
                    digest: e.digest.as_ref().map(super::hex),
                });
            }
            return Ok(lines.text);
        }
        Found::Broken(why) => reporter.notice(
            path,
            &format!(
                "the table of contents disagrees with the archive ({why}); reading the \
                 archive instead"
            ),
        ),
        Found::Plain => {}
    }
    let scanned = scan::scan(path, &Progress::hidden(), true, |meta, digest| {
        lines.push(&Line {
            name: &meta.name,
            kind: meta.kind,
            link: meta.link.as_deref(),
            size: meta.size,
            digest: digest.map(|d| d.to_hex().to_string()),
        });
    })?;
    if let Some(cause) = scanned.error {
        anyhow::bail!("{shown}: {cause}");
    }
    Ok(lines.text)
}

#[derive(Default)]
struct Lines {
    text: Vec<u8>,
    /// Size and digest of each file so far, for the hard links to it.
    files: HashMap<Vec<u8>, (u64, String)>,
}

impl Lines {
    fn push(&mut self, line: &Line<'_>) {
        let file = match (line.kind, &line.digest, line.link) {
            (Kind::File, Some(digest), _) => {
                self.files
                    .insert(line.name.to_vec(), (line.size, digest.clone()));
                Some((line.size, digest.clone()))
            }
            (Kind::HardLink, _, Some(target)) => self.files.get(target).cloned(),
            _ => None,
        };
        if let Some((size, digest)) = file {
            let mut obj = Map::new();
            manifest::push_json_path(&mut obj, line.name);
            obj.insert("size".into(), Value::from(size));
            obj.insert("blake3".into(), Value::from(digest));
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.text, &Value::Object(obj));
        }
        self.text.push(b'\n');
    }
}
