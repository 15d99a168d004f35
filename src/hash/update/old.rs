//! Reading the OLD manifest of `--update`, one record at a time: it may list millions of
//! files, so it is streamed, never loaded.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::algo::{Algo, Digests};
use crate::manifest::FileMeta;
use crate::manifest::parse::{self, Hints, MAX_LINE};

/// One file as OLD lists it.
#[derive(Debug, Clone)]
pub(crate) struct OldRecord {
    /// The name as written (from `path_hex` when it is not UTF-8).
    pub path: PathBuf,
    pub size: u64,
    /// Every digest the line has, in the order of the algorithm table.
    pub digests: Digests,
    pub meta: FileMeta,
}

impl OldRecord {
    /// The digests of `algos`, in that order; `None` when one of them is not listed.
    pub fn digests_of(&self, algos: &[Algo]) -> Option<Digests> {
        algos
            .iter()
            .map(|want| self.digests.iter().find(|(algo, _)| algo == want).cloned())
            .collect()
    }
}

/// OLD, open and read line by line.
pub(crate) struct OldManifest {
    /// As the user named it, for messages.
    name: String,
    reader: BufReader<File>,
    line: u64,
    hints: Hints,
    /// A record read ahead by [`OldManifest::peek`].
    peeked: Option<OldRecord>,
    /// The line being read.
    raw: Vec<u8>,
}

impl OldManifest {
    /// Opens OLD. Reading it starts with [`OldManifest::next`].
    pub fn open(path: &Path) -> Result<OldManifest> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| name.clone())?;
        let is_dir = file.metadata().with_context(|| name.clone())?.is_dir();
        anyhow::ensure!(!is_dir, "{name}: is a directory, not a manifest");
        Ok(OldManifest {
            name,
            // Large reads: OLD is read front to back once, like the walk.
            reader: BufReader::with_capacity(256 << 10, file),
            line: 0,
            hints: Hints::for_manifest(b"", None),
            peeked: None,
            raw: Vec::new(),
        })
    }

    /// The next record. A line that is not a JSON record with every metadata field is a
    /// fatal error: guessing around it could reuse a digest the line does not vouch for.
    pub fn next(&mut self) -> Result<Option<OldRecord>> {
        if let Some(record) = self.peeked.take() {
            return Ok(Some(record));
        }
        loop {
            // One buffer for every line: a million lines, no allocation each.
            let mut raw = std::mem::take(&mut self.raw);
            raw.clear();
            let limit = MAX_LINE as u64 + 2;
            let n = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut raw)
                .with_context(|| format!("{}: reading", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if raw.last() == Some(&b'\n') {
                raw.pop();
            } else if n as u64 >= limit {
                return Err(self.unusable(&format!("line longer than {MAX_LINE} bytes")));
            }
            if let Some(record) = super::fast::parse(&raw) {
                self.raw = raw;
                return Ok(Some(record));
            }
            let (record, meta) = match parse::parse_json_line(&raw, &self.hints) {
                Ok(None) => continue,
                Ok(Some((record, Some(meta)))) => (record, meta),
                Ok(Some((_, None))) => {
                    return Err(self.unusable("no mtime_ns, ctime_ns, inode and dev"));
                }
                Err(why) => return Err(self.unusable(&why)),
            };
            let Some(size) = record.size else {
                return Err(self.unusable("no \"size\""));
            };
            let digests = record
                .expected
                .iter()
                .filter_map(|e| Some((e.algos.iter().next()?, e.hex.clone())))
                .collect();
            return Ok(Some(OldRecord {
                path: PathBuf::from(OsStr::from_bytes(&record.name)),
                size,
                digests,
                meta,
            }));
        }
    }

    /// The first record not yet returned, left to be returned by the next `next`.
    pub fn peek(&mut self) -> Result<Option<&OldRecord>> {
        if self.peeked.is_none() {
            self.peeked = self.next()?;
        }
        Ok(self.peeked.as_ref())
    }

    /// The one line that says OLD cannot be used, and where.
    fn unusable(&self, why: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: --update needs a manifest written by `spate hash --json` (line {}: {why})",
            self.name,
            self.line
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old_with(text: &str) -> (tempfile::NamedTempFile, OldManifest) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let old = OldManifest::open(file.path()).unwrap();
        (file, old)
    }

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn records_with_metadata_are_read_and_others_refused() {
        let good = format!(
            r#"{{"path":"t/a","size":3,"sha256":"{SHA}","mtime_ns":5,"ctime_ns":6,"inode":7,"dev":8,"hashed_ns":9}}"#
        );
        let (_f, mut old) = old_with(&format!("{good}\n\n{good}"));
        for line in [1, 3] {
            let rec = old.next().unwrap().unwrap();
            assert_eq!(
                (rec.path.as_os_str(), rec.size, old.line),
                ("t/a".as_ref(), 3, line)
            );
            assert_eq!(rec.meta.hashed_ns, Some(9));
            assert_eq!(rec.digests_of(&[Algo::Sha256]).unwrap()[0].1, SHA);
            assert!(rec.digests_of(&[Algo::Blake3]).is_none());
        }
        assert!(old.next().unwrap().is_none());

        for bad in [
            format!(r#"{{"path":"t/a","size":3,"sha256":"{SHA}"}}"#),
            format!("{SHA}  t/a"),
            "not a manifest".to_string(),
        ] {
            let (_f, mut old) = old_with(&bad);
            let err = old.next().unwrap_err().to_string();
            assert!(
                err.contains("--update needs a manifest written by"),
                "{err}"
            );
            assert!(err.contains("line 1"), "{err}");
        }
    }
}
