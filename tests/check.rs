//! `spate check` against manifests from the real tools, and the real tools against
//! manifests from spate, on both backends.

mod common;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs `spate check --io BACKEND ARGS...` in `dir`.
fn check(dir: &Path, backend: &str, args: &[&str]) -> Output {
    let mut all: Vec<OsString> = os(&["check", "--io", backend]);
    all.extend(os(args));
    let refs: Vec<&OsStr> = all.iter().map(OsString::as_os_str).collect();
    spate(dir, &refs)
}

/// Runs spate with `args` in `dir` and returns its stdout, asserting success.
fn spate_ok(dir: &Path, args: &[&str]) -> Vec<u8> {
    let args = os(args);
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    let out = spate(dir, &refs);
    assert!(out.status.success(), "spate {args:?}: {}", stderr_of(&out));
    out.stdout
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files below `dir/sub`, as paths relative to `dir`, sorted.
fn relative_files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_below(&dir.join(sub))
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    files.sort();
    files
}

/// A tree b3sum 1.x can check too: no carriage return or non-UTF-8 names (it rejects
/// the `\r` escape and reads its check file as UTF-8).
fn b3sum_friendly_tree(root: &Path) {
    make_tree(root, false);
    write(&root.join("back\\slash"), b"b");
    write(&root.join(OsStr::from_bytes(b"new\nline")), b"n");
}

#[test]
fn manifests_written_by_spate_pass_b3sum_and_coreutils() {
    let tmp = tempfile::tempdir().unwrap();
    b3sum_friendly_tree(&tmp.path().join("b3"));
    make_tree(&tmp.path().join("all"), true);
    let cases = [
        ("b3", &["hash", "b3"][..], "b3sum", &["-c"][..]),
        (
            "all",
            &["hash", "-a", "sha256", "all"],
            "sha256sum",
            &["-c"],
        ),
        (
            "all",
            &["hash", "-a", "sha256", "--tag", "all"],
            "sha256sum",
            &["-c"],
        ),
        (
            "all",
            &["hash", "-a", "md5", "all"],
            "md5sum",
            &["-c", "--strict"],
        ),
        (
            "all",
            &["hash", "-a", "sha512", "all"],
            "sha512sum",
            &["-c"],
        ),
    ];
    for (_, args, tool, tool_args) in cases {
        let manifest = spate_ok(tmp.path(), args);
        std::fs::write(tmp.path().join("sums"), &manifest).unwrap();
        let out = Command::new(tool)
            .current_dir(tmp.path())
            .args(tool_args)
            .arg("sums")
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} -c rejects `spate {args:?}`: {}{}",
            stdout_of(&out),
            stderr_of(&out)
        );
        let oks = stdout_of(&out).matches(": OK").count();
        assert_eq!(
            oks,
            files_below(&tmp.path().join(args[args.len() - 1])).len()
        );
    }
}

#[test]
fn manifests_written_by_b3sum_and_coreutils_pass_spate_check() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("all"), true);
    b3sum_friendly_tree(&tmp.path().join("b3"));
    let all = relative_files(tmp.path(), "all");
    let b3 = relative_files(tmp.path(), "b3");
    let cases: [(&str, &[&str], &[PathBuf]); 8] = [
        ("b3sum", &[], &b3),
        ("sha256sum", &[], &all),
        ("sha256sum", &["-b"], &all),
        ("sha256sum", &["--tag"], &all),
        ("md5sum", &[], &all),
        ("md5sum", &["-b", "--tag"], &all),
        ("sha1sum", &[], &all),
        ("sha512sum", &["--tag"], &all),
    ];
    for (tool, tool_args, files) in cases {
        let manifest = peer(tmp.path(), tool, tool_args, files).stdout;
        std::fs::write(tmp.path().join("peer.sums"), &manifest).unwrap();
        for backend in BACKENDS {
            let out = check(tmp.path(), backend, &["peer.sums"]);
            assert!(
                out.status.success(),
                "{tool} {tool_args:?} on {backend}: {}{}",
                stdout_of(&out),
                stderr_of(&out)
            );
            assert_eq!(stdout_of(&out).matches(": OK\n").count(), files.len());
        }
    }
}

#[test]
fn every_name_round_trips_in_every_format_on_both_backends() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("t"), true);
    let count = files_below(&tmp.path().join("t")).len();
    for format in [
        &[][..],
        &["--tag"],
        &["--json"],
        &["-a", "sha256", "-a", "xxh3"],
    ] {
        let mut args = vec!["hash"];
        args.extend_from_slice(format);
        args.push("t");
        let manifest = spate_ok(tmp.path(), &args);
        std::fs::write(tmp.path().join("m"), &manifest).unwrap();
        for backend in BACKENDS {
            let out = check(tmp.path(), backend, &["m"]);
            assert!(
                out.status.success(),
                "{format:?} {backend}: {}",
                stderr_of(&out)
            );
            assert_eq!(stdout_of(&out).matches(": OK\n").count(), count);
            // Names are shown the way sha256sum shows them: escaped behind a `\`.
            assert!(stdout_of(&out).contains("\\t/awkward/new\\nline: OK\n"));
        }
    }
}

/// A tree and its BLAKE3 manifest, `sums.b3` beside the tree's files.
fn tree_with_manifest() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    open_to_all(tmp.path());
    let t = tmp.path().join("t");
    for name in ["a", "b", "c", "d", "sub/e"] {
        write(&t.join(name), name.as_bytes());
    }
    let manifest = spate_ok(&t, &["hash", "a", "b", "c", "d", "sub"]);
    std::fs::write(t.join("sums.b3"), manifest).unwrap();
    open_to_all(&t);
    tmp
}

#[test]
fn each_report_word_is_pinned() {
    let tmp = tree_with_manifest();
    let t = tmp.path().join("t");
    write(&t.join("a"), b"A"); // one byte changed
    std::fs::remove_file(t.join("b")).unwrap();
    write(&t.join("sub/new"), b"new");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.join("c"), std::fs::Permissions::from_mode(0o000)).unwrap();
    for backend in BACKENDS {
        // Run as nobody from another directory: root reads any file, and with --root
        // the paths resolve from there.
        let out = as_nobody(
            tmp.path(),
            &[
                "check",
                "--io",
                backend,
                "--root",
                "t",
                "--audit",
                "t",
                "--exclude",
                "sums.b3",
                "t/sums.b3",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{backend}: {}", stderr_of(&out));
        let stdout = stdout_of(&out);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "a: FAILED", "{stdout}");
        assert!(
            lines[1].starts_with("c: ERROR ") && lines[1].contains("Permission denied"),
            "{stdout}"
        );
        // With --audit a MISSING line waits for the walk, which may find it MOVED.
        assert_eq!(
            lines[2..],
            ["d: OK", "sub/e: OK", "t/sub/new: NEW", "b: MISSING"],
            "{stdout}"
        );
        assert!(
            stderr_of(&out).contains("2 OK, 1 FAILED, 1 MISSING, 1 NEW, 1 ERROR"),
            "{}",
            stderr_of(&out)
        );
    }
}

#[test]
fn an_unchanged_tree_passes_audit_and_quiet_and_status_print_only_problems() {
    let tmp = tree_with_manifest();
    let t = tmp.path().join("t");
    // The manifest itself is in the tree: list it so --audit has nothing new.
    let out = check(
        &t,
        "uring",
        &["--audit", ".", "--exclude", "sums.b3", "sums.b3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out).matches(": OK\n").count(), 5);

    let out = check(&t, "uring", &["-q", "sums.b3"]);
    assert_eq!(
        (out.status.code(), stdout_of(&out)),
        (Some(0), String::new())
    );
    assert_eq!(stderr_of(&out), "");

    std::fs::remove_file(t.join("d")).unwrap();
    let out = check(&t, "threads", &["-q", "sums.b3"]);
    assert_eq!(
        (out.status.code(), stdout_of(&out).as_str()),
        (Some(1), "d: MISSING\n")
    );
    let out = check(&t, "threads", &["--status", "sums.b3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let out = check(&t, "threads", &["--ignore-missing", "sums.b3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!stdout_of(&out).contains("d:"));
}

#[test]
fn json_report_has_one_object_per_file() {
    let tmp = tree_with_manifest();
    let t = tmp.path().join("t");
    write(&t.join("a"), b"changed");
    let out = check(&t, "uring", &["--json", "sums.b3"]);
    assert_eq!(out.status.code(), Some(1));
    let objs: Vec<serde_json::Value> = stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 5);
    assert_eq!(objs[0]["path"], "a");
    assert_eq!(objs[0]["status"], "FAILED");
    assert_eq!(objs[0]["line"], 1);
    assert_eq!(objs[1]["status"], "OK");
    assert_eq!(objs[1]["algos"], serde_json::json!(["blake3"]));
}

#[test]
fn root_and_stdin_manifests() {
    let tmp = tree_with_manifest();
    let t = tmp.path().join("t");
    // From stdin, paths are relative to the current directory or --root.
    let manifest = std::fs::read(t.join("sums.b3")).unwrap();
    for (dir, extra) in [
        (t.clone(), &[][..]),
        (tmp.path().to_path_buf(), &["--root", "t"]),
    ] {
        let mut args = vec!["check", "-"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&manifest).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        assert_eq!(stdout_of(&out).matches(": OK\n").count(), 5);
    }
    // A manifest moved away from its tree checks with --root.
    std::fs::rename(t.join("sums.b3"), tmp.path().join("moved.b3")).unwrap();
    let out = check(tmp.path(), "threads", &["moved.b3"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_of(&out).matches(": MISSING\n").count(), 5);
    let out = check(tmp.path(), "threads", &["--root", "t", "moved.b3"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn paths_outside_the_root_are_never_read() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("secret");
    write(&secret, b"secret");
    let t = tmp.path().join("t");
    write(&t.join("ok"), b"ok");
    write(&t.join("sub/x"), b"x");
    std::os::unix::fs::symlink("../secret", t.join("link-out")).unwrap();
    std::os::unix::fs::symlink("ok", t.join("link-in")).unwrap();
    let digest = |data: &[u8]| blake3::hash(data).to_hex().to_string();
    let s = digest(b"secret");
    let abs = secret.display().to_string();
    let manifest = format!(
        "{s}  ../secret\n{s}  link-out\n{s}  {abs}\n{ok}  link-in\n{s}  sub/../../secret\n",
        ok = digest(b"ok")
    );
    std::fs::write(t.join("m.b3"), manifest).unwrap();
    for backend in BACKENDS {
        let out = check(&t, backend, &["--root", ".", "m.b3"]);
        assert_eq!(out.status.code(), Some(1));
        let stdout = stdout_of(&out);
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(lines[0].starts_with("../secret: ERROR resolves outside the root"));
        assert!(lines[1].starts_with("link-out: ERROR resolves outside the root"));
        assert!(lines[2].contains("ERROR absolute path"), "{stdout}");
        assert_eq!(lines[3], "link-in: OK");
        assert!(lines[4].contains("ERROR resolves outside"), "{stdout}");
        assert!(!stdout.contains("secret: OK"));
        // Without --root the names are the user's own, as in sha256sum -c: every line
        // is opened as written and verifies.
        let out = check(&t, backend, &["m.b3"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        assert_eq!(stdout_of(&out).matches(": OK\n").count(), 5);
        assert!(stdout_of(&out).contains(&format!("{abs}: OK")));
    }
}

#[test]
fn malformed_lines_are_reported_by_number_and_fail_with_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    write(&t.join("a"), b"a");
    let a = blake3::hash(b"a").to_hex().to_string();
    let manifest = format!(
        "# comment\r\n\r\n{a}  a\r\n\\{a}  bad\\tescape\n{a}  nul\\0\nnot a line\n{a}  a\n"
    )
    .replace("\\0", "\0");
    std::fs::write(t.join("m.b3"), manifest).unwrap();
    // As sha256sum -c: counted by default, named with --warn.
    let out = check(t, "uring", &["m.b3"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(stdout_of(&out), "a: OK\na: OK\n");
    assert!(
        err.contains("WARNING: 3 lines are improperly formatted"),
        "{err}"
    );
    assert!(!err.contains("m.b3:4"), "{err}");
    let out = check(t, "uring", &["--warn", "m.b3"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("m.b3:4: improperly formatted"), "{err}");
    assert!(err.contains("m.b3:5: improperly formatted"), "{err}");
    assert!(err.contains("m.b3:6: improperly formatted"), "{err}");
    let out = check(t, "uring", &["--strict", "m.b3"]);
    assert_eq!(out.status.code(), Some(1));

    std::fs::write(t.join("junk"), "nothing useful\n").unwrap();
    let out = check(t, "uring", &["junk"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no properly formatted checksum lines"));
}

#[test]
fn a_file_listed_twice_with_different_digests_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    write(&t.join("a"), b"a");
    let good = sha256_hex(b"a");
    let bad = sha256_hex(b"b");
    std::fs::write(
        t.join("m.sha256"),
        format!("{good}  a\n{bad}  ./a\n{good}  a\n"),
    )
    .unwrap();
    let out = check(t, "threads", &["m.sha256"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = stdout_of(&out);
    assert!(stdout.starts_with("a: OK\n./a: ERROR listed on line 1 with a different digest\n"));
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn ambiguous_digests_follow_the_manifest_name_or_a() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    write(&t.join("a"), b"a");
    let line = format!("{}  a\n", sha256_hex(b"a"));
    for name in ["SHA256SUMS", "sums.txt"] {
        std::fs::write(t.join(name), &line).unwrap();
        let out = check(t, "uring", &[name]);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
    }
    // A .b3 manifest holds BLAKE3 digests: a SHA-256 digest there does not verify.
    std::fs::write(t.join("sums.b3"), &line).unwrap();
    assert_eq!(check(t, "uring", &["sums.b3"]).status.code(), Some(1));
    assert!(
        check(t, "uring", &["-a", "sha256", "sums.b3"])
            .status
            .success()
    );
}

#[test]
fn unreadable_or_missing_manifest_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = check(tmp.path(), "uring", &["nope.b3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("nope.b3"), "{}", stderr_of(&out));
    let out = check(tmp.path(), "uring", &["."]);
    assert_eq!(out.status.code(), Some(2));
    let out = check(tmp.path(), "uring", &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_file_replaced_by_a_fifo_is_an_error_not_a_hang() {
    let tmp = tree_with_manifest();
    let t = tmp.path().join("t");
    std::fs::remove_file(t.join("a")).unwrap();
    let status = Command::new("mkfifo").arg(t.join("a")).status().unwrap();
    assert!(status.success());
    let out = check(&t, "uring", &["sums.b3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout_of(&out).starts_with("a: ERROR not a regular file"));
}

/// A tree where `root/a` is a decoy with the size and mtime of `outside/secret` (only
/// root may read it), and a manifest in `root` claiming `a` has the secret's digest: if
/// spate ever reads the secret through `a`, it reports `a: OK`.
fn decoy_for_a_secret(tmp: &Path) -> PathBuf {
    let (root, outside) = (tmp.join("root"), tmp.join("outside"));
    write(&outside.join("secret"), b"SECRT\n");
    write(&root.join("a"), b"hello\n");
    let secret_meta = std::fs::metadata(outside.join("secret")).unwrap();
    let (secs, nanos) = {
        use std::os::unix::fs::MetadataExt;
        (secret_meta.mtime(), secret_meta.mtime_nsec())
    };
    set_mtime(&root.join("a"), secs, nanos);
    let line = format!("{}  a\n", blake3::hash(b"SECRT\n").to_hex());
    std::fs::write(root.join("m.b3"), line).unwrap();
    root
}

/// Replaces `root/a` with a symbolic link to `../outside/secret`, atomically.
fn swap_a_for_a_link_out(root: &Path) {
    let tmp_link = root.join("a.swap");
    std::os::unix::fs::symlink("../outside/secret", &tmp_link).unwrap();
    std::fs::rename(&tmp_link, root.join("a")).unwrap();
}

#[test]
fn a_name_swapped_for_a_link_out_after_the_lookup_is_never_read() {
    // The deterministic form of the race: strace holds the reader's open of `root/a`
    // for a few seconds (threads backend: its opens are system calls strace sees), and
    // the name becomes a link out of the tree meanwhile. A reader that opens the name
    // again by path follows the link and confirms the secret's digest; one that reads
    // the descriptor of a confined lookup cannot.
    let tmp = tempfile::tempdir().unwrap();
    let root = decoy_for_a_secret(tmp.path());
    let child = Command::new("strace")
        .current_dir(tmp.path())
        .args(["-f", "-qq", "-o", "/dev/null", "-P", "root/a"])
        .args(["-e", "trace=openat,openat2"])
        .args(["-e", "inject=openat,openat2:delay_enter=4000000"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["check", "--io", "threads", "--root", "root", "root/m.b3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace runs spate (.ci/run installs strace)");
    // Well after the manifest line was looked up, well before the held open returns.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    swap_a_for_a_link_out(&root);
    let out = child.wait_with_output().unwrap();
    let stdout = stdout_of(&out);
    assert!(!stdout.contains("a: OK"), "read the secret: {stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", stderr_of(&out));
}

#[test]
fn a_name_swapped_back_and_forth_during_checks_never_reads_outside() {
    // The race as an attacker runs it, on both backends: a thread exchanges `a` and a
    // link out as fast as it can while spate checks the tree again and again. Bounded
    // in count; on a reader that opens the name twice about one run in ten read the
    // secret.
    // A directory on the way (`sub/a`) is swapped the same way, for a link to the
    // directory holding the secret.
    let tmp = tempfile::tempdir().unwrap();
    let root = decoy_for_a_secret(tmp.path());
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::copy(root.join("a"), root.join("sub/a")).unwrap();
    std::fs::copy(
        tmp.path().join("outside/secret"),
        tmp.path().join("outside/a"),
    )
    .unwrap();
    let secret = std::fs::metadata(tmp.path().join("outside/secret")).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        set_mtime(&root.join("sub/a"), secret.mtime(), secret.mtime_nsec());
        set_mtime(
            &tmp.path().join("outside/a"),
            secret.mtime(),
            secret.mtime_nsec(),
        );
    }
    let mut manifest = std::fs::read_to_string(root.join("m.b3")).unwrap();
    manifest += &manifest.replace("  a", "  sub/a");
    std::fs::write(root.join("m.b3"), manifest).unwrap();
    std::os::unix::fs::symlink("../outside/secret", root.join("b")).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("sub-out")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c_path = |name: &str| std::ffi::CString::new(root.join(name).as_os_str().as_bytes());
    let pairs = [
        (c_path("a").unwrap(), c_path("b").unwrap()),
        (c_path("sub").unwrap(), c_path("sub-out").unwrap()),
    ];
    let swapper = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (a, b) in &pairs {
                    // SAFETY: two valid NUL-terminated paths.
                    unsafe {
                        libc::renameat2(
                            libc::AT_FDCWD,
                            a.as_ptr(),
                            libc::AT_FDCWD,
                            b.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    };
                }
            }
        })
    };
    let mut read_secret = Vec::new();
    for round in 0..45 {
        // Every third run without openat2 (as on Linux before 5.6): the fallback opens
        // one component at a time and must be as safe.
        let (backend, out) = match round % 3 {
            2 => (
                "threads, no openat2",
                without_openat2(tmp.path(), &["--root", "root", "root/m.b3"]),
            ),
            i => (
                BACKENDS[i],
                check(tmp.path(), BACKENDS[i], &["--root", "root", "root/m.b3"]),
            ),
        };
        let stdout = stdout_of(&out);
        for name in ["a", "sub/a"] {
            if stdout.lines().any(|l| l == format!("{name}: OK")) {
                read_secret.push((backend, name));
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(read_secret.is_empty(), "read the secret on {read_secret:?}");
}

/// Runs `spate check --io threads ARGS` with every `openat2` failing as on a kernel
/// without it (strace injects ENOSYS).
fn without_openat2(dir: &Path, args: &[&str]) -> Output {
    Command::new("strace")
        .current_dir(dir)
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=openat2"])
        .args(["-e", "inject=openat2:error=ENOSYS"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["check", "--io", "threads"])
        .args(args)
        .output()
        .expect("strace runs spate (.ci/run installs strace)")
}

#[test]
fn without_openat2_links_inside_are_followed_and_links_out_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("secret"), b"secret");
    let t = tmp.path().join("t");
    write(&t.join("ok"), b"ok");
    std::os::unix::fs::symlink("../secret", t.join("link-out")).unwrap();
    std::os::unix::fs::symlink("ok", t.join("link-in")).unwrap();
    std::os::unix::fs::symlink("../ok", t.join("sub-link-in")).unwrap();
    let digest = |data: &[u8]| blake3::hash(data).to_hex().to_string();
    let (s, ok) = (digest(b"secret"), digest(b"ok"));
    let manifest = format!("{ok}  ok\n{ok}  link-in\n{s}  link-out\n{ok}  sub/../ok\n");
    std::fs::create_dir(t.join("sub")).unwrap();
    std::fs::write(t.join("m.b3"), manifest).unwrap();
    let out = without_openat2(&t, &["--root", ".", "m.b3"]);
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["ok: OK", "link-in: OK"], "{stdout}");
    assert!(
        lines[2].starts_with("link-out: ERROR resolves outside"),
        "{stdout}"
    );
    assert_eq!(lines[3], "sub/../ok: OK", "{stdout}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn json_errors_carry_a_stable_kind_and_text_has_no_os_error_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    write(&tmp.path().join("secret"), b"secret");
    write(&t.join("ok"), b"ok");
    std::fs::create_dir(t.join("dir")).unwrap();
    std::os::unix::fs::symlink("../secret", t.join("link-out")).unwrap();
    let d = blake3::hash(b"ok").to_hex().to_string();
    let manifest = format!("{d}  link-out\n{d}  dir\n{d}  /abs\nnot a line\n{d}  ok\n");
    std::fs::write(t.join("m.b3"), manifest).unwrap();
    for backend in BACKENDS {
        let out = check(&t, backend, &["--root", ".", "--json", "m.b3"]);
        let kinds: Vec<String> = stdout_of(&out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| v["error_kind"].as_str().unwrap_or("-").to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "outside_root",
                "is_a_directory",
                "outside_root",
                "malformed_line",
                "-"
            ],
            "{backend}"
        );
    }
    // A file that vanishes between the lookup and the read is an error in words.
    let out = spate(
        &t,
        &os(&["hash", "nope"])
            .iter()
            .map(|s| s.as_os_str())
            .collect::<Vec<_>>(),
    );
    assert!(
        stderr_of(&out).contains("nope: No such file or directory\n"),
        "{}",
        stderr_of(&out)
    );
    assert!(!stderr_of(&out).contains("os error"));
}

#[test]
fn a_file_that_is_not_a_manifest_gets_one_line_and_bad_lines_are_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A README: every line bad, and nothing else is said about it.
    let readme: String = (0..500).map(|i| format!("prose line {i}\n")).collect();
    std::fs::write(t.join("README"), &readme).unwrap();
    let out = check(t, "uring", &["README"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("spate: README: no properly formatted checksum lines found\n"),
        "{err}"
    );
    assert!(!err.contains("improperly formatted"), "{err}");

    // Binary data: given up on early, not read to its end.
    let mut blob = Vec::new();
    for i in 0..2_000_000u32 {
        blob.extend_from_slice(&i.to_le_bytes());
        if i % 7 == 0 {
            blob.push(b'\n');
        }
    }
    std::fs::write(t.join("blob.tar"), &blob).unwrap();
    let out = check(t, "uring", &["blob.tar"]);
    let err = stderr_of(&out);
    assert!(
        err.contains("blob.tar: no checksum line in its first"),
        "{err}"
    );
    assert!(err.contains("1000 malformed lines"), "{err}");

    // A real manifest with many bad lines: ten shown, the rest counted.
    write(&t.join("f"), b"f");
    let good = format!("{}  f\n", blake3::hash(b"f").to_hex());
    let bad: String = (0..25).map(|i| format!("junk {i}\n")).collect();
    std::fs::write(t.join("m.b3"), good + &bad).unwrap();
    let out = check(t, "threads", &["--warn", "m.b3"]);
    let err = stderr_of(&out);
    assert_eq!(
        err.matches("improperly formatted checksum line").count(),
        10,
        "{err}"
    );
    assert!(
        err.contains("… and 15 more improperly formatted lines"),
        "{err}"
    );
    assert_eq!(stdout_of(&out), "f: OK\n");
}

#[test]
fn hash_dash_c_checks_as_b3sum_and_sha256sum_do() {
    let tmp = tempfile::tempdir().unwrap();
    b3sum_friendly_tree(&tmp.path().join("t"));
    let files = relative_files(tmp.path(), "t");
    let b3 = peer(tmp.path(), "b3sum", &[], &files).stdout;
    let sha = peer(tmp.path(), "sha256sum", &[], &files).stdout;
    std::fs::write(tmp.path().join("m.b3"), &b3).unwrap();
    std::fs::write(tmp.path().join("m.sha256"), &sha).unwrap();
    let changed = files[0].clone();
    write(&tmp.path().join(&changed), b"changed");
    for manifest in ["m.b3", "m.sha256"] {
        let checked = check(tmp.path(), "uring", &[manifest]);
        let hashed = spate_ok_or_not(tmp.path(), &["hash", "-c", manifest]);
        assert_eq!(hashed.status.code(), Some(1), "{manifest}");
        assert_eq!(hashed.stdout, checked.stdout, "{manifest}");
        let failed = format!("{}: FAILED", changed.display());
        assert!(stdout_of(&hashed).contains(&failed), "{manifest}");
        let status = spate_ok_or_not(tmp.path(), &["hash", "--check", "--status", manifest]);
        assert_eq!((status.status.code(), status.stdout.len()), (Some(1), 0));
    }
}

fn spate_ok_or_not(dir: &Path, args: &[&str]) -> Output {
    let args = os(args);
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    spate(dir, &refs)
}

#[test]
fn a_clean_check_prints_no_summary_unless_asked_and_problems_always_do() {
    let tmp = tree_with_manifest();
    let t = tmp.path().join("t");
    let out = check(&t, "uring", &["sums.b3"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stderr_of(&out),
        "",
        "sha256sum -c says nothing more on success"
    );
    let out = check(&t, "uring", &["--stats", "sums.b3"]);
    assert!(
        stderr_of(&out).contains(" OK, 0 FAILED"),
        "{}",
        stderr_of(&out)
    );
    std::fs::remove_file(t.join("a")).unwrap();
    let out = check(&t, "uring", &["sums.b3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("1 MISSING"), "{}", stderr_of(&out));
}
