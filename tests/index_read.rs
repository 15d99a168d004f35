//! `spate list` and `spate unpack MEMBER…` of an indexed `.tar.zst`: read from the
//! table, the same output as reading the whole archive, and a table that disagrees with
//! the file is never believed.

mod common;
use common::index_writer;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{reads_of, set_mtime, stderr_of};

fn spate(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    common::spate(dir, &args)
}

/// spate with the archive on standard input: not seekable, so read from the start.
fn spate_stdin(dir: &Path, archive: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .current_dir(dir)
        .args(args)
        .stdin(std::fs::File::open(archive).unwrap())
        .output()
        .unwrap()
}

/// GNU tar in `dir`, which must succeed.
fn gnu_tar(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("tar")
        .current_dir(dir)
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .args(args)
        .output()
        .expect("GNU tar");
    assert!(out.status.success(), "tar failed: {}", stderr_of(&out));
    out
}

/// A small tree with every kind of member the table describes: files, an executable,
/// directories, symbolic and hard links, a long name, a non-UTF-8 name.
fn make_small_tree(root: &Path) {
    let long = "n".repeat(150);
    common::write(&root.join("a.txt"), b"alpha\n");
    common::write(&root.join("sub/b.txt"), b"beta\n");
    common::write(&root.join("sub/c.bin"), &common::bytes(70_000, 3));
    common::write(&root.join("sub/exec.sh"), b"#!/bin/sh\n");
    std::fs::set_permissions(
        root.join("sub/exec.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    common::write(&root.join("long").join(&long), b"long\n");
    common::write(&root.join(OsStr::from_bytes(b"bad\xffname.txt")), b"x\n");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    std::fs::hard_link(root.join("a.txt"), root.join("sub/hard")).unwrap();
    stamp(root);
}

/// Fixed, distinct mtimes, so listings and trees compare exactly.
fn stamp(root: &Path) {
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    paths.sort();
    for (i, path) in paths.iter().enumerate() {
        set_mtime(path, 1_600_000_000 + 60 * i as i64, 0);
    }
}

/// A tree of about 26 MiB: 40 incompressible 640 KiB files between 2000 small text
/// files, so that the archive has several frames and most of it is not the member
/// asked for.
fn make_big_tree(root: &Path) {
    for d in 0..20 {
        for f in 0..100 {
            let text = format!("directory {d} file {f}\n").repeat(20 + f);
            common::write(&root.join(format!("d{d:02}/t{f:03}.txt")), text.as_bytes());
        }
        for f in 0..2 {
            let data = common::bytes(640 << 10, (d * 10 + f) as u64);
            common::write(&root.join(format!("d{d:02}/blob{f}.bin")), &data);
        }
    }
    stamp(root);
}

/// Packs `src` (under `dir`, stored as `src/…`) into `name` with spate's default, the
/// indexed `.tar.zst`.
fn pack(dir: &Path, name: &str) -> PathBuf {
    let out = spate(dir, &["pack", "-o", name, "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let archive = dir.join(name);
    index_writer::layout(&std::fs::read(&archive).unwrap());
    archive
}

/// Bytes read from `file` by `args` (run under strace, threads followed): every
/// read/pread64 on a descriptor opened on that file, until it is closed.
fn bytes_read_from(dir: &Path, file: &str, args: &[&str]) -> u64 {
    reads_of(dir, file, args)
        .iter()
        .map(|&(_, bytes)| bytes)
        .sum()
}

/// The stderr lines of a run.
fn lines(out: &Output) -> Vec<String> {
    stderr_of(out).lines().map(str::to_owned).collect()
}

/// Asserts the one line that says the table was not used.
fn assert_index_ignored(out: &Output, archive: &str, why: &str) {
    let lines = lines(out);
    let start = format!("spate: {archive}: index ignored: ");
    let ignored: Vec<&String> = lines.iter().filter(|l| l.starts_with(&start)).collect();
    assert_eq!(ignored.len(), 1, "one warning line expected: {lines:?}");
    assert!(
        ignored[0].ends_with("; reading the whole archive") && ignored[0].contains(why),
        "`{why}` expected in: {}",
        ignored[0]
    );
}

// ---------------------------------------------------------------------------------
// list

#[test]
fn list_from_the_table_prints_what_reading_the_whole_archive_prints() {
    let tmp = tempfile::tempdir().unwrap();
    make_small_tree(&tmp.path().join("src"));
    let archive = pack(tmp.path(), "x.tar.zst");
    let filters: [&[&str]; 5] = [
        &[],
        &["--json"],
        &["src/sub"],
        &["*.txt"],
        &["--json", "src/link"],
    ];
    for filter in filters {
        let mut args = vec!["list", "x.tar.zst"];
        args.extend_from_slice(filter);
        let table = spate(tmp.path(), &args);
        assert!(table.status.success(), "{filter:?}: {}", stderr_of(&table));
        assert_eq!(stderr_of(&table), "", "{filter:?}");
        args[1] = "-";
        let scan = spate_stdin(tmp.path(), &archive, &args);
        assert!(scan.status.success(), "{filter:?}: {}", stderr_of(&scan));
        assert!(!table.stdout.is_empty(), "{filter:?}");
        assert_eq!(
            String::from_utf8_lossy(&table.stdout),
            String::from_utf8_lossy(&scan.stdout),
            "{filter:?}"
        );
    }
    // And what GNU tar prints of the same file.
    let ours = spate(tmp.path(), &["list", "x.tar.zst"]);
    let theirs = gnu_tar(tmp.path(), &["-tvf", "x.tar.zst"]);
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
    // A filter that matches nothing in the table is the same error as in a scan.
    let out = spate(tmp.path(), &["list", "x.tar.zst", "nothing-here"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("nothing-here: not found in archive"));
}

#[test]
fn list_of_an_indexed_archive_reads_only_its_table() {
    let tmp = tempfile::tempdir().unwrap();
    make_big_tree(&tmp.path().join("src"));
    let archive = pack(tmp.path(), "big.tar.zst");
    let bytes = std::fs::read(&archive).unwrap();
    let (toc_at, seek_at, frames) = index_writer::layout(&bytes);
    assert!(frames.len() >= 3, "{} frames", frames.len());
    let digests_at = index_writer::read_toc(&bytes).digests_at;
    let digests = (seek_at - digests_at) as u64;
    assert!(digests >= 16 * 100, "{digests} bytes of digests");
    let read = bytes_read_from(tmp.path(), "big.tar.zst", &["list", "big.tar.zst"]);
    let table = (bytes.len() - toc_at) as u64;
    // The TOC's head and metadata and the seek table, and the few bytes read to find
    // them; not the digests, which a listing does not show.
    assert!(read > 0, "nothing read: the trace missed the archive");
    assert!(
        read <= table - digests + 64,
        "read {read} bytes of a {} byte archive whose tables are {table}, {digests} of \
         them digests",
        bytes.len()
    );
    // A byte flipped in the digests goes unnoticed by a listing (it never reads
    // them), and is caught by what reads them: check.
    damaged(tmp.path(), &archive, "digest.tar.zst", |b| {
        b[digests_at + digests as usize / 2] ^= 0x01
    });
    let listed = spate(tmp.path(), &["list", "digest.tar.zst"]);
    assert!(listed.status.success(), "{}", stderr_of(&listed));
    assert_eq!(stderr_of(&listed), "");
    let good = spate(tmp.path(), &["list", "big.tar.zst"]);
    assert!(listed.stdout == good.stdout, "listing differs");
    let checked = spate(tmp.path(), &["check", "digest.tar.zst"]);
    assert_eq!(checked.status.code(), Some(1), "{}", stderr_of(&checked));
    assert!(
        stderr_of(&checked).contains("fails its checksum"),
        "{}",
        stderr_of(&checked)
    );
    // An archive without a table (GNU tar's) is read whole, transparently.
    gnu_tar(
        tmp.path(),
        &["--zstd", "-cf", "gnu.tar.zst", "-C", "src", "."],
    );
    let gnu_len = tmp.path().join("gnu.tar.zst").metadata().unwrap().len();
    let read = bytes_read_from(tmp.path(), "gnu.tar.zst", &["list", "gnu.tar.zst"]);
    assert!(read >= gnu_len, "read {read} of {gnu_len}");
}

// ---------------------------------------------------------------------------------
// unpack MEMBER…

/// Everything under `root`: name, kind, content digest, mode, mtime, and which names
/// share an inode.
fn tree(root: &Path) -> Vec<(String, String, u32, i64, usize)> {
    let mut inodes: Vec<u64> = Vec::new();
    let mut out: Vec<_> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.path().symlink_metadata().unwrap();
            let what = if meta.is_file() {
                blake3::hash(&std::fs::read(e.path()).unwrap())
                    .to_hex()
                    .to_string()
            } else if meta.is_symlink() {
                format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
            } else {
                "dir".into()
            };
            let group = if meta.is_file() && meta.nlink() > 1 {
                if !inodes.contains(&meta.ino()) {
                    inodes.push(meta.ino());
                }
                inodes.iter().position(|&i| i == meta.ino()).unwrap() + 1
            } else {
                0
            };
            let name = e.path().strip_prefix(root).unwrap();
            let mode = if meta.is_symlink() { 0 } else { meta.mode() };
            // A directory made only to hold a member gets the time it was made.
            let made_now = meta.is_dir() && meta.mtime() > 1_700_000_000;
            let mtime = if made_now { 0 } else { meta.mtime() };
            (
                name.to_string_lossy().into_owned(),
                what,
                mode,
                mtime,
                group,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn unpack_of_named_members_decompresses_only_their_frames_and_matches_gnu_tar() {
    let tmp = tempfile::tempdir().unwrap();
    make_big_tree(&tmp.path().join("src"));
    let archive = pack(tmp.path(), "big.tar.zst");
    let len = archive.metadata().unwrap().len();
    let member = "src/d10/t050.txt";
    let args = ["unpack", "big.tar.zst", member, "-C", "ours"];
    let read = bytes_read_from(tmp.path(), "big.tar.zst", &args);
    assert!(
        read < len / 3,
        "read {read} bytes of a {len} byte archive for one member"
    );
    std::fs::create_dir(tmp.path().join("theirs")).unwrap();
    gnu_tar(tmp.path(), &["-xf", "big.tar.zst", "-C", "theirs", member]);
    let theirs = tree(&tmp.path().join("theirs"));
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    assert_eq!(tree(&tmp.path().join("ours")), theirs);

    // A pattern and a directory, as GNU tar matches them.
    let out = spate(
        tmp.path(),
        &[
            "unpack",
            "big.tar.zst",
            "-C",
            "ours2",
            "*/t00?.txt",
            "src/d03",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "");
    std::fs::create_dir(tmp.path().join("theirs2")).unwrap();
    gnu_tar(
        tmp.path(),
        &[
            "-xf",
            "big.tar.zst",
            "-C",
            "theirs2",
            "--wildcards",
            "*/t00?.txt",
            "src/d03",
        ],
    );
    assert_eq!(
        tree(&tmp.path().join("ours2")),
        tree(&tmp.path().join("theirs2"))
    );
}

#[test]
fn unpack_to_stdout_of_named_members_uses_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    make_big_tree(&tmp.path().join("src"));
    let archive = pack(tmp.path(), "big.tar.zst");
    let len = archive.metadata().unwrap().len();
    let members = ["src/d02/blob1.bin", "src/d17/t099.txt"];
    let mut args = vec!["unpack", "-O", "big.tar.zst"];
    args.extend_from_slice(&members);
    let ours = spate(tmp.path(), &args);
    assert!(ours.status.success(), "{}", stderr_of(&ours));
    let mut theirs = vec!["-xOf", "big.tar.zst"];
    theirs.extend_from_slice(&members);
    let theirs = gnu_tar(tmp.path(), &theirs);
    assert!(
        ours.stdout == theirs.stdout,
        "-O output differs from tar -xO"
    );
    let read = bytes_read_from(tmp.path(), "big.tar.zst", &args);
    assert!(read < len / 3, "read {read} of {len}");
}

#[test]
fn unpack_of_a_hard_link_without_its_target_fails_as_gnu_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    make_small_tree(&tmp.path().join("src"));
    pack(tmp.path(), "x.tar.zst");
    // `src/a.txt` comes first, so `src/sub/hard` is stored as a link to it.
    let listing = spate(tmp.path(), &["list", "x.tar.zst", "src/sub/hard"]);
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("link to src/a.txt"),
        "{}",
        String::from_utf8_lossy(&listing.stdout)
    );
    let out = spate(
        tmp.path(),
        &["unpack", "x.tar.zst", "src/sub/hard", "-C", "ours"],
    );
    assert!(
        stderr_of(&out)
            .contains("spate: src/sub/hard: cannot hard link to \"src/a.txt\": no such file"),
        "{}",
        stderr_of(&out)
    );
    assert!(!tmp.path().join("ours/src/sub/hard").exists());
    // GNU tar: "Cannot hard link to 'src/a.txt'", nothing made, and status 2.
    std::fs::create_dir(tmp.path().join("theirs")).unwrap();
    let theirs = Command::new("tar")
        .current_dir(tmp.path())
        .args(["-xf", "x.tar.zst", "-C", "theirs", "src/sub/hard"])
        .output()
        .unwrap();
    assert!(stderr_of(&theirs).contains("Cannot hard link"));
    assert!(!tmp.path().join("theirs/src/sub/hard").exists());
    assert_eq!(theirs.status.code(), Some(2), "{}", stderr_of(&theirs));
    assert_eq!(
        out.status.code(),
        theirs.status.code(),
        "{}",
        stderr_of(&out)
    );
    // With its target, the link is made.
    let out = spate(
        tmp.path(),
        &[
            "unpack",
            "x.tar.zst",
            "src/sub/hard",
            "src/a.txt",
            "-C",
            "both",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let a = tmp.path().join("both/src/a.txt").metadata().unwrap();
    let hard = tmp.path().join("both/src/sub/hard").metadata().unwrap();
    assert_eq!(a.ino(), hard.ino());
}

// ---------------------------------------------------------------------------------
// Tables that disagree with the file

/// The archive with `damage` done to its bytes, written as `name`.
fn damaged(dir: &Path, from: &Path, name: &str, damage: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(from).unwrap();
    damage(&mut bytes);
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn a_damaged_table_is_one_warning_line_then_the_archive_is_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    make_big_tree(&tmp.path().join("src"));
    let archive = pack(tmp.path(), "good.tar.zst");
    let bytes = std::fs::read(&archive).unwrap();
    let (toc_at, seek_at, frames) = index_writer::layout(&bytes);
    let listing = spate(tmp.path(), &["list", "good.tar.zst"]);
    assert!(listing.status.success());
    let member = "src/d12/t007.txt";
    let want = std::fs::read(tmp.path().join("src/d12/t007.txt")).unwrap();
    // A byte flipped: in the TOC's metadata, in its head (the tar length), in the first
    // frame's compressed size in the seek table, in the seek table's frame count.
    let digests_at = index_writer::read_toc(&bytes).digests_at;
    let cases = [
        (
            "toc.tar.zst",
            toc_at + 144 + (digests_at - toc_at - 144) / 2,
            "fails its checksum",
        ),
        ("toc-head.tar.zst", toc_at + 8 + 12, "fails its checksum"),
        ("seek-size.tar.zst", seek_at + 8, ""),
        ("seek-count.tar.zst", bytes.len() - 9, ""),
    ];
    for (name, at, why) in cases {
        damaged(tmp.path(), &archive, name, |b| b[at] ^= 0x01);
        let out = spate(tmp.path(), &["list", name]);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        assert_index_ignored(&out, name, why);
        assert_eq!(lines(&out).len(), 1, "{name}: {:?}", lines(&out));
        assert!(out.stdout == listing.stdout, "{name}: listing differs");
        let dest = format!("out-{name}");
        let out = spate(tmp.path(), &["unpack", name, member, "-C", &dest]);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        assert_index_ignored(&out, name, why);
        assert_eq!(
            std::fs::read(tmp.path().join(&dest).join(member)).unwrap(),
            want,
            "{name}"
        );
    }
    // A table of another version (the second one, fixed-width columns and 32-byte
    // digests) is not read: nothing of it was released, so no reader of it is kept.
    damaged(tmp.path(), &archive, "v2.tar.zst", |b| b[toc_at + 12] = 2);
    let out = spate(tmp.path(), &["list", "v2.tar.zst"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_index_ignored(
        &out,
        "v2.tar.zst",
        "the table of contents is version 2, this spate reads 3",
    );
    assert!(out.stdout == listing.stdout, "listing differs");
    // Frame checksums in the seek table that do not match the frames: the table itself
    // is sound, so the listing uses it. The member's frame is decompressed only up to
    // the member's end, so its checksum is never reached: the member is checked
    // against its BLAKE3 in the table instead, and extracted from the table. (A member
    // without a digest, whose frame is read whole: tests/index_extract.rs.)
    damaged(tmp.path(), &archive, "sums.tar.zst", |b| {
        for frame in 0..frames.len() {
            b[seek_at + 8 + frame * 12 + 8] ^= 0x01;
        }
    });
    let out = spate(tmp.path(), &["list", "sums.tar.zst"]);
    assert_eq!(stderr_of(&out), "");
    assert!(out.stdout == listing.stdout, "listing differs");
    let out = spate(
        tmp.path(),
        &["unpack", "sums.tar.zst", member, "-C", "out-sums"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "");
    assert_eq!(
        std::fs::read(tmp.path().join("out-sums").join(member)).unwrap(),
        want
    );
}

#[test]
fn a_truncated_indexed_archive_extracts_every_member_before_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    make_big_tree(&tmp.path().join("src"));
    let archive = pack(tmp.path(), "big.tar.zst");
    let len = archive.metadata().unwrap().len();
    damaged(tmp.path(), &archive, "cut.tar.zst", |b| {
        b.truncate(len as usize * 3 / 5)
    });
    let out = spate(tmp.path(), &["unpack", "cut.tar.zst", "-C", "ours"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("spate: cut.tar.zst: truncated or corrupt "),
        "{err}"
    );
    // The cut member is named, and is not there; every member before it is, whole.
    let names: Vec<String> =
        String::from_utf8_lossy(&spate(tmp.path(), &["list", "big.tar.zst"]).stdout)
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .collect();
    let named = |how: &str| {
        err.split(how)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
    };
    // Cut inside a member's data, or (as it may fall) just before a header.
    let at = match (named("in entry \""), named("after entry \"")) {
        (Some(cut), _) => names.iter().position(|n| *n == cut),
        (None, Some(last)) => names.iter().position(|n| *n == last).map(|i| i + 1),
        (None, None) => None,
    }
    .unwrap_or_else(|| panic!("no member named in: {err}"));
    let ours = tmp.path().join("ours");
    assert!(
        !ours.join(&names[at]).is_file(),
        "{} left half written",
        names[at]
    );
    assert!(
        at > names.len() / 3,
        "cut at member {at} of {}",
        names.len()
    );
    for name in &names[..at] {
        let src = tmp.path().join(name);
        let got = ours.join(name);
        if src.is_file() {
            assert_eq!(std::fs::read(&got).ok(), std::fs::read(&src).ok(), "{name}");
        } else {
            assert!(got.is_dir(), "{name}");
        }
    }
    // GNU tar gets no further.
    let theirs = Command::new("sh")
        .current_dir(tmp.path())
        .args(["-c", "mkdir theirs && zstd -dc cut.tar.zst 2>/dev/null | tar -xf - -C theirs 2>/dev/null; true"])
        .status()
        .unwrap();
    assert!(theirs.success());
    assert!(!tmp.path().join("theirs").join(&names[at + 1]).exists());
}

#[test]
fn a_table_of_several_blocks_lists_as_gnu_tar_and_extracts_from_any_block() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // Enough members for three blocks of spate's table; long names (a GNU long-name
    // header each, so offsets off the prediction), links, names that share prefixes
    // and names that do not.
    for i in 0..9000 {
        let name = match i % 4 {
            0 => format!("d{}/file{i}.txt", i / 1000),
            1 => format!("d{}/{}-{i}", i / 1000, "long".repeat(30)),
            2 => format!("e{}/{i}", i % 7),
            _ => format!("d{}/file{i}.txt.bak", i / 1000),
        };
        common::write(
            &src.join(name),
            format!("member {i}\n").repeat(i % 5).as_bytes(),
        );
    }
    for i in 0..30 {
        std::os::unix::fs::symlink(
            format!("../d0/file{}.txt", i * 4),
            src.join(format!("e0/l{i}")),
        )
        .unwrap();
    }
    stamp(&src);
    let archive = pack(tmp.path(), "many.tar.zst");
    let toc = index_writer::read_toc(&std::fs::read(&archive).unwrap());
    assert!(
        toc.members.len() > 2 * toc.per_block,
        "{} members in blocks of {}",
        toc.members.len(),
        toc.per_block
    );
    let listed = spate(tmp.path(), &["list", "many.tar.zst"]);
    assert!(listed.status.success(), "{}", stderr_of(&listed));
    assert_eq!(stderr_of(&listed), "");
    let tar = gnu_tar(tmp.path(), &["-tvf", "many.tar.zst"]);
    assert!(listed.stdout == tar.stdout, "listing differs from tar -tvf");
    // The last member of a block, the first of the next, the very last.
    let per = toc.per_block;
    let last = toc.members.len() - 1;
    for i in [per - 1, per, 2 * per + 1, last] {
        let name = String::from_utf8(toc.members[i].name.clone()).unwrap();
        let ours = spate(tmp.path(), &["unpack", "many.tar.zst", &name, "-O"]);
        assert!(ours.status.success(), "{name}: {}", stderr_of(&ours));
        assert_eq!(stderr_of(&ours), "", "{name}");
        let theirs = gnu_tar(tmp.path(), &["-xOf", "many.tar.zst", &name]);
        assert!(
            ours.stdout == theirs.stdout,
            "{name}: differs from tar -xOf"
        );
    }
}

// ---------------------------------------------------------------------------------
// Tables that lie: written from the layout, not by spate

#[test]
fn a_block_whose_records_fail_past_their_checksums_is_never_believed() {
    let tmp = scratch();
    let dir = tmp.path();
    let members: Vec<Vec<u8>> = (0..3 * index_writer::PER_BLOCK)
        .map(|i| {
            raw(
                format!("m{i:02}.txt").as_bytes(),
                b'0',
                format!("data {i}\n").as_bytes(),
                b"",
            )
        })
        .collect();
    let tar = tar_of(&members);
    std::fs::write(dir.join("plain.tar"), &tar).unwrap();
    let table = index_writer::members_of(&tar).unwrap();
    let full = gnu_tar(dir, &["-tvf", "plain.tar"]);
    // A member placed at its predecessor's offset: checksums right, records wrong.
    let lying = |at: usize| {
        let mut t = table.clone();
        t[at].header_at = t[at - 1].header_at;
        t
    };
    // In the first block: nothing was listed, so the archive is listed whole instead.
    std::fs::write(
        dir.join("first.tar.zst"),
        index_writer::write(&tar, &lying(2), 1),
    )
    .unwrap();
    let out = spate(dir, &["list", "first.tar.zst"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_index_ignored(
        &out,
        "first.tar.zst",
        "places \"m02.txt\" at an impossible offset",
    );
    assert!(out.stdout == full.stdout, "listing differs from tar -tvf");
    // In the second block: the first block's lines are out, the error says where the
    // listing stopped, exit 1.
    let at = index_writer::PER_BLOCK + 1;
    std::fs::write(
        dir.join("second.tar.zst"),
        index_writer::write(&tar, &lying(at), 1),
    )
    .unwrap();
    let out = spate(dir, &["list", "second.tar.zst"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let want: Vec<&[u8]> = full
        .stdout
        .split_inclusive(|&b| b == b'\n')
        .take(index_writer::PER_BLOCK)
        .collect();
    assert!(
        out.stdout == want.concat(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        lines(&out),
        [format!(
            "spate: second.tar.zst: index: the table of contents places \"m{at:02}.txt\" at an \
             impossible offset; the members before it are listed, the rest are not"
        )]
    );
    // Extraction reads the table through before it writes anything: the table is
    // ignored, and the member comes from reading the archive.
    let name = format!("m{:02}.txt", 3 * index_writer::PER_BLOCK - 1);
    let out = spate(dir, &["unpack", "second.tar.zst", &name, "-C", "dest"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_index_ignored(&out, "second.tar.zst", "at an impossible offset");
    assert_eq!(
        std::fs::read(dir.join("dest").join(&name)).unwrap(),
        format!("data {}\n", 3 * index_writer::PER_BLOCK - 1).as_bytes()
    );
    assert_outside_untouched(dir);
}

#[test]
fn columns_widen_across_blocks_as_gnu_tar_widens_them() {
    // GNU tar's owner/group/size field only widens, so a line depends on every line
    // before it, whichever block (and whichever of spate's threads) it is in. Owners
    // of many widths, widening at the end of one block, in the middle of another,
    // and narrow first lines after a widening.
    let tmp = scratch();
    let dir = tmp.path();
    let per = index_writer::PER_BLOCK;
    let owner_len = |i: usize| match (i / per, i % per) {
        (0, j) if j == per - 1 => 12,
        (2, 2) => 20,
        (3, 0) => 25,
        (5, j) if j == per - 1 => 31,
        _ => 1 + i % 3,
    };
    let members: Vec<Vec<u8>> = (0..8 * per)
        .map(|i| {
            let mut header = tar::Header::new_gnu();
            let data = format!("data {i}\n").repeat(1 + i % 3);
            header.set_path(format!("m{i:02}.txt")).unwrap();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(1000);
            header.set_gid(1000);
            header.set_mtime(1_000_000_000 + 86_400 * i as u64);
            header.set_username(&"u".repeat(owner_len(i))).unwrap();
            header.set_groupname("g").unwrap();
            header.set_cksum();
            let mut out = header.as_bytes().to_vec();
            out.extend_from_slice(data.as_bytes());
            out.resize(out.len().next_multiple_of(512), 0);
            out
        })
        .collect();
    let tar = tar_of(&members);
    std::fs::write(dir.join("plain.tar"), &tar).unwrap();
    let table = index_writer::members_of(&tar).unwrap();
    std::fs::write(
        dir.join("wide.tar.zst"),
        index_writer::write(&tar, &table, 1),
    )
    .unwrap();
    let listed = spate(dir, &["list", "wide.tar.zst"]);
    assert!(listed.status.success(), "{}", stderr_of(&listed));
    assert_eq!(stderr_of(&listed), "");
    let theirs = gnu_tar(dir, &["-tvf", "plain.tar"]);
    assert!(
        listed.stdout == theirs.stdout,
        "ours:\n{}\ntar -tvf:\n{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
    // The same lines on one core.
    let one = Command::new("taskset")
        .args(["-c", "0"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["list", "wide.tar.zst"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(one.status.success(), "{}", stderr_of(&one));
    assert!(one.stdout == theirs.stdout, "one core: listing differs");
}

/// Headers built byte by byte (nothing sanitizes the names).
fn raw(name: &[u8], kind: u8, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_000_000_000);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn tar_of(members: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = members.concat();
    out.resize(out.len() + 1024, 0);
    out
}

/// A scratch directory with `dest/` and `outside/victim`, which nothing may touch.
fn scratch() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("dest")).unwrap();
    common::write(&tmp.path().join("outside/victim"), b"original");
    tmp
}

fn assert_outside_untouched(dir: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".tar.zst") && !n.ends_with(".tar"))
        .collect();
    names.sort();
    assert_eq!(names, ["dest", "outside"]);
    assert_eq!(
        std::fs::read(dir.join("outside/victim")).unwrap(),
        b"original"
    );
    assert_eq!(std::fs::read_dir(dir.join("outside")).unwrap().count(), 1);
}

#[test]
fn a_table_that_points_members_outside_the_destination_is_refused_like_the_scan() {
    let tmp = scratch();
    let dir = tmp.path();
    let tar = tar_of(&[
        raw(b"fine.txt", b'0', b"fine\n", b""),
        raw(b"../evil", b'0', b"evil\n", b""),
        raw(b"up", b'2', b"", b"../outside"),
        raw(b"up/victim", b'0', b"evil\n", b""),
        raw(b"hard", b'1', b"", b"../outside/victim"),
    ]);
    std::fs::write(dir.join("plain.tar"), &tar).unwrap();
    let members = index_writer::members_of(&tar).unwrap();
    std::fs::write(
        dir.join("x.tar.zst"),
        index_writer::write(&tar, &members, 1),
    )
    .unwrap();
    for filter in [&["../evil"][..], &["up/victim", "hard"], &["*"]] {
        let run = |archive: &str| {
            let mut args = vec!["unpack", archive, "-C", "dest"];
            args.extend_from_slice(filter);
            let out = spate(dir, &args);
            assert_outside_untouched(dir);
            std::fs::remove_dir_all(dir.join("dest")).unwrap();
            std::fs::create_dir(dir.join("dest")).unwrap();
            out
        };
        let table = run("x.tar.zst");
        let scan = run("plain.tar");
        assert_eq!(
            table.status.code(),
            Some(1),
            "{filter:?}: {}",
            stderr_of(&table)
        );
        assert_eq!(stderr_of(&table), stderr_of(&scan), "{filter:?}");
        assert!(
            stderr_of(&table).contains("refused"),
            "{}",
            stderr_of(&table)
        );
        assert!(!stderr_of(&table).contains("index ignored"));
    }

    // The table says `../evil` where the header says `fine.txt`: the table is not
    // believed, and the archive holds no member of that name.
    let mut lying = members.clone();
    lying[0].name = b"../evil0".to_vec();
    std::fs::write(
        dir.join("lie.tar.zst"),
        index_writer::write(&tar, &lying, 1),
    )
    .unwrap();
    let out = spate(dir, &["unpack", "lie.tar.zst", "../evil0", "-C", "dest"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_index_ignored(&out, "lie.tar.zst", "the header names \"fine.txt\"");
    assert!(stderr_of(&out).contains("../evil0: not found in archive"));
    assert_eq!(std::fs::read_dir(dir.join("dest")).unwrap().count(), 0);
    assert_outside_untouched(dir);
}

#[test]
fn a_table_with_wrong_offsets_is_caught_before_anything_is_written() {
    let tmp = scratch();
    let dir = tmp.path();
    // b.txt's data is bytes that are no header.
    let b_data = vec![b'z'; 2000];
    let tar = tar_of(&[
        raw(b"a.txt", b'0', b"alpha\n", b""),
        raw(b"b.txt", b'0', &b_data, b""),
        raw(b"c.txt", b'0', b"gamma\n", b""),
    ]);
    let members = index_writer::members_of(&tar).unwrap();
    let (a, b, c) = (
        members[0].header_at,
        members[1].header_at,
        members[2].header_at,
    );
    assert_eq!((a, b), (0, 1024));
    let cases: Vec<(&str, Vec<index_writer::Member>, &str)> = vec![
        // c.txt placed inside b.txt's data.
        (
            "into-data",
            {
                let mut m = members.clone();
                m[2].header_at = b + 1024;
                m
            },
            "is no tar header",
        ),
        // b.txt left out, c.txt placed at b.txt's header.
        (
            "other-header",
            {
                let mut m = members.clone();
                m.remove(1);
                m[1].header_at = b;
                m
            },
            "the header names \"b.txt\"",
        ),
        // a.txt said to end where it cannot: c.txt placed just after a.txt's header,
        // so a.txt's data runs past it.
        (
            "overlap",
            {
                let mut m = members.clone();
                m.remove(1);
                m.remove(1);
                let mut c2 = members[2].clone();
                c2.header_at = 512;
                m.push(c2);
                m
            },
            "would run past byte 512",
        ),
        // A type that is not the header's.
        (
            "type",
            {
                let mut m = members.clone();
                m[2].entry_type = b'5';
                m
            },
            "type is '0', not '5'",
        ),
    ];
    let _ = c;
    for (name, table, why) in cases {
        let file = format!("{name}.tar.zst");
        std::fs::write(dir.join(&file), index_writer::write(&tar, &table, 1)).unwrap();
        let wanted = if name == "overlap" { "a.txt" } else { "c.txt" };
        let out = spate(dir, &["unpack", &file, wanted, "-C", "dest"]);
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        assert_index_ignored(&out, &file, why);
        let got = std::fs::read(dir.join("dest").join(wanted)).unwrap();
        let want: &[u8] = if name == "overlap" {
            b"alpha\n"
        } else {
            b"gamma\n"
        };
        assert_eq!(got, want, "{name}");
        let names: Vec<_> = std::fs::read_dir(dir.join("dest")).unwrap().collect();
        assert_eq!(names.len(), 1, "{name}: only the member asked for");
        std::fs::remove_dir_all(dir.join("dest")).unwrap();
        std::fs::create_dir(dir.join("dest")).unwrap();
    }
    assert_outside_untouched(dir);
}
