//! `spate unpack` makes each file without a name (`O_TMPFILE`) and links it into place
//! once complete, where the file system allows it: one directory update per file, and
//! nothing under any name until the file is whole. These tests pin that path, the
//! fallback to a temporary name (a file system that refuses, a name to replace with
//! `--overwrite`) and the linking of a user without `CAP_DAC_READ_SEARCH`, against GNU
//! tar's extraction of the same archive.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{bytes, indexed_tar_zst, stderr_of, temp_files};

/// A member: a GNU header with mode 0644 (or `mode`), owner root, and the data.
fn member(name: &str, data: &[u8], mode: u32) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_000_000_000 + data.len() as u64);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// Files in two directories, of several sizes and modes.
fn members() -> Vec<Vec<u8>> {
    let modes = [0o644, 0o600, 0o755, 0o444];
    (0..24)
        .map(|i| {
            let name = format!("d{}/f{i:02}", i % 2);
            member(&name, &bytes(i * 997, i as u64), modes[i % modes.len()])
        })
        .collect()
}

/// `members` as a plain `a.tar` (the sequential path) and an indexed `a.tar.zst` (the
/// parallel path) in `dir`.
fn archives(dir: &Path, members: &[Vec<u8>]) -> [&'static str; 2] {
    let mut plain = members.concat();
    plain.resize(plain.len() + 1024, 0);
    std::fs::write(dir.join("a.tar"), plain).unwrap();
    std::fs::write(dir.join("a.tar.zst"), indexed_tar_zst(members)).unwrap();
    ["a.tar", "a.tar.zst"]
}

/// Every name below `root`: content (or kind), mode and mtime.
fn tree(root: &Path) -> BTreeMap<PathBuf, (String, u32, i64)> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let what = if m.is_file() {
                blake3::hash(&std::fs::read(e.path()).unwrap())
                    .to_hex()
                    .to_string()
            } else if m.is_dir() {
                "dir".into()
            } else {
                format!("link {}", std::fs::read_link(e.path()).unwrap().display())
            };
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            (rel, (what, m.mode() & 0o7777, m.mtime()))
        })
        .collect()
}

/// All but directories: the archives name none, so their mtime is that of extraction.
fn files(root: &Path) -> BTreeMap<PathBuf, (String, u32, i64)> {
    tree(root)
        .into_iter()
        .filter(|(_, (what, _, _))| what != "dir")
        .collect()
}

fn gnu_tar(dir: &Path, archive: &str, dest: &str) {
    std::fs::create_dir_all(dir.join(dest)).unwrap();
    let out = Command::new("tar")
        .current_dir(dir)
        .args(["-xf", archive, "-C", dest])
        .output()
        .expect("GNU tar");
    assert!(out.status.success(), "tar: {}", stderr_of(&out));
}

/// Runs spate (through `before`, e.g. setpriv, if given) under strace, following
/// threads, with `strace_args`; the output and the trace.
fn traced(dir: &Path, strace_args: &[&str], before: &[&str], args: &[&str]) -> (Output, String) {
    let log = dir.join("strace.log");
    let mut command = Command::new("strace");
    command
        .current_dir(dir)
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args(strace_args)
        .args(before)
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(args);
    let out = command
        .output()
        .expect("strace runs spate (.ci/run installs strace)");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    (out, text)
}

/// Lines of the trace holding `what`.
fn count(trace: &str, what: &str) -> usize {
    trace.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn each_file_is_made_without_a_name_and_linked_into_place_as_gnu_tar_extracts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let members = members();
    for archive in archives(dir, &members) {
        let (by_tar, by_spate) = (format!("tar-{archive}"), format!("spate-{archive}"));
        gnu_tar(dir, archive, &by_tar);
        let args = ["unpack", "-q", archive, "-C", &by_spate];
        let calls = ["-e", "trace=openat2,linkat,renameat2,renameat,rename"];
        let (out, trace) = traced(dir, &calls, &[], &args);
        assert!(out.status.success(), "{archive}: {}", stderr_of(&out));
        // One more: whether the destination takes files without a name is asked first.
        assert_eq!(count(&trace, "O_TMPFILE"), members.len() + 1, "{trace}");
        assert_eq!(count(&trace, "linkat("), members.len(), "{trace}");
        assert_eq!(count(&trace, "rename"), 0, "{trace}");
        assert_eq!(files(&dir.join(&by_tar)), files(&dir.join(&by_spate)));
    }
}

#[test]
fn where_files_without_a_name_are_refused_a_temporary_name_is_used_asked_once_per_run() {
    // strace makes the call that creates a file without a name fail as on a file
    // system without O_TMPFILE (NFS, FAT, ...): unpack must ask once, not once per
    // file, and give the same tree through temporary names, leaving none behind.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let members = members();
    for archive in archives(dir, &members) {
        for writers in ["0", "1", "2"] {
            let by_tar = format!("tar-{archive}");
            let by_spate = format!("spate-{archive}-{writers}");
            gnu_tar(dir, archive, &by_tar);
            let args = [
                "unpack",
                "-q",
                "--writers",
                writers,
                archive,
                "-C",
                &by_spate,
            ];
            let calls = [
                "-e",
                "trace=openat2,renameat2",
                "-e",
                "inject=openat2:error=EOPNOTSUPP",
            ];
            let (out, trace) = traced(dir, &calls, &[], &args);
            assert!(out.status.success(), "{archive}: {}", stderr_of(&out));
            assert_eq!(stderr_of(&out), "");
            assert_eq!(count(&trace, "O_TMPFILE"), 1, "{trace}");
            assert_eq!(count(&trace, "renameat2("), members.len(), "{trace}");
            assert_eq!(files(&dir.join(&by_tar)), files(&dir.join(&by_spate)));
            assert!(temp_files(&dir.join(&by_spate)).is_empty());
        }
    }
}

/// The thread (strace's pid column) and the name of every `O_TMPFILE` open and
/// `linkat` in `trace`, in order.
fn creates_and_links(trace: &str) -> (Vec<&str>, Vec<(&str, String)>) {
    fn pid(l: &str) -> &str {
        l.split_whitespace().next().unwrap_or("")
    }
    let creates = trace
        .lines()
        .filter(|l| l.contains("O_TMPFILE"))
        .map(pid)
        .collect();
    let links = trace
        .lines()
        .filter(|l| l.contains("linkat("))
        .map(|l| {
            // linkat(FD, "", DIR, "NAME", AT_EMPTY_PATH) = 0: the new name is the last
            // quoted string.
            let name = l.rsplit('"').nth(1).unwrap_or("").to_string();
            (pid(l), name)
        })
        .collect();
    (creates, links)
}

#[test]
fn on_disk_the_entry_loop_writes_each_file_in_archive_order_on_tmpfs_writer_threads_do() {
    // On a disk file system (the temporary directory) the default is no writer thread:
    // the thread that reads the entries (the one that asks first whether files without
    // a name can be made) creates and links every file, in the archive's order, as GNU
    // tar does. On a tmpfs writer threads do, and the tree is the same.
    let on_disk = tempfile::tempdir().unwrap();
    let in_memory = tempfile::tempdir_in("/dev/shm").unwrap();
    assert_ne!(common::fs_type(on_disk.path()), libc::TMPFS_MAGIC);
    assert_eq!(common::fs_type(in_memory.path()), libc::TMPFS_MAGIC);
    let members = members();
    let order: Vec<String> = (0..members.len()).map(|i| format!("f{i:02}")).collect();
    for (tmp, threads) in [(&on_disk, false), (&in_memory, true)] {
        let dir = tmp.path();
        let [_, archive] = archives(dir, &members);
        gnu_tar(dir, archive, "by-tar");
        let args = ["unpack", "-q", archive, "-C", "by-spate"];
        let calls = ["-e", "trace=openat2,linkat"];
        let (out, trace) = traced(dir, &calls, &[], &args);
        assert!(out.status.success(), "{}", stderr_of(&out));
        let (creates, links) = creates_and_links(&trace);
        assert_eq!(creates.len(), members.len() + 1, "{trace}");
        let main = creates[0];
        let by_main = links.iter().filter(|(pid, _)| *pid == main).count();
        if threads {
            assert_eq!(by_main, 0, "{trace}");
        } else {
            assert!(creates.iter().all(|pid| *pid == main), "{trace}");
            assert_eq!(by_main, members.len(), "{trace}");
            let linked: Vec<&String> = links.iter().map(|(_, name)| name).collect();
            assert_eq!(linked, order.iter().collect::<Vec<_>>(), "{trace}");
        }
        assert_eq!(files(&dir.join("by-tar")), files(&dir.join("by-spate")));
    }
}

#[test]
fn with_overwrite_an_existing_name_is_replaced_and_nothing_it_leads_to_is_touched() {
    // What is in the way: a file with a second link outside the destination, and a
    // symbolic link to a file outside. GNU tar removes either and extracts anew; so
    // does spate with --overwrite (without it, it keeps them and says so). The file
    // outside must keep its content either way: the name is replaced, never written
    // through.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let members = [
        member("linked", b"new linked", 0o640),
        member("symlinked", b"new symlinked", 0o600),
        member("fresh", b"fresh", 0o644),
    ];
    for archive in archives(dir, &members) {
        for (dest, extra) in [("keep", None), ("overwrite", Some("--overwrite"))] {
            let dest = format!("{dest}-{archive}");
            let d = dir.join(&dest);
            std::fs::create_dir_all(&d).unwrap();
            let outside = dir.join(format!("outside-{dest}"));
            std::fs::write(&outside, b"outside").unwrap();
            std::fs::hard_link(&outside, d.join("linked")).unwrap();
            std::os::unix::fs::symlink(&outside, d.join("symlinked")).unwrap();
            let mut args = vec!["unpack", archive, "-C", &dest];
            args.extend(extra);
            let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            let out = common::spate(dir, &args);
            assert_eq!(std::fs::read(&outside).unwrap(), b"outside", "{dest}");
            assert!(temp_files(&d).is_empty(), "{dest}");
            assert_eq!(std::fs::read(d.join("fresh")).unwrap(), b"fresh");
            if extra.is_none() {
                assert_eq!(out.status.code(), Some(1), "{dest}");
                assert_eq!(stderr_of(&out), "spate: 2 files exist; use --overwrite\n");
                assert_eq!(std::fs::read(d.join("linked")).unwrap(), b"outside");
                let link = std::fs::read_link(d.join("symlinked")).unwrap();
                assert_eq!(link, outside);
                continue;
            }
            assert!(out.status.success(), "{dest}: {}", stderr_of(&out));
            // The same tree as GNU tar's over the same obstacles.
            let by_tar = format!("tar-{dest}");
            let t = dir.join(&by_tar);
            std::fs::create_dir_all(&t).unwrap();
            let outside_tar = dir.join(format!("outside-{by_tar}"));
            std::fs::write(&outside_tar, b"outside").unwrap();
            std::fs::hard_link(&outside_tar, t.join("linked")).unwrap();
            std::os::unix::fs::symlink(&outside_tar, t.join("symlinked")).unwrap();
            gnu_tar(dir, archive, &by_tar);
            assert_eq!(std::fs::read(&outside_tar).unwrap(), b"outside");
            assert_eq!(tree(&t), tree(&d), "{dest}");
            assert_eq!(std::fs::metadata(d.join("linked")).unwrap().nlink(), 1);
        }
    }
}

#[test]
fn without_cap_dac_read_search_files_are_linked_through_proc() {
    // Only a process with CAP_DAC_READ_SEARCH may link a descriptor by itself; anybody
    // else (here nobody) links it by its /proc/self/fd name, to the same result.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let members = members();
    common::open_to_all(dir);
    for archive in archives(dir, &members) {
        let by_tar = format!("tar-{archive}");
        let by_spate = format!("spate-{archive}");
        gnu_tar(dir, archive, &by_tar);
        let nobody = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
        let args = ["unpack", "-q", archive, "-C", &by_spate];
        let (out, trace) = traced(dir, &["-e", "trace=linkat,renameat2"], &nobody, &args);
        assert!(out.status.success(), "{archive}: {}", stderr_of(&out));
        assert_eq!(
            count(&trace, "linkat(AT_FDCWD, \"/proc/self/fd/"),
            members.len()
        );
        assert_eq!(count(&trace, "renameat2("), 0, "{trace}");
        // Owner aside (nobody's), what GNU tar run by root extracts.
        assert_eq!(files(&dir.join(&by_tar)), files(&dir.join(&by_spate)));
        let owner = std::fs::metadata(dir.join(&by_spate).join("d0/f00")).unwrap();
        assert_eq!(owner.uid(), 65534);
    }
}

#[test]
fn a_run_killed_halfway_through_a_file_leaves_nothing_under_any_name() {
    // SIGKILL leaves no chance to clean up: a file without a name goes with the process,
    // where a temporary name would stay behind.
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let data = bytes(4 << 20, 3);
    let archive = member("big.bin", &data, 0o644);
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["unpack", "-", "-C"])
        .arg(&dest)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &archive[..2 << 20]).unwrap();
    // Wait until spate holds the file open (its descriptor leads below dest).
    let fd_dir = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let writing = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::read_dir(&fd_dir).is_ok_and(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .any(|target| target.starts_with(&dest) && target != dest)
        })
    });
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(writing, "spate never opened the file: {}", stderr_of(&out));
    let left: Vec<_> = std::fs::read_dir(&dest).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
