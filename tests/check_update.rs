//! `spate check OLD.json --audit DIR --update NEW.json`: verify and write the next
//! manifest from the same reads; MOVED for GNU/BSD line manifests; `hash -c` taking
//! check's state flags; and interrupted `--update` runs leaving nothing behind.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Map, Value};

type Record = Map<String, Value>;

fn run(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    spate(dir, &args)
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// A tree `t` of files of distinct sizes and contents, aged so no mtime is recent, and
/// `m.json` written by `spate hash --json t`.
fn tree_and_manifest(dir: &Path) {
    let names = [
        "a.bin",
        "b.bin",
        "c.bin",
        "gone.bin",
        "sub/d.bin",
        "sub/e.bin",
    ];
    for (i, name) in names.iter().enumerate() {
        let path = dir.join("t").join(name);
        write(&path, &bytes(3000 + i * 1000, i as u64 + 7));
        set_mtime(&path, 1_600_000_000 + i as i64, 0);
    }
    let out = run(dir, &["hash", "--json", "t", "-o", "m.json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// Flips one byte of `path` and puts its mtime back, as bitrot would leave it.
fn flip_byte_keep_mtime(path: &Path) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut data = std::fs::read(path).unwrap();
    data[100] ^= 0x01;
    std::fs::write(path, &data).unwrap();
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    set_mtime(path, secs as i64, 0);
}

/// Every kind of change at once: b.bin CORRUPT, c.bin MODIFIED (appended, new mtime),
/// sub/d.bin MOVED to sub/moved.bin, gone.bin MISSING, new.bin NEW; a.bin and
/// sub/e.bin OK.
fn change_everything(dir: &Path) {
    let t = dir.join("t");
    flip_byte_keep_mtime(&t.join("b.bin"));
    let mut c = std::fs::OpenOptions::new()
        .append(true)
        .open(t.join("c.bin"))
        .unwrap();
    c.write_all(b"appended").unwrap();
    drop(c);
    set_mtime(&t.join("c.bin"), 1_700_000_000, 0);
    std::fs::rename(t.join("sub/d.bin"), t.join("sub/moved.bin")).unwrap();
    std::fs::remove_file(t.join("gone.bin")).unwrap();
    write(&t.join("new.bin"), &bytes(777, 99));
}

fn by_path<'a>(recs: &'a [Record], path: &str) -> &'a Record {
    recs.iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no record of {path}"))
}

#[test]
fn check_update_writes_what_hash_json_writes_and_corrupt_keeps_old_digest() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        tree_and_manifest(dir);
        change_everything(dir);

        let out = run(
            dir,
            &[
                "check", "--io", backend, "m.json", "--audit", "t", "--update", "new.json",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{backend}: {}", stderr_of(&out));
        let report = stdout_of(&out);
        for line in [
            "t/a.bin: OK",
            "t/b.bin: CORRUPT",
            "t/c.bin: MODIFIED",
            "t/gone.bin: MISSING",
            "t/new.bin: NEW",
            "t/sub/d.bin -> t/sub/moved.bin: MOVED",
        ] {
            assert!(report.contains(&format!("{line}\n")), "{backend}: {report}");
        }

        // NEW is `spate hash --json t`, line for line and in its order, except that the
        // CORRUPT file keeps OLD's digest and time of reading.
        let new = records(&dir.join("new.json"));
        let out = run(dir, &["hash", "--json", "t", "-o", "full.json"]);
        assert!(out.status.success());
        let full = records(&dir.join("full.json"));
        let old = records(&dir.join("m.json"));
        let paths = |recs: &[Record]| -> Vec<String> {
            recs.iter()
                .map(|r| r["path"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(paths(&new), paths(&full), "{backend}");
        assert!(!paths(&new).contains(&"t/gone.bin".to_string()));
        for (n, f) in new.iter().zip(&full) {
            let mut expected = f.clone();
            if f["path"] == "t/b.bin" {
                let o = by_path(&old, "t/b.bin");
                assert_ne!(o["blake3"], f["blake3"], "the byte was flipped");
                expected.insert("blake3".into(), o["blake3"].clone());
                expected.insert("hashed_ns".into(), o["hashed_ns"].clone());
            } else {
                expected.insert("hashed_ns".into(), n["hashed_ns"].clone());
            }
            assert_eq!(n, &expected, "{backend}");
        }
        // The digests NEW holds for files that did not rot are b3sum's.
        for rec in new.iter().filter(|r| r["path"] != "t/b.bin") {
            let path = rec["path"].as_str().unwrap();
            let b3 = peer(dir, "b3sum", &[], &[path.into()]);
            let digest = String::from_utf8(b3.stdout).unwrap();
            assert_eq!(digest.split(' ').next().unwrap(), rec["blake3"], "{path}");
        }

        // Next week: the rot is reported again, everything else is OK.
        let out = run(dir, &["check", "new.json", "--audit", "t"]);
        assert_eq!(out.status.code(), Some(1));
        let report = stdout_of(&out);
        assert!(report.contains("t/b.bin: CORRUPT\n"), "{report}");
        assert_eq!(report.matches(": OK\n").count(), 5, "{report}");
    }
}

#[test]
fn check_update_keeps_old_algorithms_and_reads_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = dir.join("t");
    for i in 0..20 {
        write(&t.join(format!("f{i:02}")), &bytes(1000 + i * 10, i as u64));
    }
    let out = run(
        dir,
        &[
            "hash", "--json", "-a", "sha256", "-a", "md5", "t", "-o", "m.json",
        ],
    );
    assert!(out.status.success());
    std::fs::rename(t.join("f03"), t.join("g03")).unwrap();
    std::fs::remove_file(t.join("f04")).unwrap();
    write(&t.join("f04-new"), b"new");
    write(&t.join("f05"), b"edited, so another size");

    let trace = dir.join("trace");
    let out = StdCommand::new("strace")
        .current_dir(dir)
        .args(["-f", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["check", "--io", "threads", "m.json", "--audit", "t"])
        .args(["--update", "new.json"])
        .output()
        .expect("strace runs spate");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let trace = std::fs::read_to_string(&trace).unwrap();
    for file in files_below(&t) {
        let name = file.file_name().unwrap().to_str().unwrap();
        let opens = trace
            .lines()
            .filter(|l| l.contains(&format!("/{name}\"")) || l.contains(&format!("\"t/{name}\"")))
            .count();
        assert_eq!(opens, 1, "{name} opened {opens} times: {trace}");
    }
    let new = records(&dir.join("new.json"));
    assert_eq!(new.len(), 20);
    for rec in &new {
        let mut keys: Vec<&str> = rec.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert!(
            keys.contains(&"sha256") && keys.contains(&"md5"),
            "{keys:?}"
        );
        assert!(!keys.contains(&"blake3"), "{keys:?}");
    }
    // sha256sum agrees with every digest NEW holds.
    let lines: String = new
        .iter()
        .map(|r| {
            format!(
                "{}  {}\n",
                r["sha256"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    std::fs::write(dir.join("new.sha256"), lines).unwrap();
    let out = StdCommand::new("sha256sum")
        .current_dir(dir)
        .args(["-c", "--quiet", "new.sha256"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn check_update_refuses_a_line_manifest_and_needs_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("t/a"), b"a");
    let out = run(dir, &["hash", "t", "-o", "m.b3"]);
    assert!(out.status.success());

    let out = run(
        dir,
        &["check", "m.b3", "--audit", "t", "--update", "new.json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr_of(&out);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("spate: m.b3: --update needs a manifest written by"),
        "{stderr}"
    );
    let out = run(dir, &["check", "m.b3", "--update", "new.json"]);
    assert_eq!(out.status.code(), Some(2), "--update without --audit");
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    assert_eq!(left.len(), 2, "nothing written: {left:?}");
}

#[test]
fn line_manifest_missing_file_found_by_audit_is_moved() {
    for (tool, algo) in [("sha256sum", "sha256"), ("b3sum", "blake3")] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for (i, name) in ["a", "b", "sub/c"].iter().enumerate() {
            write(&dir.join("t").join(name), &bytes(500 + i, i as u64));
        }
        let files = files_below(&dir.join("t"));
        let rel: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(dir).unwrap().into())
            .collect();
        let listed = peer(dir, tool, &[], &rel);
        std::fs::write(dir.join("m.sums"), &listed.stdout).unwrap();
        std::fs::rename(dir.join("t/b"), dir.join("t/sub/b2")).unwrap();
        write(&dir.join("t/other"), b"unrelated");

        let args = [
            "check", "-a", algo, "--io", "threads", "--audit", "t", "m.sums",
        ];
        let out = run(dir, &args);
        let report = stdout_of(&out);
        assert!(
            report.contains("t/b -> t/sub/b2: MOVED\n"),
            "{tool}: {report}"
        );
        assert!(report.contains("t/other: NEW\n"), "{tool}: {report}");
        assert!(!report.contains("MISSING"), "{tool}: {report}");
        assert_eq!(out.status.code(), Some(1), "NEW fails: {report}");

        // Nothing missing: NEW files are not read.
        std::fs::rename(dir.join("t/sub/b2"), dir.join("t/b")).unwrap();
        let out = StdCommand::new("strace")
            .current_dir(dir)
            .args(["-f", "-e", "trace=open,openat,openat2", "-o", "trace"])
            .arg(env!("CARGO_BIN_EXE_spate"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let trace = std::fs::read_to_string(dir.join("trace")).unwrap();
        assert!(!trace.contains("other\""), "{tool}: read: {trace}");
    }
}

#[test]
fn hash_c_takes_fail_on_change_and_audit_as_check_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_and_manifest(dir);
    std::fs::rename(dir.join("t/a.bin"), dir.join("t/renamed.bin")).unwrap();
    let c = dir.join("t/c.bin");
    std::fs::write(&c, b"edited").unwrap();
    set_mtime(&c, 1_700_000_000, 0);

    for (flags, code) in [
        (&["--audit", "t"][..], 0),
        (&["--audit", "t", "--fail-on-change"][..], 1),
    ] {
        let mut hash = vec!["hash", "-c", "m.json"];
        hash.extend(flags);
        let mut check = vec!["check", "m.json"];
        check.extend(flags);
        let (h, c) = (run(dir, &hash), run(dir, &check));
        assert_eq!(h.status.code(), Some(code), "{hash:?}: {}", stderr_of(&h));
        assert_eq!(c.status.code(), Some(code), "{check:?}");
        assert_eq!(stdout_of(&h), stdout_of(&c), "{flags:?}");
        assert!(stdout_of(&h).contains("t/a.bin -> t/renamed.bin: MOVED\n"));
        assert!(stdout_of(&h).contains("t/c.bin: MODIFIED\n"));
    }
    // Without -c they mean nothing: refused, not ignored.
    let out = run(dir, &["hash", "--fail-on-change", "t"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Starts spate with OLD a FIFO the test writes `first` into and then holds open: the
/// run has opened its output and waits for OLD's next line when the signal comes.
/// Returns the exit code and stderr; `out` must be left empty.
fn interrupt_reading_old(dir: &Path, args: &[&str], first: &[u8], out: &Path) -> (i32, String) {
    let fifo = dir.join("old.fifo");
    let made = StdCommand::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Blocks until spate opens OLD for reading.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    writer.write_all(first).unwrap();
    let started = Instant::now();
    while std::fs::read_dir(out).unwrap().count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    drop(writer);
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let left: Vec<_> = std::fs::read_dir(out).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn interrupted_hash_update_and_check_update_leave_no_new_and_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tree_and_manifest(dir);
    let old = std::fs::read(dir.join("m.json")).unwrap();
    let first_line = &old[..=old.iter().position(|&b| b == b'\n').unwrap()];
    std::fs::create_dir(dir.join("out")).unwrap();

    let (code, stderr) = interrupt_reading_old(
        dir,
        &["hash", "--update", "old.fifo", "t", "-o", "out/new.json"],
        first_line,
        &dir.join("out"),
    );
    assert_eq!(code, 130, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_file(dir.join("old.fifo")).unwrap();

    let (code, stderr) = interrupt_reading_old(
        dir,
        &[
            "check",
            "old.fifo",
            "--audit",
            "t",
            "--update",
            "out/new.json",
        ],
        first_line,
        &dir.join("out"),
    );
    assert_eq!(code, 130, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // OLD itself is never written: the manifest it was copied from is as it was.
    assert_eq!(std::fs::read(dir.join("m.json")).unwrap(), old);
}
