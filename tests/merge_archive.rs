//! `spate pack --shard K/N` and `spate merge` of the shard archives: the merged archive
//! extracts, under GNU tar, `zstd -dc | tar -x` and `spate unpack`, to the tree the
//! unsharded archive extracts to, and lists the same members.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn run(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<OsString> = os(args);
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    spate(dir, &refs)
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", stderr_of(&out));
    out
}

/// Files of several frames, awkward names, a hard link pair, symbolic links, an empty
/// directory and directories with odd modes and old mtimes.
fn rich_tree(root: &Path) {
    make_tree(root, true);
    std::fs::hard_link(root.join("with space.txt"), root.join("hard link")).unwrap();
    std::os::unix::fs::symlink("sizes/f1.bin", root.join("link")).unwrap();
    let exec = root.join("many/exec.sh");
    write(&exec, b"#!/bin/sh\n");
    std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o751)).unwrap();
    std::fs::set_permissions(root.join("deep/a"), std::fs::Permissions::from_mode(0o750)).unwrap();
    for (i, dir) in [
        "",
        "deep",
        "deep/a",
        "deep/a/b",
        "many",
        "empty-dir",
        "sizes",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(dir), 1_100_000_000 + i as i64 * 1000, 0);
    }
}

/// Every entry below `root`: kind, mode, mtime (not for symlinks), content or target,
/// and the other names of a hard-linked file.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            let desc = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o} {}", meta.mtime())
            } else if meta.file_type().is_symlink() {
                format!(
                    "symlink -> {}",
                    std::fs::read_link(&path).unwrap().display()
                )
            } else {
                let data = std::fs::read(&path).unwrap();
                if meta.nlink() > 1 {
                    groups
                        .entry((meta.dev(), meta.ino()))
                        .or_default()
                        .push(rel.clone());
                }
                format!(
                    "file {mode:o} {} {}",
                    meta.mtime(),
                    blake3::hash(&data).to_hex()
                )
            };
            out.insert(rel, desc);
        }
    }
    for names in groups.values_mut() {
        names.sort();
        for name in names.iter() {
            let others = format!(" linked with {:?}", names);
            out.get_mut(name).unwrap().push_str(&others);
        }
    }
    out
}

/// Asserts two snapshots are equal, naming the first entry that differs.
fn assert_same(got: &BTreeMap<Vec<u8>, String>, want: &BTreeMap<Vec<u8>, String>, what: &str) {
    let keys: std::collections::BTreeSet<&Vec<u8>> = got.keys().chain(want.keys()).collect();
    for key in keys {
        assert_eq!(
            got.get(key),
            want.get(key),
            "{what}: {}",
            String::from_utf8_lossy(key)
        );
    }
}

fn gnu_tar_extract(dir: &Path, archive: &str, dest: &str) {
    std::fs::create_dir_all(dir.join(dest)).unwrap();
    let out = Command::new("tar")
        .args(["-xf", archive, "-C", dest])
        .current_dir(dir)
        .output()
        .expect("GNU tar");
    assert!(
        out.status.success(),
        "tar -xf {archive}: {}",
        stderr_of(&out)
    );
}

fn zstd_pipe_extract(dir: &Path, archive: &str, dest: &str) {
    std::fs::create_dir_all(dir.join(dest)).unwrap();
    let mut zstd = Command::new("zstd")
        .args(["-dc", archive])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd");
    let tar = Command::new("tar")
        .args(["-x", "-C", dest])
        .current_dir(dir)
        .stdin(zstd.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(zstd.wait().unwrap().success());
    assert!(tar.status.success(), "{}", stderr_of(&tar));
}

fn sorted_list(dir: &Path, archive: &str) -> Vec<Vec<u8>> {
    sorted_lines(&ok(run(dir, &["list", archive])).stdout)
}

#[test]
fn three_shards_merged_extract_like_the_unsharded_archive() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rich_tree(&d.join("src/tree"));
    ok(run(
        d,
        &["pack", "-q", "-o", "whole.tar.zst", "-C", "src", "tree"],
    ));
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let part = format!("part-{k}.tar.zst");
        ok(run(
            d,
            &[
                "pack", "-q", "--shard", &shard, "-o", &part, "-C", "src", "tree",
            ],
        ));
    }
    // Given out of order: directories still end up after every file.
    ok(run(
        d,
        &[
            "merge",
            "-o",
            "all.tar.zst",
            "part-2.tar.zst",
            "part-3.tar.zst",
            "part-1.tar.zst",
        ],
    ));
    // Every member is in exactly one part.
    let parts: Vec<Vec<Vec<u8>>> = (1..=3)
        .map(|k| sorted_list(d, &format!("part-{k}.tar.zst")))
        .collect();
    let mut joined: Vec<Vec<u8>> = parts.concat();
    joined.sort();
    assert_eq!(joined, sorted_list(d, "whole.tar.zst"));
    assert!(
        parts.iter().all(|p| !p.is_empty()),
        "a shard is empty: the test splits nothing"
    );
    assert_eq!(
        sorted_list(d, "all.tar.zst"),
        sorted_list(d, "whole.tar.zst")
    );

    gnu_tar_extract(d, "whole.tar.zst", "want");
    let want = snapshot(&d.join("want"));
    assert_same(&want, &snapshot(&d.join("src")), "the unsharded archive");
    gnu_tar_extract(d, "all.tar.zst", "by-tar");
    assert_same(&snapshot(&d.join("by-tar")), &want, "tar -xf");
    zstd_pipe_extract(d, "all.tar.zst", "by-zstd");
    assert_same(&snapshot(&d.join("by-zstd")), &want, "zstd -dc | tar -x");
    ok(run(d, &["unpack", "-q", "all.tar.zst", "-C", "by-spate"]));
    assert_same(&snapshot(&d.join("by-spate")), &want, "spate unpack");

    // The merged archive's table and frames verify.
    let check = ok(run(d, &["check", "--quiet", "all.tar.zst"]));
    assert!(check.stdout.is_empty());
}

#[test]
fn pack_shard_packs_the_files_hash_shard_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_tree(&d.join("tree"), false);
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let part = format!("part-{k}.tar.zst");
        ok(run(
            d,
            &["pack", "-q", "--shard", &shard, "-o", &part, "tree"],
        ));
        let hashed = ok(run(d, &["hash", "--shard", &shard, "tree"]));
        let mut hashed: Vec<String> = String::from_utf8(hashed.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split_once("  ").unwrap().1.to_string())
            .collect();
        hashed.sort();
        let listed = ok(run(d, &["list", "--json", &part]));
        let mut files: Vec<String> = Vec::new();
        let mut dirs = 0;
        for line in String::from_utf8(listed.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            match v["type"].as_str().unwrap() {
                "file" => files.push(v["path"].as_str().unwrap().to_string()),
                "dir" => dirs += 1,
                other => panic!("{other}"),
            }
        }
        files.sort();
        assert_eq!(files, hashed, "shard {shard}");
        // Directories go to shard 1 only.
        assert_eq!(dirs > 0, k == 1, "shard {shard} has {dirs} directories");
    }
}

#[test]
fn merge_refuses_a_plain_archive_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_tree(&d.join("tree"), false);
    ok(run(
        d,
        &[
            "pack",
            "-q",
            "--shard",
            "1/2",
            "-o",
            "part-1.tar.zst",
            "tree",
        ],
    ));
    let tar = Command::new("tar")
        .args(["--zstd", "-cf", "plain.tar.zst", "tree"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(tar.status.success());
    let out = run(
        d,
        &[
            "merge",
            "-o",
            "all.tar.zst",
            "part-1.tar.zst",
            "plain.tar.zst",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr_of(&out);
    assert!(
        stderr.starts_with("spate: plain.tar.zst: no table of contents")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!d.join("all.tar.zst").exists());
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        3,
        "no temporary file is left"
    );
}

#[test]
fn merge_of_an_archive_with_itself_keeps_both_copies_as_tar_concatenate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_tree(&d.join("tree"), false);
    ok(run(d, &["pack", "-q", "-o", "x.tar.zst", "tree"]));
    let out = ok(run(
        d,
        &["merge", "-o", "twice.tar.zst", "x.tar.zst", "x.tar.zst"],
    ));
    let once = sorted_list(d, "x.tar.zst");
    assert!(
        stderr_of(&out).contains(&format!(
            "{} member names appear in more than one part",
            once.len()
        )),
        "{}",
        stderr_of(&out)
    );
    // GNU tar's own concatenation lists the same members.
    let listing = |archive: &str| {
        let out = Command::new("tar")
            .args(["-tf", archive])
            .current_dir(d)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        sorted_lines(&out.stdout)
    };
    let mut both = listing("x.tar.zst");
    both.extend(listing("x.tar.zst"));
    both.sort();
    assert_eq!(listing("twice.tar.zst"), both);
    ok(run(d, &["check", "-q", "twice.tar.zst"]));
}

#[test]
fn skipped_entries_are_announced_once_across_the_shards_as_by_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    make_tree(&tree, false);
    // Sockets and FIFOs spread over the tree, so that they belong to several shards
    // by the selection rule.
    let mut sockets = Vec::new();
    for i in 0..12 {
        let at = tree.join(format!("many/s{i:02}.sock"));
        sockets.push(std::os::unix::net::UnixListener::bind(&at).unwrap());
        let fifo =
            std::ffi::CString::new(tree.join(format!("deep/p{i:02}")).as_os_str().as_bytes())
                .unwrap();
        // SAFETY: a valid, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    }
    // An absolute root: GNU tar's "Removing leading '/'" notice is one too.
    let root = tree.to_str().unwrap().to_string();
    let whole = run(d, &["pack", "-o", "whole.tar.zst", &root]);
    assert!(whole.status.success(), "{}", stderr_of(&whole));
    let want = stderr_of(&whole);
    assert_eq!(want.matches("skipped socket").count(), 12, "{want}");
    assert_eq!(want.matches("skipped FIFO").count(), 12, "{want}");
    assert!(want.starts_with("spate: Removing leading '/'"), "{want}");
    let mut all = String::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let part = format!("part-{k}.tar.zst");
        let out = run(d, &["pack", "--shard", &shard, "-o", &part, &root]);
        assert!(out.status.success(), "{shard}: {}", stderr_of(&out));
        all.push_str(&stderr_of(&out));
    }
    assert_eq!(all, want, "cat of the shards' stderr");
    // --help says which shard prints them.
    let help = String::from_utf8(ok(run(d, &["pack", "--help"])).stdout).unwrap();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("are printed by shard 1 alone"), "{help}");
    drop(sockets);
}
