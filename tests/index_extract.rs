//! `spate unpack X.tar.zst MEMBER` from the index, frame by frame: a member is read
//! and decompressed from the start of its frame only as far as it goes, and what that
//! leaves unchecked (the frame's checksum, which covers the whole frame) is made up for
//! by the member's BLAKE3 from the table of contents.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use common::{index_writer, reads_of, set_mtime, stderr_of};

fn spate(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    common::spate(dir, &args)
}

/// GNU tar in `dir`, which must succeed.
fn gnu_tar(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("tar")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("GNU tar");
    assert!(out.status.success(), "tar failed: {}", stderr_of(&out));
    out
}

/// About 30 MiB: in each of 20 directories two incompressible 640 KiB files and 60
/// text files, so that frames are mostly incompressible (their compressed size is
/// about their 4 MiB of input) and a member is small beside its frame.
fn make_tree(root: &Path) {
    for d in 0..20 {
        for f in 0..2 {
            let data = common::bytes(640 << 10, (d * 10 + f) as u64);
            common::write(&root.join(format!("d{d:02}/blob{f}.bin")), &data);
        }
        for f in 0..60 {
            let text = format!("directory {d} file {f}\n").repeat(20 + f);
            common::write(&root.join(format!("d{d:02}/t{f:03}.txt")), text.as_bytes());
        }
    }
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        set_mtime(entry.unwrap().path(), 1_600_000_000, 0);
    }
}

/// One data frame as the seek table gives it, placed in the file and the tar stream.
#[derive(Debug, Clone, Copy)]
struct Frame {
    c_offset: u64,
    c_size: u64,
    d_offset: u64,
    d_size: u64,
}

/// The data frames of an indexed archive, from its seek table.
fn frames_of(archive: &[u8]) -> Vec<Frame> {
    let (_, seek_at, _) = index_writer::layout(archive);
    let word = |at: usize| u64::from(u32::from_le_bytes(archive[at..at + 4].try_into().unwrap()));
    let count = word(archive.len() - 9) as usize;
    let (mut c_offset, mut d_offset) = (0, 0);
    (0..count)
        .map(|i| {
            let at = seek_at + 8 + i * 12;
            let frame = Frame {
                c_offset,
                c_size: word(at),
                d_offset,
                d_size: word(at + 4),
            };
            c_offset += frame.c_size;
            d_offset += frame.d_size;
            frame
        })
        .collect()
}

/// The archive's tar stream, as `zstd -dc` gives it.
fn tar_stream(dir: &Path, archive: &str) -> Vec<u8> {
    let out = Command::new("zstd")
        .current_dir(dir)
        .args(["-dc", archive])
        .output()
        .expect("zstd");
    assert!(out.status.success(), "{}", stderr_of(&out));
    out.stdout
}

/// Bytes of `reads` that fall in `frame` (a read of unknown offset counts whole).
fn read_in(reads: &[(Option<u64>, u64)], frame: &Frame) -> u64 {
    reads
        .iter()
        .map(|&(offset, len)| match offset {
            None => len,
            Some(at) => {
                let end = (at + len).min(frame.c_offset + frame.c_size);
                end.saturating_sub(at.max(frame.c_offset))
            }
        })
        .sum()
}

/// A member that starts a data frame, and the one that ends the frame before it.
struct Cut {
    frame: usize,
    first: String,
    last_before: String,
}

fn cuts(tar: &[u8], frames: &[Frame]) -> Vec<Cut> {
    let members = index_writer::members_of(tar).unwrap();
    let name = |i: usize| String::from_utf8(members[i].name.clone()).unwrap();
    // The last frame holds only the end-of-archive blocks.
    (1..frames.len() - 1)
        .filter_map(|k| {
            let i = members
                .iter()
                .position(|m| m.header_at == frames[k].d_offset)?;
            (members[i].entry_type == b'0' && members[i - 1].entry_type == b'0').then(|| Cut {
                frame: k,
                first: name(i),
                last_before: name(i - 1),
            })
        })
        .collect()
}

#[test]
fn a_member_is_read_only_as_far_as_its_frame_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_tree(&dir.join("src"));
    let out = spate(dir, &["pack", "-o", "big.tar.zst", "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let archive = std::fs::read(dir.join("big.tar.zst")).unwrap();
    let frames = frames_of(&archive);
    assert!(frames.len() >= 5, "{frames:?}");
    let tar = tar_stream(dir, "big.tar.zst");
    let cuts = cuts(&tar, &frames);
    assert!(!cuts.is_empty(), "no frame starts with a file");
    for (n, cut) in cuts.iter().enumerate() {
        let frame = &frames[cut.frame];
        let before = &frames[cut.frame - 1];
        // At the start of its frame: a small part of the frame is read, and nothing of
        // any other frame.
        let dest = format!("first{n}");
        let reads = reads_of(
            dir,
            "big.tar.zst",
            &["unpack", "big.tar.zst", &cut.first, "-C", &dest],
        );
        let inside = read_in(&reads, frame);
        assert!(
            inside > 0 && inside < frame.c_size / 2,
            "{}: read {inside} bytes of its {} byte frame",
            cut.first,
            frame.c_size
        );
        for (k, other) in frames.iter().enumerate().filter(|&(k, _)| k != cut.frame) {
            assert_eq!(read_in(&reads, other), 0, "{}: read frame {k}", cut.first);
        }
        // At the end of its frame: the whole frame is read (and checked), once.
        let dest_last = format!("last{n}");
        let args = ["unpack", "big.tar.zst", &cut.last_before, "-C", &dest_last];
        let reads = reads_of(dir, "big.tar.zst", &args);
        assert_eq!(
            read_in(&reads, before),
            before.c_size,
            "{}",
            cut.last_before
        );
        assert_eq!(read_in(&reads, frame), 0, "{}", cut.last_before);
        // What is extracted is what GNU tar extracts.
        for (name, dest) in [(&cut.first, &dest), (&cut.last_before, &dest_last)] {
            let theirs = gnu_tar(dir, &["-xOf", "big.tar.zst", name]).stdout;
            assert!(theirs.len() > 100, "{name}");
            assert!(
                std::fs::read(dir.join(dest).join(name)).unwrap() == theirs,
                "{name}"
            );
            let ours = spate(dir, &["unpack", "-O", "big.tar.zst", name]);
            assert!(ours.status.success(), "{}", stderr_of(&ours));
            assert!(ours.stdout == theirs, "{name}: -O differs from tar -xO");
        }
    }
    // A frame's offsets in the tar stream are what the seek table says.
    assert_eq!(
        frames.last().map(|f| f.d_offset + f.d_size),
        Some(tar.len() as u64)
    );
}

/// `archive` with the first occurrence of `from` in the tar stream's frame `k` replaced
/// by `to` (of the same length), the frame recompressed and the seek table made to
/// agree: a sound archive whose table of contents still has the old member's digest.
fn with_data_changed(archive: &[u8], tar: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let frames = frames_of(archive);
    let at = tar.windows(from.len()).position(|w| w == from).unwrap();
    let k = frames
        .iter()
        .position(|f| (f.d_offset..f.d_offset + f.d_size).contains(&(at as u64)))
        .unwrap();
    let frame = frames[k];
    let mut data = tar[frame.d_offset as usize..(frame.d_offset + frame.d_size) as usize].to_vec();
    let inside = at - frame.d_offset as usize;
    data[inside..inside + to.len()].copy_from_slice(to);
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    std::io::Write::write_all(&mut encoder, &data).unwrap();
    let packed = encoder.finish().unwrap();
    let start = frame.c_offset as usize;
    let mut out = archive[..start].to_vec();
    out.extend_from_slice(&packed);
    out.extend_from_slice(&archive[start + frame.c_size as usize..]);
    let (_, seek_at, _) = index_writer::layout(&out);
    let entry = seek_at + 8 + k * 12;
    out[entry..entry + 4].copy_from_slice(&(packed.len() as u32).to_le_bytes());
    let sum = xxhash_rust::xxh64::xxh64(&data, 0) as u32;
    out[entry + 8..entry + 12].copy_from_slice(&sum.to_le_bytes());
    out
}

#[test]
fn a_member_whose_data_is_not_what_the_table_hashed_is_not_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for f in 0..40 {
        let text = format!("file {f:02} says hello\n").repeat(30);
        common::write(&dir.join(format!("src/f{f:02}.txt")), text.as_bytes());
    }
    let out = spate(dir, &["pack", "-o", "good.tar.zst", "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let good = std::fs::read(dir.join("good.tar.zst")).unwrap();
    let tar = tar_stream(dir, "good.tar.zst");
    let bad = with_data_changed(&good, &tar, b"file 25 says hello", b"file 25 says HELLO");
    std::fs::write(dir.join("bad.tar.zst"), &bad).unwrap();
    // To zstd and GNU tar it is a sound archive, with other contents.
    let theirs = gnu_tar(dir, &["-xOf", "bad.tar.zst", "src/f25.txt"]).stdout;
    assert!(String::from_utf8_lossy(&theirs).contains("file 25 says HELLO"));
    // spate finds the member where the table says, but not with the digest it says:
    // nothing is extracted, and the run fails.
    let out = spate(dir, &["unpack", "bad.tar.zst", "src/f25.txt", "-C", "ours"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("spate: bad.tar.zst: truncated or corrupt in entry \"src/f25.txt\": ")
            && err.contains("does not match the BLAKE3 digest in the table of contents"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    let left: Vec<_> = walkdir::WalkDir::new(dir.join("ours"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.is_file())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let out = spate(dir, &["unpack", "-O", "bad.tar.zst", "src/f25.txt"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("does not match the BLAKE3 digest"),
        "{}",
        stderr_of(&out)
    );
    // A member before it in the same frame is sound, and its frame is not read to the
    // end: it is extracted, as GNU tar extracts it.
    let out = spate(dir, &["unpack", "bad.tar.zst", "src/f10.txt", "-C", "ours"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "");
    let theirs = gnu_tar(dir, &["-xOf", "bad.tar.zst", "src/f10.txt"]).stdout;
    assert!(std::fs::read(dir.join("ours/src/f10.txt")).unwrap() == theirs);
}

#[test]
fn a_member_without_a_digest_has_its_frame_checked_whole_before_it_is_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for f in 0..40 {
        let text = format!("file {f:02} says hello\n").repeat(30);
        common::write(&dir.join(format!("src/f{f:02}.txt")), text.as_bytes());
    }
    let out = spate(dir, &["pack", "--no-index", "-o", "plain.tar", "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // A table without digests, written from the layout.
    let tar = std::fs::read(dir.join("plain.tar")).unwrap();
    let members = index_writer::members_of(&tar).unwrap();
    let archive = index_writer::write(&tar, &members, 1 << 20);
    std::fs::write(dir.join("x.tar.zst"), &archive).unwrap();
    let out = spate(dir, &["unpack", "x.tar.zst", "src/f03.txt", "-C", "ours"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "");
    // Its frame's checksum in the seek table made wrong: found before anything is
    // written, so the table is not used and the archive is read whole.
    let mut bad = archive.clone();
    let (_, seek_at, sizes) = index_writer::layout(&bad);
    assert_eq!(sizes.len(), 1, "one frame");
    bad[seek_at + 8 + 8] ^= 0x01;
    std::fs::write(dir.join("sums.tar.zst"), &bad).unwrap();
    let out = spate(
        dir,
        &["unpack", "sums.tar.zst", "src/f03.txt", "-C", "theirs"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.starts_with("spate: sums.tar.zst: index ignored: ")
            && err.contains("fails its checksum")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("theirs/src/f03.txt")).unwrap(),
        std::fs::read(dir.join("src/f03.txt")).unwrap()
    );
}

#[test]
fn a_selection_of_more_headers_than_are_kept_extracts_what_gnu_tar_extracts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 9,000 members: more header blocks (4.4 MiB) than the check keeps for the
    // extraction, so that most are read from their frames a second time.
    for d in 0..30 {
        for f in 0..300 {
            let name = format!("src/d{d:02}/f{f:03}");
            common::write(&dir.join(&name), name.as_bytes());
        }
    }
    let out = spate(dir, &["pack", "-o", "many.tar.zst", "src"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    for (filter, dest) in [("*", "all"), ("src/d1*", "some")] {
        let out = spate(dir, &["unpack", "many.tar.zst", filter, "-C", dest]);
        assert!(out.status.success(), "{filter}: {}", stderr_of(&out));
        assert_eq!(stderr_of(&out), "", "{filter}");
        let theirs = format!("{dest}-tar");
        std::fs::create_dir(dir.join(&theirs)).unwrap();
        gnu_tar(
            dir,
            &["-xf", "many.tar.zst", "-C", &theirs, "--wildcards", filter],
        );
        let listing = |root: &str| -> Vec<(String, Vec<u8>)> {
            let mut files: Vec<_> = walkdir::WalkDir::new(dir.join(root))
                .into_iter()
                .map(|e| e.unwrap().into_path())
                .filter(|p| p.is_file())
                .map(|p| {
                    let name = p
                        .strip_prefix(dir.join(root))
                        .unwrap()
                        .display()
                        .to_string();
                    (name, std::fs::read(&p).unwrap())
                })
                .collect();
            files.sort();
            files
        };
        let ours = listing(dest);
        assert_eq!(
            ours.len(),
            if filter == "*" { 9000 } else { 3000 },
            "{filter}"
        );
        assert!(ours.iter().all(|(name, data)| *data == name.as_bytes()));
        assert!(ours == listing(&theirs), "{filter}: differs from GNU tar");
    }
}
