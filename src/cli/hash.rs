//! `spate hash` and `spate merge`: the arguments that make a manifest, and those that
//! join the manifests of a sharded run into one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::shared::{AlgoArg, IoArgs, ProgressArgs, ShardArgs, WalkArgs};
use crate::algo::Algo;
use crate::check::{CheckConfig, Verbosity};
use crate::hash::digest::Blake3Mode;
use crate::hash::update::UpdateConfig;
use crate::hash::update::policy::UpdatePolicy;
use crate::hash::{self, HashConfig};
use crate::manifest::{Format, Style};
use crate::merge::MergeConfig;
use crate::walk::WalkOptions;

pub(super) const HASH_EXAMPLES: &str = "\
Examples:
  spate hash /usr/share/doc > doc.b3        # BLAKE3 manifest; verify with b3sum -c doc.b3
  spate hash -a sha256 -o photos.sha256 ~/Photos   # sha256sum -c photos.sha256 checks it
  spate hash -a sha256 -a md5 --json data/  # several digests from one read, JSON Lines
  spate hash --tree-digest ~/Photos         # one BLAKE3 digest per directory, root last";

#[derive(Args, Debug)]
pub(super) struct HashArgs {
    /// Files and directories to hash; '-' or nothing reads standard input.
    paths: Vec<OsString>,

    /// Digest algorithm; repeat for several digests from one read [default: blake3].
    /// With -c: the algorithm of lines that do not name one.
    #[arg(short = 'a', long = "algo", value_enum, ignore_case = true)]
    algos: Vec<AlgoArg>,

    /// Read each FILE as a manifest and verify it, as `b3sum -c` and `sha256sum -c` do
    /// (names from the current directory): the same as `spate check FILE...` (its --help
    /// lists every checking option). Checking a manifest from elsewhere? use `spate check
    /// --root DIR` (confined).
    #[arg(short = 'c', long = "check", conflicts_with_all = ["tag", "output"])]
    check: bool,

    /// With -c: print nothing; the exit code says whether everything verified.
    #[arg(long, requires = "check", conflicts_with = "quiet")]
    status: bool,

    /// With -c: say nothing about listed files that do not exist.
    #[arg(long, requires = "check")]
    ignore_missing: bool,

    /// With -c: fail when a line is malformed.
    #[arg(long, requires = "check")]
    strict: bool,

    /// With -c: name each malformed line, as `sha256sum -c --warn`.
    #[arg(short = 'w', long, requires = "check")]
    warn: bool,

    /// With -c: exit 1 also when a file is MODIFIED or MOVED (as `spate check
    /// --fail-on-change`; by default only CORRUPT, FAILED, MISSING, NEW and ERROR fail).
    #[arg(long, requires = "check")]
    fail_on_change: bool,

    /// With -c: also walk DIR and report files no manifest lists (NEW) or that a
    /// MISSING line names under another path (MOVED), as `spate check --audit`.
    #[arg(long, value_name = "DIR", requires = "check")]
    audit: Vec<PathBuf>,

    /// BSD-style lines: 'BLAKE3 (path) = hash' (implied by more than one --algo).
    #[arg(long, conflicts_with = "json")]
    tag: bool,

    /// JSON Lines: one object per file with path, size, one field per digest, and
    /// mtime_ns, ctime_ns, inode, dev, hashed_ns (the README's table). Files that fail
    /// are not in it (it is a manifest, for check and --update): they are reported on
    /// stderr as 'spate: PATH: cause', as without --json.
    #[arg(long)]
    json: bool,

    /// Print the digest alone, without the name, as `b3sum --no-names` (one -a only).
    #[arg(long, conflicts_with_all = ["tag", "json", "check"])]
    no_names: bool,

    /// Write the digest as raw bytes with nothing after it, as `b3sum --raw` (one file
    /// or standard input, one -a).
    #[arg(long, conflicts_with_all = ["tag", "json", "check", "no_names", "zero"])]
    raw: bool,

    /// BLAKE3 output length in bytes, as `b3sum --length` [default: 32].
    #[arg(short = 'l', long = "length", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=65536), conflicts_with = "check")]
    length: Option<u64>,

    /// BLAKE3 keyed mode, as `b3sum --keyed`: the key is read from standard input and
    /// must be exactly 32 raw bytes (so the files are named as arguments).
    #[arg(long, conflicts_with = "check")]
    keyed: bool,

    /// End each line with NUL instead of newline and write names unescaped, as
    /// `sha256sum -z`.
    #[arg(short = 'z', long = "zero", conflicts_with_all = ["json", "check"])]
    zero: bool,

    /// Write the manifest to FILE atomically instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Print one BLAKE3 Merkle digest per directory, 'DIGEST  DIR/', instead of a line
    /// per file (b3sum has no such mode): children before parents as du prints them, the
    /// root last. It covers the names, types and contents of everything below (not
    /// times, owners or modes), so two trees or two runs compare by one line. Links not
    /// followed count by their target text, FIFOs, sockets and devices by name and type;
    /// excluded names are left out. A directory with an entry that cannot be read gets
    /// an error instead of a digest, as do its parents (exit 1). BLAKE3 only; with --json
    /// {"path","type":"dir","blake3"}. README "Directory digests" defines it exactly.
    #[arg(long, conflicts_with_all = ["check", "tag", "no_names", "raw", "length", "keyed",
                                      "old", "shard", "shards"])]
    tree_digest: bool,

    #[command(flatten)]
    walk: WalkArgs,

    #[command(flatten)]
    shard: ShardArgs,

    #[command(flatten)]
    io: IoArgs,

    #[command(flatten)]
    progress: ProgressArgs,

    #[command(flatten)]
    update: UpdateArgs,

    /// No progress (unless --progress says) and no notices about skipped entries
    /// (errors are still shown).
    #[arg(short, long)]
    quiet: bool,

    /// Print a summary (files, bytes, skipped, errors, time, throughput) on stderr.
    #[arg(long)]
    stats: bool,
}

impl HashArgs {
    pub(super) fn config(&self) -> Result<HashConfig> {
        hash::validate_paths(&self.paths)?;
        let mut algos: Vec<Algo> = self.algos.iter().map(|&a| a.into()).collect();
        if algos.is_empty() {
            algos.push(Algo::Blake3);
        }
        // `-a sha256 -a sha256` means one digest.
        let mut seen = Vec::new();
        algos.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        anyhow::ensure!(
            !self.no_names || algos.len() == 1,
            "--no-names takes one -a: without names, lines would not say which digest is which"
        );
        if self.raw {
            anyhow::ensure!(
                algos.len() == 1 && self.paths.len() <= 1,
                "--raw takes one file (or standard input) and one -a, as b3sum --raw"
            );
            let dir = self.paths.first().is_some_and(|p| Path::new(p).is_dir());
            anyhow::ensure!(!dir, "--raw takes one file, not a directory");
        }
        if self.update.old.is_some() {
            anyhow::ensure!(
                !is_stdin_only(&self.paths),
                "--update needs the files and directories OLD lists (standard input has no \
                 metadata to compare)"
            );
        }
        if self.tree_digest {
            anyhow::ensure!(
                algos == [Algo::Blake3],
                "--tree-digest is defined with BLAKE3 alone: drop -a, or give -a blake3"
            );
            anyhow::ensure!(
                !is_stdin_only(&self.paths),
                "--tree-digest needs the directories to digest (standard input is no tree)"
            );
        }
        let format = if self.json || self.update.old.is_some() {
            Format::Json
        } else if self.raw {
            Format::Raw
        } else if self.no_names {
            Format::NoNames
        } else if self.tag || algos.len() > 1 {
            // GNU lines do not name their algorithm: with several digests per file only
            // BSD lines can be checked unambiguously.
            Format::Tag
        } else {
            Format::Gnu
        };
        let blake3 = self.blake3_mode(&algos)?;
        Ok(HashConfig {
            paths: self.paths.clone(),
            algos,
            style: Style {
                format,
                zero: self.zero,
            },
            blake3,
            output: self.output.clone(),
            walk: WalkOptions {
                shard: self.shard.select_for_walk(&self.paths)?,
                ..self.walk.options()
            },
            read: self.io.options(self.quiet)?,
            progress: self.progress.mode(self.quiet),
            notices: !self.quiet,
            stats: self.stats,
            update: self.update.config(self.algos.is_empty())?,
            tree_digest: self.tree_digest,
        })
    }
}

impl HashArgs {
    /// `--length` and `--keyed`, which only BLAKE3 has.
    fn blake3_mode(&self, algos: &[Algo]) -> Result<Blake3Mode> {
        let mut mode = Blake3Mode::default();
        if self.length.is_none() && !self.keyed {
            return Ok(mode);
        }
        anyhow::ensure!(
            algos == [Algo::Blake3],
            "--length and --keyed are BLAKE3's: give them without -a, or with -a blake3 alone"
        );
        if let Some(len) = self.length {
            mode.len = len as usize;
        }
        if self.keyed {
            anyhow::ensure!(
                !self.paths.is_empty() && self.paths.iter().all(|p| p != "-"),
                "--keyed reads the key from standard input: name the files to hash"
            );
            mode.key = Some(read_key()?);
        }
        Ok(mode)
    }

    /// Whether `-c` turned this into `spate check`.
    pub(super) fn checks(&self) -> bool {
        self.check
    }

    /// `spate hash -c FILE...` as `spate check FILE...`: the same verdicts, output and
    /// exit codes, with the options `sha256sum -c` has.
    pub(super) fn check_config(&self) -> Result<CheckConfig> {
        anyhow::ensure!(
            self.algos.len() <= 1,
            "-c takes at most one -a: the algorithm of lines that do not name one"
        );
        let verbosity = Verbosity::from_flags(self.quiet, self.status);
        let manifests = if self.paths.is_empty() {
            vec![OsString::from("-")]
        } else {
            self.paths.clone()
        };
        let silent = self.quiet || self.status;
        Ok(CheckConfig {
            manifests,
            algo: self.algos.first().map(|&a| a.into()),
            root: None,
            ignore_missing: self.ignore_missing,
            strict: self.strict,
            audit: self.audit.clone(),
            verbosity,
            json: self.json,
            walk: WalkOptions {
                shard: self.shard.select()?,
                ..self.walk.options()
            },
            read: self.io.options(silent)?,
            progress: self.progress.mode(silent),
            stats: self.stats,
            warn: self.warn,
            fail_on_change: self.fail_on_change,
            // `hash --update` names OLD, not NEW: the next manifest from a check is
            // `spate check OLD --audit DIR --update NEW`.
            update: None,
        })
    }
}

fn is_stdin_only(paths: &[OsString]) -> bool {
    paths.is_empty() || paths.iter().any(|p| p == "-")
}

/// `--update` and its policy flags.
#[derive(Args, Debug)]
#[command(next_help_heading = "Incremental (--update)")]
struct UpdateArgs {
    /// Write the next JSON manifest of DIRs from OLD (a `spate hash --json` manifest):
    /// files whose size, mtime, inode and ctime are as OLD recorded keep OLD's digest
    /// and are not read; the others are read. Without -a, OLD's algorithms; a file OLD
    /// has no digest of a requested algorithm for is read. Give the DIRs as for OLD
    /// (same names, same order, same directory): paths are matched as written. OLD may
    /// be the -o file itself (it is replaced only at the end). Counts on stderr with
    /// --stats (or on a terminal): reused, read again, new, gone, outside.
    #[arg(long = "update", value_name = "OLD",
          conflicts_with_all = ["check", "tag", "no_names", "raw", "zero", "length", "keyed"])]
    old: Option<PathBuf>,

    /// With --update: a different ctime alone does not force a read (ctime moves on
    /// chmod, chown, rename and hard links, not only on writes).
    #[arg(long, requires = "old")]
    ignore_ctime: bool,

    /// With --update: a different inode alone does not force a read (file systems that
    /// renumber: some FUSE, network and restored trees).
    #[arg(long, requires = "old")]
    ignore_inode: bool,

    /// With --update: also read unchanged files whose digest was computed more than
    /// DAYS ago (JSON `hashed_ns`), a rolling scrub. A digest that then differs while
    /// size and times did not is reported as possible corruption (exit 1) and OLD's
    /// digest is kept.
    #[arg(long, value_name = "DAYS", requires = "old", value_parser = parse_days)]
    rehash_older: Option<f64>,

    /// With --update: also read about PCT% of unchanged files (0-100, decimals allowed),
    /// picked by hashing each path with the date (UTC): the same files all day, others
    /// the next. Checked as --rehash-older's are.
    #[arg(long, value_name = "PCT", requires = "old", value_parser = parse_percent)]
    sample: Option<f64>,
}

impl UpdateArgs {
    fn config(&self, algos_from_old: bool) -> Result<Option<UpdateConfig>> {
        let Some(old) = &self.old else {
            return Ok(None);
        };
        Ok(Some(UpdateConfig {
            old: old.clone(),
            policy: UpdatePolicy {
                ignore_ctime: self.ignore_ctime,
                ignore_inode: self.ignore_inode,
                rehash_older_ns: self.rehash_older.map(|days| (days * 86_400e9) as i64),
                sample: self.sample.map(|pct| (pct * 100.0).round() as u32),
            },
            algos_from_old,
        }))
    }
}

fn parse_days(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(days) if days.is_finite() && (0.0..=1e6).contains(&days) => Ok(days),
        _ => Err(format!("{text:?} is not a number of days (0 or more)")),
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let text = text.strip_suffix('%').unwrap_or(text);
    match text.parse::<f64>() {
        Ok(pct) if (0.0..=100.0).contains(&pct) => Ok(pct),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

/// The key of `--keyed`: exactly 32 raw bytes on standard input, as b3sum reads it.
fn read_key() -> Result<[u8; 32]> {
    use std::io::Read;
    let mut key = Vec::with_capacity(33);
    std::io::stdin()
        .lock()
        .take(33)
        .read_to_end(&mut key)
        .context("reading the --keyed key from standard input")?;
    let len = key.len();
    key.try_into().map_err(|_| {
        let got = if len > 32 {
            "more".to_string()
        } else {
            len.to_string()
        };
        anyhow::anyhow!("--keyed needs exactly 32 bytes of key on standard input, got {got}")
    })
}

pub(super) const MERGE_EXAMPLES: &str = "\
Examples:
  spate merge --shards 4 part-0.b3 part-1.b3 part-2.b3 part-3.b3 -o all.b3
  spate merge -o all.json shards/*.json     # JSON Lines in, JSON Lines out
  spate merge old.b3 new.b3 | b3sum -c      # refuses a path listed with two digests
  spate merge -o all.tar.zst part-1.tar.zst part-2.tar.zst part-3.tar.zst

Archives (indexed .tar.zst, told from manifests by their content, e.g. the parts of
`spate pack --shard K/N`) are joined as `tar --concatenate` joins archives: members in
the order of the inputs (each in its own order), nothing recompressed (data frames are
copied; each part's end-of-archive blocks are left out, one end closes the output),
one table of contents and seek table for the whole. Names in several parts are all
kept, with a notice: extraction leaves the last. Written atomically. The parts are not
decompressed: `spate check all.tar.zst` verifies the result.";

#[derive(Args, Debug)]
pub(super) struct MergeArgs {
    /// Manifests to merge, each in the order `spate hash` wrote it, all in one format;
    /// or indexed .tar.zst archives, joined in the order given.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,

    /// Write the merged manifest (or archive) to FILE atomically instead of standard
    /// output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,

    /// The inputs are the N shards of one tree: report shards no input lists a file of.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    shards: Option<u64>,

    /// No notices about paths listed twice with the same digest.
    #[arg(short, long)]
    quiet: bool,
}

impl MergeArgs {
    pub(super) fn config(&self) -> MergeConfig {
        MergeConfig {
            inputs: self.inputs.clone(),
            output: self.output.clone(),
            shards: self.shards,
            quiet: self.quiet,
        }
    }
}
