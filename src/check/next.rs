//! `spate check OLD.json --audit DIR --update NEW.json`: the next manifest of DIR,
//! written from the reads the check makes anyway, so a weekly job reads each file once.
//!
//! The check reads listed files in OLD's order and the audit walk then visits DIR in
//! walk order, the order `spate hash --json DIR` writes. NEW is written during that
//! walk: a listed file's result waits here, under its path's key, until the walk
//! reaches it; a file no line lists is read by the walk itself. Memory grows with the
//! files listed under DIR (their digests), as the check's own listing does.
//!
//! A CORRUPT file keeps OLD's digests (and OLD's `hashed_ns`) in NEW, as chkbit keeps
//! the known-good hash of a damaged file and cshatag leaves its stored hash alone: the
//! rotted content must not become the reference, so the next check reports it again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use crate::algo::{Algo, Digests};
use crate::hash::update::old::OldManifest;
use crate::manifest::{self, FileMeta, Format, Style};
use crate::output::{Cleanup, Output, OwnFiles};

use super::Listed;

const NEW_ITSELF: &str = "the manifest being written by --update; not hashed";

/// NEW is written in batches of about this many bytes.
const FLUSH_AT: usize = 64 << 10;

/// What NEW records for one file.
struct Kept {
    size: u64,
    digests: Digests,
    meta: FileMeta,
}

/// NEW, being written.
pub(crate) struct Next {
    out: Output,
    /// OLD's algorithms, in the order of its first line: NEW's.
    algos: Vec<Algo>,
    /// Results of listed files not yet reached by the walk, by path key.
    waiting: HashMap<u128, Kept>,
    buf: Vec<u8>,
}

impl Next {
    /// Opens NEW for `old`, and the files the walk must leave out: NEW's temporary file
    /// and an earlier file under its name. A regular file `old` is checked first (its
    /// first record must be JSON with metadata) and gives NEW's algorithms; a pipe
    /// (`<(zcat old.json.gz)`) can be read only once, by the check, whose first line
    /// then gives them ([`Next::learn`]).
    pub fn open(old: &Path, new: &Path, cleanup: &Arc<Cleanup>) -> Result<(Next, OwnFiles)> {
        let mut algos = Vec::new();
        if std::fs::metadata(old).is_ok_and(|m| m.is_file()) {
            let mut first = OldManifest::open(old)?;
            match first.peek()? {
                Some(record) => algos = record.digests.iter().map(|(algo, _)| *algo).collect(),
                None => anyhow::bail!(
                    "{}: --update needs a manifest written by `spate hash --json` (it is empty)",
                    old.display()
                ),
            }
        }
        let mut own = OwnFiles::default();
        own.add_final(Some(new), NEW_ITSELF)?;
        let out = Output::open(Some(new), cleanup)?;
        own.add_open(&out, NEW_ITSELF)?;
        let next = Next {
            out,
            algos,
            waiting: HashMap::new(),
            buf: Vec::with_capacity(FLUSH_AT * 2),
        };
        Ok((next, own))
    }

    /// NEW's algorithms: every file NEW lists is hashed with them (none before OLD's
    /// first line is known, when OLD is a pipe).
    pub fn algos(&self) -> &[Algo] {
        &self.algos
    }

    /// Takes NEW's algorithms from the first line of OLD when OLD could not be looked
    /// at before the check.
    pub fn learn(&mut self, listed: &Listed) {
        if self.algos.is_empty() {
            self.algos = listed
                .expected
                .iter()
                .filter_map(|e| e.algos.iter().next())
                .collect();
        }
    }

    /// Keeps what a listed file was found to hold, for when the walk reaches it.
    pub fn keep(&mut self, key: u128, size: u64, computed: &Digests, meta: FileMeta) {
        let digests = self.select(computed, &[]);
        self.waiting.insert(
            key,
            Kept {
                size,
                digests,
                meta,
            },
        );
    }

    /// Keeps OLD's record of a CORRUPT file: OLD's digests and time of reading, with the
    /// metadata found now (the same size and mtime, or it would not be CORRUPT).
    pub fn keep_old(&mut self, key: u128, listed: &Listed, computed: &Digests, meta: FileMeta) {
        let old: Digests = listed
            .expected
            .iter()
            .filter_map(|e| Some((e.algos.iter().next()?, e.hex.clone())))
            .collect();
        let digests = self.select(computed, &old);
        let meta = FileMeta {
            hashed_ns: listed.meta.and_then(|m| m.hashed_ns),
            ..meta
        };
        let size = listed.size.unwrap_or_default();
        self.waiting.insert(
            key,
            Kept {
                size,
                digests,
                meta,
            },
        );
    }

    /// NEW's digests: for each of its algorithms, from `first` if it has one, else from
    /// `computed` (every file is hashed with NEW's algorithms, so one of them has it).
    fn select(&self, computed: &Digests, first: &[(Algo, String)]) -> Digests {
        self.algos
            .iter()
            .filter_map(|algo| {
                first
                    .iter()
                    .chain(computed)
                    .find(|(a, _)| a == algo)
                    .cloned()
            })
            .collect()
    }

    /// Writes the record of a listed file the walk found at `path`, if its check left
    /// one (not when it could not be read).
    pub fn write_listed(&mut self, key: u128, path: &Path) -> Result<()> {
        if let Some(kept) = self.waiting.remove(&key) {
            self.push(path, kept)?;
        }
        Ok(())
    }

    /// Writes the record of a file the walk read (NEW or MOVED).
    pub fn write_read(
        &mut self,
        path: &Path,
        size: u64,
        computed: &Digests,
        meta: FileMeta,
    ) -> Result<()> {
        let digests = self.select(computed, &[]);
        self.push(
            path,
            Kept {
                size,
                digests,
                meta,
            },
        )
    }

    fn push(&mut self, path: &Path, kept: Kept) -> Result<()> {
        let style = Style {
            format: Format::Json,
            zero: false,
        };
        let Kept {
            size,
            digests,
            meta,
        } = kept;
        manifest::push_with_meta(&mut self.buf, style, path, size, &digests, Some(&meta));
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes the rest and renames NEW into place.
    pub fn commit(mut self) -> Result<()> {
        self.out.write_all(&self.buf)?;
        self.out.commit()
    }
}
