//! What a manifest has listed so far: for refusing duplicates that disagree, and for
//! `--audit`, which reports files in the tree that no manifest line names.
//!
//! Paths are kept as keyed 128-bit hashes of their normalized absolute form, not as
//! strings: 24 bytes a line instead of the path, so a manifest of a million files costs
//! tens of megabytes, not hundreds. The key is random per run, so nobody can craft two
//! names that collide. Every error a collision could cause points the safe way: a NEW
//! file not reported as NEW, or a duplicate reported where there is none.

use std::collections::HashSet;
use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use xxhash_rust::xxh3::{xxh3_64, xxh3_128_with_seed};

use crate::hash::digest::AlgoSet;
use crate::manifest::parse::Expected;

pub struct Listing {
    seed: u64,
    /// (path, algorithms) → (digest fingerprint, line it was first listed on).
    digests: HashMap<u128, (u64, u64)>,
    /// Every path listed, when auditing.
    paths: Option<HashSet<u128>>,
    /// Lines skipped because they belong to another `--shard`.
    pub other_shards: u64,
}

impl Listing {
    pub fn new(audit: bool) -> Self {
        Listing {
            seed: RandomState::new().hash_one(0x5ba7e_u64),
            digests: HashMap::new(),
            paths: audit.then(HashSet::new),
            other_shards: 0,
        }
    }

    /// Whether `--audit` will ask which paths were listed.
    pub fn auditing(&self) -> bool {
        self.paths.is_some()
    }

    /// Records that a manifest lists `path` (absolute, in the form `--audit` compares),
    /// when auditing. Returns the path's key (see [`Listing::key`]).
    pub fn list(&mut self, path: &Path) -> u128 {
        let key = self.key(path);
        if let Some(paths) = &mut self.paths {
            paths.insert(key);
        }
        key
    }

    /// The key `path` (in the form `--audit` compares) is kept under: what `check
    /// --update` files a listed file's result by until the walk reaches it.
    pub fn key(&self, path: &Path) -> u128 {
        xxh3_128_with_seed(path.as_os_str().as_bytes(), self.seed)
    }

    /// Records that `line` lists `path` (absolute, normalized) with `expected`. Returns
    /// the earlier line when the same path was listed before with another digest of the
    /// same algorithm.
    pub fn add(&mut self, path: &Path, expected: &[Expected], line: u64) -> Option<u64> {
        let bytes = path.as_os_str().as_bytes();
        for e in expected {
            let key = self.key_with_algos(bytes, e.algos);
            let fingerprint = xxh3_64(e.hex.as_bytes());
            match self.digests.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert((fingerprint, line));
                }
                Entry::Occupied(slot) if slot.get().0 != fingerprint => {
                    return Some(slot.get().1);
                }
                Entry::Occupied(_) => {}
            }
        }
        None
    }

    /// True when the path of `key` (see [`Listing::key`]) was listed. Always
    /// true when not auditing.
    pub fn contains_key(&self, key: u128) -> bool {
        self.paths.as_ref().is_none_or(|paths| paths.contains(&key))
    }

    fn key_with_algos(&self, path: &[u8], algos: AlgoSet) -> u128 {
        let mut bytes = Vec::with_capacity(path.len() + 5);
        bytes.extend_from_slice(path);
        bytes.push(0); // no path contains NUL: the algorithm bits cannot run into it
        bytes.extend_from_slice(&algos.bits().to_le_bytes());
        xxh3_128_with_seed(&bytes, self.seed)
    }
}

/// `base` joined with `name`, with `.` dropped and `..` applied lexically: the form in
/// which listed paths and walked paths are compared.
pub fn normalize(base: &Path, name: &Path) -> PathBuf {
    let mut out = PathBuf::from(base);
    for component in name.components() {
        match component {
            Component::RootDir => out = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::digest::Algo;

    fn exp(algo: Algo, hex: &str) -> Vec<Expected> {
        vec![Expected {
            algos: AlgoSet::one(algo),
            hex: hex.into(),
        }]
    }

    #[test]
    fn disagreeing_duplicates_are_caught() {
        let mut l = Listing::new(true);
        let p = normalize(Path::new("/r"), Path::new("./a/../b"));
        assert_eq!(p, Path::new("/r/b"));
        assert_eq!(l.add(&p, &exp(Algo::Sha256, "aa"), 1), None);
        assert_eq!(l.add(&p, &exp(Algo::Md5, "bb"), 2), None, "other algorithm");
        assert_eq!(l.add(&p, &exp(Algo::Sha256, "aa"), 3), None, "same digest");
        assert_eq!(l.add(&p, &exp(Algo::Sha256, "ab"), 4), Some(1));
        assert!(
            !l.contains_key(l.key(Path::new("/r/b"))),
            "listed for --audit only by list()"
        );
        l.list(&p);
        assert!(l.contains_key(l.key(Path::new("/r/b"))));
        assert!(!l.contains_key(l.key(Path::new("/r/c"))));
    }
}
