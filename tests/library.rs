//! The library facade (`spate::hash_tree`, `verify`, `pack`, `unpack`) against the peer
//! tools and the commands: the same answers as b3sum, sha256sum, GNU tar and `spate
//! check`, as values.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{files_below, make_tree, peer, spate, write};

#[test]
fn library_hash_tree_agrees_with_b3sum() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    make_tree(&t, false);
    let files = relative(&t);
    let b3sum = peer(&t, "b3sum", &["--"], &files);
    let mut expected: Vec<String> = String::from_utf8(b3sum.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    expected.sort();
    let mut got: Vec<String> = spate::hash_tree(&[&t], &spate::HashOptions::default())
        .map(|file| {
            let file = file.unwrap();
            let name = file.path.strip_prefix(&t).unwrap().display().to_string();
            format!("{}  {name}", file.digests[0].1)
        })
        .collect();
    got.sort();
    assert_eq!(got, expected);
}

/// The files below `dir`, named from it.
fn relative(dir: &Path) -> Vec<std::path::PathBuf> {
    files_below(dir)
        .iter()
        .map(|f| f.strip_prefix(dir).unwrap().to_path_buf())
        .collect()
}

/// `spate check --root --json`'s statuses, in its order.
fn check_statuses(dir: &Path, manifest: &str, root: &Path) -> Vec<(String, String)> {
    let args: Vec<&std::ffi::OsStr> = vec![
        "check".as_ref(),
        "--json".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        manifest.as_ref(),
    ];
    let out = spate(dir, &args);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["path"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn library_verify_reads_a_sha256sum_manifest_as_spate_check_does() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    make_tree(&t, false);
    let mut files = relative(&t);
    files.sort();
    let manifest = peer(&t, "sha256sum", &["--"], &files).stdout;
    std::fs::write(tmp.path().join("m.sha256"), &manifest).unwrap();
    // One file edited, one gone, one line out of the root.
    std::fs::write(t.join("with space.txt"), b"edited\n").unwrap();
    std::fs::remove_file(t.join("deep/a/b/c/d.txt")).unwrap();
    let mut manifest = manifest;
    manifest.extend_from_slice(format!("{}  ../outside\n", "0".repeat(64)).as_bytes());
    std::fs::write(tmp.path().join("outside"), b"x").unwrap();
    std::fs::write(tmp.path().join("m.sha256"), &manifest).unwrap();

    let options = spate::CheckOptions {
        root: Some(t.clone()),
        ..Default::default()
    };
    let verdicts: Vec<spate::Verdict> =
        spate::verify(std::io::Cursor::new(manifest), &options).collect();
    let got: Vec<(String, String)> = verdicts
        .iter()
        .map(|v| (v.path.display().to_string(), v.status.word().to_string()))
        .collect();
    assert_eq!(got, check_statuses(tmp.path(), "m.sha256", &t));
    let word = |name: &str| {
        let v = verdicts.iter().find(|v| v.path == Path::new(name)).unwrap();
        (v.status.clone(), v.algos.clone())
    };
    assert_eq!(
        word("sizes/f1.bin"),
        (spate::Status::Ok, vec![spate::Algo::Sha256])
    );
    assert_eq!(word("with space.txt").0, spate::Status::Failed);
    assert_eq!(word("deep/a/b/c/d.txt").0, spate::Status::Missing);
    match word("../outside").0 {
        spate::Status::Error { kind, .. } => assert_eq!(kind, spate::ErrorKind::OutsideRoot),
        other => panic!("{other:?}"),
    }
    // Lines are numbered as in the manifest.
    let lines: Vec<u64> = verdicts.iter().map(|v| v.line.unwrap()).collect();
    assert_eq!(lines, (1..=lines.len() as u64).collect::<Vec<_>>());
}

#[test]
fn library_verify_says_why_a_manifest_cannot_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let options = spate::CheckOptions {
        root: Some(tmp.path().join("no-such-dir")),
        ..Default::default()
    };
    let verdicts: Vec<_> = spate::verify(std::io::Cursor::new("x  y\n"), &options).collect();
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    match &verdicts[0].status {
        spate::Status::Error { kind, message } => {
            assert_eq!(*kind, spate::ErrorKind::NotFound);
            assert!(
                message.contains("no-such-dir") && !message.contains("os error"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let lines = "not a checksum line\n".repeat(3);
    let verdicts: Vec<_> =
        spate::verify(std::io::Cursor::new(lines), &Default::default()).collect();
    assert_eq!(verdicts.len(), 3);
    assert!(verdicts.iter().all(|v| matches!(
        v.status,
        spate::Status::Error {
            kind: spate::ErrorKind::MalformedLine,
            ..
        }
    )));
}

#[test]
fn library_pack_writes_what_gnu_tar_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    make_tree(&t, false);
    let updates = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&updates);
    let options = spate::PackOptions {
        directory: Some(tmp.path().to_path_buf()),
        progress: Some(Arc::new(move |u: &spate::ProgressUpdate| {
            seen.lock().unwrap().push(*u)
        })),
        ..Default::default()
    };
    let archive = tmp.path().join("t.tar.xz");
    let summary = spate::pack(&["t"], &archive, &options).unwrap();
    assert!(summary.problems.is_empty(), "{:?}", summary.problems);
    assert_eq!(
        std::fs::metadata(&archive).unwrap().len(),
        summary.archive_bytes
    );

    let listed = peer(tmp.path(), "tar", &["-tJf", "t.tar.xz"], &[]).stdout;
    let listed = String::from_utf8(listed).unwrap();
    assert_eq!(listed.lines().count() as u64, summary.entries);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    peer(&out, "tar", &["-xJf", "../t.tar.xz"], &[]);
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&t)
        .arg(out.join("t"))
        .status()
        .unwrap();
    assert!(diff.success());

    // The last update is the final count: every file, every byte.
    let updates = updates.lock().unwrap();
    let last = updates.last().expect("the callback was called");
    let files = files_below(&t);
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(t.join(f)).unwrap().len())
        .sum();
    assert_eq!(
        (last.done_files, last.done_bytes),
        (files.len() as u64, bytes)
    );
}

#[test]
fn library_pack_to_a_writer_is_the_same_archive_as_spate_pack() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("t"), false);
    let options = spate::PackOptions {
        directory: Some(tmp.path().to_path_buf()),
        format: Some(spate::Format::Gzip),
        threads: Some(1),
        reproducible: true,
        mtime: Some(1_000_000),
        ..Default::default()
    };
    let buf = SharedBuf::default();
    spate::pack_to(&["t"], buf.clone(), &options).unwrap();
    let cli = spate(
        tmp.path(),
        &common::os(&[
            "pack",
            "-q",
            "--reproducible",
            "--mtime",
            "1000000",
            "--threads",
            "1",
            "-o",
            "c.tar.gz",
            "t",
        ])
        .iter()
        .map(|a| a.as_os_str())
        .collect::<Vec<_>>(),
    );
    assert!(cli.status.success(), "{}", common::stderr_of(&cli));
    let lib = buf.0.lock().unwrap().clone();
    assert_eq!(lib, std::fs::read(tmp.path().join("c.tar.gz")).unwrap());
    // And gzip itself reads it.
    let gunzip = Command::new("gzip")
        .args(["-t", "c.tar.gz"])
        .current_dir(tmp.path())
        .status();
    assert!(gunzip.unwrap().success());
}

/// A writer the test can read after `pack_to` took it.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn library_pack_refuses_bad_options_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("a"), b"a");
    let archive = tmp.path().join("a.tar.zst");
    let options = spate::PackOptions {
        level: Some(99),
        ..Default::default()
    };
    let err = spate::pack(&[tmp.path().join("a")], &archive, &options).unwrap_err();
    assert!(matches!(err, spate::ArchiveError::Options(_)), "{err}");
    assert!(err.to_string().contains("out of range for zstd"), "{err}");
    let err = spate::pack(&[tmp.path()], tmp.path().join("a.zip"), &Default::default());
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("cannot tell the compression")
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

#[test]
fn library_unpack_extracts_gnu_tar_archives_and_refuses_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("src/t");
    make_tree(&t, false);
    write(&tmp.path().join("src/outside.txt"), b"outside\n");
    // GNU tar with -P stores `../outside.txt` as it is: an archive from elsewhere.
    peer(
        &t,
        "tar",
        &["-P", "-czf", "../../a.tar.gz", ".", "../outside.txt"],
        &[],
    );

    let dest = tmp.path().join("dest/inner");
    let file = std::fs::File::open(tmp.path().join("a.tar.gz")).unwrap();
    let summary = spate::unpack_from(file, &dest, &Default::default()).unwrap();
    assert_eq!(summary.problems.len(), 1, "{:?}", summary.problems);
    assert!(
        summary.problems[0].starts_with("../outside.txt: refused"),
        "{:?}",
        summary.problems
    );
    assert!(!tmp.path().join("dest/outside.txt").exists());
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&t)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(diff.success());
    let bytes: u64 = files_below(&t)
        .iter()
        .map(|f| std::fs::metadata(t.join(f)).unwrap().len())
        .sum();
    assert_eq!(summary.bytes, bytes);

    // Again: every file exists now, and is left alone without `overwrite`.
    let again = spate::unpack(tmp.path().join("a.tar.gz"), &dest, &Default::default()).unwrap();
    assert!(
        again
            .problems
            .iter()
            .any(|p| p.contains("exist; use --overwrite")),
        "{:?}",
        again.problems
    );
    let options = spate::UnpackOptions {
        overwrite: true,
        ..Default::default()
    };
    let replaced = spate::unpack(tmp.path().join("a.tar.gz"), &dest, &options).unwrap();
    assert_eq!(
        replaced.problems.len(),
        1,
        "only the escape: {:?}",
        replaced.problems
    );
}

#[test]
fn library_unpack_of_something_else_is_an_error_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("notes.txt"), &b"just text\n".repeat(100));
    let dest = tmp.path().join("dest");
    let err = spate::unpack(tmp.path().join("notes.txt"), &dest, &Default::default()).unwrap_err();
    match &err {
        spate::ArchiveError::Failed { message, .. } => {
            assert!(message.contains("not a tar archive"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!dest.exists());
    let err =
        spate::unpack(tmp.path().join("missing.tar"), &dest, &Default::default()).unwrap_err();
    match err {
        spate::ArchiveError::Failed { kind, message } => {
            assert_eq!(kind, spate::ErrorKind::NotFound);
            assert!(!message.contains("os error"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
