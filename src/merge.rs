//! The merge job: shard manifests → one manifest in walk order.
//!
//! Each input is read as a stream of records (one line, or the consecutive `--tag` lines
//! of one file), and the inputs are merged k-way by path. `spate hash` writes every
//! manifest in walk order (each directory sorted by name, depth first), which is the
//! component-wise byte order of paths (`Path`'s order), so one record per input is all
//! that is held: memory does not grow with the tree. An input out of that order is an
//! error, not something to sort silently in memory.
//!
//! Lines are copied as they were written, never re-formatted, so merging the shards of
//! a tree gives the bytes hashing it whole gives. Inputs must therefore share a format
//! (GNU lines with digests of one length, `--tag` lines, or JSON Lines).
//!
//! A path listed twice with the same digests (overlapping shards) is kept once and
//! reported; with different digests it is a conflict: reported with both places and the
//! run fails, and with `-o` nothing is written. With `--shards N`, every record's shard
//! is recomputed ([`crate::shard`]), and a shard no input lists a file of is a gap.
//!
//! Inputs that spell one root differently (`./tree/a` in one, `tree/b` in another) are
//! refused: the shard of a file is a hash of its name's bytes, so such workers did not
//! split one tree between them (and the names would not even sort together).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::archive::index;
use crate::error::ErrorKind;
use crate::manifest::parse::{self, Hints, MAX_LINE};
use crate::output::{Cleanup, Output};
use crate::progress::Progress;
use crate::report::{Problem, Reporter};
use crate::shard::{Shard, shard_of};

/// Everything `spate merge` needs to know.
#[derive(Debug, Clone)]
pub struct MergeConfig {
    /// Manifests to merge.
    pub inputs: Vec<PathBuf>,
    /// Written atomically; `None` or `-` for standard output.
    pub output: Option<PathBuf>,
    /// The number of shards the inputs were hashed as, for finding gaps.
    pub shards: Option<u64>,
    /// No notices about overlaps.
    pub quiet: bool,
}

/// Output is written in batches of about this many bytes.
const FLUSH_AT: usize = 64 * 1024;

/// Runs the job. `Ok(true)` when the inputs merged cleanly, `Ok(false)` after a conflict
/// or a gap (each reported on stderr), `Err` for a fatal error (exit 2).
pub fn run(config: &MergeConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    // Shard archives (`spate pack --shard`) are told from manifests by their content.
    let archives = config
        .inputs
        .iter()
        .filter(|p| index::merge::is_archive(p))
        .count();
    if archives > 0 {
        anyhow::ensure!(
            archives == config.inputs.len(),
            "archives and manifests cannot be merged into one output: merge each kind \
             on its own"
        );
        anyhow::ensure!(
            config.shards.is_none(),
            "--shards finds gaps between manifests; archives do not record their shard"
        );
        let output = config.output.as_deref().filter(|o| o.as_os_str() != "-");
        return index::merge::run(&config.inputs, output, config.quiet, cleanup);
    }
    let mut inputs = config
        .inputs
        .iter()
        .map(|path| Input::open(path))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Output::open(config.output.as_deref(), cleanup)?;
    let mut merger = Merger::new(config);

    let mut heap = BinaryHeap::new();
    for (index, input) in inputs.iter_mut().enumerate() {
        if let Some(record) = input.next_record()? {
            heap.push(Reverse((record.key(), index, record)));
        }
    }
    // Every input's first root, compared before a line is written: that is where
    // workers started with `./tree` and `tree` differ.
    for Reverse((_, index, record)) in heap.iter() {
        merger.check_root(record, *index, &inputs)?;
    }
    let mut buf = Vec::with_capacity(FLUSH_AT * 2);
    while let Some(Reverse((_, index, record))) = heap.pop() {
        if let Some(next) = inputs[index].next_record()? {
            heap.push(Reverse((next.key(), index, next)));
        }
        merger.take(record, index, &inputs, &mut buf)?;
        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;

    let empty_inputs = inputs.iter().filter(|i| i.records == 0).count();
    let gaps_ok = merger.report_gaps(empty_inputs);
    if merger.conflicts > 0 {
        // Refuse: a manifest that silently picked one of two digests would let `check`
        // pass a file that one of the workers saw differently. Dropping the output
        // removes the temporary file.
        merger.reporter.say(&format!(
            "{} {} listed with different digests; {}",
            merger.conflicts,
            if merger.conflicts == 1 {
                "path is"
            } else {
                "paths are"
            },
            match &config.output {
                Some(path) if path.as_os_str() != "-" => format!("{} not written", path.display()),
                _ => "the output is incomplete".into(),
            }
        ));
        return Ok(false);
    }
    out.commit()?;
    Ok(gaps_ok)
}

/// One file as an input lists it: its name, digests and the exact lines.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MergeRecord {
    name: Vec<u8>,
    /// Lower-case hex digests, sorted: what two listings of a file must agree on.
    digests: Vec<String>,
    /// The lines as written, each ending in `\n`.
    raw: Vec<u8>,
    /// Line number of its first line.
    line: u64,
}

impl MergeRecord {
    /// The merge order: components compared as bytes, which is the walk order.
    fn key(&self) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(&self.name))
    }
}

/// The shape of a line, which every input must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineFormat {
    /// `HASH  NAME` with this many hex digits.
    Gnu(usize),
    /// `ALGO (NAME) = HASH`.
    Tag,
    Json,
}

impl LineFormat {
    fn of(line: &[u8]) -> LineFormat {
        let body = line.strip_prefix(b"\\").unwrap_or(line);
        if body.starts_with(b"{") {
            return LineFormat::Json;
        }
        // No algorithm tag is all hex digits ("BLAKE3", "SHA256", "MD5"...), so a hex
        // run followed by a space is a GNU digest.
        let digits = body.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits > 0 && body.get(digits) == Some(&b' ') {
            LineFormat::Gnu(digits)
        } else {
            LineFormat::Tag
        }
    }

    fn describe(self) -> String {
        match self {
            LineFormat::Gnu(n) => format!("GNU lines with {n}-digit digests"),
            LineFormat::Tag => "BSD (--tag) lines".into(),
            LineFormat::Json => "JSON Lines".into(),
        }
    }
}

/// One manifest being read, with one line of look-ahead (to join `--tag` lines).
struct Input {
    /// As shown in messages.
    name: String,
    reader: BufReader<File>,
    hints: Hints,
    line: u64,
    ahead: Option<(MergeRecord, LineFormat)>,
    /// The last record returned, to check the input's order.
    last_key: Option<PathBuf>,
    format: Option<LineFormat>,
    records: u64,
}

impl Input {
    fn open(path: &Path) -> Result<Input> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open manifest {name}"))?;
        anyhow::ensure!(
            !file.metadata().is_ok_and(|m| m.is_dir()),
            "manifest {name} is a directory"
        );
        let file_name = path.file_name().map(OsStrExt::as_bytes).unwrap_or(b"");
        Ok(Input {
            name,
            reader: BufReader::with_capacity(256 << 10, file),
            hints: Hints::for_manifest(file_name, None),
            line: 0,
            ahead: None,
            last_key: None,
            format: None,
            records: 0,
        })
    }

    /// The next file listed, with consecutive `--tag` lines of one name joined.
    fn next_record(&mut self) -> Result<Option<MergeRecord>> {
        let first = match self.ahead.take() {
            Some(ahead) => Some(ahead),
            None => self.next_line()?,
        };
        let Some((mut record, format)) = first else {
            return Ok(None);
        };
        if format == LineFormat::Tag {
            while let Some((next, next_format)) = self.next_line()? {
                if next_format == LineFormat::Tag && next.name == record.name {
                    record.digests.extend(next.digests);
                    record.raw.extend_from_slice(&next.raw);
                } else {
                    self.ahead = Some((next, next_format));
                    break;
                }
            }
            record.digests.sort();
        }
        let key = record.key();
        if let Some(last) = &self.last_key
            && key < *last
        {
            anyhow::bail!(
                "{}:{}: {} comes after {} but sorts before it; merge reads manifests in \
                 the order `spate hash` writes them (sorted by path, depth first)",
                self.name,
                record.line,
                key.display(),
                last.display()
            );
        }
        self.last_key = Some(key);
        self.records += 1;
        Ok(Some(record))
    }

    /// The next line that lists a file (blank lines and comments are skipped).
    fn next_line(&mut self) -> Result<Option<(MergeRecord, LineFormat)>> {
        loop {
            let mut raw = Vec::new();
            let limit = MAX_LINE as u64 + 2;
            let n = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut raw)
                .with_context(|| format!("reading manifest {}", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if raw.last() != Some(&b'\n') {
                anyhow::ensure!(
                    (n as u64) < limit,
                    "{}:{}: line longer than {MAX_LINE} bytes",
                    self.name,
                    self.line
                );
                raw.push(b'\n');
            }
            let text = &raw[..raw.len() - 1];
            let record = match parse::parse_line(text, &self.hints) {
                Ok(None) => continue,
                Ok(Some(record)) => record,
                Err(why) => anyhow::bail!(
                    "{}:{}: improperly formatted checksum line: {why}",
                    self.name,
                    self.line
                ),
            };
            let format = LineFormat::of(text);
            match self.format {
                None => self.format = Some(format),
                Some(first) if first != format => anyhow::bail!(
                    "{}:{}: {}, but earlier lines are {}",
                    self.name,
                    self.line,
                    format.describe(),
                    first.describe()
                ),
                Some(_) => {}
            }
            let mut digests: Vec<String> = record.expected.into_iter().map(|e| e.hex).collect();
            digests.sort();
            let merged = MergeRecord {
                name: record.name,
                digests,
                raw,
                line: self.line,
            };
            return Ok(Some((merged, format)));
        }
    }
}

/// Decides what each record in merge order becomes: a line of output, an overlap, or a
/// conflict; and keeps what the gap check needs.
struct Merger {
    quiet: bool,
    /// Where duplicates, conflicts and gaps are said (merge has no progress display).
    reporter: Reporter,
    /// The record last written, and the input it came from.
    last: Option<(MergeRecord, usize)>,
    /// The format of the first input that listed anything, and that input.
    format: Option<(LineFormat, usize)>,
    conflicts: u64,
    /// With `--shards N`: which shards some input lists a file of.
    seen: Option<Vec<bool>>,
    /// Each root's name (its first component that is not `.`, `..` or `/`) → how the
    /// first input that listed it spelled it, that input and the line.
    roots: HashMap<Vec<u8>, (Vec<u8>, usize, u64)>,
}

impl Merger {
    fn new(config: &MergeConfig) -> Merger {
        Merger {
            quiet: config.quiet,
            reporter: Reporter::new(Progress::hidden()),
            last: None,
            format: None,
            conflicts: 0,
            seen: config.shards.map(|n| vec![false; n as usize]),
            roots: HashMap::new(),
        }
    }

    /// Refuses a record whose root another input spelled differently (`./tree` and
    /// `tree`, `/data` and `data`). One input may list a root twice in two spellings
    /// (`spate hash tree ./tree`): its workers all did the same.
    fn check_root(&mut self, record: &MergeRecord, index: usize, inputs: &[Input]) -> Result<()> {
        let Some((name, spelling)) = root_of(&record.name) else {
            return Ok(());
        };
        let Some((first, first_input, first_line)) = self.roots.get(name) else {
            self.roots
                .insert(name.to_vec(), (spelling.to_vec(), index, record.line));
            return Ok(());
        };
        if first.as_slice() == spelling || *first_input == index {
            return Ok(());
        }
        anyhow::bail!(
            "{} (line {}) names the root '{}' but {} (line {}) '{}': shards are split by the \
             bytes of each path, so every worker must be given the same paths from the same \
             directory",
            inputs[index].name,
            record.line,
            String::from_utf8_lossy(spelling),
            inputs[*first_input].name,
            first_line,
            String::from_utf8_lossy(first)
        )
    }

    /// Takes the next record in merge order, read from `inputs[index]`.
    fn take(
        &mut self,
        record: MergeRecord,
        index: usize,
        inputs: &[Input],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.check_format(index, inputs)?;
        self.check_root(&record, index, inputs)?;
        if let Some(seen) = &mut self.seen {
            let count = seen.len() as u64;
            seen[shard_of(&record.name, count) as usize] = true;
        }
        match &self.last {
            Some((last, first)) if last.key() == record.key() => {
                let path = record.key();
                let (a, b) = (&inputs[*first], &inputs[index]);
                if last.digests == record.digests {
                    if !self.quiet {
                        let words = format!(
                            "listed in {} (line {}) and {} (line {}) with the same digest; \
                             kept once",
                            a.name, last.line, b.name, record.line
                        );
                        self.reporter.notice(&path, &words);
                    }
                } else {
                    self.conflicts += 1;
                    let words = format!(
                        "different digests in {} (line {}) and {} (line {})",
                        a.name, last.line, b.name, record.line
                    );
                    let kind = ErrorKind::ConflictingDigests;
                    self.reporter.error(&Problem::new(path, kind, words));
                }
            }
            _ => {
                out.extend_from_slice(&record.raw);
                self.last = Some((record, index));
            }
        }
        Ok(())
    }

    fn check_format(&mut self, index: usize, inputs: &[Input]) -> Result<()> {
        let Some(format) = inputs[index].format else {
            return Ok(());
        };
        match self.format {
            None => self.format = Some((format, index)),
            Some((first, first_input)) if first != format => anyhow::bail!(
                "{} has {}, but {} has {}: merge manifests written with the same \
                 options (-a, --tag, --json)",
                inputs[index].name,
                format.describe(),
                inputs[first_input].name,
                first.describe()
            ),
            Some(_) => {}
        }
        Ok(())
    }

    /// Reports shards no input lists a file of. True when there are none, or no more
    /// than the inputs that list nothing (a shard of a small tree can be empty).
    fn report_gaps(&self, empty_inputs: usize) -> bool {
        let Some(seen) = &self.seen else { return true };
        let count = seen.len() as u64;
        let missing: Vec<String> = (0..count)
            .filter(|k| !seen[*k as usize])
            .map(|k| Shard { index: k, count }.to_string())
            .collect();
        if missing.is_empty() {
            return true;
        }
        let list = missing.join(", ");
        if missing.len() <= empty_inputs {
            if !self.quiet {
                self.reporter.say(&format!(
                    "no file of shard {list}; taken to be the empty input{}",
                    if empty_inputs == 1 { "" } else { "s" }
                ));
            }
            return true;
        }
        self.reporter.say(&format!(
            "gap: no input lists any file of shard {list} (a worker's manifest is missing, \
             or --shards is wrong)"
        ));
        false
    }
}

/// A name's root: its first component that is not `.`, `..` or empty, and the name's
/// bytes up to the end of it (`./tree/a` → `tree`, `./tree`). `None` for a name with no
/// such component (`.`).
fn root_of(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut start = 0;
    while start < name.len() {
        let end = name[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(name.len(), |at| start + at);
        match &name[start..end] {
            b"" | b"." | b".." => start = end + 1,
            component => return Some((component, &name[..end])),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_their_spelling() {
        let root = |n: &'static str| root_of(n.as_bytes());
        assert_eq!(root("tree/a"), Some((&b"tree"[..], &b"tree"[..])));
        assert_eq!(root("./tree/a"), Some((&b"tree"[..], &b"./tree"[..])));
        assert_eq!(root("/data/t/a"), Some((&b"data"[..], &b"/data"[..])));
        assert_eq!(root("..//x"), Some((&b"x"[..], &b"..//x"[..])));
        assert_eq!(root("file"), Some((&b"file"[..], &b"file"[..])));
        assert_eq!(root("./"), None);
    }

    #[test]
    fn line_formats() {
        let hex = "ab".repeat(32);
        assert_eq!(
            LineFormat::of(format!("{hex}  a").as_bytes()),
            LineFormat::Gnu(64)
        );
        assert_eq!(
            LineFormat::of(format!("\\{hex}  a\\nb").as_bytes()),
            LineFormat::Gnu(64)
        );
        assert_eq!(
            LineFormat::of(format!("BLAKE3 (a) = {hex}").as_bytes()),
            LineFormat::Tag
        );
        assert_eq!(LineFormat::of(br#"{"path":"a"}"#), LineFormat::Json);
    }

    #[test]
    fn walk_order_is_path_order() {
        // walkdir sorts siblings by name and goes depth first: "a/x" before "a b".
        let mut names = vec!["t/a b", "t/a.txt", "t/a/x", "t/a/b/c", "t/-d", "t/*s"];
        names.sort_by_key(|n| PathBuf::from(n));
        assert_eq!(
            names,
            ["t/*s", "t/-d", "t/a/b/c", "t/a/x", "t/a b", "t/a.txt"]
        );
    }
}
