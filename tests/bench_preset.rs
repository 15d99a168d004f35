//! `spate bench`'s CrystalDiskMark preset: O_DIRECT by default (buffered where the file
//! system refuses it), `--loops`, the read|write grid printed row by row, and the rows
//! that finished kept on Ctrl-C.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

const TESTS: [&str; 4] = ["SEQ1M Q8T1", "SEQ1M Q1T1", "RND4K Q32T1", "RND4K Q1T1"];

#[test]
fn preset_uses_direct_io_unless_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let direct = json_of(&spate_bench(
        dir.path(),
        &["--json", "--size", "4M", "--runtime", "0.2"],
    ));
    assert_eq!(direct["direct"], true, "{direct}");
    assert_eq!(direct["direct_refused"], false);
    let names: Vec<&str> = direct["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = TESTS
        .iter()
        .flat_map(|t| [format!("{t} read"), format!("{t} write")])
        .collect();
    assert_eq!(names, expected, "each test's read, then its write");
    let buffered = json_of(&spate_bench(
        dir.path(),
        &["--json", "--buffered", "--size", "4M", "--runtime", "0.2"],
    ));
    assert_eq!(buffered["direct"], false, "{buffered}");
    assert_eq!(buffered["direct_refused"], false);
    // A single job stays buffered unless asked, as fio's direct=0.
    let one = json_of(&spate_bench(
        dir.path(),
        &["--json", "--rw", "read", "--size", "1M"],
    ));
    assert_eq!(one["direct"], false);
    let out = spate_bench(dir.path(), &["--rw", "read", "--buffered", "--size", "1M"]);
    assert_eq!(out.status.code(), Some(2), "--buffered is the preset's");
    assert!(entries(dir.path()).is_empty());
}

/// ramfs refuses O_DIRECT: the preset says so in one line and runs buffered, and the
/// header and JSON say what it ran with. (An explicit --direct still fails there:
/// tests/bench.rs.)
#[test]
fn preset_falls_back_to_buffered_where_direct_io_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "ramfs", "ramfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mounting a ramfs needs root (CI runs as root)");
    let json = spate_bench(dir.path(), &["--json", "--size", "2M", "--runtime", "0.1"]);
    let text = spate_bench(dir.path(), &["--size", "2M", "--runtime", "0.1"]);
    let left = entries(dir.path());
    let _ = Command::new("umount").arg(dir.path()).status();
    assert!(left.is_empty(), "test file left on the ramfs: {left:?}");
    let report = json_of(&json);
    assert_eq!(report["direct"], false, "{report}");
    assert_eq!(report["direct_refused"], true);
    assert_eq!(report["jobs"].as_array().unwrap().len(), 8);
    let notice = stderr_of(&json);
    assert_eq!(notice.lines().count(), 1, "{notice}");
    assert!(
        notice.starts_with("spate: ") && notice.contains("refuses O_DIRECT; running buffered"),
        "{notice}"
    );
    assert!(text.status.success(), "{}", stderr_of(&text));
    let head = String::from_utf8(text.stdout).unwrap();
    assert!(
        head.lines()
            .next()
            .unwrap()
            .contains("buffered (O_DIRECT refused by the file system)"),
        "{head}"
    );
}

#[test]
fn loops_report_the_best_run_and_the_median() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_of(&spate_bench(
        dir.path(),
        &["--json", "--rw", "read", "--size", "2M", "--loops", "3"],
    ));
    assert_eq!(report["loops"], 3);
    let job = &report["jobs"][0];
    let runs: Vec<f64> = job["loops"]["mb_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(runs.len(), 3, "{job}");
    assert!(runs.iter().all(|&r| r > 0.0), "{runs:?}");
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(job["loops"]["best_mb_s"].as_f64().unwrap(), sorted[2]);
    assert_eq!(job["loops"]["median_mb_s"].as_f64().unwrap(), sorted[1]);
    assert_eq!(
        job["read"]["mb_s"].as_f64().unwrap(),
        sorted[2],
        "the job's figures are its best run's"
    );
    let text = spate_bench(
        dir.path(),
        &["--rw", "read", "--size", "2M", "--loops", "2"],
    );
    let head = String::from_utf8(text.stdout).unwrap();
    assert!(
        head.lines().next().unwrap().ends_with("best of 2 loops"),
        "{head}"
    );
    let out = spate_bench(
        dir.path(),
        &["--rw", "read", "--size", "1M", "--loops", "0"],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// Starts the preset on a file large enough that its last tests run for a while.
fn start_preset(dir: &Path, json: bool) -> Child {
    let mut args = vec!["bench", "--size", "64M", "--runtime", "2", "--loops", "2"];
    if json {
        args.push("--json");
    }
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn interrupt(child: &Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

/// Checks one grid row: the test's name, then read and write MB/s, IOPS, mean and p99.
fn assert_grid_row(line: &str, test: &str) {
    let (name, rest) = line.split_once('|').unwrap_or_else(|| panic!("{line}"));
    assert_eq!(name.trim(), test, "{line}");
    for side in rest.split('|') {
        let cells: Vec<&str> = side.split_whitespace().collect();
        assert_eq!(cells.len(), 4, "{line}");
        assert!(cells[0].parse::<f64>().unwrap() > 0.0, "MB/s in {line}");
        assert!(cells[1].parse::<f64>().unwrap() > 0.0, "IOPS in {line}");
        assert!(cells[2].ends_with('s') && cells[3].ends_with('s'), "{line}");
    }
}

#[test]
fn grid_rows_come_as_tests_finish_and_survive_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_preset(dir.path(), false);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    // Header, machine line, headings, and the first test's row: printed while the run
    // goes on (to a pipe, not only on a terminal).
    for _ in 0..4 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        lines.push(line.trim_end().to_string());
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first row came only at the end: {lines:?}"
    );
    interrupt(&child);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(lines[0].contains("O_DIRECT"), "{lines:?}");
    assert!(lines[1].starts_with("spate "), "{lines:?}");
    assert!(
        lines[2].starts_with("test")
            && lines[2].contains("read MB/s")
            && lines[2].contains("write MB/s"),
        "{lines:?}"
    );
    assert_grid_row(&lines[3], TESTS[0]);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

/// Bytes the process has read and written through the block layer (/proc/PID/io).
fn io_bytes(pid: u32) -> (u64, u64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("read_bytes:"), field("write_bytes:"))
}

#[test]
fn json_on_ctrl_c_holds_the_finished_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let child = start_preset(dir.path(), true);
    // The first job reads the 64 MiB file (twice, --loops 2) after it was laid out
    // with 64 MiB of writes; writing more than that means the second job has started,
    // so the first one is finished and recorded. (JSON shows nothing until the end:
    // the process's I/O counters are what can be watched.)
    let size = 64 << 20;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (read, written) = io_bytes(child.id());
        if read >= 2 * size && written > size + (8 << 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second job never started ({read} read, {written} written)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["interrupted"], true, "{report}");
    let jobs = report["jobs"].as_array().unwrap();
    assert!(!jobs.is_empty() && jobs.len() < 8, "{report}");
    assert_eq!(jobs[0]["name"], "SEQ1M Q8T1 read");
    assert!(jobs[0]["read"]["mb_s"].as_f64().unwrap() > 0.0);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}
