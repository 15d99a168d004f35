//! Saved results read back: spate's `--json` reports and fio's JSON, as rows of one
//! shape, shown as the read|write grid (`--fio-json`) or side by side with ratios
//! (`--compare`), whichever machine or tool made them.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
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
    /// The latency percentile curve: (percentile, ns), empty when the result has none.
    pub curve: Vec<(f64, f64)>,
}

/// Throughput over time of one job, as `--json` saves it.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// End of each interval, seconds since the job started.
    pub t_s: Vec<f64>,
    pub mb_s: Vec<f64>,
    /// Tree workloads.
    pub files_per_s: Option<Vec<f64>>,
}

/// One job: its name and what it moved each way.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub name: String,
    pub read: Option<Figures>,
    pub write: Option<Figures>,
    /// Throughput every 100 ms; `None` for results without it (fio's).
    pub samples: Option<Series>,
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
    spate_results(&doc).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: not a spate bench --json report or fio JSON result (no jobs)",
            path.display()
        )
    })
}

/// A spate `--json` report (of a test file or of `--tree`) as rows; `None` when `doc`
/// is neither.
pub fn spate_results(doc: &Value) -> Option<Results> {
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
    if let Some(tree) = doc["tree"].as_str() {
        // A tree read: one row, files/s where a job has IOPS.
        let _ = write!(source, ", --tree {tree}");
        let mut figures = figures(&doc["lat_ns"], doc["mb_s"].as_f64()?);
        if let Some(f) = &mut figures {
            f.iops = doc["files_per_s"].as_f64().unwrap_or(0.0);
        }
        return Some(Results {
            source,
            jobs: vec![JobRow {
                name: "tree".into(),
                read: figures,
                write: None,
                samples: series(&doc["samples"]),
            }],
        });
    }
    let jobs = doc["jobs"].as_array()?;
    Some(Results {
        source,
        jobs: jobs
            .iter()
            .map(|j| JobRow {
                name: j["name"].as_str().unwrap_or("?").to_string(),
                read: j["read"]["mb_s"]
                    .as_f64()
                    .and_then(|mb_s| figures(&j["read"]["lat_ns"], mb_s))
                    .map(|f| Figures {
                        iops: j["read"]["iops"].as_f64().unwrap_or(0.0),
                        ..f
                    }),
                write: j["write"]["mb_s"]
                    .as_f64()
                    .and_then(|mb_s| figures(&j["write"]["lat_ns"], mb_s))
                    .map(|f| Figures {
                        iops: j["write"]["iops"].as_f64().unwrap_or(0.0),
                        ..f
                    }),
                samples: series(&j["samples"]),
            })
            .collect(),
    })
}

/// Figures from a spate `lat_ns` object and a bandwidth.
fn figures(lat: &Value, mb_s: f64) -> Option<Figures> {
    Some(Figures {
        mb_s,
        iops: 0.0,
        mean_ns: lat["mean"].as_f64().unwrap_or(0.0),
        p99_ns: lat["p99"].as_f64(),
        curve: lat["percentiles"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
            .collect(),
    })
}

/// A spate `samples` object; `None` when it is missing or empty.
fn series(samples: &Value) -> Option<Series> {
    let floats =
        |v: &Value| -> Option<Vec<f64>> { v.as_array()?.iter().map(Value::as_f64).collect() };
    let t_s = floats(&samples["t_s"])?;
    let mb_s = floats(&samples["mb_s"])?;
    (!t_s.is_empty() && t_s.len() == mb_s.len()).then(|| Series {
        files_per_s: floats(&samples["files_per_s"]).filter(|f| f.len() == t_s.len()),
        t_s,
        mb_s,
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

/// A table for the report page: headings and rows of cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The read|write grid of one result as a table.
pub fn grid_table(results: &Results) -> Table {
    let side = |f: &Option<Figures>| match f {
        Some(f) => vec![
            format!("{:.1}", f.mb_s),
            format!("{:.0}", f.iops),
            duration(f.mean_ns),
            f.p99_ns.map(duration).unwrap_or_default(),
        ],
        None => vec![String::new(); 4],
    };
    Table {
        head: [
            "test",
            "read MB/s",
            "IOPS",
            "mean",
            "p99",
            "write MB/s",
            "IOPS",
            "mean",
            "p99",
        ]
        .map(String::from)
        .to_vec(),
        rows: cells(results)
            .iter()
            .map(|c| {
                let mut row = vec![c.test.clone()];
                row.extend(side(&c.read));
                row.extend(side(&c.write));
                row
            })
            .collect(),
    }
}

/// `A`, `B`, … `Z`, `A1`, …: the names results go by side by side.
pub fn letters(n: usize) -> Vec<String> {
    (0..n)
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
        .collect()
}

/// Several results side by side as a table: per test and direction, each one's MB/s
/// and its ratio to the first (`B/A`); `-` where a result lacks the test.
pub fn compare_table(all: &[Results]) -> Table {
    let letters = letters(all.len());
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
    let mut head = vec!["test".to_string(), "dir".to_string()];
    for (i, l) in letters.iter().enumerate() {
        head.push(format!("{l} MB/s"));
        if i > 0 {
            head.push(format!("{l}/A"));
        }
    }
    let mut rows = Vec::new();
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
            let mut row = vec![test.clone(), dir.to_string()];
            for (i, f) in figures.iter().enumerate() {
                row.push(f.map_or("-".into(), |v| format!("{v:.1}")));
                if i > 0 {
                    row.push(match (figures[0], f) {
                        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
                        _ => "-".into(),
                    });
                }
            }
            rows.push(row);
        }
    }
    Table { head, rows }
}

/// Several results side by side: per test and direction, each one's MB/s and its
/// ratio to the first (`B/A`: above 1 is faster than A). A test some result lacks
/// shows `-`.
pub fn compare(all: &[Results]) -> String {
    let mut out = String::new();
    for (letter, r) in letters(all.len()).iter().zip(all) {
        let _ = writeln!(out, "{letter}: {}", r.source);
    }
    let table = compare_table(all);
    let width = table
        .rows
        .iter()
        .map(|r| r[0].len())
        .max()
        .unwrap_or(4)
        .max(4);
    // test, dir, A's MB/s, then each further result's MB/s and its ratio to A.
    let line = |cells: &[String]| {
        let mut parts = vec![format!("{:<width$}", cells[0]), format!("{:<5}", cells[1])];
        for (i, cell) in cells[2..].iter().enumerate() {
            let ratio = i > 0 && i % 2 == 0;
            parts.push(if ratio {
                format!("{cell:>6}")
            } else {
                format!("{cell:>10}")
            });
        }
        let mut line = parts.join("  ").trim_end().to_string();
        line.push('\n');
        line
    };
    out.push_str(&line(&table.head));
    for row in &table.rows {
        out.push_str(&line(row));
    }
    out
}
