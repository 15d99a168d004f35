//! Which entries `spate pack --shard K/N` packs: the files `spate hash --shard K/N`
//! hashes (by the name as given, [`crate::shard`]), and a directory only in shard 1.
//!
//! A directory has no content to share out, and an archive must not hold it twice once
//! `spate merge` joins the shards: shard 1 packs every directory and the other shards
//! none, so that merging shards 1 to N (in that order) puts every directory before the
//! files in it, each once. A shard unpacked alone gets the directories its files need
//! created with default modes, as `tar -x` creates them.
//!
//! Hard links are kept together: every name of a file with several links goes to the
//! shard of the name walked first, so a link in a shard always points at a file in the
//! same shard (and, merged, at one before it). Symbolic links go by their own name.
//!
//! Notices are said once across the shards: a skipped socket, FIFO or device, and GNU
//! tar's "Removing leading '/'", by shard 1 alone (so that `cat` of the shards' stderr,
//! 1 to N, is the unsharded run's); an entry that cannot be read, by the shard that
//! would have packed it; an unreadable directory, by every shard (it may hide files of
//! any of them).

use std::collections::HashMap;
use std::fs::{FileType, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Result;

use super::writer::Writer;
use crate::shard::Shard;

/// Decides, in walk order, which entries this shard packs.
#[derive(Default)]
pub(in crate::archive) struct ShardSelect {
    shard: Option<Shard>,
    /// For files with several links: whether the first name walked was this shard's.
    groups: HashMap<(u64, u64), bool>,
}

impl ShardSelect {
    pub(in crate::archive) fn new(shard: Option<Shard>) -> ShardSelect {
        ShardSelect {
            shard,
            groups: HashMap::new(),
        }
    }

    /// Whether the entry at `given` (the path as given, beneath -C) is this shard's.
    pub(in crate::archive) fn keeps(
        &mut self,
        given: &Path,
        ft: &FileType,
        meta: &Metadata,
    ) -> bool {
        let Some(shard) = self.shard else {
            return true;
        };
        if ft.is_dir() {
            return shard.index == 0;
        }
        let mine = || shard.contains(given.as_os_str().as_bytes());
        if ft.is_file() && meta.nlink() > 1 {
            return *self
                .groups
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(mine);
        }
        mine()
    }

    /// Whether this run says the notices about skipped entries (sockets, FIFOs,
    /// devices) and removed name prefixes: without `--shard`, or as shard 1. Every shard
    /// walks the whole tree; one saying them keeps the N shards' messages, one after
    /// another, those of the unsharded run, in its order.
    pub(in crate::archive) fn says_notices(&self) -> bool {
        self.shard.is_none_or(|s| s.index == 0)
    }

    /// Whether the entry at `given` could be this shard's, before its metadata is
    /// known (a hard-linked file's group aside): where an error about it goes.
    pub(in crate::archive) fn may_keep(&self, given: &Path, ft: &FileType) -> bool {
        match self.shard {
            None => true,
            Some(shard) if ft.is_dir() => shard.index == 0,
            Some(shard) => shard.contains(given.as_os_str().as_bytes()),
        }
    }
}

impl Writer<'_> {
    /// `--shard`: the directories, after every file and starting a frame, so that
    /// `spate merge` can move them behind every part's files (whose extraction would
    /// otherwise change their mtimes again).
    pub(super) fn write_deferred_dirs(&mut self) -> Result<()> {
        let Some(dirs) = self.deferred_dirs.take().filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        // Ending the frame here is what `end_of_members` does.
        self.tar
            .get_mut()
            .inner
            .end_of_members()
            .map_err(|e| self.stream_error(e))?;
        for member in dirs {
            self.write_member(member)?;
        }
        Ok(())
    }
}
