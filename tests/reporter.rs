//! Every job reports a failed path the same way: one line on stderr, `spate: PATH:
//! cause`, the cause in words as the peer tool says it (never `(os error N)`), and in
//! JSON output the stable `error_kind`.

mod common;

use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use common::{as_nobody, stderr_of, write};

/// Every stderr line is one `spate: …` line in words.
fn assert_lines_in_words(stderr: &str) {
    assert!(!stderr.is_empty(), "nothing on stderr");
    for line in stderr.lines() {
        assert!(line.starts_with("spate: "), "{stderr}");
        assert!(!line.contains("os error"), "{stderr}");
    }
}

/// The line about `path` on stderr, with what follows `spate: PATH: `.
fn cause_for<'a>(stderr: &'a str, path: &str) -> &'a str {
    let head = format!("spate: {path}: ");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(head.as_str()))
        .unwrap_or_else(|| panic!("no line about {path}: {stderr}"))
}

/// A tree with one file nobody (uid 65534) may read, and one it may.
fn tree_with_secret(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    write(&dir.join("tree/open.txt"), b"open\n");
    write(&dir.join("tree/secret.txt"), b"secret\n");
    std::fs::set_permissions(
        dir.join("tree/secret.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for d in [dir, &dir.join("tree")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

/// What a peer run as nobody says about `path`, after its own name.
fn peer_as_nobody(dir: &Path, tool: &[&str]) -> String {
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(tool)
        .current_dir(dir)
        .output()
        .unwrap();
    stderr_of(&out)
}

#[test]
fn hash_reports_an_unreadable_file_in_sha256sums_words() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_with_secret(dir);
    for json in [false, true] {
        let mut args = vec!["hash", "-a", "sha256", "tree"];
        if json {
            args.insert(1, "--json");
        }
        let out = as_nobody(dir, &args);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr_of(&out);
        assert_lines_in_words(&err);
        let cause = cause_for(&err, "tree/secret.txt");
        let peer = peer_as_nobody(dir, &["sha256sum", "tree/secret.txt"]);
        // sha256sum: tree/secret.txt: Permission denied
        let peer_cause = peer.trim_end().rsplit(": ").next().unwrap();
        assert!(
            cause.ends_with(peer_cause),
            "spate {cause:?}, sha256sum {peer:?}"
        );
        // The manifest lists what was hashed, never the error.
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("open.txt") && !stdout.contains("secret"));
    }
}

#[test]
fn hash_reports_a_missing_root_as_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(tmp.path())
        .args(["hash", "no-such-dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_lines_in_words(&err);
    assert!(
        cause_for(&err, "no-such-dir").ends_with("No such file or directory"),
        "{err}"
    );
}

#[test]
fn check_json_carries_error_kind_and_text_says_the_cause_in_words() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_with_secret(dir);
    let manifest = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(dir)
        .args(["hash", "tree"])
        .output()
        .unwrap();
    assert!(manifest.status.success());
    write(&dir.join("m.b3"), &manifest.stdout);
    std::fs::set_permissions(
        dir.join("m.b3"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();

    let out = as_nobody(dir, &["check", "--json", "m.b3"]);
    assert_eq!(out.status.code(), Some(1));
    let objs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let secret = objs
        .iter()
        .find(|o| o["path"] == "tree/secret.txt")
        .expect("an object for the unreadable file");
    assert_eq!(secret["status"], "ERROR");
    assert_eq!(secret["error_kind"], "permission_denied");
    let words = secret["error"].as_str().unwrap();
    assert!(words.ends_with("Permission denied") && !words.contains("os error"));
    let open = objs.iter().find(|o| o["path"] == "tree/open.txt").unwrap();
    assert_eq!(open["status"], "OK");
    assert!(open.get("error_kind").is_none());

    // The text report says the same words, as sha256sum -c names the file.
    let out = as_nobody(dir, &["check", "m.b3"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("tree/secret.txt: "))
        .unwrap();
    assert!(line.contains(words) && !line.contains("os error"), "{line}");
}

#[test]
fn check_audit_reports_an_unreadable_directory_on_one_line() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_with_secret(dir);
    write(&dir.join("tree/locked/x"), b"x\n");
    let manifest = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(dir)
        .args(["hash", "--json", "tree/open.txt"])
        .output()
        .unwrap();
    write(&dir.join("m.json"), &manifest.stdout);
    std::fs::set_permissions(dir.join("m.json"), PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.join("tree/locked"), PermissionsExt::from_mode(0o700)).unwrap();
    let out = as_nobody(dir, &["check", "--audit", "tree", "m.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let cause = cause_for(&err, "tree/locked");
    assert!(cause.contains("Permission denied"), "{err}");
    assert!(!err.contains("os error"), "{err}");
}

#[test]
fn pack_reports_an_unreadable_file_in_gnu_tars_words() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_with_secret(dir);
    let out = as_nobody(dir, &["pack", "-o", "x.tar", "tree"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_lines_in_words(&err);
    let cause = cause_for(&err, "tree/secret.txt");
    // tar: tree/secret.txt: Cannot open: Permission denied
    // (Not to /dev/null: GNU tar then reads no file at all.)
    let peer = peer_as_nobody(dir, &["tar", "-cf", "peer.tar", "tree"]);
    let peer_cause = peer.lines().next().unwrap().rsplit(": ").next().unwrap();
    assert!(cause.ends_with(peer_cause), "spate {cause:?}, tar {peer:?}");
    // The rest was archived.
    assert!(dir.join("x.tar").exists());
}

/// A tar archive of `tree/big.bin` (64 KiB), cut in the middle of its data.
fn truncated_archive(dir: &Path) -> &'static str {
    write(&dir.join("src/tree/big.bin"), &common::bytes(64 << 10, 7));
    let tar = StdCommand::new("tar")
        .args(["-cf", "../cut.tar", "tree"])
        .current_dir(dir.join("src"))
        .status()
        .unwrap();
    assert!(tar.success());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cut.tar"))
        .unwrap();
    file.set_len(20 << 10).unwrap();
    "cut.tar"
}

#[test]
fn unpack_and_list_name_a_truncated_archive_and_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = truncated_archive(dir);
    std::fs::create_dir(dir.join("out")).unwrap();
    for args in [
        &["unpack", "-C", "out", archive][..],
        &["unpack", "-O", archive][..],
    ] {
        let out = Command::cargo_bin("spate")
            .unwrap()
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr_of(&out);
        assert_lines_in_words(&err);
        let cause = cause_for(&err, archive);
        assert!(cause.contains("tree/big.bin"), "{args:?}: {err}");
        assert!(cause.contains("truncated"), "{args:?}: {err}");
    }
}

#[test]
fn unpack_refuses_a_way_out_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("src/a/x"), b"x\n");
    // With -P, GNU tar stores `a/../../evil` as given: a name that leads out.
    write(&dir.join("evil"), b"outside\n");
    let tar = StdCommand::new("tar")
        .args(["-cPf", "../evil.tar", "a/x", "a/../../evil"])
        .current_dir(dir.join("src"))
        .status()
        .unwrap();
    assert!(tar.success());
    std::fs::remove_file(dir.join("evil")).unwrap();
    std::fs::create_dir(dir.join("out")).unwrap();
    let out = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(dir)
        .args(["unpack", "-C", "out", "evil.tar"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_lines_in_words(&err);
    assert!(
        cause_for(&err, "a/../../evil").starts_with("refused: "),
        "{err}"
    );
    assert!(dir.join("out/a/x").exists() && !dir.join("evil").exists());
}

#[test]
fn list_reports_filters_that_matched_nothing_one_line_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("src/tree/a"), b"a\n");
    let tar = StdCommand::new("tar")
        .args(["-cf", "../x.tar", "tree"])
        .current_dir(dir.join("src"))
        .status()
        .unwrap();
    assert!(tar.success());
    let out = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(dir)
        .args(["list", "x.tar", "nope1", "nope2"])
        .output()
        .unwrap();
    // GNU tar: "tar: nope1: Not found in archive" for each, exit 2.
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_lines_in_words(&err);
    assert_eq!(cause_for(&err, "nope1"), "not found in archive");
    assert_eq!(cause_for(&err, "nope2"), "not found in archive");

    let archive = truncated_archive(dir);
    let out = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(dir)
        .args(["list", "--json", archive])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_lines_in_words(&err);
    assert!(cause_for(&err, archive).contains("tree/big.bin"), "{err}");
}

#[test]
fn merge_names_the_path_with_conflicting_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = "0".repeat(64);
    let b = "1".repeat(64);
    write(&dir.join("m1.b3"), format!("{a}  tree/f\n").as_bytes());
    write(&dir.join("m2.b3"), format!("{b}  tree/f\n").as_bytes());
    let out = Command::cargo_bin("spate")
        .unwrap()
        .current_dir(dir)
        .args(["merge", "m1.b3", "m2.b3", "-o", "all.b3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_lines_in_words(&err);
    assert_eq!(
        cause_for(&err, "tree/f"),
        "different digests in m1.b3 (line 1) and m2.b3 (line 1)"
    );
    assert!(!dir.join("all.b3").exists());
}
