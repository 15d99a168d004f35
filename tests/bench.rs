//! `spate bench` on small test files (a few MiB, well under a second per job), on both
//! engines: every workload, the JSON report, the test file's removal, and the refusals.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn bench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .arg("bench")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running spate bench")
}

/// Runs a bench that must succeed and returns its JSON report.
fn bench_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = bench(dir, &all);
    assert!(
        out.status.success(),
        "spate bench {args:?} failed: {}",
        stderr_of(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Asserts that one direction of a job moved data and has sane, positive figures.
fn assert_positive(job: &Value, dir: &str) {
    let d = &job[dir];
    assert!(d.is_object(), "{} has no {dir} figures: {job}", job["name"]);
    for key in ["bytes", "ios", "bw_bytes_per_s", "mb_s", "mib_s", "iops"] {
        let v = d[key].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0, "{dir}.{key} = {v} in {job}");
    }
    let lat = &d["lat_ns"];
    for key in ["mean", "min", "p50", "p90", "p99", "p99.9", "max"] {
        let v = lat[key].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0, "{dir}.lat_ns.{key} = {v} in {job}");
    }
    let (p50, p99, max) = (
        lat["p50"].as_u64().unwrap(),
        lat["p99"].as_u64().unwrap(),
        lat["max"].as_u64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= max, "percentiles out of order: {lat}");
    let mib = d["mib_s"].as_f64().unwrap();
    let mb = d["mb_s"].as_f64().unwrap();
    assert!(
        (mb / mib - 1.048_576).abs() < 1e-6,
        "MB/s and MiB/s disagree"
    );
    let elapsed = job["elapsed_s"].as_f64().unwrap();
    let bytes = d["bytes"].as_f64().unwrap();
    assert!(
        (bytes / elapsed / mb / 1e6 - 1.0).abs() < 1e-6,
        "MB/s is not bytes/time"
    );
    assert!(
        job["cpu"]["user_s"].as_f64().unwrap() + job["cpu"]["system_s"].as_f64().unwrap() > 0.0
    );
    assert_eq!(job["errors"], 0);
}

#[test]
fn every_workload_runs_on_both_backends() {
    for backend in BACKENDS {
        for rw in ["read", "write", "randread", "randwrite", "randrw"] {
            let dir = tempfile::tempdir().unwrap();
            let report = bench_json(
                dir.path(),
                &[
                    "--io",
                    backend,
                    "--rw",
                    rw,
                    "--bs",
                    "64k",
                    "--iodepth",
                    "4",
                    "--size",
                    "4M",
                    "--runtime",
                    "0.5",
                ],
            );
            assert_eq!(report["backend"], backend);
            let job = &report["jobs"][0];
            assert_eq!(job["rw"], rw);
            assert_eq!(job["bs"], 65536);
            assert_eq!(job["iodepth"], 4);
            let (reads, writes) = (
                rw.contains("read") || rw == "randrw",
                rw.contains("write") || rw == "randrw",
            );
            if reads {
                assert_positive(job, "read");
                assert_eq!(
                    job["cache_dropped"], true,
                    "{rw}: pages dropped before reading"
                );
            } else {
                assert!(job["read"].is_null(), "{rw} read nothing: {job}");
            }
            if writes {
                assert_positive(job, "write");
            } else {
                assert!(job["write"].is_null(), "{rw} wrote nothing: {job}");
            }
            if rw != "randrw" {
                // One pass over a 4 MiB file in 64 KiB blocks, unless the runtime ran out.
                let d = if reads { &job["read"] } else { &job["write"] };
                assert!(d["ios"].as_u64().unwrap() <= 64, "{rw}: {job}");
            }
            assert!(
                entries(dir.path()).is_empty(),
                "{backend} {rw}: test file left behind: {:?}",
                entries(dir.path())
            );
        }
    }
}

#[test]
fn single_jobs_cover_the_whole_file_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let report = bench_json(
            dir.path(),
            &[
                "--io",
                backend,
                "--rw",
                "write",
                "--bs",
                "256k",
                "--iodepth",
                "2",
                "--jobs",
                "2",
                "--size",
                "4M",
                "--runtime",
                "10",
                "--end-fsync",
            ],
        );
        let job = &report["jobs"][0];
        assert_eq!(job["write"]["bytes"], 4 << 20, "{job}");
        assert_eq!(job["write"]["ios"], 16);
        assert_eq!(job["numjobs"], 2);
        assert_eq!(job["end_fsync"], true);
        assert_eq!(job["fsync"], 0);
    }
}

#[test]
fn preset_runs_the_crystaldiskmark_tests() {
    let dir = tempfile::tempdir().unwrap();
    let report = bench_json(dir.path(), &["--size", "4M", "--runtime", "0.2"]);
    let names: Vec<&str> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "SEQ1M Q8T1 read",
            "SEQ1M Q8T1 write",
            "SEQ1M Q1T1 read",
            "SEQ1M Q1T1 write",
            "RND4K Q32T1 read",
            "RND4K Q32T1 write",
            "RND4K Q1T1 read",
            "RND4K Q1T1 write"
        ]
    );
    for job in report["jobs"].as_array().unwrap() {
        let write = job["name"].as_str().unwrap().ends_with("write");
        assert_positive(job, if write { "write" } else { "read" });
        assert_eq!(
            job["end_fsync"], write,
            "preset writes include the fsync: {job}"
        );
        assert_eq!(job["cache_dropped"], !write);
    }
    assert_eq!(report["jobs"][4]["iodepth"], 32);
    assert_eq!(report["jobs"][4]["bs"], 4096);
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn text_report_is_a_table_of_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &[
            "--rw",
            "randrw",
            "--size",
            "2M",
            "--runtime",
            "0.3",
            "--iodepth",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("2 MiB test file in"), "{text}");
    let heading = text.lines().nth(2).unwrap();
    for column in ["MB/s", "MiB/s", "IOPS", "p50", "p99.9", "CPU", "moved"] {
        assert!(heading.contains(column), "{column} missing: {heading}");
    }
    assert!(text.contains("randrw 4K Q2T1 (read)"), "{text}");
    assert!(text.contains("randrw 4K Q2T1 (write)"), "{text}");
    assert!(
        text.contains("no fsync"),
        "writes say whether they include the fsync"
    );
}

#[test]
fn existing_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.bin");
    write(&keep, &bytes(100_000, 5));
    bench_json(
        dir.path(),
        &["--rw", "write", "--size", "2M", "--runtime", "0.3", "."],
    );
    assert_eq!(entries(dir.path()), ["keep.bin"]);
    assert_eq!(std::fs::read(&keep).unwrap(), bytes(100_000, 5));
}

#[test]
fn direct_io_runs_with_aligned_buffers() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let report = bench_json(
            dir.path(),
            &[
                "--io",
                backend,
                "--rw",
                "randread",
                "--direct",
                "--iodepth",
                "8",
                "--size",
                "4M",
                "--runtime",
                "0.3",
            ],
        );
        assert_eq!(report["direct"], true);
        assert_positive(&report["jobs"][0], "read");
    }
}

#[test]
fn file_larger_than_free_space_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(dir.path(), &["--rw", "write", "--size", "1PiB"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.starts_with("spate: "), "{err}");
    assert!(err.contains("not enough free space"), "{err}");
    assert!(entries(dir.path()).is_empty(), "nothing created");
}

#[test]
fn non_directory_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("file"), b"x");
    for (target, why) in [("file", "not a directory"), ("missing", "No such file")] {
        let out = bench(dir.path(), &["--rw", "read", "--size", "1M", target]);
        assert_eq!(out.status.code(), Some(2), "{target}: {}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(err.contains(target) && err.contains(why), "{err}");
    }
    let out = bench(dir.path(), &["--tree", "file"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("not a directory"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--rw", "sideways"][..],
        &["--bs", "4k"],
        &["--rw", "read", "--bs", "0"],
        &["--rw", "read", "--iodepth", "0"],
        &["--rw", "randrw", "--rwmixread", "101"],
        &["--rw", "read", "--runtime", "-1"],
        &["--rw", "read", "--runtime", "0"],
        &["--rw", "write", "--fsync", "0"],
        &["--rw", "read", "--direct", "--bs", "1000"],
        &["--rw", "read", "--size", "64k", "--bs", "1M"],
        &["--jobs", "2"],
        &["--tree", ".", "."],
        &["--rw", "read", "--bs", "1G", "--iodepth", "8"],
    ] {
        let out = bench(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(entries(dir.path()).is_empty(), "{args:?} left a file");
    }
}

/// ramfs refuses O_DIRECT. Mounting needs root and a permissive container; where it
/// does not work the test says so and passes (the error path is the same open call).
#[test]
fn direct_io_refused_by_the_file_system_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "ramfs", "ramfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // CI and sessions run as root on a VM where mounting works: failing to mount is a
    // failure of the test's setup, not a reason to pass.
    assert!(mounted, "mounting a ramfs needs root (CI runs as root)");
    let out = bench(dir.path(), &["--rw", "read", "--direct", "--size", "1M"]);
    let left = entries(dir.path());
    let _ = Command::new("umount").arg(dir.path()).status();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("refuses O_DIRECT"),
        "{}",
        stderr_of(&out)
    );
    assert!(left.is_empty(), "test file left on the ramfs: {left:?}");
}

#[test]
fn interrupted_run_removes_the_test_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args([
            "bench",
            "--rw",
            "randread",
            "--size",
            "32M",
            "--runtime",
            "20",
            ".",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while entries(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "no test file appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn tree_reads_every_file_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    make_tree(&root, true);
    let files = files_below(&root);
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    for backend in BACKENDS {
        let report = bench_json(dir.path(), &["--io", backend, "--tree", "tree"]);
        assert_eq!(report["files"], files.len(), "{report}");
        assert_eq!(report["bytes"], total);
        assert_eq!(report["errors"], 0);
        assert_eq!(report["backend"], backend);
        for key in ["files_per_s", "mb_s", "mib_s", "elapsed_s"] {
            assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
        }
        assert!(report["lat_ns"]["p99"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        files_below(&root).len(),
        files.len(),
        "nothing written to the tree"
    );
}

/// Counts the fsync system calls of a threads-backend run (the uring backend's are
/// ring operations, which strace does not see).
fn fsync_calls(dir: &Path, args: &[&str]) -> usize {
    let out = Command::new("strace")
        .args(["-f", "-e", "trace=fsync", "-o", "trace.txt"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "--io", "threads"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running strace");
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    let trace = std::fs::read_to_string(dir.join("trace.txt")).unwrap();
    std::fs::remove_file(dir.join("trace.txt")).unwrap();
    trace.lines().filter(|l| l.contains("fsync(")).count()
}

#[test]
fn fsync_n_syncs_every_n_writes_and_end_fsync_once_as_fio() {
    // 16 writes of 64 KiB: fio's fsync=4 issues 4 fsyncs, end_fsync=1 one.
    let job = [
        "--rw",
        "write",
        "--bs",
        "64k",
        "--size",
        "1M",
        "--runtime",
        "1m",
    ];
    let dir = tempfile::tempdir().unwrap();
    let base = fsync_calls(dir.path(), &job);
    assert_eq!(
        fsync_calls(dir.path(), &[&job[..], &["--fsync", "4"]].concat()),
        base + 4
    );
    assert_eq!(
        fsync_calls(dir.path(), &[&job[..], &["--end-fsync"]].concat()),
        base + 1
    );
    assert_eq!(
        fsync_calls(
            dir.path(),
            &[&job[..], &["--fsync", "8", "--end-fsync"]].concat()
        ),
        base + 3
    );
    for backend in BACKENDS {
        let report = bench_json(
            dir.path(),
            &[&job[..], &["--io", backend, "--fsync", "4"]].concat(),
        );
        let job = &report["jobs"][0];
        assert_eq!(job["fsync"], 4, "{job}");
        assert_eq!(job["write"]["ios"], 16, "{job}");
        assert_eq!(job["sync"]["ios"], 4, "{backend}: {job}");
        assert!(job["sync"]["lat_ns"]["max"].as_u64().unwrap() > 0, "{job}");
    }
    let out = bench(dir.path(), &[&job[..], &["--fsync", "2"]].concat());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("write 64K Q1T1 (fsync)") && text.contains("fsync every 2"),
        "{text}"
    );
}

#[test]
fn bare_fsync_is_refused_with_a_pointer_to_end_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(dir.path(), &["--rw", "write", "--size", "1M", "--fsync"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("--end-fsync") && err.contains("fsync=N"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn numjobs_and_blocksize_are_fio_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let report = bench_json(
        dir.path(),
        &[
            "--rw",
            "read",
            "--numjobs",
            "2",
            "--blocksize",
            "128k",
            "--size",
            "1M",
        ],
    );
    assert_eq!(report["jobs"][0]["numjobs"], 2);
    assert_eq!(report["jobs"][0]["bs"], 131072);
    assert_eq!(report["jobs"][0]["read"]["ios"], 8);
}

#[test]
fn header_claims_a_cache_drop_only_when_a_job_reads() {
    let dir = tempfile::tempdir().unwrap();
    let header = |args: &[&str]| {
        let out = bench(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    let write = header(&["--rw", "write", "--size", "1M"]);
    assert!(!write.contains("page cache"), "{write}");
    let read = header(&["--rw", "read", "--size", "1M"]);
    assert!(read.contains("page cache dropped before reads"), "{read}");
    let randrw = header(&["--rw", "randrw", "--size", "1M", "--runtime", "200ms"]);
    assert!(
        randrw.contains("page cache dropped before reads"),
        "{randrw}"
    );
}

#[test]
fn runtime_takes_fio_units_and_sizes_name_theirs() {
    let dir = tempfile::tempdir().unwrap();
    for runtime in ["500ms", "1s", "2m", "1h", "5", "0.5"] {
        bench_json(
            dir.path(),
            &["--rw", "read", "--size", "1M", "--runtime", runtime],
        );
    }
    for (args, words) in [
        (
            &["--runtime", "3d"][..],
            "unknown unit 'd'; use us, ms, s, m, h",
        ),
        (&["--runtime", "soon"][..], "us, ms, s, m, h"),
        (
            &["--bs", "256X"][..],
            "invalid value '256X' for '--bs <SIZE>': unknown unit 'X'; use k, M, G, T, KiB, MiB, GiB, TiB",
        ),
        (&["--size", "1Q"][..], "unknown unit 'Q'"),
    ] {
        let out = bench(dir.path(), &[&["--rw", "read"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&out);
        assert!(
            err.starts_with("spate: ") && err.contains(words),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
