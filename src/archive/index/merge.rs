//! `spate merge` of indexed archives (the parts `spate pack --shard K/N` writes): one
//! indexed archive whose tar stream is the parts' streams one after another, as
//! `tar --concatenate` joins archives, written without recompressing anything.
//!
//! Each part's data frames are copied byte for byte, except its end: the two zero
//! blocks that end a tar stream must not end up between two parts' members (GNU tar
//! would stop reading there). Pack puts them in a frame of their own, which is simply
//! left out; a part written otherwise has the frame that holds its last member's end
//! decompressed, cut there and compressed again (one frame). One fresh frame with the
//! end blocks closes the merged stream, and the table of contents (every part's
//! entries, their offsets moved by what came before) and the seek table are written
//! anew. The output is a temporary file renamed at the end.
//!
//! Nothing is decompressed to be verified on the way (that would cost what a merge
//! saves): `spate check` verifies the result, frame checksums and member digests.
//! What merge does check is what it relies on: each part's index, and that the bytes
//! it leaves out after a part's last member are zeros.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::format::{self, Frame, Toc, TocEntry};
use super::read::{FrameReader, checksum, read_frame};
use super::{Found, Index, read_index};
use crate::archive::codec::Compression;
use crate::archive::unpack::header::{Kind, short_cause};
use crate::output::{Cleanup, Output};
use crate::progress::Progress;
use crate::report::Reporter;

/// Bytes of the end-of-archive marker pack writes (two zero blocks, as the `tar`
/// crate ends a stream).
const END_BLOCKS: usize = 1024;
/// Bytes copied at a time.
const COPY_CHUNK: usize = 1 << 20;

/// True when `path` is an archive rather than a manifest: it starts with a zstd frame
/// or ends with a seek table. `spate merge` tells its inputs apart this way.
pub fn is_archive(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    if file.read_exact_at(&mut magic, 0).is_ok() && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        return true;
    }
    matches!(read_index(&file), Ok(Found::Indexed(_) | Found::Broken(_)))
}

/// One input archive.
struct Part {
    path: PathBuf,
    file: Arc<File>,
    index: Index,
    /// Where its last member's data ends in its tar stream: what is copied.
    members_end: u64,
    /// Where the directories after its last file start, when they start a frame
    /// (`pack --shard` writes them so); else `members_end`.
    dirs_at: u64,
}

/// Merges `inputs` (indexed archives) into `output` (`None`: standard output).
/// `Ok(true)` on success; anything wrong with an input is an error (exit 2), before
/// the output exists under its name.
pub fn run(
    inputs: &[PathBuf],
    output: Option<&Path>,
    quiet: bool,
    cleanup: &Arc<Cleanup>,
) -> Result<bool> {
    let parts = inputs
        .iter()
        .map(|path| Part::open(path))
        .collect::<Result<Vec<_>>>()?;
    let reporter = Reporter::new(Progress::hidden());
    let repeated = repeated_names(&parts);
    if repeated > 0 && !quiet {
        let (n, s) = if repeated == 1 {
            ("name", "s")
        } else {
            ("names", "")
        };
        reporter.say(&format!(
            "{repeated} member {n} appear{s} in more than one part; all are kept, as \
             tar --concatenate keeps them (extraction leaves the last one)"
        ));
    }
    let mut out = Output::open(output, cleanup)?;
    let name = out.describe();
    let level = Compression::Zstd.default_level();
    let mut merged = Merged::default();
    // Every part's files first, then every part's trailing directories: extracting
    // a file into a directory changes its mtime, so directories come last, as in
    // each shard.
    for part in &parts {
        merged.append(part, (0, part.dirs_at), &mut out, level)?;
    }
    for part in &parts {
        merged.append(part, (part.dirs_at, part.members_end), &mut out, level)?;
    }
    merged
        .end(&mut out, level)
        .with_context(|| format!("writing {name}"))?;
    out.commit()?;
    Ok(true)
}

impl Part {
    fn open(path: &Path) -> Result<Part> {
        let shown = path.display();
        let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
        let index = match read_index(&file).with_context(|| format!("reading {shown}"))? {
            Found::Indexed(index) => index,
            Found::Plain => bail!(
                "{shown}: no table of contents: merge joins indexed .tar.zst archives (what \
                 spate pack writes by default), not plain streams"
            ),
            Found::Broken(why) => {
                bail!("{shown}: the table of contents disagrees with the archive ({why})")
            }
        };
        let file = Arc::new(file);
        let members_end =
            members_end(&file, &index).map_err(|why| anyhow::anyhow!("{shown}: {why}"))?;
        // What merge leaves out after the last member must be the end blocks
        // (zeros): anything else is data the table does not list, which would be lost.
        for frame in &index.frames {
            let d_end = frame.d_offset + u64::from(frame.d_size);
            if d_end <= members_end {
                continue;
            }
            let data = read_frame(&file, frame)
                .map_err(|e| anyhow::anyhow!("{shown}: {}", short_cause(&e)))?;
            let from = members_end.saturating_sub(frame.d_offset) as usize;
            if data[from..].iter().any(|&b| b != 0) {
                bail!(
                    "{shown}: data after its last member that its table of contents does \
                     not list"
                );
            }
        }
        let dirs_at = dirs_at(&index, members_end);
        Ok(Part {
            path: path.to_path_buf(),
            file,
            index,
            members_end,
            dirs_at,
        })
    }
}

/// Where the data of the last member in `index` ends (padded to its block), read from
/// its header: the table gives where a header starts, not how long its extensions are.
fn members_end(file: &Arc<File>, index: &Index) -> Result<u64, String> {
    let Some(last) = index.entries.last() else {
        return Ok(0);
    };
    let frame = index
        .frame_at(last.header_at)
        .ok_or("the table of contents places its last member beyond the data")?;
    let skip = last.header_at - index.frames[frame].d_offset;
    let reader = FrameReader::new(Arc::clone(file), index.frames.clone(), frame, skip);
    let mut archive = tar::Archive::new(reader);
    let mut members = archive.entries().map_err(|e| short_cause(&e))?;
    let member = match members.next() {
        Some(Ok(member)) => member,
        Some(Err(e)) => return Err(format!("its last member: {}", short_cause(&e))),
        None => return Err("no tar header where its table puts its last member".into()),
    };
    let data_at = last.header_at + member.raw_file_position();
    let end = data_at + member.size().div_ceil(512) * 512;
    if end > index.tar_len {
        return Err("its last member runs past the end of its data".into());
    }
    Ok(end)
}

/// Where the directories after the part's last other member start, when a frame
/// starts there; else `members_end` (no directories to move).
fn dirs_at(index: &Index, members_end: u64) -> u64 {
    let first = index
        .entries
        .iter()
        .rposition(|e| e.kind() != Kind::Dir)
        .map_or(0, |i| i + 1);
    match index.entries.get(first) {
        Some(dir) if index.frames.iter().any(|f| f.d_offset == dir.header_at) => dir.header_at,
        _ => members_end,
    }
}

/// How many members have a name that an earlier part already has.
fn repeated_names(parts: &[Part]) -> u64 {
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut repeated = 0;
    for part in parts {
        let mine: HashSet<&[u8]> = part
            .index
            .entries
            .iter()
            .map(|e| e.name.as_slice())
            .collect();
        repeated += mine.iter().filter(|name| seen.contains(*name)).count() as u64;
        seen.extend(mine);
    }
    repeated
}

/// The merged archive so far.
#[derive(Default)]
struct Merged {
    frames: Vec<Frame>,
    entries: Vec<TocEntry>,
    /// Archive bytes and tar stream bytes written.
    c_len: u64,
    d_len: u64,
}

impl Merged {
    /// Copies `part`'s frames holding tar stream bytes `from..to` (`from` a frame's
    /// start) and their entries; the frame `to` cuts is compressed again without what
    /// follows `to`.
    fn append(
        &mut self,
        part: &Part,
        (from, to): (u64, u64),
        out: &mut Output,
        level: i32,
    ) -> Result<()> {
        let shown = part.path.display();
        let d_base = self.d_len;
        for frame in &part.index.frames {
            let d_end = frame.d_offset + u64::from(frame.d_size);
            if frame.d_offset < from || frame.d_offset >= to {
                continue;
            }
            if d_end <= to {
                self.copy(part, frame, out)
                    .with_context(|| format!("copying {shown}"))?;
            } else {
                // The part's last member ends inside this frame: the frame without
                // what follows (checked to be zeros in `Part::open`).
                let data = read_frame(&part.file, frame)
                    .map_err(|e| anyhow::anyhow!("{shown}: {}", short_cause(&e)))?;
                self.compress(&data[..(to - frame.d_offset) as usize], out, level)?;
            }
        }
        let moved = part
            .index
            .entries
            .iter()
            .filter(|e| (from..to).contains(&e.header_at))
            .map(|e| TocEntry {
                header_at: e.header_at - from + d_base,
                ..e.clone()
            });
        self.entries.extend(moved);
        Ok(())
    }

    /// Copies one frame's bytes as they are.
    fn copy(&mut self, part: &Part, frame: &Frame, out: &mut Output) -> Result<()> {
        let mut buf = vec![0u8; COPY_CHUNK.min(frame.c_size as usize)];
        let mut at = frame.c_offset;
        let end = frame.c_offset + u64::from(frame.c_size);
        while at < end {
            let n = buf.len().min((end - at) as usize);
            part.file.read_exact_at(&mut buf[..n], at)?;
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        self.push(frame.c_size, frame.d_size, frame.checksum);
        Ok(())
    }

    /// Writes `data` as a frame of its own.
    fn compress(&mut self, data: &[u8], out: &mut Output, level: i32) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut compressor = zstd::bulk::Compressor::new(level)?;
        // As pack's frames: zstd's content checksum in each, for `zstd -t`.
        compressor.include_checksum(true)?;
        let packed = compressor.compress(data)?;
        out.write_all(&packed)?;
        self.push(
            u32::try_from(packed.len())?,
            u32::try_from(data.len())?,
            checksum(data),
        );
        Ok(())
    }

    fn push(&mut self, c_size: u32, d_size: u32, checksum: u32) {
        self.frames.push(Frame {
            c_offset: self.c_len,
            c_size,
            d_offset: self.d_len,
            d_size,
            checksum,
        });
        self.c_len += u64::from(c_size);
        self.d_len += u64::from(d_size);
    }

    /// The end-of-archive blocks in a frame of their own, then the two tables.
    fn end(mut self, out: &mut Output, level: i32) -> Result<()> {
        self.compress(&[0u8; END_BLOCKS], out, level)?;
        let toc = Toc {
            entries: self.entries,
            tar_len: self.d_len,
            frames: u32::try_from(self.frames.len())?,
        };
        out.write_all(&format::encode_toc(&toc, level)?)?;
        out.write_all(&format::encode_seek_table(&self.frames))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::IndexedWriter;
    use super::*;
    use crate::archive::unpack::header::Mtime;

    /// An indexed archive of `files` written by a writer that leaves the end blocks in
    /// the last members' frame (no `end_of_members`), as another writer might.
    fn part(path: &Path, files: &[(&str, &[u8])]) {
        let file = File::create(path).unwrap();
        let mut builder = tar::Builder::new(IndexedWriter::new(file, 3, 1 << 20).unwrap());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .get_mut()
                .begin_member(TocEntry {
                    name: name.as_bytes().to_vec(),
                    entry_type: b'0',
                    link: None,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    user: None,
                    group: None,
                    size: data.len() as u64,
                    mtime: Mtime { secs: 0, nanos: 0 },
                    device: None,
                    header_at: 0,
                    digest: Some(format::toc_digest(&blake3::hash(data))),
                })
                .unwrap();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn a_part_whose_end_blocks_share_its_last_frame_is_cut_there() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, out) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("ab"),
        );
        part(&a, &[("one", b"first part"), ("two", &[7u8; 700])]);
        part(&b, &[("three", b"second part")]);
        for p in [&a, &b] {
            let Found::Indexed(index) = read_index(&File::open(p).unwrap()).unwrap() else {
                panic!("no index");
            };
            assert_eq!(
                index.frames.len(),
                1,
                "members and end blocks share one frame"
            );
        }
        let cleanup = Arc::new(Cleanup::default());
        assert!(run(&[a, b], Some(&out), true, &cleanup).unwrap());
        let Found::Indexed(index) = read_index(&File::open(&out).unwrap()).unwrap() else {
            panic!("the merged archive has no index");
        };
        let names: Vec<&[u8]> = index.entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, [&b"one"[..], b"two", b"three"]);
        // One stream: the members of both parts, then one end, as tar reads it.
        let stream = zstd::stream::decode_all(File::open(&out).unwrap()).unwrap();
        assert_eq!(stream.len() as u64, index.tar_len);
        let mut archive = tar::Archive::new(&stream[..]);
        let mut read = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let at = entry.raw_header_position();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            read.push((entry.path_bytes().into_owned(), at, data));
        }
        assert_eq!(
            read.len(),
            3,
            "tar stops at no end blocks before the last part"
        );
        for ((name, at, data), e) in read.iter().zip(&index.entries) {
            assert_eq!((name, *at), (&e.name, e.header_at));
            assert_eq!(format::toc_digest(&blake3::hash(data)), e.digest.unwrap());
        }
        assert!(stream[stream.len() - 1024..].iter().all(|&b| b == 0));
    }
}
