//! `--audit DIR`: walks DIR for files no manifest line names (NEW), and tells a file that
//! was renamed or moved (MOVED, `old -> new`) from one MISSING line plus one NEW file, as
//! hashdeep's audit does.
//!
//! A NEW file is read only when it may be a MISSING line's: when some MISSING line of a
//! JSON manifest (which gives the size) has its size, or when some MISSING line is a
//! GNU or BSD line (no size). An unchanged tree with a few new files costs the walk
//! alone. What is kept is the MISSING lines themselves, so memory grows with them, not
//! with the tree. With `--update NEW`, every NEW file is read (once): NEW needs its
//! digest, and the same digest tells whether it moved.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::Findings;
use super::listing::Listing;
use super::names::AuditPaths;
use super::next::Next;
use super::verdict::matches;
use super::{CheckConfig, Listed};
use crate::hash::digest::{Algo, AlgoSet, Digests, MultiHasher};
use crate::hash::stamped::StampedSink;
use crate::manifest::FileMeta;
use crate::pipeline::{self, Feed, Item, Outcome};
use crate::progress::{Progress, ProgressMode};
use crate::read::SinkFactory;
use crate::walk::{self, Entry, Found, NoticeKind, WalkOptions};

/// MISSING lines that may turn up under another name.
#[derive(Default)]
pub(super) struct Moves {
    /// In manifest order; `None` once claimed by a file found elsewhere.
    records: Vec<Option<Listed>>,
    /// A line's first expected digest → its places in `records`.
    by_digest: HashMap<String, Vec<usize>>,
    /// Sizes of the lines held: a NEW file of another size cannot be one of them.
    sizes: HashSet<u64>,
    /// Some line held has no size (a GNU or BSD line): any NEW file may be its.
    sizeless: bool,
    /// Every algorithm the lines held are in: what a NEW file is hashed with.
    algos: AlgoSet,
}

/// What a digest is filed under: its first 32 hex digits, all an archive's table keeps
/// of a BLAKE3 (the whole digest when shorter), so that a table's digest and the file's
/// meet.
fn digest_key(hex: &str) -> &str {
    hex.get(..32).unwrap_or(hex)
}

impl Moves {
    /// Keeps a MISSING line to match against the files the walk finds. Gives it back
    /// when it has no digest to match, to be reported MISSING now.
    pub fn hold(&mut self, listed: Listed) -> Option<Listed> {
        let Some(first) = listed.expected.first() else {
            return Some(listed);
        };
        match listed.size {
            Some(size) => _ = self.sizes.insert(size),
            None => self.sizeless = true,
        }
        self.algos = self.algos.union(listed.algos());
        self.by_digest
            .entry(digest_key(&first.hex).to_owned())
            .or_default()
            .push(self.records.len());
        self.records.push(Some(listed));
        None
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The line a file at `path` of `size` bytes with digests `computed` was listed
    /// under, if one is held: taken, so that a second copy is NEW. Among equal
    /// contents, a line with the same file name wins (a directory renamed or moved).
    fn claim(&mut self, path: &Path, size: u64, computed: &Digests) -> Option<Listed> {
        let mut fits = computed
            .iter()
            .filter_map(|(_, hex)| self.by_digest.get(digest_key(hex)))
            .flatten()
            .copied()
            .filter(|&i| {
                self.records[i].as_ref().is_some_and(|listed| {
                    listed.size.is_none_or(|listed| listed == size)
                        && matches(&listed.expected, computed).is_some()
                })
            })
            .collect::<Vec<usize>>();
        fits.sort_unstable();
        let same_name = |&i: &usize| {
            self.records[i]
                .as_ref()
                .is_some_and(|l| Path::new(super::os(&l.name)).file_name() == path.file_name())
        };
        let chosen = fits
            .iter()
            .copied()
            .find(same_name)
            .or(fits.first().copied())?;
        self.records[chosen].take()
    }

    /// The lines no file claimed, in manifest order.
    pub fn into_missing(self) -> impl Iterator<Item = Listed> {
        self.records.into_iter().flatten()
    }
}

/// What the audit walk hands on: a file to report NEW at once, or one to read first.
enum Walked {
    New(PathBuf),
    /// May be a MISSING line's file (or `--update` needs its digest): read first.
    Candidate,
    /// A listed file, reached in walk order: where `--update` writes its record.
    Listed(PathBuf, u128),
}

/// Which files the walk hands to the readers.
struct Wanted {
    /// Sizes of MISSING lines.
    sizes: HashSet<u64>,
    /// Every file no line lists: a MISSING line has no size, or NEW needs them all.
    all: bool,
    /// Listed files go to the printer too, in walk order (`--update`).
    listed: bool,
}

/// Hashes candidates with every algorithm of the lines held (and NEW's).
struct CandidateHashers(Vec<Algo>);

impl SinkFactory for CandidateHashers {
    type Tag = Walked;
    type Sink = StampedSink;
    fn make(&self, entry: &Entry, _tag: &Walked) -> StampedSink {
        StampedSink::new(MultiHasher::new(&self.0), entry)
    }
}

/// Walks every `--audit` directory and reports the files no manifest lists: MOVED when
/// one is a held MISSING line's file, else NEW. Reads through the same readers as the
/// listed files.
pub(super) fn run(
    config: &CheckConfig,
    listing: Arc<Mutex<Listing>>,
    moves: &mut Moves,
    reporter: &mut dyn Findings,
    mut next: Option<&mut Next>,
) -> Result<()> {
    for dir in &config.audit {
        std::fs::canonicalize(dir)
            .with_context(|| format!("cannot open --audit directory {}", dir.display()))?;
    }
    let dirs = config.audit.clone();
    let wanted = Wanted {
        sizes: std::mem::take(&mut moves.sizes),
        all: moves.sizeless || next.is_some(),
        listed: next.is_some(),
    };
    // The walk must know sizes to pick candidates, and needs not stat otherwise.
    let options = WalkOptions {
        sizes_upfront: config.walk.sizes_upfront || !moves.is_empty() || next.is_some(),
        ..config.walk.clone()
    };
    let source = move |feed: &mut Feed<Walked>| {
        let listing = listing.lock().unwrap_or_else(|p| p.into_inner());
        for dir in dirs {
            walk_one(&dir, &options, &listing, &wanted, feed)?;
        }
        Ok(())
    };
    let mut algos = moves.algos;
    if let Some(next) = &next {
        for algo in next.algos() {
            algos.insert(*algo);
        }
    }
    let factory = Arc::new(CandidateHashers(algos.iter().collect()));
    // The bar of the listed files is gone; the report's lines are printed through it,
    // so a second bar would be torn by them.
    let progress = Progress::new(ProgressMode::None);
    pipeline::run_source(
        source,
        pipeline::REORDER_LIMIT,
        &config.read,
        factory,
        &progress,
        |outcome| deliver(outcome, moves, reporter, next.as_deref_mut()),
    )
}

/// Walks one directory, pushing files no manifest lists.
fn walk_one(
    dir: &Path,
    options: &WalkOptions,
    listing: &Listing,
    wanted: &Wanted,
    feed: &mut Feed<Walked>,
) -> Result<()> {
    // Walked paths take the form listed names took (the canonical directory and the
    // last component), so links on the way on either side do not make files NEW.
    let mut audit_paths = AuditPaths::default();
    walk::walk(
        &[dir.as_os_str().to_os_string()],
        options,
        |found| match found {
            Found::File(entry) => {
                let key = listing.key(&audit_paths.of(Path::new(""), &entry.path));
                if listing.contains_key(key) {
                    !wanted.listed || feed.push(Item::Note(Walked::Listed(entry.path, key)))
                } else if wanted.all || entry.stat_known && wanted.sizes.contains(&entry.size) {
                    feed.push(Item::File(entry, Walked::Candidate))
                } else {
                    feed.push(Item::Note(Walked::New(entry.path)))
                }
            }
            Found::Notice(notice) => feed.push(Item::Notice(notice)),
        },
    )
}

fn deliver(
    outcome: Outcome<(Digests, FileMeta), Walked>,
    moves: &mut Moves,
    reporter: &mut dyn Findings,
    next: Option<&mut Next>,
) -> Result<()> {
    match outcome {
        Outcome::Note(Walked::New(path)) => reporter.new_file(&path),
        Outcome::Note(Walked::Listed(path, key)) => match next {
            Some(next) => next.write_listed(key, &path),
            None => Ok(()),
        },
        Outcome::Read {
            path,
            output: (digests, meta),
            len,
            ..
        } => {
            reporter.bytes(len);
            if let Some(next) = next {
                next.write_read(&path, len, &digests, meta)?;
            }
            match moves.claim(&path, len, &digests) {
                Some(listed) => reporter.moved(&listed, &path, &digests),
                None => reporter.new_file(&path),
            }
        }
        // Unreadable, it cannot be matched; it is still a file no line names. NEW cannot
        // list it: said as `spate hash` says it.
        Outcome::Failed { path, error, .. } => {
            if next.is_some() {
                let problem = crate::report::Problem::read(&path, error);
                reporter.walk_error(&path, problem.kind, &problem.cause.to_string())?;
            }
            reporter.new_file(&path)
        }
        Outcome::Notice(notice) => match notice.kind {
            NoticeKind::Error(kind, cause) => reporter.walk_error(&notice.path, kind, &cause),
            NoticeKind::Skipped(_) => Ok(()),
        },
        Outcome::Note(Walked::Candidate) => {
            anyhow::bail!("internal error: a candidate without its file")
        }
    }
}
