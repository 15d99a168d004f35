//! The indexed `.tar.zst` that `spate pack` writes by default: plain tools (GNU tar,
//! `zstd -dc`) read it exactly as they read a plain stream of the same tree, and its
//! seek table and table of contents are what the README's byte layout says, read here
//! by a decoder written from that layout (not from spate's own reader; the table of
//! contents by `index_writer::read_toc`).

mod common;
use common::index_writer;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn pack(dir: &Path, args: &[&str]) -> Output {
    let mut all = os(&["pack"]);
    all.extend(os(args));
    let refs: Vec<&OsStr> = all.iter().map(OsString::as_os_str).collect();
    spate(dir, &refs)
}

fn pack_ok(dir: &Path, args: &[&str]) {
    let out = pack(dir, args);
    assert!(out.status.success(), "pack {args:?}: {}", stderr_of(&out));
}

/// Runs a peer tool in `dir`, feeding `input`, and returns its standard output; the
/// tool must succeed.
fn tool(dir: &Path, program: &str, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (installed by .ci/run): {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Written from a thread so that a large input cannot deadlock with the output.
        std::thread::spawn(move || stdin.write_all(&input));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Magic numbers from the zstd format and the seekable format's spec.
const ZSTD_MAGIC: u32 = 0xFD2F_B528;
const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5E;
const SEEKABLE_FOOTER_MAGIC: u32 = 0x8F92_EAB1;
const TOC_MAGIC: u32 = 0x184D_2A5B;

/// One seek-table entry, as the seekable format's spec lays it out.
#[derive(Debug, Clone, Copy)]
struct SeekEntry {
    c_size: u32,
    d_size: u32,
    checksum: u32,
}

/// An indexed archive taken apart by the byte layout alone.
struct Layout {
    /// Where each data frame starts in the file, with its seek-table entry.
    frames: Vec<(usize, SeekEntry)>,
}

/// Reads the seek table from the end of `archive` as facebook/zstd's
/// `contrib/seekable_format/zstd_seekable_compression_format.md` lays it out: the last
/// 9 bytes are the footer (frame count u32 LE, descriptor u8, magic 0x8F92EAB1 LE), and
/// the table is the skippable frame (magic 0x184D2A5E, size u32 LE) of 12-byte entries
/// (compressed size, decompressed size, checksum: u32 LE each) that ends with it. The
/// data frames fill the file from 0, back to back; the table of contents' skippable
/// frame fills the gap between the last of them and the seek table.
fn layout(archive: &[u8]) -> Layout {
    let len = archive.len();
    assert!(len >= 17, "too short for a seek table: {len} bytes");
    assert_eq!(
        u32_at(archive, len - 4),
        SEEKABLE_FOOTER_MAGIC,
        "footer magic"
    );
    let descriptor = archive[len - 5];
    assert_eq!(descriptor & 0x80, 0x80, "checksums are present");
    assert_eq!(descriptor & 0x7c, 0, "reserved bits are zero");
    let n = u32_at(archive, len - 9) as usize;
    let table_size = 8 + 12 * n + 9;
    let table_at = len - table_size;
    assert_eq!(
        u32_at(archive, table_at),
        SEEK_TABLE_MAGIC,
        "seek table magic"
    );
    assert_eq!(
        u32_at(archive, table_at + 4) as usize,
        12 * n + 9,
        "seek table frame size"
    );
    let mut frames = Vec::with_capacity(n);
    let mut at = 0usize;
    for i in 0..n {
        let e = table_at + 8 + 12 * i;
        let entry = SeekEntry {
            c_size: u32_at(archive, e),
            d_size: u32_at(archive, e + 4),
            checksum: u32_at(archive, e + 8),
        };
        frames.push((at, entry));
        at += entry.c_size as usize;
    }
    assert_eq!(
        u32_at(archive, at),
        TOC_MAGIC,
        "the TOC frame follows the data"
    );
    let toc_size = u32_at(archive, at + 4) as usize;
    assert_eq!(
        at + 8 + toc_size,
        table_at,
        "the seek table follows the TOC"
    );
    Layout { frames }
}

/// Checks every data frame against its seek-table entry: it is one whole zstd frame of
/// `c_size` bytes that decompresses (with the `zstd` CLI) to `d_size` bytes whose
/// XXH64 (seed 0, from `xxhsum -H64`) has `checksum` as its low 32 bits. Returns the
/// frames' decompressed bytes, concatenated.
fn verify_frames(dir: &Path, archive: &[u8], layout: &Layout) -> Vec<u8> {
    let mut tar = Vec::new();
    for (i, (at, entry)) in layout.frames.iter().enumerate() {
        let frame = &archive[*at..*at + entry.c_size as usize];
        assert_eq!(u32_at(frame, 0), ZSTD_MAGIC, "frame {i} is a zstd frame");
        let data = tool(dir, "zstd", &["-dc", "-q"], Some(frame));
        assert_eq!(data.len(), entry.d_size as usize, "frame {i}: d_size");
        let part = dir.join("frame.part");
        std::fs::write(&part, &data).unwrap();
        let line = tool(dir, "xxhsum", &["-H64", "frame.part"], None);
        let text = String::from_utf8_lossy(&line);
        let hex = text.split_whitespace().next().unwrap_or_default();
        // xxhsum prints the 64-bit value big-endian, as hex; its low 32 bits are the
        // last 8 digits.
        let low = u32::from_str_radix(&hex[hex.len() - 8..], 16).unwrap();
        assert_eq!(low, entry.checksum, "frame {i}: checksum ({text})");
        tar.extend_from_slice(&data);
    }
    tar
}

/// A tree with every kind of member, a long name, and a file large enough to span
/// several frames.
fn indexed_tree(root: &Path) {
    make_tree(root, true);
    write(&root.join("big.bin"), &bytes(21 << 20, 7));
    let long = root.join("l".repeat(150)).join("n".repeat(120));
    write(&long, b"long name\n");
    std::os::unix::fs::symlink("sizes/f1.bin", root.join("link")).unwrap();
    std::fs::hard_link(root.join("with space.txt"), root.join("hard link")).unwrap();
}

fn zstd_dc(dir: &Path, archive: &str) -> Vec<u8> {
    tool(dir, "zstd", &["-dc", "-q", archive], None)
}

#[test]
fn gnu_tar_and_zstd_read_an_indexed_archive_as_the_plain_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    indexed_tree(&dir.join("src"));
    let fixed = ["-q", "--reproducible", "--mtime", "1600000000"];
    pack_ok(
        dir,
        &[&fixed[..], &["-o", "indexed.tar.zst", "src"]].concat(),
    );
    pack_ok(
        dir,
        &[&fixed[..], &["--no-index", "-o", "plain.tar.zst", "src"]].concat(),
    );
    let indexed = std::fs::read(dir.join("indexed.tar.zst")).unwrap();
    let plain = std::fs::read(dir.join("plain.tar.zst")).unwrap();
    assert_eq!(u32_at(&indexed, indexed.len() - 4), SEEKABLE_FOOTER_MAGIC);
    assert_ne!(u32_at(&plain, plain.len() - 4), SEEKABLE_FOOTER_MAGIC);
    assert!(indexed != plain, "two different archives");
    let stream = zstd_dc(dir, "indexed.tar.zst");
    assert!(
        stream == zstd_dc(dir, "plain.tar.zst"),
        "zstd -dc gives the same tar stream"
    );
    let tv = |name: &str| tool(dir, "tar", &["-tvf", name, "--numeric-owner"], None);
    let listing = tv("indexed.tar.zst");
    assert_eq!(
        String::from_utf8_lossy(&listing),
        String::from_utf8_lossy(&tv("plain.tar.zst"))
    );
    // tar -xf on the file, and zstd -dc | tar -x: both give the tree back.
    std::fs::create_dir(dir.join("x")).unwrap();
    tool(dir, "tar", &["-xf", "indexed.tar.zst", "-C", "x"], None);
    std::fs::create_dir(dir.join("y")).unwrap();
    tool(dir, "tar", &["-xf", "-", "-C", "y"], Some(&stream));
    for file in files_below(&dir.join("src")) {
        let rel = file.strip_prefix(dir).unwrap();
        let want = std::fs::read(&file).unwrap();
        assert!(
            std::fs::read(dir.join("x").join(rel)).unwrap() == want,
            "{rel:?}"
        );
        assert!(
            std::fs::read(dir.join("y").join(rel)).unwrap() == want,
            "{rel:?}"
        );
    }
    assert_eq!(
        std::fs::read_link(dir.join("x/src/link")).unwrap(),
        Path::new("sizes/f1.bin")
    );
}

#[test]
fn a_decoder_written_from_the_seekable_spec_reads_every_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    indexed_tree(&dir.join("src"));
    pack_ok(dir, &["-q", "-o", "a.tar.zst", "src"]);
    let archive = std::fs::read(dir.join("a.tar.zst")).unwrap();
    let layout = layout(&archive);
    let stream = verify_frames(dir, &archive, &layout);
    assert!(stream == zstd_dc(dir, "a.tar.zst"), "frames are the stream");
    let toc = index_writer::read_toc(&archive);
    assert_eq!(toc.tar_len, stream.len() as u64);
    assert_eq!(toc.frames as usize, layout.frames.len());
    let names = tool(dir, "tar", &["-tf", "a.tar.zst"], None);
    assert_eq!(
        toc.members.len(),
        names
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    );
    // Every record points at its member's header: a ustar block, whose name field is
    // the member's name (or GNU's long-name marker for a name over 100 bytes).
    let mut starts = Vec::new();
    let mut at = 0u64;
    for (_, frame) in &layout.frames {
        starts.push(at);
        at += u64::from(frame.d_size);
    }
    for r in &toc.members {
        let block = &stream[r.header_at as usize..r.header_at as usize + 512];
        assert_eq!(&block[257..262], b"ustar", "{:?}", r.name);
        let field = &block[..block[..100].iter().position(|&b| b == 0).unwrap_or(100)];
        if r.name.len() > 100 {
            assert_eq!(field, b"././@LongLink");
        } else {
            assert_eq!(field, r.name.as_slice());
        }
    }
    // The big file's data spans several frames, small members share frames, and a
    // frame starts at a member's header unless the member before it is larger than
    // any frame target (1 MiB at least) or the frame holds only the end-of-archive
    // blocks.
    let big = toc
        .members
        .iter()
        .find(|r| r.name == b"src/big.bin")
        .unwrap();
    let end = big.header_at + 512 + big.size;
    let spanned = starts
        .iter()
        .zip(&layout.frames)
        .filter(|(s, (_, f))| **s < end && **s + u64::from(f.d_size) > big.header_at)
        .count();
    assert!(spanned >= 3, "big.bin spans {spanned} frames");
    assert!(
        layout.frames.len() < toc.members.len(),
        "members share frames"
    );
    let last = toc.members.last().unwrap();
    let members_end = last.header_at + 512 + last.size.div_ceil(512) * 512;
    for s in &starts {
        let Some(before) = toc.members.iter().rev().find(|r| r.header_at <= *s) else {
            panic!("a frame starts before the first member");
        };
        assert!(
            before.header_at == *s || before.size > 1 << 20 || *s >= members_end,
            "a frame starting at {s} cuts the small member {:?}",
            String::from_utf8_lossy(&before.name)
        );
    }
}

/// A `--manifest` file's digests by name: `HASH  NAME` lines, where a leading `\`
/// means the name is escaped (`\\`, `\n`, `\r`), as b3sum writes them.
fn manifest_digests(text: &[u8]) -> std::collections::BTreeMap<Vec<u8>, String> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let (escaped, line) = match line.strip_prefix(b"\\") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let hash = String::from_utf8_lossy(&line[..64]).into_owned();
        let raw = &line[66..];
        let mut name = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if escaped && raw[i] == b'\\' && i + 1 < raw.len() {
                name.push(match raw[i + 1] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    other => other,
                });
                i += 2;
            } else {
                name.push(raw[i]);
                i += 1;
            }
        }
        out.insert(name, hash);
    }
    out
}

#[test]
fn the_table_of_contents_agrees_with_b3sum_the_manifest_and_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    indexed_tree(&dir.join("src"));
    pack_ok(dir, &["-q", "--manifest", "m.b3", "-o", "a.tar.zst", "src"]);
    let archive = std::fs::read(dir.join("a.tar.zst")).unwrap();
    layout(&archive);
    let toc = index_writer::read_toc(&archive);
    // b3sum's own digests of every file, by path.
    let files = files_below(&dir.join("src"));
    let rel: Vec<_> = files
        .iter()
        .map(|f| f.strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    // The table keeps 16 bytes of each BLAKE3: what `b3sum --length 16` prints.
    let b3 = peer(dir, "b3sum", &["--length", "16"], &rel).stdout;
    let b3: std::collections::BTreeMap<String, String> = String::from_utf8_lossy(&b3)
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, p)| (p.to_string(), h.to_string()))
        .collect();
    let manifest = manifest_digests(&std::fs::read(dir.join("m.b3")).unwrap());
    let mut in_manifest = 0;
    let mut digested = 0;
    for r in &toc.members {
        let name = String::from_utf8_lossy(&r.name).into_owned();
        let path = dir.join(std::ffi::OsStr::from_bytes(&r.name));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(r.mtime, meta.mtime(), "{name}: mtime");
        assert_eq!(r.mode, meta.mode() & 0o7777, "{name}: mode");
        match r.entry_type {
            b'5' => assert!(meta.is_dir(), "{name}"),
            b'2' => assert_eq!(
                r.link.as_deref(),
                Some(std::fs::read_link(&path).unwrap().as_os_str().as_bytes())
            ),
            b'0' | b'1' => {
                assert_eq!(r.entry_type == b'0', r.size == meta.len(), "{name}: size");
                let hex: String = r
                    .digest
                    .unwrap_or_else(|| panic!("{name}: no digest"))
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                digested += 1;
                // b3sum escapes names with a newline or backslash; those are checked
                // through the manifest below.
                if let Some(want) = b3.get(&name) {
                    assert_eq!(&hex, want, "{name}: TOC digest vs b3sum --length 16");
                }
                // The manifest has the whole 32 bytes; the table their start.
                let whole = manifest.get(&r.name);
                assert!(
                    hex.len() == 32 && whole.is_some_and(|m| m.len() == 64 && m.starts_with(&hex)),
                    "{name}: TOC {hex} vs manifest {whole:?}"
                );
                in_manifest += 1;
            }
            other => panic!("{name}: unexpected type {other}"),
        }
    }
    assert_eq!(digested, files.len(), "every file has a digest");
    assert_eq!(in_manifest, files.len());
    assert_eq!(manifest.len(), files.len());
}

#[test]
fn indexed_archives_are_the_same_bytes_whatever_the_threads_backend_or_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    indexed_tree(&dir.join("src"));
    let fixed = ["-q", "--reproducible", "--mtime", "1600000000"];
    let runs: [(&str, &[&str]); 3] = [
        ("t1.tar.zst", &["--threads", "1", "--io", "uring"]),
        ("t2.tar.zst", &["--threads", "2", "--io", "threads"]),
        ("t5.tar.zst", &["--threads", "5"]),
    ];
    for (name, extra) in runs {
        pack_ok(dir, &[&fixed[..], extra, &["-o", name, "src"]].concat());
    }
    let one = std::fs::read(dir.join("t1.tar.zst")).unwrap();
    for (name, _) in &runs[1..] {
        assert!(std::fs::read(dir.join(name)).unwrap() == one, "{name}");
    }
    let out = pack(dir, &[&fixed[..], &["-o", "-", "src"]].concat());
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        out.stdout == one,
        "standard output gets the same indexed archive"
    );
    layout(&one);
}

#[test]
fn the_level_applies_to_the_frames_and_defaults_to_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Text that compresses, differently at each level.
    let text: String = (0..60_000)
        .map(|i| format!("line {} of {}\n", i * 7919 % 100_003, i % 97))
        .collect();
    write(&dir.join("src/a.txt"), text.as_bytes());
    write(&dir.join("src/b.txt"), &text.as_bytes()[..300_000]);
    pack_ok(dir, &["-q", "--level", "1", "-o", "l1.tar.zst", "src"]);
    pack_ok(dir, &["-q", "--level", "3", "-o", "l3.tar.zst", "src"]);
    pack_ok(dir, &["-q", "-o", "default.tar.zst", "src"]);
    let default = std::fs::read(dir.join("default.tar.zst")).unwrap();
    assert!(
        default == std::fs::read(dir.join("l3.tar.zst")).unwrap(),
        "the default is zstd's level 3"
    );
    pack_ok(dir, &["-q", "--level", "19", "-o", "l19.tar.zst", "src"]);
    let l1 = std::fs::read(dir.join("l1.tar.zst")).unwrap();
    let l19 = std::fs::read(dir.join("l19.tar.zst")).unwrap();
    let (a, b) = (layout(&l1), layout(&l19));
    let data = |l: &Layout| {
        l.frames
            .iter()
            .map(|(_, f)| u64::from(f.c_size))
            .sum::<u64>()
    };
    assert!(
        data(&b) < data(&a),
        "level 19 frames ({}) smaller than level 1 frames ({})",
        data(&b),
        data(&a)
    );
    assert!(zstd_dc(dir, "l1.tar.zst") == zstd_dc(dir, "l19.tar.zst"));
}

#[test]
fn other_compressions_and_no_index_write_plain_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..20 {
        write(
            &dir.join(format!("src/d{}/f{i}", i % 3)),
            &bytes(1000 * i, i as u64),
        );
    }
    for (name, extra) in [
        ("a.tar", &[][..]),
        ("a.tar.gz", &[][..]),
        ("a.tar.xz", &[][..]),
        ("a.tar.bz2", &[][..]),
        ("a.tar.zst", &["--no-index"][..]),
        ("b.tar.zst", &["--no-index", "--threads", "1"][..]),
    ] {
        pack_ok(dir, &[extra, &["-q", "-o", name, "src"]].concat());
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_ne!(
            u32_at(&bytes, bytes.len() - 4),
            SEEKABLE_FOOTER_MAGIC,
            "{name} {extra:?} has no seek table"
        );
        tool(dir, "tar", &["-tf", name], None);
    }
    // --no-index is today's single stream: libzstd's, one frame.
    let plain = std::fs::read(dir.join("a.tar.zst")).unwrap();
    let first = zstd::zstd_safe::find_frame_compressed_size(&plain).unwrap();
    assert_eq!(first, plain.len(), "one zstd frame");
}

#[test]
fn pack_help_says_what_the_default_tar_zst_is() {
    let tmp = tempfile::tempdir().unwrap();
    let out = spate(tmp.path(), &[OsStr::new("pack"), OsStr::new("--help")]);
    let help = String::from_utf8_lossy(&out.stdout);
    for words in ["--no-index", "indexed", "seek table", "zstd -dc | tar -x"] {
        assert!(
            help.contains(words),
            "pack --help mentions {words:?}:\n{help}"
        );
    }
}

/// Thousands of members, so the table has several blocks: names that share prefixes of
/// every length around the 8 bytes the encoder compares at a time, and runs of members
/// of one owner broken by another's, inside a block. GNU tar's listing of the archive
/// (in archive order, with owners) must be the table's, member for member, and the
/// head's frame count the seek table's (the table is encoded while the last frames
/// are still being compressed).
#[test]
fn a_table_of_several_blocks_lists_every_member_and_owner_as_gnu_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    for d in 0..3 {
        for i in 0..1700usize {
            // Shared prefixes of 0 to 22 bytes beyond the directory, then a suffix.
            let name = format!("{}{}", "abcdefgh".repeat(3)[..i % 23].to_owned(), i);
            let path = src.join(format!("d{d}")).join(name);
            write(&path, format!("{d} {i}\n").as_bytes());
            if i % 7 == 3 || (d == 1 && (900..1000).contains(&i)) {
                std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            }
        }
    }
    // Large enough for several frames, between the small files.
    write(&src.join("d1").join("zz-big.bin"), &bytes(13 << 20, 3));
    pack_ok(dir, &["-q", "-o", "a.tar.zst", "src"]);
    let archive = std::fs::read(dir.join("a.tar.zst")).unwrap();
    let frames = layout(&archive).frames;
    let toc = index_writer::read_toc(&archive);
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert_eq!(toc.frames as usize, frames.len(), "the head's frame count");
    assert!(
        toc.members.len() > 2 * toc.per_block,
        "{} members in blocks of {}",
        toc.members.len(),
        toc.per_block
    );
    let listing = tool(dir, "tar", &["-tvf", "a.tar.zst", "--numeric-owner"], None);
    let listing = String::from_utf8_lossy(&listing);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), toc.members.len());
    for (line, m) in lines.iter().zip(&toc.members) {
        let name = String::from_utf8_lossy(&m.name);
        // `-rw-r--r-- 65534/65534 5 2026-11-30 21:00 src/d0/abc12`
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[5], name, "{line}");
        assert_eq!(fields[1], format!("{}/{}", m.uid, m.gid), "{line}");
        assert_eq!(fields[2], m.size.to_string(), "{line}");
    }
    let nobody = toc.members.iter().filter(|m| m.uid == 65534).count();
    assert!(nobody > 700 && nobody < toc.members.len() - 700, "{nobody}");
}

/// The frames are compressed on threads that wait on a channel for the next frame
/// (the rayon pool before spun, calling `sched_yield` about 60 times a frame, taking
/// the cores the readers and the compression itself needed).
#[test]
fn compression_threads_wait_for_frames_without_spinning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    make_tree(&src, false);
    write(&src.join("big.bin"), &bytes(48 << 20, 5));
    let out = Command::new("strace")
        .args(["-f", "-c", "-o", "yields.txt", "-e", "trace=sched_yield"])
        .arg(env!("CARGO_BIN_EXE_spate"))
        .args(["pack", "-q", "--threads", "2", "-o", "a.tar.zst", "src"])
        .current_dir(dir)
        .output()
        .expect("strace (installed by .ci/run) runs spate");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let frames = layout(&std::fs::read(dir.join("a.tar.zst")).unwrap())
        .frames
        .len();
    assert!(frames >= 6, "{frames} frames");
    // `strace -c`'s table: `% time  seconds  usecs/call  calls  errors  syscall`.
    let counts = std::fs::read_to_string(dir.join("yields.txt")).unwrap();
    let yields: usize = counts
        .lines()
        .filter(|l| l.trim_end().ends_with(" sched_yield"))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        .sum();
    // std's channels may yield once in a while when a slot is being written as it is
    // read; spinning threads yield dozens of times per frame.
    assert!(
        yields < frames,
        "{yields} sched_yield calls for {frames} frames"
    );
}
