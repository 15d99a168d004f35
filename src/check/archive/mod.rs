//! `spate check X.tar.zst`: an archive given where a manifest is expected is verified
//! against its own table of contents, without writing anything.
//!
//! An argument is an archive by its content, not its name: a compressed stream's magic
//! number or a tar header in its first block (no manifest line can start that way).
//! An indexed `.tar.zst` has every member's BLAKE3 in its table: every data frame is
//! decompressed (on every core, a few frames ahead of the checker) with its checksum
//! verified, every member's header is compared with its table entry at the offset the
//! table gives, and every file's content is hashed and compared with the table's
//! digest. The verdicts go to check's own [`Reporter`], so the lines, `--quiet`,
//! `--json` and the exit status are those of a manifest check: `NAME: OK`, `NAME:
//! FAILED`, `NAME: ERROR frame 3 is damaged`.
//!
//! An archive without a table (GNU tar's, `--no-index`, gz/xz/bz2) has no digests to
//! compare with: it is read to the end, which proves that it decompresses and parses,
//! and a notice says that this is all that was checked. A table that disagrees with the
//! archive is a failure, reported, after which the archive is read to the end likewise.
//!
//! With `--audit DIR` the table (or, without one, a scan of the archive) becomes the
//! manifest of an ordinary `check --audit` ([`audit`]): the same lookups, walk and
//! verdicts, no second checker.

pub(super) mod audit;
mod frames;
mod scan;
mod stream;

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use super::report::{Policy, Reporter};
use super::verdict::Verdict;
use super::{CheckConfig, Listed};
use crate::archive::codec::Compression;
use crate::archive::index::{self, Found, Index, TocEntry};
use crate::archive::unpack::header::{Kind, Layout, Meta, short_cause};
use crate::error::ErrorKind;
use crate::hash::digest::{Algo, AlgoSet};
use crate::manifest::parse::Expected;
use crate::progress::Progress;
use frames::AheadFrames;
use stream::{Span, TarStream};

/// Why a member without a digest is UNVERIFIED.
const NO_DIGEST: &str = "no digest in the table of contents: the file changed, or could not be \
                         read whole, while it was packed (its archived bytes are intact)";

/// Bytes a file's content is hashed in.
const CHUNK: usize = 256 << 10;

/// True when `name` is an archive rather than a manifest, by its first bytes: a gzip,
/// zstd (or zstd skippable frame), xz or bzip2 magic number, or a tar header block.
/// Standard input, FIFOs and devices stay manifests: their first bytes cannot be
/// looked at without taking them from the manifest reader (or waiting for a writer).
pub(super) fn is_archive(name: &OsStr) -> bool {
    if name == "-" || !std::fs::metadata(name).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let Ok(file) = File::open(name) else {
        return false; // the manifest path reports why it cannot be opened
    };
    let mut head = Vec::with_capacity(512);
    if file.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    let skippable = head.len() >= 4 && head[1..4] == [0x2a, 0x4d, 0x18] && head[0] & 0xf0 == 0x50;
    let bzip2 =
        head.starts_with(b"BZh") && head.get(4..10) == Some(&[0x31, 0x41, 0x59, 0x26, 0x53, 0x59]);
    match Compression::from_magic(&head) {
        Compression::Gzip | Compression::Zstd | Compression::Xz => true,
        Compression::Bzip2 => bzip2,
        Compression::None => skippable || is_tar_header(&head),
    }
}

/// A ustar or GNU header whose checksum matches.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || &block[257..262] != b"ustar" {
        return false;
    }
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..512])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    tar::Header::from_byte_slice(&block[..512]).cksum().ok() == Some(sum)
}

/// Refuses what an archive argument cannot be checked with.
pub(super) fn refuse_unsupported(config: &CheckConfig, archives: usize) -> Result<()> {
    anyhow::ensure!(
        archives == config.manifests.len() || !config.audit.is_empty(),
        "archives and manifests cannot be checked in one run (without --audit): give \
         them to separate `spate check` runs"
    );
    anyhow::ensure!(
        config.update.is_none(),
        "--update writes the next manifest of a JSON manifest, not of an archive"
    );
    anyhow::ensure!(
        config.walk.shard.is_none() || !config.audit.is_empty(),
        "--shard selects manifest lines or audited files; an archive is verified whole"
    );
    anyhow::ensure!(
        config.algo.is_none_or(|a| a == Algo::Blake3),
        "an archive's table of contents holds BLAKE3 digests only"
    );
    Ok(())
}

/// Checks every archive of `config.manifests` (all of them archives). `Ok(true)` when
/// every member verified.
pub(super) fn run(config: &CheckConfig) -> Result<bool> {
    let started = Instant::now();
    let names: Vec<String> = config
        .manifests
        .iter()
        .map(|m| Path::new(m).display().to_string())
        .collect();
    let summarize = config.stats || std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = Progress::new(config.progress);
    let mut reporter = Reporter::new(
        config.verbosity,
        config.json,
        names.clone(),
        summarize,
        config.warn,
        progress.clone(),
    );
    for (number, name) in config.manifests.iter().enumerate() {
        check_one(number, Path::new(name), &progress, &mut reporter)?;
    }
    progress.finish();
    let policy = Policy {
        ignore_missing: config.ignore_missing,
        strict: config.strict,
        fail_on_change: config.fail_on_change,
    };
    // An archive of directories and links only has no file to verify, which is not
    // the "no checksum lines" failure of an empty manifest.
    reporter.finish_archives(started, policy)
}

/// Checks one archive.
fn check_one(
    number: usize,
    path: &Path,
    progress: &Progress,
    reporter: &mut Reporter,
) -> Result<()> {
    let shown = path.display().to_string();
    let file = File::open(path).with_context(|| format!("cannot open archive {shown}"))?;
    match index::read_index(&file).with_context(|| format!("reading {shown}"))? {
        Found::Indexed(index) => verify_indexed(number, path, file, index, progress, reporter),
        Found::Plain => {
            let scanned = scan::scan(path, progress, false, |_, _| {})?;
            match &scanned.error {
                Some(cause) => reporter.walk_error(path, ErrorKind::CorruptArchive, cause)?,
                None => reporter.notice(
                    path,
                    &format!(
                        "no table of contents (not an indexed .tar.zst): no digests to \
                         verify members against; it decompresses and reads to the end \
                         ({} members)",
                        scanned.members
                    ),
                )?,
            }
            Ok(())
        }
        Found::Broken(why) => {
            // A damaged or tampered table fails the check; the scan still says whether
            // the archive itself reads.
            reporter.walk_error(
                path,
                ErrorKind::CorruptArchive,
                &format!("the table of contents disagrees with the archive ({why}); reading it to the end instead"),
            )?;
            let scanned = scan::scan(path, progress, false, |_, _| {})?;
            if let Some(cause) = &scanned.error {
                reporter.walk_error(path, ErrorKind::CorruptArchive, cause)?;
            }
            Ok(())
        }
    }
}

/// Verifies every member of an indexed archive against its table entry, in order.
fn verify_indexed(
    number: usize,
    path: &Path,
    file: File,
    index: Index,
    progress: &Progress,
    reporter: &mut Reporter,
) -> Result<()> {
    progress.set_known_total(index.tar_len);
    let table = Arc::new(index.frames);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ahead = AheadFrames::start(Arc::new(file), Arc::clone(&table), threads);
    let mut stream = TarStream::new(ahead, Arc::clone(&table));
    let mut buf = vec![0u8; CHUNK];
    let entries = &index.entries;
    let mut shown = 0u64;
    for (i, entry) in entries.iter().enumerate() {
        let end = entries
            .get(i + 1)
            .map_or(index.tar_len, |next| next.header_at);
        let result = check_member(&mut stream, entry, end, &mut buf);
        // Whatever the tar reader made of a damaged frame's missing bytes, that frame
        // is the cause.
        let hit = stream.take_hit();
        let result = result.map_err(|cause| match hit {
            Some(number) => format!("in frame {number}, which is damaged"),
            None => cause,
        });
        stream.skip_to(end);
        report_bad_frames(&mut stream, &table, path, reporter)?;
        progress.advance(stream.done - shown);
        shown = stream.done;
        report_member(number, i, entry, result, reporter)?;
    }
    if entries.is_empty() {
        let result = zeros_until(&mut stream, index.tar_len, &mut buf);
        if let Err(cause) = result {
            reporter.walk_error(path, ErrorKind::CorruptArchive, &cause)?;
        }
    }
    // Frames after the last member (the end-of-archive blocks) are verified too.
    stream.skip_to(u64::MAX);
    report_bad_frames(&mut stream, &table, path, reporter)?;
    progress.advance(stream.done - shown);
    Ok(())
}

fn report_bad_frames(
    stream: &mut TarStream,
    table: &[index::Frame],
    path: &Path,
    reporter: &mut Reporter,
) -> Result<()> {
    for bad in stream.take_bad() {
        reporter.walk_error(
            path,
            ErrorKind::CorruptArchive,
            &format!("frame {} of {}: {}", bad.number, table.len(), bad.cause),
        )?;
    }
    Ok(())
}

/// Reports what became of one member: a verdict for a regular file with a digest,
/// an error line for any member whose header or bytes are wrong, nothing for a sound
/// directory or link (they have no content to verify).
fn report_member(
    number: usize,
    i: usize,
    entry: &TocEntry,
    result: Result<Option<blake3::Hash>, String>,
    reporter: &mut Reporter,
) -> Result<()> {
    let is_file = entry.kind() == Kind::File;
    let listed = Listed {
        name: entry.name.clone(),
        manifest: number,
        line: i as u64 + 1,
        expected: entry
            .digest
            .iter()
            .map(|d| Expected {
                algos: AlgoSet::one(Algo::Blake3),
                hex: hex(d),
            })
            .collect(),
        size: Some(entry.size),
        meta: None,
        found: None,
        key: 0,
    };
    let verdict = match result {
        Err(cause) if is_file => Verdict::Error(ErrorKind::CorruptArchive, cause),
        Err(cause) => {
            let name = Path::new(super::os(&entry.name));
            return reporter.walk_error(name, ErrorKind::CorruptArchive, &cause);
        }
        Ok(_) if !is_file => return Ok(()),
        Ok(computed) => match (entry.digest, computed) {
            // The table keeps the first 16 bytes of each BLAKE3.
            (Some(expected), Some(computed)) if index::toc_digest(&computed) == expected => {
                Verdict::Ok(AlgoSet::one(Algo::Blake3))
            }
            (Some(_), _) => Verdict::Failed,
            // A file the packer could not read whole and unchanged has no digest (GNU
            // tar's "file changed as we read it"): its bytes are as written, the frame
            // checksums say so, but nothing vouches for them being the file's.
            (None, _) => Verdict::Unverified(NO_DIGEST.into()),
        },
    };
    reporter.bytes(entry.size);
    reporter.file(&listed, &verdict)
}

/// Checks the member `entry` says starts at the stream's next byte and ends at `end`:
/// a tar header there that agrees with the entry, the file's content (hashed), and
/// nothing but zeros after it (its padding; after the last member, the end of the
/// archive). The cause in words when something is wrong.
fn check_member(
    stream: &mut TarStream,
    entry: &TocEntry,
    end: u64,
    buf: &mut [u8],
) -> Result<Option<blake3::Hash>, String> {
    // Bytes between the previous member and this one that the table does not account
    // for must be zeros; a table entry inside the previous member is out of place.
    if stream.at() > entry.header_at || end < entry.header_at {
        return Err(format!(
            "the table of contents puts it at offset {}, inside another member",
            entry.header_at
        ));
    }
    zeros_until(stream, entry.header_at, buf)?;
    let start = stream.at();
    let mut span = Span { stream, end };
    let (meta, computed) = {
        let mut archive = tar::Archive::new(&mut span);
        let mut members = archive.entries().map_err(|e| short_cause(&e))?;
        let mut member = match members.next() {
            Some(Ok(member)) => member,
            Some(Err(e)) => return Err(format!("at offset {start}: {}", short_cause(&e))),
            None => return Err(format!("no tar header at offset {start}")),
        };
        let meta = Meta::read(&mut member).map_err(|e| short_cause(&e))?;
        if let Some(what) = disagreement(&meta, entry) {
            return Err(format!(
                "the table of contents disagrees with the header at offset {start}: {what}"
            ));
        }
        if meta.kind == Kind::File && meta.layout != Layout::Plain {
            // A sparse file's data is not its content as stored: the tar reader's.
            let mut hasher = blake3::Hasher::new();
            let mut read = 0u64;
            loop {
                let n = member.read(buf).map_err(|e| short_cause(&e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                read += n as u64;
            }
            if read != meta.size {
                return Err(format!(
                    "cut short: {read} of {} bytes (the archive is truncated)",
                    meta.size
                ));
            }
            (meta, Some(hasher.finalize()))
        } else {
            (meta, None)
        }
    };
    // The tar reader reads no further than the header: the data starts here.
    let computed = match computed {
        None if meta.kind == Kind::File => {
            let mut hasher = blake3::Hasher::new();
            let data_end = span.stream.at().saturating_add(meta.size).min(end);
            let read = span
                .stream
                .hash_until(data_end, &mut hasher)
                .map_err(|e| short_cause(&e))?;
            if read != meta.size {
                return Err(format!(
                    "cut short: {read} of {} bytes (the archive is truncated)",
                    meta.size
                ));
            }
            Some(hasher.finalize())
        }
        computed => computed,
    };
    zeros_until(span.stream, end, buf)?;
    if span.stream.at() < end {
        return Err(format!(
            "cut short at offset {} (the archive is truncated)",
            span.stream.at()
        ));
    }
    Ok(computed)
}

/// Reads up to `end`, which must be zeros: tar padding and end blocks are; anything
/// else is data the table of contents does not account for.
fn zeros_until(stream: &mut TarStream, end: u64, buf: &mut [u8]) -> Result<(), String> {
    let mut span = Span { stream, end };
    loop {
        let at = span.stream.at();
        let n = span.read(buf).map_err(|e| short_cause(&e))?;
        if n == 0 {
            return Ok(());
        }
        if let Some(k) = buf[..n].iter().position(|&b| b != 0) {
            return Err(format!(
                "data at offset {} that the table of contents does not account for",
                at + k as u64
            ));
        }
    }
}

/// How a member's header differs from its table entry, if it does.
fn disagreement(meta: &Meta, entry: &TocEntry) -> Option<String> {
    let quote = crate::archive::unpack::header::quote;
    if meta.name != entry.name {
        return Some(format!(
            "the header names \"{}\", the table \"{}\"",
            quote(&meta.name),
            quote(&entry.name)
        ));
    }
    if meta.kind != entry.kind() {
        return Some(format!(
            "a {} in the header, a {} in the table",
            meta.kind.word(),
            entry.kind().word()
        ));
    }
    if meta.size != entry.size {
        return Some(format!(
            "{} bytes in the header, {} in the table",
            meta.size, entry.size
        ));
    }
    if meta.link != entry.link {
        return Some("the link targets differ".into());
    }
    None
}

/// A table digest in hex (32 digits: the first 16 bytes of a BLAKE3).
pub(in crate::check) fn hex(digest: &index::TocDigest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
