//! What `spate bench` reports beyond the figures: the machine and file system the run
//! was on (checked against uname, findmnt and /sys), the data pattern, the fio bridge
//! and the comparison of results.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// Standard output of a peer tool, trimmed.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        stderr_of(&out)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn utc_now() -> String {
    tool("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}

#[test]
fn json_and_header_say_what_the_run_was_on() {
    let dir = tempfile::tempdir().unwrap();
    let before = utc_now();
    let report = json_of(&spate_bench(
        dir.path(),
        &["--json", "--rw", "read", "--size", "1M"],
    ));
    let after = utc_now();
    let meta = &report["meta"];
    let version = tool(env!("CARGO_BIN_EXE_spate"), &["--version"]);
    assert_eq!(
        version.split_whitespace().nth(1),
        meta["spate_version"].as_str()
    );
    let at = meta["timestamp"].as_str().unwrap();
    // Same fixed-width RFC 3339 form as date -u prints, so strings order as times.
    assert!(
        before.as_str() <= at && at <= after.as_str(),
        "{before} {at} {after}"
    );
    assert_eq!(meta["hostname"], tool("uname", &["-n"]));
    assert_eq!(meta["kernel"], tool("uname", &["-srvm"]));
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim());
    assert_eq!(meta["cpu_model"].as_str(), model);
    let target = dir.path().to_str().unwrap();
    let mount = tool(
        "findmnt",
        &[
            "-n",
            "-o",
            "FSTYPE,SOURCE,VFS-OPTIONS,FS-OPTIONS",
            "--target",
            target,
        ],
    );
    let mount: Vec<&str> = mount.split_whitespace().collect();
    assert_eq!(meta["fs"]["type"], mount[0], "{meta}");
    assert_eq!(meta["fs"]["source"], mount[1]);
    assert_eq!(meta["fs"]["mount_options"], mount[2]);
    assert_eq!(meta["fs"]["super_options"], mount[3]);
    // The disk under a /dev source, as lsblk names it (its parent for a partition).
    if mount[1].starts_with("/dev/") {
        let disk = tool("lsblk", &["-ndo", "PKNAME", mount[1]]);
        let disk = if disk.is_empty() {
            tool("lsblk", &["-ndo", "KNAME", mount[1]])
        } else {
            disk
        };
        assert_eq!(meta["device"]["name"], disk, "{meta}");
        let rota = tool("lsblk", &["-ndo", "ROTA", &format!("/dev/{disk}")]);
        assert_eq!(meta["device"]["rotational"], rota == "1");
        let sched = tool("lsblk", &["-ndo", "SCHED", &format!("/dev/{disk}")]);
        assert_eq!(meta["device"]["scheduler"], sched);
    }
    assert_eq!(report["backend"], "uring");
    assert_eq!(report["direct"], false);
    assert_eq!(report["cache_dropped"], true);
    let text = spate_bench(dir.path(), &["--rw", "read", "--size", "1M"]);
    let text = String::from_utf8(text.stdout).unwrap();
    let line = text.lines().nth(1).unwrap();
    for part in [
        format!("spate {}", meta["spate_version"].as_str().unwrap()),
        meta["hostname"].as_str().unwrap().to_string(),
        tool("uname", &["-r"]),
        mount[0].to_string(),
    ] {
        assert!(line.contains(&part), "{part} missing from {line}");
    }
}

/// The test file of a running bench in `dir`, once it has reached `size` bytes.
fn test_file_at_size(dir: &Path, size: u64) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with(".spate-bench-"));
        if let Some(entry) = found
            && entry.metadata().is_ok_and(|m| m.len() == size)
        {
            return entry.path();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {size}-byte test file"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// zstd's compressed size of `data` over its size, with matches no further back than
/// 128 KiB: what a compressing file system sees (btrfs compresses 128 KiB extents one by
/// one). A long window would find the buffers a job reuses, as fio's, 1 MiB apart.
fn zstd_ratio(data: &[u8]) -> f64 {
    use std::io::Write;
    let mut child = Command::new("zstd")
        .args(["-3", "--zstd=wlog=17", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out.stdout.len() as f64 / data.len() as f64
}

/// Bytes the process has written through the block layer (/proc/PID/io).
fn written_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `args` (a long job) in `dir`, returns zstd's ratio on the test file once `ready`
/// says so, and stops the run.
fn ratio_of_test_file(args: &[&str], ready: impl Fn(u32) -> bool) -> f64 {
    zstd_ratio(&test_file_of(args, ready))
}

/// Runs `args` (a long job on an 8 MiB file), returns the test file's bytes once
/// `ready` says so, and stops the run.
fn test_file_of(args: &[&str], ready: impl Fn(u32) -> bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .arg("bench")
        .args(args)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = test_file_at_size(dir.path(), 8 << 20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready(child.id()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?} never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let data = std::fs::read(&path).unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "{args:?} ended too soon"
    );
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    data
}

#[test]
fn consecutive_writes_carry_different_data() {
    // One write in flight: before the write ring, every write reused its one buffer,
    // and blocks differed only in their 8-byte stamps.
    for backend in ["uring", "threads"] {
        let data = test_file_of(
            &[
                "--io", backend, "--rw", "write", "--bs", "64k", "--fsync", "1", "--size", "8M",
                "--loops", "1000",
            ],
            |pid| written_bytes(pid) > 8 << 20,
        );
        // Every 4 KiB block without its stamp: no two alike in 8 MiB (the ring is 16).
        let unstamped: Vec<&[u8]> = data.chunks(4096).map(|b| &b[8..]).collect();
        let distinct: std::collections::HashSet<&[u8]> = unstamped.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            unstamped.len(),
            "{backend}: repeated blocks"
        );
        let blocks: Vec<&[u8]> = data.chunks(64 << 10).collect();
        for pair in blocks.windows(2) {
            assert_ne!(pair[0][8..4096], pair[1][8..4096], "{backend}");
        }
    }
}

#[test]
fn patterns_lay_out_and_write_what_they_name() {
    // Read jobs read a file laid out with the pattern: complete once it has its size.
    let laid_out = |pattern: &str| {
        ratio_of_test_file(
            &[
                "--rw",
                "randread",
                "--size",
                "8M",
                "--loops",
                "1000",
                "--pattern",
                pattern,
            ],
            |_| true,
        )
    };
    let random = laid_out("random");
    assert!(random > 0.99, "random compressed to {random}");
    let zero = laid_out("zero");
    assert!(zero < 0.01, "zero compressed to {zero}");
    let half = laid_out("compressible:50");
    assert!(
        (0.45..0.56).contains(&half),
        "compressible:50 compressed to {half}"
    );
    // A write job writes into an allocated (zero) file: read it after a whole pass.
    // 1 MiB writes with an fsync each: slow enough that the run is still going when
    // the file is read. (A job's buffers are reused: with writes under 128 KiB, one
    // extent would hold repeats of the same buffer.)
    let written = ratio_of_test_file(
        &[
            "--rw",
            "write",
            "--bs",
            "1M",
            "--fsync",
            "1",
            "--size",
            "8M",
            "--loops",
            "1000",
            "--pattern",
            "compressible:75",
        ],
        |pid| written_bytes(pid) > 8 << 20,
    );
    assert!(
        (0.2..0.31).contains(&written),
        "compressible:75 writes compressed to {written}"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = json_of(&spate_bench(
        dir.path(),
        &[
            "--json",
            "--rw",
            "write",
            "--size",
            "1M",
            "--pattern",
            "zero",
        ],
    ));
    assert_eq!(report["pattern"]["name"], "zero");
    // The generator runs far above any disk: at least 300 MB/s even on a busy machine.
    for pattern in ["random", "compressible:50"] {
        let report = json_of(&spate_bench(
            dir.path(),
            &[
                "--json",
                "--rw",
                "write",
                "--size",
                "1M",
                "--pattern",
                pattern,
            ],
        ));
        let rate = report["pattern"]["generate_mb_s"].as_f64().unwrap();
        assert!(rate > 300.0, "{pattern}: {rate} MB/s");
    }
    for bad in ["compressible:101", "compressible", "ones"] {
        let out = spate_bench(
            dir.path(),
            &["--rw", "write", "--size", "1M", "--pattern", bad],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr_of(&out).contains("random, zero or compressible:PCT"));
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/bench")
        .join(name)
}

/// `(test, dir) -> MB/s` of a saved spate report, as the grid names them.
fn mb_s_of_spate(path: &Path) -> Vec<(String, String, f64)> {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for job in doc["jobs"].as_array().unwrap() {
        let name = job["name"].as_str().unwrap();
        let (test, dir) = name.rsplit_once(' ').unwrap();
        out.push((
            test.to_string(),
            dir.to_string(),
            job[dir]["mb_s"].as_f64().unwrap(),
        ));
    }
    out
}

fn mb_s_of_fio(path: &Path) -> Vec<(String, String, f64)> {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for job in doc["jobs"].as_array().unwrap() {
        let name = job["jobname"].as_str().unwrap().replace('-', " ");
        // The preset's names end in their direction; a --rw job's is the one that moved.
        let (test, dir) = match name.rsplit_once(' ') {
            Some((test, dir)) if dir == "read" || dir == "write" => (test, dir),
            _ if job["read"]["io_bytes"].as_u64() > Some(0) => (name.as_str(), "read"),
            _ => (name.as_str(), "write"),
        };
        let bw = job[dir]["bw_bytes"].as_f64().unwrap();
        out.push((test.to_string(), dir.to_string(), bw / 1e6));
    }
    out
}

#[test]
fn compare_prints_each_result_and_its_ratio_to_the_first() {
    let (a, b, c) = (
        fixture("direct.json"),
        fixture("buffered.json"),
        fixture("fio-preset.json"),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = spate_bench(
        dir.path(),
        &[
            "--compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            c.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("A: spate ") && lines[0].contains("O_DIRECT"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("B: spate ") && !lines[1].contains("O_DIRECT"),
        "{text}"
    );
    assert!(lines[2].starts_with("C: fio-3"), "{text}");
    let (a, b, c) = (mb_s_of_spate(&a), mb_s_of_spate(&b), mb_s_of_fio(&c));
    assert_eq!(a.len(), 8);
    let rows = &lines[4..];
    assert_eq!(rows.len(), 8, "{text}");
    for (i, (test, dir, av)) in a.iter().enumerate() {
        let find = |v: &[(String, String, f64)]| {
            v.iter()
                .find(|(t, d, _)| t == test && d == dir)
                .map(|x| x.2)
                .unwrap_or_else(|| panic!("{test} {dir} missing"))
        };
        let (bv, cv) = (find(&b), find(&c));
        let cells: Vec<&str> = rows[i].split_whitespace().collect();
        // "SEQ1M Q8T1 read A B B/A C C/A"
        assert_eq!(format!("{} {}", cells[0], cells[1]), *test, "{}", rows[i]);
        assert_eq!(cells[2], dir);
        assert_eq!(cells[3], format!("{av:.1}"));
        assert_eq!(cells[4], format!("{bv:.1}"));
        assert_eq!(cells[5], format!("{:.2}", bv / av), "{}", rows[i]);
        assert_eq!(cells[6], format!("{cv:.1}"));
        assert_eq!(cells[7], format!("{:.2}", cv / av), "{}", rows[i]);
    }
    let out = spate_bench(dir.path(), &["--compare", a_path_str(), "missing.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("missing.json"),
        "{}",
        stderr_of(&out)
    );
}

fn a_path_str() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bench/direct.json")
}
