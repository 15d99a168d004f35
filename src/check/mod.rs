//! The check job: manifest lines → read → digests → OK / FAILED / MISSING / ERROR (and,
//! for JSON lines with metadata, MODIFIED or CORRUPT instead of FAILED), and with
//! `--audit`, a walk that reports files no line names (NEW) or that a MISSING line
//! names under another path (MOVED).
//!
//! The manifest takes the walker's place in the pipeline: a source thread parses it,
//! finds each named file ([`names`]: as `sha256sum -c` does, or beneath `--root`) and
//! hands the files to the same readers `spate hash` uses, each with the digests it must
//! match riding along as the item's tag. Anything decided without reading (a missing
//! file, a malformed line) goes to the printer as a note in its place, so the report
//! follows the manifest's order.
//!
//! `check` is a security tool: a false "OK" is far worse than a false failure. So a
//! line that cannot be read one way only is malformed, with `--root` a path may not
//! leave the root, and a file listed twice with different digests is an error.

mod archive;
mod audit;
mod findings;
mod hashers;
mod lines;
mod listing;
mod names;
pub(crate) mod next;
mod report;
pub mod resolve;
pub(crate) mod verdict;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::error::ErrorKind;
use crate::hash::digest::{Algo, AlgoSet, Digests};
use crate::manifest::FileMeta;
use crate::manifest::meta::nanos;
use crate::manifest::parse::{self, Expected, Hints, MAX_LINE, Record};
use crate::output::Cleanup;
use crate::pipeline::{self, Feed, Item, Outcome};
use crate::progress::{Progress, ProgressMode};
use crate::read::{ReadError, ReadOptions};
use crate::walk::{Entry, WalkOptions};
use audit::Moves;
pub(crate) use findings::Findings;
use hashers::LineHashers;
use lines::{LineRead, read_line};
use listing::Listing;
use names::{AuditPaths, Names, Tally};
use next::Next;
pub use report::Verbosity;
use report::{Policy, Reporter};
use resolve::Resolved;
pub(crate) use verdict::Verdict;
use verdict::{judge, mismatch};

/// Everything `spate check` needs to know.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Manifest files; `-` is standard input.
    pub manifests: Vec<OsString>,
    /// `-a`: the algorithm of every line.
    pub algo: Option<Algo>,
    /// `--root`: every name must lie beneath this directory and is looked up there
    /// (default: names as written, from the current directory, as `sha256sum -c`).
    pub root: Option<PathBuf>,
    pub ignore_missing: bool,
    /// Malformed lines make the run fail.
    pub strict: bool,
    /// Trees to walk for files the manifests do not list.
    pub audit: Vec<PathBuf>,
    pub verbosity: Verbosity,
    pub json: bool,
    /// How the `--audit` walk goes; its `shard` also selects the manifest lines checked.
    pub walk: WalkOptions,
    pub read: ReadOptions,
    pub progress: ProgressMode,
    /// Print the summary line even when everything verified.
    pub stats: bool,
    /// Name each malformed line on stderr, not only count them.
    pub warn: bool,
    /// MODIFIED and MOVED files fail the run too (by default only CORRUPT, FAILED,
    /// MISSING, NEW and ERROR do, as in cshatag and chkbit).
    pub fail_on_change: bool,
    /// `--update NEW`: write the next JSON manifest of the `--audit` directories.
    pub update: Option<PathBuf>,
}

/// A manifest opened for reading, with how its names are looked up.
pub(crate) struct Manifest {
    /// Shown in messages: the name as given, or "-".
    name: String,
    reader: Box<dyn BufRead + Send>,
    names: Names,
    /// The directory the manifest is in, when its names are looked up as written and it
    /// is not the current directory: where the hint looks when every file is missing.
    beside: Option<PathBuf>,
    hints: Hints,
}

/// A manifest line (or several consecutive lines naming the same file) on its way.
pub(crate) struct Listed {
    name: Vec<u8>,
    manifest: usize,
    line: u64,
    expected: Vec<Expected>,
    /// Size in bytes, when the manifest says.
    size: Option<u64>,
    /// What the file was when hashed, when the line is JSON with metadata.
    meta: Option<FileMeta>,
    /// What the `stat` before reading found, once the file is looked up.
    found: Option<verdict::Found>,
    /// The key of its path in the form `--audit` compares (0 when not auditing).
    key: u128,
}

impl Listed {
    /// Every algorithm the line's digests may be in.
    fn algos(&self) -> AlgoSet {
        self.expected
            .iter()
            .fold(AlgoSet::default(), |set, e| set.union(e.algos))
    }
}

/// Lines without a single checksum line among them after which a manifest is taken
/// to be something else and not read further.
const GIVE_UP_AFTER: u64 = 1000;

/// The tag items carry through the pipeline.
pub(crate) enum Note {
    /// A file handed to the readers; judged when its digests arrive.
    Listed(Listed),
    /// A file judged without reading it.
    Judged(Listed, Verdict),
    /// A line that could not be parsed.
    Malformed {
        manifest: usize,
        line: u64,
        why: String,
    },
    /// A manifest given up on after `lines` lines, none of them a checksum line.
    GaveUp { manifest: usize, lines: u64 },
    /// Every file of a manifest was missing, but its names exist in `dir`, the
    /// manifest's own directory.
    Misplaced { manifest: usize, dir: PathBuf },
}

/// Runs the job. `Ok(true)` when every listed file verified (and, with `--audit`,
/// nothing is new); `Ok(false)` otherwise; `Err` for a fatal error (exit 2).
pub fn run(config: &CheckConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    let started = Instant::now();
    let archives = config
        .manifests
        .iter()
        .filter(|m| archive::is_archive(m))
        .count();
    if archives > 0 {
        archive::refuse_unsupported(config, archives)?;
        if config.audit.is_empty() {
            return archive::run(config);
        }
    }
    let mut config = config.clone();
    // NEW is opened before anything is read: a manifest that is not JSON with metadata
    // stops the run with nothing written.
    let mut next = match (&config.update, config.manifests.first()) {
        (Some(new), Some(old)) => {
            let (next, own) = Next::open(Path::new(old), new, cleanup)?;
            config.walk.own_outputs = own;
            Some(next)
        }
        _ => None,
    };
    let config = &config;
    let manifests = open_manifests(config)?;
    let names: Vec<String> = manifests.iter().map(|m| m.name.clone()).collect();
    let summarize = config.stats || std::io::stderr().is_terminal();
    let progress = Progress::new(config.progress);
    let mut reporter = Reporter::new(
        config.verbosity,
        config.json,
        names,
        summarize,
        config.warn,
        progress.clone(),
    );
    let other_shards = verify(manifests, config, &progress, &mut reporter, next.as_mut())?;
    let policy = Policy {
        ignore_missing: config.ignore_missing,
        strict: config.strict,
        fail_on_change: config.fail_on_change,
    };
    if let Some(next) = next {
        next.commit()?;
    }
    reporter.finish(started, policy, other_shards)
}

/// Checks the files `manifests` list (and, with `--audit`, walks for the others), and
/// tells `findings` what became of each, in manifest order; with `next`, writes
/// `--update`'s NEW from the same reads. Returns how many lines
/// were left to other `--shard` workers.
pub(crate) fn verify(
    manifests: Vec<Manifest>,
    config: &CheckConfig,
    progress: &Progress,
    findings: &mut dyn Findings,
    mut next: Option<&mut Next>,
) -> Result<u64> {
    let listing = Arc::new(Mutex::new(Listing::new(!config.audit.is_empty())));
    let mut moves = Moves::default();
    let source = {
        let config = config.clone();
        let listing = Arc::clone(&listing);
        move |feed: &mut Feed<Note>| {
            let mut listing = listing.lock().unwrap_or_else(|p| p.into_inner());
            list_files(manifests, &config, &mut listing, feed)
        }
    };
    let result = pipeline::run_source(
        source,
        pipeline::REORDER_LIMIT,
        &config.read,
        Arc::new(LineHashers::new(next.as_deref())),
        progress,
        |outcome| deliver(outcome, config, &mut moves, findings, next.as_deref_mut()),
    );
    progress.finish();
    result?;

    if !config.audit.is_empty() {
        audit::run(config, Arc::clone(&listing), &mut moves, findings, next)?;
    }
    // Those that did not turn up elsewhere are missing after all; in manifest order.
    for listed in moves.into_missing() {
        if !config.ignore_missing {
            findings.file(&listed, &Verdict::Missing)?;
        }
    }
    let listing = listing.lock().unwrap_or_else(|p| p.into_inner());
    Ok(listing.other_shards)
}

fn open_manifests(config: &CheckConfig) -> Result<Vec<Manifest>> {
    anyhow::ensure!(
        config.manifests.iter().filter(|m| *m == "-").count() <= 1,
        "standard input ('-') can be read only once"
    );
    config
        .manifests
        .iter()
        .map(|name| {
            let shown = Path::new(name).display().to_string();
            if archive::is_archive(name) {
                // With --audit: the archive's table of contents is the manifest.
                let text = archive::audit::manifest_of(Path::new(name))?;
                let mut manifest =
                    Manifest::new(shown, Box::new(io::Cursor::new(text)), None, config)?;
                manifest.hints.table_digests = true;
                return Ok(manifest);
            }
            let (reader, dir): (Box<dyn BufRead + Send>, Option<PathBuf>) = if name == "-" {
                (Box::new(BufReader::new(io::stdin())), None)
            } else {
                let file =
                    File::open(name).with_context(|| format!("cannot open manifest {shown}"))?;
                anyhow::ensure!(
                    !file.metadata().is_ok_and(|m| m.is_dir()),
                    "manifest {shown} is a directory"
                );
                let dir = Path::new(name)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty() && *p != Path::new("."));
                let dir = dir.map(Path::to_path_buf);
                (Box::new(BufReader::with_capacity(256 << 10, file)), dir)
            };
            Manifest::new(shown, reader, dir, config)
        })
        .collect()
}

impl Manifest {
    /// A manifest read from `reader`, shown in messages as `name`; `dir` is the
    /// directory it is in, when it is a file elsewhere than the current directory.
    pub(crate) fn new(
        name: String,
        reader: Box<dyn BufRead + Send>,
        dir: Option<PathBuf>,
        config: &CheckConfig,
    ) -> Result<Manifest> {
        let names = Names::new(config.root.as_deref())?;
        let beside = dir.filter(|_| !names.confined());
        // The file name hints at the algorithm of 64-digit lines (`x.b3`, `SHA256SUMS`).
        let file_name = Path::new(&name).file_name().map(OsStrExt::as_bytes);
        let hints = Hints::for_manifest(file_name.unwrap_or(b""), config.algo);
        Ok(Manifest {
            name,
            reader,
            names,
            beside,
            hints,
        })
    }
}

/// The source: reads every manifest line by line and pushes one item per file (or
/// per malformed line). Consecutive lines naming the same file (`--tag` manifests with
/// several algorithms) become one item, so the file is read once.
fn list_files(
    manifests: Vec<Manifest>,
    config: &CheckConfig,
    listing: &mut Listing,
    feed: &mut Feed<Note>,
) -> Result<()> {
    let mut line = Vec::new();
    for (index, mut manifest) in manifests.into_iter().enumerate() {
        let mut pending: Option<Listed> = None;
        let mut tally = Tally::default();
        let mut audit_paths = AuditPaths::default();
        let mut number = 0u64;
        let (mut good, mut bad) = (0u64, 0u64);
        loop {
            number += 1;
            if good == 0 && bad >= GIVE_UP_AFTER {
                // Not a manifest (a tarball, a README): reading a million more lines
                // would only count them.
                let gave_up = Note::GaveUp {
                    manifest: index,
                    lines: number - 1,
                };
                if !feed.push(Item::Note(gave_up)) {
                    return Ok(());
                }
                break;
            }
            let item = match read_line(&mut manifest.reader, &mut line)
                .with_context(|| format!("reading manifest {}", manifest.name))?
            {
                LineRead::Eof => break,
                LineRead::TooLong => Err(format!("line longer than {MAX_LINE} bytes")),
                LineRead::Line => parse::parse_line_with_meta(&line, &manifest.hints),
            };
            let (record, meta) = match item {
                Ok(None) => continue,
                // `--shard`: the name as written decides, as it did for `hash --shard`.
                Ok(Some((record, _))) if !in_shard(&record.name, config) => {
                    good += 1;
                    listing.other_shards += 1;
                    continue;
                }
                Ok(Some(parsed)) => {
                    good += 1;
                    parsed
                }
                Err(why) => {
                    bad += 1;
                    if !flush(&mut pending, &manifest, config, &mut tally, feed) {
                        return Ok(());
                    }
                    let malformed = Note::Malformed {
                        manifest: index,
                        line: number,
                        why,
                    };
                    if !feed.push(Item::Note(malformed)) {
                        return Ok(());
                    }
                    continue;
                }
            };
            let Record {
                name,
                expected,
                size,
            } = record;
            let base = manifest.names.base();
            let full = listing::normalize(base, Path::new(os(&name)));
            let key = match listing.auditing() {
                true => listing.list(&audit_paths.of(base, Path::new(os(&name)))),
                false => 0,
            };
            let conflict = listing.add(&full, &expected, number);
            let listed = Listed {
                name,
                manifest: index,
                line: number,
                expected,
                size,
                meta,
                found: None,
                key,
            };
            if let Some(first) = conflict {
                tally.count_other();
                let why = format!("listed on line {first} with a different digest");
                if !flush(&mut pending, &manifest, config, &mut tally, feed)
                    || !feed.push(Item::Note(Note::Judged(
                        listed,
                        Verdict::Error(ErrorKind::ConflictingDigests, why),
                    )))
                {
                    return Ok(());
                }
                continue;
            }
            match pending.as_mut() {
                Some(p) if p.name == listed.name => {
                    p.expected.extend(listed.expected);
                    p.size = p.size.or(listed.size);
                    p.meta = p.meta.or(listed.meta);
                }
                _ => {
                    if !flush(&mut pending, &manifest, config, &mut tally, feed) {
                        return Ok(());
                    }
                    pending = Some(listed);
                }
            }
        }
        if !flush(&mut pending, &manifest, config, &mut tally, feed) {
            return Ok(());
        }
        // Checked from the wrong directory (`cd t2 && spate check ../mf/t2.b3` with names
        // relative to mf): say where they are, once, instead of only N times MISSING.
        if let Some(dir) = manifest.beside.take()
            && tally.all_beside(&dir)
            && !feed.push(Item::Note(Note::Misplaced {
                manifest: index,
                dir,
            }))
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Pushes the pending file, if any; false when the run is being torn down.
fn flush(
    pending: &mut Option<Listed>,
    manifest: &Manifest,
    config: &CheckConfig,
    tally: &mut Tally,
    feed: &mut Feed<Note>,
) -> bool {
    match pending.take() {
        Some(listed) => match item_for(listed, manifest, config, tally) {
            Some(item) => feed.push(item),
            None => true,
        },
        None => true,
    }
}

/// Finds the file a line names and decides what the pipeline does with it: read it,
/// or report it at once. `None` when there is nothing to report (missing and
/// `--ignore-missing`).
fn item_for(
    mut listed: Listed,
    manifest: &Manifest,
    config: &CheckConfig,
    tally: &mut Tally,
) -> Option<Item<Note>> {
    let name = Path::new(os(&listed.name));
    let (path, resolved) = manifest.names.resolve(name);
    if manifest.beside.is_some() {
        tally.count(name, &resolved);
    }
    let verdict = match resolved {
        Resolved::File {
            size,
            mtime,
            identity,
            beneath,
        } => {
            let found = verdict::Found {
                size,
                mtime_ns: nanos(mtime),
            };
            listed.found = Some(found);
            if listed.size.is_some_and(|listed| listed != size) && config.update.is_none() {
                // Different sizes cannot have equal digests: no need to read (unless
                // NEW needs the new digest).
                mismatch(&listed, Some(found))
            } else {
                let entry = Entry {
                    seq: 0,
                    path,
                    size,
                    mtime,
                    stat_known: true,
                    identity,
                    beneath,
                };
                return Some(Item::File(entry, Note::Listed(listed)));
            }
        }
        // With `--audit`, a missing file may turn up under another name (MOVED).
        Resolved::Missing if config.ignore_missing && config.audit.is_empty() => return None,
        Resolved::Missing => Verdict::Missing,
        Resolved::Error(kind, why) => Verdict::Error(kind, why),
    };
    Some(Item::Note(Note::Judged(listed, verdict)))
}

fn in_shard(name: &[u8], config: &CheckConfig) -> bool {
    config.walk.shard.is_none_or(|shard| shard.contains(name))
}

fn os(bytes: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(bytes)
}

/// The printer: judges each outcome and reports it.
fn deliver(
    outcome: Outcome<(Digests, FileMeta), Note>,
    config: &CheckConfig,
    moves: &mut Moves,
    reporter: &mut dyn Findings,
    next: Option<&mut Next>,
) -> Result<()> {
    match outcome {
        Outcome::Read {
            output: (digests, meta),
            len,
            tag: Note::Listed(listed),
            ..
        } => {
            let verdict = judge(&listed, &digests);
            if let Some(next) = next {
                next.learn(&listed);
                match verdict {
                    Verdict::Corrupt => next.keep_old(listed.key, &listed, &digests, meta),
                    _ => next.keep(listed.key, len, &digests, meta),
                }
            }
            reporter.bytes(len);
            reporter.file(&listed, &verdict)
        }
        Outcome::Failed {
            error,
            tag: Note::Listed(listed),
            ..
        } => {
            let verdict = match error {
                ReadError::Io { err, .. } if err.kind() == io::ErrorKind::NotFound => {
                    Verdict::Missing
                }
                other => Verdict::Error(other.kind(), other.to_string()),
            };
            if let Some(next) = next {
                next.learn(&listed);
            }
            settle(listed, verdict, config, moves, reporter)
        }
        Outcome::Note(Note::Judged(listed, verdict)) => {
            if let Some(next) = next {
                next.learn(&listed);
            }
            settle(listed, verdict, config, moves, reporter)
        }
        Outcome::Note(Note::Malformed {
            manifest,
            line,
            why,
        }) => reporter.malformed(manifest, line, &why),
        Outcome::Note(Note::GaveUp { manifest, lines }) => reporter.not_a_manifest(manifest, lines),
        Outcome::Note(Note::Misplaced { manifest, dir }) => reporter.misplaced(manifest, &dir),
        // The check source sends only `Listed` tags with files, and no walk notices.
        Outcome::Read { .. } | Outcome::Failed { .. } | Outcome::Note(Note::Listed(_)) => {
            anyhow::bail!("internal error: unexpected outcome in check")
        }
        Outcome::Notice(_) => Ok(()),
    }
}

/// Reports a verdict reached without reading, except MISSING ones that `--audit` may
/// find moved: those wait for its walk.
fn settle(
    listed: Listed,
    verdict: Verdict,
    config: &CheckConfig,
    moves: &mut Moves,
    reporter: &mut dyn Findings,
) -> Result<()> {
    if matches!(verdict, Verdict::Missing) {
        if !config.audit.is_empty() {
            let Some(listed) = moves.hold(listed) else {
                return Ok(());
            };
            if !config.ignore_missing {
                reporter.file(&listed, &verdict)?;
            }
            return Ok(());
        }
        if config.ignore_missing {
            return Ok(());
        }
    }
    reporter.file(&listed, &verdict)
}
