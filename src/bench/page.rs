//! `--report FILE.html|FILE.svg`: the pictures of a run or of saved results, in one
//! self-contained file (styles and charts inline, nothing fetched, no script). The page
//! is drawn from the same rows as `--compare`, so a run's `--json` redraws it later:
//! `spate bench --compare run.json --report run.html`.
//!
//! `.html`: the grid (or the comparison with ratios) as a table, then the charts as
//! inline SVG. `.svg`: the charts one under another in a single SVG.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};

use super::plot::{self, Chart, Kind, Line};
use super::results::{self, Results, Table};
use crate::output::{Cleanup, Output};

/// The kinds of report file, by the name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Svg,
}

impl Format {
    /// The format `path` names (`.html`, `.htm` or `.svg`, any case).
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("html" | "htm") => Ok(Format::Html),
            Some("svg") => Ok(Format::Svg),
            _ => bail!(
                "{}: --report writes FILE.html or FILE.svg (the format is taken from the name)",
                path.display()
            ),
        }
    }
}

/// Creates the report file `path` under a temporary name, before a run, so that a name
/// that cannot be written fails now and not after the benchmark.
pub fn create(path: &Path, cleanup: &Arc<Cleanup>) -> Result<(Format, Output)> {
    let format = Format::of(path)?;
    Ok((format, Output::open(Some(path), cleanup)?))
}

/// Writes the report of `all` (one result: a run; several: a comparison) into `out`
/// and renames it into place.
pub fn write((format, mut out): (Format, Output), all: &[Results]) -> Result<()> {
    let text = match format {
        Format::Html => html(all)?,
        Format::Svg => {
            let title = sources(all).join("; ");
            plot::svg_of_all(&title, &charts(all))?
        }
    };
    out.write_all(text.as_bytes())?;
    out.commit()
}

/// `A: source` per result, or just the source of a single one.
fn sources(all: &[Results]) -> Vec<String> {
    match all {
        [one] => vec![one.source.clone()],
        _ => results::letters(all.len())
            .iter()
            .zip(all)
            .map(|(l, r)| format!("{l}: {}", r.source))
            .collect(),
    }
}

/// The charts of every result: throughput over time (MB/s, and files/s for tree
/// workloads) with a line per job, and latency percentiles with a line per job and
/// direction. A chart with nothing to draw (fio's results have no time series) is left
/// out.
pub fn charts(all: &[Results]) -> Vec<Chart> {
    let letters = results::letters(all.len());
    let mut charts = Vec::new();
    for (letter, r) in letters.iter().zip(all) {
        let of = if all.len() > 1 {
            format!(" of {letter}")
        } else {
            String::new()
        };
        let over_time = |pick: &dyn Fn(&results::Series) -> Option<Vec<f64>>| -> Vec<Line> {
            r.jobs
                .iter()
                .filter_map(|job| {
                    let s = job.samples.as_ref()?;
                    Some(Line {
                        label: job.name.clone(),
                        points: s.t_s.iter().copied().zip(pick(s)?).collect(),
                    })
                })
                .collect()
        };
        let mb_s = over_time(&|s| Some(s.mb_s.clone()));
        if !mb_s.is_empty() {
            charts.push(Chart {
                title: format!("MB/s every 100 ms{of}"),
                kind: Kind::MbPerSec,
                lines: mb_s,
            });
        }
        let files = over_time(&|s| s.files_per_s.clone());
        if !files.is_empty() {
            charts.push(Chart {
                title: format!("files/s every 100 ms{of}"),
                kind: Kind::FilesPerSec,
                lines: files,
            });
        }
        let mut latency = Vec::new();
        for job in &r.jobs {
            for (dir, figures) in [("read", &job.read), ("write", &job.write)] {
                let Some(f) = figures.as_ref().filter(|f| !f.curve.is_empty()) else {
                    continue;
                };
                // The preset's jobs say their direction in their name already.
                let label = if job.name.ends_with(dir) || job.write.is_none() && dir == "read" {
                    job.name.clone()
                } else {
                    format!("{} ({dir})", job.name)
                };
                latency.push(Line {
                    label,
                    points: f.curve.clone(),
                });
            }
        }
        if !latency.is_empty() {
            charts.push(Chart {
                title: format!("latency percentiles{of}"),
                kind: Kind::Latency,
                lines: latency,
            });
        }
    }
    charts
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_table(table: &Table) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in &table.head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let tag = if i == 0 { "th" } else { "td" };
            let _ = write!(out, "<{tag}>{}</{tag}>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}\
th,td{border:1px solid #ccc;padding:.25em .6em}\
td{text-align:right;font-variant-numeric:tabular-nums}\
tbody th{text-align:left;font-weight:normal}\
figure{margin:1.5em 0}svg{max-width:100%;height:auto}";

/// One page: the sources, the grid or comparison, then every chart inline. Written
/// as XHTML-compatible markup (every element closed), so XML tools read it too.
fn html(all: &[Results]) -> Result<String> {
    let mut out = String::new();
    let title = match all {
        [_] => "spate bench".to_string(),
        _ => format!("spate bench: {} results compared", all.len()),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    out.push_str("<ul class=\"sources\">\n");
    for source in sources(all) {
        let _ = writeln!(out, "<li>{}</li>", escape(&source));
    }
    out.push_str("</ul>\n");
    out.push_str(&match all {
        [one] => html_table(&results::grid_table(one)),
        _ => html_table(&results::compare_table(all)),
    });
    for chart in charts(all) {
        let _ = write!(
            out,
            "<figure class=\"chart\">\n{}<figcaption>{}</figcaption>\n</figure>\n",
            plot::svg(&chart)?,
            escape(&chart.title)
        );
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}
