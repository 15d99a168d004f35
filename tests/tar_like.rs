//! pack, unpack and list where GNU tar sets the convention (issue #14): `-C`,
//! `-T`/`--null`, the removed leading `/` and `../`, `-z`/`-j`/`-J`/`--zstd`, member
//! filters, `-O`, and zstd's own level 3 as the default. Each is checked against the real
//! GNU tar (or zstd) on the same input.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{stderr_of, write};

fn spate<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    common::spate(dir, &args)
}

/// Runs GNU tar in `dir`; its output, whatever the exit status.
fn tar<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new("tar")
        .current_dir(dir)
        .env("LC_ALL", "C")
        .args(args)
        .output()
        .expect("GNU tar (.ci/run installs it)")
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", stderr_of(out));
}

/// Member names as `tar -tf` lists them, sorted (spate stores each directory sorted,
/// tar in directory order).
fn names(dir: &Path, archive: &str) -> Vec<String> {
    let out = tar(dir, &["-tf", archive]);
    ok(&out, "tar -tf");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// Every path below `root`, relative and sorted, with `/` after directories.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let mut rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                stack.push(path.clone());
                rel.push('/');
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

/// `home/u/Photos` with a nested directory, and files beside it that must not be packed.
fn photos(root: &Path) {
    write(&root.join("home/u/Photos/2024/a.jpg"), b"jpeg a\n");
    write(&root.join("home/u/Photos/2024/b.raw"), b"raw b\n");
    write(&root.join("home/u/Photos/c.raw"), b"raw c\n");
    write(&root.join("home/u/notes.txt"), b"not a photo\n");
}

#[test]
fn pack_dash_c_stores_the_names_tar_dash_c_stores_and_writes_the_output_where_started() {
    let tmp = tempfile::tempdir().unwrap();
    photos(tmp.path());
    let out = spate(
        tmp.path(),
        &["pack", "-C", "home/u", "-o", "s.tar", "Photos"],
    );
    ok(&out, "spate pack -C");
    assert_eq!(stderr_of(&out), "", "nothing removed, nothing said");
    ok(
        &tar(tmp.path(), &["-C", "home/u", "-cf", "t.tar", "Photos"]),
        "tar -C",
    );
    assert!(!tmp.path().join("home/u/s.tar").exists());
    assert_eq!(names(tmp.path(), "s.tar"), names(tmp.path(), "t.tar"));
    assert!(names(tmp.path(), "s.tar").contains(&"Photos/2024/a.jpg".to_string()));

    let out = spate(
        tmp.path(),
        &["pack", "-C", "nowhere", "-o", "x.tar", "Photos"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(
        stderr_of(&out),
        "spate: nowhere: cannot change to it: No such file or directory\n"
    );
    assert!(!tmp.path().join("x.tar").exists());
}

#[test]
fn pack_removes_a_leading_slash_with_one_notice_as_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    photos(tmp.path());
    let photos_dir = tmp.path().join("home/u/Photos");
    let given = photos_dir.to_str().unwrap();
    let out = spate(tmp.path(), &["pack", "-o", "s.tar.zst", given]);
    ok(&out, "spate pack /abs");
    let theirs = tar(tmp.path(), &["-cf", "t.tar", given]);
    ok(&theirs, "tar -cf /abs");
    // tar: "tar: Removing leading `/' from member names", once for all the members.
    let expected = stderr_of(&theirs)
        .replace("tar: ", "spate: ")
        .replace('`', "'");
    assert_eq!(stderr_of(&out), expected);
    assert_eq!(stderr_of(&out).lines().count(), 1);
    assert_eq!(names(tmp.path(), "s.tar.zst"), names(tmp.path(), "t.tar"));
    let first = &names(tmp.path(), "s.tar.zst")[0];
    assert!(!first.starts_with('/'), "{first}");

    let quiet = spate(tmp.path(), &["pack", "-q", "-o", "q.tar", given]);
    ok(&quiet, "spate pack -q");
    assert_eq!(stderr_of(&quiet), "", "-q silences notices");
}

#[test]
fn pack_removes_leading_dot_dot_components_as_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    photos(tmp.path());
    let inner = tmp.path().join("home/u/Photos");
    for given in ["../notes.txt", "2024/../../Photos/c.raw"] {
        let out = spate(&inner, &["pack", "-o", "../../../s.tar", given]);
        ok(&out, given);
        let theirs = tar(&inner, &["-cf", "../../../t.tar", given]);
        ok(&theirs, given);
        let expected = stderr_of(&theirs)
            .replace("tar: ", "spate: ")
            .replace('`', "'");
        assert_eq!(stderr_of(&out), expected, "{given}");
        assert_eq!(names(tmp.path(), "s.tar"), names(tmp.path(), "t.tar"));
    }
}

#[test]
fn pack_files_from_reads_lines_or_nul_separated_names_as_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    photos(tmp.path());
    write(
        &tmp.path().join("home/u/Photos/new\nline.jpg"),
        b"odd name\n",
    );
    write(
        &tmp.path().join("list"),
        b"Photos/2024/a.jpg\nPhotos/c.raw\n",
    );
    let out = spate(
        tmp.path(),
        &[
            "pack",
            "-C",
            "home/u",
            "-T",
            "list",
            "-o",
            "s.tar",
            "notes.txt",
        ],
    );
    ok(&out, "spate -T");
    let theirs = tar(
        tmp.path(),
        &["-C", "home/u", "-T", "list", "-cf", "t.tar", "notes.txt"],
    );
    ok(&theirs, "tar -T");
    // tar opens -T FILE relative to where it started, too.
    assert_eq!(names(tmp.path(), "s.tar"), names(tmp.path(), "t.tar"));
    assert_eq!(names(tmp.path(), "s.tar").len(), 3);

    // NUL-separated, from standard input, a name with a newline among them.
    let list = b"Photos/new\nline.jpg\0Photos/2024\0";
    for (prog, archive) in [("spate", "n.tar"), ("tar", "m.tar")] {
        let mut cmd = if prog == "spate" {
            let mut c = Command::new(env!("CARGO_BIN_EXE_spate"));
            c.args(["pack", "-C", "home/u", "--null", "-T", "-", "-o", archive]);
            c
        } else {
            let mut c = Command::new("tar");
            c.args(["-C", "home/u", "--null", "-T", "-", "-cf", archive]);
            c
        };
        let mut child = cmd
            .current_dir(tmp.path())
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(list).unwrap();
        let out = child.wait_with_output().unwrap();
        ok(&out, prog);
    }
    assert_eq!(names(tmp.path(), "n.tar"), names(tmp.path(), "m.tar"));
    assert!(names(tmp.path(), "n.tar").contains(&"Photos/2024/b.raw".to_string()));

    let out = spate(tmp.path(), &["pack", "-T", "missing", "-o", "x.tar"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out),
        "spate: missing: No such file or directory\n"
    );
}

#[test]
fn pack_z_j_capital_j_and_zstd_choose_the_compression_as_in_tar() {
    let tmp = tempfile::tempdir().unwrap();
    photos(tmp.path());
    // The name says nothing (or something else): the flag decides, as in tar.
    for (flag, tar_flag) in [
        ("-z", "-z"),
        ("-j", "-j"),
        ("-J", "-J"),
        ("--zstd", "--zstd"),
    ] {
        let out = spate(tmp.path(), &["pack", flag, "-o", "x.tar", "home"]);
        ok(&out, flag);
        let listed = tar(tmp.path(), &[tar_flag, "-tf", "x.tar"]);
        ok(&listed, &format!("tar {tar_flag} -tf on spate {flag}"));
        assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 8);
    }
    // -j is bzip2, never a reader count: `-j 2` packs a path named 2.
    let out = spate(tmp.path(), &["pack", "-j", "2", "-o", "y.tar", "home"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("spate: 2: No such file or directory"));
    let out = spate(tmp.path(), &["pack", "-z", "-j", "-o", "y.tar", "home"]);
    assert_eq!(out.status.code(), Some(2), "two compressions are refused");
    // The reader count is a long option under its own heading.
    let out = spate(
        tmp.path(),
        &["pack", "--readers", "2", "-o", "r.tar", "home"],
    );
    ok(&out, "--readers");
    let help = String::from_utf8_lossy(&spate(tmp.path(), &["pack", "--help"]).stdout).into_owned();
    let tuning = help.find("I/O tuning:").expect("an I/O tuning heading");
    assert!(help[tuning..].contains("--readers <N>"), "{help}");
    assert!(help[..tuning].contains("-j, --bzip2"), "{help}");
}

#[test]
fn the_zstd_default_is_zstds_own_level_3() {
    // Real text nobody generated for this: spate's own sources.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tmp = tempfile::tempdir().unwrap();
    // The plain stream, whose bytes are libzstd's own at the level (the indexed
    // default adds a table of contents; tests/pack_indexed.rs checks its level).
    let run = |extra: &[&str], name: &str| {
        let mut args = vec!["pack", "-q", "--no-index", "--reproducible", "-o", name];
        args.extend(extra);
        args.push(src.to_str().unwrap());
        ok(&spate(tmp.path(), &args), name);
        std::fs::read(tmp.path().join(name)).unwrap()
    };
    // Same threads, same level, same parameters: the very same bytes.
    let default = run(&["--threads", "2"], "d.tar.zst");
    assert!(default == run(&["--threads", "2", "--level", "3"], "l3.tar.zst"));
    assert!(default != run(&["--threads", "2", "--level", "2"], "l2.tar.zst"));
    // And within 1% of zstd -3 itself on the same tar stream.
    let tar_stream = Command::new("zstd")
        .args(["-dc", "d.tar.zst"])
        .current_dir(tmp.path())
        .output()
        .expect("zstd");
    ok(&tar_stream, "zstd -dc");
    std::fs::write(tmp.path().join("d.tar"), &tar_stream.stdout).unwrap();
    let peer = Command::new("zstd")
        .args(["-q", "-T0", "-3", "d.tar", "-o", "p.tar.zst"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    ok(&peer, "zstd -3");
    let theirs = std::fs::metadata(tmp.path().join("p.tar.zst"))
        .unwrap()
        .len() as f64;
    let ours = default.len() as f64;
    assert!(
        (ours / theirs - 1.0).abs() < 0.01,
        "spate {ours} bytes against zstd -3's {theirs}"
    );
}

/// An archive made by GNU tar: `top/` with a subdirectory, globbable names, and a file
/// beside it.
fn tar_archive(dir: &Path) {
    write(&dir.join("src/top/sub/a.txt"), b"a\n");
    write(&dir.join("src/top/sub/b.log"), b"b\n");
    write(&dir.join("src/top/c.txt"), b"c\n");
    write(&dir.join("src/other.txt"), b"other\n");
    write(&dir.join("src/z.bin"), b"z\n");
    ok(&tar(dir, &["-C", "src", "-czf", "a.tgz", "."]), "tar -czf");
}

#[test]
fn unpack_extracts_only_the_members_named_as_gnu_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    tar_archive(tmp.path());
    for filters in [
        &["./top/sub"][..],
        &["./top/sub/", "./z.bin"][..],
        &["*.txt"][..],
        &["./top/s*"][..],
    ] {
        let _ = std::fs::remove_dir_all(tmp.path().join("s"));
        let _ = std::fs::remove_dir_all(tmp.path().join("t"));
        std::fs::create_dir_all(tmp.path().join("t")).unwrap();
        let mut args = vec!["unpack", "a.tgz", "-C", "s"];
        args.extend(filters);
        ok(&spate(tmp.path(), &args), &format!("{filters:?}"));
        let mut args = vec!["-xzf", "a.tgz", "-C", "t", "--wildcards"];
        args.extend(filters);
        ok(&tar(tmp.path(), &args), &format!("tar {filters:?}"));
        let got = tree(&tmp.path().join("s"));
        assert_eq!(got, tree(&tmp.path().join("t")), "{filters:?}");
        assert!(!got.is_empty());

        // list takes the same filters.
        let mut args = vec!["list", "--json", "a.tgz"];
        args.extend(filters);
        let listed = spate(tmp.path(), &args);
        ok(&listed, "list");
        let mut args = vec!["-tzf", "a.tgz", "--wildcards"];
        args.extend(filters);
        let theirs = tar(tmp.path(), &args);
        assert_eq!(
            String::from_utf8_lossy(&listed.stdout).lines().count(),
            String::from_utf8_lossy(&theirs.stdout).lines().count(),
            "list {filters:?}"
        );
    }
}

#[test]
fn a_member_not_in_the_archive_exits_2_after_the_rest_as_gnu_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    tar_archive(tmp.path());
    let out = spate(
        tmp.path(),
        &["unpack", "a.tgz", "-C", "s", "nothere", "./z.bin", "no*"],
    );
    let theirs = tar(
        tmp.path(),
        &[
            "-xzf",
            "a.tgz",
            "-C",
            ".",
            "--wildcards",
            "nothere",
            "./z.bin",
            "no*",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.status.code(), theirs.status.code());
    assert_eq!(
        stderr_of(&out),
        "spate: nothere: not found in archive\nspate: no*: not found in archive\n"
    );
    assert!(stderr_of(&theirs).contains("nothere: Not found in archive"));
    assert_eq!(std::fs::read(tmp.path().join("s/z.bin")).unwrap(), b"z\n");

    let out = spate(tmp.path(), &["list", "a.tgz", "./top", "gone"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out), "spate: gone: not found in archive\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
}

#[test]
fn unpack_to_stdout_writes_what_tar_dash_o_writes_and_nothing_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    tar_archive(tmp.path());
    // A sparse file in the POSIX format: its holes come out as zeros.
    let sparse = tmp.path().join("sp/sparse.bin");
    write(&sparse, b"");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap();
    f.set_len(3 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"middle", 1 << 20).unwrap();
    f.write_all_at(b"end", (3 << 20) - 3).unwrap();
    drop(f);
    ok(
        &tar(
            tmp.path(),
            &["-C", "sp", "--format=posix", "-S", "-cf", "sp.tar", "."],
        ),
        "tar -S",
    );
    let before = tree(tmp.path());
    for (archive, filters) in [
        ("a.tgz", &[][..]),
        ("a.tgz", &["./top/sub", "./z.bin"][..]),
        ("sp.tar", &[][..]),
    ] {
        let mut args = vec!["unpack", "-O", archive];
        args.extend(filters);
        let ours = spate(tmp.path(), &args);
        ok(&ours, "unpack -O");
        let mut args = vec!["-xOf", archive];
        args.extend(filters);
        let theirs = tar(tmp.path(), &args);
        ok(&theirs, "tar -xOf");
        assert!(ours.stdout == theirs.stdout, "{archive} {filters:?}");
        assert!(!ours.stdout.is_empty());
    }
    assert_eq!(tree(tmp.path()), before, "nothing written to disk");
}

#[test]
fn unpack_over_existing_files_says_once_how_many_exist() {
    let tmp = tempfile::tempdir().unwrap();
    tar_archive(tmp.path());
    ok(&spate(tmp.path(), &["unpack", "a.tgz", "-C", "s"]), "first");
    std::fs::write(tmp.path().join("s/z.bin"), b"mine\n").unwrap();
    std::fs::remove_file(tmp.path().join("s/top/c.txt")).unwrap();

    let out = spate(tmp.path(), &["unpack", "a.tgz", "-C", "s"]);
    assert_eq!(out.status.code(), Some(1));
    // GNU tar -k keeps the same files, with one line each.
    std::fs::create_dir_all(tmp.path().join("t")).unwrap();
    ok(&tar(tmp.path(), &["-xzf", "a.tgz", "-C", "t"]), "tar");
    std::fs::remove_file(tmp.path().join("t/top/c.txt")).unwrap();
    let theirs = tar(tmp.path(), &["-xkzf", "a.tgz", "-C", "t"]);
    let kept = stderr_of(&theirs)
        .lines()
        .filter(|l| l.ends_with("Cannot open: File exists"))
        .count();
    assert_eq!(kept, 4);
    assert_eq!(
        stderr_of(&out),
        format!("spate: {kept} files exist; use --overwrite\n")
    );
    assert_eq!(
        std::fs::read(tmp.path().join("s/z.bin")).unwrap(),
        b"mine\n"
    );
    assert_eq!(
        std::fs::read(tmp.path().join("s/top/c.txt")).unwrap(),
        b"c\n"
    );
    assert_eq!(tree(&tmp.path().join("s")), tree(&tmp.path().join("t")));

    let out = spate(tmp.path(), &["unpack", "a.tgz", "-C", "s", "./z.bin"]);
    assert_eq!(stderr_of(&out), "spate: 1 file exists; use --overwrite\n");
    ok(
        &spate(tmp.path(), &["unpack", "--overwrite", "a.tgz", "-C", "s"]),
        "--overwrite",
    );
    assert_eq!(std::fs::read(tmp.path().join("s/z.bin")).unwrap(), b"z\n");
}

#[test]
fn pack_names_are_bytes_and_filters_match_them() {
    // A non-UTF-8 name packed with -C and selected again by its exact bytes.
    let tmp = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    write(&tmp.path().join("d").join(name), b"bytes\n");
    ok(
        &spate(
            tmp.path(),
            &[
                OsStr::new("pack"),
                "-C".as_ref(),
                "d".as_ref(),
                "-o".as_ref(),
                "x.tar".as_ref(),
                name,
            ],
        ),
        "pack",
    );
    let out = spate(
        tmp.path(),
        &[OsStr::new("unpack"), "-O".as_ref(), "x.tar".as_ref(), name],
    );
    ok(&out, "unpack -O");
    assert_eq!(out.stdout, b"bytes\n");
}

/// The `-tv` listing of an archive by GNU tar, sorted by name (the last field: no name
/// here has a space).
fn listing_of(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort_by_key(|l| l.rsplit(' ').next().unwrap_or_default().to_owned());
    lines
}

#[test]
fn dot_slash_names_short_and_long_are_kept_by_pack_list_unpack_and_check_as_by_gnu_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A name that fits a tar header and one that needs GNU's long-name entry, both
    // with a leading `./`, and a hard link (whose target is such a name) and a
    // symbolic link with a long target.
    let long_dir = format!("{}/{}", "d".repeat(60), "e".repeat(60));
    write(&d.join("src/a"), b"short\n");
    write(&d.join("src/sub/b"), b"sub\n");
    write(&d.join(format!("src/{long_dir}/f")), b"long\n");
    std::fs::hard_link(d.join(format!("src/{long_dir}/f")), d.join("src/z-hard")).unwrap();
    std::os::unix::fs::symlink(format!("./{long_dir}/f"), d.join("src/sym")).unwrap();
    ok(
        &tar(d, &["--zstd", "-C", "src", "-cf", "gnu.tar.zst", "."]),
        "tar -C src .",
    );
    ok(
        &spate(d, &["pack", "-C", "src", "-o", "ours.tar.zst", "."]),
        "spate pack",
    );
    ok(
        &spate(
            d,
            &["pack", "--no-index", "-C", "src", "-o", "ours.tar", "."],
        ),
        "plain",
    );
    let gnu = names(d, "gnu.tar.zst");
    assert!(gnu.contains(&"./a".to_string()), "{gnu:?}");
    assert!(gnu.contains(&format!("./{long_dir}/f")), "{gnu:?}");
    assert_eq!(names(d, "ours.tar.zst"), gnu, "pack stores what tar stores");
    assert_eq!(names(d, "ours.tar"), gnu);
    // `tar -tv` (the link targets included) and `spate list`, of either archive.
    let tv = |archive: &str| {
        let out = Command::new("tar")
            .current_dir(d)
            .env("TZ", "UTC")
            .args(["-tvf", archive])
            .output()
            .unwrap();
        ok(&out, "tar -tvf");
        listing_of(&out)
    };
    let names_and_links = |lines: Vec<String>| -> Vec<String> {
        // Names, and symbolic links' targets. Which name of the hard-linked pair is
        // the file depends on the walk's order (spate's is sorted, tar's is not).
        let mut out: Vec<String> = lines
            .iter()
            .map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                match fields[0].starts_with('l') {
                    true => fields[5..].join(" "),
                    false => fields[5].to_owned(),
                }
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        names_and_links(tv("ours.tar.zst")),
        names_and_links(tv("gnu.tar.zst"))
    );
    for archive in ["ours.tar.zst", "gnu.tar.zst", "ours.tar"] {
        let ours = spate(d, &["list", archive]);
        ok(&ours, "spate list");
        assert_eq!(listing_of(&ours), tv(archive), "{archive}");
        // A member is named as stored: `./a` selects, `a` is not found (exit 2), as
        // with GNU tar.
        for (member, code) in [("./a", 0), ("a", 2), (&format!("./{long_dir}") as &str, 0)] {
            let out = spate(d, &["list", archive, member]);
            let theirs = tar(d, &["-tf", archive, member]);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{archive} {member}: {}",
                stderr_of(&out)
            );
            assert_eq!(theirs.status.code(), Some(code), "{archive} {member}");
        }
        // Unpacked whole, and the long-named member with its hard link, as GNU tar.
        let (o, t) = (format!("o-{archive}"), format!("t-{archive}"));
        std::fs::create_dir(d.join(&t)).unwrap();
        ok(&spate(d, &["unpack", archive, "-C", &o]), "spate unpack");
        ok(&tar(d, &["-xf", archive, "-C", &t]), "tar -x");
        assert_eq!(tree(&d.join(&o)), tree(&d.join(&t)), "{archive}");
        let hard = d.join(&o).join("z-hard");
        assert_eq!(std::fs::read(&hard).unwrap(), b"long\n");
        assert_eq!(
            std::fs::read_link(d.join(&o).join("sym")).unwrap(),
            std::fs::read_link(d.join(&t).join("sym")).unwrap()
        );
    }
    // check: spate's table names the members as their headers do.
    let check = spate(d, &["check", "ours.tar.zst"]);
    ok(&check, "spate check");
    let mut checked: Vec<String> = String::from_utf8_lossy(&check.stdout)
        .lines()
        .map(|l| {
            l.strip_suffix(": OK")
                .unwrap_or_else(|| panic!("{l}"))
                .to_owned()
        })
        .collect();
    checked.sort();
    assert_eq!(checked, ["./a", &format!("./{long_dir}/f"), "./sub/b"]);
    let audit = spate(
        d.join("src").as_path(),
        &["check", "../gnu.tar.zst", "--audit", "."],
    );
    ok(&audit, "check --audit of GNU tar's archive");
}
