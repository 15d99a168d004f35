//! The pipeline under failure: panics in the source, a sink or a reader must fail
//! the run, never hang it or let it pass for a whole one.

use super::*;
use crate::read::{BackendKind, Sink};

/// Counts bytes, and panics on the first chunk of a file named `boom`: a job's bug
/// that strikes in the middle of a run.
struct Fragile {
    fed: u64,
    doomed: bool,
}

impl Sink for Fragile {
    type Output = u64;
    fn update(&mut self, data: &[u8]) {
        assert!(!self.doomed, "boom");
        self.fed += data.len() as u64;
    }
    fn finish(self, _len: u64) -> u64 {
        self.fed
    }
}

struct FragileFactory;

impl SinkFactory for FragileFactory {
    type Tag = ();
    type Sink = Fragile;
    fn make(&self, entry: &Entry, _tag: &()) -> Fragile {
        Fragile {
            fed: 0,
            doomed: entry.path.ends_with("boom"),
        }
    }
}

/// One reader with two files in flight, so a reader that dies is noticed only if the
/// pipeline looks for it.
fn one_reader(backend: BackendKind, mmap_threshold: Option<u64>) -> ReadOptions {
    ReadOptions {
        backend,
        jobs: 1,
        queue_depth: 2,
        max_queue_depth: 2,
        buffer_size: 1 << 20,
        readahead: 2,
        mmap_threshold,
    }
}

/// An entry the reader stats itself, as `check` hands them over.
fn unlisted(path: PathBuf) -> Entry {
    Entry {
        seq: 0,
        path,
        size: 0,
        mtime: (0, 0),
        stat_known: false,
        identity: Default::default(),
        beneath: None,
    }
}

/// Runs [`run_source`] with a small reorder limit on a thread of its own and waits
/// at most a minute for it: a run that hangs fails the test instead of hanging it.
fn run_within_a_minute<S>(source: S, options: ReadOptions) -> Result<u64>
where
    S: FnOnce(&mut Feed<()>) -> Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut delivered = 0u64;
        let result = run_source(
            source,
            8,
            &options,
            Arc::new(FragileFactory),
            &Progress::hidden(),
            |_| {
                delivered += 1;
                Ok(())
            },
        );
        let _ = tx.send(result.map(|()| delivered));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("run_source hung instead of returning")
}

/// A tree of 40 small files with one `boom` of `boom_len` bytes second in line.
fn tree_with_boom(boom_len: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..40 {
        let (name, len) = if i == 1 {
            ("boom".to_string(), boom_len)
        } else {
            (format!("f{i:02}"), 100)
        };
        let path = dir.path().join(name);
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        paths.push(path);
    }
    (dir, paths)
}

#[test]
fn a_walk_that_panics_after_its_last_item_fails_the_run() {
    // Items decided without reading (as `check` decides a missing file) reach the
    // printer at once: everything pushed is delivered before the panic is known.
    for backend in [BackendKind::Uring, BackendKind::Threads] {
        let source = |feed: &mut Feed<()>| -> Result<()> {
            for _ in 0..3 {
                feed.push(Item::Note(()));
            }
            panic!("the walk tripped");
        };
        let err = run_within_a_minute(source, one_reader(backend, None))
            .expect_err("a run whose walk panicked must not succeed");
        let err = format!("{err:#}");
        assert!(
            err.contains("walk thread panicked: the walk tripped"),
            "{backend:?}: {err}"
        );
    }
}

#[test]
fn a_walk_that_panics_with_files_in_flight_names_the_panic() {
    let (_dir, paths) = tree_with_boom(100);
    let files: Vec<PathBuf> = paths.into_iter().filter(|p| !p.ends_with("boom")).collect();
    for backend in [BackendKind::Uring, BackendKind::Threads] {
        let files = files.clone();
        let source = move |feed: &mut Feed<()>| -> Result<()> {
            for path in files {
                feed.push(Item::File(unlisted(path), ()));
            }
            panic!("the walk tripped");
        };
        let err = run_within_a_minute(source, one_reader(backend, None))
            .expect_err("a run whose walk panicked must not succeed");
        let err = format!("{err:#}");
        assert!(
            err.contains("walk thread panicked: the walk tripped"),
            "{backend:?}: {err}"
        );
    }
}

#[test]
fn a_sink_that_panics_fails_the_run_on_either_backend() {
    // A small file is fed on the reader's own thread; a 2 MiB one in 1 MiB chunks,
    // which the uring backend hands to a blocking thread; a mapped one on the
    // blocking thread (uring) or the reader (threads).
    let shapes = [("small", 100, None), ("chunked", 2 << 20, None)];
    let shapes = shapes
        .into_iter()
        .chain([("mapped", 2 << 20, Some(1 << 20))]);
    for (shape, boom_len, mmap_threshold) in shapes {
        let (_dir, paths) = tree_with_boom(boom_len);
        for backend in [BackendKind::Uring, BackendKind::Threads] {
            let paths = paths.clone();
            let source = move |feed: &mut Feed<()>| -> Result<()> {
                for path in paths {
                    feed.push(Item::File(unlisted(path), ()));
                }
                Ok(())
            };
            let result = run_within_a_minute(source, one_reader(backend, mmap_threshold));
            let err = format!(
                "{:#}",
                result.expect_err("a panicked sink must fail the run")
            );
            assert!(
                err.contains("panicked") && err.contains("boom"),
                "{shape} {backend:?}: {err}"
            );
        }
    }
}

#[test]
fn a_reader_thread_that_ends_with_work_left_stops_the_printer() {
    let (work_tx, work_rx) = async_channel::bounded::<read::Batch<()>>(1);
    let gone = std::thread::spawn(|| {});
    while !gone.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let readers = [gone];
    assert!(!readers_still_serve(&readers, &work_rx));

    // Nothing ever arrives, and nothing ever disconnects: without the check the
    // printer would wait forever.
    let (_msg_tx, msg_rx) = mpsc::channel::<Msg<u64, ()>>();
    let limit = ReorderLimit::new(8);
    let err = deliver_in_order(
        &msg_rx,
        &limit,
        &Progress::hidden(),
        || readers_still_serve(&readers, &work_rx),
        &mut |_| Ok(()),
    )
    .expect_err("the printer must give up on dead readers");
    assert!(err.to_string().contains("reader thread stopped"), "{err}");

    // Once the work channel is closed, a finished reader is simply done.
    drop(work_tx);
    assert!(readers_still_serve(&readers, &work_rx));
}
