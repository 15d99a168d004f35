//! Integrity over time: JSON manifests that remember each file's metadata, and
//! `spate hash --update`, which reuses the digests of unchanged files without reading
//! them.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::{Map, Value};

type Record = Map<String, Value>;

fn run(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    spate(dir, &args)
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    out
}

fn records(json: &[u8]) -> Vec<Record> {
    String::from_utf8_lossy(json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn read_records(path: &Path) -> Vec<Record> {
    records(&std::fs::read(path).unwrap())
}

/// The record's path as bytes (`path_hex` when the name is not UTF-8).
fn name_of(record: &Record) -> Vec<u8> {
    match record.get("path_hex") {
        Some(Value::String(hex)) => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
        _ => record["path"].as_str().unwrap().as_bytes().to_vec(),
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[test]
fn json_records_each_files_stat_metadata_on_both_backends() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    for backend in BACKENDS {
        let before = now_ns();
        let out = ok(tmp.path(), &["hash", "--json", "--io", backend, "tree"]);
        let after = now_ns();
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), files_below(&tmp.path().join("tree")).len());
        for rec in &recs {
            use std::os::unix::ffi::OsStrExt;
            let name = name_of(rec);
            let path = tmp.path().join(std::ffi::OsStr::from_bytes(&name));
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ns = |s: i64, n: i64| s * 1_000_000_000 + n;
            assert_eq!(rec["size"], meta.len(), "{}", path.display());
            assert_eq!(rec["mtime_ns"], ns(meta.mtime(), meta.mtime_nsec()));
            assert_eq!(rec["ctime_ns"], ns(meta.ctime(), meta.ctime_nsec()));
            assert_eq!(rec["inode"], meta.ino());
            assert_eq!(rec["dev"], meta.dev());
            let hashed = rec["hashed_ns"].as_i64().unwrap();
            assert!(
                (before..=after).contains(&hashed),
                "{backend}: hashed_ns {hashed} not within the run"
            );
        }
    }
}

#[test]
fn check_and_merge_read_json_with_metadata_and_merge_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    let dir = tmp.path();
    ok(dir, &["hash", "--json", "-o", "whole.json", "tree"]);
    let out = ok(dir, &["check", "whole.json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": OK")).count(),
        read_records(&dir.join("whole.json")).len()
    );
    for k in 0..3 {
        let shard = format!("{k}/3");
        let part = format!("part{k}.json");
        ok(
            dir,
            &["hash", "--json", "--shard", &shard, "-o", &part, "tree"],
        );
    }
    ok(
        dir,
        &[
            "merge",
            "--shards",
            "3",
            "-o",
            "m.json",
            "part0.json",
            "part1.json",
            "part2.json",
        ],
    );
    let merged = read_records(&dir.join("m.json"));
    let whole = read_records(&dir.join("whole.json"));
    assert_eq!(merged.len(), whole.len());
    for (m, w) in merged.iter().zip(&whole) {
        for key in [
            "path", "size", "blake3", "mtime_ns", "ctime_ns", "inode", "dev",
        ] {
            assert_eq!(m.get(key), w.get(key), "{key} of {:?}", w["path"]);
        }
        assert!(m["hashed_ns"].is_i64(), "merge keeps hashed_ns");
    }
}
