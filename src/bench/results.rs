//! Saved results read back: spate's `--json` reports and fio's JSON, as rows of one
//! shape, shown as the read|write grid (`--fio-json`) or side by side with ratios
//! (`--compare`), whichever machine or tool made them.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::Value;

use super::fio;
use super::report::duration;

/// One direction of one job.
#[derive(Debug, Clone)]
pub struct Figures {
    /// 10^6 bytes per second.
    pub mb_s: f64,
    pub iops: f64,
    /// Mean latency per operation, nanoseconds.
    pub mean_ns: f64,
    pub p99_ns: Option<f64>,
}

/// One job: its name and what it moved each way.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub name: String,
    pub read: Option<Figures>,
    pub write: Option<Figures>,
}

/// A saved result: where it came from, in a few words, and its jobs.
#[derive(Debug, Clone)]
pub struct Results {
    pub source: String,
    pub jobs: Vec<JobRow>,
}

/// Reads a spate `--json` report or a fio `--output-format=json` result.
pub fn load(path: &Path) -> Result<Results> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::error::describe_io(&e)))?;
    // fio prints notes before its JSON on some versions ("note: both iodepth >= 1 and
    // synchronous I/O engine are selected..."): start at the first brace.
    let start = text.find('{').unwrap_or(0);
    let doc: Value = serde_json::from_str(&text[start..]).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a spate bench --json report or fio JSON result ({e})",
            path.display()
        )
    })?;
    if fio::is_fio(&doc) {
        return Ok(fio::results(&doc));
    }
    let Some(jobs) = doc["jobs"].as_array() else {
        bail!(
            "{}: not a spate bench --json report or fio JSON result (no jobs)",
            path.display()
        );
    };
    let figures = |d: &Value| {
        Some(Figures {
            mb_s: d["mb_s"].as_f64()?,
            iops: d["iops"].as_f64().unwrap_or(0.0),
            mean_ns: d["lat_ns"]["mean"].as_f64().unwrap_or(0.0),
            p99_ns: d["lat_ns"]["p99"].as_f64(),
        })
    };
    let meta = &doc["meta"];
    let mut source = format!(
        "spate {} on {}, {}",
        meta["spate_version"].as_str().unwrap_or("?"),
        meta["hostname"].as_str().unwrap_or("?"),
        meta["timestamp"].as_str().unwrap_or("?")
    );
    if let Some(fs) = meta["fs"]["type"].as_str() {
        let _ = write!(
            source,
            ", {fs} {}",
            meta["fs"]["source"].as_str().unwrap_or("")
        );
    }
    if doc["direct"] == true {
        source.push_str(", O_DIRECT");
    }
    Ok(Results {
        source,
        jobs: jobs
            .iter()
            .map(|j| JobRow {
                name: j["name"].as_str().unwrap_or("?").to_string(),
                read: figures(&j["read"]),
                write: figures(&j["write"]),
            })
            .collect(),
    })
}

/// A test and direction of a grid: `SEQ1M Q8T1` + read. A job named `… read` or
/// `… write` (the preset's) shares its row with its partner.
#[derive(Debug, Clone)]
struct Cell {
    test: String,
    read: Option<Figures>,
    write: Option<Figures>,
}

fn cells(results: &Results) -> Vec<Cell> {
    let mut out: Vec<Cell> = Vec::new();
    for job in &results.jobs {
        let test = job
            .name
            .strip_suffix(" read")
            .or_else(|| job.name.strip_suffix(" write"))
            .unwrap_or(&job.name);
        let at = match out.iter().position(|c| c.test == test) {
            Some(at) => at,
            None => {
                out.push(Cell {
                    test: test.to_string(),
                    read: None,
                    write: None,
                });
                out.len() - 1
            }
        };
        if job.read.is_some() {
            out[at].read.clone_from(&job.read);
        }
        if job.write.is_some() {
            out[at].write.clone_from(&job.write);
        }
    }
    out
}

/// The read|write grid of saved results, as a live run prints it.
pub fn grid(results: &Results) -> String {
    let cells = cells(results);
    let width = cells.iter().map(|c| c.test.len()).max().unwrap_or(4).max(4);
    let side = |f: &Option<Figures>| match f {
        Some(f) => format!(
            "{:>10.1} {:>8.0} {:>8} {:>8}",
            f.mb_s,
            f.iops,
            duration(f.mean_ns),
            f.p99_ns.map(duration).unwrap_or_default()
        ),
        None => format!("{:>10} {:>8} {:>8} {:>8}", "", "", "", ""),
    };
    let mut out = format!("{}\n", results.source);
    let _ = writeln!(
        out,
        "{:<width$} | {:>10} {:>8} {:>8} {:>8} | {:>10} {:>8} {:>8} {:>8}",
        "test", "read MB/s", "IOPS", "mean", "p99", "write MB/s", "IOPS", "mean", "p99"
    );
    for c in &cells {
        let line = format!(
            "{:<width$} | {} | {}",
            c.test,
            side(&c.read),
            side(&c.write)
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Several results side by side: per test and direction, each one's MB/s and its
/// ratio to the first (`B/A`: above 1 is faster than A). A test some result lacks
/// shows `-`.
pub fn compare(all: &[Results]) -> String {
    let letters: Vec<String> = (0..all.len())
        .map(|i| {
            char::from_u32('A' as u32 + (i % 26) as u32)
                .map(String::from)
                .unwrap_or_default()
                + &if i >= 26 {
                    (i / 26).to_string()
                } else {
                    String::new()
                }
        })
        .collect();
    let mut out = String::new();
    for (letter, r) in letters.iter().zip(all) {
        let _ = writeln!(out, "{letter}: {}", r.source);
    }
    let grids: Vec<Vec<Cell>> = all.iter().map(cells).collect();
    // Tests in the order the first result has them, then any only others have.
    let mut tests: Vec<String> = Vec::new();
    for g in &grids {
        for c in g {
            if !tests.contains(&c.test) {
                tests.push(c.test.clone());
            }
        }
    }
    let width = tests.iter().map(String::len).max().unwrap_or(4).max(4);
    let mut rows = vec![{
        let mut h = vec![format!("{:<width$}", "test"), "dir  ".to_string()];
        for (i, l) in letters.iter().enumerate() {
            h.push(format!("{:>10}", format!("{l} MB/s")));
            if i > 0 {
                h.push(format!("{:>6}", format!("{l}/A")));
            }
        }
        h.join("  ")
    }];
    for test in &tests {
        for dir in ["read", "write"] {
            let figures: Vec<Option<f64>> = grids
                .iter()
                .map(|g| {
                    let c = g.iter().find(|c| &c.test == test)?;
                    let f = if dir == "read" { &c.read } else { &c.write };
                    f.as_ref().map(|f| f.mb_s)
                })
                .collect();
            if figures.iter().all(Option::is_none) {
                continue;
            }
            let mut row = vec![format!("{test:<width$}"), format!("{dir:<5}")];
            for (i, f) in figures.iter().enumerate() {
                row.push(match f {
                    Some(v) => format!("{v:>10.1}"),
                    None => format!("{:>10}", "-"),
                });
                if i > 0 {
                    row.push(match (figures[0], f) {
                        (Some(a), Some(b)) if a > 0.0 => format!("{:>6.2}", b / a),
                        _ => format!("{:>6}", "-"),
                    });
                }
            }
            rows.push(row.join("  "));
        }
    }
    for r in rows {
        out.push_str(r.trim_end());
        out.push('\n');
    }
    out
}
