//! Faults and hostile input across jobs: special files, huge trees, closed pipes,
//! archives of random or lying bytes.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    spate(dir, &args)
}

#[test]
fn sockets_and_device_nodes_are_never_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    write(&t.join("a"), b"a");
    let _listener = std::os::unix::net::UnixListener::bind(t.join("sock")).unwrap();
    // A character device (root only: CI runs as root) that would block forever if
    // read: a new terminal's slave side would do, but /dev/zero's numbers are simpler
    // and reading it would never end.
    let c = std::ffi::CString::new(t.join("zero").as_os_str().as_bytes()).unwrap();
    // SAFETY: mknod with a valid path.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) };
    assert_eq!(rc, 0, "mknod needs root (CI runs as root)");
    for backend in BACKENDS {
        let out = run(tmp.path(), &["hash", "--io", backend, "t"]);
        assert_eq!(out.status.code(), Some(0), "{backend}: {}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(err.contains("t/sock: skipped socket"), "{err}");
        assert!(err.contains("t/zero: skipped character device"), "{err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }
    let out = run(tmp.path(), &["pack", "-o", "t.tar", "t"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("t/zero: skipped character device"));
}

/// Runs spate and returns its exit code and the peak RSS it reports on stderr (in
/// KiB): `hash --stats` and the check summary end with `peak RSS 12.3 MiB`.
fn peak_rss(dir: &Path, args: &[&str]) -> (Option<i32>, f64) {
    let out = run(dir, args);
    let err = stderr_of(&out);
    let rss = err
        .split("peak RSS ")
        .nth(1)
        .and_then(|rest| {
            let mut words = rest.split_whitespace();
            let n: f64 = words.next()?.parse().ok()?;
            let unit = match words.next()? {
                "KiB" => 1.0,
                "MiB" => 1024.0,
                "GiB" => 1024.0 * 1024.0,
                _ => return None,
            };
            Some(n * unit)
        })
        .unwrap_or_else(|| panic!("no peak RSS in: {err}"));
    (out.status.code(), rss)
}

#[test]
fn memory_stays_flat_from_20_000_to_200_000_files() {
    let tmp = tempfile::tempdir().unwrap();
    // 100,000 empty files in one directory, and 100,000 more in 100 directories.
    let flat = tmp.path().join("big/flat");
    std::fs::create_dir_all(&flat).unwrap();
    for i in 0..100_000 {
        std::fs::File::create(flat.join(format!("{i:06}"))).unwrap();
    }
    for d in 0..100 {
        let dir = tmp.path().join(format!("big/d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..1000 {
            std::fs::File::create(dir.join(format!("{i:04}"))).unwrap();
        }
    }
    let small = tmp.path().join("small");
    for d in 0..20 {
        let dir = small.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..1000 {
            std::fs::File::create(dir.join(format!("{i:04}"))).unwrap();
        }
    }
    let out = run(tmp.path(), &["hash", "-q", "-o", "big.b3", "big"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let lines = std::fs::read(tmp.path().join("big.b3")).unwrap();
    assert_eq!(lines.iter().filter(|&&b| b == b'\n').count(), 200_000);

    let (code, rss_small) = peak_rss(tmp.path(), &["hash", "-q", "--stats", "small"]);
    assert_eq!(code, Some(0));
    let (code, rss_big) = peak_rss(tmp.path(), &["hash", "-q", "--stats", "big"]);
    assert_eq!(code, Some(0));
    eprintln!("peak RSS: 20,000 files {rss_small:.0} KiB, 200,000 files {rss_big:.0} KiB");
    assert!(
        rss_big < rss_small + 16.0 * 1024.0,
        "RSS grew with the tree: {rss_small} KiB -> {rss_big} KiB"
    );
    let (code, rss_check) = peak_rss(tmp.path(), &["check", "--stats", "big.b3"]);
    assert_eq!(code, Some(0));
    eprintln!("peak RSS: check of 200,000 lines {rss_check:.0} KiB");
    // check remembers ~50 bytes a line to catch duplicates: bounded, not the tree.
    assert!(rss_check < rss_small + 48.0 * 1024.0, "{rss_check} KiB");
}

#[test]
fn closed_stdout_ends_check_and_list_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    for i in 0..3000 {
        write(&t.join(format!("f{i:05}")), b"x");
    }
    let out = run(tmp.path(), &["hash", "-o", "t.b3", "t"]);
    assert!(out.status.success());
    let out = run(tmp.path(), &["pack", "-q", "-o", "t.tar", "t"]);
    assert!(out.status.success());
    for args in [["check", "t.b3"], ["list", "t.tar"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(args)
            .current_dir(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, then close the pipe.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        let _ = std::io::Read::read(&mut stdout, &mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = stderr_of(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // Killed by SIGPIPE, as coreutils are, or done before noticing.
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.success(),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// A ustar header with `name` and a declared `size`, checksum fixed.
fn header(name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

#[test]
fn a_header_that_lies_about_its_size_is_an_error_not_an_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut archive = header("huge", 1 << 60).as_bytes().to_vec();
    archive.extend_from_slice(&[7u8; 4096]);
    std::fs::write(tmp.path().join("lie.tar"), &archive).unwrap();
    let out = run(tmp.path(), &["unpack", "lie.tar", "-C", "out"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("huge"), "{}", stderr_of(&out));
    assert!(!tmp.path().join("out/huge").exists());
    let out = run(
        tmp.path(),
        &["unpack", "--max-size", "1T", "lie.tar", "-C", "out"],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = run(tmp.path(), &["list", "lie.tar"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
}

#[test]
fn a_deeply_nested_name_is_handled_or_refused_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    // 3,000 components, 6 KB: longer than PATH_MAX, so it only works component by
    // component from a directory descriptor.
    let name = "a/".repeat(3000) + "f";
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = header("x", 1);
    builder.append_data(&mut h, &name, &b"z"[..]).unwrap();
    let archive = builder.into_inner().unwrap();
    std::fs::write(tmp.path().join("deep.tar"), &archive).unwrap();
    let out = run(tmp.path(), &["unpack", "deep.tar", "-C", "out"]);
    let err = stderr_of(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    if out.status.code() == Some(1) {
        assert!(err.contains("a/a/a"), "a refusal names the entry: {err}");
    }
    let out = run(tmp.path(), &["list", "deep.tar"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn random_and_damaged_archives_never_panic_or_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, true);
    let out = run(tmp.path(), &["pack", "-q", "-o", "good.tar", "src"]);
    assert!(out.status.success());
    let good = std::fs::read(tmp.path().join("good.tar")).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for seed in 0..12u64 {
        cases.push(bytes(512 * (1 + seed as usize * 3), seed)); // noise
        let mut damaged = good.clone(); // a real archive with bytes flipped
        let noise = bytes(64, 1000 + seed);
        for (i, b) in noise.iter().enumerate() {
            let at = (usize::from(*b) * 4099 + i * 7919 + seed as usize * 131) % good.len();
            damaged[at] ^= 0x5a;
        }
        cases.push(damaged);
        cases.push(good[..good.len() * (seed as usize + 1) / 13].to_vec()); // cut short
    }
    for (i, case) in cases.iter().enumerate() {
        let name = format!("case{i}.tar");
        std::fs::write(tmp.path().join(&name), case).unwrap();
        let dest = format!("out{i}");
        for args in [
            vec!["unpack", name.as_str(), "-C", dest.as_str()],
            vec!["list", name.as_str()],
        ] {
            let out = run(tmp.path(), &args);
            let err = stderr_of(&out);
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(
                matches!(out.status.code(), Some(0..=2)),
                "{args:?}: {:?}",
                out.status
            );
        }
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    // Nothing was created beside the destinations either.
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let name = entry.unwrap().file_name();
        let name = name.to_string_lossy();
        assert!(
            ["src", "good.tar", "outside"].contains(&name.as_ref())
                || name.starts_with("case")
                || name.starts_with("out"),
            "unexpected {name}"
        );
    }
    let _ = std::io::stderr().flush();
}

#[test]
fn a_file_whose_size_lies_is_changed_while_reading_and_never_gets_a_digest() {
    // /proc files say they are empty and then yield bytes: to spate that is a file
    // that changed between the walk's stat and the end of the read.
    let tmp = tempfile::tempdir().unwrap();
    for backend in BACKENDS {
        let out = run(tmp.path(), &["hash", "--io", backend, "/proc/self/status"]);
        assert_eq!(out.status.code(), Some(1), "{backend}");
        assert!(out.stdout.is_empty(), "no digest for it");
        assert!(
            stderr_of(&out).contains("/proc/self/status: changed while reading"),
            "{}",
            stderr_of(&out)
        );
        let out = run(
            tmp.path(),
            &["pack", "--io", backend, "-o", "p.tar", "/proc/self/status"],
        );
        assert_eq!(out.status.code(), Some(1), "{backend}");
        assert!(stderr_of(&out).contains("changed while reading"));
        let listing = std::process::Command::new("tar")
            .args(["-tf", "p.tar"])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(listing.stdout.is_empty(), "not archived");
    }
}
