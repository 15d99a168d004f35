//! `spate bench --write-tree N×SIZE`: N files created, written and fsynced one after
//! another in a fresh directory (counted with strace), reported as files/s, MB/s and
//! per-file latency, and removed afterwards, on Ctrl-C too; fio's nearest job file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_tree_creates_and_fsyncs_each_file_then_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,fsync,unlinkat,rmdir", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "--json", "--write-tree", "40x12K"])
        .arg(&target)
        .output()
        .expect("running strace");
    let report = json_of(&out);
    let job = &report["jobs"][0];
    assert_eq!(job["name"], "write-tree 40x12K");
    assert_eq!(job["rw"], "write-tree");
    assert_eq!(job["files"], 40);
    assert_eq!(job["write"]["ios"], 40);
    assert_eq!(job["write"]["bytes"], 40 * 12 * 1024);
    assert_eq!(report["write_tree"]["files"], 40);
    assert_eq!(report["write_tree"]["file_size"], 12 * 1024);
    let files_per_s = job["files_per_s"].as_f64().unwrap();
    let elapsed = job["elapsed_s"].as_f64().unwrap();
    assert!((files_per_s * elapsed - 40.0).abs() < 1e-6, "{job}");
    let lat = &job["write"]["lat_ns"];
    assert!(lat["p50"].as_u64().unwrap() > 0);
    assert!(lat["p50"].as_u64() <= lat["p99"].as_u64());
    assert!(lat["p99"].as_u64() <= lat["max"].as_u64());
    // Files per second over time, as for --tree.
    assert!(
        job["samples"]["files_per_s"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    );
    // The metadata block, as every run has.
    assert_eq!(report["meta"]["spate_version"], env!("CARGO_PKG_VERSION"));

    // What the kernel saw: 40 new files in one fresh directory, an fsync per file and
    // one of the directory, every file removed and the directory too.
    let trace = std::fs::read_to_string(&trace).unwrap();
    let created: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("openat(") && l.contains("O_CREAT|O_EXCL"))
        .filter(|l| l.contains(".spate-write-tree-"))
        .collect();
    assert_eq!(created.len(), 40, "{trace}");
    let fsyncs = trace.lines().filter(|l| l.contains("fsync(")).count();
    assert_eq!(fsyncs, 41, "one per file and the directory's: {trace}");
    let removed = trace
        .lines()
        .filter(|l| l.contains("unlinkat(") && !l.contains("AT_REMOVEDIR"))
        .count();
    assert_eq!(removed, 40, "{trace}");
    assert!(entries(&target).is_empty(), "{:?}", entries(&target));
}

#[test]
fn write_tree_takes_n_by_size_in_each_spelling() {
    let dir = tempfile::tempdir().unwrap();
    for shape in ["3x4K", "3×4K", "3X4096"] {
        let report = json_of(&spate_bench(dir.path(), &["--json", "--write-tree", shape]));
        assert_eq!(report["jobs"][0]["files"], 3, "{shape}");
        assert_eq!(report["jobs"][0]["write"]["bytes"], 3 * 4096, "{shape}");
    }
    let text = spate_bench(dir.path(), &["--write-tree", "5x1K"]);
    assert!(text.status.success(), "{}", stderr_of(&text));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with("--write-tree: 5 files of 1 KiB"), "{text}");
    assert!(text.contains("write-tree 5x1K"), "{text}");
    for bad in ["5", "x4K", "0x4K", "5x", "5x0"] {
        let out = spate_bench(dir.path(), &["--write-tree", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            stderr_of(&out).contains("NxSIZE") || stderr_of(&out).contains("SIZE"),
            "{bad}"
        );
    }
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn write_tree_in_an_unwritable_directory_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    open_to_all(dir.path());
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let out = as_nobody(dir.path(), &["bench", "--write-tree", "10x4K", "locked"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "spate: locked: creating the --write-tree directory: Permission denied"
    );
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

#[test]
fn write_tree_interrupted_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "--write-tree", "1000000x4K", "."])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Until its directory holds some files.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".spate-write-tree-")
            })
            .is_some_and(|e| std::fs::read_dir(e.path()).is_ok_and(|d| d.count() > 5));
        if busy {
            break;
        }
        assert!(Instant::now() < deadline, "no files written");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn write_tree_emit_fio_runs_under_fio() {
    let dir = tempfile::tempdir().unwrap();
    let out = spate_bench(dir.path(), &["--emit-fio", "--write-tree", "20x8K", "."]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let job = String::from_utf8(out.stdout).unwrap();
    for line in [
        "nrfiles=20",
        "filesize=8192",
        "create_on_open=1",
        "fsync_on_close=1",
    ] {
        assert!(job.lines().any(|l| l == line), "{line} missing:\n{job}");
    }
    std::fs::write(dir.path().join("tree.fio"), &job).unwrap();
    let fio = Command::new("fio")
        .args(["tree.fio", "--output-format=json"])
        .current_dir(dir.path())
        .output()
        .expect("running fio");
    assert!(
        fio.status.success(),
        "{}",
        String::from_utf8_lossy(&fio.stderr)
    );
    let text = String::from_utf8(fio.stdout).unwrap();
    let result: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    let written = &result["jobs"][0]["write"];
    assert_eq!(written["io_bytes"], 20 * 8192, "{written}");
    // fio's unlink=1 removes its files, as spate does.
    assert_eq!(entries(dir.path()), ["tree.fio"]);
}

/// `--jobs 3` on 20 files: three threads, each creating and fsyncing its share (7, 7
/// and 6, the first ones one more) in its own subdirectory and fsyncing that; the
/// counts and rates add up over the writers.
#[test]
fn write_tree_jobs_split_the_files_over_writers_in_their_own_directories() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,fsync", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "--json", "--write-tree", "20x4K", "--jobs", "3"])
        .arg(&target)
        .output()
        .expect("running strace");
    let report = json_of(&out);
    let job = &report["jobs"][0];
    assert_eq!(job["name"], "write-tree 20x4K T3");
    assert_eq!(job["numjobs"], 3);
    assert_eq!(job["files"], 20);
    assert_eq!(job["write"]["ios"], 20);
    assert_eq!(job["write"]["bytes"], 20 * 4096);
    assert_eq!(report["write_tree"]["numjobs"], 3);
    let elapsed = job["elapsed_s"].as_f64().unwrap();
    let files_per_s = job["files_per_s"].as_f64().unwrap();
    assert!((files_per_s * elapsed - 20.0).abs() < 1e-6, "{job}");
    let mb_s = job["write"]["mb_s"].as_f64().unwrap();
    assert!((mb_s * 1e6 * elapsed - 20.0 * 4096.0).abs() < 1.0, "{job}");

    // Per new file: the thread that created it and its directory.
    let trace = std::fs::read_to_string(&trace).unwrap();
    let mut by_dir = std::collections::BTreeMap::<String, (usize, Vec<String>)>::new();
    for line in trace.lines() {
        if !(line.contains("openat(") && line.contains("O_CREAT|O_EXCL")) {
            continue;
        }
        let tid = line.split_whitespace().next().unwrap().to_string();
        let path = &line[line.find('"').unwrap() + 1..line.rfind('"').unwrap()];
        let parent = Path::new(path).parent().unwrap();
        assert!(
            parent
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n.to_string_lossy().starts_with(".spate-write-tree-")),
            "{path}"
        );
        let entry = by_dir
            .entry(parent.file_name().unwrap().to_string_lossy().into_owned())
            .or_default();
        entry.0 += 1;
        entry.1.push(tid);
    }
    let counts: Vec<usize> = by_dir.values().map(|(n, _)| *n).collect();
    assert_eq!(counts, [7, 7, 6], "{by_dir:?}");
    let mut writers: Vec<&String> = by_dir
        .values()
        .map(|(_, tids)| {
            assert!(
                tids.iter().all(|t| t == &tids[0]),
                "one writer per directory"
            );
            &tids[0]
        })
        .collect();
    writers.dedup();
    assert_eq!(writers.len(), 3, "three threads: {by_dir:?}");
    // A file's fsync each, one per writer's directory, and the run directory's once
    // its subdirectories are made.
    let fsyncs = trace.lines().filter(|l| l.contains("fsync(")).count();
    assert_eq!(fsyncs, 20 + 3 + 1, "{trace}");
    assert!(entries(&target).is_empty(), "{:?}", entries(&target));

    // More writers than files is refused before anything is made.
    let out = spate_bench(&target, &["--write-tree", "2x4K", "--jobs", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out).trim_end(),
        "spate: --write-tree 2x4K with --jobs 3: fewer files than writers"
    );
    assert!(entries(&target).is_empty());
}

/// `--emit-fio` of `--write-tree 20x8K --jobs 3` is fio's numjobs with nrfiles per
/// clone (7, 7, 6 as spate's writers: two sections in one group), each clone in a
/// directory of its own; it runs under fio, which writes the same files and bytes as
/// spate does.
#[test]
fn write_tree_jobs_emit_fio_runs_under_fio_with_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--write-tree", "20x8K", "--jobs", "3", "."];
    let out = spate_bench(dir.path(), &[&["--emit-fio"][..], &args].concat());
    assert!(out.status.success(), "{}", stderr_of(&out));
    let job = String::from_utf8(out.stdout).unwrap();
    let sections: Vec<&str> = job.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        sections,
        [
            "[global]",
            "[write-tree-20x8K-T3]",
            "[write-tree-20x8K-T3-rest]"
        ],
        "{job}"
    );
    let numjobs: Vec<&str> = job.lines().filter(|l| l.starts_with("numjobs=")).collect();
    let nrfiles: Vec<&str> = job.lines().filter(|l| l.starts_with("nrfiles=")).collect();
    assert_eq!(numjobs, ["numjobs=2", "numjobs=1"], "{job}");
    assert_eq!(nrfiles, ["nrfiles=7", "nrfiles=6"], "{job}");
    assert!(
        job.lines()
            .any(|l| l == "filename_format=$jobname.$jobnum/$filenum")
    );
    assert!(
        !job.contains("stonewall"),
        "the sections run at once: {job}"
    );
    std::fs::write(dir.path().join("tree.fio"), &job).unwrap();
    let fio = Command::new("fio")
        .args(["tree.fio", "--output-format=json", "--output=fio.json"])
        .current_dir(dir.path())
        .output()
        .expect("running fio");
    assert!(fio.status.success(), "{}", stderr_of(&fio));
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("fio.json")).unwrap()).unwrap();
    let jobs = result["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "one group, reported as one job: {result}");
    let written = &jobs[0]["write"];
    assert_eq!(written["io_bytes"], 20 * 8192, "{written}");
    assert_eq!(written["total_ios"], 20, "a write per file: {written}");
    // fio made a directory per clone and removed its files, not the directories.
    let mut made: Vec<String> = entries(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("write-tree"))
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "write-tree-20x8K-T3-rest.0",
            "write-tree-20x8K-T3.0",
            "write-tree-20x8K-T3.1"
        ]
    );
    for d in &made {
        assert!(entries(&dir.path().join(d)).is_empty(), "{d}");
    }
    // spate's own run of the same job writes the same.
    let report = json_of(&spate_bench(dir.path(), &[&["--json"][..], &args].concat()));
    assert_eq!(report["jobs"][0]["files"], 20);
    assert_eq!(report["jobs"][0]["write"]["bytes"], written["io_bytes"]);
}
