//! `spate bench --tree DIR`: reads an existing tree through the same pipeline as `spate
//! hash` (walk, backend, reorder), with a sink that only counts and times, so the figure
//! is what a hash or pack of that tree can at best reach. Nothing is written.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use hdrhistogram::Histogram;

use super::report::{Cpu, Latency, TreeReport};
use super::samples::{Counters, Sampler};
use crate::pipeline::{self, Outcome};
use crate::progress::{Progress, ProgressMode};
use crate::read::{ReadOptions, Sink, SinkFactory};
use crate::report::Reporter;
use crate::walk::{Entry, WalkOptions};

/// Times one file from the moment its open returned (the backend makes the sink right
/// after opening) to the last byte.
struct FileTimer {
    opened: Instant,
}

impl Sink for FileTimer {
    type Output = u64;
    fn update(&mut self, _data: &[u8]) {
        // The bytes are in our buffer already: reading them again would measure memory.
    }
    fn finish(self, _len: u64) -> u64 {
        self.opened.elapsed().as_nanos().max(1) as u64
    }
}

struct Timers;

impl SinkFactory for Timers {
    type Tag = ();
    type Sink = FileTimer;
    fn make(&self, _entry: &Entry, _tag: &()) -> FileTimer {
        FileTimer {
            opened: Instant::now(),
        }
    }
}

/// Walks and reads the tree below `root`; `progress` draws the usual bar.
pub fn run(root: &Path, read: &ReadOptions, progress: ProgressMode) -> Result<TreeReport> {
    let meta = std::fs::metadata(root)
        .map_err(|e| anyhow::anyhow!("{}: {}", root.display(), crate::error::describe_io(&e)))?;
    if !meta.is_dir() {
        bail!("{}: not a directory", root.display());
    }
    // Before the walk: the time is when the run started.
    let about = super::meta::Meta::collect(root);
    // Memory maps would hand the sink pages it never touches, so nothing would be read.
    let read = ReadOptions {
        mmap_threshold: None,
        ..read.clone()
    };
    // A second walk would disturb what is measured: the walk itself counts, and says
    // "counting…" until it has seen the whole tree.
    // Entries skipped by design are not the benchmark's business: counted, not shown.
    let reporter = Reporter::with_skipped(Progress::new(progress).source_counts(), false);
    let bar = reporter.progress();
    let walk = WalkOptions {
        sizes_upfront: bar.shows(),
        ..WalkOptions::default()
    };
    let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)?;
    let (mut files, mut bytes) = (0u64, 0u64);
    // Bumped once per finished file by the one thread that sees results.
    let counters = Counters {
        bytes: Arc::new(AtomicU64::new(0)),
        files: Some(Arc::new(AtomicU64::new(0))),
    };
    let cpu = Cpu::now();
    let started = Instant::now();
    let sampler = Sampler::start(counters.clone(), started);
    let result = pipeline::run(
        &[OsString::from(root)],
        &walk,
        &read,
        Arc::new(Timers),
        bar,
        |outcome| {
            match outcome {
                Outcome::Read { output, len, .. } => {
                    files += 1;
                    bytes += len;
                    counters.bytes.fetch_add(len, Ordering::Relaxed);
                    if let Some(f) = &counters.files {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                    latency.saturating_record(output);
                }
                Outcome::Failed { path, error, .. } => reporter.read_failed(&path, error),
                Outcome::Notice(notice) => {
                    reporter.walk_notice(&notice);
                }
                Outcome::Note(()) => {}
            }
            Ok(())
        },
    );
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let mut cpu = Cpu::now().since(cpu);
    let samples = sampler.finish();
    cpu.instruments_s = samples.cpu_s;
    reporter.finish();
    result?;
    let errors = reporter.errors();
    Ok(TreeReport {
        tree: root.display().to_string(),
        backend: read.backend.name(),
        meta: about,
        files,
        bytes,
        errors,
        elapsed_s: elapsed,
        files_per_s: files as f64 / elapsed,
        mb_s: bytes as f64 / elapsed / 1e6,
        mib_s: bytes as f64 / elapsed / (1 << 20) as f64,
        lat_ns: (files > 0).then(|| Latency::from_histogram(&latency)),
        cpu,
        samples,
    })
}
