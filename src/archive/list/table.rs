//! `spate list` from an archive's table of contents: block by block, each block's
//! lines formatted into the listing's buffer and written before the next; with a
//! second core, the next block is decoded on it while this one is formatted.

use std::sync::mpsc;

use anyhow::Result;

use super::Listing;
use super::line::Row;
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
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if toc.blocks() < 2 || !two_cores {
        return one_thread(toc, members, out, reporter);
    }
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
