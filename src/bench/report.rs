//! The benchmark's report: data first (`--json` prints it as is), and a table that
//! renders the same data for people.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use humansize::{BINARY, format_size};
use serde::Serialize;

use super::job::{DirStats, JobSpec, Rw};
use super::meta::Meta;
use super::samples::Samples;

/// A run on a test file: its settings and one entry per job.
#[derive(Debug, Serialize)]
pub struct FileReport {
    pub dir: String,
    pub file_size: u64,
    pub backend: &'static str,
    /// Whether the jobs ran with O_DIRECT.
    pub direct: bool,
    /// O_DIRECT was the default but the file system refused it: the jobs ran buffered.
    pub direct_refused: bool,
    /// Whether the test file's pages stayed in the page cache before read jobs.
    pub cached: bool,
    /// Whether the file's pages were dropped from the page cache before read jobs
    /// (some job reads, and no --cached).
    pub cache_dropped: bool,
    /// Version, time, host, kernel, CPU, file system and device of the run.
    pub meta: Meta,
    /// What the writes and the layout hold.
    pub pattern: PatternReport,
    /// Runs of every job (`--loops`); each job reports its best.
    pub loops: u32,
    /// SIGINT/SIGTERM stopped the run: `jobs` holds the jobs that finished.
    pub interrupted: bool,
    /// `--write-tree`: files per run and bytes per file (no test file: `file_size` is
    /// all the files' bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_tree: Option<WriteTreeReport>,
    pub jobs: Vec<JobReport>,
}

/// The shape of a `--write-tree` run.
#[derive(Debug, Serialize)]
pub struct WriteTreeReport {
    pub files: u64,
    pub file_size: u64,
    /// Writers, each with its share of the files in its own subdirectory.
    pub numjobs: usize,
}

/// The data pattern and what generating it costs.
#[derive(Debug, Serialize)]
pub struct PatternReport {
    /// `random`, `zero` or `compressible:PCT`.
    pub name: String,
    /// How fast the generator fills a buffer, 10^6 bytes per second. Buffers are filled
    /// once per job, before the clock; a write only stamps 8 bytes per 4 KiB block.
    pub generate_mb_s: f64,
}

/// One job's figures.
#[derive(Debug, Serialize)]
pub struct JobReport {
    pub name: String,
    pub rw: Rw,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rwmixread: Option<u8>,
    pub bs: u64,
    pub iodepth: usize,
    pub numjobs: usize,
    /// Write jobs: one fsync at the end, inside the timed part (fio's `end_fsync`).
    pub end_fsync: bool,
    /// Write jobs: an fsync after every this many writes, 0 for none (fio's `fsync`).
    pub fsync: u64,
    /// Read jobs: the file's pages were dropped from the page cache first.
    pub cache_dropped: bool,
    pub elapsed_s: f64,
    /// Operations in flight on average while the engine ran, all workers together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight_mean: Option<f64>,
    pub cpu: Cpu,
    pub read: Option<DirReport>,
    pub write: Option<DirReport>,
    /// The fsyncs of `fsync` (N > 0): how many, and their latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncReport>,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every run's figure under `--loops`; the figures above are those of the best.
    pub loops: Loops,
    /// Throughput every 100 ms of the run reported (the best under `--loops`).
    pub samples: Samples,
    /// `--write-tree`: files written (each created, written and fsynced; `write.ios`
    /// counts them too, and `write.lat_ns` is per file, from create to fsync done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_per_s: Option<f64>,
}

/// The runs of one job under `--loops N`, by throughput: MB/s of both directions
/// added (10^6 bytes per second).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Loops {
    /// Each run's MB/s, in the order they ran.
    pub mb_s: Vec<f64>,
    /// The best run (the one reported, as CrystalDiskMark reports its best).
    pub best_mb_s: f64,
    /// The median run (the mean of the middle two for an even count).
    pub median_mb_s: f64,
}

impl Loops {
    /// The summary of runs with these MB/s figures.
    pub fn of(mb_s: Vec<f64>) -> Loops {
        let mut sorted = mb_s.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => 0.0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Loops {
            best_mb_s: sorted.last().copied().unwrap_or(0.0),
            median_mb_s: median,
            mb_s,
        }
    }
}

/// CPU time the process used during a job (getrusage), in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Cpu {
    pub user_s: f64,
    pub system_s: f64,
    /// Of that, what the sampling thread and the progress line's thread used.
    pub instruments_s: f64,
}

impl Cpu {
    /// CPU time of the whole process so far.
    pub fn now() -> Cpu {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage fills the struct on success; we read it only then.
        let usage = unsafe {
            if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
                return Cpu::default();
            }
            usage.assume_init()
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Cpu {
            user_s: secs(usage.ru_utime),
            system_s: secs(usage.ru_stime),
            instruments_s: 0.0,
        }
    }

    /// CPU time between `earlier` and `self`.
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user_s: (self.user_s - earlier.user_s).max(0.0),
            system_s: (self.system_s - earlier.system_s).max(0.0),
            instruments_s: 0.0,
        }
    }

    /// CPU time as a percentage of one core over `elapsed`.
    fn percent(self, elapsed: f64) -> f64 {
        if elapsed > 0.0 {
            100.0 * (self.user_s + self.system_s) / elapsed
        } else {
            0.0
        }
    }
}

/// Figures of one direction of a job.
#[derive(Debug, Serialize)]
pub struct DirReport {
    pub bytes: u64,
    pub ios: u64,
    pub bw_bytes_per_s: f64,
    /// 10^6 bytes per second.
    pub mb_s: f64,
    /// 2^20 bytes per second.
    pub mib_s: f64,
    pub iops: f64,
    /// Latency per operation, nanoseconds: from handing it to the engine to its
    /// completion, i.e. fio's clat plus the submission (fio's `lat`).
    pub lat_ns: Latency,
}

/// Latency summary from an HdrHistogram, nanoseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub min: u64,
    pub max: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    #[serde(rename = "p99.9")]
    pub p99_9: u64,
    /// The curve HdrHistogram plots: `[percentile, ns]` at [`CURVE_AT`], up to the
    /// highest percentile the count of samples can tell apart.
    pub percentiles: Vec<(f64, u64)>,
}

/// Percentiles of the latency curve: dense where the tail is (each step a further
/// "nine" of a log scale).
pub const CURVE_AT: [f64; 25] = [
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 97.0, 98.0,
    99.0, 99.5, 99.7, 99.9, 99.95, 99.97, 99.99, 99.995, 99.999,
];

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        Latency {
            mean: h.mean(),
            min: h.min(),
            max: h.max(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            percentiles: CURVE_AT
                .iter()
                // Past 1 - 1/n every percentile is the maximum: the curve ends there.
                .filter(|&&p| p == 0.0 || (1.0 - p / 100.0) * h.len() as f64 >= 1.0)
                .map(|&p| (p, h.value_at_quantile(p / 100.0)))
                .chain(std::iter::once((100.0, h.max())))
                .collect(),
        }
    }
}

impl DirReport {
    /// The figures of `stats` over `elapsed`; `None` when nothing moved that way.
    pub fn new(stats: &DirStats, elapsed: Duration) -> Option<DirReport> {
        if stats.ios == 0 {
            return None;
        }
        let secs = elapsed.as_secs_f64().max(1e-9);
        let bw = stats.bytes as f64 / secs;
        Some(DirReport {
            bytes: stats.bytes,
            ios: stats.ios,
            bw_bytes_per_s: bw,
            mb_s: bw / 1e6,
            mib_s: bw / (1 << 20) as f64,
            iops: stats.ios as f64 / secs,
            lat_ns: Latency::from_histogram(&stats.latency),
        })
    }
}

/// The fsyncs a job issued between its writes (fio's `sync` figures).
#[derive(Debug, Serialize)]
pub struct SyncReport {
    pub ios: u64,
    /// From handing the fsync to the engine to its completion.
    pub lat_ns: Latency,
}

impl SyncReport {
    /// The figures of `stats`; `None` when no fsync was issued.
    pub fn new(stats: &DirStats) -> Option<SyncReport> {
        (stats.ios > 0).then(|| SyncReport {
            ios: stats.ios,
            lat_ns: Latency::from_histogram(&stats.latency),
        })
    }
}

impl JobReport {
    /// What a write row's figure includes: `incl. end fsync`, `fsync every 32`, both,
    /// or `no fsync` (then it may measure the page cache, not the disk).
    fn fsync_note(&self) -> String {
        if let Some(files) = self.files {
            return format!("{files} files; IOPS is files/s, latency create to fsync");
        }
        match (self.fsync, self.end_fsync) {
            (0, false) => "no fsync".into(),
            (0, true) => "incl. end fsync".into(),
            (n, false) => format!("fsync every {n}"),
            (n, true) => format!("fsync every {n} + end"),
        }
    }

    /// The report skeleton for `spec`; figures are filled in by the caller.
    pub fn for_spec(spec: &JobSpec, cache_dropped: bool) -> JobReport {
        JobReport {
            name: spec.name.clone(),
            rw: spec.rw,
            rwmixread: (spec.rw == Rw::Randrw).then_some(spec.rwmixread),
            bs: spec.bs,
            iodepth: spec.iodepth,
            numjobs: spec.jobs,
            end_fsync: spec.rw.writes() && spec.end_fsync,
            fsync: if spec.rw.writes() {
                spec.fsync_every
            } else {
                0
            },
            cache_dropped: spec.rw.reads() && cache_dropped,
            elapsed_s: 0.0,
            in_flight_mean: None,
            cpu: Cpu::default(),
            read: None,
            write: None,
            sync: None,
            errors: 0,
            error: None,
            loops: Loops::default(),
            samples: Samples::default(),
            files: None,
            files_per_s: None,
        }
    }

    /// MB/s of both directions added.
    pub fn mb_s(&self) -> f64 {
        [&self.read, &self.write]
            .iter()
            .filter_map(|d| d.as_ref().map(|d| d.mb_s))
            .sum()
    }

    /// The best of several runs of one job, with every run's figure in `loops`. A run
    /// with errors wins over clean ones, so a failure is never hidden by a retry.
    pub fn best_of(spec: &JobSpec, runs: Vec<JobReport>) -> JobReport {
        let loops = Loops::of(runs.iter().map(JobReport::mb_s).collect());
        let best = runs.into_iter().max_by(|a, b| {
            (a.errors > 0)
                .cmp(&(b.errors > 0))
                .then(a.mb_s().total_cmp(&b.mb_s()))
        });
        // No run at all only if `--loops 0` got through: an empty row, not a panic.
        let mut best = best.unwrap_or_else(|| JobReport::for_spec(spec, false));
        best.loops = loops;
        best
    }
}

/// Column headings of the job table.
const HEADINGS: [&str; 12] = [
    "job", "MB/s", "MiB/s", "IOPS", "mean", "p50", "p90", "p99", "p99.9", "CPU", "moved", "",
];

impl FileReport {
    /// What was measured how: size, directory, engine, direct or buffered, the cache
    /// (`reads`: some job reads, so a cache was kept or dropped) and the loops.
    pub fn header(&self, reads: bool) -> String {
        let what = match &self.write_tree {
            Some(t) => format!(
                "--write-tree: {} files of {} in a new directory in {}, blocking calls{}",
                t.files,
                format_size(t.file_size, BINARY),
                self.dir,
                match t.numjobs {
                    0 | 1 => String::new(),
                    n => format!(" on {n} threads, each in its own subdirectory"),
                }
            ),
            None => format!(
                "{} test file in {}, --io {}",
                format_size(self.file_size, BINARY),
                self.dir,
                self.backend
            ),
        };
        let first = format!(
            "{what}, {}{}{}{}\n",
            match (self.direct, self.direct_refused) {
                (true, _) => "O_DIRECT",
                (false, true) => "buffered (O_DIRECT refused by the file system)",
                (false, false) => "buffered",
            },
            // A write-only run reads nothing: there is no cache to keep or drop.
            match (reads, self.cached) {
                (false, _) => "",
                (true, true) => ", page cache kept (--cached)",
                (true, false) => ", page cache dropped before reads",
            },
            match self.loops {
                0 | 1 => String::new(),
                n => format!(", best of {n} loops"),
            },
            match self.pattern.name.as_str() {
                "random" => String::new(),
                name => format!(", --pattern {name}"),
            }
        );
        first + &self.meta.line()
    }

    /// One row per job and direction: bandwidth, IOPS, latency percentiles, CPU.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut rows = vec![HEADINGS.map(String::from).to_vec()];
        for job in &self.jobs {
            let both = job.read.is_some() && job.write.is_some();
            for (dir, figures) in [("read", &job.read), ("write", &job.write)] {
                let Some(f) = figures else { continue };
                let name = if both {
                    format!("{} ({dir})", job.name)
                } else {
                    job.name.clone()
                };
                let note = if dir == "write" {
                    job.fsync_note()
                } else {
                    String::new()
                };
                rows.push(vec![
                    name,
                    format!("{:.1}", f.mb_s),
                    format!("{:.1}", f.mib_s),
                    format!("{:.0}", f.iops),
                    duration(f.lat_ns.mean),
                    duration(f.lat_ns.p50 as f64),
                    duration(f.lat_ns.p90 as f64),
                    duration(f.lat_ns.p99 as f64),
                    duration(f.lat_ns.p99_9 as f64),
                    format!("{:.0}%", job.cpu.percent(job.elapsed_s)),
                    format_size(f.bytes, BINARY),
                    note,
                ]);
            }
            if let Some(sync) = &job.sync {
                // fio's `sync` lines: how long each fsync between the writes took.
                let lat = &sync.lat_ns;
                let per_s = sync.ios as f64 / job.elapsed_s.max(1e-9);
                rows.push(vec![
                    format!("{} (fsync)", job.name),
                    String::new(),
                    String::new(),
                    format!("{per_s:.0}"),
                    duration(lat.mean),
                    duration(lat.p50 as f64),
                    duration(lat.p90 as f64),
                    duration(lat.p99 as f64),
                    duration(lat.p99_9 as f64),
                    String::new(),
                    String::new(),
                    match sync.ios {
                        1 => "1 fsync".to_string(),
                        n => format!("{n} fsyncs"),
                    },
                ]);
            }
            if job.read.is_none() && job.write.is_none() {
                let mut row = vec![job.name.clone(), "failed".to_string()];
                row.resize(HEADINGS.len(), String::new());
                rows.push(row);
            }
        }
        out.push_str(&table(&rows));
        out
    }
}

/// What `spate bench --tree` reports.
#[derive(Debug, Serialize)]
pub struct TreeReport {
    pub tree: String,
    pub backend: &'static str,
    /// Version, time, host, kernel, CPU, file system and device of the run, as a run
    /// on a test file carries.
    pub meta: Meta,
    pub files: u64,
    pub bytes: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    pub files_per_s: f64,
    pub mb_s: f64,
    pub mib_s: f64,
    /// Per file, from the open returning to the last byte read.
    pub lat_ns: Option<Latency>,
    pub cpu: Cpu,
    /// MB/s and files/s every 100 ms.
    pub samples: Samples,
}

impl TreeReport {
    pub fn render(&self) -> String {
        let mut out = self.meta.line();
        out += &format!(
            "{} files, {} in {:.2} s, --io {}: {:.0} files/s, {:.1} MB/s ({:.1} MiB/s), \
             CPU {:.0}%{}\n",
            self.files,
            format_size(self.bytes, BINARY),
            self.elapsed_s,
            self.backend,
            self.files_per_s,
            self.mb_s,
            self.mib_s,
            self.cpu.percent(self.elapsed_s),
            match self.errors {
                0 => String::new(),
                n => format!(", {n} errors"),
            }
        );
        if let Some(l) = &self.lat_ns {
            let _ = writeln!(
                out,
                "per-file latency: mean {}, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
                duration(l.mean),
                duration(l.p50 as f64),
                duration(l.p90 as f64),
                duration(l.p99 as f64),
                duration(l.p99_9 as f64),
                duration(l.max as f64)
            );
        }
        out
    }
}

/// Nanoseconds as a short human duration: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
pub(super) fn duration(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// Left-aligned first column, right-aligned figures, two spaces between columns.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c == 0 || c + 1 == columns {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(850.0), "850ns");
        assert_eq!(duration(12_345.0), "12.3µs");
        assert_eq!(duration(4_560_000.0), "4.56ms");
        assert_eq!(duration(1_200_000_000.0), "1.20s");
    }

    #[test]
    fn table_aligns_columns() {
        let rows = [["job", "MB/s", ""], ["SEQ1M", "1234.5", "no fsync"]]
            .map(|r| r.map(String::from).to_vec())
            .to_vec();
        assert_eq!(
            table(&rows),
            "job      MB/s\nSEQ1M  1234.5  no fsync\n",
            "names and notes to the left, figures to the right"
        );
    }
}
