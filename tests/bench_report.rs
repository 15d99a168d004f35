//! What `spate bench` reports beyond the figures: the machine and file system the run
//! was on (checked against uname, findmnt and /sys), the data pattern, the fio bridge
//! and the comparison of results.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn spate_bench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .arg("bench")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running spate bench")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr_of(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

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
