//! Settings too large to run with are refused up front with exit 2 and a line naming
//! the option and what it allows, instead of a panic (exit 101) or an exhausted machine.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs spate in `dir`, killing it if it has not finished within a minute (a setting
/// that is not refused may start a hundred million readers).
fn run_bounded(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .current_dir(dir)
        .args(args.iter().map(OsStr::new))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running spate");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waiting for spate").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collecting spate's output")
}

/// A tree, a manifest of it, and the command line of each job that reads files, with
/// `limits` where the job's options go.
fn jobs_with(limits: &[&'static str]) -> Vec<Vec<&'static str>> {
    let mut hash = vec!["hash"];
    hash.extend(limits);
    hash.push("t");
    let mut check = vec!["check"];
    check.extend(limits);
    check.push("t.b3");
    let mut pack = vec!["pack", "-o", "t.tar"];
    // pack's reader count has no short option (tar's -j is bzip2) and its own name.
    pack.extend(limits.iter().map(|&a| match a {
        "-j" | "--jobs" => "--readers",
        a => a,
    }));
    pack.push("t");
    vec![hash, check, pack]
}

fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("t/a"), b"a\n");
    let manifest = format!("{}  t/a\n", blake3::hash(b"a\n").to_hex());
    write(&tmp.path().join("t.b3"), manifest.as_bytes());
    tmp
}

#[test]
fn huge_jobs_and_queue_depths_exit_2_naming_the_option_and_range() {
    let tmp = tree();
    let cases: [(&[&str], &str, &str); 5] = [
        (&["-j", "100000000"], "--jobs", "1 to 1024"),
        (&["--jobs", "0"], "--jobs", "1 to 1024"),
        (
            &["--queue-depth", "18446744073709551615"],
            "--queue-depth",
            "1 to 65536",
        ),
        (
            &["--queue-depth", "100000000"],
            "--queue-depth",
            "1 to 65536",
        ),
        (&["--queue-depth", "0"], "--queue-depth", "1 to 65536"),
    ];
    for (limits, option, range) in cases {
        for args in jobs_with(limits) {
            let out = run_bounded(tmp.path(), &args);
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            let option = if args[0] == "pack" && option == "--jobs" {
                "--readers"
            } else {
                option
            };
            assert!(
                err.contains(option) && err.contains(range),
                "{args:?}: {err}"
            );
        }
    }
    assert!(
        !tmp.path().join("t.tar").exists(),
        "no archive from a refused run"
    );
}

#[test]
fn buffers_that_would_hold_more_than_16_gib_exit_2() {
    let tmp = tree();
    for limits in [
        &["--buffer-size", "1GiB", "--queue-depth", "1000"][..],
        &["--buffer-size", "1GiB", "-j", "1024"][..],
        &["--buffer-size", "64MiB", "--queue-depth", "65536"][..],
    ] {
        for args in jobs_with(limits) {
            let out = run_bounded(tmp.path(), &args);
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains("would hold") && err.contains("at most 16 GiB"),
                "{args:?}: {err}"
            );
        }
    }
}

#[test]
fn the_largest_allowed_settings_still_run() {
    let tmp = tree();
    for limits in [
        &["--io", "threads", "-j", "1024"][..],
        &[
            "--io",
            "threads",
            "--queue-depth",
            "65536",
            "--buffer-size",
            "4k",
        ][..],
    ] {
        let mut args = vec!["hash"];
        args.extend(limits);
        args.push("t");
        let out = run_bounded(tmp.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
    }
}
