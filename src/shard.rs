//! Shards: a deterministic 1/N of a tree, so N workers on a scheduler (a Kubernetes
//! Indexed Job, a Slurm job array, GNU parallel over ssh) split one tree without talking
//! to each other.
//!
//! A file belongs to shard `xxh3_64(path bytes, seed 0) mod N`, where the path is the
//! name exactly as it appears in the manifest line (the root as given on the command
//! line, joined with the names below it). XXH3 is specified and stable across versions
//! and platforms, unlike std's `RandomState`; anyone can recompute a shard, e.g. in
//! Python: `xxhash.xxh3_64_intdigest(path) % n`. The price of hashing the name as
//! given: every worker must be started with the same path arguments from the same
//! directory (`spate hash data` and `spate hash ./data` split differently).
//!
//! Shard indices are 0-based, `0 <= K < N`, as Kubernetes' `JOB_COMPLETION_INDEX`.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use xxhash_rust::xxh3::xxh3_64;

/// Environment variables that carry a worker's index, in the order they are consulted.
pub const INDEX_VARS: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// Which of `count` shards a manifest name belongs to.
pub fn shard_of(name: &[u8], count: u64) -> u64 {
    xxh3_64(name) % count
}

impl Shard {
    /// A checked shard: `count >= 1` and `index < count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("the number of shards must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: indices are 0-based, 0 to {} for {count} shards",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// True when the file named `name` (manifest bytes) is this shard's.
    pub fn contains(&self, name: &[u8]) -> bool {
        shard_of(name, self.count) == self.index
    }

    /// The shard from `--shards N` and the scheduler's index variable. `lookup` reads
    /// the environment (a parameter so tests need not change the process's).
    pub fn from_env(count: u64, lookup: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let Some((var, value)) = INDEX_VARS
            .iter()
            .find_map(|var| lookup(var).map(|value| (*var, value)))
        else {
            anyhow::bail!(
                "--shards {count} needs the worker's index in JOB_COMPLETION_INDEX (Kubernetes \
                 Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm job array); or give --shard K/{count}"
            );
        };
        let index: u64 = value
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{var}={value:?} is not a shard index"))?;
        Shard::new(index, count).map_err(|why| {
            // Slurm arrays are often numbered from 1; say how to number them from 0.
            anyhow::anyhow!(
                "{var}={value}: {why} (with Slurm, use --array=0-{})",
                count.saturating_sub(1)
            )
        })
    }
}

/// Parses `K/N`.
impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected K/N (e.g. 0/4), got {s:?}"))?;
        let index = k
            .trim()
            .parse()
            .map_err(|_| format!("{k:?} is not a shard index"))?;
        let count = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a number of shards"))?;
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zero_based_k_of_n() {
        assert_eq!("0/4".parse(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!("3/4".parse(), Ok(Shard { index: 3, count: 4 }));
        for bad in ["4/4", "1/0", "x/4", "1", "-1/4", "1/4/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shard_function_is_pinned() {
        // Changing this function splits trees differently between versions: workers of
        // one job must agree, and so must `check --shard` with an old manifest.
        assert_eq!(xxh3_64(b""), 0x2d06800538d394c2);
        assert_eq!(shard_of(b"", 4), 0x2d06800538d394c2 % 4);
    }

    #[test]
    fn every_name_is_in_exactly_one_shard() {
        for i in 0..200u32 {
            let name = format!("tree/many/{i:03}");
            let hits = (0..5)
                .filter(|k| Shard::new(*k, 5).unwrap().contains(name.as_bytes()))
                .count();
            assert_eq!(hits, 1);
        }
    }

    #[test]
    fn index_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string())
            }
        };
        let shard = Shard::from_env(4, env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap();
        assert_eq!(shard, Shard { index: 2, count: 4 });
        let shard = Shard::from_env(4, env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap();
        assert_eq!(shard.index, 3);
        let err = Shard::from_env(4, env(&[("SLURM_ARRAY_TASK_ID", "4")])).unwrap_err();
        assert!(format!("{err:#}").contains("--array=0-3"), "{err:#}");
        assert!(Shard::from_env(4, env(&[])).is_err());
    }
}
