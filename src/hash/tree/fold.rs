//! The Merkle fold behind `--tree-digest`: walk-ordered entries in, one digest per
//! directory out, as each directory is finished.
//!
//! The walk is depth-first and yields a directory's entries in byte order of their
//! names, so a directory is finished as soon as an entry outside it arrives. Each open
//! directory keeps only a running BLAKE3 hasher, so memory is one hasher per level of
//! the tree, whatever its size. The construction is the README's ("Directory digests"):
//!
//! ```text
//! dir digest = BLAKE3("spate-tree-v1\0" || entry || entry || ...)   (names in byte order)
//! entry      = type byte || name length (u64, little-endian) || name || 32-byte digest
//! ```

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Hashed first into every directory digest, so it can never equal BLAKE3 of a file
/// that happens to hold the same bytes, and a later construction can be told apart.
pub const DOMAIN: &[u8] = b"spate-tree-v1\0";

/// A BLAKE3 digest (32 bytes).
pub type Digest = [u8; 32];

/// What an entry of a directory is, as its type byte records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `f`: a regular file; its digest is BLAKE3 of its contents.
    File,
    /// `d`: a directory; its digest is its directory digest.
    Dir,
    /// `l`: a symbolic link not followed; its digest is BLAKE3 of the target's bytes.
    Symlink,
    /// `p`, `s`, `b`, `c`: FIFO, socket, block and character device. They have no
    /// contents to hash (reading a FIFO would block), so their digest is 32 zero bytes:
    /// their presence, name and type still count.
    Fifo,
    Socket,
    BlockDevice,
    CharDevice,
}

impl Kind {
    pub fn byte(self) -> u8 {
        match self {
            Kind::File => b'f',
            Kind::Dir => b'd',
            Kind::Symlink => b'l',
            Kind::Fifo => b'p',
            Kind::Socket => b's',
            Kind::BlockDevice => b'b',
            Kind::CharDevice => b'c',
        }
    }
}

/// A directory the fold has finished.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// Every entry below it was hashed: its digest.
    Digest(PathBuf, Digest),
    /// Some entry below it could not be hashed, so it has no digest: one that left the
    /// entry out would pass for the digest of a different tree.
    Failed(PathBuf),
}

/// A directory whose entries are still arriving.
struct Open {
    path: PathBuf,
    /// Its name in its parent (unused for the root).
    name: OsString,
    hasher: blake3::Hasher,
    failed: bool,
}

/// The open directories, root first: one per level of the walk's current position.
#[derive(Default)]
pub struct Fold {
    stack: Vec<Open>,
    closed: Vec<Closed>,
}

impl Fold {
    /// Finishes every open directory (a new root starts, or the walk ended).
    pub fn finish(&mut self) {
        self.close_to(0);
    }

    /// A directory at `depth` (0 for a root) begins; its entries follow.
    pub fn enter(&mut self, depth: usize, name: OsString, path: PathBuf) {
        self.close_to(depth);
        self.stack.push(Open {
            path,
            name,
            hasher: hasher(),
            failed: false,
        });
    }

    /// A non-directory entry at `depth` (1 or more) with its digest.
    pub fn leaf(&mut self, depth: usize, name: &[u8], kind: Kind, digest: &Digest) {
        self.close_to(depth);
        if let Some(parent) = self.stack.last_mut() {
            push_entry(&mut parent.hasher, kind, name, digest);
        }
    }

    /// The entry at `depth` (1 or more) could not be hashed: its directory has no digest.
    pub fn leaf_failed(&mut self, depth: usize) {
        self.close_to(depth);
        if let Some(parent) = self.stack.last_mut() {
            parent.failed = true;
        }
    }

    /// The walk could not read `path` (a directory it could not list, or an entry it
    /// could not look at). Marks the innermost open directory that is `path` or holds
    /// it; false when there is none (a root that could not be read).
    pub fn failed_at(&mut self, path: &Path) -> bool {
        while let Some(top) = self.stack.last() {
            if path.starts_with(&top.path) {
                break;
            }
            self.close_top();
        }
        match self.stack.last_mut() {
            Some(top) => {
                top.failed = true;
                true
            }
            None => false,
        }
    }

    /// The directories finished since the last call, children before their parents.
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, Closed> {
        self.closed.drain(..)
    }

    /// Closes open directories until `depth` remain: an entry at `depth` belongs to
    /// the directory at `depth - 1`, and everything deeper is finished.
    fn close_to(&mut self, depth: usize) {
        while self.stack.len() > depth {
            self.close_top();
        }
    }

    fn close_top(&mut self) {
        let Some(dir) = self.stack.pop() else { return };
        let parent = self.stack.last_mut();
        if dir.failed {
            if let Some(parent) = parent {
                parent.failed = true;
            }
            self.closed.push(Closed::Failed(dir.path));
            return;
        }
        let digest: Digest = dir.hasher.finalize().into();
        if let Some(parent) = parent {
            push_entry(&mut parent.hasher, Kind::Dir, dir.name.as_bytes(), &digest);
        }
        self.closed.push(Closed::Digest(dir.path, digest));
    }
}

fn hasher() -> blake3::Hasher {
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOMAIN);
    hasher
}

fn push_entry(hasher: &mut blake3::Hasher, kind: Kind, name: &[u8], digest: &Digest) {
    hasher.update(&[kind.byte()]);
    hasher.update(&(name.len() as u64).to_le_bytes());
    hasher.update(name);
    hasher.update(digest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(closed: &[Closed], path: &str) -> Option<Digest> {
        closed.iter().find_map(|c| match c {
            Closed::Digest(p, d) if p == Path::new(path) => Some(*d),
            _ => None,
        })
    }

    #[test]
    fn empty_directory_is_blake3_of_the_domain_alone() {
        let mut fold = Fold::default();
        fold.enter(0, "r".into(), "r".into());
        fold.finish();
        let closed: Vec<_> = fold.take_closed().collect();
        assert_eq!(
            closed,
            vec![Closed::Digest(
                "r".into(),
                blake3::hash(b"spate-tree-v1\0").into()
            )]
        );
    }

    #[test]
    fn children_close_before_parents_and_feed_them() {
        let mut fold = Fold::default();
        let zero = [0u8; 32];
        fold.enter(0, "r".into(), "r".into());
        fold.enter(1, "a".into(), "r/a".into());
        fold.leaf(2, b"x", Kind::File, &zero);
        fold.leaf(1, b"b", Kind::Fifo, &zero);
        fold.finish();
        let closed: Vec<_> = fold.take_closed().collect();
        let a = digest_of(&closed, "r/a").unwrap();
        let mut expect_a = b"spate-tree-v1\0".to_vec();
        expect_a.extend([b'f', 1, 0, 0, 0, 0, 0, 0, 0, b'x']);
        expect_a.extend(zero);
        assert_eq!(a, *blake3::hash(&expect_a).as_bytes());
        let mut expect_r = b"spate-tree-v1\0".to_vec();
        expect_r.extend([b'd', 1, 0, 0, 0, 0, 0, 0, 0, b'a']);
        expect_r.extend(a);
        expect_r.extend([b'p', 1, 0, 0, 0, 0, 0, 0, 0, b'b']);
        expect_r.extend(zero);
        assert_eq!(
            digest_of(&closed, "r").unwrap(),
            *blake3::hash(&expect_r).as_bytes()
        );
        assert!(matches!(closed.last(), Some(Closed::Digest(p, _)) if p == Path::new("r")));
    }

    #[test]
    fn a_failure_takes_the_digest_of_every_ancestor_and_no_sibling() {
        let mut fold = Fold::default();
        fold.enter(0, "r".into(), "r".into());
        fold.enter(1, "a".into(), "r/a".into());
        fold.enter(2, "b".into(), "r/a/b".into());
        fold.leaf_failed(3);
        fold.enter(1, "c".into(), "r/c".into());
        assert!(fold.failed_at(Path::new("r/c")));
        fold.enter(1, "d".into(), "r/d".into());
        fold.finish();
        let closed: Vec<_> = fold.take_closed().collect();
        for dir in ["r/a/b", "r/a", "r/c", "r"] {
            assert!(closed.contains(&Closed::Failed(dir.into())), "{dir}");
        }
        assert!(digest_of(&closed, "r/d").is_some());
    }
}
