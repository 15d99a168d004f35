//! `--audit DIR`: walks DIR for files no manifest line names (NEW), and tells a file that
//! was renamed or moved (MOVED, `old -> new`) from one MISSING line plus one NEW file, as
//! hashdeep's audit does.
//!
//! A NEW file is read only when some MISSING line (of a JSON manifest, which gives the
//! size) has its size: an unchanged tree with a few new files costs the walk alone. What
//! is kept is the MISSING lines themselves, so memory grows with them, not with the tree.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::Findings;
use super::listing::Listing;
use super::names::AuditPaths;
use super::verdict::matches;
use super::{CheckConfig, Listed};
use crate::hash::digest::{Algo, AlgoSet, Digests, MultiHasher};
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
    /// Every algorithm the lines held are in: what a NEW file is hashed with.
    algos: AlgoSet,
}

impl Moves {
    /// Keeps a MISSING line to match against the files the walk finds. Gives it back
    /// when it cannot be matched cheaply (no size: a GNU or BSD line), to be reported
    /// MISSING now.
    pub fn hold(&mut self, listed: Listed) -> Option<Listed> {
        let (Some(size), Some(first)) = (listed.size, listed.expected.first()) else {
            return Some(listed);
        };
        self.sizes.insert(size);
        self.algos = self.algos.union(listed.algos());
        self.by_digest
            .entry(first.hex.clone())
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
            .filter_map(|(_, hex)| self.by_digest.get(hex))
            .flatten()
            .copied()
            .filter(|&i| {
                self.records[i].as_ref().is_some_and(|listed| {
                    listed.size == Some(size) && matches(&listed.expected, computed).is_some()
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
    /// Has the size of a MISSING line: read to see whether it is that file.
    Candidate,
}

/// Hashes candidates with every algorithm of the lines held.
struct CandidateHashers(Vec<Algo>);

impl SinkFactory for CandidateHashers {
    type Tag = Walked;
    type Sink = MultiHasher;
    fn make(&self, _entry: &Entry, _tag: &Walked) -> MultiHasher {
        MultiHasher::new(&self.0)
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
) -> Result<()> {
    for dir in &config.audit {
        std::fs::canonicalize(dir)
            .with_context(|| format!("cannot open --audit directory {}", dir.display()))?;
    }
    let dirs = config.audit.clone();
    let sizes = std::mem::take(&mut moves.sizes);
    // The walk must know sizes to pick candidates, and needs not stat otherwise.
    let options = WalkOptions {
        sizes_upfront: config.walk.sizes_upfront || !moves.is_empty(),
        ..config.walk.clone()
    };
    let source = move |feed: &mut Feed<Walked>| {
        let listing = listing.lock().unwrap_or_else(|p| p.into_inner());
        for dir in dirs {
            walk_one(&dir, &options, &listing, &sizes, feed)?;
        }
        Ok(())
    };
    let factory = Arc::new(CandidateHashers(moves.algos.iter().collect()));
    // The bar of the listed files is gone; the report's lines are printed through it,
    // so a second bar would be torn by them.
    let progress = Progress::new(ProgressMode::None);
    pipeline::run_source(
        source,
        pipeline::REORDER_LIMIT,
        &config.read,
        factory,
        &progress,
        |outcome| deliver(outcome, moves, reporter),
    )
}

/// Walks one directory, pushing files no manifest lists.
fn walk_one(
    dir: &Path,
    options: &WalkOptions,
    listing: &Listing,
    sizes: &HashSet<u64>,
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
                if listing.contains(&audit_paths.of(Path::new(""), &entry.path)) {
                    true
                } else if entry.stat_known && sizes.contains(&entry.size) {
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
    outcome: Outcome<Digests, Walked>,
    moves: &mut Moves,
    reporter: &mut dyn Findings,
) -> Result<()> {
    match outcome {
        Outcome::Note(Walked::New(path)) => reporter.new_file(&path),
        Outcome::Read {
            path, output, len, ..
        } => {
            reporter.bytes(len);
            match moves.claim(&path, len, &output) {
                Some(listed) => reporter.moved(&listed, &path, &output),
                None => reporter.new_file(&path),
            }
        }
        // Unreadable, it cannot be matched; it is still a file no line names.
        Outcome::Failed { path, .. } => reporter.new_file(&path),
        Outcome::Notice(notice) => match notice.kind {
            NoticeKind::Error(kind, cause) => reporter.walk_error(&notice.path, kind, &cause),
            NoticeKind::Skipped(_) => Ok(()),
        },
        Outcome::Note(Walked::Candidate) => {
            anyhow::bail!("internal error: a candidate without its file")
        }
    }
}
