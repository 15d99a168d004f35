//! The table of checksum algorithms: names, digest lengths and sets of them. A leaf:
//! manifest formats and the digest code both use it, and it depends on neither.

use std::fmt;

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algo {
    /// BLAKE3, 256 bits (b3sum).
    Blake3,
    /// SHA-256 (sha256sum).
    Sha256,
    /// SHA-512 (sha512sum).
    Sha512,
    /// SHA-1 (sha1sum).
    Sha1,
    /// MD5 (md5sum).
    Md5,
    /// XXH3, 64 bits (xxhsum -H3).
    Xxh3,
}

impl Algo {
    /// Name used in `--tag` lines and JSON fields: `BLAKE3`, `SHA256`, ...
    pub fn tag(self) -> &'static str {
        match self {
            Algo::Blake3 => "BLAKE3",
            Algo::Sha256 => "SHA256",
            Algo::Sha512 => "SHA512",
            Algo::Sha1 => "SHA1",
            Algo::Md5 => "MD5",
            Algo::Xxh3 => "XXH3",
        }
    }

    /// Lower-case name, as on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Blake3 => "blake3",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
            Algo::Sha1 => "sha1",
            Algo::Md5 => "md5",
            Algo::Xxh3 => "xxh3",
        }
    }

    /// Length of the digest in hex characters.
    pub fn hex_len(self) -> usize {
        match self {
            Algo::Blake3 | Algo::Sha256 => 64,
            Algo::Sha512 => 128,
            Algo::Sha1 => 40,
            Algo::Md5 => 32,
            Algo::Xxh3 => 16,
        }
    }

    /// Parses a `--tag` name (case-insensitive).
    pub fn from_tag(tag: &str) -> Option<Algo> {
        ALL.iter()
            .copied()
            .find(|a| a.tag().eq_ignore_ascii_case(tag))
    }
}

/// Every algorithm, in the order they are listed.
pub const ALL: [Algo; 6] = [
    Algo::Blake3,
    Algo::Sha256,
    Algo::Sha512,
    Algo::Sha1,
    Algo::Md5,
    Algo::Xxh3,
];

/// A set of algorithms, as a bit set (what one manifest line's digest may be in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AlgoSet(u32);

impl AlgoSet {
    pub fn one(algo: Algo) -> Self {
        AlgoSet(1 << algo as u32)
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn insert(&mut self, algo: Algo) {
        self.0 |= 1 << algo as u32;
    }

    pub fn union(self, other: AlgoSet) -> Self {
        AlgoSet(self.0 | other.0)
    }

    pub fn contains(self, algo: Algo) -> bool {
        self.0 & (1 << algo as u32) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in the set, in [`ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algo> {
        ALL.into_iter().filter(move |&a| self.contains(a))
    }
}

impl FromIterator<Algo> for AlgoSet {
    fn from_iter<I: IntoIterator<Item = Algo>>(algos: I) -> Self {
        let mut set = AlgoSet::default();
        for algo in algos {
            set.insert(algo);
        }
        set
    }
}

impl fmt::Display for AlgoSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Algo::name).collect();
        f.write_str(&names.join(" or "))
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hex digests of one file, in the order the algorithms were asked for.
pub type Digests = Vec<(Algo, String)>;
