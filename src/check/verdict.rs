//! What becomes of one listed file, and how a digest that differs is told apart: for a
//! JSON line with metadata, an edit (MODIFIED: the size or the modification time moved
//! too) from bitrot or tampering (CORRUPT: the content changed under an unchanged size
//! and mtime), as cshatag and chkbit tell them. Every other line keeps `sha256sum -c`'s
//! one word for a mismatch, FAILED.

use crate::hash::digest::{AlgoSet, Digests};
use crate::manifest::parse::Expected;

use super::Listed;
use crate::error::ErrorKind;

/// What became of one listed file.
#[derive(Debug)]
pub enum Verdict {
    /// Every expected digest matched (by these algorithms).
    Ok(AlgoSet),
    /// A digest did not match (a line without metadata).
    Failed,
    /// A digest did not match, and the file's size or modification time differs from
    /// the line's: a legitimate edit.
    Modified,
    /// A digest did not match, yet size and modification time are the line's: the
    /// content changed behind the file system's back.
    Corrupt,
    /// No such file.
    Missing,
    /// The file could not be verified; the kind and the cause in words.
    Error(ErrorKind, String),
    /// Nothing to verify the content against, by what was recorded rather than by a
    /// fault found now: an archive member whose table of contents has no digest (the
    /// packer could not read the file whole and unchanged). The cause in words.
    Unverified(String),
}

impl Verdict {
    /// The word in the report, text and JSON alike.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Ok(_) => "OK",
            Verdict::Failed => "FAILED",
            Verdict::Modified => "MODIFIED",
            Verdict::Corrupt => "CORRUPT",
            Verdict::Missing => "MISSING",
            Verdict::Error(..) => "ERROR",
            Verdict::Unverified(_) => "UNVERIFIED",
        }
    }
}

/// What the `stat` taken before reading found: size in bytes and modification time in
/// nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub size: u64,
    pub mtime_ns: i64,
}

/// The verdict on a file whose content differs from its line: MODIFIED or CORRUPT when
/// the line carries metadata to compare the file's with, FAILED otherwise.
pub fn mismatch(listed: &Listed, found: Option<Found>) -> Verdict {
    let (Some(meta), Some(found)) = (listed.meta, found) else {
        return Verdict::Failed;
    };
    let size_moved = listed.size.is_some_and(|size| size != found.size);
    if size_moved || meta.mtime_ns != found.mtime_ns {
        Verdict::Modified
    } else {
        Verdict::Corrupt
    }
}

/// OK when every expected digest matches one of the digests computed for it; else the
/// verdict of [`mismatch`].
pub fn judge(listed: &Listed, computed: &Digests) -> Verdict {
    match matches(&listed.expected, computed) {
        Some(algos) => Verdict::Ok(algos),
        None => mismatch(listed, listed.found),
    }
}

/// The algorithms that matched, when every expected digest matches one of the digests
/// computed for it. An expected digest shorter than its algorithm's (the 16-byte BLAKE3
/// of an archive's table of contents; the parser lets no other through) is the start
/// of the computed one.
pub fn matches(expected: &[Expected], computed: &Digests) -> Option<AlgoSet> {
    let mut matched = AlgoSet::default();
    for e in expected {
        let (algo, _) = computed
            .iter()
            .find(|(algo, hex)| e.algos.contains(*algo) && hex.starts_with(&e.hex))?;
        matched.insert(*algo);
    }
    Some(matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::digest::Algo;
    use crate::manifest::FileMeta;

    fn e(algos: AlgoSet, hex: &str) -> Expected {
        Expected {
            algos,
            hex: hex.into(),
        }
    }

    #[test]
    fn every_expected_digest_must_match() {
        let both = AlgoSet::one(Algo::Blake3).union(AlgoSet::one(Algo::Sha256));
        let computed: Digests = vec![(Algo::Blake3, "b".into()), (Algo::Sha256, "s".into())];
        assert!(matches(&[e(both, "s")], &computed).is_some());
        assert!(matches(&[e(both, "x")], &computed).is_none());
        let sha = AlgoSet::one(Algo::Sha256);
        let blake = AlgoSet::one(Algo::Blake3);
        assert!(matches(&[e(sha, "s"), e(blake, "x")], &computed).is_none());
        assert!(matches(&[e(sha, "b")], &computed).is_none());
    }

    #[test]
    fn a_mismatch_is_modified_when_size_or_mtime_moved_else_corrupt() {
        let meta = FileMeta {
            mtime_ns: 100,
            ..FileMeta::default()
        };
        let listed = |meta: Option<FileMeta>| Listed {
            name: b"f".to_vec(),
            manifest: 0,
            line: 1,
            expected: Vec::new(),
            size: Some(10),
            meta,
            found: None,
            key: 0,
        };
        let found = |size, mtime_ns| Some(Found { size, mtime_ns });
        let with = listed(Some(meta));
        assert!(matches!(mismatch(&with, found(10, 100)), Verdict::Corrupt));
        assert!(matches!(mismatch(&with, found(10, 101)), Verdict::Modified));
        assert!(matches!(mismatch(&with, found(11, 100)), Verdict::Modified));
        assert!(matches!(mismatch(&with, None), Verdict::Failed));
        let without = listed(None);
        assert!(matches!(
            mismatch(&without, found(10, 100)),
            Verdict::Failed
        ));
    }
}
