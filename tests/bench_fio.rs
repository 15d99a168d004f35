//! `spate bench --emit-fio` under the real fio: the job file runs, its result reads
//! back through --fio-json under spate's names, and the figures agree. A file of its
//! own, and its tests one at a time, so nothing else runs beside a measurement.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::*;
use serde_json::Value;

/// Held by each test for its whole run: two measurements side by side would measure
/// each other.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// fio's read MB/s of its first job.
fn fio_read_mb_s(path: &Path) -> f64 {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["jobs"][0]["read"]["bw_bytes"].as_f64().unwrap() / 1e6
}

/// The emitted job file runs under fio, does the work spate's job does, and its result
/// comes back under spate's names through --fio-json.
#[test]
fn emitted_fio_job_runs_under_fio_and_reads_back() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().to_str().unwrap();
    let job = [
        "--io",
        "threads",
        "--rw",
        "read",
        "--bs",
        "1M",
        "--iodepth",
        "8",
        "--size",
        "256M",
        "--cached",
    ];
    let emitted = spate_bench(dir.path(), &[&["--emit-fio"][..], &job, &[target]].concat());
    assert!(emitted.status.success(), "{}", stderr_of(&emitted));
    let text = String::from_utf8(emitted.stdout).unwrap();
    for line in [
        "rw=read",
        "bs=1048576",
        "numjobs=8",
        "size=268435456",
        "offset_increment=33554432",
        "runtime=5s",
        "direct=0",
        "invalidate=0",
        "ioengine=psync",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "--emit-fio measures nothing"
    );
    std::fs::write(dir.path().join("job.fio"), &text).unwrap();
    let fio_mb_s = |dir: &Path| {
        let out = Command::new("fio")
            .args(["job.fio", "--output-format=json", "--output=fio.json"])
            .current_dir(dir)
            .output()
            .expect("running fio (apt-get install fio)");
        assert!(out.status.success(), "fio: {}", stderr_of(&out));
        let shown = spate_bench(dir, &["--fio-json", "fio.json"]);
        assert!(shown.status.success(), "{}", stderr_of(&shown));
        let grid = String::from_utf8(shown.stdout).unwrap();
        assert!(
            grid.lines().any(|l| l.starts_with("read 1M Q8T1 |")),
            "{grid}"
        );
        let doc: Value =
            serde_json::from_slice(&std::fs::read(dir.join("fio.json")).unwrap()).unwrap();
        assert_eq!(
            doc["jobs"][0]["read"]["io_bytes"], 268435456,
            "one pass over the file, as spate's job"
        );
        fio_read_mb_s(&dir.join("fio.json"))
    };
    // Both tools do the same work: one pass over the 256 MiB file in 1 MiB reads.
    // (Their speeds are not compared here: on this shared 2-core VM fio's psync and
    // io_uring engines read the cached file 1.5x to 5x slower than spate in some runs
    // and not in others, beyond any tolerance a test could hold; benches/fio.sh
    // compares them over interleaved rounds.)
    let fio = fio_mb_s(dir.path());
    let report = json_of(&spate_bench(
        dir.path(),
        &[&["--json"][..], &job, &[target]].concat(),
    ));
    let spate = &report["jobs"][0]["read"];
    assert_eq!(spate["bytes"], 268435456, "{report}");
    assert_eq!(spate["ios"], 256);
    assert!(fio > 0.0 && spate["mb_s"].as_f64().unwrap() > 0.0);
    // The preset's file lists all eight tests, in order, one after another.
    let preset = spate_bench(dir.path(), &["--emit-fio", "--io", "threads"]);
    let text = String::from_utf8(preset.stdout).unwrap();
    let sections: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections.len(), 9, "{text}");
    assert_eq!(sections[1], "[SEQ1M-Q8T1-read]");
    assert_eq!(text.matches("stonewall").count(), 8);
    assert!(
        text.contains("ioengine=psync") && text.contains("numjobs=32"),
        "{text}"
    );
    assert!(text.contains("direct=1"), "the preset's O_DIRECT: {text}");
    let uring = spate_bench(dir.path(), &["--emit-fio"]);
    let text = String::from_utf8(uring.stdout).unwrap();
    assert!(
        text.contains("ioengine=io_uring") && text.contains("iodepth=32"),
        "{text}"
    );
}

/// A directory whose file system takes O_DIRECT: the build's own scratch directory
/// (target/tmp, on the repository's disk), else the system's temporary directory. A
/// tmpfs /tmp refuses O_DIRECT on older kernels and on newer ones measures memory
/// copies, not a disk; the disk under target/ is what the direct figures are about.
fn direct_capable_dir() -> PathBuf {
    let candidates = [
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        std::env::temp_dir(),
    ];
    let mut refusals = Vec::new();
    for dir in &candidates {
        std::fs::create_dir_all(dir).unwrap();
        let probe = tempfile::Builder::new().tempfile_in(dir).unwrap();
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(probe.path())
        {
            Ok(_) => return dir.clone(),
            Err(err) => refusals.push(format!("{}: {err}", dir.display())),
        }
    }
    panic!("no directory here takes O_DIRECT: {refusals:?}");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Huge pages reserved for fio's `iomem=shmhuge` as an emitted job's comment says
/// (`echo N > /proc/sys/vm/nr_hugepages`, as root: CI and these sessions run as root),
/// given back when dropped.
struct HugePages {
    before: String,
}

impl HugePages {
    const KNOB: &str = "/proc/sys/vm/nr_hugepages";

    fn reserve_as_told(job: &str) -> HugePages {
        let wanted: u64 = job
            .lines()
            .find_map(|l| {
                l.strip_prefix(";   echo ")?
                    .strip_suffix(" > /proc/sys/vm/nr_hugepages")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no huge page count in the job:\n{job}"));
        let before = std::fs::read_to_string(Self::KNOB).unwrap();
        let had: u64 = before.trim().parse().unwrap();
        if had < wanted {
            std::fs::write(Self::KNOB, wanted.to_string())
                .unwrap_or_else(|e| panic!("{}: {e} (the test runs as root)", Self::KNOB));
        }
        let now: u64 = std::fs::read_to_string(Self::KNOB)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            now >= wanted,
            "the kernel reserved {now} huge pages of {wanted}"
        );
        HugePages { before }
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::KNOB, self.before.trim());
    }
}

/// The emitted job's figure is spate's own within the issue's ±30% (noise tolerance,
/// not the target: benches/fio.sh holds that), on each backend: a direct sequential
/// read, which the disk bounds for both tools, each reading into huge pages (spate's
/// own; fio's by the job's `iomem=shmhuge`, which this reserves as the job says) (buffered reads of a cached file are
/// bound by this shared VM's memory and scheduler instead, and varied 1.5x-5x between
/// fio and spate run to run). Runs interleaved so a slow phase of the
/// machine lands on both, and a new test file for every run, as spate makes its own:
/// a file fio laid out long ago reads slower here than one just written. Five runs, not
/// three: this VM's disk reads the first quarter second of a file at about twice its
/// settled speed (the host's cache), so one fast run in three moved the median.
#[test]
fn emitted_fio_job_reads_as_fast_as_spate() {
    let _alone = one_at_a_time();
    let base = direct_capable_dir();
    for backend in BACKENDS {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let target = dir.path().to_str().unwrap();
        let job = [
            "--io",
            backend,
            "--rw",
            "read",
            "--bs",
            "1M",
            "--iodepth",
            "8",
            "--direct",
            "--size",
            "128M",
            "--runtime",
            "2",
        ];
        let emitted = spate_bench(dir.path(), &[&["--emit-fio"][..], &job, &[target]].concat());
        assert!(emitted.status.success(), "{}", stderr_of(&emitted));
        let text = String::from_utf8(emitted.stdout).unwrap();
        let engine = if backend == "uring" {
            "ioengine=io_uring"
        } else {
            "ioengine=psync"
        };
        for line in ["direct=1", "rw=read", "bs=1048576", engine, "iomem=shmhuge"] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // The huge pages the job's comment asks for, reserved as it says.
        let _reserved = HugePages::reserve_as_told(&text);
        std::fs::write(dir.path().join("job.fio"), &text).unwrap();
        let test_file = dir.path().join("spate-fio.test");
        let (mut fio, mut spate) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let _ = std::fs::remove_file(&test_file);
            let out = Command::new("fio")
                .args(["job.fio", "--output-format=json", "--output=fio.json"])
                .current_dir(dir.path())
                .output()
                .expect("running fio (apt-get install fio)");
            assert!(out.status.success(), "fio: {}", stderr_of(&out));
            let doc: Value =
                serde_json::from_slice(&std::fs::read(dir.path().join("fio.json")).unwrap())
                    .unwrap();
            assert_eq!(doc["jobs"][0]["read"]["io_bytes"], 128 << 20, "one pass");
            fio.push(fio_read_mb_s(&dir.path().join("fio.json")));
            std::fs::remove_file(&test_file).unwrap();

            let report = json_of(&spate_bench(
                dir.path(),
                &[&["--json"][..], &job, &[target]].concat(),
            ));
            assert_eq!(report["direct"], true, "{report}");
            assert_eq!(report["jobs"][0]["read"]["bytes"], 128 << 20, "one pass");
            spate.push(report["jobs"][0]["read"]["mb_s"].as_f64().unwrap());
        }
        let ratio = median(spate.clone()) / median(fio.clone());
        // Seen with --nocapture: the spread under today's load.
        eprintln!("--io {backend}: MB/s fio {fio:.0?} spate {spate:.0?}, spate/fio {ratio:.2}");
        assert!(
            (0.7..=1.3).contains(&ratio),
            "--io {backend}: spate/fio {ratio:.2}, MB/s fio {fio:.0?} spate {spate:.0?}"
        );
    }
}

/// fio's io_uring engine keeps every slot busy (iodepth_batch_submit=1,
/// iodepth_batch_complete_min=1): its latency × IOPS, the operations in flight by
/// Little's law, is the queue depth. spate's uring engine refills each slot as soon
/// as its completion is reaped, so it reports the same: its `in_flight_mean` (from
/// the first submission to the last completion), and near that its own figures. (Reaping every ready completion before refilling any
/// kept about 25 of 32 in flight.) Direct 4 KiB random reads at Q32, where the disk
/// is slower than the submissions.
#[test]
fn uring_engine_keeps_iodepth_in_flight_as_fio() {
    let _alone = one_at_a_time();
    in_flight_against_fio("randread", "read");
}

/// The same for writes, which go through the same loop but also swap and stamp their
/// buffer before each submission: direct 4 KiB random writes at Q32, without an end
/// fsync (which neither tool counts as an operation, so it would lower latency × IOPS
/// by its share of the time, differently from run to run).
#[test]
fn uring_engine_keeps_iodepth_in_flight_on_writes_as_fio() {
    let _alone = one_at_a_time();
    in_flight_against_fio("randwrite", "write");
}

/// Runs fio and then spate on `rw` (4 KiB, Q32, direct, 64 MiB, 1 s) and checks both
/// keep 32 in flight.
fn in_flight_against_fio(rw: &str, dir_key: &str) {
    let base = direct_capable_dir();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let target = dir.path().to_str().unwrap();
    let little = |iops: f64, lat_ns: f64| iops * lat_ns / 1e9;

    let out = Command::new("fio")
        .args([
            "--name=inflight",
            "--filename=fio.test",
            "--ioengine=io_uring",
            &format!("--rw={rw}"),
            "--norandommap=1",
            "--direct=1",
            "--bs=4k",
            "--iodepth=32",
            "--size=64M",
            "--runtime=1",
            "--output-format=json",
        ])
        .current_dir(dir.path())
        .output()
        .expect("running fio (apt-get install fio)");
    assert!(out.status.success(), "fio: {}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fio_dir = &doc["jobs"][0][dir_key];
    let fio_in_flight = little(
        fio_dir["iops"].as_f64().unwrap(),
        fio_dir["lat_ns"]["mean"].as_f64().unwrap(),
    );
    assert!(
        fio_in_flight > 31.0,
        "fio {rw}: {fio_in_flight:.2} in flight"
    );
    std::fs::remove_file(dir.path().join("fio.test")).unwrap();

    let report = json_of(&spate_bench(
        dir.path(),
        &[
            "--json",
            "--io",
            "uring",
            "--rw",
            rw,
            "--bs",
            "4k",
            "--iodepth",
            "32",
            "--direct",
            "--size",
            "64M",
            "--runtime",
            "1",
            target,
        ],
    ));
    let job = &report["jobs"][0];
    let in_flight = job["in_flight_mean"].as_f64().unwrap();
    let from_figures = little(
        job[dir_key]["iops"].as_f64().unwrap(),
        job[dir_key]["lat_ns"]["mean"].as_f64().unwrap(),
    );
    eprintln!("{rw} in flight: fio {fio_in_flight:.2}, spate {in_flight:.2} ({from_figures:.2})");
    assert!(
        in_flight > 31.0,
        "spate {rw}: {in_flight:.2} in flight, {job}"
    );
    // The figures' time also holds the ring's setup (fio's does not), so they give
    // a little less, never more.
    assert!(
        from_figures <= in_flight * 1.001 && from_figures > 29.0,
        "{rw}: latency × IOPS {from_figures:.2} against in_flight_mean {in_flight:.2}"
    );
}

/// The `io_uring_enter` calls of a run under `strace -f -c`, and the JSON it printed.
fn enter_calls(dir: &Path, program: &str, args: &[&str]) -> (f64, Value) {
    let out = Command::new("strace")
        .args([
            "-f",
            "-c",
            "-e",
            "trace=io_uring_enter",
            "-o",
            "calls.txt",
            program,
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running strace");
    assert!(out.status.success(), "{program}: {}", stderr_of(&out));
    let table = std::fs::read_to_string(dir.join("calls.txt")).unwrap();
    // "100.00    0.165466          28      5863           io_uring_enter"
    let calls = table
        .lines()
        .find(|l| l.trim_end().ends_with(" io_uring_enter"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no io_uring_enter in:\n{table}"));
    (calls.parse().unwrap(), json_of(&out))
}

/// At queue depth 1 fio's io_uring engine makes two calls per operation: its commit
/// submits without waiting (`io_uring_enter(1, 0, GETEVENTS)`), then its getevents
/// waits (`io_uring_enter(0, 1, GETEVENTS)`) when no completion is there yet. spate's
/// engine makes the same calls: when it submitted and waited in one, each 4 KiB
/// direct write at Q1 cost one call fewer than fio's, and spate measured more IOPS
/// than fio on the same disk.
#[test]
fn uring_engine_makes_fios_system_calls_per_operation() {
    let _alone = one_at_a_time();
    let base = direct_capable_dir();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let target = dir.path().to_str().unwrap();
    let (fio_calls, doc) = enter_calls(
        dir.path(),
        "fio",
        &[
            "--name=calls",
            "--filename=fio.test",
            "--ioengine=io_uring",
            "--rw=randwrite",
            "--norandommap=1",
            "--direct=1",
            "--bs=4k",
            "--iodepth=1",
            "--size=16M",
            "--runtime=1",
            "--output-format=json",
        ],
    );
    let fio_ios = doc["jobs"][0]["write"]["total_ios"].as_f64().unwrap();
    std::fs::remove_file(dir.path().join("fio.test")).unwrap();

    let (spate_calls, report) = enter_calls(
        dir.path(),
        env!("CARGO_BIN_EXE_spate"),
        &[
            "bench",
            "-q",
            "--json",
            "--io",
            "uring",
            "--rw",
            "randwrite",
            "--bs",
            "4k",
            "--iodepth",
            "1",
            "--direct",
            "--size",
            "16M",
            "--runtime",
            "1",
            target,
        ],
    );
    let spate_ios = report["jobs"][0]["write"]["ios"].as_f64().unwrap();
    let (fio_per_op, spate_per_op) = (fio_calls / fio_ios, spate_calls / spate_ios);
    eprintln!("io_uring_enter per operation: fio {fio_per_op:.2}, spate {spate_per_op:.2}");
    assert!(fio_per_op > 1.5, "fio: {fio_per_op:.2} calls per operation");
    assert!(
        (spate_per_op - fio_per_op).abs() < 0.25,
        "io_uring_enter per operation: spate {spate_per_op:.2}, fio {fio_per_op:.2}"
    );
}

/// The emitted job reads into page-aligned buffers under fio, as spate does: fio
/// aligns its buffers only for direct I/O unless told (`iomem_align`), and the
/// kernel's copy into a buffer 16 bytes past a page cost fio twice the CPU of spate's
/// on buffered reads. Seen through psync's pread64 calls (io_uring's are not visible
/// to strace): every read of the job's block size lands on a page boundary.
#[test]
fn emitted_fio_job_reads_into_page_aligned_buffers() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().to_str().unwrap();
    let emitted = spate_bench(
        dir.path(),
        &[
            "--emit-fio",
            "--io",
            "threads",
            "--rw",
            "read",
            "--bs",
            "64k",
            "--iodepth",
            "1",
            "--size",
            "1M",
            target,
        ],
    );
    assert!(emitted.status.success(), "{}", stderr_of(&emitted));
    std::fs::write(dir.path().join("job.fio"), &emitted.stdout).unwrap();
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=pread64", "-e", "raw=pread64"])
        .args(["-o", "trace.txt", "fio", "job.fio", "--output-format=json"])
        .current_dir(dir.path())
        .output()
        .expect("running strace and fio");
    assert!(out.status.success(), "fio: {}", stderr_of(&out));
    let trace = std::fs::read_to_string(dir.path().join("trace.txt")).unwrap();
    // "PID pread64(0x6, 0x560ad6451000, 0x10000, 0x20000) = 0x10000"
    let buffers: Vec<u64> = trace
        .lines()
        .filter_map(|line| {
            let args = line.split_once("pread64(")?.1;
            let fields: Vec<&str> = args.split(", ").collect();
            (fields.get(2) == Some(&"0x10000"))
                .then(|| u64::from_str_radix(fields[1].trim_start_matches("0x"), 16).unwrap())
        })
        .collect();
    assert_eq!(buffers.len(), 16, "one pass of 64 KiB reads:\n{trace}");
    assert!(
        buffers.iter().all(|b| b % 4096 == 0),
        "buffers off a page: {buffers:x?}"
    );
}
