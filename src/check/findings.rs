//! Where the check's findings go: the [`Reporter`] for `spate check`, or the library's
//! channel of verdicts ([`crate::verify`]). The job judges; what becomes of a judgement
//! (a report line, a JSON object, a value sent to a caller) is the receiver's business,
//! so both read through the same pipeline and reach the same verdicts.

use std::path::Path;

use anyhow::Result;

use super::Listed;
use super::report::Reporter;
use super::verdict::Verdict;
use crate::algo::{AlgoSet, Digests};
use crate::error::ErrorKind;

/// Receives what the check finds, in manifest order (and then the `--audit` walk's).
pub(crate) trait Findings {
    /// Bytes read, for a throughput figure.
    fn bytes(&mut self, len: u64);
    /// The verdict on a listed file.
    fn file(&mut self, listed: &Listed, verdict: &Verdict) -> Result<()>;
    /// A listed file found by `--audit` at `path`, under another name.
    fn moved(&mut self, listed: &Listed, path: &Path, computed: &Digests) -> Result<()>;
    /// A file found by `--audit` that no manifest lists.
    fn new_file(&mut self, path: &Path) -> Result<()>;
    /// A manifest line that could not be parsed.
    fn malformed(&mut self, manifest: usize, line: u64, why: &str) -> Result<()>;
    /// A manifest given up on: nothing in its first `lines` lines was a checksum line.
    fn not_a_manifest(&mut self, manifest: usize, lines: u64) -> Result<()>;
    /// Every file of a manifest was missing, but its names exist in `dir`.
    fn misplaced(&mut self, manifest: usize, dir: &Path) -> Result<()>;
    /// A directory the `--audit` walk could not read.
    fn walk_error(&mut self, path: &Path, kind: ErrorKind, cause: &str) -> Result<()>;
}

impl Findings for Reporter {
    fn bytes(&mut self, len: u64) {
        Reporter::bytes(self, len);
    }
    fn file(&mut self, listed: &Listed, verdict: &Verdict) -> Result<()> {
        Reporter::file(self, listed, verdict)
    }
    fn moved(&mut self, listed: &Listed, path: &Path, computed: &Digests) -> Result<()> {
        Reporter::moved(self, listed, path, computed)
    }
    fn new_file(&mut self, path: &Path) -> Result<()> {
        Reporter::new_file(self, path)
    }
    fn malformed(&mut self, manifest: usize, line: u64, why: &str) -> Result<()> {
        Reporter::malformed(self, manifest, line, why)
    }
    fn not_a_manifest(&mut self, manifest: usize, lines: u64) -> Result<()> {
        Reporter::not_a_manifest(self, manifest, lines)
    }
    fn misplaced(&mut self, manifest: usize, dir: &Path) -> Result<()> {
        Reporter::misplaced(self, manifest, dir)
    }
    fn walk_error(&mut self, path: &Path, kind: ErrorKind, cause: &str) -> Result<()> {
        Reporter::walk_error(self, path, kind, cause)
    }
}

/// What a receiver outside this module may know of a listed file.
impl Listed {
    /// The name as the manifest wrote it.
    pub(crate) fn name(&self) -> &[u8] {
        &self.name
    }

    /// The manifest line that named it (the first, for several lines naming it).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The algorithms a verdict names: those that matched when the file is OK, else
    /// every algorithm its lines' digests may be in (as `spate check --json` says).
    pub(crate) fn algos_for(&self, verdict: &Verdict) -> AlgoSet {
        match verdict {
            Verdict::Ok(matched) => *matched,
            _ => self.algos(),
        }
    }

    /// The algorithms of a MOVED file's line that matched what was read at the new place.
    pub(crate) fn matched(&self, computed: &Digests) -> AlgoSet {
        super::verdict::matches(&self.expected, computed).unwrap_or_default()
    }
}
