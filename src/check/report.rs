//! The check report: one line (or JSON object) per file on standard output, in the words
//! of `sha256sum -c` where they overlap (`NAME: OK`, `NAME: FAILED`), and a summary of
//! the counts on standard error, with a line of its own for CORRUPT files.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use humansize::{BINARY, format_size};
use serde_json::{Map, Value};

use super::Listed;
use super::verdict::Verdict;
use crate::error::ErrorKind;
use crate::hash::digest::Digests;
use crate::manifest;
use crate::progress::Progress;
use crate::report::{self, Problem};

/// Report lines are written in batches of about this many bytes.
const FLUSH_AT: usize = 64 << 10;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Every file, and the summary.
    Normal,
    /// Only problems (`--quiet`).
    Quiet,
    /// Nothing; the exit code tells (`--status`).
    Status,
}

/// Improperly formatted lines reported one by one; the rest are counted.
const MALFORMED_SHOWN: u64 = 10;

/// What fails the run besides what always does.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// MISSING files were not reported.
    pub ignore_missing: bool,
    /// A malformed line fails the run.
    pub strict: bool,
    /// MODIFIED and MOVED files fail the run.
    pub fail_on_change: bool,
}

impl Verbosity {
    /// From `sha256sum -c`'s flags: `--status` says nothing, `--quiet` only problems.
    pub fn from_flags(quiet: bool, status: bool) -> Verbosity {
        if status {
            Verbosity::Status
        } else if quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    ok: u64,
    failed: u64,
    modified: u64,
    corrupt: u64,
    moved: u64,
    missing: u64,
    new: u64,
    error: u64,
    unverified: u64,
    malformed: u64,
    bytes: u64,
}

impl Counts {
    /// Listed files judged so far (MISSING included).
    fn verified(&self) -> u64 {
        self.ok
            + self.failed
            + self.modified
            + self.corrupt
            + self.moved
            + self.missing
            + self.error
            + self.unverified
    }
}

pub struct Reporter {
    /// Report lines not yet written to stdout.
    out: Vec<u8>,
    /// Owns the terminal: lines go to stdout and stderr through it, so they never
    /// tear the progress bar or each other.
    lines: report::Reporter,
    verbosity: Verbosity,
    json: bool,
    manifests: Vec<String>,
    counts: Counts,
    line: Vec<u8>,
    /// Print the summary line even when everything verified (`--stats`, a terminal).
    always_summarize: bool,
    /// Name each malformed line (`--warn`), not only count them.
    warn: bool,
    /// Messages about bad lines, held until some line turns out to be a checksum line:
    /// a file that is not a manifest at all gets one line, as from `sha256sum -c`.
    held: Vec<String>,
    /// Some line carried metadata (or some file moved): the summary counts MODIFIED,
    /// CORRUPT and MOVED too.
    states: bool,
    /// Archives were checked, not manifests.
    archives: bool,
}

impl Reporter {
    pub fn new(
        verbosity: Verbosity,
        json: bool,
        manifests: Vec<String>,
        always_summarize: bool,
        warn: bool,
        progress: Progress,
    ) -> Self {
        Reporter {
            out: Vec::with_capacity(FLUSH_AT * 2),
            lines: report::Reporter::new(progress),
            verbosity,
            json,
            manifests,
            counts: Counts::default(),
            line: Vec::with_capacity(256),
            held: Vec::new(),
            always_summarize,
            warn,
            states: false,
            archives: false,
        }
    }

    /// Counts bytes read, for the throughput in the summary.
    pub fn bytes(&mut self, len: u64) {
        self.counts.bytes += len;
    }

    /// Reports the verdict on a listed file.
    pub fn file(&mut self, listed: &Listed, verdict: &Verdict) -> Result<()> {
        self.release_held()?;
        self.states |= listed.meta.is_some();
        let counter = match verdict {
            Verdict::Ok(_) => &mut self.counts.ok,
            Verdict::Failed => &mut self.counts.failed,
            Verdict::Modified => &mut self.counts.modified,
            Verdict::Corrupt => &mut self.counts.corrupt,
            Verdict::Missing => &mut self.counts.missing,
            Verdict::Error(..) => &mut self.counts.error,
            Verdict::Unverified(_) => &mut self.counts.unverified,
        };
        *counter += 1;
        if !self.shows(matches!(verdict, Verdict::Ok(_))) {
            return Ok(());
        }
        self.line.clear();
        if self.json {
            let mut obj = Map::new();
            manifest::push_json_path(&mut obj, &listed.name);
            obj.insert("status".into(), Value::from(verdict.word()));
            let algos = listed.algos_for(verdict);
            let names: Vec<Value> = algos.iter().map(|a| Value::from(a.name())).collect();
            obj.insert("algos".into(), Value::Array(names));
            match verdict {
                Verdict::Error(kind, why) => report::json::push_error(&mut obj, *kind, why),
                Verdict::Unverified(why) => {
                    obj.insert("reason".into(), Value::from(why.as_str()));
                }
                _ => {}
            }
            obj.insert(
                "manifest".into(),
                Value::from(self.manifests[listed.manifest].as_str()),
            );
            obj.insert("line".into(), Value::from(listed.line));
            self.push_json(obj);
        } else {
            push_name(&mut self.line, &listed.name);
            self.line.extend_from_slice(b": ");
            self.line.extend_from_slice(verdict.word().as_bytes());
            if let Verdict::Error(_, why) | Verdict::Unverified(why) = verdict {
                self.line.push(b' ');
                self.line.extend_from_slice(why.as_bytes());
            }
            self.line.push(b'\n');
        }
        self.emit()
    }

    /// Reports a listed file found by `--audit` at `path`, under another name: `old ->
    /// new: MOVED` (JSON: `path` the new name, `from` the listed one).
    pub fn moved(&mut self, listed: &Listed, path: &Path, computed: &Digests) -> Result<()> {
        self.release_held()?;
        self.counts.moved += 1;
        self.states = true;
        if !self.shows(false) {
            return Ok(());
        }
        self.line.clear();
        let new = path.as_os_str().as_bytes();
        if self.json {
            let mut obj = Map::new();
            manifest::push_json_path(&mut obj, new);
            obj.insert("status".into(), Value::from("MOVED"));
            // The same two fields as `path`, under the names `from` and `from_hex`.
            let mut from = Map::new();
            manifest::push_json_path(&mut from, &listed.name);
            for (key, value) in from {
                obj.insert(key.replacen("path", "from", 1), value);
            }
            let algos = listed.matched(computed);
            let names: Vec<Value> = algos.iter().map(|a| Value::from(a.name())).collect();
            obj.insert("algos".into(), Value::Array(names));
            obj.insert(
                "manifest".into(),
                Value::from(self.manifests[listed.manifest].as_str()),
            );
            obj.insert("line".into(), Value::from(listed.line));
            self.push_json(obj);
        } else {
            let mut both = listed.name.clone();
            both.extend_from_slice(b" -> ");
            both.extend_from_slice(new);
            push_name(&mut self.line, &both);
            self.line.extend_from_slice(b": MOVED\n");
        }
        self.emit()
    }

    /// Reports a file found by `--audit` that no manifest lists.
    pub fn new_file(&mut self, path: &Path) -> Result<()> {
        self.counts.new += 1;
        if !self.shows(false) {
            return Ok(());
        }
        self.line.clear();
        let name = path.as_os_str().as_bytes();
        if self.json {
            let mut obj = Map::new();
            manifest::push_json_path(&mut obj, name);
            obj.insert("status".into(), Value::from("NEW"));
            self.push_json(obj);
        } else {
            push_name(&mut self.line, name);
            self.line.extend_from_slice(b": NEW\n");
        }
        self.emit()
    }

    /// Reports a manifest line that could not be parsed.
    pub fn malformed(&mut self, manifest: usize, line: u64, why: &str) -> Result<()> {
        self.counts.malformed += 1;
        if self.verbosity == Verbosity::Status {
            return Ok(());
        }
        let name = &self.manifests[manifest];
        if self.json {
            self.line.clear();
            let mut obj = Map::new();
            obj.insert("status".into(), Value::from("MALFORMED"));
            report::json::push_error(&mut obj, ErrorKind::MalformedLine, why);
            obj.insert("manifest".into(), Value::from(name.as_str()));
            obj.insert("line".into(), Value::from(line));
            self.push_json(obj);
            return self.emit();
        }
        // As `sha256sum -c`: bad lines are counted, and named one by one with `--warn`.
        // A tarball or a README given as a manifest is thousands of bad lines: the first
        // few say what is wrong, a count says the rest.
        if !self.warn || self.counts.malformed > MALFORMED_SHOWN {
            return Ok(());
        }
        let message = format!("{name}:{line}: improperly formatted checksum line: {why}");
        if self.counts.verified() == 0 {
            self.held.push(message);
            return Ok(());
        }
        // Keep stdout and stderr in order on a terminal.
        self.flush_out()?;
        self.lines.say(&message);
        Ok(())
    }

    /// Prints the bad-line messages held back: a checksum line has been seen, so they
    /// are about a manifest after all.
    fn release_held(&mut self) -> Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        self.flush_out()?;
        for message in self.held.drain(..) {
            self.lines.say(&message);
        }
        Ok(())
    }

    /// Reports a manifest given up on: nothing in its first lines was a checksum line.
    pub fn not_a_manifest(&mut self, manifest: usize, lines: u64) -> Result<()> {
        if self.verbosity == Verbosity::Status {
            return Ok(());
        }
        self.flush_out()?;
        let name = Path::new(&self.manifests[manifest]);
        self.lines.notice(
            name,
            &format!("no checksum line in its first {lines} lines; not read further"),
        );
        Ok(())
    }

    /// Says once that every file of a manifest was missing from the current directory
    /// but its names exist in `dir`, the manifest's directory: the way to check it.
    pub fn misplaced(&mut self, manifest: usize, dir: &Path) -> Result<()> {
        if self.verbosity == Verbosity::Status {
            return Ok(());
        }
        self.flush_out()?;
        let name = Path::new(&self.manifests[manifest]);
        let dir = dir.display();
        self.lines.notice(
            name,
            &format!(
                "every listed file is missing from the current directory, but the names \
                 exist beside the manifest; run from {dir} or use --root {dir}"
            ),
        );
        Ok(())
    }

    /// Reports a directory the `--audit` walk could not read.
    pub fn walk_error(&mut self, path: &Path, kind: ErrorKind, cause: &str) -> Result<()> {
        self.counts.error += 1;
        if self.verbosity != Verbosity::Status {
            self.flush_out()?;
            self.lines.error(&Problem::new(path, kind, cause));
        }
        Ok(())
    }

    /// Says something about `path` (a notice line on stderr), unless `--status`.
    pub fn notice(&mut self, path: &Path, words: &str) -> Result<()> {
        if self.verbosity != Verbosity::Status {
            self.flush_out()?;
            self.lines.notice(path, words);
        }
        Ok(())
    }

    /// [`Reporter::finish`] for a check of archives: one with no file to verify (only
    /// directories and links, or no table to verify against) is not the "no checksum
    /// lines" failure of an empty manifest.
    pub fn finish_archives(mut self, started: Instant, policy: Policy) -> Result<bool> {
        self.archives = true;
        self.finish(started, policy, 0)
    }

    /// Flushes the report, prints the summary and says whether the run passed.
    /// `other_shards`: lines left to other `--shard` workers; when every line was,
    /// this worker's empty shard is not a failure.
    pub fn finish(mut self, started: Instant, policy: Policy, other_shards: u64) -> Result<bool> {
        self.flush_out()?;
        let c = &self.counts;
        let verified = c.ok + c.failed + c.modified + c.corrupt + c.moved + c.error + c.unverified;
        let names = self.manifests.join(", ");
        let Policy {
            ignore_missing,
            strict,
            fail_on_change,
        } = policy;
        // MODIFIED and MOVED are what a user does to a tree, reported as news; CORRUPT
        // is what happens to it behind the user's back, and fails.
        let mut passed = c.failed == 0
            && c.corrupt == 0
            && c.missing == 0
            && c.error == 0
            && c.new == 0
            && (!fail_on_change || c.modified + c.moved == 0)
            && (!strict || c.malformed + c.unverified == 0);
        let mut problem = None;
        if verified + c.missing == 0 && other_shards > 0 && c.malformed == 0 {
            problem = Some("no lines in this shard (all belong to other shards)".to_string());
        } else if verified + c.missing == 0 && !self.archives {
            problem = Some(if c.malformed > 0 {
                format!("{names}: no properly formatted checksum lines found")
            } else if ignore_missing {
                "no file was verified".to_string()
            } else {
                "no checksum lines found".to_string()
            });
            passed = false;
        }
        let show = match self.verbosity {
            Verbosity::Normal => true,
            Verbosity::Quiet => !passed,
            Verbosity::Status => false,
        };
        // As `sha256sum -c`: a run that verified everything says nothing more unless
        // asked (`--stats`) or someone is watching; problems are always counted.
        let summary = show && (!passed || c.malformed > 0 || self.always_summarize);
        if show {
            let is_manifest = verified + c.missing > 0;
            let unshown = c.malformed.saturating_sub(MALFORMED_SHOWN);
            if self.warn && unshown > 0 && !self.json && is_manifest {
                let s = if unshown == 1 { "" } else { "s" };
                self.lines.say(&format!(
                    "… and {unshown} more improperly formatted line{s}"
                ));
            }
            if !self.warn && c.malformed > 0 && !self.json && is_manifest {
                let n = c.malformed;
                let lines = if n == 1 { "line is" } else { "lines are" };
                self.lines.say(&format!(
                    "WARNING: {n} {lines} improperly formatted (--warn names them)"
                ));
            }
            if let Some(problem) = problem {
                self.lines.say(&problem);
            }
        }
        // As a malformed line: said, counted, and failing only with --strict. The
        // archive still holds those bytes intact (its frame checksums verified them);
        // what is missing is a digest of the file they were read from.
        if c.unverified > 0 && self.verbosity != Verbosity::Status && !self.json {
            let n = c.unverified;
            let files = if n == 1 { "file is" } else { "files are" };
            let strict = if strict {
                ""
            } else {
                "; --strict fails the check"
            };
            self.lines.say(&format!(
                "WARNING: {n} {files} UNVERIFIED: no digest in the table of contents (changed, \
                 or not read whole, while packed){strict}"
            ));
        }
        if summary {
            self.lines.say(&self.summary(started));
        }
        // Bitrot is the one thing a weekly job must not bury: said last, in every mode,
        // `--status` and `--quiet` included.
        if self.counts.corrupt > 0 {
            let n = self.counts.corrupt;
            let files = if n == 1 { "file is" } else { "files are" };
            self.lines.say(&format!(
                "WARNING: {n} {files} CORRUPT: content changed while size and modification \
                 time did not (bitrot or tampering)"
            ));
        }
        Ok(passed)
    }

    fn summary(&self, started: Instant) -> String {
        let c = &self.counts;
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (c.bytes as f64 / secs) as u64
        } else {
            0
        };
        let mut line = format!("{} OK, ", c.ok);
        if self.states {
            line.push_str(&format!(
                "{} MODIFIED, {} CORRUPT, {} MOVED, ",
                c.modified, c.corrupt, c.moved
            ));
        }
        line.push_str(&format!(
            "{} FAILED, {} MISSING, {} NEW, {} ERROR",
            c.failed, c.missing, c.new, c.error
        ));
        if c.unverified > 0 {
            line.push_str(&format!(", {} UNVERIFIED", c.unverified));
        }
        if c.malformed > 0 {
            let s = if c.malformed == 1 { "" } else { "s" };
            line.push_str(&format!("; {} malformed line{s}", c.malformed));
        }
        line.push_str(&format!(
            "; read {} in {secs:.2} s ({}/s){}",
            format_size(c.bytes, BINARY),
            format_size(rate, BINARY),
            crate::memory::peak_rss_text()
        ));
        line
    }

    fn shows(&self, ok: bool) -> bool {
        match self.verbosity {
            Verbosity::Normal => true,
            Verbosity::Quiet => !ok,
            Verbosity::Status => false,
        }
    }

    fn push_json(&mut self, obj: Map<String, Value>) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.line, &Value::Object(obj));
        self.line.push(b'\n');
    }

    fn emit(&mut self) -> Result<()> {
        self.out.extend_from_slice(&self.line);
        if self.out.len() >= FLUSH_AT {
            self.flush_out()?;
        }
        Ok(())
    }

    /// Writes the lines held so far to stdout.
    fn flush_out(&mut self) -> Result<()> {
        self.lines
            .results(&self.out)
            .context("writing the report")?;
        self.out.clear();
        Ok(())
    }
}

/// A name as `sha256sum -c` shows it: with a leading `\` and `\\`, `\n`, `\r` escapes
/// when it contains one of those bytes, else as is.
fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    if manifest::needs_escape(name) {
        out.push(b'\\');
        manifest::push_escaped(out, name);
    } else {
        out.extend_from_slice(name);
    }
}
