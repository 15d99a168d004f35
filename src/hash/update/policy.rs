//! When `--update` may reuse an OLD digest without reading the file.

use std::os::unix::ffi::OsStrExt;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::algo::{Algo, Digests};
use crate::manifest::meta::nanos;
use crate::walk::Entry;

use super::old::OldRecord;

/// A record whose mtime is less than this before the moment its file was read is not
/// trusted: a write in the same timestamp tick after the read would have left mtime
/// where it was (git's "racily clean" files). File systems stamp times from a clock
/// that ticks every few milliseconds (FAT: 2 s); the margin is that of FAT.
pub(crate) const RACY_NS: i64 = 2_000_000_000;

const DAY_NS: i64 = 86_400_000_000_000;

/// The policy flags of `--update`.
#[derive(Debug, Clone, Default)]
pub struct UpdatePolicy {
    /// `--ignore-ctime`: a different change time alone does not force a read.
    pub ignore_ctime: bool,
    /// `--ignore-inode`: a different inode alone does not force a read (file systems
    /// that renumber, e.g. some FUSE and network mounts, or a restored copy).
    pub ignore_inode: bool,
    /// `--rehash-older DAYS`, in nanoseconds: read files whose digest is older.
    pub rehash_older_ns: Option<i64>,
    /// `--sample PCT`, in hundredths of a percent (0..=10,000).
    pub sample: Option<u32>,
}

/// Why a file that OLD lists is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reread {
    /// Size, mtime, inode or ctime differ, or the file changed too close to its last
    /// read for the timestamps to tell: it may have been edited.
    Changed,
    /// OLD has no digest of a requested algorithm.
    NoDigest,
    /// Unchanged, but picked by `--rehash-older` or `--sample`: a scrub. A different
    /// digest then means the content changed without its metadata.
    Scrub,
}

/// What to do with one walked file that OLD lists.
pub(crate) enum Verdict {
    /// Keep OLD's digests of the requested algorithms, in their order.
    Reuse(Digests),
    Read(Reread),
}

impl UpdatePolicy {
    /// Judges `entry` (stat'ed by the walk) against its OLD record, at time `now_ns`.
    pub(crate) fn judge(
        &self,
        entry: &Entry,
        old: &OldRecord,
        algos: &[Algo],
        now_ns: i64,
    ) -> Verdict {
        let meta = &old.meta;
        let same = entry.size == old.size
            && nanos(entry.mtime) == meta.mtime_ns
            && (self.ignore_inode || entry.identity.inode == meta.inode)
            && (self.ignore_ctime || nanos(entry.identity.ctime) == meta.ctime_ns);
        let racy = meta
            .hashed_ns
            .is_some_and(|hashed| hashed.saturating_sub(meta.mtime_ns) < RACY_NS);
        if !same || racy {
            return Verdict::Read(Reread::Changed);
        }
        let Some(digests) = old.digests_of(algos) else {
            return Verdict::Read(Reread::NoDigest);
        };
        let too_old = self.rehash_older_ns.is_some_and(|limit| {
            meta.hashed_ns
                .is_none_or(|hashed| now_ns.saturating_sub(hashed) > limit)
        });
        if too_old || self.sampled(entry, now_ns) {
            return Verdict::Read(Reread::Scrub);
        }
        Verdict::Reuse(digests)
    }

    /// Whether `--sample` picks this file today: XXH3 of its path, seeded with the day
    /// (UTC) of the run. Runs on the same day pick the same files, so a scrub cut short
    /// is resumed, not redrawn, and anyone can recompute the choice; each day draws
    /// afresh. (`--rehash-older` is the guarantee that every file is read in time.)
    fn sampled(&self, entry: &Entry, now_ns: i64) -> bool {
        let Some(per_10000) = self.sample else {
            return false;
        };
        let day = now_ns.div_euclid(DAY_NS) as u64;
        let pick = xxh3_64_with_seed(entry.path.as_os_str().as_bytes(), day) % 10_000;
        pick < u64::from(per_10000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileMeta;
    use crate::walk::Identity;
    use std::path::PathBuf;

    const NOW: i64 = 1_000 * DAY_NS;

    fn entry(name: &str) -> Entry {
        Entry {
            seq: 0,
            path: PathBuf::from(name),
            size: 10,
            mtime: (100, 5),
            stat_known: true,
            identity: Identity {
                ctime: (200, 6),
                inode: 7,
                dev: 8,
            },
            beneath: None,
        }
    }

    fn old(name: &str) -> OldRecord {
        OldRecord {
            path: PathBuf::from(name),
            size: 10,
            digests: vec![(Algo::Blake3, "ab".into())],
            meta: FileMeta {
                mtime_ns: 100_000_000_005,
                ctime_ns: 200_000_000_006,
                inode: 7,
                dev: 9,
                hashed_ns: Some(NOW - DAY_NS),
            },
        }
    }

    fn reused(policy: &UpdatePolicy, e: &Entry, o: &OldRecord) -> bool {
        matches!(policy.judge(e, o, &[Algo::Blake3], NOW), Verdict::Reuse(_))
    }

    #[test]
    fn every_field_but_dev_must_match_unless_ignored() {
        let strict = UpdatePolicy::default();
        let e = entry("a");
        assert!(reused(&strict, &e, &old("a")), "dev is not compared");
        let mut o = old("a");
        o.size = 11;
        assert!(!reused(&strict, &e, &o));
        let mut o = old("a");
        o.meta.mtime_ns += 1;
        assert!(!reused(&strict, &e, &o));
        let mut o = old("a");
        o.meta.inode = 70;
        assert!(!reused(&strict, &e, &o));
        let relaxed = UpdatePolicy {
            ignore_inode: true,
            ..UpdatePolicy::default()
        };
        assert!(reused(&relaxed, &e, &o));
        let mut o = old("a");
        o.meta.ctime_ns += 1;
        assert!(!reused(&strict, &e, &o));
        let relaxed = UpdatePolicy {
            ignore_ctime: true,
            ..UpdatePolicy::default()
        };
        assert!(reused(&relaxed, &e, &o));
        let e = entry("a");
        assert!(matches!(
            strict.judge(&e, &old("a"), &[Algo::Sha256], NOW),
            Verdict::Read(Reread::NoDigest)
        ));
    }

    #[test]
    fn a_file_modified_just_before_its_read_is_read_again() {
        let mut o = old("a");
        o.meta.hashed_ns = Some(o.meta.mtime_ns + RACY_NS - 1);
        assert!(!reused(&UpdatePolicy::default(), &entry("a"), &o));
        o.meta.hashed_ns = Some(o.meta.mtime_ns + RACY_NS);
        assert!(reused(&UpdatePolicy::default(), &entry("a"), &o));
    }

    #[test]
    fn rehash_older_reads_digests_older_than_the_limit() {
        let policy = UpdatePolicy {
            rehash_older_ns: Some(2 * DAY_NS),
            ..UpdatePolicy::default()
        };
        let mut o = old("a");
        assert!(reused(&policy, &entry("a"), &o));
        o.meta.hashed_ns = Some(NOW - 3 * DAY_NS);
        assert!(!reused(&policy, &entry("a"), &o));
        o.meta.hashed_ns = None;
        assert!(!reused(&policy, &entry("a"), &o), "unknown age: read");
    }

    #[test]
    fn sample_picks_about_its_share_the_same_way_all_day() {
        let policy = UpdatePolicy {
            sample: Some(1_000),
            ..UpdatePolicy::default()
        };
        let names: Vec<String> = (0..10_000).map(|i| format!("t/{i}")).collect();
        let picked = |now: i64| -> Vec<bool> {
            names
                .iter()
                .map(|n| {
                    !matches!(
                        policy.judge(&entry(n), &old(n), &[Algo::Blake3], now),
                        Verdict::Reuse(_)
                    )
                })
                .collect()
        };
        let morning = picked(NOW + 1);
        let count = morning.iter().filter(|p| **p).count();
        assert!((800..1200).contains(&count), "{count} of 10,000 at 10%");
        assert_eq!(morning, picked(NOW + DAY_NS - 1), "same day, same files");
        assert_ne!(morning, picked(NOW + DAY_NS), "another day, another draw");
    }
}
