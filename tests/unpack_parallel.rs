//! `spate unpack` of an indexed `.tar.zst`: frames decompressed on several threads and
//! files written by writer threads, against GNU tar's extraction of the same archive
//! and against spate's own sequential unpack of the same entries without an index.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{
    as_nobody, bytes, indexed_tar_zst, is_indexed, set_mtime, stderr_of, temp_files, write,
};

fn spate(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    common::spate(dir, &args)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What one name below a root is: kind and content, mode, mtime, inode.
#[derive(Debug, PartialEq, Eq)]
struct Info {
    what: String,
    mode: u32,
    mtime: (i64, i64),
    ino: u64,
}

/// Everything below `root`, by relative path (the root itself left out).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Info> {
    let mut map = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let ft = meta.file_type();
        let what = if ft.is_file() {
            let data = std::fs::read(entry.path()).unwrap();
            format!("file {}", blake3::hash(&data).to_hex())
        } else if ft.is_dir() {
            "dir".into()
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            format!("link {}", target.display())
        } else {
            "other".into()
        };
        let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
        let info = Info {
            what,
            mode: if ft.is_symlink() {
                0
            } else {
                meta.mode() & 0o7777
            },
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ino: meta.ino(),
        };
        map.insert(rel, info);
    }
    map
}

/// Asserts that `b` holds the same tree as `a`: names, kinds, contents, link targets,
/// modes, mtimes (of directories too unless `dir_times` is false) and hard-link groups.
fn assert_same_tree(a: &Path, b: &Path, dir_times: bool) {
    let (a, b) = (snapshot(a), snapshot(b));
    let names = |m: &BTreeMap<PathBuf, Info>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "names differ");
    for (name, want) in &a {
        let got = &b[name];
        let name = name.display();
        assert_eq!(want.what, got.what, "{name}: kind or content");
        assert_eq!(want.mode, got.mode, "{name}: mode {:o}", got.mode);
        if dir_times || want.what != "dir" {
            assert_eq!(want.mtime, got.mtime, "{name}: mtime");
        }
        for (other, other_want) in &a {
            let linked = other_want.ino == want.ino;
            assert_eq!(linked, b[other].ino == got.ino, "{name}: hard links");
        }
    }
}

/// Frames listed by an indexed archive's seek table footer.
fn frame_count(archive: &Path) -> u32 {
    let bytes = std::fs::read(archive).unwrap();
    let footer = &bytes[bytes.len() - 9..];
    u32::from_le_bytes(footer[..4].try_into().unwrap())
}

/// A tree with what unpack restores: many files over several frames, one file larger
/// than a writer job, modes, a read-only directory with files in it, symbolic and hard
/// links, empty directories, and mtimes on everything (whole seconds: pack keeps those).
fn make_tree(root: &Path) {
    let modes = [0o644, 0o600, 0o755, 0o444, 0o640];
    for d in 0..8 {
        for f in 0..40 {
            let path = root.join(format!("d{d}/f{f:02}.bin"));
            write(&path, &bytes(20_000 + 997 * f, (d * 100 + f) as u64));
            chmod(&path, modes[f % modes.len()]);
        }
    }
    write(&root.join("d0/big.bin"), &bytes(9 << 20, 7));
    write(
        &root.join("ro/inside.txt"),
        b"under a read-only directory\n",
    );
    std::os::unix::fs::symlink("../d0/f00.bin", root.join("d1/link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute", root.join("d1/abs")).unwrap();
    std::fs::hard_link(root.join("d0/f01.bin"), root.join("d2/hard")).unwrap();
    std::fs::create_dir_all(root.join("empty/inner")).unwrap();
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .contents_first(true)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    // Contents first, so a directory's time is set after what is made in it.
    for (i, path) in all.drain(..).enumerate() {
        set_mtime(&path, 1_600_000_000 + i as i64 * 61, 0);
    }
    chmod(&root.join("ro"), 0o555);
    set_mtime(&root.join("ro"), 1_500_000_000, 0);
}

/// `src/tree` packed by spate (indexed) as `t.tar.zst` in `dir`.
fn packed_tree(dir: &Path) -> PathBuf {
    make_tree(&dir.join("src/tree"));
    let out = spate(dir, &["pack", "-q", "-o", "t.tar.zst", "-C", "src", "tree"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let archive = dir.join("t.tar.zst");
    assert!(is_indexed(&archive), "spate pack wrote no index");
    assert!(
        frame_count(&archive) >= 3,
        "too few frames to unpack in parallel"
    );
    archive
}

fn gnu_tar_extract(dir: &Path, archive: &str, dest: &str) {
    std::fs::create_dir_all(dir.join(dest)).unwrap();
    let out = Command::new("tar")
        .current_dir(dir)
        .args(["-xf", archive, "-C", dest])
        .output()
        .expect("GNU tar");
    assert!(out.status.success(), "tar: {}", stderr_of(&out));
}

#[test]
fn parallel_unpack_restores_what_gnu_tar_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    packed_tree(dir);
    gnu_tar_extract(dir, "t.tar.zst", "by-tar");
    let out = spate(dir, &["unpack", "-q", "t.tar.zst", "-C", "by-spate"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "");
    assert_same_tree(&dir.join("by-tar"), &dir.join("by-spate"), true);
    assert_same_tree(&dir.join("src"), &dir.join("by-spate"), true);
    assert!(temp_files(&dir.join("by-spate")).is_empty());
}

#[test]
fn parallel_unpack_decompresses_frames_by_offset_off_the_entry_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = packed_tree(dir);
    let log = dir.join("strace.log");
    let out = Command::new("strace")
        .current_dir(dir)
        .args(["-f", "-e", "trace=pread64", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["unpack", "-q", "t.tar.zst", "-C", "out"])
        .output()
        .expect("strace");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let log = std::fs::read_to_string(&log).unwrap();
    let main = out_pid(&log);
    // Each data frame is one positioned read of its compressed bytes, on a
    // decompressing thread (not the process's first thread, which runs the loop).
    let reads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pread64(") && !l.starts_with(&format!("{main} ")))
        .collect();
    assert!(
        reads.len() >= frame_count(&archive) as usize,
        "{} frame reads off the main thread for {} frames:\n{log}",
        reads.len(),
        frame_count(&archive)
    );
    assert_same_tree(&dir.join("src"), &dir.join("out"), true);
}

/// The first thread's id in an `strace -f -o` log (the first line is its own).
fn out_pid(log: &str) -> String {
    log.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_write_error_on_a_writer_thread_is_reported_once_and_leaves_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..6 {
        write(&dir.join(format!("src/ok/f{i}")), &bytes(3000, i));
        write(&dir.join(format!("src/locked/f{i}")), &bytes(3000, 10 + i));
    }
    // Files only, named one by one (no directory entries, as with tar), so the locked
    // directory's attributes are never set and the only errors are the files'.
    let names: Vec<String> = (0..6)
        .flat_map(|i| [format!("ok/f{i}"), format!("locked/f{i}")])
        .collect();
    let mut args = vec!["pack", "-q", "-o", "t.tar.zst", "-C", "src"];
    args.extend(names.iter().map(String::as_str));
    let out = spate(dir, &args);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(is_indexed(&dir.join("t.tar.zst")));
    let dest = dir.join("dest");
    std::fs::create_dir_all(dest.join("locked")).unwrap();
    common::open_to_all(dir);
    common::open_to_all(&dest);
    chmod(&dest.join("locked"), 0o555);
    chmod(&dir.join("t.tar.zst"), 0o644);
    let out = as_nobody(dir, &["unpack", "-q", "t.tar.zst", "-C", "dest"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for i in 0..6 {
        let name = format!("spate: locked/f{i}: ");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&name)).collect();
        assert_eq!(
            lines.len(),
            1,
            "{name} reported {} times: {err}",
            lines.len()
        );
        let line = lines[0].to_lowercase();
        assert!(line.contains("permission denied"), "{line}");
        assert!(!lines[0].contains("os error"), "{}", lines[0]);
        let ok = std::fs::read(dest.join(format!("ok/f{i}"))).unwrap();
        assert_eq!(ok, bytes(3000, i));
    }
    assert_eq!(err.lines().count(), 6, "only the six files: {err}");
    assert!(temp_files(&dest).is_empty());
}

/// A raw header, so names and order are exactly as written.
fn header(name: &str, kind: u8, size: usize, link: &str) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_mtime(1_000_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// One member's blocks.
fn member(name: &str, kind: u8, data: &[u8], link: &str) -> Vec<u8> {
    let mut out = header(name, kind, data.len(), link).as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    member(name, b'0', data, "")
}

/// Unpacks `members` as a plain tar (the sequential path) and as an indexed
/// `.tar.zst` (the parallel path, a frame per member) into fresh directories with
/// `extra` arguments; both must give the same exit, messages and tree. Returns the
/// indexed run's output and directory.
fn both_ways(dir: &Path, members: &[Vec<u8>], extra: &[&str]) -> (Output, PathBuf) {
    let mut plain = members.concat();
    plain.resize(plain.len() + 1024, 0);
    std::fs::write(dir.join("a.tar"), plain).unwrap();
    std::fs::write(dir.join("a.tar.zst"), indexed_tar_zst(members)).unwrap();
    let run = |archive: &str, dest: &str| {
        let mut args = vec!["unpack", archive, "-C", dest];
        args.extend(extra);
        spate(dir, &args)
    };
    let (seq, par) = (run("a.tar", "seq"), run("a.tar.zst", "par"));
    let lines = |out: &Output| {
        let mut lines: Vec<String> = stderr_of(out)
            .replace("a.tar.zst", "a.tar")
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(seq.status.code(), par.status.code(), "{}", stderr_of(&par));
    assert_eq!(lines(&seq), lines(&par));
    assert_same_tree(&dir.join("seq"), &dir.join("par"), false);
    (par, dir.join("par"))
}

#[test]
fn a_later_entry_of_the_same_name_waits_for_the_earlier_write() {
    let tmp = tempfile::tempdir().unwrap();
    let members = [
        file("dup", b"first"),
        file("other", b"x"),
        file("dup", b"second"),
    ];
    let (out, dest) = both_ways(tmp.path(), &members, &["--overwrite"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(std::fs::read(dest.join("dup")).unwrap(), b"second");

    let tmp = tempfile::tempdir().unwrap();
    let (out, dest) = both_ways(tmp.path(), &members, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("1 file exists; use --overwrite"));
    assert_eq!(std::fs::read(dest.join("dup")).unwrap(), b"first");
}

#[test]
fn hard_links_links_and_paths_through_files_wait_for_the_files_they_name() {
    let tmp = tempfile::tempdir().unwrap();
    let members = [
        file("a/target", b"linked content"),
        member("a/hard", b'1', b"", "a/target"),
        file("plain", b"a file"),
        // Through a file just written: not a directory, as without an index.
        file("plain/inside", b"never"),
        file("f", b"replaced by a link"),
        member("f", b'2', b"", "a/target"),
    ];
    let (out, dest) = both_ways(tmp.path(), &members, &["--overwrite"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("plain/inside"));
    let (a, b) = (
        std::fs::metadata(dest.join("a/target")).unwrap(),
        std::fs::metadata(dest.join("a/hard")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        std::fs::read_link(dest.join("f")).unwrap(),
        Path::new("a/target")
    );
}

#[test]
fn max_size_strip_components_and_member_filters_hold_with_an_index() {
    let members: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            file(
                &format!("top/d{}/f{i}", i % 3),
                &bytes(1000 + i * 50, i as u64),
            )
        })
        .collect();
    for extra in [
        &["--max-size", "9000"][..],
        &["--strip-components", "1"],
        &["--strip-components", "2"],
        &["top/d1", "*/f1?"],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        both_ways(tmp.path(), &members, extra);
    }
}

#[test]
fn a_damaged_frame_stops_at_that_frame_with_everything_before_it_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = packed_tree(dir);
    let mut bytes = std::fs::read(&archive).unwrap();
    // The second frame's compressed size, from the seek table's second entry.
    let frames = frame_count(&archive) as usize;
    let table = bytes.len() - 9 - frames * 12;
    let size = |i: usize| {
        let at = table + i * 12;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
    };
    let (first, second) = (size(0), size(1));
    let at = first + second / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&archive, &bytes).unwrap();
    let out = spate(dir, &["unpack", "-q", "t.tar.zst", "-C", "out"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("spate: t.tar.zst: "), "{err}");
    assert!(err.contains(&format!("frame at byte {first}")), "{err}");
    // The first frame holds at least the tree's first directory and file.
    assert!(dir.join("out/tree").is_dir());
    assert!(temp_files(&dir.join("out")).is_empty());
}

#[test]
fn a_tampered_table_is_said_once_and_the_archive_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = packed_tree(dir);
    let mut bytes = std::fs::read(&archive).unwrap();
    let frames = frame_count(&archive) as usize;
    let table = bytes.len() - 8 - 9 - frames * 12;
    // A byte inside the table of contents, just before the seek table.
    bytes[table - 40] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();
    let out = spate(dir, &["unpack", "t.tar.zst", "-C", "out"]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("spate: t.tar.zst: ") && err.contains("index"),
        "{err}"
    );
    assert_same_tree(&dir.join("src"), &dir.join("out"), true);
}

#[test]
fn whole_unpack_restores_what_gnu_tar_restores_with_any_writer_count_on_tmpfs_and_disk() {
    // /dev/shm is a tmpfs (the default: a writer per core); the temporary directory is
    // on the disk's file system (the default: none, the entry loop writes the files).
    let in_memory = tempfile::tempdir_in("/dev/shm").unwrap();
    let on_disk = tempfile::tempdir().unwrap();
    assert_eq!(common::fs_type(in_memory.path()), libc::TMPFS_MAGIC);
    assert_ne!(common::fs_type(on_disk.path()), libc::TMPFS_MAGIC);
    for tmp in [&in_memory, &on_disk] {
        let dir = tmp.path();
        packed_tree(dir);
        gnu_tar_extract(dir, "t.tar.zst", "by-tar");
        for writers in [None, Some("0"), Some("1"), Some("2"), Some("5")] {
            let dest = format!("by-spate-{}", writers.unwrap_or("default"));
            let mut args = vec!["unpack", "-q", "t.tar.zst", "-C", &dest];
            if let Some(n) = writers {
                args.extend(["--writers", n]);
            }
            let out = spate(dir, &args);
            assert!(out.status.success(), "{dest}: {}", stderr_of(&out));
            assert_eq!(stderr_of(&out), "", "{dest}");
            assert_same_tree(&dir.join("by-tar"), &dir.join(&dest), true);
            assert!(temp_files(&dir.join(&dest)).is_empty(), "{dest}");
        }
    }
}

#[test]
fn writers_takes_a_count_up_to_256() {
    let tmp = tempfile::tempdir().unwrap();
    let out = spate(tmp.path(), &["unpack", "--writers", "257", "x.tar.zst"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("--writers"), "{}", stderr_of(&out));
}

/// A member with its owner and mode.
fn owned_file(name: &str, data: &[u8], mode: u32, owner: (u64, u64)) -> Vec<u8> {
    let mut h = header(name, b'0', data.len(), "");
    h.set_mode(mode);
    h.set_uid(owner.0);
    h.set_gid(owner.1);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// Owner and mode of every file below `root`, by name.
fn owners_and_modes(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let m = e.metadata().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            (rel, (m.uid(), m.gid(), m.mode() & 0o7777))
        })
        .collect()
}

#[test]
fn files_get_the_archives_owner_and_mode_whatever_the_umask_and_a_setgid_directory() {
    // Files are created with their final mode when nothing can change it: a umask that
    // takes bits, a directory whose group new files inherit, or an owner other than
    // ours must each still end as the archive says, as with GNU tar.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut members = Vec::new();
    for (i, mode) in [0o644, 0o600, 0o755, 0o444, 0o664, 0o640]
        .iter()
        .enumerate()
    {
        for (j, owner) in [(0, 0), (65534, 65534), (0, 65534), (1234, 0)]
            .iter()
            .enumerate()
        {
            let data = bytes(100 + i * 10 + j, (i * 10 + j) as u64);
            members.push(owned_file(&format!("f{i}{j}"), &data, *mode, *owner));
            members.push(owned_file(&format!("sub/f{i}{j}"), &data, *mode, *owner));
        }
    }
    std::fs::write(dir.join("a.tar.zst"), indexed_tar_zst(&members)).unwrap();
    for dest in ["by-tar", "by-spate", "by-spate-1"] {
        // setgid, group nobody: new files would get that group unless set.
        let d = dir.join(dest);
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(0), Some(65534)).unwrap();
        chmod(&d, 0o2775);
    }
    let under_umask = |program: &str, args: &[&str]| {
        let out = Command::new("sh")
            .current_dir(dir)
            .arg("-c")
            .arg("umask 027 && exec \"$0\" \"$@\"")
            .arg(program)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{program}: {}", stderr_of(&out));
    };
    under_umask("tar", &["-xf", "a.tar.zst", "-C", "by-tar"]);
    let spate_bin = env!("CARGO_BIN_EXE_spate");
    under_umask(spate_bin, &["unpack", "-q", "a.tar.zst", "-C", "by-spate"]);
    let one = [
        "unpack",
        "-q",
        "--writers",
        "1",
        "a.tar.zst",
        "-C",
        "by-spate-1",
    ];
    under_umask(spate_bin, &one);
    let want = owners_and_modes(&dir.join("by-tar"));
    assert_eq!(want.len(), 48);
    assert_eq!(want[Path::new("f00")], (0, 0, 0o644), "GNU tar as root");
    assert_eq!(owners_and_modes(&dir.join("by-spate")), want);
    assert_eq!(owners_and_modes(&dir.join("by-spate-1")), want);
}

/// `archive` with every data frame compressed again without its content checksum (as
/// other seekable writers may leave it), the seek table's sizes rewritten; with
/// `wrong`, the table's checksum of the second frame is off by one.
fn without_frame_checksums(archive: &[u8], wrong: bool) -> Vec<u8> {
    let word = |at: usize| u32::from_le_bytes(archive[at..at + 4].try_into().unwrap());
    let frames = word(archive.len() - 9) as usize;
    let table = archive.len() - 9 - frames * 12;
    let mut out = Vec::new();
    let mut entries = Vec::new();
    let mut at = 0;
    for i in 0..frames {
        let e = table + i * 12;
        let (c_size, d_size, mut sum) = (word(e) as usize, word(e + 4), word(e + 8));
        let data = zstd::bulk::decompress(&archive[at..at + c_size], d_size as usize).unwrap();
        assert_eq!(
            archive[at + 4] & 0x04,
            0x04,
            "spate's frames carry a checksum"
        );
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(frame[4] & 0x04, 0, "recompressed without a checksum");
        if wrong && i == 1 {
            sum = sum.wrapping_add(1);
        }
        entries.push((frame.len() as u32, d_size, sum));
        out.extend_from_slice(&frame);
        at += c_size;
    }
    // The table of contents frame as it was, then the seek table anew.
    out.extend_from_slice(&archive[at..table - 8]);
    out.extend_from_slice(&archive[table - 8..table]);
    for (c, d, sum) in entries {
        out.extend_from_slice(&c.to_le_bytes());
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&sum.to_le_bytes());
    }
    out.extend_from_slice(&archive[archive.len() - 9..]);
    out
}

#[test]
fn frames_without_their_own_checksum_are_checked_against_the_table_by_their_content() {
    // spate's frames carry zstd's content checksum, which the decompressor checks; the
    // table's is then compared with it. A frame without one is hashed instead: a table
    // checksum that does not match its content still stops the run there.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let archive = std::fs::read(packed_tree(dir)).unwrap();
    for (wrong, dest) in [(false, "right"), (true, "wrong")] {
        let name = format!("{dest}.tar.zst");
        std::fs::write(dir.join(&name), without_frame_checksums(&archive, wrong)).unwrap();
        // Still whole for plain tools.
        gnu_tar_extract(dir, &name, &format!("by-tar-{dest}"));
        let out = spate(dir, &["unpack", "-q", &name, "-C", dest]);
        let err = stderr_of(&out);
        if wrong {
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("fails its checksum"), "{err}");
        } else {
            assert!(out.status.success(), "{err}");
            assert_eq!(err, "");
            assert_same_tree(&dir.join("src"), &dir.join(dest), true);
        }
    }
}
