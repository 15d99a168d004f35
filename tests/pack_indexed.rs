//! The indexed `.tar.zst` that `spate pack` writes by default: plain tools (GNU tar,
//! `zstd -dc`) read it exactly as they read a plain stream of the same tree, and its
//! seek table and table of contents are what the README's byte layout says, read here
//! by a decoder written from that layout (not from spate's own reader).

mod common;

use std::ffi::{OsStr, OsString};
use std::io::Write;
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

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
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
    /// The table of contents' skippable frame: its content (after magic and size).
    toc: Vec<u8>,
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
    Layout {
        frames,
        toc: archive[at + 8..table_at].to_vec(),
    }
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
