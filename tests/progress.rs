//! Progress (#14): the bar never tears result lines on a terminal, totals are honest
//! ("counting…" until known, never short of the tree), `--progress=plain` for logs, and
//! the summaries of pack and unpack.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use common::*;

/// Redraw the bar, or print plain lines, every millisecond: a run of a few thousand
/// files shows many frames, without any test waiting for a clock.
const FAST: &str = "0.001";

fn spate_cmd(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("spate").expect("the spate binary");
    cmd.current_dir(dir).env("SPATE_PROGRESS_INTERVAL", FAST);
    cmd
}

/// `count` files of a few KiB each below `dir/d`, with different contents.
fn tree(dir: &Path, count: usize) -> u64 {
    let mut total = 0;
    for i in 0..count {
        let data = bytes(2048 + (i % 7) * 1000, i as u64);
        total += data.len() as u64;
        write(&dir.join(format!("d/s{}/f{i}", i % 10)), &data);
    }
    total
}

/// Runs `cmd` (a shell command line, in `dir`) under a pseudo-terminal, so that both
/// stdout and stderr are a terminal, and returns the transcript.
fn on_terminal(dir: &Path, cmd: &str) -> String {
    let out = StdCommand::new("script")
        .args(["-qfec", cmd, "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .env("SPATE_PROGRESS_INTERVAL", FAST)
        .output()
        .expect("running script");
    assert!(out.status.success(), "{cmd}: {}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines of a terminal transcript as they end up on screen: each `\n`-terminated
/// piece, after the last carriage return (the bar goes back to the line's start before
/// a line is printed), without escape sequences. A line printed while the bar is up
/// keeps the bar's text in front of it, or loses its start to a redraw.
fn screen_lines(transcript: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pieces: Vec<&str> = transcript.split('\n').collect();
    pieces.pop(); // what follows the last newline: the bar's last frame, cleared
    for piece in pieces {
        let piece = piece.strip_suffix('\r').unwrap_or(piece);
        let last = piece.rsplit('\r').next().unwrap_or(piece);
        lines.push(strip_escapes(last));
    }
    lines
}

fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Whether the bar was drawn at all in a transcript (so a test that finds the lines
/// intact has tested something).
fn bar_was_drawn(transcript: &str) -> bool {
    transcript.contains("\x1b[2K") && transcript.contains("files")
}

#[test]
fn hash_lines_stay_whole_under_the_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let count = 3000;
    tree(dir.path(), count);
    let bin = env!("CARGO_BIN_EXE_spate");
    let transcript = on_terminal(
        dir.path(),
        &format!("{bin} hash -a blake3 -a sha256 -a md5 -a sha1 d"),
    );
    assert!(bar_was_drawn(&transcript), "no bar in {transcript:.300}");
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for line in screen_lines(&transcript) {
        // `ALGO (d/sK/fN) = HEX`
        let (algo, rest) = line
            .split_once(" (")
            .unwrap_or_else(|| panic!("torn: {line:?}"));
        let (path, hex) = rest
            .split_once(") = ")
            .unwrap_or_else(|| panic!("torn: {line:?}"));
        assert!(
            ["BLAKE3", "SHA256", "MD5", "SHA1"].contains(&algo),
            "torn: {line:?}"
        );
        let want = match algo {
            "BLAKE3" | "SHA256" => 64,
            "SHA1" => 40,
            _ => 32,
        };
        assert!(
            hex.len() == want && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "torn: {line:?}"
        );
        *seen
            .entry((algo.to_string(), path.to_string()))
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 4 * count, "every file, every digest");
    assert!(seen.values().all(|&n| n == 1), "each line exactly once");
}

#[test]
fn check_and_list_lines_stay_whole_under_the_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let count = 1000;
    tree(dir.path(), count);
    spate_cmd(dir.path())
        .args(["hash", "-o", "m.b3", "d"])
        .assert()
        .success();
    let bin = env!("CARGO_BIN_EXE_spate");
    let transcript = on_terminal(dir.path(), &format!("{bin} check m.b3"));
    assert!(bar_was_drawn(&transcript), "no bar in {transcript:.300}");
    let lines = screen_lines(&transcript);
    let ok: Vec<&String> = lines.iter().filter(|l| l.ends_with(": OK")).collect();
    assert_eq!(
        ok.len(),
        count,
        "{:?}",
        lines.iter().find(|l| !l.ends_with(": OK"))
    );
    for line in &ok {
        assert!(line.starts_with("d/s"), "torn: {line:?}");
    }

    let tar = StdCommand::new("tar")
        .args(["-cf", "d.tar", "d"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(tar.success());
    let listed = StdCommand::new("tar")
        .args(["-tvf", "d.tar"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let want = String::from_utf8(listed.stdout).unwrap();
    let transcript = on_terminal(dir.path(), &format!("{bin} list d.tar"));
    let got = screen_lines(&transcript);
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(
        got, want,
        "spate list on a terminal prints tar -tv's lines, whole"
    );
}

#[test]
fn the_bar_says_counting_before_it_has_a_total_and_never_shows_0_b_of_0_b() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 1000);
    let bin = env!("CARGO_BIN_EXE_spate");
    let transcript = on_terminal(dir.path(), &format!("{bin} hash d > /dev/null"));
    assert!(bar_was_drawn(&transcript), "no bar in {transcript:.300}");
    assert!(!transcript.contains("0 B/0 B"), "{transcript}");
    let first_frame = strip_escapes(transcript.split('\r').find(|f| !f.is_empty()).unwrap());
    assert!(
        first_frame.contains("counting…"),
        "the first frame has no total yet: {first_frame:?}"
    );
}

/// `spate: progress: ...` lines of a plain run, the last one (`... done, ...`) apart.
fn plain_lines(stderr: &str) -> (Vec<&str>, &str) {
    let mut lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("spate: progress: "))
        .collect();
    let last = lines.pop().expect("a last progress line");
    (lines, last)
}

/// The `DONE/TOTAL (P%)` byte figures of a plain line with a total.
fn total_of(line: &str) -> Option<&str> {
    let (_, after) = line.split_once(" files, ")?;
    let (bytes, _) = after.split_once(" (")?;
    let (_, total) = bytes.split_once('/')?;
    Some(total)
}

#[test]
fn plain_progress_prints_well_formed_lines_and_a_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let count = 1500;
    let bytes = tree(dir.path(), count);
    let out = spate_cmd(dir.path())
        .args(["hash", "--progress=plain", "-a", "sha256", "-a", "md5", "d"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (lines, last) = plain_lines(&stderr);
    assert!(
        !lines.is_empty(),
        "at least one line before the end: {stderr}"
    );
    for line in &lines {
        let counting = line.contains(" counting… ") && !line.contains('%');
        let known = line.contains(" files, ") && line.contains("%), ") && line.contains("ETA");
        assert!(counting || known, "{line}");
        assert!(line.contains("/s"), "a rate: {line}");
    }
    let want = format!(
        " done, {},{:03} files, {} (",
        count / 1000,
        count % 1000,
        human(bytes)
    );
    assert!(last.contains(&want), "{last} lacks {want}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        2 * count
    );
}

#[test]
fn pack_progress_is_against_the_whole_tree_from_the_first_total() {
    let dir = tempfile::tempdir().unwrap();
    // Many more files than pack keeps in flight, so a walk that only counted what it
    // had handed on would show a total a few files ahead of what is done.
    let bytes = tree(dir.path(), 1500);
    let out = spate_cmd(dir.path())
        .args(["pack", "--progress=plain", "-o", "x.tar.zst", "d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (lines, last) = plain_lines(&stderr);
    let whole = human(bytes);
    assert!(last.contains(&format!(", {whole} (")), "{last}");
    for line in lines {
        if let Some(total) = total_of(line) {
            assert_eq!(total, whole, "a total short of the tree: {line}");
            assert!(line.contains("/1,500 files"), "{line}");
        } else {
            assert!(line.contains("counting…"), "{line}");
        }
    }
}

#[test]
fn bar_without_a_terminal_falls_back_to_plain_and_quiet_hides_only_the_default() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 50);
    let stderr_with = |args: &[&str]| {
        let out = spate_cmd(dir.path()).args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let bar = stderr_with(&["hash", "--progress=bar", "d"]);
    assert!(
        bar.contains("spate: progress: ") && bar.contains(" done, 50 files"),
        "{bar}"
    );
    let quiet = stderr_with(&["hash", "-q", "--progress=plain", "d"]);
    assert!(quiet.contains(" done, 50 files"), "{quiet}");
    assert_eq!(stderr_with(&["hash", "-q", "d"]), "");
    assert_eq!(
        stderr_with(&["hash", "d"]),
        "",
        "auto shows nothing off a terminal"
    );
    assert_eq!(stderr_with(&["hash", "--progress=none", "d"]), "");
}

/// Entries `tar -t` lists in an archive.
fn entries_in(dir: &Path, archive: &str) -> usize {
    let out = StdCommand::new("tar")
        .args(["-tf", archive])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

/// The bytes `cmd` writes on stdout.
fn output_len(dir: &Path, cmd: &str, args: &[&str]) -> u64 {
    let out = StdCommand::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.len() as u64
}

#[test]
fn pack_stats_gives_the_ratio_as_zstd_does() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 300);
    let out = spate_cmd(dir.path())
        .args(["pack", "--stats", "-o", "x.tar.zst", "d"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("spate: x.tar.zst: "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let archive = std::fs::metadata(dir.path().join("x.tar.zst"))
        .unwrap()
        .len();
    let tar = output_len(dir.path(), "zstd", &["-dc", "x.tar.zst"]);
    let ratio = format!("{:.2}%", archive as f64 * 100.0 / tar as f64);
    assert!(
        line.contains(&format!(": {ratio} (")),
        "{line} lacks {ratio}"
    );
    let entries = entries_in(dir.path(), "x.tar.zst");
    assert!(line.contains(&format!(", {entries} entries in ")), "{line}");
    // Without --stats and off a terminal, nothing.
    let quiet = spate_cmd(dir.path())
        .args(["pack", "-o", "y.tar.zst", "d"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(quiet.stderr).unwrap(), "");
}

#[test]
fn unpack_shows_progress_and_a_summary_of_a_gnu_tar_archive() {
    let dir = tempfile::tempdir().unwrap();
    let data = tree(dir.path(), 400);
    let tar = StdCommand::new("tar")
        .args(["--zstd", "-cf", "d.tar.zst", "d"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(tar.success());
    let entries = entries_in(dir.path(), "d.tar.zst");
    let out = spate_cmd(dir.path())
        .args([
            "unpack",
            "--stats",
            "--progress=plain",
            "d.tar.zst",
            "-C",
            "out",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (lines, last) = plain_lines(&stderr);
    let archive = std::fs::metadata(dir.path().join("d.tar.zst"))
        .unwrap()
        .len();
    let size = human(archive);
    for line in lines {
        assert!(
            line.contains(" entries, ") && line.contains(&format!("/{size} (")),
            "{line}"
        );
    }
    assert!(
        last.contains(&format!(" done, {entries} entries, {size} (")),
        "{last}"
    );
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("spate: d.tar.zst: "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let want = format!(
        "spate: d.tar.zst: {entries} entries, {} (from {size}) in ",
        human(data)
    );
    assert!(summary.starts_with(&want), "{summary} is not {want}…");
}

/// `humansize`'s binary rendering: two decimals at most, trailing zeros dropped.
fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {}", units[unit])
}

#[test]
fn bench_tree_plain_progress_counts_with_its_own_walk() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 200);
    let out = spate_cmd(dir.path())
        .args(["bench", "--tree", "d", "--progress=plain"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (_, last) = plain_lines(&stderr);
    assert!(last.contains(" done, 200 files, "), "{last}");
}

#[test]
fn list_from_standard_input_has_no_total_to_show() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 300);
    let tar = StdCommand::new("tar")
        .args(["--zstd", "-cf", "d.tar.zst", "d"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(tar.success());
    let entries = entries_in(dir.path(), "d.tar.zst");
    let archive = std::fs::read(dir.path().join("d.tar.zst")).unwrap();
    let out = spate_cmd(dir.path())
        .args(["list", "--progress=plain", "-"])
        .write_stdin(archive.clone())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (lines, last) = plain_lines(&stderr);
    for line in lines {
        assert!(
            line.contains(" entries, ") && line.contains(" read, ") && !line.contains('%'),
            "{line}"
        );
    }
    let want = format!(
        " done, {entries} entries, {} (",
        human(archive.len() as u64)
    );
    assert!(last.contains(&want), "{last} lacks {want}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        entries
    );
}

/// The files `spate hash --shard SHARD d` hashes, and their bytes.
fn shard_files(dir: &Path, shard: &str) -> (usize, u64) {
    let out = spate_cmd(dir)
        .args(["hash", "--shard", shard, "d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(_, n)| n)
        .collect();
    let bytes = names
        .iter()
        .map(|n| std::fs::metadata(dir.join(n)).unwrap().len())
        .sum();
    (names.len(), bytes)
}

#[test]
fn pack_shard_progress_and_stats_count_only_the_shards_files() {
    let dir = tempfile::tempdir().unwrap();
    let whole = tree(dir.path(), 600);
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let (files, bytes) = shard_files(dir.path(), &shard);
        assert!(bytes > 0 && bytes < whole, "shard {shard} splits nothing");
        let part = format!("part-{k}.tar.zst");
        let out = spate_cmd(dir.path())
            .args([
                "pack",
                "--progress=plain",
                "--stats",
                "--shard",
                &shard,
                "-o",
                &part,
                "d",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let (lines, last) = plain_lines(&stderr);
        let want = format!(" done, {files} files, {} (", human(bytes));
        assert!(last.contains(&want), "shard {shard}: {last} lacks {want}");
        for line in lines {
            if let Some(total) = total_of(line) {
                assert_eq!(total, human(bytes), "shard {shard}: {line}");
                assert!(line.contains(&format!("/{files} files")), "{line}");
            }
        }
        // --stats: the entries this shard's archive holds, as tar lists them.
        let entries = entries_in(dir.path(), &part);
        let summary = stderr
            .lines()
            .find(|l| l.starts_with(&format!("spate: {part}: ")))
            .unwrap_or_else(|| panic!("no summary in {stderr}"));
        assert!(
            summary.contains(&format!(", {entries} entries in ")),
            "shard {shard}: {summary}"
        );
    }
}
