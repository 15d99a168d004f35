//! `spate check X.tar.zst`: an indexed archive verified against its own table of
//! contents (frame checksums, headers, every file's BLAKE3), and `--audit DIR`
//! comparing its table with a directory, with the verdicts of a manifest check.

mod common;

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn run(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<OsString> = os(args);
    let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    spate(dir, &refs)
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A tree of several frames' worth of data (the 8 MiB file alone spans frames), with
/// a hard link, a symbolic link and an empty directory; packed as `tree/...`.
fn packed(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("tree");
    make_tree(&root, false);
    std::fs::hard_link(root.join("with space.txt"), root.join("hard")).unwrap();
    std::os::unix::fs::symlink("with space.txt", root.join("link")).unwrap();
    let out = run(dir, &["pack", "-q", "-o", "x.tar.zst", "tree"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    dir.join("x.tar.zst")
}

/// The names of the regular files below `dir/tree`, as the archive stores them.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = files_below(&dir.join("tree"))
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The seek table of an archive: (compressed size, decompressed size, checksum) per
/// data frame, read from the zstd seekable format's byte layout.
fn seek_table(bytes: &[u8]) -> Vec<(u32, u32, u32)> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let len = bytes.len();
    assert_eq!(u32_at(len - 4), 0x8F92_EAB1, "seekable magic");
    assert_eq!(bytes[len - 5] & 0x80, 0x80, "checksums present");
    let frames = u32_at(len - 9) as usize;
    let start = len - 9 - frames * 12;
    assert_eq!(u32_at(start - 8), 0x184D_2A5E, "seek table frame magic");
    (0..frames)
        .map(|i| {
            let at = start + i * 12;
            (u32_at(at), u32_at(at + 4), u32_at(at + 8))
        })
        .collect()
}

#[test]
fn a_sound_archive_checks_ok_file_by_file_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let archive = packed(dir.path());
    assert!(
        seek_table(&std::fs::read(&archive).unwrap()).len() > 2,
        "the test needs several frames"
    );
    let out = run(dir.path(), &["check", "x.tar.zst"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let lines = stdout_lines(&out);
    // Every regular file is OK; the second name of the hard-linked pair in walk order
    // is stored as a link, and directories and symlinks have no content: no line.
    let mut named: Vec<String> = lines
        .iter()
        .map(|l| {
            l.strip_suffix(": OK")
                .unwrap_or_else(|| panic!("not OK: {l}"))
                .to_string()
        })
        .collect();
    named.sort();
    let mut expected = file_names(dir.path());
    expected.retain(|n| n != "tree/with space.txt");
    assert_eq!(named, expected);
    // --quiet prints nothing for a sound archive; zstd agrees that it is sound.
    let quiet = run(dir.path(), &["check", "--quiet", "x.tar.zst"]);
    assert!(quiet.status.success() && quiet.stdout.is_empty());
    let zstd = Command::new("zstd")
        .args(["-tq", "x.tar.zst"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(zstd.status.success());
}

#[test]
fn check_json_names_the_archive_and_the_member_number() {
    let dir = tempfile::tempdir().unwrap();
    packed(dir.path());
    let out = run(dir.path(), &["check", "--json", "x.tar.zst"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let listed = run(dir.path(), &["list", "--json", "x.tar.zst"]);
    let members: Vec<serde_json::Value> = listed
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    for line in stdout_lines(&out) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], "OK");
        assert_eq!(v["manifest"], "x.tar.zst");
        assert_eq!(v["algos"], serde_json::json!(["blake3"]));
        // `line` is the member's number in the archive, as `list` orders them.
        let n = v["line"].as_u64().unwrap() as usize;
        assert_eq!(members[n - 1]["path"], v["path"], "{line}");
    }
}

#[test]
fn a_flipped_byte_in_a_frame_reports_the_frame_and_its_members_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let archive = packed(dir.path());
    let mut bytes = std::fs::read(&archive).unwrap();
    let frames = seek_table(&bytes);
    // A byte in the middle of the second frame's compressed data.
    let at = frames[0].0 as usize + frames[1].0 as usize / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&archive, &bytes).unwrap();
    let out = run(dir.path(), &["check", "x.tar.zst"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    let total = frames.len();
    assert!(
        stderr.contains(&format!("spate: x.tar.zst: frame 2 of {total}: ")),
        "{stderr}"
    );
    let lines = stdout_lines(&out);
    let damaged: Vec<&String> = lines.iter().filter(|l| l.contains(": ERROR")).collect();
    assert!(!damaged.is_empty(), "{lines:?}");
    assert!(
        damaged
            .iter()
            .all(|l| l.ends_with("ERROR in frame 2, which is damaged")),
        "{damaged:?}"
    );
    // The frames around it are still verified: the members in them are OK.
    assert!(lines.iter().any(|l| l.ends_with(": OK")), "{lines:?}");
    // zstd agrees that the archive is damaged.
    let zstd = Command::new("zstd")
        .args(["-tq", "x.tar.zst"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!zstd.status.success());
}

/// Rewrites the frame holding `needle` with it changed to `replacement`: recompressed,
/// with a seek table entry that matches (size and XXH64 checksum), so that only the
/// members' digests can tell.
fn tamper_consistently(archive: &Path, needle: &[u8], replacement: &[u8]) {
    let bytes = std::fs::read(archive).unwrap();
    let frames = seek_table(&bytes);
    let data_end: usize = frames.iter().map(|f| f.0 as usize).sum();
    let table_at = bytes.len() - 9 - frames.len() * 12 - 8;
    let mut out = Vec::new();
    let mut entries = Vec::new();
    let mut at = 0usize;
    let mut done = false;
    for &(c_size, d_size, checksum) in &frames {
        let packed = &bytes[at..at + c_size as usize];
        at += c_size as usize;
        let mut data = zstd::bulk::decompress(packed, d_size as usize).unwrap();
        match data.windows(needle.len()).position(|w| w == needle) {
            Some(i) if !done => {
                data[i..i + needle.len()].copy_from_slice(replacement);
                done = true;
                let mut c = zstd::bulk::Compressor::new(3).unwrap();
                c.include_checksum(true).unwrap();
                let repacked = c.compress(&data).unwrap();
                let sum = xxhash_rust::xxh64::xxh64(&data, 0) as u32;
                out.extend_from_slice(&repacked);
                entries.push((repacked.len() as u32, d_size, sum));
            }
            _ => {
                out.extend_from_slice(packed);
                entries.push((c_size, d_size, checksum));
            }
        }
    }
    assert!(done, "needle not found");
    // The table of contents is untouched; the seek table is written anew.
    out.extend_from_slice(&bytes[data_end..table_at]);
    out.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
    out.extend_from_slice(&((entries.len() * 12 + 9) as u32).to_le_bytes());
    for (c, d, s) in &entries {
        for v in [c, d, s] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.push(0x80);
    out.extend_from_slice(&0x8F92_EAB1u32.to_le_bytes());
    std::fs::write(archive, out).unwrap();
}

#[test]
fn content_changed_under_valid_frame_checksums_is_failed_by_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let archive = packed(dir.path());
    tamper_consistently(&archive, b"deep\n", b"DEEP\n");
    let zstd = Command::new("zstd")
        .args(["-tq", "x.tar.zst"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        zstd.status.success(),
        "the frames themselves are consistent"
    );
    let out = run(dir.path(), &["check", "--quiet", "x.tar.zst"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(stdout_lines(&out), ["tree/deep/a/b/c/d.txt: FAILED"]);
}

#[test]
fn a_renamed_member_header_disagrees_with_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let archive = packed(dir.path());
    // Same length, so the tar checksum field is all that is off; a header with a
    // wrong checksum is not a header.
    tamper_consistently(&archive, b"tree/-leading-dash\0", b"tree/_leading-dash\0");
    let out = run(dir.path(), &["check", "x.tar.zst"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = stdout_lines(&out);
    let line = lines
        .iter()
        .find(|l| l.starts_with("tree/-leading-dash: "))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(line.starts_with("tree/-leading-dash: ERROR"), "{line}");
    assert!(lines.iter().any(|l| l == "tree/*star: OK"), "{lines:?}");
}

#[test]
fn an_archive_without_a_table_is_read_to_the_end_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(&dir.path().join("tree"), false);
    let tar = Command::new("tar")
        .args(["--zstd", "-cf", "plain.tar.zst", "tree"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(tar.status.success());
    let out = run(dir.path(), &["check", "plain.tar.zst"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr_of(&out).contains("plain.tar.zst: no table of contents"),
        "{}",
        stderr_of(&out)
    );
    // Cut short, it fails.
    let bytes = std::fs::read(dir.path().join("plain.tar.zst")).unwrap();
    std::fs::write(dir.path().join("cut.tar.zst"), &bytes[..bytes.len() / 2]).unwrap();
    let out = run(dir.path(), &["check", "cut.tar.zst"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("spate: cut.tar.zst: "),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn audit_reports_a_changed_a_missing_and_a_new_file_as_a_manifest_check_does() {
    let dir = tempfile::tempdir().unwrap();
    packed(dir.path());
    // The manifest of the same tree, by the peer tool, for the same check to compare.
    let names = file_names(dir.path());
    let paths: Vec<std::path::PathBuf> = names.iter().map(Into::into).collect();
    let b3 = peer(dir.path(), "b3sum", &[], &paths);
    std::fs::write(dir.path().join("tree.b3"), &b3.stdout).unwrap();
    let tree = dir.path().join("tree");
    std::fs::write(tree.join("many/007"), b"changed").unwrap();
    std::fs::remove_file(tree.join("many/008")).unwrap();
    std::fs::write(tree.join("many/new"), b"new").unwrap();

    let out = run(dir.path(), &["check", "x.tar.zst", "--audit", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let lines = stdout_lines(&out);
    for expected in [
        "tree/many/007: FAILED",
        "tree/many/008: MISSING",
        "tree/many/new: NEW",
        "tree/many/009: OK",
        "tree/hard: OK",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected} in {lines:?}"
        );
    }
    // The very verdicts of `check tree.b3 --audit tree` (the hard link aside: b3sum
    // lists it as a file of its own, and the archive as a link with its target's
    // digest, so both say OK).
    let manifest = run(dir.path(), &["check", "tree.b3", "--audit", "tree"]);
    assert_eq!(manifest.status.code(), Some(1));
    assert_eq!(
        sorted_lines(&out.stdout),
        sorted_lines(&manifest.stdout),
        "archive and manifest checks differ"
    );
}

/// The tree of [`packed`] as GNU tar archives it, made indexed by the README's byte
/// layout with a table that has no digest for any member: what `spate pack` writes for
/// files that changed while it read them.
fn indexed_without_digests(dir: &Path) -> Vec<u8> {
    make_tree(&dir.join("tree"), false);
    let tar = Command::new("tar")
        .args(["-cf", "-", "tree"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(tar.status.success());
    let members = index_writer::members_of(&tar.stdout).unwrap();
    index_writer::write(&tar.stdout, &members, 64 << 10)
}

#[test]
fn a_file_without_a_digest_is_unverified_counted_apart_and_fails_only_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let archive = indexed_without_digests(d);
    std::fs::write(d.join("x.tar.zst"), &archive).unwrap();
    assert!(
        seek_table(&archive).len() > 2,
        "the test needs several frames"
    );
    let out = run(d, &["check", "--stats", "x.tar.zst"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let mut named: Vec<String> = stdout_lines(&out)
        .iter()
        .map(|l| {
            let (name, rest) = l
                .split_once(": UNVERIFIED ")
                .unwrap_or_else(|| panic!("{l}"));
            assert!(
                rest.contains("no digest") && rest.contains("changed"),
                "{l}"
            );
            name.to_string()
        })
        .collect();
    named.sort();
    assert_eq!(named, file_names(d));
    let stderr = stderr_of(&out);
    let n = named.len();
    assert!(
        stderr.contains(&format!("0 ERROR, {n} UNVERIFIED;")),
        "the summary counts them apart: {stderr}"
    );
    assert!(
        stderr.contains(&format!("WARNING: {n} files are UNVERIFIED")),
        "{stderr}"
    );
    // --quiet still names them; --strict fails the check; --json says the word.
    let quiet = run(d, &["check", "-q", "x.tar.zst"]);
    assert_eq!(stdout_lines(&quiet).len(), n);
    let strict = run(d, &["check", "--strict", "x.tar.zst"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr_of(&strict));
    let json = run(d, &["check", "--json", "x.tar.zst"]);
    for line in stdout_lines(&json) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], "UNVERIFIED", "{line}");
        assert!(
            v["reason"].as_str().unwrap().contains("no digest"),
            "{line}"
        );
    }
    // The bytes themselves are still verified by the frame checksums: a damaged frame
    // is an ERROR with or without a digest.
    let mut bytes = archive.clone();
    let middle = seek_table(&archive)[0].0 as usize + 100;
    bytes[middle] ^= 0x55;
    std::fs::write(d.join("bad.tar.zst"), &bytes).unwrap();
    let bad = run(d, &["check", "bad.tar.zst"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr_of(&bad));
    assert!(
        stdout_lines(&bad).iter().any(|l| l.contains(": ERROR ")),
        "{:?}",
        stdout_lines(&bad)
    );
}
