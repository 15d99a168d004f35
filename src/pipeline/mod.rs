//! Wires the stages together: walk thread → bounded channel → readers → ordered delivery.
//!
//! Every job that reads files runs through [`run`] (a walked tree) or [`run_source`]
//! (any list of files, e.g. a manifest being checked). The
//! job supplies a [`SinkFactory`] (what to do with each file's bytes) and a `deliver`
//! callback that receives every outcome in walk order, on the calling thread, which is
//! therefore the only place that writes output.

use std::any::Any;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::progress::Progress;
use crate::read::{self, FileResult, ReadError, ReadOptions, SinkFactory, SinkOutput};
use crate::reorder::ReorderLimit;
use crate::walk::{self, Entry, Found, Notice, WalkOptions};

/// How many finished results may wait for a slow file ahead of them before the walk
/// pauses. Each waiting result is a path and a digest: a few hundred bytes.
pub const REORDER_LIMIT: u64 = 16 * 1024;

/// What a source hands the pipeline, in output order.
pub enum Item<T> {
    /// A file to read; `tag` travels with it through the reader (whose sink factory sees
    /// it) to the outcome: what the job needs to read and judge the file, e.g. the
    /// expected digests in `check`.
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
    /// Notices and notes, in the order pushed.
    Decided(Vec<Decided<T>>),
    Ended(Result<()>),
}

/// An outcome the source decided without a reader.
enum Decided<T> {
    Notice(Notice),
    Note(u64, T),
    /// The note that starts a streamed file (see [`Feed::push_streamed`]); the file
    /// itself has the next sequence number.
    StreamStart(u64, T),
}

/// Decided outcomes sent to the printer at once. One message (and one wake-up of the
/// printer) per outcome cost `hash --update` of an unchanged tree, where nearly every
/// file is decided, two thirds of its time in futex calls.
const DECIDED_BATCH: usize = 64;

enum Msg<O, T> {
    /// Results of one batch, from the job's sinks behind [`CatchPanics`].
    Read(Vec<FileResult<Result<O, SinkPanicked>, T>>),
    Source(FromSource<T>),
}

/// Sends to the printer; false when it is gone. Boxed so a [`Feed`] need not know the
/// sink's output type.
type ToPrinter<T> = Box<dyn Fn(FromSource<T>) -> bool + Send>;

/// Runs the pipeline over the trees below `roots`, calling `deliver` for every outcome
/// in walk order. A `deliver` error stops the run (walker and readers are told to quit)
/// and is returned; per-file problems are outcomes, not errors.
pub fn run<F: SinkFactory<Tag = ()>>(
    roots: &[OsString],
    walk_options: &WalkOptions,
    read_options: &ReadOptions,
    factory: Arc<F>,
    progress: &Progress,
    deliver: impl FnMut(Outcome<SinkOutput<F>>) -> Result<()>,
) -> Result<()> {
    // Fail on bad patterns before any thread starts.
    walk::compile_excludes(&walk_options.exclude)?;
    let roots = roots.to_vec();
    // The walk runs at most `REORDER_LIMIT` files ahead of the output, so the totals a
    // display needs come from a walk of their own, which only counts.
    let counting = WalkOptions {
        sizes_upfront: true,
        ..walk_options.clone()
    };
    let counted = roots.clone();
    progress.count_ahead(move |tally| {
        walk::walk(&counted, &counting, |found| match found {
            Found::File(entry) => tally.add(entry.size),
            Found::Notice(_) => true,
        })
    });
    let options = walk_options.clone();
    let source = move |feed: &mut Feed<()>| {
        walk::walk(&roots, &options, |found| match found {
            Found::File(entry) => feed.push(Item::File(entry, ())),
            Found::Notice(notice) => feed.push(Item::Notice(notice)),
        })
    };
    run_source(
        source,
        REORDER_LIMIT,
        read_options,
        factory,
        progress,
        deliver,
    )
}

/// Runs the pipeline over whatever `source` pushes into its [`Feed`] (on a thread of
/// its own), calling `deliver` for every outcome in the order the items were pushed.
/// At most `limit` items are in flight or waiting for an earlier one, which bounds
/// memory when outputs are large (whole files, for `pack`).
///
/// A panic in the source, in a reader or in the job's sink is an internal error that
/// fails the run, even after everything else was delivered: what the panicking code
/// had yet to hand over is missing, and a manifest or archive without it must not
/// pass for a whole one.
pub fn run_source<F, S>(
    source: S,
    limit: u64,
    read_options: &ReadOptions,
    factory: Arc<F>,
    progress: &Progress,
    mut deliver: impl FnMut(Outcome<SinkOutput<F>, F::Tag>) -> Result<()>,
) -> Result<()>
where
    F: SinkFactory,
    S: FnOnce(&mut Feed<F::Tag>) -> Result<()> + Send + 'static,
{
    let limit = Arc::new(ReorderLimit::new(limit));
    let (entry_tx, entry_rx) = async_channel::bounded(read_options.queue_depth.max(1));
    let (msg_tx, msg_rx) = mpsc::channel::<Msg<SinkOutput<F>, F::Tag>>();

    let source_thread = {
        let tx = msg_tx.clone();
        let mut feed = Feed {
            limit: Arc::clone(&limit),
            batcher: Batcher::new(entry_tx),
            decided: Vec::new(),
            to_printer: Box::new(move |msg| tx.send(Msg::Source(msg)).is_ok()),
            progress: progress.clone(),
        };
        std::thread::Builder::new()
            .name("spate-walk".into())
            .spawn(move || {
                let result = source(&mut feed);
                feed.send_decided();
                feed.progress.source_ended();
                let Feed {
                    mut batcher,
                    to_printer,
                    ..
                } = feed;
                batcher.flush();
                drop(batcher);
                to_printer(FromSource::Ended(result));
            })
            .context("starting the walk thread")?
    };

    let report_tx = msg_tx.clone();
    let report: read::Report<Result<SinkOutput<F>, SinkPanicked>, F::Tag> =
        Arc::new(move |results| report_tx.send(Msg::Read(results)).is_ok());
    let factory = Arc::new(CatchPanics(factory));
    let readers = read::start(read_options, entry_rx.clone(), factory, report);
    drop(msg_tx);

    let readers_alive = || readers_still_serve(&readers, &entry_rx);
    let delivered = deliver_in_order(&msg_rx, &limit, progress, readers_alive, &mut deliver);
    if delivered.is_err() {
        // Tear down: the source stops at its next push, readers at their next receive.
        limit.close();
        entry_rx.close();
    }
    drop(msg_rx);
    let threads = join_all(source_thread, readers);
    // A thread that panicked explains whatever else went wrong (results that never
    // came, readers gone), so its error is the one reported.
    threads.and(delivered)
}

/// Joins the source thread and every reader; a thread that panicked is a fatal error
/// even when everything it sent arrived, because what it had yet to send did not (the
/// rest of a walk, the tail of a manifest).
fn join_all(source: JoinHandle<()>, readers: Vec<JoinHandle<()>>) -> Result<()> {
    let mut first_panic = join(source, "the walk thread");
    for reader in readers {
        let joined = join(reader, "a reader thread");
        first_panic = first_panic.and(joined);
    }
    first_panic
}

fn join(thread: JoinHandle<()>, what: &str) -> Result<()> {
    thread
        .join()
        .map_err(|payload| anyhow!("internal error: {what} panicked: {}", panic_text(&*payload)))
}

/// The message a panic was raised with, when it is text (as `panic!` and `assert!`
/// make it).
fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}

/// False when a reader thread has ended while the source can still send work: it
/// died (readers end only once the work channel is closed and drained), and whatever
/// it held will never be reported, so waiting for it would wait forever.
fn readers_still_serve<T>(
    readers: &[JoinHandle<()>],
    work: &async_channel::Receiver<read::Batch<T>>,
) -> bool {
    // Finished first, open second: a reader that ended normally saw the channel closed
    // before it ended, so this order cannot mistake it for a dead one.
    let ended = readers.iter().any(JoinHandle::is_finished);
    !ended || work.is_closed()
}

/// A panic in the job's sink, caught on whichever thread fed it: the message.
struct SinkPanicked(String);

/// Wraps the job's [`SinkFactory`] so that a panic in a sink comes back as a result
/// instead of unwinding through the backend. Unwinding there loses the file's whole
/// batch: the uring backend swallows a panicked task (its printer then waits for the
/// batch forever) or reports a panicked blocking thread as a read error (the run ends
/// with exit 1, as if the disk had failed), and a reader thread that dies leaves the
/// walk blocked on a full channel. Caught here, every backend reports it the same way.
struct CatchPanics<F>(Arc<F>);

enum Guarded<S> {
    Working(S),
    Panicked(String),
}

impl<F: SinkFactory> SinkFactory for CatchPanics<F> {
    type Tag = F::Tag;
    type Sink = Guarded<F::Sink>;
    fn make(&self, entry: &Entry, tag: &F::Tag) -> Self::Sink {
        match catch_unwind(AssertUnwindSafe(|| self.0.make(entry, tag))) {
            Ok(sink) => Guarded::Working(sink),
            Err(payload) => {
                // No sink took what the tag holds for it.
                self.0.unread(entry, tag);
                Guarded::Panicked(panic_text(&*payload))
            }
        }
    }

    fn unread(&self, entry: &Entry, tag: &F::Tag) {
        self.0.unread(entry, tag);
    }
}

impl<S: read::Sink> read::Sink for Guarded<S> {
    type Output = Result<S::Output, SinkPanicked>;

    fn update(&mut self, data: &[u8]) {
        // A sink that panicked is never touched again: its state is whatever the
        // panic left half-done.
        if let Guarded::Working(sink) = self
            && let Err(payload) = catch_unwind(AssertUnwindSafe(|| sink.update(data)))
        {
            *self = Guarded::Panicked(panic_text(&*payload));
        }
    }

    fn may_wait(&self) -> bool {
        matches!(self, Guarded::Working(sink) if sink.may_wait())
    }

    fn finish(self, len: u64) -> Self::Output {
        match self {
            Guarded::Working(sink) => catch_unwind(AssertUnwindSafe(|| sink.finish(len)))
                .map_err(|payload| SinkPanicked(panic_text(&*payload))),
            Guarded::Panicked(text) => Err(SinkPanicked(text)),
        }
    }
}

/// A file's result with the sink's panic turned into the run's fatal error.
fn unless_panicked<O, T>(read: FileResult<Result<O, SinkPanicked>, T>) -> Result<FileResult<O, T>> {
    let FileResult {
        seq,
        path,
        tag,
        result,
    } = read;
    let result = match result {
        Ok((Ok(output), len)) => Ok((output, len)),
        Ok((Err(SinkPanicked(text)), _)) => {
            return Err(anyhow!(
                "internal error: processing {} panicked: {text}",
                path.display()
            ));
        }
        Err(error) => Err(error),
    };
    Ok(FileResult {
        seq,
        path,
        tag,
        result,
    })
}

/// Where a source pushes its items. Numbers them, keeps the source from running more
/// than the reorder limit ahead of the printer, and batches files for the readers.
pub struct Feed<T> {
    limit: Arc<ReorderLimit>,
    batcher: Batcher<T>,
    /// Notices and notes not yet sent to the printer.
    decided: Vec<Decided<T>>,
    to_printer: ToPrinter<T>,
    progress: Progress,
}

impl<T> Feed<T> {
    /// Takes the next item; false when the run is being torn down and the source
    /// should stop.
    pub fn push(&mut self, item: Item<T>) -> bool {
        // The printer may be waiting for an entry still in our batches: hand them
        // over before waiting for room under the limit.
        if self.limit.would_block() && !self.flush() {
            return false;
        }
        let seq = self.limit.admit();
        let decided = match item {
            Item::File(mut entry, tag) => {
                entry.seq = seq;
                self.progress.found(entry.size);
                // The readers idle without it; decided outcomes wait for a full batch,
                // which costs only a little delay in printing.
                return self.batcher.push(entry, tag);
            }
            Item::Notice(mut notice) => {
                notice.seq = seq;
                Decided::Notice(notice)
            }
            Item::Note(tag) => Decided::Note(seq, tag),
        };
        self.decided.push(decided);
        self.decided.len() < DECIDED_BATCH || self.send_decided()
    }

    /// Pushes a file whose bytes the job takes while they are read, from a sink that
    /// waits for it (pack's large members go to the tar writer in pieces), as two items:
    /// `start`, a note delivered as soon as every earlier item is (the job then takes
    /// the bytes), and the file itself with `tag`, whose outcome follows at once. The
    /// file's bytes count as done in the progress totals when the job advances them,
    /// not when its outcome is delivered.
    ///
    /// The file travels to the readers in a batch of its own: a reader reports a batch
    /// when every file of it is read, and a later file of the same batch may itself be
    /// a stream waiting for the job, which waits for this file's outcome. Both numbers
    /// are taken at once, so the note is never delivered while its file waits for room
    /// under the limit. False when the run is being torn down.
    pub fn push_streamed(&mut self, start: T, mut entry: Entry, tag: T) -> bool {
        if !self.flush() {
            return false;
        }
        let seq = self.limit.admit_run(2);
        self.decided.push(Decided::StreamStart(seq, start));
        entry.seq = seq + 1;
        self.progress.found(entry.size);
        self.send_decided() && self.batcher.push(entry, tag) && self.batcher.flush()
    }

    /// Hands everything pushed so far to the readers and the printer, before the source
    /// waits for something of its own (a waiting source holding back what the printer
    /// needs would wait forever). False when the run is being torn down.
    pub fn flush(&mut self) -> bool {
        self.batcher.flush() && self.send_decided()
    }

    /// Sends the decided outcomes gathered so far; false when the printer is gone.
    fn send_decided(&mut self) -> bool {
        if self.decided.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.decided, Vec::with_capacity(DECIDED_BATCH));
        (self.to_printer)(FromSource::Decided(batch))
    }
}
/// Most entries per batch sent to the readers.
const BATCH: usize = 16;

/// Groups entries, with their tags, into batches for the readers. A batch goes out
/// when it is full, or at once when the readers have nothing queued, so they never
/// idle waiting for a batch to fill.
struct Batcher<T> {
    tx: async_channel::Sender<read::Batch<T>>,
    batch: read::Batch<T>,
}

impl<T> Batcher<T> {
    fn new(tx: async_channel::Sender<read::Batch<T>>) -> Self {
        Batcher {
            tx,
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// Adds an entry; false when the readers are gone.
    fn push(&mut self, entry: Entry, tag: T) -> bool {
        self.batch.push((entry, tag));
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

/// How long the printer waits for a message before it looks whether the readers are
/// still there.
const READERS_CHECKED_EVERY: Duration = Duration::from_millis(200);

/// Receives results in any order and delivers them in sequence order. Fails when
/// `readers_alive` says the readers died with work left, instead of waiting for
/// results that will never come.
fn deliver_in_order<O, T>(
    rx: &mpsc::Receiver<Msg<O, T>>,
    limit: &ReorderLimit,
    progress: &Progress,
    readers_alive: impl Fn() -> bool,
    deliver: &mut impl FnMut(Outcome<O, T>) -> Result<()>,
) -> Result<()> {
    // Files read (or not), and outcomes decided without reading, waiting for their turn.
    let mut waiting: BTreeMap<u64, FileResult<O, T>> = BTreeMap::new();
    let mut decided: BTreeMap<u64, Outcome<O, T>> = BTreeMap::new();
    // Files whose bytes the job counted as it took them (see `Feed::push_streamed`).
    let mut streamed: std::collections::HashSet<u64> = Default::default();
    let mut next = 0u64;
    let mut source_result = Ok(());
    loop {
        let msg = match rx.recv_timeout(READERS_CHECKED_EVERY) {
            Ok(msg) => msg,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                anyhow::ensure!(
                    readers_alive(),
                    "internal error: a reader thread stopped before the end of the run"
                );
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Msg::Read(results) => {
                for result in results {
                    let result = unless_panicked(result)?;
                    waiting.insert(result.seq, result);
                }
            }
            Msg::Source(FromSource::Decided(batch)) => {
                for outcome in batch {
                    match outcome {
                        Decided::Notice(notice) => {
                            decided.insert(notice.seq, Outcome::Notice(notice));
                        }
                        Decided::Note(seq, tag) => {
                            decided.insert(seq, Outcome::Note(tag));
                        }
                        Decided::StreamStart(seq, tag) => {
                            streamed.insert(seq + 1);
                            decided.insert(seq, Outcome::Note(tag));
                        }
                    }
                }
            }
            Msg::Source(FromSource::Ended(result)) => {
                source_result = result;
                continue;
            }
        }
        loop {
            let outcome = if let Some(outcome) = decided.remove(&next) {
                outcome
            } else if let Some(read) = waiting.remove(&next) {
                let FileResult {
                    path, result, tag, ..
                } = read;
                match result {
                    Ok((output, len)) => {
                        let counted = streamed.remove(&next);
                        progress.done(if counted { 0 } else { len });
                        Outcome::Read {
                            path,
                            output,
                            len,
                            tag,
                        }
                    }
                    Err(error) => {
                        streamed.remove(&next);
                        Outcome::Failed { path, error, tag }
                    }
                }
            } else {
                break;
            };
            deliver(outcome)?;
            next += 1;
        }
        limit.printed_up_to(next);
    }
    source_result?;
    anyhow::ensure!(
        waiting.is_empty() && decided.is_empty() && next == limit.issued(),
        "internal error: {} of {} results were never delivered",
        limit.issued() - next,
        limit.issued()
    );
    Ok(())
}

#[cfg(test)]
mod tests;
