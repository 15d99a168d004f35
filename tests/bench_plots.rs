//! `spate bench --report FILE.html|FILE.svg`: a self-contained page or picture of a run,
//! of a tree read, or of saved results compared; and the samples in `--json` that let
//! a report be drawn again later.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

fn parse(text: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, options)
        .unwrap_or_else(|e| panic!("not well-formed ({e}):\n{text}"))
}

/// One chart of a report: its title, the labels of its legend and how many lines of
/// data it draws (plotters draws series and their legend swatches 2 px wide, axes 1 px).
#[derive(Debug)]
struct Chart {
    title: String,
    legend: BTreeSet<String>,
    lines: usize,
}

/// The charts of an HTML report (one `<svg>` per chart).
fn charts_of_html(doc: &roxmltree::Document) -> Vec<Chart> {
    doc.descendants()
        .filter(|n| n.has_tag_name("figure"))
        .map(|figure| {
            let svg = figure
                .children()
                .find(|n| n.tag_name().name() == "svg")
                .expect("a figure holds an svg");
            let texts: Vec<String> = svg
                .descendants()
                .filter(|n| n.tag_name().name() == "text")
                .filter_map(|n| n.text())
                .map(|t| t.trim().to_string())
                .collect();
            let lines = svg
                .descendants()
                .filter(|n| n.tag_name().name() == "polyline")
                .filter(|n| n.attribute("stroke-width") == Some("2"))
                .count();
            let title = figure
                .children()
                .find(|n| n.tag_name().name() == "figcaption")
                .and_then(|n| n.text())
                .unwrap_or_default()
                .to_string();
            Chart {
                title,
                legend: texts.into_iter().collect(),
                lines,
            }
        })
        .collect()
}

/// Nothing in the page is fetched: no script, no stylesheet link, no http(s) source.
fn assert_self_contained(doc: &roxmltree::Document) {
    for node in doc.descendants().filter(|n| n.is_element()) {
        let name = node.tag_name().name();
        assert!(
            !matches!(name, "script" | "link" | "iframe" | "img" | "object"),
            "<{name}> in the report"
        );
        for attr in node.attributes() {
            if matches!(attr.name(), "src" | "href") {
                let v = attr.value();
                assert!(
                    !v.starts_with("http://") && !v.starts_with("https://") && !v.starts_with("//"),
                    "{}={v}",
                    attr.name()
                );
            }
        }
    }
}

fn job_names(report: &Value) -> Vec<String> {
    report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts that `chart` draws exactly one line per name, each named in its legend.
fn assert_one_series_each(chart: &Chart, names: &[String]) {
    for name in names {
        assert!(
            chart.legend.contains(name),
            "{}: no series for {name}: {:?}",
            chart.title,
            chart.legend
        );
    }
    assert_eq!(
        chart.lines,
        2 * names.len(),
        "{}: a line and a legend swatch per series",
        chart.title
    );
}

#[test]
fn html_report_of_the_preset_has_the_grid_and_a_series_per_job() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_of(&spate_bench(
        dir.path(),
        &[
            "--json",
            "--size",
            "4M",
            "--runtime",
            "0.3",
            "--report",
            "run.html",
        ],
    ));
    let names = job_names(&report);
    assert_eq!(names.len(), 8);
    let text = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
    let doc = parse(&text);
    assert_self_contained(&doc);
    // The grid: one row per test, its read and write figures as the JSON has them.
    let rows: Vec<Vec<String>> = doc
        .descendants()
        .filter(|n| n.has_tag_name("tr"))
        .skip(1)
        .map(|tr| {
            tr.children()
                .filter(|c| c.is_element())
                .map(|c| c.text().unwrap_or("").to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (row, pair) in rows
        .iter()
        .zip(report["jobs"].as_array().unwrap().chunks(2))
    {
        assert_eq!(
            row[0],
            pair[0]["name"].as_str().unwrap().trim_end_matches(" read")
        );
        assert_eq!(
            row[1],
            format!("{:.1}", pair[0]["read"]["mb_s"].as_f64().unwrap())
        );
        assert_eq!(
            row[5],
            format!("{:.1}", pair[1]["write"]["mb_s"].as_f64().unwrap())
        );
    }
    let charts = charts_of_html(&doc);
    let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["MB/s every 100 ms", "latency percentiles"]);
    assert_one_series_each(&charts[0], &names);
    assert_one_series_each(&charts[1], &names);
    // Nothing left behind but the report: no test file, no temporary report.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["run.html"]);
}

#[test]
fn json_samples_add_up_to_the_bytes_moved() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_of(&spate_bench(
        dir.path(),
        &[
            "--json", "--rw", "write", "--bs", "64k", "--size", "32M", "--fsync", "4",
        ],
    ));
    let job = &report["jobs"][0];
    let samples = &job["samples"];
    assert_eq!(samples["interval_s"], 0.1);
    let t: Vec<f64> = samples["t_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mb_s: Vec<f64> = samples["mb_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(t.len(), mb_s.len());
    assert!(!t.is_empty(), "{samples}");
    assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
    // Every interval's rate times its length, added up, is every byte the job wrote.
    let mut prev = 0.0;
    let mut bytes = 0.0;
    for (t, rate) in t.iter().zip(&mb_s) {
        bytes += (t - prev) * rate * 1e6;
        prev = *t;
    }
    let written = job["write"]["bytes"].as_f64().unwrap();
    assert!(
        (bytes - written).abs() < 1.0,
        "samples add up to {bytes}, the job wrote {written}"
    );
    assert!(
        (prev - job["elapsed_s"].as_f64().unwrap()).abs() < 0.05,
        "the last sample ends with the job"
    );
    // The latency curve rises with the percentile and ends at the maximum.
    let curve = job["write"]["lat_ns"]["percentiles"].as_array().unwrap();
    assert!(curve.len() >= 2, "{curve:?}");
    let points: Vec<(f64, f64)> = curve
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    assert!(
        points
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(points.last().unwrap().0, 100.0);
    assert_eq!(
        points.last().unwrap().1,
        job["write"]["lat_ns"]["max"].as_f64().unwrap()
    );
}

#[test]
fn saved_json_redraws_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = spate_bench(
        dir.path(),
        &[
            "--json",
            "--rw",
            "randrw",
            "--bs",
            "4k",
            "--iodepth",
            "4",
            "--size",
            "8M",
            "--report",
            "live.html",
        ],
    );
    std::fs::write(dir.path().join("run.json"), &out.stdout).unwrap();
    json_of(&out);
    let again = spate_bench(
        dir.path(),
        &["--compare", "run.json", "--report", "again.html"],
    );
    assert!(again.status.success(), "{}", stderr_of(&again));
    let live = std::fs::read_to_string(dir.path().join("live.html")).unwrap();
    let redrawn = std::fs::read_to_string(dir.path().join("again.html")).unwrap();
    assert_eq!(live, redrawn, "a report drawn from --json is the run's own");
    let doc = parse(&live);
    let charts = charts_of_html(&doc);
    // randrw: one line over time, a latency curve per direction.
    assert_one_series_each(&charts[0], &["randrw 4K Q4T1".to_string()]);
    assert_one_series_each(
        &charts[1],
        &[
            "randrw 4K Q4T1 (read)".to_string(),
            "randrw 4K Q4T1 (write)".to_string(),
        ],
    );
}

#[test]
fn compare_report_holds_the_ratios_and_each_results_series() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.json", "b.json"] {
        let out = spate_bench(
            dir.path(),
            &["--json", "--rw", "read", "--bs", "64k", "--size", "8M"],
        );
        json_of(&out);
        std::fs::write(dir.path().join(name), &out.stdout).unwrap();
    }
    let out = spate_bench(
        dir.path(),
        &["--compare", "a.json", "b.json", "--report", "c.html"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mb_s = |name: &str| -> f64 {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(name)).unwrap()).unwrap();
        doc["jobs"][0]["read"]["mb_s"].as_f64().unwrap()
    };
    let (a, b) = (mb_s("a.json"), mb_s("b.json"));
    let text = std::fs::read_to_string(dir.path().join("c.html")).unwrap();
    let doc = parse(&text);
    assert_self_contained(&doc);
    let cells: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("td") || n.has_tag_name("th"))
        .map(|n| n.text().unwrap_or("").to_string())
        .collect();
    assert!(cells.contains(&"B/A".to_string()), "{cells:?}");
    let row = ["read 64K Q1T1", "read"]
        .map(String::from)
        .into_iter()
        .chain([
            format!("{a:.1}"),
            format!("{b:.1}"),
            format!("{:.2}", b / a),
        ])
        .collect::<Vec<_>>();
    assert!(
        cells.windows(5).any(|w| w == row.as_slice()),
        "{row:?} not in {cells:?}"
    );
    let charts = charts_of_html(&doc);
    let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "MB/s every 100 ms of A",
            "latency percentiles of A",
            "MB/s every 100 ms of B",
            "latency percentiles of B"
        ]
    );
    for chart in &charts {
        assert_one_series_each(chart, &["read 64K Q1T1".to_string()]);
    }
}

#[test]
fn svg_report_of_a_tree_shows_files_and_bytes_over_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    make_tree(&root, false);
    let report = json_of(&spate_bench(
        dir.path(),
        &["--json", "--tree", "tree", "--report", "tree.svg"],
    ));
    // --tree carries the metadata a run on a test file does.
    assert_eq!(report["meta"]["spate_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        report["meta"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    let files: Vec<f64> = report["samples"]["files_per_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(!files.is_empty());
    let text = std::fs::read_to_string(dir.path().join("tree.svg")).unwrap();
    let doc = parse(&text);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    for title in [
        "MB/s every 100 ms",
        "files/s every 100 ms",
        "latency percentiles",
    ] {
        assert!(
            texts.iter().any(|t| t == title),
            "{title} missing: {texts:?}"
        );
    }
    // A series named "tree" in each of the three charts, and nothing else drawn.
    assert_eq!(
        texts.iter().filter(|t| *t == "tree").count(),
        3,
        "{texts:?}"
    );
    let lines = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline")
        .filter(|n| n.attribute("stroke-width") == Some("2"))
        .count();
    assert_eq!(lines, 6);
    // The text report opens with the same metadata line as a file run's second line.
    let text = spate_bench(dir.path(), &["--tree", "tree"]);
    let first = String::from_utf8(text.stdout).unwrap();
    assert!(
        first.starts_with(&format!("spate {} on ", env!("CARGO_PKG_VERSION"))),
        "{first}"
    );
}

#[test]
fn report_names_say_html_or_svg_and_unwritable_ones_fail_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = spate_bench(
        dir.path(),
        &["--rw", "read", "--size", "1M", "--report", "r.png"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("spate: r.png: --report writes FILE.html or FILE.svg"),
        "{err}"
    );
    // A directory nobody may write to: refused before any job runs.
    open_to_all(dir.path());
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let out = as_nobody(
        dir.path(),
        &[
            "bench",
            "--rw",
            "read",
            "--size",
            "1M",
            "--report",
            "locked/r.html",
            ".",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("spate: locked/r.html: cannot create: Permission denied"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    assert!(out.stdout.is_empty(), "no job ran");
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}
