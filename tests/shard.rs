//! Sharding (`hash --shard`, `check --shard`, `merge`) and the finishing touches
//! (completions, man page, examples in `--help`, no escape codes off a terminal).

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs spate in `dir` with `args` and extra environment variables.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .current_dir(dir)
        .args(args)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .envs(env.iter().copied())
        .output()
        .expect("running spate")
}

fn ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let out = run(dir, args, env);
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    out.stdout
}

fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    tmp
}

/// Hashes `tree` in 4 shards with `format` options, one manifest file per shard:
/// `--shard 1/4` to `4/4`, or `--shards 4` with the 0-based index 0 to 3.
fn hash_in_four(dir: &Path, format: &[&str], via_env: bool) -> Vec<String> {
    (1..=4)
        .map(|k| {
            let name = format!("part-{k}.out");
            let shard = format!("{k}/4");
            let index = (k - 1).to_string();
            let mut args = vec!["hash", "-o", &name];
            args.extend(format);
            let env: Vec<(&str, &str)> = if via_env {
                args.extend(["--shards", "4"]);
                vec![("JOB_COMPLETION_INDEX", &index)]
            } else {
                args.extend(["--shard", &shard]);
                vec![]
            };
            args.push("tree");
            ok(dir, &args, &env);
            name
        })
        .collect()
}

/// JSON Lines with `hashed_ns` (the time each file was read) taken out of every
/// record, which must have it; the other fields (metadata included) as written.
fn without_read_times(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(json).lines() {
        let mut obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).unwrap();
        assert!(obj.remove("hashed_ns").is_some(), "no hashed_ns in {line}");
        for key in ["mtime_ns", "ctime_ns", "inode", "dev"] {
            assert!(obj.contains_key(key), "no {key} in {line}");
        }
        out.extend(serde_json::to_vec(&obj).unwrap());
        out.push(b'\n');
    }
    out
}

#[test]
fn four_shards_merged_equal_hashing_whole_in_every_format() {
    let tmp = tree();
    let dir = tmp.path();
    for format in [&[][..], &["-a", "sha256", "-a", "md5"][..], &["--json"][..]] {
        let whole = ok(dir, &[&["hash"], format, &["tree"]].concat(), &[]);
        let parts = hash_in_four(dir, format, false);
        let mut args = vec!["merge", "--shards", "4", "-o", "all.out"];
        args.extend(parts.iter().map(String::as_str));
        ok(dir, &args, &[]);
        let merged = std::fs::read(dir.join("all.out")).unwrap();
        // JSON records say when each file was read, which differs between the runs.
        let (merged, whole) = if format == ["--json"] {
            (without_read_times(&merged), without_read_times(&whole))
        } else {
            (merged, whole)
        };
        assert!(
            merged == whole,
            "{format:?}: merged shards differ from whole"
        );
    }
}

#[test]
fn shards_from_job_completion_index_merge_to_whole() {
    let tmp = tree();
    let dir = tmp.path();
    let whole = ok(dir, &["hash", "tree"], &[]);
    let parts = hash_in_four(dir, &[], true);
    let mut args = vec!["merge", "--shards", "4"];
    args.extend(parts.iter().map(String::as_str));
    assert!(ok(dir, &args, &[]) == whole);
    // Index 2 is the third shard: the same split as --shard 3/4.
    let explicit = ok(dir, &["hash", "--shard", "3/4", "tree"], &[]);
    assert_eq!(std::fs::read(dir.join(&parts[2])).unwrap(), explicit);
}

#[test]
fn every_file_lands_in_exactly_one_shard() {
    let tmp = tree();
    let dir = tmp.path();
    let mut owner: HashMap<Vec<u8>, usize> = HashMap::new();
    for (k, part) in hash_in_four(dir, &["--json"], false).iter().enumerate() {
        let lines = sorted_lines(&std::fs::read(dir.join(part)).unwrap());
        assert!(!lines.is_empty(), "shard {k} of 71 files is empty");
        for line in lines {
            if let Some(other) = owner.insert(line.clone(), k) {
                panic!(
                    "{} in shards {other} and {k}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
    }
    assert_eq!(owner.len(), files_below(&dir.join("tree")).len());
}

#[test]
fn slurm_index_out_of_range_is_a_usage_error() {
    let tmp = tree();
    let out = run(
        tmp.path(),
        &["hash", "--shards", "4", "tree"],
        &[("SLURM_ARRAY_TASK_ID", "4")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("--array=0-3"),
        "{}",
        stderr_of(&out)
    );
    let out = run(tmp.path(), &["hash", "--shards", "4", "tree"], &[]);
    assert_eq!(out.status.code(), Some(2), "no index anywhere");
}

#[test]
fn shard_k_is_one_based_and_out_of_range_names_the_range() {
    let tmp = tree();
    let dir = tmp.path();
    for bad in ["0/4", "5/4"] {
        let out = run(dir, &["hash", "--shard", bad, "tree"], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = stderr_of(&out);
        assert!(err.contains("K must be 1..=4"), "{bad}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // 1/4 ... 4/4 together list every file once, and 1/1 is the whole tree.
    let whole = ok(dir, &["hash", "tree"], &[]);
    let mut all: Vec<Vec<u8>> = (1..=4)
        .flat_map(|k| {
            sorted_lines(&ok(
                dir,
                &["hash", "--shard", &format!("{k}/4"), "tree"],
                &[],
            ))
        })
        .collect();
    all.sort();
    assert_eq!(all, sorted_lines(&whole));
    assert!(ok(dir, &["hash", "--shard", "1/1", "tree"], &[]) == whole);
    // JOB_COMPLETION_INDEX=0 is the first shard.
    assert!(
        ok(
            dir,
            &["hash", "--shards", "4", "tree"],
            &[("JOB_COMPLETION_INDEX", "0")]
        ) == ok(dir, &["hash", "--shard", "1/4", "tree"], &[])
    );
}

#[test]
fn merge_refuses_shards_whose_root_is_spelled_differently() {
    let tmp = tree();
    let dir = tmp.path();
    write(
        &dir.join("a"),
        &ok(dir, &["hash", "--shard", "1/2", "./tree"], &[]),
    );
    write(
        &dir.join("b"),
        &ok(dir, &["hash", "--shard", "2/2", "tree"], &[]),
    );
    for args in [
        &["merge", "a", "b"][..],
        &["merge", "--shards", "2", "-o", "all.b3", "b", "a"][..],
    ] {
        let out = run(dir, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "nothing written before the refusal");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("'./tree'") && err.contains("'tree'"),
            "names both spellings: {err}"
        );
        assert!(
            err.contains("a (line 1)") && err.contains("b (line 1)"),
            "{err}"
        );
    }
    assert!(!dir.join("all.b3").exists());
    // The same spelling in both merges cleanly.
    write(
        &dir.join("b"),
        &ok(dir, &["hash", "--shard", "2/2", "./tree"], &[]),
    );
    assert!(ok(dir, &["merge", "a", "b"], &[]) == ok(dir, &["hash", "./tree"], &[]));
}

#[test]
fn merge_refuses_a_conflicting_duplicate_and_writes_nothing() {
    let tmp = tree();
    let dir = tmp.path();
    let parts = hash_in_four(dir, &[], false);
    let original = std::fs::read(dir.join(&parts[1])).unwrap();
    let first_line = original.split(|&b| b == b'\n').next().unwrap().to_vec();
    // The same path with another digest, as a worker that saw other bytes would list it.
    let mut changed = first_line.clone();
    changed[0] = if changed[0] == b'0' { b'1' } else { b'0' };
    changed.push(b'\n');
    write(&dir.join("other.out"), &changed);
    let out = run(
        dir,
        &["merge", "-o", "all.out", &parts[1], "other.out"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("different digests"), "{err}");
    assert!(
        err.contains(&parts[1]) && err.contains("other.out"),
        "{err}"
    );
    assert!(
        !dir.join("all.out").exists(),
        "refused merge left an output"
    );
}

#[test]
fn merge_keeps_an_overlap_once_and_reports_it() {
    let tmp = tree();
    let dir = tmp.path();
    let whole = ok(dir, &["hash", "tree"], &[]);
    let parts = hash_in_four(dir, &[], false);
    write(&dir.join("whole.out"), &whole);
    let mut args = vec!["merge", "whole.out"];
    args.extend(parts.iter().map(String::as_str));
    let out = run(dir, &args, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout == whole);
    assert!(stderr_of(&out).contains("same digest"));
    args.insert(1, "-q");
    assert!(run(dir, &args, &[]).stderr.is_empty());
}

#[test]
fn merge_reports_a_missing_shard_as_a_gap() {
    let tmp = tree();
    let dir = tmp.path();
    let parts = hash_in_four(dir, &[], false);
    let out = run(
        dir,
        &["merge", "--shards", "4", &parts[0], &parts[1], &parts[3]],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    // parts[2] is --shard 3/4: the gap is named as --shard names it.
    assert!(stderr_of(&out).contains("shard 3/4"), "{}", stderr_of(&out));
    // An empty shard (small tree) is not a gap when its empty manifest is given.
    write(&dir.join("empty.out"), b"");
    let out = run(
        dir,
        &[
            "merge",
            "--shards",
            "4",
            &parts[0],
            &parts[1],
            &parts[3],
            "empty.out",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn merge_refuses_unsorted_input_and_mixed_formats() {
    let tmp = tree();
    let dir = tmp.path();
    let whole = ok(dir, &["hash", "tree"], &[]);
    let mut lines: Vec<&[u8]> = whole.split_inclusive(|&b| b == b'\n').collect();
    lines.reverse();
    write(&dir.join("reversed.out"), &lines.concat());
    let out = run(dir, &["merge", "reversed.out"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("reversed.out:2:"),
        "{}",
        stderr_of(&out)
    );

    let json = ok(dir, &["hash", "--json", "--shard", "1/2", "tree"], &[]);
    write(&dir.join("half.json"), &json);
    let gnu = ok(dir, &["hash", "--shard", "2/2", "tree"], &[]);
    write(&dir.join("half.b3"), &gnu);
    let out = run(dir, &["merge", "half.json", "half.b3"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("JSON"), "{}", stderr_of(&out));
}

#[test]
fn check_shard_verifies_only_its_shard() {
    let tmp = tree();
    let dir = tmp.path();
    write(&dir.join("all.b3"), &ok(dir, &["hash", "tree"], &[]));
    let mine = ok(dir, &["hash", "--shard", "2/3", "tree"], &[]);
    let mine_names: Vec<Vec<u8>> = ok(dir, &["check", "--shard", "2/3", "all.b3"], &[])
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(mine_names.len(), sorted_lines(&mine).len());

    // Damage one file of another shard: shard 1 still verifies, the whole does not.
    let other = sorted_lines(&ok(dir, &["hash", "--shard", "1/3", "tree"], &[]))
        .into_iter()
        .find(|l| !l.starts_with(b"\\"))
        .unwrap();
    let name = std::str::from_utf8(&other[66..]).unwrap().to_string();
    write(&dir.join(&name), b"changed");
    ok(dir, &["check", "--shard", "2/3", "all.b3"], &[]);
    let out = run(dir, &["check", "--shard", "1/3", "all.b3"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(
        dir,
        &["check", "--shards", "3", "all.b3"],
        &[("JOB_COMPLETION_INDEX", "2")],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    // --audit walks only the shard too: the other shards' files are not NEW.
    ok(
        dir,
        &["check", "--shard", "3/3", "--audit", "tree", "all.b3"],
        &[],
    );
}

#[test]
fn completions_generate_for_every_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = String::from_utf8(ok(tmp.path(), &["completions", shell], &[])).unwrap();
        for sub in ["hash", "check", "merge", "unpack"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(script.contains("shard"), "{shell} completion lacks --shard");
    }
}

#[test]
fn man_pages_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let page = String::from_utf8(ok(tmp.path(), &["man"], &[])).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("merge") && page.contains("hash"));
    ok(tmp.path(), &["man", "--out", "man1"], &[]);
    for name in ["spate.1", "spate-hash.1", "spate-merge.1", "spate-check.1"] {
        let text = std::fs::read_to_string(tmp.path().join("man1").join(name)).unwrap();
        assert!(text.contains(".TH"), "{name}");
    }
}

#[test]
fn every_subcommand_help_has_examples() {
    let tmp = tempfile::tempdir().unwrap();
    for sub in [
        "hash",
        "check",
        "pack",
        "unpack",
        "list",
        "merge",
        "completions",
        "man",
    ] {
        let help = String::from_utf8(ok(tmp.path(), &[sub, "--help"], &[])).unwrap();
        let (_, examples) = help
            .split_once("Examples:")
            .unwrap_or_else(|| panic!("{sub} --help has no examples"));
        let count = examples
            .lines()
            .filter(|l| l.trim_start().starts_with("spate ") || l.contains("| spate "))
            .count();
        assert!(count >= 2, "{sub} --help has {count} examples");
    }
}

#[test]
fn no_escape_codes_off_a_terminal_with_no_color() {
    let tmp = tree();
    let dir = tmp.path();
    for args in [
        &["hash", "--no-such-option"][..],
        &["hash", "tree", "missing"][..],
        &["merge", "missing.b3"][..],
    ] {
        let out = run(dir, args, &[("NO_COLOR", "1"), ("TERM", "xterm-256color")]);
        assert!(!out.status.success());
        assert!(!out.stderr.contains(&0x1b), "{args:?}: {}", stderr_of(&out));
    }
}

#[test]
fn a_dangling_link_is_one_shards_error_and_a_missing_root_everyones() {
    let tmp = tree();
    let dir = tmp.path();
    std::os::unix::fs::symlink("nowhere", dir.join("tree/dangling")).unwrap();
    let failed: Vec<u64> = (1..=4)
        .filter(|k| {
            let shard = format!("{k}/4");
            let out = run(dir, &["hash", "-L", "--shard", &shard, "tree"], &[]);
            out.status.code() == Some(1)
        })
        .collect();
    assert_eq!(failed.len(), 1, "shards failing: {failed:?}");
    for k in 1..=4 {
        let shard = format!("{k}/4");
        let out = run(dir, &["hash", "--shard", &shard, "tree", "missing"], &[]);
        assert_eq!(out.status.code(), Some(1), "shard {k}");
    }
}

#[test]
fn check_passes_on_a_shard_with_no_lines() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("t/only"), b"one file");
    let manifest = spate(tmp.path(), &[OsStr::new("hash"), OsStr::new("t")]);
    std::fs::write(tmp.path().join("t.b3"), &manifest.stdout).unwrap();
    let mut oks = 0;
    for k in 1..=8 {
        let shard = format!("{k}/8");
        let out = spate(
            tmp.path(),
            &[
                OsStr::new("check"),
                OsStr::new("--shard"),
                OsStr::new(&shard),
                OsStr::new("t.b3"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{shard}: {}", stderr_of(&out));
        oks += String::from_utf8_lossy(&out.stdout).matches(": OK").count();
    }
    assert_eq!(oks, 1, "the one line is checked by exactly one shard");
}

/// The lines of `--help`'s `Examples:` block, as written (indentation trimmed).
fn help_examples(dir: &Path, args: &[&str]) -> Vec<String> {
    let help = String::from_utf8(ok(dir, args, &[])).unwrap();
    let (_, block) = help.split_once("Examples:\n").expect("an Examples: block");
    block
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// `man -l PAGE` as plain text, wide enough that no example line is cut.
fn rendered(dir: &Path, page: &str) -> Vec<String> {
    let out = Command::new("man")
        .args(["-l", page])
        .current_dir(dir)
        .env("MANWIDTH", "200")
        .env("MANPAGER", "cat")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man (man-db, which .ci/run installs) renders the page");
    assert!(out.status.success(), "man -l {page}: {}", stderr_of(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn top_level_help_has_examples_and_man_pages_have_the_sections() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let examples = help_examples(dir, &["--help"]);
    for job in ["hash", "check", "pack", "unpack", "bench", "--shard 1/4"] {
        assert!(
            examples
                .iter()
                .any(|l| l.starts_with("spate ") && l.contains(job)),
            "spate --help has no example of {job}: {examples:?}"
        );
    }
    let page = String::from_utf8(ok(dir, &["man"], &[])).unwrap();
    for section in [".SH EXAMPLES", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT"] {
        assert!(page.contains(section), "spate.1 lacks {section}");
    }
    write(&dir.join("spate.1"), page.as_bytes());
    let text = rendered(dir, "spate.1");
    // Each example is one line of the rendered page, exactly as --help prints it (a
    // re-flowed page would run them together into one paragraph).
    for line in &examples {
        assert!(text.contains(line), "man spate lost {line:?}: {text:#?}");
    }
    let section = |name: &str| {
        let start = text
            .iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("{name}"));
        text[start + 1..]
            .iter()
            .take_while(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_uppercase() || c == ' '))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    let exit = section("EXIT STATUS");
    for code in ["0", "1", "2", "130, 143"] {
        assert!(
            exit.lines().any(|l| l.starts_with(code)),
            "exit {code}: {exit}"
        );
    }
    let env = section("ENVIRONMENT");
    for var in [
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "NO_COLOR",
        "SOURCE_DATE_EPOCH",
    ] {
        assert!(env.lines().any(|l| l == var), "{var} missing: {env}");
    }
    // Every subcommand's page has its --help examples, line for line.
    ok(dir, &["man", "--out", "man1"], &[]);
    for sub in ["hash", "merge", "bench", "pack"] {
        let text = rendered(dir, &format!("man1/spate-{sub}.1"));
        let at = text.iter().position(|l| l == "EXAMPLES").expect("EXAMPLES");
        for line in help_examples(dir, &[sub, "--help"]) {
            assert!(text[at..].contains(&line), "man spate-{sub} lost {line:?}");
        }
    }
}

#[test]
fn environment_variables_do_what_the_man_page_says() {
    let tmp = tree();
    let dir = tmp.path();
    // SLURM_ARRAY_TASK_ID is read when JOB_COMPLETION_INDEX is not set, and loses to it.
    let third = ok(dir, &["hash", "--shard", "3/4", "tree"], &[]);
    let slurm = ok(
        dir,
        &["hash", "--shards", "4", "tree"],
        &[("SLURM_ARRAY_TASK_ID", "2")],
    );
    assert!(slurm == third);
    let both = ok(
        dir,
        &["hash", "--shards", "4", "tree"],
        &[("SLURM_ARRAY_TASK_ID", "0"), ("JOB_COMPLETION_INDEX", "2")],
    );
    assert!(both == third);
    // SOURCE_DATE_EPOCH clamps pack --reproducible's mtimes, as GNU tar --clamp-mtime.
    ok(
        dir,
        &["pack", "--reproducible", "-o", "t.tar", "tree"],
        &[("SOURCE_DATE_EPOCH", "1000000000")],
    );
    let listing = Command::new("tar")
        .args(["--full-time", "-tvf", "t.tar"])
        .env("TZ", "UTC")
        .current_dir(dir)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.lines().count() > 10);
    for line in listing.lines() {
        assert!(line.contains("2001-09-09 01:46:40"), "not clamped: {line}");
    }
}
