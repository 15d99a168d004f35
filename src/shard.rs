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
//! On the command line and in messages shards are numbered from 1, `--shard K/N` with
//! `1 <= K <= N`, as `cargo nextest --partition count:K/N`, jest and playwright
//! `--shard` number them. Schedulers count from 0 (Kubernetes' `JOB_COMPLETION_INDEX`,
//! Slurm arrays numbered `0-(N-1)`): index i is shard i+1. Inside, [`Shard::index`] is
//! the 0-based remainder, so shard K/N holds the files with `xxh3_64 mod N == K - 1`.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use xxhash_rust::xxh3::xxh3_64;

/// Environment variables that carry a worker's index, in the order they are consulted.
pub const INDEX_VARS: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

/// Shard `index + 1` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based: the remainder `xxh3_64 mod count` of this shard's files. People see
    /// `index + 1` ([`Shard::number`]).
    pub index: u64,
    pub count: u64,
}

/// Which of `count` shards a manifest name belongs to.
pub fn shard_of(name: &[u8], count: u64) -> u64 {
    xxh3_64(name) % count
}

impl Shard {
    /// A checked shard from a 0-based index: `count >= 1` and `index < count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("N must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "index {index} is out of range: must be 0..={} (0-based, shard K = index + 1)",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard as people number it: 1 to `count`.
    pub fn number(&self) -> u64 {
        self.index + 1
    }

    /// True when the file named `name` (manifest bytes) is this shard's.
    pub fn contains(&self, name: &[u8]) -> bool {
        shard_of(name, self.count) == self.index
    }

    /// The shard from `--shards N` and the scheduler's 0-based index variable (index i
    /// is shard i+1 of N). `lookup` reads the environment (a parameter so tests need not
    /// change the process's).
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
            .map_err(|_| anyhow::anyhow!("{var}='{value}' is not a shard index"))?;
        Shard::new(index, count).map_err(|why| {
            // Slurm arrays are often numbered from 1; say how to number them from 0.
            anyhow::anyhow!(
                "--shards {count}: {var}={value}: {why}; with Slurm, use --array=0-{}",
                count.saturating_sub(1)
            )
        })
    }
}

/// Parses `K/N`, 1-based: `1/4` to `4/4`.
impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| "expected K/N, shard K of N counted from 1 (e.g. 1/4)".to_string())?;
        let count: u64 = n
            .trim()
            .parse()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("N must be a whole number, at least 1 (got '{n}')"))?;
        let number: u64 = k
            .trim()
            .parse()
            .ok()
            .filter(|k| (1..=count).contains(k))
            .ok_or_else(|| {
                format!("K must be 1..={count}: shards are numbered from 1 (got '{k}')")
            })?;
        Shard::new(number - 1, count)
    }
}

/// `K/N`, 1-based, as `--shard` takes it.
impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number(), self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_based_k_of_n() {
        assert_eq!("1/4".parse(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!("4/4".parse(), Ok(Shard { index: 3, count: 4 }));
        assert_eq!(Shard { index: 3, count: 4 }.to_string(), "4/4");
        for bad in ["0/4", "5/4", "1/0", "x/4", "1", "-1/4", "1/4/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(
            "0/4".parse::<Shard>().unwrap_err(),
            "K must be 1..=4: shards are numbered from 1 (got '0')"
        );
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
        assert_eq!(shard.to_string(), "3/4", "index 2 is the third shard");
        let shard = Shard::from_env(4, env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap();
        assert_eq!(shard.index, 3);
        let err = Shard::from_env(4, env(&[("SLURM_ARRAY_TASK_ID", "4")])).unwrap_err();
        assert!(format!("{err:#}").contains("--array=0-3"), "{err:#}");
        assert!(Shard::from_env(4, env(&[])).is_err());
    }
}
