//! `spate check`: the arguments that verify files against manifests.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::shared::{AlgoArg, IoArgs, ProgressArgs, ShardArgs, WalkArgs};
use crate::algo::Algo;
use crate::check::{CheckConfig, Verbosity};
use crate::walk::WalkOptions;

pub(super) const CHECK_EXAMPLES: &str = "\
Examples:
  spate check doc.b3                    # names from the current directory, as sha256sum -c
  spate check --root /data data.b3      # a manifest from elsewhere? --root: names confined to /data
  spate check -q SHA256SUMS             # print only files that are not OK
  spate check --audit /data data.b3     # also list files under /data the manifest lacks (NEW)
  spate check --audit /data week1.json  # JSON manifest: also MODIFIED / CORRUPT / MOVED
  spate check week1.json --audit /data --update week2.json   # verify, and write the next one
  find . -type f -exec sha256sum {} + | spate check -   # read the manifest from stdin
  spate check backup.tar.zst            # every member against the archive's own table
  spate check backup.tar.zst --audit data   # the archive against a directory, unpacked nowhere

An archive given instead of a manifest (told by its content: a compressed stream or a
tar header, not its name) is checked against its table of contents, writing nothing:
an indexed .tar.zst (what `spate pack` writes) has every data frame decompressed (on
every core) and its checksum verified, every member's header compared with its table
entry, and every file's content with the table's BLAKE3: `NAME: OK`, `NAME: FAILED`
(content differs; the table keeps the first 16 bytes of each BLAKE3, and those are
compared: 128 bits, far beyond what accidental damage collides with, while the table,
like any checksum stored beside its data, is no defence against whoever can rewrite
the archive), `NAME: ERROR in frame 3, which is damaged` (plus one line naming the
frame); directories and links get no line unless they are damaged. A file the table has
no digest for (it changed, or could not be read whole, while it was packed, which pack
reported then, as GNU tar says 'file changed as we read it') is `NAME: UNVERIFIED ...`:
its bytes are verified as archived, but nothing vouches that they are the file's. Such
files are counted apart and, like malformed manifest lines, fail the check only with
--strict. With --json,
`manifest` is the archive and `line` the member's number in it. An archive without a
table (GNU tar's, --no-index, gzip, xz, bzip2) has no digests to verify: it is read to
the end, which proves it decompresses and parses, a notice says so, and the exit status
is 0 (1 if it is damaged). A table that disagrees with its archive is an error (exit 1).
With --audit DIR, the table is the manifest: every file's name, size and BLAKE3 (its
first 16 bytes, compared with the start of the file's), looked
up and read as a manifest's lines are (from the current directory, as `spate unpack`
without -C writes them, or beneath --root), with the verdicts above plus MISSING and
NEW (an archive without a table is read once to make the table up). --update, --shard
and -a other than blake3 are refused for archives.";

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    /// Manifests to verify ('-' reads standard input): GNU lines ('HASH  NAME'), BSD
    /// lines ('ALGO (NAME) = HASH') or spate's JSON Lines; or archives, verified
    /// against their own table of contents (see below).
    #[arg(required = true)]
    manifests: Vec<OsString>,

    /// Algorithm of lines that do not name one [default: from the digest length; 64 hex
    /// digits are BLAKE3 or SHA-256, from the manifest's name or else either].
    #[arg(short = 'a', long = "algo", value_enum, ignore_case = true)]
    algo: Option<AlgoArg>,

    /// Confined mode, for a manifest from elsewhere (one you did not write): every name
    /// is looked up beneath DIR; absolute names, `..` out of DIR and symbolic links out of
    /// it are ERROR, never read. [default: names resolve as `sha256sum -c` resolves them:
    /// relative ones from the current directory, absolute ones as written, links followed]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Accepted for old scripts, no longer needed: without --root, absolute names are
    /// checked as written; with --root, refused (every name must be beneath DIR).
    #[arg(long, hide = true)]
    allow_absolute: bool,

    /// Say nothing about listed files that do not exist.
    #[arg(long)]
    ignore_missing: bool,

    /// Fail when a line is malformed, or an archive member is UNVERIFIED (no digest in
    /// its table). (A file with no checksum line in its first 1,000 is not read
    /// further.)
    #[arg(long)]
    strict: bool,

    /// Name each malformed line on stderr (the first 10, then a count), as
    /// `sha256sum -c --warn`; without it they are only counted.
    #[arg(short = 'w', long)]
    warn: bool,

    /// Also walk DIR and report files no manifest lists as NEW (repeatable). A NEW file
    /// with the content of a MISSING line is reported once, as `OLD -> NEW: MOVED` (NEW
    /// files are read only when some line is MISSING: with a JSON manifest, only those
    /// of a MISSING line's size; with GNU/BSD lines, which have no size, all of them).
    #[arg(long, value_name = "DIR")]
    audit: Vec<PathBuf>,

    /// With --audit and one JSON manifest OLD (`spate hash --json`): also write NEW, the
    /// next manifest of the --audit DIRs, from the same reads: the lines `spate hash
    /// --json DIR...` would write, in its order, with OLD's algorithms (OK, MODIFIED and
    /// NEW files as found, MOVED ones under their new name, MISSING ones left out). A
    /// CORRUPT file keeps OLD's digest, as chkbit and cshatag keep a damaged file's
    /// known-good hash: the rot is not made the reference, and is reported again next
    /// time. Written atomically (temp file, renamed at the end). Every NEW file is read.
    #[arg(long, value_name = "NEW", requires = "audit")]
    update: Option<PathBuf>,

    /// Exit 1 also when a file is MODIFIED or MOVED. Without it, as cshatag and chkbit,
    /// those are reported as legitimate changes and only CORRUPT, FAILED, MISSING, NEW
    /// and ERROR fail the run. (A JSON line with metadata whose digest differs is
    /// MODIFIED when the file's size or mtime moved since, else CORRUPT: bitrot or
    /// tampering. Lines without metadata say FAILED, as `sha256sum -c`.)
    #[arg(long)]
    fail_on_change: bool,

    /// Print only files that are not OK (and the summary when something failed).
    #[arg(short, long)]
    quiet: bool,

    /// Print nothing: the exit code says whether everything verified. (The warning
    /// line about CORRUPT files is printed on stderr all the same.)
    #[arg(long, conflicts_with = "quiet")]
    status: bool,

    /// One JSON object per file: path, status, algos, manifest, line, error and
    /// error_kind (a stable name such as permission_denied, for ERROR and MALFORMED),
    /// and `from`, the listed name, for MOVED.
    #[arg(long)]
    json: bool,

    /// Print the summary (counts, bytes, time, throughput) on stderr even when every
    /// file verified. Without it, as `sha256sum -c`, a clean run prints no summary
    /// unless stderr is a terminal; problems are always counted.
    #[arg(long)]
    stats: bool,

    #[command(flatten)]
    walk: WalkArgs,

    #[command(flatten)]
    shard: ShardArgs,

    #[command(flatten)]
    io: IoArgs,

    #[command(flatten)]
    progress: ProgressArgs,
}

impl CheckArgs {
    pub(super) fn config(&self) -> Result<CheckConfig> {
        // Old command lines with --allow-absolute keep working: absolute names are now
        // checked by default. With --root it would have to punch a hole in the confined
        // mode, and silently ignoring it would turn lines it used to check into errors,
        // so that combination is refused with the reason.
        anyhow::ensure!(
            !(self.allow_absolute && self.root.is_some()),
            "--allow-absolute cannot be used with --root: --root checks only names beneath \
             its directory; without --root, absolute names are checked as written"
        );
        if let Some(new) = &self.update {
            anyhow::ensure!(
                self.manifests.len() == 1 && self.manifests[0] != "-",
                "--update takes one manifest file (a `spate hash --json` manifest), not \
                 several or standard input"
            );
            anyhow::ensure!(
                new.as_os_str() != "-",
                "--update needs a file name for NEW: standard output carries the report"
            );
        }
        let verbosity = Verbosity::from_flags(self.quiet, self.status);
        Ok(CheckConfig {
            manifests: self.manifests.clone(),
            algo: self.algo.map(Algo::from),
            root: self.root.clone(),
            ignore_missing: self.ignore_missing,
            strict: self.strict,
            audit: self.audit.clone(),
            verbosity,
            json: self.json,
            walk: WalkOptions {
                shard: self.shard.select()?,
                ..self.walk.options()
            },
            read: self.io.options(self.quiet || self.status)?,
            progress: self.progress.mode(self.quiet || self.status),
            stats: self.stats,
            warn: self.warn,
            fail_on_change: self.fail_on_change,
            update: self.update.clone(),
        })
    }
}
