//! `spate unpack` and `spate list` against GNU tar archives, and against hostile
//! archives built header by header.

mod common;
use common::index_writer;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{set_mtime, stderr_of};

// ---------------------------------------------------------------------------------
// Helpers

/// Runs spate in `dir` with mixed arguments.
fn spate<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    common::spate(dir, &args)
}

/// Runs GNU tar in `dir`, which must succeed.
fn gnu_tar<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    let out = Command::new("tar")
        .current_dir(dir)
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .args(args)
        .output()
        .expect("GNU tar (.ci/run installs it)");
    assert!(out.status.success(), "tar failed: {}", stderr_of(&out));
    out
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(String),
    Dir,
    Link(Vec<u8>),
    Fifo,
    Other,
}

#[derive(Debug, Clone)]
struct Info {
    node: Node,
    mode: u32,
    mtime: (i64, i64),
    ino: u64,
}

/// What [`snapshot`] finds: each name below a root and what it is.
type Tree = BTreeMap<Vec<u8>, Info>;

/// Everything below `root`, by relative path bytes (the root itself left out).
fn snapshot(root: &Path) -> Tree {
    let mut map = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let ft = meta.file_type();
        let node = if ft.is_file() {
            let data = std::fs::read(entry.path()).unwrap();
            Node::File(blake3::hash(&data).to_hex().to_string())
        } else if ft.is_dir() {
            Node::Dir
        } else if ft.is_symlink() {
            Node::Link(
                std::fs::read_link(entry.path())
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_fifo() {
            Node::Fifo
        } else {
            Node::Other
        };
        let rel = entry.path().strip_prefix(root).unwrap();
        map.insert(
            rel.as_os_str().as_bytes().to_vec(),
            Info {
                node,
                mode: meta.mode() & 0o7777,
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ino: meta.ino(),
            },
        );
    }
    map
}

/// Asserts that `out` holds the same tree as `src`: names, kinds, contents, link
/// targets, modes (not of links), mtimes (whole seconds unless `nanos`), and the same
/// hard-link groups.
fn assert_same_tree(src: &Path, out: &Path, nanos: bool) {
    let (a, b) = (snapshot(src), snapshot(out));
    let names = |m: &BTreeMap<Vec<u8>, Info>| {
        m.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b), "names differ");
    for (name, want) in &a {
        let got = &b[name];
        let shown = String::from_utf8_lossy(name);
        assert_eq!(want.node, got.node, "{shown}: content or kind");
        if !matches!(want.node, Node::Link(_)) {
            assert_eq!(want.mode, got.mode, "{shown}: mode {:o}", got.mode);
        }
        if nanos {
            assert_eq!(want.mtime, got.mtime, "{shown}: mtime");
        } else {
            assert_eq!(want.mtime.0, got.mtime.0, "{shown}: mtime");
        }
        for (other, other_want) in &a {
            if other_want.ino == want.ino {
                assert_eq!(b[other].ino, got.ino, "{shown}: hard link lost");
            }
        }
    }
}

/// A header written byte by byte, so nothing sanitizes the names.
fn raw_header(name: &[u8], kind: u8, size: u64, mode: u32, link: &[u8]) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(1_000_000_000);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    header
}

fn file(name: &[u8], data: &[u8]) -> (tar::Header, Vec<u8>) {
    (
        raw_header(name, b'0', data.len() as u64, 0o644, b""),
        data.to_vec(),
    )
}

fn dir(name: &[u8]) -> (tar::Header, Vec<u8>) {
    (raw_header(name, b'5', 0, 0o755, b""), Vec::new())
}

fn symlink(name: &[u8], target: &[u8]) -> (tar::Header, Vec<u8>) {
    (raw_header(name, b'2', 0, 0o777, target), Vec::new())
}

fn hard_link(name: &[u8], target: &[u8]) -> (tar::Header, Vec<u8>) {
    (raw_header(name, b'1', 0, 0o644, target), Vec::new())
}

/// Each entry's blocks: its header and its data, padded.
fn members(entries: &[(tar::Header, Vec<u8>)]) -> Vec<Vec<u8>> {
    entries
        .iter()
        .map(|(header, data)| {
            let mut out = header.as_bytes().to_vec();
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(512), 0);
            out
        })
        .collect()
}

/// A complete uncompressed archive of these entries.
fn archive(entries: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
    let mut out = members(entries).concat();
    out.resize(out.len() + 1024, 0);
    out
}

/// A scratch area: `outer/` holds `dest/` (where spate extracts) and `outside/`, which
/// nothing may ever touch.
struct Scratch {
    _tmp: tempfile::TempDir,
    outer: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().to_path_buf();
        let dest = outer.join("dest");
        let outside = outer.join("outside");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"original").unwrap();
        Scratch {
            _tmp: tmp,
            outer,
            dest,
            outside,
        }
    }

    /// Writes the archive beside `dest` and extracts it with extra arguments.
    ///
    /// First, each in a scratch area of its own, the same archive as an indexed
    /// `.tar.zst` (its table listing every member where the headers say) is extracted
    /// whole and with a `*` member filter (which reads it from the table): both must do
    /// exactly what the plain archive does, leave the same tree and touch nothing
    /// outside.
    fn unpack(&self, entries: &[(tar::Header, Vec<u8>)], extra: &[&str]) -> Output {
        let tar = archive(entries);
        let indexed = index_writer::members_of(&tar).map(|m| index_writer::write(&tar, &m, 1));
        let runs: Vec<(&str, Output, Tree)> = match &indexed {
            Some(zst) => [None, Some("*")]
                .into_iter()
                .map(|filter| {
                    let other = Scratch::new();
                    // What the test left in `dest` before, links and all.
                    let copied = Command::new("cp")
                        .arg("-a")
                        .arg(self.dest.join("."))
                        .arg(&other.dest)
                        .status()
                        .unwrap();
                    assert!(copied.success());
                    std::fs::write(other.outer.join("a.tar"), zst).unwrap();
                    let out = other.run(extra, filter);
                    other.assert_outside_untouched();
                    (filter.unwrap_or("whole"), out, snapshot(&other.dest))
                })
                .collect(),
            None => Vec::new(),
        };
        std::fs::write(self.outer.join("a.tar"), tar).unwrap();
        let out = self.run(extra, None);
        let tree = snapshot(&self.dest);
        for (how, theirs, their_tree) in runs {
            let shown = format!("indexed, {how}: {}", stderr_of(&theirs));
            assert_eq!(theirs.status.code(), out.status.code(), "{shown}");
            // The parallel path may say a file's trouble a few entries late: the same
            // lines, in any order.
            let lines = |out: &Output| {
                let mut lines: Vec<String> = stderr_of(out).lines().map(String::from).collect();
                lines.sort();
                lines
            };
            assert_eq!(lines(&theirs), lines(&out), "{shown}");
            assert_same_outcome(&tree, &their_tree, &shown);
        }
        out
    }

    /// Extracts `a.tar` into `dest` with extra arguments, and a member filter.
    fn run(&self, extra: &[&str], filter: Option<&str>) -> Output {
        let mut args: Vec<OsString> = vec!["unpack".into(), "a.tar".into(), "-C".into()];
        args.push(self.dest.clone().into());
        args.extend(extra.iter().map(OsString::from));
        args.extend(filter.map(OsString::from));
        spate(&self.outer, &args)
    }

    /// Everything in `outer` except `dest/` and `a.tar`, which must be just what
    /// `new` made.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = std::fs::read_dir(&self.outer)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["a.tar", "dest", "outside"],
            "something appeared beside dest"
        );
        let inside: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(inside, ["victim"], "something appeared in outside/");
        assert_eq!(
            std::fs::read(self.outside.join("victim")).unwrap(),
            b"original"
        );
    }
}

/// Asserts that two extractions made the same tree: names, kinds, contents, link
/// targets, modes, hard-link groups, and the mtimes of everything but directories
/// (those the archive does not name get the time they were made).
fn assert_same_outcome(a: &Tree, b: &Tree, shown_run: &str) {
    let shown = |m: &BTreeMap<Vec<u8>, Info>| {
        m.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(shown(a), shown(b), "names differ: {shown_run}");
    for (name, want) in a {
        let got = &b[name];
        let name = String::from_utf8_lossy(name);
        assert_eq!(want.node, got.node, "{name}: content or kind: {shown_run}");
        assert_eq!(want.mode, got.mode, "{name}: mode: {shown_run}");
        if want.node != Node::Dir {
            assert_eq!(want.mtime, got.mtime, "{name}: mtime: {shown_run}");
        }
        for (other, other_want) in a {
            let linked = other_want.ino == want.ino;
            assert_eq!(
                linked,
                b[other].ino == got.ino,
                "{name}: hard links: {shown_run}"
            );
        }
    }
}

fn assert_refused(out: &Output, name: &str, why: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {err}");
    let line = format!("spate: {name}: refused: ");
    assert!(
        err.lines().any(|l| l.starts_with(&line) && l.contains(why)),
        "expected `{line}...{why}` in: {err}"
    );
}

// ---------------------------------------------------------------------------------
// GNU tar interoperability

/// A tree with everything tar can hold that spate restores: long and non-UTF-8 names,
/// links of both kinds, an empty directory, a sparse file, odd modes and fixed mtimes.
fn make_interop_tree(root: &Path) {
    let long_component = "n".repeat(150);
    let deep = format!(
        "{}/{}/{}",
        "a".repeat(100),
        "b".repeat(100),
        "c".repeat(120)
    );
    common::write(&root.join("target.txt"), b"target\n");
    common::write(&root.join("big.bin"), &common::bytes(700_000, 1));
    common::write(&root.join("exec.sh"), b"#!/bin/sh\n");
    chmod(&root.join("exec.sh"), 0o755);
    common::write(&root.join("private"), b"secret\n");
    chmod(&root.join("private"), 0o640);
    common::write(&root.join("long").join(&long_component), b"long name\n");
    common::write(&root.join("long").join(&deep).join("deep.txt"), b"deep\n");
    common::write(
        &root.join(OsStr::from_bytes(b"bad\xffname\n.txt")),
        b"not utf-8\n",
    );
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink("target.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("../target.txt", root.join("sub/uplink")).unwrap();
    std::os::unix::fs::symlink(&long_component, root.join("long/longlink")).unwrap();
    std::fs::hard_link(root.join("target.txt"), root.join("sub/hard")).unwrap();
    std::fs::hard_link(
        root.join("long").join(&long_component),
        root.join("long").join(format!("{long_component}.hard")),
    )
    .unwrap();
    // 8 MiB with 4 KiB of data at 3 MiB: sparse on disk, and a real hole in the archive.
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &common::bytes(4096, 9), 3 << 20).unwrap();
    chmod(&root.join("sub"), 0o750);
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    paths.sort();
    for (i, path) in paths.iter().enumerate() {
        set_mtime(path, 1_000_000_000 + 1000 * i as i64, 250_000_000);
    }
}

const FORMATS: [&str; 2] = ["gnu", "posix"];
const COMPRESSIONS: [(&str, &str); 5] = [
    ("", "tar"),
    ("-z", "tar.gz"),
    ("--zstd", "tar.zst"),
    ("-J", "tar.xz"),
    ("-j", "tar.bz2"),
];

#[test]
fn unpack_restores_gnu_tar_archives_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_interop_tree(&src);
    for format in FORMATS {
        for (flag, ext) in COMPRESSIONS {
            // The name lies about the compression: detection goes by magic bytes.
            let name = format!("{format}{flag}.archive");
            let mut args = vec![format!("--format={format}"), "-S".into(), "-c".into()];
            if !flag.is_empty() {
                args.push(flag.into());
            }
            args.extend([
                "-f".into(),
                name.clone(),
                "-C".into(),
                "src".into(),
                ".".into(),
            ]);
            gnu_tar(tmp.path(), &args);
            let out_dir = tmp.path().join(format!("out-{format}-{ext}"));
            let out = spate(
                tmp.path(),
                &["unpack", name.as_str(), "-C", out_dir.to_str().unwrap()],
            );
            assert!(
                out.status.success(),
                "{name}: exit {:?}: {}",
                out.status,
                stderr_of(&out)
            );
            assert!(
                out.stdout.is_empty() && out.stderr.is_empty(),
                "{name}: says nothing"
            );
            // GNU format stores whole seconds; POSIX keeps nanoseconds.
            assert_same_tree(&src, &out_dir, format == "posix");
            let sparse = out_dir.join("sparse.img").metadata().unwrap();
            assert!(
                sparse.blocks() * 512 < 1 << 20,
                "{name}: sparse.img takes {} blocks: holes not restored",
                sparse.blocks()
            );
        }
    }
}

#[test]
fn unpack_reads_standard_input() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_interop_tree(&src);
    let tarball = gnu_tar(tmp.path(), &["--zstd", "-cf", "-", "-C", "src", "."]).stdout;
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .current_dir(tmp.path())
        .args(["unpack", "-", "-C", "out"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tarball).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_same_tree(&src, &tmp.path().join("out"), false);
}

#[test]
fn unpack_strips_components_of_names_and_hard_link_targets() {
    let tmp = tempfile::tempdir().unwrap();
    common::write(&tmp.path().join("top/a/b.txt"), b"b\n");
    std::fs::hard_link(tmp.path().join("top/a/b.txt"), tmp.path().join("top/c")).unwrap();
    gnu_tar(tmp.path(), &["-cf", "t.tar", "top"]);
    let out = spate(
        tmp.path(),
        &["unpack", "t.tar", "-C", "out", "--strip-components", "1"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let root = tmp.path().join("out");
    assert_eq!(std::fs::read(root.join("a/b.txt")).unwrap(), b"b\n");
    assert_eq!(
        root.join("a/b.txt").metadata().unwrap().ino(),
        root.join("c").metadata().unwrap().ino()
    );
    assert!(!root.join("top").exists());
    // Stripping everything: entries with too few components are skipped silently.
    let out = spate(
        tmp.path(),
        &["unpack", "t.tar", "-C", "out3", "--strip-components", "3"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(tmp.path().join("out3").read_dir().unwrap().next().is_none());
}

#[test]
fn unpack_refuses_to_replace_files_unless_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    common::write(&tmp.path().join("src/f.txt"), b"from the archive\n");
    std::os::unix::fs::symlink("f.txt", tmp.path().join("src/l")).unwrap();
    gnu_tar(tmp.path(), &["-cf", "t.tar", "-C", "src", "."]);
    let out = spate(tmp.path(), &["unpack", "t.tar", "-C", "out"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    std::fs::write(tmp.path().join("out/f.txt"), b"changed locally\n").unwrap();

    let out = spate(tmp.path(), &["unpack", "t.tar", "-C", "out"]);
    // One line for all of them, not one per file.
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out), "spate: 2 files exist; use --overwrite\n");
    assert_eq!(
        std::fs::read(tmp.path().join("out/f.txt")).unwrap(),
        b"changed locally\n"
    );

    let out = spate(tmp.path(), &["unpack", "t.tar", "-C", "out", "--overwrite"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        std::fs::read(tmp.path().join("out/f.txt")).unwrap(),
        b"from the archive\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("spate"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn unpack_sets_read_only_directory_modes_after_their_contents_as_nobody() {
    if !is_root() {
        eprintln!("skipped: needs root to switch to nobody");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::open_to_all(tmp.path());
    common::write(&tmp.path().join("src/ro/inner/f.txt"), b"x\n");
    chmod(&tmp.path().join("src/ro/inner"), 0o555);
    chmod(&tmp.path().join("src/ro"), 0o500);
    gnu_tar(tmp.path(), &["-cf", "t.tar", "-C", "src", "."]);
    common::open_to_all(&tmp.path().join("t.tar"));
    let out = common::as_nobody(tmp.path(), &["unpack", "t.tar", "-C", "out"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let root = tmp.path().join("out");
    assert_eq!(root.join("ro").metadata().unwrap().mode() & 0o777, 0o500);
    assert_eq!(
        root.join("ro/inner").metadata().unwrap().mode() & 0o777,
        0o555
    );
    assert_eq!(std::fs::read(root.join("ro/inner/f.txt")).unwrap(), b"x\n");
    assert_eq!(root.join("ro/inner/f.txt").metadata().unwrap().uid(), 65534);
}

// ---------------------------------------------------------------------------------
// Escapes: every one refused, nothing written outside, exit 1

#[test]
fn unpack_refuses_absolute_paths() {
    let s = Scratch::new();
    let target = s.outside.join("abs.txt");
    let name = target.as_os_str().as_bytes().to_vec();
    let out = s.unpack(&[file(&name, b"evil"), file(b"fine.txt", b"ok")], &[]);
    assert_refused(&out, &target.display().to_string(), "absolute path");
    s.assert_outside_untouched();
    // The run goes on past a refused entry.
    assert_eq!(std::fs::read(s.dest.join("fine.txt")).unwrap(), b"ok");
}

#[test]
fn unpack_refuses_dot_dot() {
    let s = Scratch::new();
    let out = s.unpack(
        &[
            file(b"../escape", b"evil"),
            file(b"a/../../escape", b"evil"),
            file(b"a/../../outside/victim", b"evil"),
        ],
        &[],
    );
    assert_refused(&out, "../escape", "'..'");
    assert_refused(&out, "a/../../escape", "'..'");
    assert_refused(&out, "a/../../outside/victim", "'..'");
    s.assert_outside_untouched();
}

#[test]
fn unpack_refuses_relative_symlinks_pointing_outside() {
    let s = Scratch::new();
    let out = s.unpack(
        &[
            symlink(b"up", b".."),
            file(b"up/outside/victim", b"evil"),
            symlink(b"d/up2", b"../../outside"),
            symlink(b"dot", b"."),
            symlink(b"sneaky", b"dot/.."),
        ],
        &[],
    );
    assert_refused(&out, "up", "outside the destination");
    assert_refused(&out, "d/up2", "outside the destination");
    assert_refused(&out, "sneaky", "'..' after a name");
    s.assert_outside_untouched();
    for name in ["up", "d/up2", "sneaky"] {
        let path = s.dest.join(name);
        assert!(
            !path.symlink_metadata().is_ok_and(|m| m.is_symlink()),
            "{name} was created"
        );
    }
    assert!(s.dest.join("dot").is_symlink(), "a link to . is fine");
}

#[test]
fn unpack_creates_absolute_symlinks_but_never_writes_through_them() {
    // Absolute links are created as stored, as GNU tar does; every later entry that
    // would go through one (a file, a directory, a link, with or without --overwrite)
    // is refused, and nothing appears outside.
    let s = Scratch::new();
    let outside = s.outside.as_os_str().as_bytes().to_vec();
    let victim = s.outside.join("victim");
    let entries = [
        symlink(b"link", &outside),
        symlink(b"to-victim", victim.as_os_str().as_bytes()),
        file(b"link/file", b"evil"),
        file(b"link/victim", b"evil"),
        dir(b"link/sub"),
        symlink(b"link/l2", b"x"),
        hard_link(b"link/h", b"to-victim"),
        hard_link(b"h2", b"link/victim"),
    ];
    for extra in [&[][..], &["--overwrite"][..]] {
        let out = s.unpack(&entries, extra);
        for name in ["link/file", "link/victim", "link/sub", "link/l2", "link/h"] {
            assert_refused(&out, name, "symbolic link link");
        }
        assert_refused(&out, "h2", "symbolic link link");
        s.assert_outside_untouched();
        assert_eq!(std::fs::read_link(s.dest.join("link")).unwrap(), s.outside);
        assert_eq!(
            std::fs::read_link(s.dest.join("to-victim")).unwrap(),
            victim
        );
    }
    assert_eq!(victim.metadata().unwrap().nlink(), 1);
}

#[test]
fn unpack_never_writes_through_a_symlink_even_one_pointing_inside() {
    let s = Scratch::new();
    let out = s.unpack(
        &[
            dir(b"real"),
            symlink(b"inner", b"real"),
            file(b"inner/file", b"through the link"),
            symlink(b"deep/link", b"../real"),
            file(b"deep/link/x/file", b"through the link"),
        ],
        &[],
    );
    assert_refused(&out, "inner/file", "symbolic link inner");
    assert_refused(&out, "deep/link/x/file", "symbolic link deep/link");
    assert!(s.dest.join("inner").is_symlink() && s.dest.join("deep/link").is_symlink());
    assert_eq!(std::fs::read_dir(s.dest.join("real")).unwrap().count(), 0);
    s.assert_outside_untouched();
}

#[test]
fn unpack_refuses_hard_links_outside() {
    let s = Scratch::new();
    let victim = s.outside.join("victim");
    let out = s.unpack(
        &[
            hard_link(b"passwd", b"/etc/passwd"),
            hard_link(b"v1", victim.as_os_str().as_bytes()),
            hard_link(b"v2", b"../outside/victim"),
            hard_link(b"v3", b"a/../../outside/victim"),
        ],
        &[],
    );
    assert_refused(&out, "passwd", "absolute path");
    assert_refused(&out, "v1", "absolute path");
    assert_refused(&out, "v2", "'..'");
    assert_refused(&out, "v3", "'..'");
    assert_eq!(std::fs::read_dir(&s.dest).unwrap().count(), 0);
    assert_eq!(victim.metadata().unwrap().nlink(), 1);
    s.assert_outside_untouched();
}

#[test]
fn unpack_refuses_hard_links_through_symlinks() {
    let s = Scratch::new();
    std::os::unix::fs::symlink(&s.outside, s.dest.join("out")).unwrap();
    let out = s.unpack(&[hard_link(b"v", b"out/victim")], &[]);
    assert_refused(&out, "v", "symbolic link out");
    assert!(!s.dest.join("v").exists());
    assert_eq!(s.outside.join("victim").metadata().unwrap().nlink(), 1);
}

#[test]
fn unpack_never_follows_a_symlink_already_in_the_destination() {
    // The CVE-2025-45582 pattern: an earlier extraction left `thatlink -> outside`.
    let s = Scratch::new();
    std::os::unix::fs::symlink(&s.outside, s.dest.join("thatlink")).unwrap();
    let out = s.unpack(
        &[
            file(b"thatlink/victim", b"evil"),
            file(b"thatlink/new", b"evil"),
        ],
        &[],
    );
    assert_refused(&out, "thatlink/victim", "symbolic link thatlink");
    assert_refused(&out, "thatlink/new", "symbolic link thatlink");
    s.assert_outside_untouched();
    let out = s.unpack(&[file(b"thatlink/victim", b"evil")], &["--overwrite"]);
    assert_refused(&out, "thatlink/victim", "symbolic link thatlink");
    s.assert_outside_untouched();
}

#[test]
fn unpack_replaces_a_symlink_named_like_a_file_only_with_overwrite() {
    let s = Scratch::new();
    std::os::unix::fs::symlink(s.outside.join("victim"), s.dest.join("name")).unwrap();
    let out = s.unpack(&[file(b"name", b"evil")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out), "spate: 1 file exists; use --overwrite\n");
    assert!(s.dest.join("name").is_symlink());
    s.assert_outside_untouched();

    let out = s.unpack(&[file(b"name", b"new content")], &["--overwrite"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let meta = s.dest.join("name").symlink_metadata().unwrap();
    assert!(meta.is_file(), "the link itself is replaced");
    assert_eq!(std::fs::read(s.dest.join("name")).unwrap(), b"new content");
    s.assert_outside_untouched();
}

#[test]
fn unpack_drops_setuid_unless_same_permissions() {
    let s = Scratch::new();
    let mut entries = vec![file(b"suid", b"x"), dir(b"sticky")];
    entries[0].0.set_mode(0o4755);
    entries[0].0.set_cksum();
    entries[1].0.set_mode(0o1777);
    entries[1].0.set_cksum();
    let out = s.unpack(&entries, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mode = |p: &str| s.dest.join(p).metadata().unwrap().mode() & 0o7777;
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sticky"), 0o777);
    std::fs::remove_file(s.dest.join("suid")).unwrap();
    let out = s.unpack(&entries, &["--same-permissions"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(mode("suid"), 0o4755);
    assert_eq!(mode("sticky"), 0o1777);
}

#[test]
fn unpack_skips_fifos_and_devices_unless_allow_special() {
    let s = Scratch::new();
    let mut null = raw_header(b"null", b'3', 0, 0o666, b"");
    null.set_device_major(1).unwrap();
    null.set_device_minor(3).unwrap();
    null.set_cksum();
    let entries = vec![
        (raw_header(b"fifo", b'6', 0, 0o644, b""), Vec::new()),
        (null, Vec::new()),
    ];
    let out = s.unpack(&entries, &[]);
    assert!(
        out.status.success(),
        "skipping is not a failure: {}",
        stderr_of(&out)
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("spate: fifo: skipped: FIFO (use --allow-special)"),
        "{err}"
    );
    assert!(
        err.contains("spate: null: skipped: character device"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&s.dest).unwrap().count(), 0);

    let out = s.unpack(&entries, &["-q"]);
    assert!(out.stderr.is_empty(), "-q: {}", stderr_of(&out));

    let entries = if is_root() {
        entries
    } else {
        entries[..1].to_vec()
    };
    let out = s.unpack(&entries, &["--allow-special"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let fifo = s.dest.join("fifo").symlink_metadata().unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o777, 0o644);
    if is_root() {
        let null = s.dest.join("null").symlink_metadata().unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
    }
}

// ---------------------------------------------------------------------------------
// Damaged archives and limits

/// A directory holding an archive of one incompressible 4 MiB file (and one small one
/// before it), made by GNU tar. (Large enough that half of it is more than the 1 MiB
/// the decompressor stage hands on at a time.)
fn big_archive(flags: &[&str], name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::write(&tmp.path().join("src/small.txt"), b"small\n");
    common::write(
        &tmp.path().join("src/dir/big.bin"),
        &common::bytes(4 << 20, 5),
    );
    let mut args = vec!["-cf", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["-C", "src", "small.txt", "dir"]);
    gnu_tar(tmp.path(), &args);
    tmp
}

fn cut_in_half(path: &Path) {
    let len = path.metadata().unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

/// Files under `root`, temporary ones included.
fn all_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = common::files_below(root)
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn unpack_reports_a_truncated_compressed_archive_naming_the_entry() {
    let tmp = big_archive(&["-z"], "t.tar.gz");
    cut_in_half(&tmp.path().join("t.tar.gz"));
    let out = spate(tmp.path(), &["unpack", "t.tar.gz", "-C", "out"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("spate: t.tar.gz: truncated or corrupt in entry \"dir/big.bin\": gzip"),
        "{err}"
    );
    assert_eq!(all_files(&tmp.path().join("out")), ["small.txt"]);
}

#[test]
fn unpack_reports_a_plain_archive_cut_inside_an_entry() {
    let tmp = big_archive(&[], "t.tar");
    cut_in_half(&tmp.path().join("t.tar"));
    let out = spate(tmp.path(), &["unpack", "t.tar", "-C", "out"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("spate: t.tar: truncated in entry \"dir/big.bin\": the archive ends"),
        "{err}"
    );
    assert_eq!(all_files(&tmp.path().join("out")), ["small.txt"]);
}

#[test]
fn unpack_stops_at_max_size() {
    let tmp = big_archive(&["--zstd"], "t.tar.zst");
    let out = spate(
        tmp.path(),
        &["unpack", "t.tar.zst", "-C", "out", "--max-size", "1MiB"],
    );
    assert_refused(&out, "dir/big.bin", "would exceed --max-size (1 MiB)");
    assert_eq!(all_files(&tmp.path().join("out")), ["small.txt"]);
    let out = spate(
        tmp.path(),
        &["unpack", "t.tar.zst", "-C", "out2", "--max-size", "5MiB"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn unpack_fails_whole_on_a_missing_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let out = spate(tmp.path(), &["unpack", "nope.tar", "-C", "out"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("nope.tar"));
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn unpack_and_list_of_something_not_an_archive_say_so_in_one_line_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let png = [&b"\x89PNG\r\n\x1a\n"[..], &common::bytes(4096, 3)].concat();
    std::fs::write(tmp.path().join("junk.tar"), &png).unwrap();
    std::fs::write(tmp.path().join("short.tar"), b"hello\n").unwrap();
    std::fs::write(tmp.path().join("empty.tar"), b"").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&common::bytes(4096, 4)).unwrap();
    std::fs::write(tmp.path().join("junk.tar.gz"), gz.finish().unwrap()).unwrap();
    let cases = [
        (
            "junk.tar",
            "junk.tar: not a tar archive (first bytes: 89 50 4e 47 0d 0a 1a 0a ",
        ),
        (
            "short.tar",
            "short.tar: not a tar archive (6 bytes, less than one header: 68 65",
        ),
        ("empty.tar", "empty.tar: not a tar archive (empty)"),
        (
            "junk.tar.gz",
            "junk.tar.gz: gzip data, but not a tar archive (first bytes: ",
        ),
    ];
    for (name, line) in cases {
        for args in [vec!["unpack", name, "-C", "out"], vec!["list", name]] {
            let out = spate(tmp.path(), &args);
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.starts_with(&format!("spate: {line}")),
                "{args:?}: {err}"
            );
            assert!(err.len() < 200, "{args:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?}");
        }
        assert!(
            !tmp.path().join("out").exists(),
            "{name}: -C directory created"
        );
    }
}

#[test]
fn a_corrupt_header_after_a_good_entry_is_one_short_line() {
    let s = Scratch::new();
    let mut bytes = archive(&[file(b"good", b"fine\n")]);
    bytes.truncate(1024);
    // A second header of noise: the `tar` crate's message would quote all of it.
    bytes.extend(common::bytes(512, 9));
    bytes.resize(bytes.len() + 1024, 0);
    std::fs::write(s.outer.join("a.tar"), &bytes).unwrap();
    let dest = s.dest.as_os_str();
    for args in [
        vec![
            OsStr::new("unpack"),
            OsStr::new("a.tar"),
            OsStr::new("-C"),
            dest,
        ],
        vec![OsStr::new("list"), OsStr::new("a.tar")],
    ] {
        let out = spate(&s.outer, &args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err,
            "spate: a.tar: truncated or corrupt after entry \"good\": \
             corrupt header (unreadable cksum field)\n",
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read(s.dest.join("good")).unwrap(), b"fine\n");
}

// ---------------------------------------------------------------------------------
// list

#[test]
fn list_matches_gnu_tar_tv() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_interop_tree(&src);
    for format in FORMATS {
        let name = format!("{format}.tar.xz");
        gnu_tar(
            tmp.path(),
            &[
                &format!("--format={format}"),
                "-S",
                "-cJf",
                &name,
                "-C",
                "src",
                ".",
            ],
        );
        let ours = spate(tmp.path(), &["list", name.as_str()]);
        assert!(ours.status.success(), "{}", stderr_of(&ours));
        let theirs = gnu_tar(tmp.path(), &["-tvf", &name]);
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "{format}"
        );
        let names = gnu_tar(tmp.path(), &["-tf", &name]);
        let ours_names: Vec<Vec<u8>> = common::sorted_lines(&ours.stdout)
            .iter()
            .map(|l| {
                // The name follows five fields: mode, owner, size, date, time.
                let text = String::from_utf8_lossy(l).into_owned();
                let mut rest = text.as_str();
                for _ in 0..5 {
                    rest = rest.trim_start();
                    rest = &rest[rest.find(' ').unwrap_or_else(|| panic!("{text}"))..];
                }
                let name = &rest[1..];
                let name = name.split(" -> ").next().unwrap();
                name.split(" link to ").next().unwrap().as_bytes().to_vec()
            })
            .collect();
        let mut ours_names = ours_names;
        ours_names.sort();
        assert_eq!(ours_names, common::sorted_lines(&names.stdout), "{format}");
    }
}

#[test]
fn list_json_describes_every_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_interop_tree(&src);
    gnu_tar(
        tmp.path(),
        &["--format=posix", "-S", "-czf", "t.tgz", "-C", "src", "."],
    );
    let out = spate(tmp.path(), &["list", "--json", "t.tgz"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let objects: Vec<serde_json::Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let count = gnu_tar(tmp.path(), &["-tf", "t.tgz"])
        .stdout
        .split(|&b| b == b'\n')
        .count()
        - 1;
    assert_eq!(objects.len(), count);
    let find = |path: &str| {
        objects
            .iter()
            .find(|o| o["path"] == path)
            .unwrap_or_else(|| panic!("{path} not listed"))
    };
    assert_eq!(find("./link")["type"], "symlink");
    assert_eq!(find("./link")["link"], "target.txt");
    assert_eq!(find("./exec.sh")["mode"], 0o755);
    assert_eq!(find("./empty/")["type"], "dir");
    assert_eq!(find("./sparse.img")["size"], 8 << 20);
    let hard = objects.iter().filter(|o| o["type"] == "hardlink").count();
    assert_eq!(hard, 2);
    let bad = objects
        .iter()
        .find(|o| o.get("path_hex").is_some())
        .expect("the non-UTF-8 name has path_hex");
    assert_eq!(
        bad["path_hex"],
        b"./bad\xffname\n.txt"
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
}

#[test]
fn list_reports_a_truncated_archive() {
    let tmp = big_archive(&["-j"], "t.tar.bz2");
    cut_in_half(&tmp.path().join("t.tar.bz2"));
    let out = spate(tmp.path(), &["list", "t.tar.bz2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("t.tar.bz2"), "{}", stderr_of(&out));
    let out = spate(tmp.path(), &["list", "missing.tar"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unpack_checks_a_hard_linked_symlink_at_its_new_place() {
    // `sub/l -> ../x` stays inside from sub/; the same link read from the top would not.
    let s = Scratch::new();
    let out = s.unpack(
        &[symlink(b"sub/l", b"../x"), hard_link(b"top", b"sub/l")],
        &[],
    );
    assert_refused(&out, "top", "outside the destination");
    assert!(s.dest.join("sub/l").is_symlink());
    assert!(s.dest.join("top").symlink_metadata().is_err());
    s.assert_outside_untouched();
}

#[test]
fn unpack_restores_owners_as_root() {
    if !is_root() {
        eprintln!("skipped: only root restores owners");
        return;
    }
    let s = Scratch::new();
    let mut entries = vec![file(b"owned", b"x"), symlink(b"link", b"owned")];
    for (header, _) in &mut entries {
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_cksum();
    }
    entries[0].0.set_mode(0o2755);
    entries[0].0.set_cksum();
    let out = s.unpack(&entries, &["--same-permissions"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let file = s.dest.join("owned").metadata().unwrap();
    assert_eq!((file.uid(), file.gid()), (1234, 5678));
    assert_eq!(file.mode() & 0o7777, 0o2755, "setgid survives the chown");
    let link = s.dest.join("link").symlink_metadata().unwrap();
    assert_eq!((link.uid(), link.gid()), (1234, 5678));
    assert_eq!(link.mtime(), 1_000_000_000);
}

#[test]
fn unpack_interrupted_by_sigterm_leaves_no_temporary_file() {
    // An archive arriving slowly on stdin: stop it halfway through a file's data,
    // while that file is being written (without a name, or under a temporary one).
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let data = vec![7u8; 4 << 20];
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_000_000_000);
    header.set_cksum();
    builder
        .append_data(&mut header, "big.bin", data.as_slice())
        .unwrap();
    let archive = builder.into_inner().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["unpack", "-", "-C"])
        .arg(&dest)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&archive[..2 << 20]).unwrap();
    stdin.flush().unwrap();
    // Wait until spate holds the file open (the test would be empty without it): by a
    // temporary name, or without a name (O_TMPFILE), its descriptor leads below dest.
    let fd_dir = std::path::PathBuf::from(format!("/proc/{}/fd", child.id()));
    let writing = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::read_dir(&fd_dir).is_ok_and(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .any(|target| target.starts_with(&dest) && target != dest)
        })
    });
    if !writing {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("spate never opened the file: {}", stderr_of(&out));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(143), "{}", stderr_of(&out));
    let left: Vec<_> = std::fs::read_dir(&dest).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Compresses `data` with `tool` (gzip, xz, bzip2), as the tool itself writes it.
fn compressed_by(tool: &str, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the compressor on PATH");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

#[test]
fn unpack_reads_concatenated_gzip_xz_and_bzip2_streams_whole() {
    // `cat a.gz b.gz` is one valid gzip file (xz and bzip2 alike), and gzip -d, xz -d
    // and bzip2 -d read every stream: a tar split across two streams must unpack whole.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_interop_tree(&src);
    let tar = gnu_tar(tmp.path(), &["-cf", "-", "-C", "src", "."]).stdout;
    let half = tar.len() / 1024 * 512;
    for tool in ["gzip", "xz", "bzip2"] {
        let mut joined = compressed_by(tool, &tar[..half]);
        joined.extend(compressed_by(tool, &tar[half..]));
        let name = format!("joined-{tool}");
        std::fs::write(tmp.path().join(&name), &joined).unwrap();
        let out_dir = tmp.path().join(format!("out-{tool}"));
        let out = spate(
            tmp.path(),
            &["unpack", name.as_str(), "-C", out_dir.to_str().unwrap()],
        );
        assert!(out.status.success(), "{tool}: {}", stderr_of(&out));
        assert_same_tree(&src, &out_dir, false);
    }
}

/// Runs GNU tar in `dir` and returns its output whatever its status.
fn gnu_tar_status<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new("tar")
        .current_dir(dir)
        .env("LC_ALL", "C.UTF-8")
        .args(args)
        .output()
        .expect("GNU tar")
}

#[test]
fn a_hard_link_whose_target_is_not_extracted_exits_2_as_gnu_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // GNU tar's own archives (plain and zstd), and one whose link names a file the
    // archive does not hold at all.
    common::write(&d.join("src/a"), b"the target\n");
    std::fs::hard_link(d.join("src/a"), d.join("src/b")).unwrap();
    gnu_tar(d, &["-cf", "x.tar", "-C", "src", "a", "b"]);
    gnu_tar(d, &["--zstd", "-cf", "x.tar.zst", "-C", "src", "a", "b"]);
    let orphan = archive(&[file(b"c", b"other\n"), hard_link(b"b", b"a")]);
    std::fs::write(d.join("orphan.tar"), orphan).unwrap();
    for (archive, members) in [
        ("x.tar", &["b"][..]),
        ("x.tar.zst", &["b"]),
        ("orphan.tar", &[]),
    ] {
        let (ours, theirs) = (format!("ours-{archive}"), format!("theirs-{archive}"));
        std::fs::create_dir(d.join(&theirs)).unwrap();
        let mut args = vec!["unpack", archive, "-C", &ours];
        args.extend_from_slice(members);
        let out = spate(d, &args);
        let mut args = vec!["-xf", archive, "-C", &theirs];
        args.extend_from_slice(members);
        let tar = gnu_tar_status(d, &args);
        assert!(
            stderr_of(&tar).contains("b: Cannot hard link to"),
            "{}",
            stderr_of(&tar)
        );
        assert_eq!(tar.status.code(), Some(2), "{archive}: {}", stderr_of(&tar));
        assert_eq!(
            out.status.code(),
            tar.status.code(),
            "{archive}: {}",
            stderr_of(&out)
        );
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("spate: b: cannot hard link to \"a\": no such file"),
            "{archive}: {stderr}"
        );
        // One line for the link, one that ends the run; the rest is extracted.
        assert_eq!(stderr.lines().count(), 2, "{archive}: {stderr}");
        assert!(
            stderr
                .lines()
                .last()
                .unwrap()
                .contains("1 hard link could not be made")
        );
        assert!(!d.join(&ours).join("b").exists());
        assert!(!d.join(&theirs).join("b").exists());
        if archive == "orphan.tar" {
            assert_eq!(std::fs::read(d.join(&ours).join("c")).unwrap(), b"other\n");
        }
    }
    // With its target selected too, or already in the destination, both make the link.
    for members in [&["b", "a"][..], &["b"]] {
        let out = spate(
            d,
            &[&["unpack", "x.tar", "-C", "both"][..], members].concat(),
        );
        assert!(out.status.success(), "{members:?}: {}", stderr_of(&out));
        assert_eq!(std::fs::read(d.join("both/b")).unwrap(), b"the target\n");
        std::fs::remove_file(d.join("both/b")).unwrap();
    }
}
