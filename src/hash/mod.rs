//! The hash job: walk → read → digests → manifest lines.

pub mod digest;
pub(crate) mod stamped;
pub mod tree;
pub mod update;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::manifest::{self, Style};
use crate::output::{Cleanup, Output, OwnFiles};
use crate::pipeline::{self, Outcome};
use crate::progress::{Progress, ProgressMode, Summary};
use crate::read::{ReadOptions, Sink};
use crate::report::Reporter;
use crate::walk::WalkOptions;
use digest::{Algo, Blake3Mode, HasherFactory, MultiHasher};

/// Everything `spate hash` needs to know.
#[derive(Debug, Clone)]
pub struct HashConfig {
    /// Files and directories to hash; `-` alone means standard input.
    pub paths: Vec<OsString>,
    pub algos: Vec<Algo>,
    pub style: Style,
    /// BLAKE3's key and output length (`--keyed`, `--length`).
    pub blake3: Blake3Mode,
    /// Manifest file to write atomically; `None` for standard output.
    pub output: Option<PathBuf>,
    pub walk: WalkOptions,
    pub read: ReadOptions,
    pub progress: ProgressMode,
    /// Print notices about skipped entries.
    pub notices: bool,
    /// Print a summary line at the end.
    pub stats: bool,
    /// `--update OLD`: reuse OLD's digests of unchanged files (JSON output).
    pub update: Option<update::UpdateConfig>,
    /// `--tree-digest`: one BLAKE3 Merkle digest per directory instead of per file.
    pub tree_digest: bool,
}

const MANIFEST_ITSELF: &str = "the manifest being written; not hashed";

/// Output is written in batches of about this many bytes.
const FLUSH_AT: usize = 64 * 1024;

/// Runs the job. `Ok(true)` when every file was hashed, `Ok(false)` when some failed
/// (each already reported on stderr), `Err` for a fatal error.
/// Opens the run's output (`-o` or stdout) and the walk options that keep it out of
/// the walk. The file under the final name is looked at before the temporary file
/// exists: an earlier run's manifest there is about to be replaced, not hashed.
fn open_output(config: &HashConfig, cleanup: &Arc<Cleanup>) -> Result<(Output, WalkOptions)> {
    let mut own = OwnFiles::default();
    own.add_final(config.output.as_deref(), MANIFEST_ITSELF)?;
    let out = Output::open(config.output.as_deref(), cleanup)?;
    own.add_open(&out, MANIFEST_ITSELF)?;
    let walk = WalkOptions {
        own_outputs: own,
        ..config.walk.clone()
    };
    Ok((out, walk))
}

pub fn run(config: &HashConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    if let Some(update) = &config.update {
        return update::run(config, update, cleanup);
    }
    if config.tree_digest {
        return tree::run(config, cleanup);
    }
    let started = Instant::now();
    let (mut out, walk) = open_output(config, cleanup)?;
    let mut summary = Summary::default();
    let mut buf = Vec::with_capacity(FLUSH_AT * 2);

    if is_stdin(&config.paths) {
        let (digests, len) = hash_stdin(&config.algos, config.blake3)?;
        manifest::push_styled(&mut buf, config.style, Path::new("-"), len, &digests);
        summary.files = 1;
        summary.bytes = len;
    } else {
        let reporter = Reporter::with_skipped(Progress::new(config.progress), config.notices);
        let progress = reporter.progress();
        let factory = Arc::new(stamped::StampedFactory::new(HasherFactory {
            algos: config.algos.clone(),
            blake3: config.blake3,
        }));
        let result = pipeline::run(
            &config.paths,
            &walk,
            &config.read,
            factory,
            progress,
            |outcome| {
                match outcome {
                    Outcome::Read {
                        path,
                        output: (digests, meta),
                        len,
                        ..
                    } => {
                        let meta = Some(&meta);
                        manifest::push_with_meta(
                            &mut buf,
                            config.style,
                            &path,
                            len,
                            &digests,
                            meta,
                        );
                        summary.files += 1;
                        summary.bytes += len;
                    }
                    Outcome::Failed { path, error, .. } => reporter.read_failed(&path, error),
                    Outcome::Notice(notice) => {
                        reporter.walk_notice(&notice);
                    }
                    Outcome::Note(()) => {}
                }
                if buf.len() >= FLUSH_AT {
                    write_batch(&reporter, &mut out, &buf)?;
                    buf.clear();
                }
                Ok(())
            },
        );
        // The last lines go out with the bar still up, like every batch before them:
        // finishing first would leave its last frame on screen for them to follow.
        let written = write_batch(&reporter, &mut out, &buf);
        reporter.finish();
        result?;
        written?;
        buf.clear();
        summary.errors = reporter.errors();
        summary.skipped = reporter.skipped_count();
    }

    out.write_all(&buf)?;
    out.commit()?;
    if config.stats {
        crate::report::text::say_plainly(&format_args!(
            "{}; backend {} ×{}, queue depth {}, buffer {}{}",
            summary.render(started),
            config.read.backend.name(),
            config.read.jobs,
            depth_text(&config.read),
            humansize::format_size(config.read.buffer_size as u64, humansize::BINARY),
            crate::memory::peak_rss_text(),
        ));
    }
    Ok(summary.errors == 0)
}

/// Writes a batch of manifest lines; on stdout through the reporter, which takes the
/// bar off a terminal they share meanwhile.
fn write_batch(reporter: &Reporter, out: &mut Output, batch: &[u8]) -> Result<()> {
    if out.is_stdout() {
        reporter.to_stdout(|| out.write_all(batch))
    } else {
        out.write_all(batch)
    }
}

/// The queue depth as `--stats` shows it: the uring backend's range when it adapts.
fn depth_text(read: &ReadOptions) -> String {
    if read.backend == crate::read::BackendKind::Uring && read.max_queue_depth > read.queue_depth {
        format!("{}-{}", read.queue_depth, read.max_queue_depth)
    } else {
        read.queue_depth.to_string()
    }
}

fn is_stdin(paths: &[OsString]) -> bool {
    paths.is_empty() || (paths.len() == 1 && paths[0] == "-")
}

/// Hashes standard input (no walk, no backend: a pipe has no offsets to read at).
fn hash_stdin(algos: &[Algo], blake3: Blake3Mode) -> Result<(digest::Digests, u64)> {
    let mut hasher = MultiHasher::with_blake3(algos, blake3);
    let mut stdin = std::io::stdin().lock();
    let mut chunk = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading standard input"),
        };
        hasher.update(&chunk[..n]);
        len += n as u64;
    }
    Ok((hasher.finish(len), len))
}

/// Checks that standard input is named alone.
pub fn validate_paths(paths: &[OsString]) -> Result<()> {
    if paths.len() > 1 && paths.iter().any(|p| p == "-") {
        anyhow::bail!("'-' (standard input) cannot be combined with other paths");
    }
    Ok(())
}
