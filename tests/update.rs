//! Integrity over time: JSON manifests that remember each file's metadata, and
//! `spate hash --update`, which reuses the digests of unchanged files without reading
//! them.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::{Map, Value};

type Record = Map<String, Value>;

fn run(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    spate(dir, &args)
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    out
}

fn records(json: &[u8]) -> Vec<Record> {
    String::from_utf8_lossy(json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn read_records(path: &Path) -> Vec<Record> {
    records(&std::fs::read(path).unwrap())
}

/// The record's path as bytes (`path_hex` when the name is not UTF-8).
fn name_of(record: &Record) -> Vec<u8> {
    match record.get("path_hex") {
        Some(Value::String(hex)) => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
        _ => record["path"].as_str().unwrap().as_bytes().to_vec(),
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[test]
fn json_records_each_files_stat_metadata_on_both_backends() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    for backend in BACKENDS {
        let before = now_ns();
        let out = ok(tmp.path(), &["hash", "--json", "--io", backend, "tree"]);
        let after = now_ns();
        let recs = records(&out.stdout);
        assert_eq!(recs.len(), files_below(&tmp.path().join("tree")).len());
        for rec in &recs {
            use std::os::unix::ffi::OsStrExt;
            let name = name_of(rec);
            let path = tmp.path().join(std::ffi::OsStr::from_bytes(&name));
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ns = |s: i64, n: i64| s * 1_000_000_000 + n;
            assert_eq!(rec["size"], meta.len(), "{}", path.display());
            assert_eq!(rec["mtime_ns"], ns(meta.mtime(), meta.mtime_nsec()));
            assert_eq!(rec["ctime_ns"], ns(meta.ctime(), meta.ctime_nsec()));
            assert_eq!(rec["inode"], meta.ino());
            assert_eq!(rec["dev"], meta.dev());
            let hashed = rec["hashed_ns"].as_i64().unwrap();
            assert!(
                (before..=after).contains(&hashed),
                "{backend}: hashed_ns {hashed} not within the run"
            );
        }
    }
}

#[test]
fn check_and_merge_read_json_with_metadata_and_merge_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("tree"), true);
    let dir = tmp.path();
    ok(dir, &["hash", "--json", "-o", "whole.json", "tree"]);
    let out = ok(dir, &["check", "whole.json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": OK")).count(),
        read_records(&dir.join("whole.json")).len()
    );
    for k in 0..3 {
        let shard = format!("{}/3", k + 1);
        let part = format!("part{k}.json");
        ok(
            dir,
            &["hash", "--json", "--shard", &shard, "-o", &part, "tree"],
        );
    }
    ok(
        dir,
        &[
            "merge",
            "--shards",
            "3",
            "-o",
            "m.json",
            "part0.json",
            "part1.json",
            "part2.json",
        ],
    );
    let merged = read_records(&dir.join("m.json"));
    let whole = read_records(&dir.join("whole.json"));
    assert_eq!(merged.len(), whole.len());
    for (m, w) in merged.iter().zip(&whole) {
        for key in [
            "path", "size", "blake3", "mtime_ns", "ctime_ns", "inode", "dev",
        ] {
            assert_eq!(m.get(key), w.get(key), "{key} of {:?}", w["path"]);
        }
        assert!(m["hashed_ns"].is_i64(), "merge keeps hashed_ns");
    }
}

/// Puts every file below `root` at a fixed time in the past, so no record is within
/// the two seconds of its read that make `--update` distrust it.
fn age_files(root: &Path) {
    for (i, file) in files_below(root).iter().enumerate() {
        set_mtime(file, 1_600_000_000 + i as i64, 123_456_789);
    }
}

/// `n` files of different sizes in ten directories, aged.
fn numbered_tree(root: &Path, n: usize) {
    for i in 0..n {
        write(
            &root.join(format!("d{}/f{i:04}", i % 10)),
            &bytes(1 + (i * 37) % 3000, i as u64),
        );
    }
    age_files(root);
}

/// The counts of the `spate: update:` line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    reused: u64,
    changed: u64,
    scrubbed: u64,
    new: u64,
    gone: u64,
    outside: u64,
}

fn counts(out: &Output) -> Counts {
    let err = stderr_of(out);
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("spate: update: "))
        .unwrap_or_else(|| panic!("no update line in {err}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    let [reused, again, changed, scrubbed, new, gone, outside] = numbers[..] else {
        panic!("unexpected update line {line}");
    };
    assert_eq!(again, changed + scrubbed, "{line}");
    Counts {
        reused,
        changed,
        scrubbed,
        new,
        gone,
        outside,
    }
}

/// Records keyed by path, without `hashed_ns`, for comparing two manifests of one tree.
fn comparable(path: &Path) -> Vec<Record> {
    let mut recs = read_records(path);
    for rec in &mut recs {
        rec.remove("hashed_ns");
    }
    recs
}

#[test]
fn update_reads_exactly_the_changed_files_on_both_backends() {
    for backend in BACKENDS {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let tree = dir.join("tree");
        numbered_tree(&tree, 1000);
        // Every file nobody must not read is mode 000: run as nobody, spate can stat it
        // but any open fails, which would be an error and exit 1. Only the files to be
        // changed stay readable. The modes are set before OLD is written, so OLD's
        // ctimes are the files' own.
        use std::os::unix::fs::PermissionsExt;
        let changed: Vec<usize> = (0..1000).step_by(97).collect();
        let gone = [5usize, 500, 999];
        for (i, file) in (0..1000).map(|i| (i, tree.join(format!("d{}/f{i:04}", i % 10)))) {
            let mode = if changed.contains(&i) { 0o644 } else { 0o000 };
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        ok(dir, &["hash", "--json", "-o", "old.json", "tree"]);
        for &i in &changed {
            let file = tree.join(format!("d{}/f{i:04}", i % 10));
            write(&file, &bytes(4000 + i, 9_999 + i as u64));
            set_mtime(&file, 1_700_000_000, i as i64);
        }
        for &i in &gone {
            std::fs::remove_file(tree.join(format!("d{}/f{i:04}", i % 10))).unwrap();
        }
        for name in ["d3/new1", "new2"] {
            write(&tree.join(name), name.as_bytes());
            set_mtime(&tree.join(name), 1_700_000_000, 0);
        }
        open_to_all(dir);
        let out = as_nobody(
            dir,
            &[
                "hash", "--io", backend, "--update", "old.json", "tree", "-o", "new.json",
                "--stats",
            ],
        );
        assert!(
            out.status.success(),
            "{backend}: an unchanged file was opened: {}",
            stderr_of(&out)
        );
        let expected = Counts {
            reused: 1000 - changed.len() as u64 - gone.len() as u64,
            changed: changed.len() as u64,
            new: 2,
            gone: gone.len() as u64,
            ..Counts::default()
        };
        assert_eq!(counts(&out), expected, "{backend}");
        // NEW is what a full run (as root, who can read mode 000) writes.
        ok(dir, &["hash", "--json", "-o", "full.json", "tree"]);
        assert_eq!(
            comparable(&dir.join("new.json")),
            comparable(&dir.join("full.json"))
        );
    }
}

/// Runs `--update old.json tree` with `flags` and returns its counts.
fn update_counts(dir: &Path, flags: &[&str]) -> Counts {
    let mut args = vec![
        "hash", "--update", "old.json", "tree", "-o", "new.json", "--stats",
    ];
    args.extend(flags);
    counts(&ok(dir, &args))
}

#[test]
fn each_changed_field_forces_a_read_and_ignore_flags_relax_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tree = dir.join("tree");
    for name in ["a", "b", "c", "d", "e", "f"] {
        write(&tree.join(name), format!("{name}{name}{name}").as_bytes());
    }
    age_files(&tree);
    ok(dir, &["hash", "--json", "-o", "old.json", "tree"]);
    let mtime = |name: &str| {
        let meta = std::fs::metadata(tree.join(name)).unwrap();
        (meta.mtime(), meta.mtime_nsec())
    };
    let restore = |name: &str, (s, n): (i64, i64)| set_mtime(&tree.join(name), s, n);
    // a: same size, other content, mtime put back (`touch -r`): only ctime tells.
    let t = mtime("a");
    write(&tree.join("a"), b"AAA");
    restore("a", t);
    // b: mtime moved, nothing else.
    let t = mtime("b");
    restore("b", (t.0 + 1, t.1));
    // c: replaced by a copy with the same bytes and mtime: a new inode (and ctime).
    let t = mtime("c");
    std::fs::copy(tree.join("c"), dir.join("c.tmp")).unwrap();
    std::fs::rename(dir.join("c.tmp"), tree.join("c")).unwrap();
    restore("c", t);
    // d: another size, mtime put back.
    let t = mtime("d");
    write(&tree.join("d"), b"dddd");
    restore("d", t);
    // e: chmod, which moves ctime only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tree.join("e"), std::fs::Permissions::from_mode(0o600)).unwrap();

    let all = update_counts(dir, &[]);
    assert_eq!((all.changed, all.reused), (5, 1), "{all:?}");
    let new = read_records(&dir.join("new.json"));
    let a = new.iter().find(|r| r["path"] == "tree/a").unwrap();
    let full = ok(dir, &["hash", "--json", "tree/a"]);
    assert_eq!(
        a["blake3"],
        records(&full.stdout)[0]["blake3"],
        "a was read"
    );

    let no_ctime = update_counts(dir, &["--ignore-ctime"]);
    assert_eq!((no_ctime.changed, no_ctime.reused), (3, 3), "b, c, d read");
    let neither = update_counts(dir, &["--ignore-ctime", "--ignore-inode"]);
    assert_eq!((neither.changed, neither.reused), (2, 4), "b, d read");
    let no_inode = update_counts(dir, &["--ignore-inode"]);
    assert_eq!(
        (no_inode.changed, no_inode.reused),
        (5, 1),
        "ctime still moved"
    );
}

#[test]
fn sample_rereads_about_its_share_of_unchanged_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    numbered_tree(&dir.join("tree"), 1000);
    ok(dir, &["hash", "--json", "-o", "old.json", "tree"]);
    let ten = update_counts(dir, &["--sample", "10"]);
    // Binomial(1000, 0.1): mean 100, standard deviation 9.5.
    assert!((50..=160).contains(&ten.scrubbed), "{ten:?}");
    assert_eq!((ten.reused + ten.scrubbed, ten.changed), (1000, 0));
    assert_eq!(
        update_counts(dir, &["--sample", "10"]),
        ten,
        "same day, same files"
    );
    assert_eq!(update_counts(dir, &["--sample", "0"]).scrubbed, 0);
    assert_eq!(update_counts(dir, &["--sample", "100"]).scrubbed, 1000);
    // Scrubbed files were read and matched: NEW equals OLD but for their read times.
    assert_eq!(
        comparable(&dir.join("new.json")),
        comparable(&dir.join("old.json"))
    );
}

/// Rewrites OLD's records through `edit`.
fn edit_old(path: &Path, mut edit: impl FnMut(usize, &mut Record)) {
    let mut text = Vec::new();
    for (i, mut rec) in read_records(path).into_iter().enumerate() {
        edit(i, &mut rec);
        text.extend(serde_json::to_vec(&rec).unwrap());
        text.push(b'\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn rehash_older_reads_old_digests_and_reports_content_that_changed_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    numbered_tree(&dir.join("tree"), 100);
    ok(dir, &["hash", "--json", "-o", "old.json", "tree"]);
    let ten_days_ago = now_ns() - 10 * 86_400_000_000_000;
    edit_old(&dir.join("old.json"), |i, rec| {
        if i % 4 == 0 {
            rec.insert("hashed_ns".into(), ten_days_ago.into());
        }
    });
    let c = update_counts(dir, &["--rehash-older", "5"]);
    assert_eq!((c.scrubbed, c.reused), (25, 75), "{c:?}");
    // Each scrubbed record now carries the time of this run's read.
    let new = read_records(&dir.join("new.json"));
    assert!(
        new.iter()
            .all(|r| r["hashed_ns"].as_i64().unwrap() > ten_days_ago)
    );

    assert_eq!(update_counts(dir, &["--rehash-older", "11"]).scrubbed, 0);

    // Bitrot, as a scrub sees it: OLD's digest differs though size and times match.
    edit_old(&dir.join("old.json"), |i, rec| {
        if i == 8 {
            rec.insert("blake3".into(), "00".repeat(32).into());
        }
    });
    let out = run(
        dir,
        &[
            "hash",
            "--update",
            "old.json",
            "tree",
            "-o",
            "new.json",
            "--rehash-older",
            "5",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    let old = read_records(&dir.join("old.json"));
    let rotten = format!("{}: content differs", old[8]["path"].as_str().unwrap());
    assert!(err.contains(&rotten), "{err}");
    assert!(err.contains("possible corruption"), "{err}");
    let new = read_records(&dir.join("new.json"));
    assert_eq!(new[8]["blake3"], "00".repeat(32), "OLD's digest is kept");
}

#[test]
fn an_old_manifest_without_metadata_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    numbered_tree(&dir.join("tree"), 20);
    ok(dir, &["hash", "-o", "gnu.b3", "tree"]);
    ok(dir, &["hash", "--json", "-o", "meta.json", "tree"]);
    edit_old(&dir.join("meta.json"), |_, rec| {
        rec.remove("mtime_ns");
        rec.remove("ctime_ns");
        rec.remove("inode");
        rec.remove("dev");
    });
    for old in ["gnu.b3", "meta.json", "missing.json"] {
        let out = run(dir, &["hash", "--update", old, "tree", "-o", "new.json"]);
        assert_eq!(out.status.code(), Some(2), "{old}");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("spate: {old}: ")), "{err}");
        if old != "missing.json" {
            assert!(
                err.contains("--update needs a manifest written by"),
                "{err}"
            );
        }
        assert!(!dir.join("new.json").exists(), "nothing written for {old}");
    }
}

#[test]
fn old_paths_outside_the_dirs_are_ignored_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    numbered_tree(&dir.join("tree"), 30);
    numbered_tree(&dir.join("other"), 12);
    ok(dir, &["hash", "--json", "-o", "old.json", "other", "tree"]);
    let c = update_counts(dir, &[]);
    assert_eq!(
        (c.reused, c.outside, c.gone, c.new),
        (30, 12, 0, 0),
        "{c:?}"
    );
    assert_eq!(read_records(&dir.join("new.json")).len(), 30);
}

#[test]
fn update_in_place_replaces_old_only_when_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tree = dir.join("tree");
    make_tree(&tree, true);
    age_files(&tree);
    ok(
        dir,
        &["hash", "--json", "-a", "sha256", "-o", "m.json", "tree"],
    );
    let before = std::fs::read(dir.join("m.json")).unwrap();
    // Unchanged, with awkward and non-UTF-8 names: every record is reused as it was,
    // OLD's algorithm included, so NEW is OLD byte for byte.
    let out = ok(
        dir,
        &[
            "hash", "--update", "m.json", "tree", "-o", "m.json", "--stats",
        ],
    );
    assert_eq!(counts(&out).reused, files_below(&tree).len() as u64);
    assert_eq!(std::fs::read(dir.join("m.json")).unwrap(), before);

    // A run that fails after it started (a bad record halfway through OLD) leaves OLD
    // as it was and no temporary file.
    let mut broken = before.clone();
    let middle = broken.len() / 2;
    let cut = middle + broken[middle..].iter().position(|&b| b == b'\n').unwrap() + 1;
    broken.splice(cut..cut, b"{\"path\":\"tree/zz\"}\n".iter().copied());
    std::fs::write(dir.join("m.json"), &broken).unwrap();
    let out = run(dir, &["hash", "--update", "m.json", "tree", "-o", "m.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(std::fs::read(dir.join("m.json")).unwrap(), broken);
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "only tree and m.json: {names:?}");
}

#[test]
fn update_per_shard_joins_its_own_records_and_merges_to_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tree = dir.join("tree");
    numbered_tree(&tree, 200);
    ok(dir, &["hash", "--json", "-o", "old.json", "tree"]);
    write(&tree.join("d1/f0001"), b"changed");
    set_mtime(&tree.join("d1/f0001"), 1_700_000_000, 0);
    let mut total = Counts::default();
    for k in 0..3 {
        let shard = format!("{}/3", k + 1);
        let part = format!("p{k}.json");
        let out = ok(
            dir,
            &[
                "hash", "--update", "old.json", "--shard", &shard, "tree", "-o", &part, "--stats",
            ],
        );
        let c = counts(&out);
        assert_eq!(
            (c.gone, c.outside),
            (0, 0),
            "other shards' records are not gone"
        );
        total.reused += c.reused;
        total.changed += c.changed;
    }
    assert_eq!((total.reused, total.changed), (199, 1));
    ok(
        dir,
        &[
            "merge", "--shards", "3", "-o", "all.json", "p0.json", "p1.json", "p2.json",
        ],
    );
    ok(dir, &["hash", "--json", "-o", "full.json", "tree"]);
    assert_eq!(
        comparable(&dir.join("all.json")),
        comparable(&dir.join("full.json"))
    );
}

#[test]
fn dirs_in_another_order_than_old_are_read_not_misjoined() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    numbered_tree(&dir.join("b"), 10);
    numbered_tree(&dir.join("a"), 10);
    ok(dir, &["hash", "--json", "-o", "old.json", "b", "a"]);
    let same = ok(dir, &["hash", "--update", "old.json", "b", "a", "--stats"]);
    assert_eq!(counts(&same).reused, 20);
    let swapped = ok(dir, &["hash", "--update", "old.json", "a", "b", "--stats"]);
    let c = counts(&swapped);
    assert_eq!(c.reused + c.new, 20, "{c:?}");
    assert!(stderr_of(&swapped).contains("out of walk order"));
}

#[test]
fn overlapping_dirs_list_files_twice_as_hash_does_and_reuse_both_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    numbered_tree(&dir.join("t"), 30);
    for order in [["t", "t/d3"], ["t/d3", "t"]] {
        let [first, second] = order;
        // `spate hash t t/d3` lists t/d3's files once per DIR, as `b3sum` given the
        // same file twice prints it twice.
        ok(dir, &["hash", "--json", "-o", "old.json", first, second]);
        let twice = read_records(&dir.join("old.json"));
        assert_eq!(twice.len(), 33, "{order:?}");
        let out = ok(
            dir,
            &[
                "hash", "--update", "old.json", first, second, "-o", "new.json", "--stats",
            ],
        );
        let expected = Counts {
            reused: 33,
            ..Counts::default()
        };
        assert_eq!(counts(&out), expected, "{order:?}: {}", stderr_of(&out));
        assert!(!stderr_of(&out).contains("out of walk order"), "{order:?}");
        assert_eq!(
            comparable(&dir.join("new.json")),
            comparable(&dir.join("old.json"))
        );

        // A file changed under both DIRs is read for each of its two lines.
        let file = dir.join("t/d3/f0003");
        write(&file, b"changed");
        set_mtime(&file, 1_700_000_000, 0);
        let out = ok(
            dir,
            &[
                "hash", "--update", "old.json", first, second, "-o", "new.json", "--stats",
            ],
        );
        let c = counts(&out);
        assert_eq!((c.reused, c.changed, c.new), (31, 2, 0), "{order:?}");
        ok(dir, &["hash", "--json", "-o", "full.json", first, second]);
        assert_eq!(
            comparable(&dir.join("new.json")),
            comparable(&dir.join("full.json"))
        );
    }
}
