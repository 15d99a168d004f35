//! Where `spate check` looks for the files a manifest names: as `b3sum -c` and
//! `sha256sum -c` do by default (relative names from the current directory, absolute
//! ones as written), and confined beneath `--root DIR` for manifests from elsewhere.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs spate with `args` in `dir`.
fn run(dir: &Path, args: &[&str]) -> Output {
    let args = os(args);
    let refs: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    spate(dir, &refs)
}

/// Runs `program args` in `dir` with `stdin` on its standard input.
fn run_with_stdin(dir: &Path, program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// spate's report as name → OK / FAILED / MISSING / ERROR.
fn spate_verdicts(out: &Output) -> BTreeMap<String, String> {
    stdout_of(out)
        .lines()
        .map(|line| {
            let (name, word) = ["OK", "FAILED", "MISSING", "NEW"]
                .iter()
                .find_map(|w| Some((line.strip_suffix(&format!(": {w}"))?, *w)))
                .or_else(|| Some((line.split_once(": ERROR ")?.0, "ERROR")))
                .unwrap_or_else(|| panic!("not a report line: {line}"));
            (name.to_string(), word.to_string())
        })
        .collect()
}

/// A peer's `-c` report in spate's words: `FAILED` alone is a digest mismatch; a file
/// that could not be opened is MISSING when the cause is "No such file or directory"
/// (b3sum says it in the line, sha256sum on stderr), else ERROR.
fn peer_verdicts(out: &Output) -> BTreeMap<String, String> {
    let stderr = stderr_of(out);
    stdout_of(out)
        .lines()
        .map(|line| {
            let (name, rest) = line.split_once(": ").expect(line);
            let word = match rest {
                "OK" => "OK",
                "FAILED" => "FAILED",
                _ if rest.contains("No such file or directory")
                    || stderr
                        .lines()
                        .any(|l| l.ends_with(&format!(": {name}: No such file or directory"))) =>
                {
                    "MISSING"
                }
                _ => "ERROR",
            };
            (name.to_string(), word.to_string())
        })
        .collect()
}

/// `tmp/sub` holds the files; the manifests, `tmp/m.b3` and `tmp/m.sha256`, were written
/// by the peers from inside `sub`, so their names are relative to `sub`, not to the
/// manifests' directory. They name a file through `..`, one through a link out of
/// `sub`, one by its absolute path, one that changed, one that is gone and a directory.
fn manifests_written_in_sub(tmp: &Path) {
    let sub = tmp.join("sub");
    write(&sub.join("a"), b"a");
    write(&sub.join("dir/b"), b"b");
    write(&sub.join("changed"), b"before");
    write(&sub.join("gone"), b"gone");
    write(&tmp.join("up"), b"up");
    std::os::unix::fs::symlink("../up", sub.join("link")).unwrap();
    let abs = sub.join("a").display().to_string();
    let names = ["a", "dir/b", "changed", "gone", "../up", "link", &abs];
    let files: Vec<_> = names.iter().map(std::path::PathBuf::from).collect();
    for (tool, manifest) in [("b3sum", "m.b3"), ("sha256sum", "m.sha256")] {
        let mut lines = peer(&sub, tool, &[], &files).stdout;
        // A directory, listed with some digest: neither tool nor spate can read it.
        lines.extend_from_slice(&lines.clone()[..64]);
        lines.extend_from_slice(b"  dir\n");
        std::fs::write(tmp.join(manifest), lines).unwrap();
    }
    write(&sub.join("changed"), b"after!");
    std::fs::remove_file(sub.join("gone")).unwrap();
}

#[test]
fn names_resolve_from_the_current_directory_as_b3sum_and_sha256sum_do() {
    let tmp = tempfile::tempdir().unwrap();
    manifests_written_in_sub(tmp.path());
    let sub = tmp.path().join("sub");
    for (tool, manifest) in [("b3sum", "../m.b3"), ("sha256sum", "../m.sha256")] {
        let theirs = Command::new(tool)
            .current_dir(&sub)
            .args(["-c", manifest])
            .output()
            .unwrap();
        let expected = peer_verdicts(&theirs);
        // The case the issue names: every name verifies or fails as the peer says.
        assert_eq!(expected["a"], "OK", "{tool}: {expected:?}");
        assert_eq!(expected["../up"], "OK", "{tool}: {expected:?}");
        assert_eq!(expected["link"], "OK", "{tool}: {expected:?}");
        assert_eq!(expected["changed"], "FAILED", "{tool}: {expected:?}");
        assert_eq!(expected["gone"], "MISSING", "{tool}: {expected:?}");
        assert_eq!(expected.len(), 8, "{tool}: {expected:?}");
        for backend in BACKENDS {
            let ours = run(&sub, &["check", "--io", backend, manifest]);
            assert_eq!(
                spate_verdicts(&ours),
                expected,
                "{tool} on {backend}: {}",
                stderr_of(&ours)
            );
            assert_eq!(ours.status.code(), theirs.status.code(), "{tool} {backend}");
            // `hash -c` is the same check.
            let hashed = run(&sub, &["hash", "--io", backend, "-c", manifest]);
            assert_eq!(hashed.stdout, ours.stdout, "{tool} {backend}");
        }
        // From standard input, names are as relative to the current directory too.
        let text = std::fs::read(sub.join(manifest)).unwrap();
        let theirs = run_with_stdin(&sub, tool, &["-c", "-"], &text);
        let ours = run_with_stdin(&sub, env!("CARGO_BIN_EXE_spate"), &["check", "-"], &text);
        assert_eq!(
            spate_verdicts(&ours),
            peer_verdicts(&theirs),
            "{tool} stdin"
        );
    }
}

#[test]
fn a_manifest_of_absolute_paths_checks_from_any_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    b3sum_friendly(&dir);
    let abs = dir.display().to_string();
    let manifest = run(tmp.path(), &["hash", &abs]);
    assert!(manifest.status.success(), "{}", stderr_of(&manifest));
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("m.b3"), &manifest.stdout).unwrap();
    let count = files_below(&dir).len();
    for cwd in [elsewhere.as_path(), Path::new("/")] {
        let m = elsewhere.join("m.b3").display().to_string();
        let ours = run(cwd, &["check", &m]);
        assert_eq!(ours.status.code(), Some(0), "{}", stderr_of(&ours));
        assert_eq!(stdout_of(&ours).matches(": OK\n").count(), count);
        let theirs = Command::new("b3sum")
            .current_dir(cwd)
            .args(["-c", &m])
            .output()
            .unwrap();
        assert_eq!(spate_verdicts(&ours), peer_verdicts(&theirs));
    }
    // Even from a directory that was removed, as b3sum -c.
    let m = elsewhere.join("m.b3").display().to_string();
    let gone = Command::new("sh")
        .current_dir(tmp.path())
        .arg("-c")
        .arg(r#"mkdir gone && cd gone && rmdir ../gone && exec "$0" check "$1""#)
        .args([env!("CARGO_BIN_EXE_spate"), &m])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(0), "{}", stderr_of(&gone));
    assert_eq!(stdout_of(&gone).matches(": OK\n").count(), count);
}

/// Files b3sum 1.x can check: plain names (it reads check files as UTF-8).
fn b3sum_friendly(dir: &Path) {
    for (i, name) in ["a", "b c", "sub/d", "sub/deeper/e"].iter().enumerate() {
        write(&dir.join(name), &bytes(100 + i * 5000, i as u64));
    }
}

#[test]
fn root_confines_every_name_and_json_says_outside_root() {
    let tmp = tempfile::tempdir().unwrap();
    manifests_written_in_sub(tmp.path());
    let sub = tmp.path().join("sub");
    let abs = sub.join("a").display().to_string();
    for backend in BACKENDS {
        // From elsewhere, with --root: the names inside resolve beneath sub, every way
        // out is an error and nothing outside is read.
        let out = run(
            tmp.path(),
            &["check", "--io", backend, "--root", "sub", "--json", "m.b3"],
        );
        assert_eq!(out.status.code(), Some(1));
        let objs: BTreeMap<String, serde_json::Value> = stdout_of(&out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["path"].as_str().unwrap().to_string(), v))
            .collect();
        assert_eq!(objs["a"]["status"], "OK", "{objs:?}");
        assert_eq!(objs["dir/b"]["status"], "OK", "{objs:?}");
        assert_eq!(objs["changed"]["status"], "FAILED", "{objs:?}");
        assert_eq!(objs["gone"]["status"], "MISSING", "{objs:?}");
        for outside in ["../up", "link", abs.as_str()] {
            assert_eq!(objs[outside]["status"], "ERROR", "{outside}: {objs:?}");
            assert_eq!(objs[outside]["error_kind"], "outside_root", "{outside}");
        }
        assert_eq!(objs["dir"]["error_kind"], "is_a_directory");
        // The same manifest without --root, from sub: the names as written, in the
        // same JSON fields.
        let out = run(&sub, &["check", "--io", backend, "--json", "../m.b3"]);
        let objs: BTreeMap<String, serde_json::Value> = stdout_of(&out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["path"].as_str().unwrap().to_string(), v))
            .collect();
        for name in ["a", "../up", "link", abs.as_str()] {
            assert_eq!(objs[name]["status"], "OK", "{name}: {objs:?}");
            assert_eq!(objs[name]["manifest"], "../m.b3", "{name}");
        }
        assert_eq!(objs["dir"]["error_kind"], "is_a_directory");
    }
}

#[test]
fn allow_absolute_is_accepted_alone_and_refused_with_root() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("f"), b"f");
    let abs = tmp.path().join("f").display().to_string();
    let line = format!("{}  {abs}\n", blake3::hash(b"f").to_hex());
    std::fs::write(tmp.path().join("m.b3"), line).unwrap();
    let out = run(tmp.path(), &["check", "--allow-absolute", "m.b3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), format!("{abs}: OK\n"));
    let out = run(
        tmp.path(),
        &["check", "--root", ".", "--allow-absolute", "m.b3"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.starts_with("spate: --allow-absolute cannot be used with --root"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The option is not advertised any more.
    let help = stdout_of(&run(tmp.path(), &["check", "--help"]));
    assert!(!help.contains("allow-absolute"), "{help}");
}

#[test]
fn audit_compares_cwd_relative_and_linked_names_with_the_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    b3sum_friendly(&real);
    std::os::unix::fs::symlink("real", tmp.path().join("link")).unwrap();
    // Names relative to `real`, the manifest beside it: `cd real && check ../m.b3`.
    let relative = run(&real, &["hash", "."]);
    std::fs::write(tmp.path().join("rel.b3"), &relative.stdout).unwrap();
    // Absolute names written through the link.
    let through_link = tmp.path().join("link").display().to_string();
    let absolute = run(tmp.path(), &["hash", &through_link]);
    std::fs::write(tmp.path().join("abs.b3"), &absolute.stdout).unwrap();
    write(&real.join("sub/new"), b"not listed");
    let real_abs = real.display().to_string();
    let cases: [(&Path, &[&str]); 6] = [
        (&real, &["--audit", ".", "../rel.b3"]),
        (&real, &["--audit", &real_abs, "../rel.b3"]),
        (tmp.path(), &["--audit", "link", "abs.b3"]),
        (tmp.path(), &["--audit", "real", "abs.b3"]),
        (tmp.path(), &["--audit", &through_link, "abs.b3"]),
        (tmp.path(), &["--root", "real", "--audit", "link", "rel.b3"]),
    ];
    for (cwd, args) in cases {
        let mut all = vec!["check"];
        all.extend_from_slice(args);
        let out = run(cwd, &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        let stdout = stdout_of(&out);
        assert_eq!(stdout.matches(": OK\n").count(), 4, "{args:?}: {stdout}");
        let new: Vec<&str> = stdout.lines().filter(|l| l.ends_with(": NEW")).collect();
        assert_eq!(new.len(), 1, "{args:?}: {stdout}");
        assert!(new[0].ends_with("sub/new: NEW"), "{args:?}: {stdout}");
    }
}

#[test]
fn every_file_missing_but_beside_the_manifest_prints_one_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let (mf, t2) = (tmp.path().join("mf"), tmp.path().join("t2"));
    b3sum_friendly(&mf);
    std::fs::create_dir(&t2).unwrap();
    let manifest = run(&mf, &["hash", "a", "b c", "sub"]);
    std::fs::write(mf.join("t2.b3"), &manifest.stdout).unwrap();
    let hint = "every listed file is missing from the current directory";

    // `cd t2 && spate check ../mf/t2.b3`: b3sum -c finds nothing either; spate says
    // where the names are, on one line.
    let out = run(&t2, &["check", "../mf/t2.b3"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_of(&out).matches(": MISSING\n").count(), 4);
    let err = stderr_of(&out);
    let hints: Vec<&str> = err.lines().filter(|l| l.contains(hint)).collect();
    assert_eq!(hints.len(), 1, "{err}");
    assert!(hints[0].starts_with("spate: ../mf/t2.b3: "), "{err}");
    assert!(
        hints[0].contains("run from ../mf or use --root ../mf"),
        "{err}"
    );
    let theirs = Command::new("b3sum")
        .current_dir(&t2)
        .args(["-c", "../mf/t2.b3"])
        .output()
        .unwrap();
    assert_eq!(spate_verdicts(&out), peer_verdicts(&theirs));
    // So is --ignore-missing, with which nothing at all is reported.
    let out = run(&t2, &["check", "--ignore-missing", "../mf/t2.b3"]);
    assert_eq!(
        stderr_of(&out).matches(hint).count(),
        1,
        "{}",
        stderr_of(&out)
    );

    // Both ways the hint names verify.
    let out = run(&mf, &["check", "t2.b3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = run(&t2, &["check", "--root", "../mf", "../mf/t2.b3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    // No hint when some file is there, when the names are not beside the manifest
    // either, with --root, or with --status.
    write(&t2.join("a"), b"something");
    let out = run(&t2, &["check", "../mf/t2.b3"]);
    assert!(!stderr_of(&out).contains(hint), "{}", stderr_of(&out));
    std::fs::remove_file(t2.join("a")).unwrap();
    std::fs::rename(mf.join("t2.b3"), tmp.path().join("t2.b3")).unwrap();
    let out = run(&t2, &["check", "../t2.b3"]);
    assert_eq!(stdout_of(&out).matches(": MISSING\n").count(), 4);
    assert!(!stderr_of(&out).contains(hint), "{}", stderr_of(&out));
    std::fs::rename(tmp.path().join("t2.b3"), mf.join("t2.b3")).unwrap();
    let out = run(&t2, &["check", "--root", ".", "../mf/t2.b3"]);
    assert_eq!(stdout_of(&out).matches(": MISSING\n").count(), 4);
    assert!(!stderr_of(&out).contains(hint), "{}", stderr_of(&out));
    let out = run(&t2, &["check", "--status", "../mf/t2.b3"]);
    assert_eq!(
        (out.status.code(), stderr_of(&out)),
        (Some(1), String::new())
    );
}

#[test]
fn help_says_names_resolve_as_sha256sum_and_root_is_for_manifests_from_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    // Compared with runs of whitespace made one space: clap wraps help to the terminal.
    let flat = |out: Output| {
        stdout_of(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let check = flat(run(tmp.path(), &["check", "--help"]));
    assert!(check.contains("as sha256sum -c"), "{check}");
    assert!(
        check.contains("a manifest from elsewhere? --root"),
        "{check}"
    );
    assert!(check.contains("Confined mode"), "{check}");
    let hash = flat(run(tmp.path(), &["hash", "--help"]));
    assert!(
        hash.contains("Checking a manifest from elsewhere? use"),
        "{hash}"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains("Checking a manifest from elsewhere? Use `--root DIR`"),
        "README check section"
    );
}
