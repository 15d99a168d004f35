//! `spate hash` against the real tools, on both backends.

mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn hash(dir: &Path, backend: &str, extra: &[&str], paths: &[&str]) -> std::process::Output {
    let mut args: Vec<OsString> = os(&["hash", "--io", backend]);
    args.extend(os(extra));
    args.extend(os(paths));
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    spate(dir, &refs)
}

#[test]
fn hash_matches_coreutils_for_every_algorithm_and_backend() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    let files: Vec<_> = files_below(&tmp.path().join("tree"))
        .into_iter()
        .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
        .collect();
    for (algo, tool) in [
        ("sha256", "sha256sum"),
        ("sha512", "sha512sum"),
        ("sha1", "sha1sum"),
        ("md5", "md5sum"),
    ] {
        let expected = sorted_lines(&peer(tmp.path(), tool, &[], &files).stdout);
        for backend in BACKENDS {
            let out = hash(tmp.path(), backend, &["-a", algo], &["tree"]);
            assert!(
                out.status.success(),
                "{backend}/{algo}: {}",
                stderr_of(&out)
            );
            assert_eq!(
                sorted_lines(&out.stdout),
                expected,
                "{backend}/{algo} differs from {tool}"
            );
        }
    }
}

#[test]
fn hash_matches_b3sum_on_both_backends() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, false);
    // b3sum 1.2 escapes backslash and newline like spate; it does not escape \r and it
    // prints non-UTF-8 names lossily, so those two names are covered by coreutils tests.
    write(&tree.join("back\\slash"), b"b");
    write(&tree.join(OsStr::from_bytes(b"new\nline")), b"n");
    let files: Vec<_> = files_below(&tree)
        .into_iter()
        .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
        .collect();
    let expected = sorted_lines(&peer(tmp.path(), "b3sum", &[], &files).stdout);
    for backend in BACKENDS {
        let out = hash(tmp.path(), backend, &[], &["tree"]);
        assert!(out.status.success(), "{backend}: {}", stderr_of(&out));
        assert_eq!(
            sorted_lines(&out.stdout),
            expected,
            "{backend} differs from b3sum"
        );
    }
}

/// JSON Lines with each record's `hashed_ns` (when the file was read, which differs
/// from run to run) taken out; everything else kept as written.
fn without_read_times(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(json).lines() {
        let mut obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).unwrap();
        assert!(obj.remove("hashed_ns").is_some(), "no hashed_ns in {line}");
        out.extend(serde_json::to_vec(&obj).unwrap());
        out.push(b'\n');
    }
    out
}

#[test]
fn backends_agree_byte_for_byte_and_order_is_stable() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    let runs: Vec<Vec<u8>> = BACKENDS
        .iter()
        .chain(BACKENDS.iter())
        .map(|b| {
            let out = hash(
                tmp.path(),
                b,
                &["-a", "sha256", "-a", "blake3", "--json"],
                &["tree"],
            );
            assert!(out.status.success());
            without_read_times(&out.stdout)
        })
        .collect();
    assert!(
        runs.windows(2).all(|w| w[0] == w[1]),
        "outputs differ between runs/backends"
    );
    // Walk order: names sorted byte-wise within each directory, depth first.
    let paths: Vec<String> = String::from_utf8_lossy(&runs[0])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let many: Vec<&String> = paths
        .iter()
        .filter(|p| p.starts_with("tree/many/"))
        .collect();
    let mut sorted = many.clone();
    sorted.sort();
    assert_eq!(many, sorted);
    assert_eq!(paths.len(), files_below(&tmp.path().join("tree")).len());
}

#[test]
fn tag_lines_match_sha256sum_tag() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    let files: Vec<_> = files_below(&tmp.path().join("tree"))
        .into_iter()
        .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
        .collect();
    let expected = sorted_lines(&peer(tmp.path(), "sha256sum", &["--tag"], &files).stdout);
    let out = hash(tmp.path(), "uring", &["-a", "sha256", "--tag"], &["tree"]);
    assert_eq!(sorted_lines(&out.stdout), expected);
}

#[test]
fn json_has_path_size_and_every_digest() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("d/x"), b"abc");
    write(&tmp.path().join(OsStr::from_bytes(b"d/\xff")), b"");
    let out = hash(
        tmp.path(),
        "threads",
        &["--json", "-a", "sha256", "-a", "md5"],
        &["d"],
    );
    assert!(out.status.success());
    let objs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2);
    let x = objs.iter().find(|o| o["path"] == "d/x").unwrap();
    assert_eq!(x["size"], 3);
    assert_eq!(
        x["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(x["md5"], "900150983cd24fb0d6963f7d28e17f72");
    let bad = objs.iter().find(|o| o.get("path_hex").is_some()).unwrap();
    assert_eq!(bad["path_hex"], "642fff");
}

#[test]
fn several_algorithms_give_tag_lines_from_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("f"), b"abc");
    let out = hash(tmp.path(), "uring", &["-a", "md5", "-a", "sha1"], &["f"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "MD5 (f) = 900150983cd24fb0d6963f7d28e17f72\nSHA1 (f) = a9993e364706816aba3e25717850c26c9cd0d89d\n"
    );
}

#[test]
fn stdin_is_hashed_when_no_path_or_dash() {
    for args in [vec!["hash"], vec!["hash", "-"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "0b8b60248fad7ac6dfac221b7e01a8b91c772421a15b387dd1fb2d6a94aee438  -\n"
        );
    }
}

#[test]
fn fifo_in_tree_is_skipped_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("t/a"), b"a");
    let fifo = tmp.path().join("t/pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for backend in BACKENDS {
        let started = Instant::now();
        let out = hash(tmp.path(), backend, &[], &["t"]);
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("t/pipe: skipped FIFO"),
            "{}",
            stderr_of(&out)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    }
}

#[test]
fn symlinks_are_skipped_unless_followed_and_loops_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("t/real/f"), b"f");
    std::os::unix::fs::symlink("real/f", tmp.path().join("t/link")).unwrap();
    std::os::unix::fs::symlink("..", tmp.path().join("t/real/up")).unwrap();
    let out = hash(tmp.path(), "uring", &[], &["t"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("t/link: skipped symbolic link"));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);

    let out = hash(tmp.path(), "uring", &["--follow"], &["t"]);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(stdout.contains("  t/link\n"), "{stdout}");
    assert!(stderr_of(&out).contains("loop"), "{}", stderr_of(&out));
    assert_eq!(out.status.code(), Some(1), "a loop is an error");
}

#[test]
fn exclude_leaves_out_matching_files_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("t/keep.c"), b"1");
    write(&tmp.path().join("t/drop.o"), b"2");
    write(&tmp.path().join("t/target/x.c"), b"3");
    let out = hash(
        tmp.path(),
        "threads",
        &["--exclude", "*.o", "--exclude", "target"],
        &["t"],
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}

#[test]
fn unreadable_file_and_directory_are_reported_and_the_run_continues() {
    let tmp = tempfile::tempdir().unwrap();
    open_to_all(tmp.path());
    let t = tmp.path().join("t");
    write(&t.join("a"), b"a");
    write(&t.join("secret"), b"s");
    write(&t.join("closed/inner"), b"i");
    write(&t.join("z"), b"z");
    open_to_all(&t);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(t.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
    for backend in BACKENDS {
        let out = as_nobody(tmp.path(), &["hash", "--io", backend, "t"]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{backend}: {err}");
        assert!(
            err.contains("t/secret: opening: Permission denied"),
            "{err}"
        );
        assert!(err.contains("t/closed: Permission denied"), "{err}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains("  t/a\n") && stdout.contains("  t/z\n"),
            "{stdout}"
        );
    }
}

#[test]
fn output_file_is_written_whole_and_matches_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("t"), false);
    let out = hash(tmp.path(), "uring", &["-o", "m.b3"], &["t"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let stdout = hash(tmp.path(), "uring", &[], &["t"]).stdout;
    assert_eq!(std::fs::read(tmp.path().join("m.b3")).unwrap(), stdout);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("spate-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn output_that_cannot_be_written_leaves_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..400 {
        write(
            &tmp.path()
                .join(format!("t/file-with-a-longish-name-{i:04}")),
            b"x",
        );
    }
    // RLIMIT_FSIZE makes the manifest write fail part-way, like a full disk.
    let out = Command::new("prlimit")
        .args(["--fsize=8192", "--"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["hash", "-o", "m.b3", "t"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("writing m.b3"),
        "{}",
        stderr_of(&out)
    );
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![OsString::from("t")],
        "nothing but the tree is left"
    );
}

#[test]
fn auto_falls_back_to_threads_when_io_uring_is_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("f"), b"abc");
    let run = |io: &str| {
        Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(["hash", "--io", io, "f"])
            .env("SPATE_DISABLE_IO_URING", "1")
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let auto = run("auto");
    assert!(auto.status.success());
    assert!(stderr_of(&auto).contains("using the thread-pool backend"));
    assert!(String::from_utf8(auto.stdout).unwrap().ends_with("  f\n"));
    let forced = run("uring");
    assert_eq!(forced.status.code(), Some(2));
    assert!(stderr_of(&forced).contains("io_uring is not available"));
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["hash", "-a", "crc99", "."],
        vec!["hash", "--buffer-size", "lots", "."],
        vec!["hash", "--exclude", "a[", "."],
        vec!["hash", "-", "."],
        vec!["nonsense"],
    ] {
        let refs: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = spate(tmp.path(), &refs);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
    }
}

#[test]
fn missing_path_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("ok"), b"1");
    let out = hash(tmp.path(), "uring", &[], &["nope", "ok"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("spate: nope: No such file or directory"),
        "{}",
        stderr_of(&out)
    );
    assert!(String::from_utf8(out.stdout).unwrap().ends_with("  ok\n"));
}

#[test]
fn sigterm_and_sigint_remove_the_temporary_output() {
    for (signal, code) in [(libc_sig::SIGTERM, 143), (libc_sig::SIGINT, 130)] {
        let tmp = tempfile::tempdir().unwrap();
        // Standard input that never ends keeps the run busy until the signal arrives.
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(["hash", "-o", "m.b3", "-"])
            .current_dir(tmp.path())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the temporary file exists, so the signal lands mid-run.
        let started = Instant::now();
        while std::fs::read_dir(tmp.path()).unwrap().count() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no temp file appeared"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Keep standard input open until spate has exited, so only the signal ends it.
        let stdin = child.stdin.take();
        let killed = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        drop(stdin);
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(code));
        assert!(!stderr.contains("panicked"), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// Signal numbers, without a libc dependency in the tests.
mod libc_sig {
    pub const SIGINT: i32 = 2;
    pub const SIGTERM: i32 = 15;
}

#[test]
fn closed_stdout_ends_the_run_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..3000 {
        write(&tmp.path().join(format!("t/{i:05}")), b"x");
    }
    // `spate hash t | head -1`, with the reader gone after one line.
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("{} hash t | head -1", env!("CARGO_BIN_EXE_spate")),
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert_eq!(stderr_of(&out), "", "no panic, no error message");
}

/// Drops `path`'s pages from the page cache, so the next read must come from the device.
fn evict(path: &Path) {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: advice on a file we just opened.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "fadvise {}", path.display());
}

/// Pages of `path` in the page cache, per mincore.
fn cached_pages(path: &Path) -> usize {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let len = len as usize;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only mapping of the whole file, only queried by mincore and unmapped.
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(ptr, libc::MAP_FAILED, "mmap {}", path.display());
        let rc = libc::mincore(ptr, len, vec.as_mut_ptr());
        libc::munmap(ptr, len);
        assert_eq!(rc, 0, "mincore {}", path.display());
    }
    vec.iter().filter(|&&r| r & 1 == 1).count()
}

#[test]
fn files_read_from_the_device_hash_as_cached_ones_do() {
    // On the target directory's file system: a tmpfs /tmp cannot drop its pages.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let tree = tmp.path().join("tree");
    // Enough small files to raise the uring backend's files in flight, sizes around
    // its small and full read buffers, and one past the map threshold (not mapped
    // while not cached).
    let mut sizes: Vec<usize> = (0..300).map(|i| (i * 1531) % (150 << 10)).collect();
    sizes.extend([
        65_535,
        65_536,
        65_537,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        9 << 20,
    ]);
    for (i, &len) in sizes.iter().enumerate() {
        write(
            &tree.join(format!("d{}/f{i:03}", i % 7)),
            &bytes(len, i as u64),
        );
    }
    let files: Vec<_> = files_below(&tree)
        .into_iter()
        .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
        .collect();
    let expected = sorted_lines(&peer(tmp.path(), "b3sum", &[], &files).stdout);
    assert_eq!(expected.len(), sizes.len());
    for backend in BACKENDS {
        for file in &files {
            evict(&tmp.path().join(file));
        }
        let last = sizes.len() - 1;
        let big = tree.join(format!("d{}/f{last:03}", last % 7));
        assert!(
            cached_pages(&big) < 100,
            "the page cache kept {} (is the target directory on tmpfs?)",
            big.display()
        );
        let out = hash(tmp.path(), backend, &[], &["tree"]);
        assert!(out.status.success(), "{backend}: {}", stderr_of(&out));
        assert_eq!(sorted_lines(&out.stdout), expected, "{backend} cold");
    }
}

#[test]
fn hash_never_reads_the_manifest_it_writes() {
    // `-o` inside the hashed tree: the temporary file (which sorts first and grows while
    // the walk goes on) and the earlier manifest under the final name are left out, and
    // so is a file standard output is redirected to.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    write(&t.join("a"), b"a");
    write(&t.join("m.b3"), b"an earlier run's manifest");
    for backend in ["uring", "threads"] {
        let out = hash(tmp.path(), backend, &["-o", "t/m.b3"], &["t"]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        let manifest = std::fs::read_to_string(t.join("m.b3")).unwrap();
        let names: Vec<&str> = manifest.lines().map(|l| &l[66..]).collect();
        assert_eq!(names, ["t/a"], "{backend}: {manifest}");
        assert!(stderr_of(&out).contains("t/m.b3: the manifest being written; not hashed"));

        let redirected = std::fs::File::create(t.join("out.b3")).unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_spate"))
            .current_dir(tmp.path())
            .args(["hash", "-q", "--io", backend, "t"])
            .stdout(redirected)
            .status()
            .unwrap();
        assert!(status.success());
        let manifest = std::fs::read_to_string(t.join("out.b3")).unwrap();
        assert!(!manifest.contains("t/out.b3"), "{backend}: {manifest}");
        std::fs::remove_file(t.join("out.b3")).unwrap();
    }
}

/// `(path, digest)` pairs from XXH3 lines as xxhsum writes them: `XXH3 (PATH) = HEX`
/// (xxhsum 0.8.1, and spate's `--tag`) or `XXH3_HEX  PATH` (xxhsum 0.8.2 and later).
fn xxh3_digests(out: &[u8]) -> Vec<(String, String)> {
    let mut digests: Vec<(String, String)> = String::from_utf8_lossy(out)
        .lines()
        .map(|line| {
            if let Some(rest) = line.strip_prefix("XXH3 (") {
                let (path, hex) = rest.rsplit_once(") = ").expect("a BSD-style line");
                (path.to_string(), hex.to_string())
            } else {
                let rest = line.strip_prefix("XXH3_").expect("an XXH3 line");
                let (hex, path) = rest.split_once("  ").expect("a GNU-style line");
                (path.to_string(), hex.to_string())
            }
        })
        .collect();
    digests.sort();
    digests
}

#[test]
fn xxh3_digests_match_xxhsum_on_both_backends() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), false);
    let files: Vec<_> = files_below(&tmp.path().join("tree"))
        .into_iter()
        .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
        .collect();
    let expected = xxh3_digests(&peer(tmp.path(), "xxhsum", &["-H3"], &files).stdout);
    assert_eq!(expected.len(), files.len());
    for backend in BACKENDS {
        let out = hash(tmp.path(), backend, &["-a", "xxh3", "--tag"], &["tree"]);
        assert!(out.status.success(), "{backend}: {}", stderr_of(&out));
        assert_eq!(
            xxh3_digests(&out.stdout),
            expected,
            "{backend} differs from xxhsum -H3"
        );
    }
}

#[test]
fn algorithm_names_are_case_insensitive_as_in_the_peers_tags() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("f"), b"abc");
    let lower = hash(tmp.path(), "threads", &["-a", "sha256"], &["f"]);
    let upper = hash(tmp.path(), "threads", &["-a", "SHA256"], &["f"]);
    assert!(upper.status.success(), "{}", stderr_of(&upper));
    assert_eq!(upper.stdout, lower.stdout);
}

#[test]
fn no_names_and_zero_lines_match_b3sum_and_sha256sum() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("t/plain"), b"one");
    write(&tmp.path().join("t/new\nline"), b"two");
    let files: Vec<_> = files_below(&tmp.path().join("t"))
        .into_iter()
        .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
        .collect();
    for backend in ["uring", "threads"] {
        let ours = hash(tmp.path(), backend, &["--no-names"], &["t"]);
        let theirs = peer(tmp.path(), "b3sum", &["--no-names"], &files);
        assert_eq!(
            sorted_lines(&ours.stdout),
            sorted_lines(&theirs.stdout),
            "{backend}"
        );

        let ours = hash(tmp.path(), backend, &["-z", "-a", "sha256"], &["t"]);
        let theirs = peer(tmp.path(), "sha256sum", &["-z"], &files);
        let records = |bytes: &[u8]| {
            let mut r: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
            r.sort();
            r
        };
        assert_eq!(records(&ours.stdout), records(&theirs.stdout), "{backend}");
    }
    let refused = hash(
        tmp.path(),
        "threads",
        &["--no-names", "-a", "md5", "-a", "sha1"],
        &["t"],
    );
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn blake3_length_and_keyed_match_b3sum() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("t"), false);
    let files: Vec<_> = files_below(&tmp.path().join("t"))
        .into_iter()
        .map(|p| p.strip_prefix(tmp.path()).unwrap().to_path_buf())
        .collect();
    let key = [7u8; 32];
    let keyed = |program: &str, args: &[&std::ffi::OsStr]| {
        let mut child = Command::new(program)
            .current_dir(tmp.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(&key).unwrap();
        child.wait_with_output().unwrap()
    };
    for backend in ["uring", "threads"] {
        for len in ["16", "64"] {
            let ours = hash(tmp.path(), backend, &["-l", len], &["t"]);
            let theirs = peer(tmp.path(), "b3sum", &["-l", len], &files);
            assert_eq!(
                sorted_lines(&ours.stdout),
                sorted_lines(&theirs.stdout),
                "{backend} -l {len}"
            );
        }
        let ours_args = ["hash", "--io", backend, "--keyed", "t"];
        let mut args: Vec<&std::ffi::OsStr> = ours_args.iter().map(std::ffi::OsStr::new).collect();
        let ours = keyed(env!("CARGO_BIN_EXE_spate"), &args);
        args = vec![std::ffi::OsStr::new("--keyed")];
        args.extend(files.iter().map(|f| f.as_os_str()));
        let theirs = keyed("b3sum", &args);
        assert!(ours.status.success() && theirs.status.success());
        assert_eq!(
            sorted_lines(&ours.stdout),
            sorted_lines(&theirs.stdout),
            "{backend} --keyed"
        );
    }
}

#[test]
fn raw_output_matches_b3sum_raw() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("f"), b"some bytes");
    for extra in [&["--raw"][..], &["--raw", "-l", "8"][..]] {
        let ours = hash(tmp.path(), "threads", extra, &["f"]);
        let theirs = peer(tmp.path(), "b3sum", extra, &[std::path::PathBuf::from("f")]);
        assert_eq!(ours.stdout, theirs.stdout, "{extra:?}");
    }
    let refused = hash(tmp.path(), "threads", &["--raw"], &["."]);
    assert_eq!(refused.status.code(), Some(2));
}

/// Asserts that `stderr` is one line `spate: …` in words: no OS error number, no name of
/// a temporary file, no parser internals.
fn assert_one_line_in_words(stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("spate: "), "{stderr}");
    for internal in [
        "os error",
        "spate-tmp",
        "at path",
        "invalid digit",
        "float literal",
    ] {
        assert!(!stderr.contains(internal), "{internal:?} in {stderr}");
    }
}

#[test]
fn output_errors_name_the_output_and_the_cause_as_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_tree(&dir.join("tree"), false);
    std::fs::create_dir(dir.join("ro")).unwrap();
    open_to_all(dir);
    std::fs::set_permissions(
        dir.join("ro"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    for (args, peer_args) in [
        (
            &["hash", "-o", "ro/x.b3", "tree"][..],
            &["-cf", "ro/x.tar", "tree"][..],
        ),
        (
            &["pack", "-o", "ro/x.tar", "tree"][..],
            &["-cf", "ro/x.tar", "tree"][..],
        ),
        (
            &["hash", "-o", "missing/x.b3", "tree"][..],
            &["-cf", "missing/x.tar", "tree"][..],
        ),
    ] {
        let out = as_nobody(dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&out);
        assert_one_line_in_words(&err);
        let target = args[2];
        assert!(err.starts_with(&format!("spate: {target}: ")), "{err}");
        // The cause in the same words GNU tar uses for the same failure.
        let tar = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "tar"])
            .args(peer_args)
            .current_dir(dir)
            .output()
            .unwrap();
        let tar_err = stderr_of(&tar);
        let cause = err.trim_end().rsplit(": ").next().unwrap();
        assert!(tar_err.contains(cause), "tar says {tar_err}, spate {err}");
    }
    assert_eq!(std::fs::read_dir(dir.join("ro")).unwrap().count(), 0);
}

#[test]
fn usage_errors_are_one_line_and_sizes_list_their_units() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, words) in [
        (
            &["hash", "--buffer-size", "256X", "."][..],
            "invalid value '256X' for '--buffer-size <SIZE>': unknown unit 'X'; use k, M, G, T, KiB, MiB, GiB, TiB (or B)",
        ),
        (
            &["hash", "--buffer-size", "big", "."][..],
            "not a number of bytes",
        ),
        (
            &["hash", "--no-such-option", "."][..],
            "unexpected argument '--no-such-option'",
        ),
        (
            &["merge"][..],
            "required arguments were not provided: <INPUTS>",
        ),
        (&["hash", "-a", "sha3", "."][..], "[possible values: blake3"),
    ] {
        let out = spate(
            tmp.path(),
            &os(args).iter().map(OsString::as_os_str).collect::<Vec<_>>(),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&out);
        assert_one_line_in_words(&err);
        assert!(err.contains(words), "{args:?}: {err}");
    }
    // Help still goes to standard output, whole, with exit 0.
    let help = spate(tmp.path(), &[OsStr::new("hash"), OsStr::new("--help")]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
}

/// `-o` naming a device or FIFO writes into it, as `tar -f` and `zstd -o` do: the
/// temporary file and rename used for regular files would replace the node with a
/// regular file (a run as root once turned /dev/full into one). The nodes are made in
/// a temporary directory so a regression cannot touch the machine's own.
#[test]
fn output_to_a_device_or_fifo_writes_into_it_and_keeps_the_node() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("tree/a"), b"hello");
    let run = |dir: &Path, args: &[&str]| {
        let args = os(args);
        let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        spate(dir, &refs)
    };
    let mknod = |name: &str, minor: &str| {
        let made = Command::new("mknod")
            .args([name, "c", "1", minor])
            .current_dir(tmp.path())
            .status()
            .unwrap();
        assert!(made.success(), "mknod {name} (tests run as root)");
    };
    mknod("null", "3");
    mknod("full", "7");

    let out = run(tmp.path(), &["hash", "-o", "null", "tree"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = run(tmp.path(), &["hash", "-o", "full", "tree"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out).trim(),
        "spate: writing full: No space left on device"
    );
    let out = run(tmp.path(), &["pack", "--zstd", "-o", "full", "tree"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    for name in ["null", "full"] {
        let meta = std::fs::metadata(tmp.path().join(name)).unwrap();
        assert!(meta.file_type().is_char_device(), "{name} was replaced");
    }

    let fifo = tmp.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = run(tmp.path(), &["hash", "-o", "fifo", "tree"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let expected = run(tmp.path(), &["hash", "tree"]).stdout;
    assert_eq!(reader.join().unwrap(), expected);
    let meta = std::fs::metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
}

#[test]
fn output_through_a_symlink_writes_its_target_and_keeps_the_link() {
    // As `sha256sum > link` and `tar -cf link` do: the link stays, its target is written.
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("tree/a"), b"hello");
    std::fs::create_dir(tmp.path().join("store")).unwrap();
    std::os::unix::fs::symlink("store/sums.b3", tmp.path().join("latest.b3")).unwrap();
    std::os::unix::fs::symlink("store/tree.tar.zst", tmp.path().join("latest.tar.zst")).unwrap();
    let out = spate(
        tmp.path(),
        &os(&["hash", "-o", "latest.b3", "tree"])
            .iter()
            .map(OsString::as_os_str)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = spate(
        tmp.path(),
        &os(&["pack", "-q", "-o", "latest.tar.zst", "tree"])
            .iter()
            .map(OsString::as_os_str)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    for (link, target) in [
        ("latest.b3", "store/sums.b3"),
        ("latest.tar.zst", "store/tree.tar.zst"),
    ] {
        let meta = std::fs::symlink_metadata(tmp.path().join(link)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{link} was replaced by a file"
        );
        assert!(
            std::fs::metadata(tmp.path().join(target)).unwrap().len() > 0,
            "{target} was not written"
        );
    }
    let expected = spate(tmp.path(), &[OsStr::new("hash"), OsStr::new("tree")]).stdout;
    assert_eq!(
        std::fs::read(tmp.path().join("store/sums.b3")).unwrap(),
        expected
    );
    let listed = Command::new("tar")
        .args(["-tf", "latest.tar.zst"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("tree/a"));
}
