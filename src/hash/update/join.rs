//! The merge-join of OLD with the walk. Both come in walk order (per root as given,
//! then by path, components compared as bytes, depth first: what `spate hash` writes),
//! so one pass over each finds every match holding one OLD record at a time, whatever
//! the size of the tree.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::shard::Shard;

use super::old::{OldManifest, OldRecord};

/// What became of OLD's records that matched no walked file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Leftovers {
    /// Under a DIR given, in this shard, but not walked now (deleted, excluded, or in a
    /// directory that could not be read).
    pub gone: u64,
    /// Under none of the DIRs given: ignored.
    pub outside: u64,
    /// Out of walk order (OLD was made with the DIRs in another order, or edited): not
    /// used, so their files are read as new.
    pub unordered: u64,
}

/// OLD, read in step with the walk.
pub(crate) struct Join {
    old: OldManifest,
    roots: Vec<PathBuf>,
    shard: Option<Shard>,
    /// The next usable OLD record and the index of its root: its key in walk order.
    ahead: Option<(usize, OldRecord)>,
    /// The key of the last usable record, to see that OLD is in walk order.
    last: Option<(usize, PathBuf)>,
    ended: bool,
    pub leftovers: Leftovers,
}

impl Join {
    pub fn new(old: OldManifest, roots: &[PathBuf], shard: Option<Shard>) -> Join {
        Join {
            old,
            roots: roots.to_vec(),
            shard,
            ahead: None,
            last: None,
            ended: false,
            leftovers: Leftovers::default(),
        }
    }

    /// OLD's record for `path`, walked below root number `root`, if it has one. Every
    /// record before it in walk order is a file that is gone.
    pub fn find(&mut self, root: usize, path: &Path) -> Result<Option<OldRecord>> {
        loop {
            self.fill()?;
            let Some((old_root, old)) = &self.ahead else {
                return Ok(None);
            };
            match (*old_root, old.path.as_path()).cmp(&(root, path)) {
                std::cmp::Ordering::Less => {
                    self.leftovers.gone += 1;
                    self.ahead = None;
                }
                std::cmp::Ordering::Equal => return Ok(self.ahead.take().map(|(_, old)| old)),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
    }

    /// Reads OLD to its end after the walk: what is left is gone. Returns the counts.
    pub fn finish(mut self) -> Result<Leftovers> {
        loop {
            self.fill()?;
            if self.ahead.take().is_none() {
                return Ok(self.leftovers);
            }
            self.leftovers.gone += 1;
        }
    }

    /// Makes `ahead` the next record of this shard, under a root, in order; counts and
    /// skips the others.
    fn fill(&mut self) -> Result<()> {
        while self.ahead.is_none() && !self.ended {
            let Some(record) = self.old.next()? else {
                self.ended = true;
                break;
            };
            let name = record.path.as_os_str().as_bytes();
            if self.shard.is_some_and(|shard| !shard.contains(name)) {
                // Another worker's file: neither gone nor outside for this one.
                continue;
            }
            let mut under =
                (0..self.roots.len()).filter(|&i| record.path.starts_with(&self.roots[i]));
            let Some(first) = under.next() else {
                self.leftovers.outside += 1;
                continue;
            };
            // Overlapping DIRs (`DIR DIR/sub`) walk a file once per DIR it is under, and
            // `spate hash` lists it once per walk: its second record belongs to the
            // first root after the last record's at which it is still in walk order.
            let after_last = |i: usize| {
                self.last
                    .as_ref()
                    .is_none_or(|(root, path)| (i, record.path.as_path()) > (*root, path.as_path()))
            };
            let Some(root) = std::iter::once(first).chain(under).find(|&i| after_last(i)) else {
                self.leftovers.unordered += 1;
                continue;
            };
            self.last = Some((root, record.path.clone()));
            self.ahead = Some((root, record));
        }
        Ok(())
    }
}
