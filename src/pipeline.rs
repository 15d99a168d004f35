//! Wires the stages together: walk thread → bounded channel → readers → ordered delivery.
//!
//! Every job that reads a tree (hash now; check, pack later) runs through [`run`]. The
//! job supplies a [`SinkFactory`] (what to do with each file's bytes) and a `deliver`
//! callback that receives every outcome in walk order, on the calling thread, which is
//! therefore the only place that writes output.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::{Context, Result};

use crate::progress::Progress;
use crate::read::{self, FileResult, ReadError, ReadOptions, SinkFactory, SinkOutput};
use crate::walk::{self, Entry, Found, Notice, WalkOptions};
use crate::window::Window;

/// How many finished results may wait for a slow file ahead of them before the walk
/// pauses. Each waiting result is a path and a digest: a few hundred bytes.
const REORDER_WINDOW: u64 = 16 * 1024;

/// One outcome, delivered in walk order.
pub enum Outcome<O> {
    /// A file that was read to the end: the sink's output and the bytes read.
    Read { path: PathBuf, output: O, len: u64 },
    /// A file that could not be read.
    Failed { path: PathBuf, error: ReadError },
    /// Something the walk skipped or could not enter.
    Notice(Notice),
}

enum Msg<O> {
    Read(Vec<FileResult<O>>),
    Notice(Notice),
    WalkEnded(Result<()>),
}

/// Runs the pipeline over `roots`, calling `deliver` for every outcome in walk order.
/// A `deliver` error stops the run (walker and readers are told to quit) and is
/// returned; per-file problems are outcomes, not errors.
pub fn run<F: SinkFactory>(
    roots: &[OsString],
    walk_options: &WalkOptions,
    read_options: &ReadOptions,
    factory: Arc<F>,
    progress: &Progress,
    mut deliver: impl FnMut(Outcome<SinkOutput<F>>) -> Result<()>,
) -> Result<()> {
    // Fail on bad patterns before any thread starts.
    walk::compile_excludes(&walk_options.exclude)?;
    let window = Arc::new(Window::new(REORDER_WINDOW));
    let (entry_tx, entry_rx) = async_channel::bounded(read_options.queue_depth.max(1));
    let (msg_tx, msg_rx) = mpsc::channel::<Msg<SinkOutput<F>>>();

    let walker = {
        let (roots, options, window, msg_tx) = (
            roots.to_vec(),
            walk_options.clone(),
            Arc::clone(&window),
            msg_tx.clone(),
        );
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("spate-walk".into())
            .spawn(move || {
                let mut batcher = Batcher::new(entry_tx);
                let result = walk::walk(&roots, &options, |mut found| {
                    // The printer may be waiting for an entry still in our batch: hand
                    // the batch over before waiting for the window to open.
                    if window.would_block() && !batcher.flush() {
                        return false;
                    }
                    found.set_seq(window.admit());
                    match found {
                        Found::File(entry) => {
                            progress.found(entry.size);
                            batcher.push(entry)
                        }
                        Found::Notice(notice) => msg_tx.send(Msg::Notice(notice)).is_ok(),
                    }
                });
                batcher.flush();
                drop(batcher);
                let _ = msg_tx.send(Msg::WalkEnded(result));
            })
            .context("starting the walk thread")?
    };

    let report_tx = msg_tx.clone();
    let report: read::Report<SinkOutput<F>> =
        Arc::new(move |results| report_tx.send(Msg::Read(results)).is_ok());
    let readers = read::start(read_options, entry_rx.clone(), factory, report);
    drop(msg_tx);

    let delivered = deliver_in_order(&msg_rx, &window, progress, &mut deliver);
    if delivered.is_err() {
        // Tear down: the walker stops at its next send, readers at their next receive.
        window.close();
        entry_rx.close();
    }
    drop(msg_rx);
    let _ = walker.join();
    for reader in readers {
        let _ = reader.join();
    }
    delivered
}

/// Most entries per batch sent to the readers.
const BATCH: usize = 16;

/// Groups entries into batches for the readers. A batch goes out when it is full, or
/// at once when the readers have nothing queued, so they never idle waiting for a
/// batch to fill.
struct Batcher {
    tx: async_channel::Sender<read::Batch>,
    batch: read::Batch,
}

impl Batcher {
    fn new(tx: async_channel::Sender<read::Batch>) -> Self {
        Batcher {
            tx,
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// Adds an entry; false when the readers are gone.
    fn push(&mut self, entry: Entry) -> bool {
        self.batch.push(entry);
        if self.batch.len() >= BATCH || self.tx.is_empty() {
            return self.flush();
        }
        true
    }

    /// Sends what is batched; false when the readers are gone.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send_blocking(batch).is_ok()
    }
}

/// Receives results in any order and delivers them in sequence order.
fn deliver_in_order<O>(
    rx: &mpsc::Receiver<Msg<O>>,
    window: &Window,
    progress: &Progress,
    deliver: &mut impl FnMut(Outcome<O>) -> Result<()>,
) -> Result<()> {
    let mut waiting: BTreeMap<u64, Outcome<O>> = BTreeMap::new();
    let mut next = 0u64;
    let mut walk_result = Ok(());
    for msg in rx {
        match msg {
            Msg::Read(results) => {
                for FileResult { seq, path, result } in results {
                    let outcome = match result {
                        Ok((output, len)) => Outcome::Read { path, output, len },
                        Err(error) => Outcome::Failed { path, error },
                    };
                    waiting.insert(seq, outcome);
                }
            }
            Msg::Notice(notice) => {
                waiting.insert(notice.seq, Outcome::Notice(notice));
            }
            Msg::WalkEnded(result) => {
                walk_result = result;
                continue;
            }
        }
        while let Some(outcome) = waiting.remove(&next) {
            if let Outcome::Read { len, .. } = &outcome {
                progress.done(*len);
            }
            deliver(outcome)?;
            next += 1;
        }
        window.printed_up_to(next);
    }
    walk_result?;
    anyhow::ensure!(
        waiting.is_empty() && next == window.issued(),
        "internal error: {} of {} results were never delivered",
        window.issued() - next,
        window.issued()
    );
    Ok(())
}
