//! Wires the stages together: walk thread → bounded channel → readers → ordered delivery.
//!
//! Every job that reads files runs through [`run`] (a walked tree) or [`run_source`]
//! (any list of files, e.g. a manifest being checked). The
//! job supplies a [`SinkFactory`] (what to do with each file's bytes) and a `deliver`
//! callback that receives every outcome in walk order, on the calling thread, which is
//! therefore the only place that writes output.

use std::collections::{BTreeMap, VecDeque};
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
pub const REORDER_WINDOW: u64 = 16 * 1024;

/// What a source hands the pipeline, in output order.
pub enum Item<T> {
    /// A file to read; `tag` travels beside it to the outcome (what the job needs to
    /// judge the result, e.g. the expected digest in `check`).
    File(Entry, T),
    /// Something the walk skipped or could not enter.
    Notice(Notice),
    /// A result the job decided without reading anything (e.g. a missing file).
    Note(T),
}

/// One outcome, delivered in source order.
pub enum Outcome<O, T = ()> {
    /// A file that was read to the end: the sink's output and the bytes read.
    Read {
        path: PathBuf,
        output: O,
        len: u64,
        tag: T,
    },
    /// A file that could not be read.
    Failed {
        path: PathBuf,
        error: ReadError,
        tag: T,
    },
    /// Something the walk skipped or could not enter.
    Notice(Notice),
    /// An [`Item::Note`], in its place.
    Note(T),
}

/// What the source thread tells the printer.
enum FromSource<T> {
    Notice(Notice),
    /// Tags of files about to be handed to the readers, in sequence order.
    Tags(Vec<(u64, T)>),
    Note(u64, T),
    Ended(Result<()>),
}

enum Msg<O, T> {
    Read(Vec<FileResult<O>>),
    Source(FromSource<T>),
}

/// Sends to the printer; false when it is gone. Boxed so a [`Feed`] need not know the
/// sink's output type.
type ToPrinter<T> = Box<dyn Fn(FromSource<T>) -> bool + Send>;

/// Runs the pipeline over the trees below `roots`, calling `deliver` for every outcome
/// in walk order. A `deliver` error stops the run (walker and readers are told to quit)
/// and is returned; per-file problems are outcomes, not errors.
pub fn run<F: SinkFactory>(
    roots: &[OsString],
    walk_options: &WalkOptions,
    read_options: &ReadOptions,
    factory: Arc<F>,
    progress: &Progress,
    deliver: impl FnMut(Outcome<SinkOutput<F>>) -> Result<()>,
) -> Result<()> {
    // Fail on bad patterns before any thread starts.
    walk::compile_excludes(&walk_options.exclude)?;
    // A drawn bar needs byte totals before reading; without one the walk skips the stat.
    let options = WalkOptions {
        sizes_upfront: progress.draws(),
        ..walk_options.clone()
    };
    let roots = roots.to_vec();
    let source = move |feed: &mut Feed<()>| {
        walk::walk(&roots, &options, |found| match found {
            Found::File(entry) => feed.push(Item::File(entry, ())),
            Found::Notice(notice) => feed.push(Item::Notice(notice)),
        })
    };
    run_source(
        source,
        REORDER_WINDOW,
        read_options,
        factory,
        progress,
        deliver,
    )
}

/// Runs the pipeline over whatever `source` pushes into its [`Feed`] (on a thread of
/// its own), calling `deliver` for every outcome in the order the items were pushed.
/// At most `window` items are in flight or waiting for an earlier one, which bounds
/// memory when outputs are large (whole files, for `pack`).
pub fn run_source<F, T, S>(
    source: S,
    window: u64,
    read_options: &ReadOptions,
    factory: Arc<F>,
    progress: &Progress,
    mut deliver: impl FnMut(Outcome<SinkOutput<F>, T>) -> Result<()>,
) -> Result<()>
where
    F: SinkFactory,
    T: Send + 'static,
    S: FnOnce(&mut Feed<T>) -> Result<()> + Send + 'static,
{
    let window = Arc::new(Window::new(window));
    let (entry_tx, entry_rx) = async_channel::bounded(read_options.queue_depth.max(1));
    let (msg_tx, msg_rx) = mpsc::channel::<Msg<SinkOutput<F>, T>>();

    let source_thread = {
        let tx = msg_tx.clone();
        let mut feed = Feed {
            window: Arc::clone(&window),
            batcher: Batcher::new(entry_tx),
            to_printer: Box::new(move |msg| tx.send(Msg::Source(msg)).is_ok()),
            progress: progress.clone(),
        };
        std::thread::Builder::new()
            .name("spate-walk".into())
            .spawn(move || {
                let result = source(&mut feed);
                let Feed {
                    mut batcher,
                    to_printer,
                    ..
                } = feed;
                batcher.flush(&to_printer);
                drop(batcher);
                to_printer(FromSource::Ended(result));
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
        // Tear down: the source stops at its next push, readers at their next receive.
        window.close();
        entry_rx.close();
    }
    drop(msg_rx);
    let _ = source_thread.join();
    for reader in readers {
        let _ = reader.join();
    }
    delivered
}

/// Where a source pushes its items. Numbers them, keeps the source from running more
/// than the reorder window ahead of the printer, and batches files for the readers.
pub struct Feed<T> {
    window: Arc<Window>,
    batcher: Batcher<T>,
    to_printer: ToPrinter<T>,
    progress: Progress,
}

impl<T> Feed<T> {
    /// Counts a file the job reads itself, outside the readers, in the progress totals.
    pub fn found_elsewhere(&self, size: u64) {
        self.progress.found(size);
    }

    /// Takes the next item; false when the run is being torn down and the source
    /// should stop.
    pub fn push(&mut self, item: Item<T>) -> bool {
        // The printer may be waiting for an entry still in our batch: hand the batch
        // over before waiting for the window to open.
        if self.window.would_block() && !self.batcher.flush(&self.to_printer) {
            return false;
        }
        let seq = self.window.admit();
        match item {
            Item::File(mut entry, tag) => {
                entry.seq = seq;
                self.progress.found(entry.size);
                self.batcher.push(entry, seq, tag, &self.to_printer)
            }
            Item::Notice(mut notice) => {
                notice.seq = seq;
                (self.to_printer)(FromSource::Notice(notice))
            }
            Item::Note(tag) => (self.to_printer)(FromSource::Note(seq, tag)),
        }
    }
}
/// Most entries per batch sent to the readers.
const BATCH: usize = 16;

/// Groups entries into batches for the readers. A batch goes out when it is full, or
/// at once when the readers have nothing queued, so they never idle waiting for a
/// batch to fill. The batch's tags go to the printer just before the batch goes to
/// the readers, so a tag always arrives before its file's result.
struct Batcher<T> {
    tx: async_channel::Sender<read::Batch>,
    batch: read::Batch,
    tags: Vec<(u64, T)>,
}

impl<T> Batcher<T> {
    fn new(tx: async_channel::Sender<read::Batch>) -> Self {
        Batcher {
            tx,
            batch: Vec::with_capacity(BATCH),
            tags: Vec::with_capacity(BATCH),
        }
    }

    /// Adds an entry; false when the readers or the printer are gone.
    fn push(&mut self, entry: Entry, seq: u64, tag: T, to_printer: &ToPrinter<T>) -> bool {
        self.batch.push(entry);
        self.tags.push((seq, tag));
        if self.batch.len() >= BATCH || self.tx.is_empty() {
            return self.flush(to_printer);
        }
        true
    }

    /// Sends what is batched; false when the readers or the printer are gone.
    fn flush(&mut self, to_printer: &ToPrinter<T>) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let tags = std::mem::replace(&mut self.tags, Vec::with_capacity(BATCH));
        if !to_printer(FromSource::Tags(tags)) {
            return false;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send_blocking(batch).is_ok()
    }
}

/// Receives results in any order and delivers them in sequence order.
fn deliver_in_order<O, T>(
    rx: &mpsc::Receiver<Msg<O, T>>,
    window: &Window,
    progress: &Progress,
    deliver: &mut impl FnMut(Outcome<O, T>) -> Result<()>,
) -> Result<()> {
    // Files read (or not), waiting for their turn; and the tags of files handed to the
    // readers, oldest first (the source sends them in sequence order).
    let mut waiting: BTreeMap<u64, FileResult<O>> = BTreeMap::new();
    let mut decided: BTreeMap<u64, Outcome<O, T>> = BTreeMap::new();
    let mut tags: VecDeque<(u64, T)> = VecDeque::new();
    let mut next = 0u64;
    let mut source_result = Ok(());
    for msg in rx {
        match msg {
            Msg::Read(results) => {
                for result in results {
                    waiting.insert(result.seq, result);
                }
            }
            Msg::Source(FromSource::Notice(notice)) => {
                decided.insert(notice.seq, Outcome::Notice(notice));
            }
            Msg::Source(FromSource::Note(seq, tag)) => {
                decided.insert(seq, Outcome::Note(tag));
            }
            Msg::Source(FromSource::Tags(batch)) => tags.extend(batch),
            Msg::Source(FromSource::Ended(result)) => {
                source_result = result;
                continue;
            }
        }
        loop {
            let outcome = if let Some(outcome) = decided.remove(&next) {
                outcome
            } else if waiting.contains_key(&next) && tags.front().is_some_and(|t| t.0 == next) {
                let (Some(read), Some((_, tag))) = (waiting.remove(&next), tags.pop_front()) else {
                    break;
                };
                let FileResult { path, result, .. } = read;
                match result {
                    Ok((output, len)) => {
                        progress.done(len);
                        Outcome::Read {
                            path,
                            output,
                            len,
                            tag,
                        }
                    }
                    Err(error) => Outcome::Failed { path, error, tag },
                }
            } else {
                break;
            };
            deliver(outcome)?;
            next += 1;
        }
        window.printed_up_to(next);
    }
    source_result?;
    anyhow::ensure!(
        waiting.is_empty() && decided.is_empty() && next == window.issued(),
        "internal error: {} of {} results were never delivered",
        window.issued() - next,
        window.issued()
    );
    Ok(())
}
