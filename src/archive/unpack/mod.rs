//! `spate unpack`: archive → decompressor thread → tar entries → writes confined
//! beneath the destination directory.
//!
//! Safety rests on two fences: [`names`] refuses names and link targets that could
//! leave the destination, and [`confine`] performs every path operation from a
//! directory descriptor without ever following a symbolic link. An entry that fails
//! either is reported (`spate: NAME: refused: WHY`), its data skipped, and the run goes
//! on; the exit status is then 1.
//!
//! Files are written under a temporary name beside their target and renamed when
//! complete, so an error or a truncated archive never leaves a half file under an
//! entry's name; on SIGINT/SIGTERM the signal thread removes the temporary file
//! (registered by its `/proc/self/fd/DIR/NAME` path). Directory modes and
//! times are set at the end, deepest first, once nothing more is written into them.
//!
//! An indexed `.tar.zst` on disk is decompressed on every core ([`frames`]) and its
//! files written by writer threads ([`writers`]); the entry loop and every decision
//! it makes stay the same.

pub mod confine;
mod extractor;
mod frames;
pub mod header;
pub mod names;
pub mod sparse;
mod temp;
mod to_stdout;
pub mod write;
mod writers;

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use super::UnpackConfig;
use super::index;
use super::input::{self, Input};
use super::members::Members;
use crate::error::ErrorKind;
use crate::output::Cleanup;
use crate::progress::{ArchiveSummary, Progress};
use crate::report::{self, Reporter};
use confine::{Root, WalkError};
use extractor::{Extractor, Flow};
use header::{Kind, Meta, quote, short_cause};
use temp::Temps;
use write::DataError;
use writers::Writers;

/// Extracts the archive (the entries the member filters select); `Ok(false)` when some
/// entries failed or were refused, `Err` when a filter matched nothing.
pub fn run(config: &UnpackConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    if config.to_stdout {
        return to_stdout::run(config);
    }
    let started = Instant::now();
    let reporter = Reporter::with_skipped(
        Progress::with_unit(config.progress, "entries"),
        !config.quiet,
    );
    let result = extract_all(config, cleanup, None, &reporter);
    reporter.finish();
    let (ok, summary, label) = result?;
    if config.summary {
        reporter.say(&summary.render_unpack(&label, started));
    }
    Ok(ok)
}

/// Extracts every entry of `config.archive`, or of `reader` when given: whether all
/// went well, what was moved, and the archive's name for messages. Everything it has to
/// say goes through `reporter`.
pub(crate) fn extract_all(
    config: &UnpackConfig,
    cleanup: &Arc<Cleanup>,
    reader: Option<Box<dyn Read + Send>>,
    reporter: &Reporter,
) -> Result<(bool, ArchiveSummary, String)> {
    let progress = reporter.progress();
    let mut members = Members::new(&config.members)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Before the destination is created: input that is not an archive creates nothing.
    let (source, label) = match reader {
        Some(reader) => {
            let Input { stream, label } =
                input::from_reader(reader, "the archive".into(), progress)?;
            (Source::Stream(Box::new(stream)), label)
        }
        // Named members of an indexed archive: only the frames that hold them.
        None if !config.members.is_empty() => {
            match index::extract::open(&config.archive, &config.members, reporter)? {
                Some(selected) => (Source::Stream(selected.stream), selected.label),
                None => {
                    let Input { stream, label } = input::open(&config.archive, progress)?;
                    (Source::Stream(Box::new(stream)), label)
                }
            }
        }
        // A whole indexed archive: its frames decompressed on every core.
        None => match frames::open(&config.archive, cores, reporter)? {
            Some(frames) => (Source::Frames(frames), config.archive.display().to_string()),
            None => {
                let Input { stream, label } = input::open(&config.archive, progress)?;
                (Source::Stream(Box::new(stream)), label)
            }
        },
    };
    let root = Root::open(&config.dest)?;
    let temps = Arc::new(Temps::new(Arc::clone(cleanup), root.fd()));
    // No writer threads (0): the entry loop writes every file itself, in archive
    // order, straight from the decompressed frame.
    let (writers, frames) = match &source {
        Source::Frames(frames) => {
            let threads = config
                .writers
                .unwrap_or_else(|| writers::threads(&config.dest, cores));
            let writers = match threads {
                0 => None,
                n => Some(Writers::start(n, Arc::clone(&temps))?),
            };
            (writers, Some(frames.clone()))
        }
        Source::Stream(_) => (None, None),
    };
    let mut extractor = Extractor::new(
        config,
        root,
        temps,
        writers,
        frames,
        reporter.clone(),
        label.clone(),
    );
    let reading = || format!("reading {label}");
    let count = match source {
        Source::Stream(stream) => {
            let mut archive = tar::Archive::new(stream);
            let entries = archive.entries().with_context(reading)?;
            each_entry(entries, &mut extractor, &mut members, reporter, &label)
        }
        // Seekable: the data of an entry handed on as a range of its frame (or not
        // extracted) is passed over, not read.
        Source::Frames(frames) => {
            let mut archive = tar::Archive::new(frames);
            let entries = archive.entries_with_seek().with_context(reading)?;
            each_entry(entries, &mut extractor, &mut members, reporter, &label)
        }
    };
    extractor.finish_dirs();
    match extractor.existing {
        0 => {}
        1 => reporter.say("1 file exists; use --overwrite"),
        n => reporter.say(&format!("{n} files exist; use --overwrite")),
    }
    members.finish(reporter)?;
    // GNU tar ends a run whose hard links could not be made with status 2 ("Exiting
    // with failure status due to previous errors"), each link named as it came.
    match extractor.unlinkable {
        0 => {}
        1 => anyhow::bail!("{label}: 1 hard link could not be made: its target was not extracted"),
        n => anyhow::bail!(
            "{label}: {n} hard links could not be made: their targets were not extracted"
        ),
    }
    let summary = ArchiveSummary {
        entries: count,
        tar_bytes: extractor.written(),
        archive_bytes: progress.totals().1,
    };
    Ok((extractor.failures == 0, summary, label))
}

/// Where the tar stream comes from.
enum Source {
    Stream(Box<dyn Read>),
    /// An indexed archive's frames, decompressed in parallel.
    Frames(frames::Frames),
}

/// Extracts the entries the member filters select; how many entries were read.
fn each_entry<R: Read>(
    entries: tar::Entries<'_, R>,
    extractor: &mut Extractor<'_>,
    members: &mut Members,
    reporter: &Reporter,
    label: &str,
) -> u64 {
    let progress = reporter.progress();
    let mut last: Option<Vec<u8>> = None;
    let mut count = 0u64;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let cause = short_cause(&e);
                let words = format!("{}: {cause}", after(last.as_deref()));
                reporter.error(&corrupt(label, words));
                extractor.failures += 1;
                break;
            }
        };
        progress.done(0);
        count += 1;
        let meta = match Meta::read(&mut entry) {
            Ok(meta) => meta,
            Err(e) => {
                let name = entry.path_bytes().into_owned();
                if !members.select(&name) {
                    last = Some(name);
                    continue;
                }
                let cause = short_cause(&e);
                let words = format!("refused: unreadable header: {cause}");
                reporter.error(&corrupt(&quote(&name), words));
                extractor.failures += 1;
                last = Some(name);
                continue;
            }
        };
        // The real name (a PAX sparse entry's header holds a stand-in).
        let name = meta.name.clone();
        if meta.kind == Kind::Meta || !members.select(&name) {
            last = Some(name);
            continue;
        }
        if let Err(problem) = extractor.extract(&mut entry, &meta)
            && extractor.report(&name, problem) == Flow::Stop
        {
            break;
        }
        last = Some(name);
    }
    count
}

/// Where a header could not be read, for the message.
fn after(last: Option<&[u8]>) -> String {
    match last {
        Some(name) => format!("truncated or corrupt after entry \"{}\"", quote(name)),
        None => "cannot read the first entry (not a tar archive, or truncated)".into(),
    }
}

/// An archive that cannot be read on at `what` (the archive, or an entry's name).
fn corrupt(what: &str, words: String) -> report::Problem {
    report::Problem::new(what, ErrorKind::CorruptArchive, words)
}

/// What went wrong with one entry.
enum Problem {
    /// The entry asks for something unsafe or not allowed (`outside_root` for a name
    /// or link that leads out, else `refused`).
    Refused(ErrorKind, String),
    /// A file (or link, or special file) of that name exists, and `--overwrite` was not
    /// given.
    Exists,
    /// Extracting it failed (permissions, disk full, ...).
    Failed(ErrorKind, String),
    /// A hard link whose target (this name, as stored) was not extracted before it.
    NoLinkTarget(Vec<u8>),
    /// The archive cannot be read on (truncated, corrupt compressed data).
    Stream { what: &'static str, cause: String },
    /// The entry's data would go past `--max-size`.
    Budget { size: u64 },
}

impl From<WalkError> for Problem {
    fn from(e: WalkError) -> Problem {
        if e.is_refusal() {
            Problem::Refused(ErrorKind::OutsideRoot, e.to_string())
        } else {
            Problem::Failed(e.kind(), e.to_string())
        }
    }
}

impl From<DataError> for Problem {
    fn from(e: DataError) -> Problem {
        match e {
            DataError::Stream(e) => Problem::Stream {
                what: "truncated or corrupt",
                cause: short_cause(&e),
            },
            DataError::Truncated { missing } => Problem::Stream {
                what: "truncated",
                cause: format!("the archive ends {missing} bytes short of the entry's end"),
            },
            DataError::Malformed(why) => Problem::Failed(ErrorKind::CorruptArchive, why),
            DataError::Write(e) => Problem::Failed(
                ErrorKind::of_io(&e),
                format!("writing: {}", crate::error::describe_io(&e)),
            ),
        }
    }
}

/// An entry not extracted by design, for a reason that is not a way out.
fn refused(why: &str) -> Problem {
    Problem::Refused(ErrorKind::Refused, why.into())
}

/// Context for an I/O error of one step.
fn failed(what: &str) -> impl FnOnce(io::Error) -> Problem + '_ {
    move |e| {
        let words = format!("{what}: {}", crate::error::describe_io(&e));
        Problem::Failed(ErrorKind::of_io(&e), words)
    }
}
