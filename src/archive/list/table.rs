//! `spate list` from an archive's table of contents: block by block, each block's
//! lines formatted and written before the next. With a second core, every other block
//! is decoded and formatted on it (or, with member filters, the next block decoded
//! while this one is filtered and formatted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result};

use super::line::{Row, Widths};
use super::{Listing, push_json};
use crate::archive::index::{Loaded, Table, TocView};
use crate::archive::members::Members;
use crate::archive::unpack::header::Kind;
use crate::report::Reporter;

/// How far the table listed the archive.
pub(super) enum Listed {
    All,
    /// Its first block did not check out: nothing was written, the archive can be
    /// scanned instead.
    Nothing(String),
    /// A later block did not: the lines before it were written.
    Part(String),
}

/// Lists the entries of an archive's table of contents, each entry borrowed from its
/// decoded block: nothing is allocated per entry.
pub(super) fn from_table(
    table: &Table,
    members: &mut Members,
    out: &mut Listing<'_>,
    reporter: &Reporter,
) -> Result<Listed> {
    reporter.progress().set_unknown_total();
    let toc = &table.toc;
    let two_cores = cpus_allowed() > 1;
    if toc.blocks() < 2 || !two_cores {
        return one_thread(toc, members, out, reporter);
    }
    if members.selects_all() {
        return halves(toc, out, reporter);
    }
    decode_ahead(toc, members, out, reporter)
}

/// [`from_table`] with the blocks shared out between two threads, each decoding and
/// formatting its own: the lines are nearly all the work of a listing.
///
/// GNU tar's owner/group/size field only widens, so a block's lines depend on the
/// blocks before it. The second thread formats its block from the widest field it
/// knows of; the lines are kept when the blocks in between did not widen the field
/// past the block's first line, and formatted again otherwise (rare: the field
/// stops widening early in a listing).
fn halves(toc: &TocView, out: &mut Listing<'_>, reporter: &Reporter) -> Result<Listed> {
    let json = out.json;
    let progress = reporter.progress();
    let mut width = out.widths.width();
    // The field's width after the last block written, for the second thread.
    let written = AtomicUsize::new(width);
    std::thread::scope(|scope| {
        // Formatted blocks one way, written ones back for their buffers. One buffer
        // is enough: the second thread formats block b + 2 while this one formats b + 1
        // (after writing b), and every page a buffer touches the first time costs.
        let (done_tx, done_rx) = mpsc::sync_channel::<Result<Formatted, String>>(1);
        let (back_tx, back_rx) = mpsc::channel::<Formatted>();
        let _ = back_tx.send(Formatted::default());
        let written = &written;
        scope.spawn(move || {
            let mut blocks = toc.members();
            for b in (1..toc.blocks()).step_by(2) {
                // The lister stopped (an error writing): so does this.
                let Ok(mut block) = back_rx.recv() else {
                    break;
                };
                let result = blocks.load_into(b, &mut block.loaded).map(|()| {
                    block.format(toc, json, written.load(Ordering::Relaxed));
                    block
                });
                let failed = result.is_err();
                if done_tx.send(result).is_err() || failed {
                    break;
                }
            }
            // The process ends after the listing, which frees the decoder faster.
            std::mem::forget(blocks);
        });
        // Writes a block's lines; the field's width after them.
        let write = |block: &Formatted, width: usize| -> Result<usize> {
            reporter
                .results(&block.text)
                .context("writing to standard output")?;
            progress.done_many(block.entries);
            let width = width.max(block.end);
            written.store(width, Ordering::Relaxed);
            Ok(width)
        };
        let mut blocks = toc.members();
        let mut own = Formatted::default();
        for b in 0..toc.blocks() {
            if b % 2 == 0 {
                if let Err(why) = blocks.load_into(b, &mut own.loaded) {
                    return Ok(failed_at(b, why));
                }
                own.format(toc, json, width);
                width = write(&own, width)?;
            } else {
                let mut theirs = match done_rx.recv() {
                    Ok(Ok(theirs)) => theirs,
                    Ok(Err(why)) => return Ok(failed_at(b, why)),
                    Err(_) => anyhow::bail!("the thread formatting the listing died"),
                };
                if width > theirs.fits_up_to {
                    theirs.format(toc, json, width);
                }
                width = write(&theirs, width)?;
                let _ = back_tx.send(theirs);
            }
        }
        // The buffers are freed with the process.
        std::mem::forget((blocks, own, back_tx));
        Ok(Listed::All)
    })
}

/// Decodes the next block on the second core while this one is filtered and
/// formatted.
fn decode_ahead(
    toc: &TocView,
    members: &mut Members,
    out: &mut Listing<'_>,
    reporter: &Reporter,
) -> Result<Listed> {
    std::thread::scope(|scope| {
        // Decoded blocks one way, emptied ones back for their buffers: two in all, one
        // being decoded while the other is formatted.
        let (full_tx, full_rx) = mpsc::sync_channel::<Result<Loaded, String>>(1);
        let (empty_tx, empty_rx) = mpsc::channel::<Loaded>();
        for _ in 0..2 {
            let _ = empty_tx.send(Loaded::default());
        }
        scope.spawn(move || {
            let mut blocks = toc.members();
            for b in 0..toc.blocks() {
                // The lister stopped (an error writing): so does this.
                let Ok(mut loaded) = empty_rx.recv() else {
                    break;
                };
                let result = blocks.load_into(b, &mut loaded).map(|()| loaded);
                let failed = result.is_err();
                if full_tx.send(result).is_err() || failed {
                    break;
                }
            }
            // The process ends after the listing, which frees the decoder faster.
            std::mem::forget(blocks);
        });
        for b in 0..toc.blocks() {
            let loaded = match full_rx.recv() {
                Ok(Ok(loaded)) => loaded,
                Ok(Err(why)) => return Ok(failed_at(b, why)),
                Err(_) => anyhow::bail!("the thread decoding the table of contents died"),
            };
            list_block(toc, &loaded, members, out, reporter)?;
            let _ = empty_tx.send(loaded);
        }
        // The buffers are freed with the process.
        std::mem::forget(empty_tx);
        Ok(Listed::All)
    })
}

/// [`from_table`] on this thread alone.
fn one_thread(
    toc: &TocView,
    members: &mut Members,
    out: &mut Listing<'_>,
    reporter: &Reporter,
) -> Result<Listed> {
    let mut blocks = toc.members();
    let mut loaded = Loaded::default();
    for b in 0..blocks.blocks() {
        if let Err(why) = blocks.load_into(b, &mut loaded) {
            return Ok(failed_at(b, why));
        }
        list_block(toc, &loaded, members, out, reporter)?;
    }
    // The process ends after the listing, which frees these buffers faster than
    // handing them back one by one.
    std::mem::forget((blocks, loaded));
    Ok(Listed::All)
}

/// A block decoded and its lines formatted, on either thread.
#[derive(Default)]
struct Formatted {
    loaded: Loaded,
    text: Vec<u8>,
    /// Entries in the block, listed or not (a progress count).
    entries: u64,
    /// The lines are the same from any starting width up to this one: the width after
    /// the first line (none for JSON, which has no columns).
    fits_up_to: usize,
    /// The field's width after the last line.
    end: usize,
}

impl Formatted {
    /// Formats the lines of the block in `loaded`, the owner/group/size field `start`
    /// wide to begin with.
    fn format(&mut self, toc: &TocView, json: bool, start: usize) {
        self.text.clear();
        // Room for the whole block at once: a buffer grown by doubling touches (and
        // faults in) twice the pages it ends with. About 60 bytes a line besides the
        // name; a line that needs more grows the buffer as usual.
        let names: usize = self.loaded.names_len();
        self.text.reserve(names + 64 * self.loaded.len());
        self.entries = 0;
        self.fits_up_to = usize::MAX;
        let mut widths = Widths::starting_at(start);
        for entry in toc.entries(&self.loaded) {
            self.entries += 1;
            let kind = entry.kind();
            if kind == Kind::Meta {
                continue;
            }
            let row = Row::of_entry(&entry, kind);
            if json {
                push_json(&mut self.text, &row);
            } else {
                widths.push_line(&mut self.text, &row);
                if self.fits_up_to == usize::MAX {
                    self.fits_up_to = widths.width();
                }
            }
        }
        self.end = widths.width();
    }
}

/// The CPUs this process may run on. `available_parallelism` also reads the cgroup's
/// CPU quota, a dozen system calls through /proc and /sys: a tenth of a millisecond
/// of a listing, to decide whether a second thread is worth starting.
fn cpus_allowed() -> usize {
    // SAFETY: `set` is a plain bit set the call fills; its size is passed with it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
            return 1;
        }
        libc::CPU_COUNT(&set) as usize
    }
}

/// What a block that does not check out means: only a table whose checksums hold yet
/// whose records do not (a writer's bug, or a forgery) gets there.
fn failed_at(b: usize, why: String) -> Listed {
    match b {
        0 => Listed::Nothing(why),
        _ => Listed::Part(format!(
            "index: {why}; the members before it are listed, the rest are not"
        )),
    }
}

/// The lines of one decoded block's members.
fn list_block(
    toc: &TocView,
    loaded: &Loaded,
    members: &mut Members,
    out: &mut Listing<'_>,
    reporter: &Reporter,
) -> Result<()> {
    let progress = reporter.progress();
    for entry in toc.entries(loaded) {
        progress.done(0);
        let kind = entry.kind();
        if kind == Kind::Meta || !members.select(entry.name) {
            continue;
        }
        out.entry(&Row::of_entry(&entry, kind))?;
    }
    Ok(())
}
