//! `spate check` on JSON manifests with metadata: CORRUPT (content changed, size and
//! mtime did not), MODIFIED (an edit), MOVED (`--audit` finds a MISSING file's content
//! under another name); and line manifests keeping `sha256sum -c`'s FAILED.

mod common;

use std::path::Path;
use std::process::{Command as StdCommand, Output};

use assert_cmd::Command;
use common::*;
use serde_json::Value;

/// Runs `spate check --io BACKEND ARGS...` in `dir`.
fn check(dir: &Path, backend: &str, args: &[&str]) -> Output {
    Command::cargo_bin("spate")
        .expect("the spate binary")
        .current_dir(dir)
        .args(["check", "--io", backend])
        .args(args)
        .output()
        .expect("running spate check")
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tree `t` of a few files of distinct content, and `m.json` written by
/// `spate hash --json t` (with metadata) in `dir`.
fn tree_and_manifest(dir: &Path) {
    for (i, name) in ["a.bin", "b.bin", "c.bin", "sub/d.bin"].iter().enumerate() {
        write(
            &dir.join("t").join(name),
            &bytes(3000 + i * 1000, i as u64 + 7),
        );
    }
    let out = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(dir)
        .args(["hash", "--json", "t", "-o", "m.json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// Flips one byte of `path` in place and puts its mtime back with `touch -r`, as
/// bitrot (or someone covering their tracks) would leave it.
fn flip_byte_keep_mtime(dir: &Path, path: &Path) {
    let reference = dir.join("mtime-reference");
    std::fs::copy(path, &reference).unwrap();
    run_ok(StdCommand::new("touch").arg("-r").arg(path).arg(&reference));
    let mut data = std::fs::read(path).unwrap();
    data[100] ^= 0x01;
    std::fs::write(path, &data).unwrap();
    run_ok(StdCommand::new("touch").arg("-r").arg(&reference).arg(path));
    std::fs::remove_file(&reference).unwrap();
}

fn run_ok(cmd: &mut StdCommand) {
    let status = cmd.status().expect("running a coreutils tool");
    assert!(status.success(), "{cmd:?}");
}

/// Moves the mtime of `path` one second forward, so an edit is told by it even on a
/// file system with coarse timestamps.
fn bump_mtime(path: &Path) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    set_mtime(path, secs as i64 + 1, 0);
}

const CORRUPT_WARNING: &str = "spate: WARNING: 1 file is CORRUPT: content changed while \
                               size and modification time did not (bitrot or tampering)";

#[test]
fn flipped_byte_with_restored_mtime_is_corrupt_and_fails() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        tree_and_manifest(dir);
        flip_byte_keep_mtime(dir, &dir.join("t/b.bin"));

        let out = check(dir, backend, &["m.json"]);
        assert_eq!(out.status.code(), Some(1), "{backend}: {}", stderr_of(&out));
        let stdout = stdout_of(&out);
        assert!(stdout.contains("t/b.bin: CORRUPT\n"), "{backend}: {stdout}");
        assert!(stdout.contains("t/a.bin: OK\n"), "{backend}: {stdout}");
        assert!(!stdout.contains("FAILED"), "{backend}: {stdout}");
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("3 OK, 0 MODIFIED, 1 CORRUPT, 0 MOVED, 0 FAILED"),
            "{backend}: {stderr}"
        );
        assert!(
            stderr.trim_end().ends_with(CORRUPT_WARNING),
            "{backend}: said last: {stderr}"
        );
    }
}

#[test]
fn corrupt_warning_is_printed_with_quiet_status_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_and_manifest(dir);
    flip_byte_keep_mtime(dir, &dir.join("t/a.bin"));
    for flag in ["-q", "--status", "--json"] {
        let out = check(dir, "threads", &[flag, "m.json"]);
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert!(
            stderr_of(&out).contains(CORRUPT_WARNING),
            "{flag}: {}",
            stderr_of(&out)
        );
    }
    let out = check(dir, "threads", &["--status", "m.json"]);
    assert!(out.stdout.is_empty(), "--status prints no file lines");
    let out = check(dir, "threads", &["--json", "m.json"]);
    let statuses: Vec<(String, String)> = stdout_of(&out)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("t/a.bin".into(), "CORRUPT".into())),
        "{statuses:?}"
    );
}

#[test]
fn append_with_new_mtime_is_modified_and_passes() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        tree_and_manifest(dir);
        let path = dir.join("t/c.bin");
        let mut data = std::fs::read(&path).unwrap();
        data.extend_from_slice(b"appended\n");
        std::fs::write(&path, &data).unwrap();
        bump_mtime(&path);

        let out = check(dir, backend, &["--stats", "m.json"]);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", stderr_of(&out));
        assert!(stdout_of(&out).contains("t/c.bin: MODIFIED\n"), "{backend}");
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("1 MODIFIED, 0 CORRUPT"),
            "{backend}: {stderr}"
        );
        assert!(!stderr.contains("WARNING"), "{backend}: {stderr}");

        // Any change fails when asked.
        let out = check(dir, backend, &["--fail-on-change", "m.json"]);
        assert_eq!(out.status.code(), Some(1), "{backend}: {}", stderr_of(&out));
        assert!(stdout_of(&out).contains("t/c.bin: MODIFIED\n"), "{backend}");
    }
}

#[test]
fn same_size_rewrite_with_new_mtime_is_modified_not_corrupt() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        tree_and_manifest(dir);
        let path = dir.join("t/a.bin");
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        std::fs::write(&path, bytes(len, 999)).unwrap();
        bump_mtime(&path);

        let out = check(dir, backend, &["m.json"]);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", stderr_of(&out));
        assert!(stdout_of(&out).contains("t/a.bin: MODIFIED\n"), "{backend}");
    }
}

#[test]
fn line_manifests_keep_failed_as_the_peers_say_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_and_manifest(dir);
    let files = [Path::new("t/a.bin").to_path_buf()];
    let b3 = peer(dir, "b3sum", &[], &files).stdout;
    std::fs::write(dir.join("m.b3"), &b3).unwrap();
    let sha = peer(dir, "sha256sum", &[], &files).stdout;
    std::fs::write(dir.join("m.sha256"), &sha).unwrap();
    flip_byte_keep_mtime(dir, &dir.join("t/a.bin"));

    for (manifest, tool) in [("m.b3", "b3sum"), ("m.sha256", "sha256sum")] {
        let peer_out = StdCommand::new(tool)
            .current_dir(dir)
            .args(["-c", manifest])
            .output()
            .unwrap();
        assert_eq!(peer_out.status.code(), Some(1), "{tool}");
        let out = check(dir, "threads", &[manifest]);
        assert_eq!(out.status.code(), Some(1), "{manifest}");
        assert_eq!(
            stdout_of(&out),
            String::from_utf8_lossy(&peer_out.stdout),
            "{manifest}: spate says what {tool} -c says"
        );
        assert!(!stderr_of(&out).contains("CORRUPT"), "{}", stderr_of(&out));
    }
}

#[test]
fn json_without_metadata_keeps_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_and_manifest(dir);
    let stripped: String = std::fs::read_to_string(dir.join("m.json"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let obj = v.as_object_mut().unwrap();
            for key in ["mtime_ns", "ctime_ns", "inode", "dev", "hashed_ns"] {
                obj.remove(key);
            }
            format!("{v}\n")
        })
        .collect();
    std::fs::write(dir.join("plain.json"), stripped).unwrap();
    flip_byte_keep_mtime(dir, &dir.join("t/a.bin"));

    let out = check(dir, "threads", &["plain.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout_of(&out).contains("t/a.bin: FAILED\n"),
        "{}",
        stdout_of(&out)
    );
    assert!(!stderr_of(&out).contains("CORRUPT"), "{}", stderr_of(&out));
}

#[test]
fn renamed_file_is_moved_with_audit() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        tree_and_manifest(dir);
        std::fs::rename(dir.join("t/b.bin"), dir.join("t/sub/renamed.bin")).unwrap();

        let out = check(dir, backend, &["--audit", "t", "m.json"]);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", stderr_of(&out));
        let stdout = stdout_of(&out);
        assert!(
            stdout.contains("t/b.bin -> t/sub/renamed.bin: MOVED\n"),
            "{backend}: {stdout}"
        );
        assert!(!stdout.contains("MISSING"), "{backend}: {stdout}");
        assert!(!stdout.contains("NEW"), "{backend}: {stdout}");

        let out = check(dir, backend, &["--audit", "t", "--json", "m.json"]);
        let moved: Vec<Value> = stdout_of(&out)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["status"] == "MOVED")
            .collect();
        assert_eq!(moved.len(), 1, "{backend}");
        assert_eq!(moved[0]["path"], "t/sub/renamed.bin");
        assert_eq!(moved[0]["from"], "t/b.bin");
        assert_eq!(moved[0]["line"], 2);
        assert_eq!(moved[0]["algos"], serde_json::json!(["blake3"]));

        let out = check(
            dir,
            backend,
            &["--audit", "t", "--fail-on-change", "m.json"],
        );
        assert_eq!(out.status.code(), Some(1), "{backend}: a move is a change");

        // Without --audit nothing tells where it went.
        let out = check(dir, backend, &["m.json"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout_of(&out).contains("t/b.bin: MISSING\n"));
    }
}

#[test]
fn a_copy_beyond_the_move_is_new_and_other_missing_files_stay_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_and_manifest(dir);
    let content = std::fs::read(dir.join("t/a.bin")).unwrap();
    std::fs::remove_file(dir.join("t/a.bin")).unwrap();
    std::fs::remove_file(dir.join("t/c.bin")).unwrap();
    write(&dir.join("t/x/a.bin"), &content);
    write(&dir.join("t/y/copy.bin"), &content);

    let out = check(dir, "threads", &["--audit", "t", "m.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    // The copy with the same file name is the one that moved.
    assert!(stdout.contains("t/a.bin -> t/x/a.bin: MOVED\n"), "{stdout}");
    assert!(stdout.contains("t/y/copy.bin: NEW\n"), "{stdout}");
    assert!(stdout.contains("t/c.bin: MISSING\n"), "{stdout}");
    assert_eq!(stdout.lines().count(), 5, "{stdout}");

    // --ignore-missing: the move is still told, the file that is gone is not.
    let out = check(
        dir,
        "threads",
        &["--audit", "t", "--ignore-missing", "m.json"],
    );
    let stdout = stdout_of(&out);
    assert!(stdout.contains("t/a.bin -> t/x/a.bin: MOVED\n"), "{stdout}");
    assert!(!stdout.contains("MISSING"), "{stdout}");
}

/// Paths of the files under `t/` that spate opened, by `strace`.
fn opened_under_t(dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("strace")
        .current_dir(dir)
        .args(["-f", "-e", "trace=open,openat,openat2", "-o", "trace"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .output()
        .expect("strace runs spate");
    assert!(out.status.code().is_some(), "{}", stderr_of(&out));
    std::fs::read_to_string(dir.join("trace")).unwrap()
}

#[test]
fn audit_reads_only_new_files_the_size_of_a_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_and_manifest(dir);
    std::fs::rename(dir.join("t/c.bin"), dir.join("t/moved.bin")).unwrap();
    write(&dir.join("t/other-size.bin"), &bytes(12345, 1));
    let args = ["check", "--io", "threads", "--audit", "t", "m.json"];

    let trace = opened_under_t(dir, &args);
    let opened = |name: &str| {
        trace
            .lines()
            .any(|l| l.contains(&format!("{name}\"")) && !l.contains("O_DIRECTORY"))
    };
    assert!(opened("moved.bin"), "the candidate is read: {trace}");
    assert!(
        !opened("other-size.bin"),
        "a NEW file of another size is not read"
    );

    // Nothing missing: no NEW file is read at all.
    std::fs::rename(dir.join("t/moved.bin"), dir.join("t/c.bin")).unwrap();
    let trace = opened_under_t(dir, &args);
    let opened = |name: &str| trace.lines().any(|l| l.contains(&format!("{name}\"")));
    assert!(!opened("other-size.bin"), "{trace}");
}
