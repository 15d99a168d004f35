//! `spate pack` with large members, which the readers hand to the tar writer in pieces
//! while they read them: checked against GNU tar and b3sum, on both backends.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

fn gnu_tar(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("tar")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("GNU tar (.ci/run installs it)");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_40_mib_file_among_many_small_ones_unpacks_byte_identical_with_gnu_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut files = vec![
        ("big".to_string(), bytes(40 << 20, 1)),
        ("a/mid".to_string(), bytes(3 << 20, 2)),
        ("a/just-over-1-mib".to_string(), bytes((1 << 20) + 1, 3)),
    ];
    for i in 0..600 {
        files.push((format!("small/{:03}/f{i}", i % 7), bytes(i * 53, i as u64)));
    }
    // A second large file after the small ones, so two streams follow each other.
    files.push(("z-last".to_string(), bytes(9 << 20, 4)));
    for (name, data) in &files {
        write(&src.join(name), data);
    }
    for backend in BACKENDS {
        let archive = format!("{backend}.tar.zst");
        let manifest = format!("{backend}.b3");
        assert_cmd::Command::cargo_bin("spate")
            .unwrap()
            .current_dir(tmp.path())
            .args(["pack", "-q", "--io", backend, "--manifest", &manifest])
            .args(["-o", &archive, "src"])
            .assert()
            .success();
        let dest = tmp.path().join(format!("x-{backend}"));
        std::fs::create_dir(&dest).unwrap();
        gnu_tar(tmp.path(), &["-xf", &archive, "-C", dest.to_str().unwrap()]);
        for (name, data) in &files {
            let got = std::fs::read(dest.join("src").join(name)).unwrap();
            assert!(got == *data, "{backend}: {name} differs after GNU tar -x");
        }
        // The digests the readers computed while streaming are those of the files.
        let checked = Command::new("b3sum")
            .args(["-c", &manifest])
            .current_dir(tmp.path())
            .output()
            .expect("b3sum (.ci/run installs it)");
        assert!(
            checked.status.success(),
            "{backend}: {}",
            stderr_of(&checked)
        );
        let lines = String::from_utf8_lossy(&checked.stdout).lines().count();
        assert_eq!(lines, files.len(), "{backend}");
    }
}

/// Packs `src` (holding one 32 MiB file, `src/big`) with `--compress none` to a pipe
/// and calls `meddle` once the file's header has come out of it. Nobody reads the pipe
/// until then, so the readers cannot have reached the end of the file: they stop a
/// few MiB into it (the stream to the writer, the compressor's queue and the pipe are
/// full). Returns the exit code, stderr and the archive.
fn pack_and_meddle(dir: &Path, backend: &str, meddle: impl FnOnce()) -> (i32, String, Vec<u8>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["pack", "-q", "--io", backend, "--compress", "none"])
        .args(["-o", "-", "src"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The directory's header, then the file's.
    let mut archive = vec![0u8; 1024];
    stdout.read_exact(&mut archive).unwrap();
    assert_eq!(&archive[512..512 + 7], b"src/big", "{backend}");
    meddle();
    stdout.read_to_end(&mut archive).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), stderr_of(&out), archive)
}

#[test]
fn a_file_growing_while_packed_gives_a_valid_archive_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("src/big");
    let original = bytes(32 << 20, 7);
    for backend in BACKENDS {
        write(&big, &original);
        let stop = Arc::new(AtomicBool::new(false));
        let mut appender = None;
        let (code, err, archive) = pack_and_meddle(tmp.path(), backend, || {
            let mut file = std::fs::OpenOptions::new().append(true).open(&big).unwrap();
            // Grown once for sure before the readers can reach the end, then on and
            // on in the background while they read.
            file.write_all(&[b'+'; 4096]).unwrap();
            let stop = Arc::clone(&stop);
            appender = Some(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    file.write_all(&[b'+'; 4096]).unwrap();
                    std::thread::yield_now();
                }
            }));
        });
        stop.store(true, Ordering::Relaxed);
        appender.unwrap().join().unwrap();
        assert_eq!(code, 1, "{backend}: {err}");
        assert!(err.contains("src/big: changed while reading"), "{err}");
        std::fs::write(tmp.path().join("grown.tar"), &archive).unwrap();
        // GNU tar lists it with the size the walk saw, and unpacks what it held then.
        let listing = gnu_tar(tmp.path(), &["-tvf", "grown.tar"]);
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(
            listing.contains(&format!(" {} ", 32 << 20)) && listing.contains("src/big"),
            "{backend}: {listing}"
        );
        let dest = tmp.path().join(format!("grown-{backend}"));
        std::fs::create_dir(&dest).unwrap();
        gnu_tar(
            tmp.path(),
            &["-xf", "grown.tar", "-C", dest.to_str().unwrap()],
        );
        let got = std::fs::read(dest.join("src/big")).unwrap();
        assert!(got == original, "{backend}: the first 32 MiB, as they were");
    }
}

#[test]
fn a_file_shrinking_while_packed_is_padded_to_its_header_size_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("src/big");
    let original = bytes(32 << 20, 8);
    let kept = (1 << 20) + 10;
    for backend in BACKENDS {
        write(&big, &original);
        let (code, err, archive) = pack_and_meddle(tmp.path(), backend, || {
            let file = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
            file.set_len(kept as u64).unwrap();
        });
        assert_eq!(code, 1, "{backend}: {err}");
        assert!(err.contains("src/big: changed while reading"), "{err}");
        std::fs::write(tmp.path().join("shrunk.tar"), &archive).unwrap();
        let dest = tmp.path().join(format!("shrunk-{backend}"));
        std::fs::create_dir(&dest).unwrap();
        gnu_tar(
            tmp.path(),
            &["-xf", "shrunk.tar", "-C", dest.to_str().unwrap()],
        );
        let got = std::fs::read(dest.join("src/big")).unwrap();
        // The member keeps its header's size: the bytes the file still has, then what
        // was read before it shrank, or zeros.
        assert_eq!(got.len(), original.len(), "{backend}");
        assert!(got[..kept] == original[..kept], "{backend}");
        assert!(
            got.iter().zip(&original).all(|(g, o)| g == o || *g == 0),
            "{backend}: a byte neither the file's nor padding"
        );
    }
}

/// The peak RSS in KiB that a `--stats` summary line reports (`; peak RSS 48.2 MiB`):
/// the VmHWM of spate's own process image. (A spawned child's `ru_maxrss` would count
/// this test process's memory too, which exec carries over into it.)
fn reported_peak_rss_kib(stderr: &str) -> f64 {
    stderr
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
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"))
}

#[test]
fn packing_a_1_gib_file_keeps_peak_memory_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("src/big");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    {
        // Written block by block, every block allocated (not sparse).
        let block = bytes(1 << 20, 9);
        let mut file = std::fs::File::create(&big).unwrap();
        for i in 0..1024u32 {
            file.write_all(&i.to_le_bytes()).unwrap();
            file.write_all(&block[4..]).unwrap();
        }
    }
    for backend in BACKENDS {
        // No compression: what is measured is the read path, not the compressor's
        // own windows.
        let out = Command::new(env!("CARGO_BIN_EXE_spate"))
            .args([
                "pack",
                "-q",
                "--stats",
                "--io",
                backend,
                "--compress",
                "none",
            ])
            .args(["-o", "-", "src"])
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(0), "{backend}: {err}");
        let rss = reported_peak_rss_kib(&err);
        eprintln!("{backend}: peak RSS packing 1 GiB: {:.0} MiB", rss / 1024.0);
        assert!(
            rss < 200.0 * 1024.0,
            "{backend}: peak RSS {:.0} MiB for a 1 GiB file",
            rss / 1024.0
        );
    }
}
