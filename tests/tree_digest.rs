//! `spate hash --tree-digest`: one BLAKE3 Merkle digest per directory. The expected
//! digests come from a reference written here from the README's definition, hashing
//! with the `b3sum` binary, so the construction is checked independently of src/.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn run(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    spate(dir, &args)
}

fn ok(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    out.stdout
}

/// BLAKE3 of `data`, by the b3sum binary.
fn b3sum(data: &[u8]) -> [u8; 32] {
    let mut child = Command::new("b3sum")
        .arg("--no-names")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("b3sum is installed (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    digest
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The README's construction: for each entry in byte order of names, a type byte, the
/// name's length as u64 little-endian, the name, and a 32-byte digest, after the
/// prefix `spate-tree-v1\0`. Appends the line b3sum-style (`\`-escaped when the path
/// holds a backslash, newline or CR) for `dir` after those of its subdirectories.
fn reference(dir: &Path, shown: &[u8], lines: &mut Vec<u8>) -> [u8; 32] {
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    let mut encoded = b"spate-tree-v1\0".to_vec();
    for name in names {
        let path = dir.join(OsStr::from_bytes(&name));
        let ft = std::fs::symlink_metadata(&path).unwrap().file_type();
        let (kind, digest) = if ft.is_dir() {
            let mut child = shown.to_vec();
            child.push(b'/');
            child.extend(&name);
            (b'd', reference(&path, &child, lines))
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            (b'l', b3sum(target.as_os_str().as_bytes()))
        } else if ft.is_file() {
            (b'f', b3sum(&std::fs::read(&path).unwrap()))
        } else {
            use std::os::unix::fs::FileTypeExt;
            assert!(
                ft.is_fifo(),
                "the reference knows files, dirs, links and FIFOs"
            );
            (b'p', [0u8; 32])
        };
        encoded.push(kind);
        encoded.extend((name.len() as u64).to_le_bytes());
        encoded.extend(&name);
        encoded.extend(digest);
    }
    let digest = b3sum(&encoded);
    let escape = shown.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
    if escape {
        lines.push(b'\\');
    }
    lines.extend(hex(&digest).as_bytes());
    lines.extend(b"  ");
    for &b in shown.iter().chain(b"/") {
        match b {
            b'\\' if escape => lines.extend(b"\\\\"),
            b'\n' if escape => lines.extend(b"\\n"),
            b'\r' if escape => lines.extend(b"\\r"),
            _ => lines.push(b),
        }
    }
    lines.push(b'\n');
    digest
}

/// A tree with every entry type the construction names (FIFO and link included).
fn rich_tree(root: &Path) {
    make_tree(root, true);
    std::os::unix::fs::symlink("../with space.txt", root.join("deep/link")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("deep/a/dangling")).unwrap();
    let fifo = std::ffi::CString::new(root.join("deep/a/b/fifo").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
}

/// Directory path → digest, from text output.
fn digests(stdout: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let (digest, path) = line.split_once("  ").unwrap();
            (path.to_string(), digest.to_string())
        })
        .collect()
}

#[test]
fn tree_digest_matches_an_independent_reference_on_both_backends() {
    let tmp = tempfile::tempdir().unwrap();
    rich_tree(&tmp.path().join("t"));
    let mut expected = Vec::new();
    reference(&tmp.path().join("t"), b"t", &mut expected);
    for backend in BACKENDS {
        let got = ok(tmp.path(), &["hash", "--tree-digest", "--io", backend, "t"]);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{backend}"
        );
    }
}

#[test]
fn tree_digest_is_stable_across_runs_and_backends() {
    let tmp = tempfile::tempdir().unwrap();
    rich_tree(&tmp.path().join("t"));
    let first = ok(tmp.path(), &["hash", "--tree-digest", "--io", "uring", "t"]);
    assert!(first.ends_with(b"  t/\n"), "the root's line comes last");
    for backend in BACKENDS.iter().chain(&BACKENDS) {
        for jobs in ["1", "4"] {
            let again = ok(
                tmp.path(),
                &["hash", "--tree-digest", "--io", backend, "-j", jobs, "t"],
            );
            assert_eq!(again, first, "{backend} -j {jobs}");
        }
    }
}

#[test]
fn changing_one_file_changes_exactly_the_digests_of_its_ancestors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    make_tree(&root, false);
    write(&root.join("deep/a/sibling/s.txt"), b"sibling\n");
    let before = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));

    let changed = |after: &BTreeMap<String, String>| -> Vec<String> {
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>()
        );
        before
            .iter()
            .filter(|(path, digest)| after[*path] != **digest)
            .map(|(path, _)| path.clone())
            .collect()
    };
    let along = |dirs: &[&str]| -> Vec<String> {
        let mut dirs: Vec<String> = dirs.iter().map(|d| d.to_string()).collect();
        dirs.sort();
        dirs
    };

    // One byte of content, mtime restored: content is all that counts.
    let file = root.join("deep/a/b/c/d.txt");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    write(&file, b"deeP\n");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));
    assert_eq!(
        changed(&after),
        along(&["t/", "t/deep/", "t/deep/a/", "t/deep/a/b/", "t/deep/a/b/c/"])
    );

    // Restored content: the digests are the old ones again.
    write(&file, b"deep\n");
    let restored = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));
    assert!(changed(&restored).is_empty());

    // A new mtime alone changes nothing.
    set_mtime(&root.join("deep/a/sibling/s.txt"), 1_000_000_000, 0);
    let touched = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));
    assert!(changed(&touched).is_empty());

    // A rename changes its directory and the ones above it, nothing else.
    std::fs::rename(
        root.join("deep/a/sibling/s.txt"),
        root.join("deep/a/sibling/r.txt"),
    )
    .unwrap();
    let renamed = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));
    assert_eq!(
        changed(&renamed),
        along(&["t/", "t/deep/", "t/deep/a/", "t/deep/a/sibling/"])
    );
}

#[test]
fn an_unreadable_file_leaves_its_directories_without_a_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    make_tree(&root, false);
    write(&root.join("deep/a/secret"), b"secret\n");
    let full = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));
    open_to_all(tmp.path());
    std::fs::set_permissions(
        root.join("deep/a/secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    for backend in BACKENDS {
        let out = as_nobody(tmp.path(), &["hash", "--tree-digest", "--io", backend, "t"]);
        assert_eq!(out.status.code(), Some(1), "{backend}");
        let got = digests(&out.stdout);
        let stderr = stderr_of(&out);
        for dir in ["t/", "t/deep/", "t/deep/a/"] {
            assert!(!got.contains_key(dir), "{backend}: {dir} printed a digest");
            assert!(
                stderr.contains(&format!("spate: {dir}: no directory digest")),
                "{backend}: {stderr}"
            );
        }
        assert!(stderr.contains("spate: t/deep/a/secret: "), "{stderr}");
        // Directories beside and below the failure keep their digests.
        for dir in ["t/deep/a/b/", "t/sizes/", "t/many/"] {
            assert_eq!(got.get(dir), full.get(dir), "{backend}: {dir}");
        }
    }
}

#[test]
fn tree_digest_json_has_one_object_per_directory() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("t"), false);
    let text = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));
    let json = ok(tmp.path(), &["hash", "--tree-digest", "--json", "t"]);
    let mut seen = 0;
    for line in String::from_utf8(json).unwrap().lines() {
        let obj: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(obj["type"], "dir");
        let path = obj["path"].as_str().unwrap();
        assert_eq!(
            Some(obj["blake3"].as_str().unwrap()),
            text.get(&format!("{path}/")).map(String::as_str)
        );
        seen += 1;
    }
    assert_eq!(seen, text.len());
}

#[test]
fn tree_digest_of_a_file_root_is_b3sums_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("f"), &bytes(5000, 9));
    let ours = ok(tmp.path(), &["hash", "--tree-digest", "f"]);
    let theirs = peer(tmp.path(), "b3sum", &[], &["f".into()]).stdout;
    assert_eq!(ours, theirs);
}

#[test]
fn tree_digest_refuses_other_algorithms_shards_and_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("t"), false);
    for args in [
        &["hash", "--tree-digest", "-a", "sha256", "t"][..],
        &["hash", "--tree-digest", "--shard", "1/2", "t"],
        &["hash", "--tree-digest"],
    ] {
        let out = run(tmp.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = stderr_of(&out);
        assert!(stderr.starts_with("spate: "), "{args:?}: {stderr}");
        assert!(stderr.contains("--tree-digest"), "{args:?}: {stderr}");
    }
}

/// The README's worked example is what spate prints for the tree it describes.
#[test]
fn readme_worked_example_is_what_spate_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("example");
    write(&root.join("hello.txt"), b"hello\n");
    write(&root.join("sub/empty"), b"");
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    let got = ok(tmp.path(), &["hash", "--tree-digest", "example"]);
    let mut expected = Vec::new();
    reference(&root, b"example", &mut expected);
    assert_eq!(got, expected);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for line in String::from_utf8(got).unwrap().lines() {
        assert!(readme.contains(line), "README lacks {line:?}");
    }
}

#[test]
fn an_unlistable_directory_fails_itself_and_its_parents_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    make_tree(&root, false);
    let full = digests(&ok(tmp.path(), &["hash", "--tree-digest", "t"]));
    open_to_all(tmp.path());
    std::fs::set_permissions(
        root.join("deep/a/b"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    for backend in BACKENDS {
        let out = as_nobody(tmp.path(), &["hash", "--tree-digest", "--io", backend, "t"]);
        assert_eq!(out.status.code(), Some(1), "{backend}");
        let got = digests(&out.stdout);
        let stderr = stderr_of(&out);
        for dir in ["t/", "t/deep/", "t/deep/a/", "t/deep/a/b/"] {
            assert!(!got.contains_key(dir), "{backend}: {dir} printed a digest");
            assert!(
                stderr.contains(&format!("spate: {dir}: no directory digest")),
                "{backend}: {stderr}"
            );
        }
        for dir in ["t/sizes/", "t/many/", "t/empty-dir/"] {
            assert_eq!(got.get(dir), full.get(dir), "{backend}: {dir}");
        }
    }
}

#[test]
fn each_root_gets_its_own_digests_even_when_one_holds_another() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(&tmp.path().join("t"), false);
    let whole = ok(tmp.path(), &["hash", "--tree-digest", "t"]);
    let deep = ok(tmp.path(), &["hash", "--tree-digest", "t/deep"]);
    let both = ok(tmp.path(), &["hash", "--tree-digest", "t", "t/deep"]);
    assert_eq!(both, [whole.clone(), deep.clone()].concat());
    // The same subtree named on its own has the digest it has inside the whole.
    let inside = digests(&whole);
    for (dir, digest) in digests(&deep) {
        assert_eq!(inside.get(&dir), Some(&digest), "{dir}");
    }
}
