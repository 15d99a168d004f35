//! `spate hash --update OLD DIR…`: the next JSON manifest of a tree, reading only the
//! files that changed since OLD was written.
//!
//! The decision is made in the walk stage, before any reader sees the file: a file
//! whose size, mtime, inode and ctime are what OLD recorded goes to the printer as a
//! decided [`Item::Note`] carrying OLD's digests, so it is never opened; every other
//! file goes to the readers like in a plain `spate hash`. OLD is streamed in step with
//! the walk ([`join`]), so memory does not grow with the manifest.

mod fast;
mod join;
pub(crate) mod old;
pub mod policy;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use crate::algo::{Algo, Digests};
use crate::manifest::{self, FileMeta, Format, Style};
use crate::output::Cleanup;
use crate::pipeline::{self, Feed, Item, Outcome};
use crate::progress::{Progress, Summary};
use crate::report::Reporter;
use crate::walk::{self, Entry, Found, WalkOptions};

use super::HashConfig;
use super::digest::HasherFactory;
use super::stamped::{StampedFactory, meta_of, now_ns};
use join::{Join, Leftovers};
use old::{OldManifest, OldRecord};
use policy::{Reread, UpdatePolicy, Verdict};

/// `--update OLD` and its policy flags.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// The manifest of the previous run (`spate hash --json`).
    pub old: PathBuf,
    pub policy: UpdatePolicy,
    /// No `-a` was given: NEW has OLD's algorithms.
    pub algos_from_old: bool,
}

/// What travels with each file through the pipeline.
enum Tag {
    /// Read, because of this; for a scrub, with OLD's record to compare against.
    Read(Why, Option<Box<OldRecord>>),
    /// Not read: OLD's digests with today's metadata.
    Reused(Box<(PathBuf, u64, Digests, FileMeta)>),
    /// After the last file: what became of OLD's other records.
    End(Leftovers),
}

#[derive(Debug, Clone, Copy)]
enum Why {
    New,
    Again(Reread),
}

/// The counts `--update` reports.
#[derive(Debug, Default)]
struct Tally {
    reused: u64,
    changed: u64,
    scrubbed: u64,
    new: u64,
    /// Scrubbed files whose content changed while their metadata did not.
    corrupt: u64,
    leftovers: Leftovers,
}

/// Runs `spate hash` with `--update`. `Ok(true)` when every file was hashed or reused
/// and no scrub found a changed content, `Ok(false)` otherwise (each reported).
pub fn run(config: &HashConfig, update: &UpdateConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    let started = Instant::now();
    // OLD is opened and its first record read before the output exists: a file that is
    // not a spate JSON manifest stops the run with nothing written.
    let mut old = OldManifest::open(&update.old)?;
    let algos = match old.peek()? {
        Some(first) if update.algos_from_old => first.digests.iter().map(|(a, _)| *a).collect(),
        _ => config.algos.clone(),
    };
    let style = Style {
        format: Format::Json,
        zero: false,
    };
    let (mut out, walk_options) = super::open_output(config, cleanup)?;
    let walk_options = WalkOptions {
        // The walk's stat is what is compared with OLD.
        sizes_upfront: true,
        ..walk_options
    };
    let source = {
        let roots: Vec<PathBuf> = config.paths.iter().map(PathBuf::from).collect();
        let (policy, algos) = (update.policy.clone(), algos.clone());
        move |feed: &mut Feed<Tag>| walk_and_join(feed, old, &roots, &walk_options, &policy, &algos)
    };
    let factory = Arc::new(StampedFactory::new(HasherFactory {
        algos: algos.clone(),
        blake3: config.blake3,
    }));

    let reporter = Reporter::with_skipped(Progress::new(config.progress), config.notices);
    let mut summary = Summary::default();
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(super::FLUSH_AT * 2);
    let result = pipeline::run_source(
        source,
        pipeline::REORDER_LIMIT,
        &config.read,
        factory,
        reporter.progress(),
        |outcome| {
            match outcome {
                Outcome::Read {
                    path,
                    output: (digests, meta),
                    len,
                    tag,
                } => {
                    summary.files += 1;
                    summary.bytes += len;
                    let Tag::Read(why, old) = tag else {
                        anyhow::bail!("internal error: {} read without a reason", path.display());
                    };
                    let (digests, meta) = match tally.count_read(why, old, &algos, digests, meta) {
                        Ok(kept) => kept,
                        Err((kept, problem)) => {
                            reporter.notice(&path, problem);
                            kept
                        }
                    };
                    manifest::push_with_meta(&mut buf, style, &path, len, &digests, Some(&meta));
                }
                Outcome::Note(Tag::Reused(reused)) => {
                    let (path, size, digests, meta) = *reused;
                    summary.files += 1;
                    tally.reused += 1;
                    manifest::push_with_meta(&mut buf, style, &path, size, &digests, Some(&meta));
                }
                Outcome::Note(Tag::End(leftovers)) => tally.leftovers = leftovers,
                Outcome::Note(Tag::Read(..)) => {}
                Outcome::Failed { path, error, .. } => reporter.read_failed(&path, error),
                Outcome::Notice(notice) => {
                    reporter.walk_notice(&notice);
                }
            }
            if buf.len() >= super::FLUSH_AT {
                super::write_batch(&reporter, &mut out, &buf)?;
                buf.clear();
            }
            Ok(())
        },
    );
    // The last lines go out with the bar still up, as in a plain run.
    let written = super::write_batch(&reporter, &mut out, &buf);
    reporter.finish();
    result?;
    written?;
    out.commit()?;
    summary.errors = reporter.errors();
    summary.skipped = reporter.skipped_count();
    tally.report(&reporter, &update.old, config.stats, &summary, started);
    Ok(summary.errors == 0 && tally.corrupt == 0)
}

/// The source of the pipeline: walks each root in turn and sends every file either to
/// the readers or, when OLD's record can be reused, straight to the printer.
fn walk_and_join(
    feed: &mut Feed<Tag>,
    old: OldManifest,
    roots: &[PathBuf],
    options: &WalkOptions,
    policy: &UpdatePolicy,
    algos: &[Algo],
) -> Result<()> {
    let mut join = Join::new(old, roots, options.shard);
    let now = now_ns();
    for (index, root) in roots.iter().enumerate() {
        let mut failed = None;
        let mut stopped = false;
        walk::walk(
            std::slice::from_ref(&root.clone().into_os_string()),
            options,
            |found| {
                let item = match found {
                    Found::Notice(notice) => Item::Notice(notice),
                    Found::File(entry) => match join.find(index, &entry.path) {
                        Ok(old) => decide(entry, old, policy, algos, now),
                        Err(err) => {
                            failed = Some(err);
                            return false;
                        }
                    },
                };
                stopped = !feed.push(item);
                !stopped
            },
        )?;
        if let Some(err) = failed {
            return Err(err);
        }
        if stopped {
            return Ok(());
        }
    }
    let leftovers = join.finish()?;
    feed.push(Item::Note(Tag::End(leftovers)));
    Ok(())
}

/// Reads `entry` or reuses OLD's digests for it.
fn decide(
    entry: Entry,
    old: Option<OldRecord>,
    policy: &UpdatePolicy,
    algos: &[Algo],
    now: i64,
) -> Item<Tag> {
    let Some(old) = old else {
        return Item::File(entry, Tag::Read(Why::New, None));
    };
    match policy.judge(&entry, &old, algos, now) {
        Verdict::Reuse(digests) => {
            // Today's stat (dev may differ after a remount), OLD's time of reading.
            let meta = meta_of(&entry, old.meta.hashed_ns);
            Item::Note(Tag::Reused(Box::new((
                entry.path, entry.size, digests, meta,
            ))))
        }
        Verdict::Read(Reread::Scrub) => Item::File(
            entry,
            Tag::Read(Why::Again(Reread::Scrub), Some(Box::new(old))),
        ),
        Verdict::Read(why) => Item::File(entry, Tag::Read(Why::Again(why), None)),
    }
}

impl Tally {
    /// Counts a file that was read, and returns what NEW records for it. A scrub that
    /// finds other content under unchanged metadata keeps OLD's digests (and time) in
    /// NEW, so the damage stays visible to later runs and to `check`, and returns the
    /// line that reports it as the error.
    #[allow(clippy::type_complexity)]
    fn count_read(
        &mut self,
        why: Why,
        old: Option<Box<OldRecord>>,
        algos: &[Algo],
        digests: Digests,
        meta: FileMeta,
    ) -> Result<(Digests, FileMeta), ((Digests, FileMeta), &'static str)> {
        match why {
            Why::New => self.new += 1,
            Why::Again(Reread::Scrub) => self.scrubbed += 1,
            Why::Again(_) => self.changed += 1,
        }
        let Some(old) = old else {
            return Ok((digests, meta));
        };
        match old.digests_of(algos) {
            Some(expected) if expected != digests => {
                self.corrupt += 1;
                let kept = FileMeta {
                    hashed_ns: old.meta.hashed_ns,
                    ..meta
                };
                let line = "content differs from OLD's digest but size, mtime and ctime do \
                            not: possible corruption (OLD's digest is kept)";
                Err(((expected, kept), line))
            }
            _ => Ok((digests, meta)),
        }
    }

    /// The counts on stderr: always when something is wrong, else with `--stats` or
    /// when stderr is a terminal (as other summaries).
    fn report(
        &self,
        reporter: &Reporter,
        old: &std::path::Path,
        stats: bool,
        summary: &Summary,
        started: Instant,
    ) {
        let Leftovers {
            gone,
            outside,
            unordered,
        } = self.leftovers;
        if unordered > 0 {
            reporter.notice(
                old,
                &format!(
                    "{unordered} records out of walk order were not used (give the DIRs in \
                     the order OLD was written with)"
                ),
            );
        }
        if self.corrupt > 0 {
            let (n, files) = match self.corrupt {
                1 => (1, "file"),
                n => (n, "files"),
            };
            reporter.say(&format!(
                "{n} {files} changed content without changing size or times (possible \
                 corruption)"
            ));
        }
        if !(stats || std::io::stderr().is_terminal()) {
            return;
        }
        reporter.say(&format!(
            "update: {} reused, {} read again ({} changed, {} scrubbed), {} new, \
             {gone} gone, {outside} outside the DIRs",
            self.reused,
            self.changed + self.scrubbed,
            self.changed,
            self.scrubbed,
            self.new,
        ));
        if stats {
            reporter.say(&summary.render(started));
        }
    }
}
