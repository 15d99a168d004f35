//! Results as each job finishes: the header first, then (the preset) one row of the
//! read|write grid as soon as a test's write is done, so a long run shows its progress
//! on a terminal and in a log alike, and Ctrl-C loses only the test that was running.
//! With `--json` the report is printed once at the end, or at SIGINT/SIGTERM with the
//! jobs that finished and `"interrupted": true`.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};

use super::report::{DirReport, FileReport, JobReport, duration};
use crate::output::Cleanup;

/// The report of a run on a test file, printed as it grows.
pub struct Stream {
    shared: Arc<Mutex<Shared>>,
}

struct Shared {
    json: bool,
    grid: bool,
    report: FileReport,
    /// The JSON report has been printed (at the end, or by the signal thread).
    printed: bool,
}

impl Stream {
    /// Prints the header (text mode) and arranges for the finished jobs to be printed
    /// if the run is interrupted. `reads`: some job reads (the header names the cache).
    pub fn start(
        json: bool,
        grid: bool,
        report: FileReport,
        reads: bool,
        cleanup: &Arc<Cleanup>,
    ) -> Result<Stream> {
        if !json {
            let mut head = report.header(reads);
            if grid {
                head.push_str(&grid_heading());
            }
            emit(&head)?;
        }
        let shared = Arc::new(Mutex::new(Shared {
            json,
            grid,
            report,
            printed: false,
        }));
        let on_signal = Arc::clone(&shared);
        cleanup.on_interrupt(Box::new(move || {
            let mut shared = lock(&on_signal);
            shared.report.interrupted = true;
            // Text rows are out already; a test whose read finished but not its write
            // still gets its half row.
            let _ = shared.flush_pending_row();
            if shared.json && !shared.printed {
                shared.printed = true;
                let _ = emit_json(&shared.report);
            }
        }));
        Ok(Stream { shared })
    }

    /// Adds a finished job; in text mode its row goes out now (a grid row once the
    /// test's write is done too).
    pub fn job_done(&self, job: JobReport) -> Result<()> {
        let mut shared = lock(&self.shared);
        shared.report.jobs.push(job);
        if shared.json || !shared.grid {
            return Ok(());
        }
        let n = shared.report.jobs.len();
        if n.is_multiple_of(2) {
            let row = grid_row(&shared.report.jobs[n - 2], Some(&shared.report.jobs[n - 1]));
            emit(&row)?;
        }
        Ok(())
    }

    /// Prints what is left (the table, or the JSON report); whether no job had I/O
    /// errors, and the report as `--json` gives it.
    pub fn finish(self) -> Result<(bool, serde_json::Value)> {
        let mut shared = lock(&self.shared);
        shared.flush_pending_row()?;
        if shared.json {
            shared.printed = true;
            emit_json(&shared.report)?;
        } else if !shared.grid {
            emit(&shared.report.table())?;
        }
        let clean = shared.report.jobs.iter().all(|j| j.errors == 0);
        Ok((clean, serde_json::to_value(&shared.report)?))
    }
}

impl Shared {
    /// A grid row whose write never came (interrupted, or an odd job count).
    fn flush_pending_row(&mut self) -> Result<()> {
        let jobs = &self.report.jobs;
        if self.json || !self.grid || jobs.len().is_multiple_of(2) {
            return Ok(());
        }
        let row = grid_row(&jobs[jobs.len() - 1], None);
        // Once only: the signal thread may come after `finish`.
        self.grid = false;
        emit(&row)
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes text to standard output now (a pipe gets each row when it is known).
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}

fn emit_json(report: &FileReport) -> Result<()> {
    emit(&(serde_json::to_string_pretty(report)? + "\n"))
}

/// Widths of the grid's columns: test, then per direction MB/s, IOPS, mean, p99.
const TEST_WIDTH: usize = 11;
const FIGURES: [(&str, usize); 4] = [("MB/s", 10), ("IOPS", 8), ("mean", 8), ("p99", 8)];

fn grid_heading() -> String {
    let side = |dir: &str| {
        FIGURES
            .iter()
            .enumerate()
            .map(|(i, (name, width))| {
                let name = if i == 0 {
                    format!("{dir} {name}")
                } else {
                    name.to_string()
                };
                format!("{name:>width$}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{:<TEST_WIDTH$} | {} | {}\n",
        "test",
        side("read"),
        side("write")
    )
}

/// One test's row: its read, then its write (blank until it ran, `failed` when it
/// moved nothing).
fn grid_row(read: &JobReport, write: Option<&JobReport>) -> String {
    let test = read
        .name
        .strip_suffix(" read")
        .unwrap_or(&read.name)
        .to_string();
    format!(
        "{test:<TEST_WIDTH$} | {} | {}\n",
        grid_cells(Some(read), read.read.as_ref()),
        grid_cells(write, write.and_then(|w| w.write.as_ref())),
    )
    .trim_end()
    .to_string()
        + "\n"
}

fn grid_cells(job: Option<&JobReport>, figures: Option<&DirReport>) -> String {
    let cells: [String; 4] = match (job, figures) {
        (_, Some(f)) => [
            format!("{:.1}", f.mb_s),
            format!("{:.0}", f.iops),
            duration(f.lat_ns.mean),
            duration(f.lat_ns.p99 as f64),
        ],
        (Some(_), None) => ["failed".into(), "".into(), "".into(), "".into()],
        (None, None) => Default::default(),
    };
    cells
        .iter()
        .zip(FIGURES)
        .map(|(cell, (_, width))| format!("{cell:>width$}"))
        .collect::<Vec<_>>()
        .join(" ")
}
