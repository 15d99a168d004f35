//! `spate unpack -O`: the selected files' contents, one after another, on standard
//! output, as `tar -O` writes them. Nothing is created on disk, so none of the
//! extraction fences apply; directories, links and special files are passed over.

use std::io::{BufWriter, Read, Write};

use anyhow::{Context, Result};

use super::super::UnpackConfig;
use super::super::index;
use super::super::input::{self, Input};
use super::super::members::Members;
use super::header::{Kind, Meta, quote, short_cause};
use super::write::{Copier, DataError};
use crate::error::ErrorKind;
use crate::progress::Progress;
use crate::report::{Problem, Reporter};

/// Writes the selected files to standard output; `Ok(false)` when some entry could not
/// be read, `Err` when standard output fails or a filter matched nothing.
pub fn run(config: &UnpackConfig) -> Result<bool> {
    let reporter = Reporter::new(Progress::with_unit(config.progress, "entries"));
    let result = write_all(config, &reporter);
    reporter.finish();
    result
}

fn write_all(config: &UnpackConfig, reporter: &Reporter) -> Result<bool> {
    let mut members = Members::new(&config.members)?;
    let opened = index::extract::open(&config.archive, &config.members, reporter)?;
    let (stream, label): (Box<dyn Read>, String) = match opened {
        Some(selected) => (selected.stream, selected.label),
        None => {
            let Input { stream, label } = input::open(&config.archive, reporter.progress())?;
            (Box::new(stream), label)
        }
    };
    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .with_context(|| format!("reading {label}"))?;
    let mut out = BufWriter::with_capacity(256 << 10, std::io::stdout().lock());
    let mut copier = Copier::default();
    let mut ok = true;
    let mut last: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.flush().context("writing to standard output")?;
                let words = format!("{}: {}", super::after(last.as_deref()), short_cause(&e));
                reporter.error(&super::corrupt(&label, words));
                ok = false;
                break;
            }
        };
        let meta = match Meta::read(&mut entry) {
            Ok(meta) => meta,
            Err(e) => {
                let name = entry.path_bytes().into_owned();
                if members.select(&name) {
                    let words = format!("refused: unreadable header: {}", short_cause(&e));
                    reporter.error(&super::corrupt(&quote(&name), words));
                    ok = false;
                }
                last = Some(name);
                continue;
            }
        };
        if meta.kind == Kind::File && members.select(&meta.name) {
            match copier.stream_entry(&mut entry, &mut out, &meta) {
                Ok(()) => {}
                Err(DataError::Write(e)) => {
                    return Err(e).context("writing to standard output");
                }
                Err(DataError::Malformed(why)) => {
                    let kind = ErrorKind::CorruptArchive;
                    reporter.error(&Problem::new(quote(&meta.name), kind, why));
                    ok = false;
                }
                Err(DataError::Stream(e)) => {
                    out.flush().context("writing to standard output")?;
                    let cause = short_cause(&e);
                    let name = quote(&meta.name);
                    let words = format!("truncated or corrupt in entry \"{name}\": {cause}");
                    reporter.error(&super::corrupt(&label, words));
                    ok = false;
                    break;
                }
                Err(DataError::Truncated { missing }) => {
                    out.flush().context("writing to standard output")?;
                    let words = format!(
                        "truncated in entry \"{}\": the archive ends {missing} bytes short \
                         of the entry's end",
                        quote(&meta.name)
                    );
                    reporter.error(&super::corrupt(&label, words));
                    ok = false;
                    break;
                }
            }
        } else if meta.kind != Kind::Meta {
            // Directories select what is under them even though they print nothing.
            members.select(&meta.name);
        }
        last = Some(meta.name);
    }
    out.flush().context("writing to standard output")?;
    members.finish(reporter)?;
    Ok(ok)
}
