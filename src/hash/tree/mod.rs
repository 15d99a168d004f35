//! `spate hash --tree-digest`: one BLAKE3 Merkle digest per directory, so two trees (or
//! two runs over one) are compared by a line each. The construction is in [`fold`] and
//! the README ("Directory digests").
//!
//! Files are read by the same pipeline and backends as a plain `hash`; the walk also
//! hands over, in their places, the directories, links and special files it meets,
//! which the plain walk leaves out, so that the fold sees every entry in walk order.

pub mod fold;

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::digest::{Blake3Mode, HasherFactory};
use super::{FLUSH_AT, HashConfig, depth_text};
use crate::algo::{Algo, Digests};
use crate::error::describe_io;
use crate::manifest::{self, Format};
use crate::output::Cleanup;
use crate::pipeline::{self, Feed, Item, Outcome};
use crate::progress::{Progress, Summary};
use crate::read::SinkFactory;
use crate::report::Reporter;
use crate::walk::{self, Entry, Found, Identity, Notice, NoticeKind, WalkOptions};
use fold::{Closed, Digest, Fold, Kind};

/// What travels with each walked entry to the fold.
enum Tag {
    /// The next root begins: everything still open is finished.
    Root,
    /// A regular file (read by the backend); `depth` 0 for a root.
    File { depth: usize, name: OsString },
    /// A directory; its entries follow.
    Dir {
        depth: usize,
        name: OsString,
        path: PathBuf,
    },
    /// A link not followed, or a special file: its digest is known without reading.
    Leaf {
        depth: usize,
        name: OsString,
        path: PathBuf,
        kind: Kind,
        digest: Digest,
    },
}

/// Hashes files with BLAKE3 alone, whatever their tag.
struct Blake3Factory(HasherFactory);

impl SinkFactory for Blake3Factory {
    type Tag = Tag;
    type Sink = super::digest::MultiHasher;
    fn make(&self, entry: &Entry, _tag: &Tag) -> Self::Sink {
        self.0.make(entry, &())
    }
}

/// Runs `hash --tree-digest`. `Ok(true)` when every directory got its digest.
pub fn run(config: &HashConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    let started = Instant::now();
    let (mut out, walk) = super::open_output(config, cleanup)?;
    let mut summary = Summary::default();
    let mut buf = Vec::with_capacity(FLUSH_AT * 2);
    let mut fold = Fold::default();
    let reporter = Reporter::with_skipped(Progress::new(config.progress), config.notices);
    let progress = reporter.progress();
    count_ahead(progress, &config.paths, &walk);
    let factory = Arc::new(Blake3Factory(HasherFactory {
        algos: vec![Algo::Blake3],
        blake3: Blake3Mode::default(),
    }));
    let roots = config.paths.clone();
    let source = move |feed: &mut Feed<Tag>| walk_all(&roots, &walk, feed);
    let print = Printer {
        format: config.style.format,
        end: if config.style.zero { b'\0' } else { b'\n' },
    };
    let result = pipeline::run_source(
        source,
        pipeline::REORDER_LIMIT,
        &config.read,
        factory,
        progress,
        |outcome| {
            match outcome {
                Outcome::Read {
                    path,
                    output,
                    len,
                    tag,
                } => {
                    summary.files += 1;
                    summary.bytes += len;
                    let digest = blake3_of(&output);
                    match tag {
                        Tag::File { depth: 0, .. } => {
                            print.entry(&mut buf, &path, "file", &digest);
                        }
                        Tag::File { depth, name } => {
                            fold.leaf(depth, name.as_bytes(), Kind::File, &digest);
                        }
                        _ => {}
                    }
                }
                Outcome::Failed { path, error, tag } => {
                    reporter.read_failed(&path, error);
                    if let Tag::File { depth, .. } = tag {
                        fold.leaf_failed(depth);
                    }
                }
                Outcome::Notice(notice) => {
                    if reporter.walk_notice(&notice) {
                        fold.failed_at(&notice.path);
                    }
                }
                Outcome::Note(Tag::Root) => fold.finish(),
                Outcome::Note(Tag::Dir { depth, name, path }) => fold.enter(depth, name, path),
                Outcome::Note(Tag::Leaf {
                    depth: 0,
                    path,
                    kind,
                    ..
                }) => {
                    // A root that is a special file (a link root is followed).
                    let why = format!("skipped: a {} has no tree digest", kind_name(kind));
                    reporter.skipped(&path, &why);
                }
                Outcome::Note(Tag::Leaf {
                    depth,
                    name,
                    kind,
                    digest,
                    ..
                }) => fold.leaf(depth, name.as_bytes(), kind, &digest),
                Outcome::Note(Tag::File { .. }) => {}
            }
            print.closed(&mut fold, &mut buf, &reporter);
            if buf.len() >= FLUSH_AT {
                super::write_batch(&reporter, &mut out, &buf)?;
                buf.clear();
            }
            Ok(())
        },
    );
    // The last root's directories close only now that nothing follows them.
    fold.finish();
    print.closed(&mut fold, &mut buf, &reporter);
    let written = super::write_batch(&reporter, &mut out, &buf);
    reporter.finish();
    result?;
    written?;
    out.commit()?;
    summary.errors = reporter.errors();
    summary.skipped = reporter.skipped_count();
    if config.stats {
        reporter.say(&format!(
            "{}; backend {} ×{}, queue depth {}{}",
            summary.render(started),
            config.read.backend.name(),
            config.read.jobs,
            depth_text(&config.read),
            crate::memory::peak_rss_text(),
        ));
    }
    Ok(summary.errors == 0)
}

/// Totals for a progress display, from a walk of their own (as `pipeline::run` does).
fn count_ahead(progress: &Progress, roots: &[OsString], walk: &WalkOptions) {
    let counting = WalkOptions {
        sizes_upfront: true,
        ..walk.clone()
    };
    let roots = roots.to_vec();
    progress.count_ahead(move |tally| {
        walk::walk(&roots, &counting, |found| match found {
            Found::File(entry) => tally.add(entry.size),
            Found::Notice(_) => true,
        })
    });
}

/// The walk, with every entry the fold needs in its place: each root announced, then
/// directories, files, links and special files in walk order.
fn walk_all(roots: &[OsString], options: &WalkOptions, feed: &mut Feed<Tag>) -> Result<()> {
    for root in roots {
        if !feed.push(Item::Note(Tag::Root)) {
            return Ok(());
        }
        let mut going = true;
        walk::entries(std::slice::from_ref(root), options, |item| {
            going = feed.push(match item {
                Ok(entry) => item_of(entry),
                Err(notice) => Item::Notice(notice),
            });
            going
        })?;
        if !going {
            return Ok(());
        }
    }
    Ok(())
}

/// What one walked entry becomes.
fn item_of(entry: walkdir::DirEntry) -> Item<Tag> {
    let depth = entry.depth();
    let name = entry.file_name().to_os_string();
    let ft = entry.file_type();
    if ft.is_dir() {
        let path = entry.into_path();
        return Item::Note(Tag::Dir { depth, name, path });
    }
    let leaf = |kind, digest| {
        let path = entry.path().to_path_buf();
        Item::Note(Tag::Leaf {
            depth,
            name: name.clone(),
            path,
            kind,
            digest,
        })
    };
    if ft.is_symlink() {
        // With --follow the walk resolves links itself, so a link here is one not
        // followed: it is its target's name, not the target's contents.
        return match std::fs::read_link(entry.path()) {
            Ok(target) => leaf(
                Kind::Symlink,
                blake3::hash(target.as_os_str().as_bytes()).into(),
            ),
            Err(err) => Item::Notice(Notice {
                seq: 0,
                path: entry.into_path(),
                kind: NoticeKind::Error(crate::error::ErrorKind::of_io(&err), describe_io(&err)),
            }),
        };
    }
    if let Some(kind) = special(&ft) {
        return leaf(kind, [0; 32]);
    }
    Item::File(
        Entry {
            seq: 0,
            size: 0,
            mtime: (0, 0),
            stat_known: false,
            identity: Identity::default(),
            beneath: None,
            path: entry.into_path(),
        },
        Tag::File { depth, name },
    )
}

fn special(ft: &std::fs::FileType) -> Option<Kind> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        Some(Kind::Fifo)
    } else if ft.is_socket() {
        Some(Kind::Socket)
    } else if ft.is_block_device() {
        Some(Kind::BlockDevice)
    } else if ft.is_char_device() {
        Some(Kind::CharDevice)
    } else {
        None
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symbolic link",
        Kind::Fifo => "FIFO",
        Kind::Socket => "socket",
        Kind::BlockDevice => "block device",
        Kind::CharDevice => "character device",
    }
}

/// The 32 bytes of the BLAKE3 digest in a sink's output. The factory computes BLAKE3
/// alone at its default length, so that digest is always there as 64 hex digits; the
/// fallbacks only keep a malformed one from panicking.
fn blake3_of(digests: &Digests) -> Digest {
    let mut digest = [0u8; 32];
    if let Some((_, hex)) = digests.iter().find(|(algo, _)| *algo == Algo::Blake3) {
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let text = std::str::from_utf8(pair).unwrap_or("00");
            *byte = u8::from_str_radix(text, 16).unwrap_or(0);
        }
    }
    digest
}

/// A directory's name as printed: with a trailing `/`, as `ls -p` and `du` mark it.
fn with_slash(path: &Path) -> PathBuf {
    let mut bytes = path.as_os_str().as_bytes().to_vec();
    if bytes.last() != Some(&b'/') {
        bytes.push(b'/');
    }
    PathBuf::from(OsString::from_vec(bytes))
}

/// Renders one digest line in the chosen format.
struct Printer {
    format: Format,
    end: u8,
}

impl Printer {
    /// Prints the directories the fold finished: a line each, or for one that has no
    /// digest, an error naming it (its failed entry was reported already).
    fn closed(&self, fold: &mut Fold, out: &mut Vec<u8>, reporter: &Reporter) {
        for closed in fold.take_closed() {
            match closed {
                Closed::Digest(path, digest) => self.entry(out, &path, "dir", &digest),
                Closed::Failed(path) => reporter.notice(
                    &with_slash(&path),
                    "no directory digest: an entry below could not be hashed",
                ),
            }
        }
    }

    /// `DIGEST  DIR/` (b3sum's line, escaped as it escapes), or a JSON object with the
    /// path, `type` and `blake3`.
    fn entry(&self, out: &mut Vec<u8>, path: &Path, kind: &str, digest: &Digest) {
        let hex = blake3::Hash::from_bytes(*digest).to_hex().to_string();
        if self.format == Format::Json {
            let mut obj = serde_json::Map::new();
            manifest::push_json_path(&mut obj, path.as_os_str().as_bytes());
            obj.insert("type".into(), kind.into());
            obj.insert("blake3".into(), hex.into());
            // Writing a map of strings into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &obj);
            out.push(b'\n');
            return;
        }
        let shown = if kind == "dir" {
            with_slash(path)
        } else {
            path.to_path_buf()
        };
        let style = manifest::Style {
            format: Format::Gnu,
            zero: self.end == b'\0',
        };
        manifest::push_styled(out, style, &shown, 0, &vec![(Algo::Blake3, hex)]);
    }
}
