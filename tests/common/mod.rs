//! Helpers shared by the integration tests: temp trees with awkward names and sizes,
//! and runners for spate and the peer tools.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Both read backends; every backend-sensitive test runs once per entry.
pub const BACKENDS: [&str; 2] = ["uring", "threads"];

/// Deterministic pseudo-random bytes (xorshift), so content differs between files.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

/// Sizes that cross every chunk boundary the readers care about (1 MiB buffers).
pub const SIZES: [usize; 9] = [
    0,
    1,
    4095,
    4096,
    (1 << 20) - 1,
    1 << 20,
    (1 << 20) + 1,
    3 * (1 << 20) + 12345,
    8 << 20,
];

/// A tree with nested directories, files of [`SIZES`], and names with spaces, a leading
/// dash and a leading `*`. `awkward` adds names with a backslash, a newline, a carriage
/// return and a non-UTF-8 byte.
pub fn make_tree(root: &Path, awkward: bool) {
    for (i, size) in SIZES.iter().enumerate() {
        write(
            &root.join(format!("sizes/f{i}.bin")),
            &bytes(*size, i as u64),
        );
    }
    write(&root.join("with space.txt"), b"space\n");
    write(&root.join("-leading-dash"), b"dash\n");
    write(&root.join("*star"), b"star\n");
    write(&root.join("deep/a/b/c/d.txt"), b"deep\n");
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    for i in 0..50 {
        write(
            &root.join(format!("many/{i:03}")),
            &bytes(100 + i * 37, 1000 + i as u64),
        );
    }
    if awkward {
        let names: [&[u8]; 4] = [
            b"back\\slash",
            b"new\nline",
            b"carriage\rreturn",
            b"bad\xffutf8",
        ];
        for (i, name) in names.iter().enumerate() {
            write(
                &root.join("awkward").join(OsStr::from_bytes(name)),
                &bytes(10 + i, 77 + i as u64),
            );
        }
    }
}

/// Every regular file below `root`, as paths that start with `root`.
pub fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

/// spate's temporary files (`.spate-*`) left anywhere below `root`.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b".spate-"))
        })
        .collect()
}

/// Runs spate with `args` in `dir`.
pub fn spate(dir: &Path, args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running spate")
}

/// Shorthand to build an argument list of mixed str/OsString.
pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Runs a peer tool on the given files (paths relative to `dir`).
pub fn peer(dir: &Path, tool: &str, extra: &[&str], files: &[PathBuf]) -> Output {
    let out = Command::new(tool)
        .current_dir(dir)
        .args(extra)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("running {tool} (is it installed? .ci/run installs it): {e}"));
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Output lines (split on `\n`), sorted, for comparing sets of manifest lines.
pub fn sorted_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    lines.sort();
    lines
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs spate as `nobody`, so permission checks apply (the tests run as root).
pub fn as_nobody(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("setpriv (util-linux) runs spate as nobody")
}

pub fn open_to_all(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// Sets the mtime of `path` itself (links not followed).
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let times = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
    ];
    // SAFETY: NUL-terminated path and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

/// Runs `spate bench ARGS` in `dir`.
pub fn spate_bench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .arg("bench")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running spate bench")
}

/// The JSON a successful run printed on stdout.
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr_of(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

// The indexed-archive writer the tests share, written from the README's layout.
#[path = "../index_writer/mod.rs"]
pub mod index_writer;
#[allow(unused_imports)] // only the unpack tests use it
pub use index_writer::indexed_tar_zst;

/// Whether `archive` ends in the zstd seekable format's footer (an indexed archive).
pub fn is_indexed(archive: &Path) -> bool {
    let bytes = std::fs::read(archive).unwrap();
    bytes.ends_with(&0x8F92_EAB1u32.to_le_bytes())
}

/// The reads a run of spate makes from `file` (strace, threads followed): offset (for
/// `pread64`; `None` for a `read`, which could be anywhere) and bytes read.
pub fn reads_of(dir: &Path, file: &str, args: &[&str]) -> Vec<(Option<u64>, u64)> {
    let trace = dir.join("strace.txt");
    let out = Command::new("strace")
        .current_dir(dir)
        .args(["-f", "-qq", "-e", "trace=openat,read,pread64,close", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("strace");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    std::fs::remove_file(&trace).unwrap();
    let quoted = format!("\"{file}\"");
    let mut fds: Vec<String> = Vec::new();
    let mut reads = Vec::new();
    // A call another thread interrupted: "PID pread64(3, <unfinished ...>", then
    // "PID <... pread64 resumed>...) = N".
    let mut unfinished: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let (pid, call) = line.split_once(' ').unwrap_or(("", line));
        let mut call = call.trim_start().to_owned();
        if let Some(rest) = call.strip_prefix("<... ") {
            let Some(i) = unfinished.iter().position(|(p, _)| p == pid) else {
                continue;
            };
            let (_, start) = unfinished.remove(i);
            let tail = rest.split_once("resumed>").map_or("", |(_, t)| t);
            call = format!("{start}{tail}");
        } else if let Some(start) = call.strip_suffix(" <unfinished ...>") {
            unfinished.push((pid.to_owned(), start.to_owned()));
            continue;
        }
        let result = call.rsplit_once(" = ").map(|(_, r)| r.trim());
        let number = result.and_then(|r| r.split(' ').next()?.parse::<i64>().ok());
        let fd_of = |rest: &str| rest.split([',', ')']).next().unwrap_or("").to_owned();
        if call.starts_with("openat(") && call.contains(&quoted) {
            fds.extend(number.filter(|&n| n >= 0).map(|n| n.to_string()));
        } else if let Some(rest) = call.strip_prefix("pread64(") {
            if fds.contains(&fd_of(rest)) {
                // pread64(fd, "...", count, offset) = n
                let args = rest.rsplit_once(" = ").map_or(rest, |(a, _)| a);
                let offset = args.trim_end_matches(')').rsplit(", ").next();
                let offset = offset.and_then(|o| o.trim().parse().ok());
                reads.push((offset, number.unwrap_or(0).max(0) as u64));
            }
        } else if let Some(rest) = call.strip_prefix("read(") {
            if fds.contains(&fd_of(rest)) {
                reads.push((None, number.unwrap_or(0).max(0) as u64));
            }
        } else if let Some(rest) = call.strip_prefix("close(") {
            let fd = fd_of(rest);
            fds.retain(|f| *f != fd);
        }
    }
    reads
}

/// The file system type of `dir` (statfs's f_type).
pub fn fs_type(dir: &Path) -> i64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    assert_eq!(unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) }, 0);
    unsafe { st.assume_init() }.f_type
}
