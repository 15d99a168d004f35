//! `spate pack` against GNU tar and the compressors, on both backends.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn run_spate(dir: &Path, args: &[&OsStr]) -> Output {
    spate(dir, args)
}

fn pack(dir: &Path, args: &[&str]) -> Output {
    let mut all = os(&["pack"]);
    all.extend(os(args));
    let refs: Vec<&OsStr> = all.iter().map(OsString::as_os_str).collect();
    run_spate(dir, &refs)
}

/// A tree with every kind of entry pack must store: files of awkward sizes and names,
/// a file larger than what is held in memory, a long path, a non-UTF-8 name, an empty
/// directory, symbolic links, a hard link pair, odd modes and old mtimes.
fn rich_tree(root: &Path) {
    make_tree(root, true);
    write(&root.join("large.bin"), &bytes(3 << 20, 99));
    let long_dir = root.join("d".repeat(120)).join("e".repeat(120));
    write(&long_dir.join("f".repeat(200)), b"long name");
    std::os::unix::fs::symlink("sizes/f1.bin", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("x".repeat(150), root.join("link-long-dangling")).unwrap();
    std::fs::hard_link(root.join("with space.txt"), root.join("hard link")).unwrap();
    let exec = root.join("exec.sh");
    write(&exec, b"#!/bin/sh\n");
    std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o751)).unwrap();
    std::fs::set_permissions(
        root.join("sizes/f2.bin"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    set_mtime(&root.join("sizes/f3.bin"), 1_000_000_000, 0);
    set_mtime(&root.join("empty-dir"), 1_200_000_000, 0);
}

/// What a tree holds, entry by entry: kind, mode, mtime (not for symlinks), content or
/// link target, and which names share an inode.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
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
                let target = std::fs::read_link(&path).unwrap();
                format!("symlink -> {}", target.display())
            } else {
                let data = std::fs::read(&path).unwrap();
                let mut desc = format!(
                    "file {mode:o} {} {} {}",
                    meta.mtime(),
                    data.len(),
                    blake3::hash(&data).to_hex()
                );
                if meta.nlink() > 1 {
                    let first = inodes
                        .entry((meta.dev(), meta.ino()))
                        .or_insert(rel.clone());
                    desc.push_str(&format!(" links:{}", first.len()));
                }
                desc
            };
            out.insert(rel, desc);
        }
    }
    out
}

fn tar_extract(archive: &Path, dest: &Path, extra: &[&str]) {
    std::fs::create_dir_all(dest).unwrap();
    let out = Command::new("tar")
        .args(extra)
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .output()
        .expect("GNU tar (installed by .ci/run)");
    assert!(
        out.status.success(),
        "tar -xf {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gnu_tar_extracts_what_spate_packs_for_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    rich_tree(&src);
    let expected = snapshot(&src);
    for (i, (name, backend)) in [
        ("a.tar", "uring"),
        ("a.tar.gz", "threads"),
        ("a.tar.zst", "uring"),
        ("a.tar.xz", "threads"),
        ("a.tar.bz2", "uring"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = pack(tmp.path(), &["--io", backend, "-q", "-o", name, "src"]);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        let dest = tmp.path().join(format!("x{i}"));
        tar_extract(&tmp.path().join(name), &dest, &[]);
        assert_eq!(snapshot(&dest.join("src")), expected, "{name}");
    }
}

#[test]
fn large_files_above_8_gib_use_the_gnu_size_extension() {
    // A sparse 9 GiB file costs no disk space; tar must read its size back exactly.
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("src/huge");
    write(&big, b"");
    let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.set_len(9 << 30).unwrap();
    drop(f);
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args([
            "pack",
            "-q",
            "--compress",
            "zstd",
            "--level",
            "1",
            "-o",
            "-",
            "src",
        ])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let listing = Command::new("tar")
        .args(["--zstd", "-tvf", "-"])
        .stdin(child.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert!(text.contains(&format!(" {} ", 9u64 << 30)), "{text}");
}

#[test]
fn reproducible_archives_are_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    rich_tree(&src);
    let args = ["--reproducible", "--mtime", "1500000000", "-q", "-o"];
    let mut first = args.to_vec();
    first.extend(["one.tar.zst", "src"]);
    assert!(pack(tmp.path(), &first).status.success());
    // Move every mtime that is past the clamp: the archive must not change.
    for path in files_below(&src) {
        if std::fs::metadata(&path).unwrap().mtime() > 1_500_000_000 {
            set_mtime(&path, 1_800_000_000, 0);
        }
    }
    let mut second = args.to_vec();
    second.extend(["two.tar.zst", "--io", "threads", "src"]);
    assert!(pack(tmp.path(), &second).status.success());
    let one = std::fs::read(tmp.path().join("one.tar.zst")).unwrap();
    let two = std::fs::read(tmp.path().join("two.tar.zst")).unwrap();
    assert!(one == two, "archives differ");
    let listing = Command::new("tar")
        .args(["-tvf", "one.tar.zst", "--numeric-owner"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.lines().all(|l| l.contains(" 0/0 ")), "{text}");
    assert!(!text.contains("2027-"), "mtimes clamped: {text}");
}

#[test]
fn manifest_from_the_same_read_checks_with_b3sum_and_spate() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, false);
    write(&src.join("large.bin"), &bytes(3 << 20, 5));
    std::fs::hard_link(src.join("large.bin"), src.join("large-link")).unwrap();
    let out = pack(
        tmp.path(),
        &["-q", "--manifest", "src.b3", "-o", "src.tar", "src"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let manifest = std::fs::read_to_string(tmp.path().join("src.b3")).unwrap();
    assert_eq!(manifest.lines().count(), files_below(&src).len());
    let hashed = spate(tmp.path(), &[OsStr::new("hash"), OsStr::new("src")]);
    assert_eq!(
        sorted_lines(manifest.as_bytes()),
        sorted_lines(&hashed.stdout)
    );
    let b3 = Command::new("b3sum")
        .args(["-c", "src.b3"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        b3.status.success(),
        "{}",
        String::from_utf8_lossy(&b3.stdout)
    );
}

#[test]
fn stdout_archive_is_zstd_and_special_files_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a"), b"a");
    assert!(
        Command::new("mkfifo")
            .arg(src.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let out = pack(tmp.path(), &["-o", "-", "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("src/fifo: skipped FIFO"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        out.stdout.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "zstd magic"
    );
    std::fs::write(tmp.path().join("s.tar.zst"), &out.stdout).unwrap();
    let listing = Command::new("tar")
        .args(["-tf", "s.tar.zst"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "src/\nsrc/a\n");
}

#[test]
fn unreadable_file_is_reported_and_the_rest_is_packed() {
    let tmp = tempfile::tempdir().unwrap();
    open_to_all(tmp.path());
    let src = tmp.path().join("src");
    write(&src.join("a"), b"a");
    write(&src.join("secret"), b"s");
    write(&src.join("z"), b"z");
    open_to_all(&src);
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    for backend in BACKENDS {
        let out = as_nobody(tmp.path(), &["pack", "--io", backend, "-o", "-", "src"]);
        assert_eq!(out.status.code(), Some(1), "{backend}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("src/secret: opening: Permission denied"));
        let mut child = Command::new("tar")
            .args(["--zstd", "-tf", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
        let listing = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&listing.stdout),
            "src/\nsrc/a\nsrc/z\n"
        );
    }
}

#[test]
fn failures_and_signals_leave_no_archive_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("big"), &bytes(8 << 20, 1));
    // A file size limit below the archive's size: the write fails.
    let out = Command::new("prlimit")
        .args(["--fsize=100000", "--"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["pack", "-q", "-o", "out.tar", "src"])
        .current_dir(tmp.path())
        .output()
        .expect("prlimit (util-linux)");
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("out.tar"), "{}", stderr_of(&out));
    let left: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, vec![src.clone()], "nothing but the source is left");

    // SIGTERM while packing slowly (xz at level 9 on incompressible data).
    write(&src.join("more"), &bytes(32 << 20, 2));
    let child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["pack", "-q", "--level", "9", "-o", "out.tar.xz", "src"])
        .current_dir(tmp.path())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(143));
    let left: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, vec![src], "no archive or temporary file is left");
}

#[test]
fn output_name_without_a_known_extension_needs_compress() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("src/a"), b"a");
    let out = pack(tmp.path(), &["-o", "out.bin", "src"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("--compress"),
        "{}",
        stderr_of(&out)
    );
    let out = pack(tmp.path(), &["--compress", "gzip", "-o", "out.bin", "src"]);
    assert!(out.status.success());
    let bytes = std::fs::read(tmp.path().join("out.bin")).unwrap();
    assert!(bytes.starts_with(&[0x1f, 0x8b]));
    let out = pack(tmp.path(), &["--level", "30", "-o", "x.tar.gz", "src"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn spate_unpack_restores_what_spate_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    rich_tree(&src);
    let expected = snapshot(&src);
    for (name, backend) in [("r.tar.zst", "uring"), ("r.tar.gz", "threads")] {
        let out = pack(tmp.path(), &["--io", backend, "-q", "-o", name, "src"]);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        let dest = tmp.path().join(format!("out-{name}"));
        let args = [
            OsStr::new("unpack"),
            OsStr::new(name),
            OsStr::new("-C"),
            dest.as_os_str(),
        ];
        let out = run_spate(tmp.path(), &args);
        assert!(out.status.success(), "unpack {name}: {}", stderr_of(&out));
        assert_eq!(snapshot(&dest.join("src")), expected, "{name}");
    }
}

/// Names `tar -tf` lists in an archive.
fn tar_names(archive: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(archive)
        .output()
        .expect("GNU tar (installed by .ci/run)");
    assert!(out.status.success(), "tar -tf: {}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn pack_never_stores_its_own_output_files() {
    // The archive and the manifest are written inside the tree being packed. Their
    // temporary files (`.x.tar.XXXXXX.spate-tmp`) sort before `a`, and the archive's
    // grows while it is read; on the second run the final names hold the first run's
    // output, about to be replaced. None of these may be stored.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a"), b"a\n");
    write(&src.join("big"), &bytes(3 << 20, 7));
    for run in ["first", "second"] {
        let out = pack(
            tmp.path(),
            &["-o", "src/x.tar", "--manifest", "src/x.b3", "src"],
        );
        assert!(out.status.success(), "{run} run: {}", stderr_of(&out));
        assert_eq!(
            tar_names(&src.join("x.tar")),
            ["src/", "src/a", "src/big"],
            "{run} run"
        );
        let manifest = std::fs::read_to_string(src.join("x.b3")).unwrap();
        assert_eq!(manifest.lines().count(), 2, "{run} run: {manifest}");
        assert!(
            stderr_of(&out).contains("the archive being written; not packed"),
            "{run} run: {}",
            stderr_of(&out)
        );
    }
    // Another path to the same file is the same file.
    let out = pack(tmp.path(), &["-q", "-o", "src/../src/x.tar", "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        tar_names(&src.join("x.tar")),
        ["src/", "src/a", "src/big", "src/x.b3"]
    );
}

/// Runs `spate pack ARGS` under a 1 MiB file-size limit (spate ignores SIGXFSZ, so a
/// write past the limit fails with EFBIG instead of killing it).
fn pack_with_fsize_limit(dir: &Path, args: &[&str], stdout: Stdio) -> Output {
    Command::new("prlimit")
        .args(["--fsize=1048576", "--"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .arg("pack")
        .args(args)
        .current_dir(dir)
        .stdout(stdout)
        .output()
        .expect("prlimit (util-linux)")
}

#[test]
fn pack_reports_the_os_error_that_stopped_the_output_for_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("random"), &bytes(5 << 20, 3));
    for name in ["x.tar", "x.tar.gz", "x.tar.bz2", "x.tar.xz", "x.tar.zst"] {
        for threads in ["2", "1"] {
            let mut args = vec!["-q", "--threads", threads, "-o", name, "src"];
            if name != "x.tar" {
                args.extend(["--level", "1"]);
            }
            let out = pack_with_fsize_limit(tmp.path(), &args, Stdio::null());
            let err = stderr_of(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} --threads {threads}: {err}"
            );
            assert!(
                err.contains(&format!("writing {name}: File too large\n")),
                "{name} --threads {threads}: {err}"
            );
            let left: Vec<PathBuf> = std::fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(left, vec![src.clone()], "{name}: temporary file removed");
        }
    }
    // Standard output has one name in messages.
    let file = std::fs::File::create(tmp.path().join("stdout.tar")).unwrap();
    let out = pack_with_fsize_limit(
        tmp.path(),
        &["-q", "--compress", "none", "-o", "-", "src"],
        Stdio::from(file),
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("writing standard output: File too large\n"),
        "{err}"
    );
}

#[test]
fn pack_reports_a_large_file_whose_mtime_moves_by_nanoseconds_while_streamed() {
    // Large files are streamed by the writer itself. With the archive going to a pipe
    // nobody reads yet, the writer stops inside the file once the pipe and the
    // compressor's queue are full (a few MiB of 32): reading the entry's header from
    // the pipe proves the walk has seen the file and the writer has opened it, and it
    // cannot reach the end before the rest is drained. The mtime moves within the
    // same second, as a rewrite within one second does.
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("src/big");
    write(&big, &bytes(32 << 20, 11));
    set_mtime(&big, 1_600_000_000, 100);
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["pack", "-q", "--compress", "none", "-o", "-", "src"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    use std::io::Read;
    // The directory's header, then the file's.
    let mut headers = [0u8; 1024];
    stdout.read_exact(&mut headers).unwrap();
    assert_eq!(&headers[512..512 + 7], b"src/big");
    set_mtime(&big, 1_600_000_000, 200);
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("src/big: changed while reading"), "{err}");
}

#[test]
fn pack_then_unpack_keeps_absolute_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a"), b"a\n");
    std::os::unix::fs::symlink("/usr/bin/env", src.join("abs")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/dangling", src.join("dangling")).unwrap();
    let out = pack(tmp.path(), &["-q", "-o", "t.tar.zst", "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let args = [
        OsStr::new("unpack"),
        OsStr::new("t.tar.zst"),
        OsStr::new("-C"),
        OsStr::new("out"),
    ];
    let out = run_spate(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(snapshot(&tmp.path().join("out/src")), snapshot(&src));
    let link = std::fs::read_link(tmp.path().join("out/src/abs")).unwrap();
    assert_eq!(link, Path::new("/usr/bin/env"));
}
