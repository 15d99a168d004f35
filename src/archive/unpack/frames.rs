//! The tar stream of an indexed `.tar.zst`, decompressed a frame at a time on every
//! core and handed on in order, for `unpack` of a whole archive.
//!
//! The seek table only says where the frames are: each is checked as it is
//! decompressed (its size and checksum, by [`index::read_frame`]), and the tar stream
//! is parsed from its first byte as for any archive, so nothing in the table decides
//! what is extracted. An archive without a table, or whose table does not hold
//! together, is read the ordinary way.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use crate::archive::index::{self, Frame};
use crate::archive::input;
use crate::progress::Progress;
use crate::report::Reporter;

/// The decompressed tar stream of `path` when it is an indexed archive on disk (not
/// standard input, not a pipe), decompressed on `threads` threads; `None` for
/// anything else, which the caller reads the ordinary way. A table that is there but
/// wrong is said once, as a notice.
pub fn open(path: &Path, threads: usize, reporter: &Reporter) -> Result<Option<Box<dyn Read>>> {
    // The one check of the table, said in the words `list` and member extraction use.
    let Some((file, index)) = index::open::indexed(path, reporter) else {
        return Ok(None);
    };
    if let Ok(meta) = file.metadata() {
        reporter.progress().set_known_total(meta.len());
    }
    let progress = reporter.progress();
    let mut frames = ParallelFrames::start(file, index.frames, threads, progress)
        .with_context(|| format!("reading {}", path.display()))?;
    // Not a tar stream after all (or a first frame that is damaged): the ordinary path
    // says what it is, in its words.
    let mut first = Vec::with_capacity(BLOCK);
    match (&mut frames).take(BLOCK as u64).read_to_end(&mut first) {
        Ok(_) if input::is_tar_block(&first) => {}
        _ => return Ok(None),
    }
    Ok(Some(Box::new(io::Cursor::new(first).chain(frames))))
}

/// Bytes of a tar header block.
const BLOCK: usize = 512;

/// Frames decompressed ahead of the one being read, at most, per thread: enough that
/// no thread waits on a frame slower than its neighbours, few enough to bound memory
/// (frames hold up to a few MiB).
const AHEAD_PER_THREAD: usize = 2;

/// The decompressed stream, as `Read`.
pub struct ParallelFrames {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    current: Vec<u8>,
    pos: usize,
    /// The next frame to hand on.
    next: usize,
    /// An error was handed on: nothing follows it.
    failed: bool,
    progress: Progress,
}

struct Shared {
    file: Arc<File>,
    frames: Vec<Frame>,
    window: usize,
    state: Mutex<State>,
    /// A frame was finished (the reader waits on it).
    ready: Condvar,
    /// The reader took a frame, or stopped (the decompressing threads wait on it).
    room: Condvar,
}

#[derive(Default)]
struct State {
    /// Frames given to a thread so far.
    claimed: usize,
    /// Frames the reader has taken.
    taken: usize,
    done: BTreeMap<usize, io::Result<Vec<u8>>>,
    /// Buffers of frames the reader is through with, for the next frames: fresh ones
    /// would be page-faulted in anew, frame after frame.
    spare: Vec<Vec<u8>>,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ParallelFrames {
    fn start(
        file: Arc<File>,
        frames: Vec<Frame>,
        threads: usize,
        progress: &Progress,
    ) -> io::Result<ParallelFrames> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            file,
            frames,
            window: threads * AHEAD_PER_THREAD,
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            room: Condvar::new(),
        });
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let ours = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("spate-frames-{i}"))
                .spawn(move || decompress(&ours));
            match handle {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    stop(&shared, handles);
                    return Err(e);
                }
            }
        }
        Ok(ParallelFrames {
            shared,
            threads: handles,
            current: Vec::new(),
            pos: 0,
            next: 0,
            failed: false,
            progress: progress.clone(),
        })
    }

    /// The next frame's bytes, waiting for it; `None` after the last.
    fn next_frame(&mut self) -> Option<io::Result<Vec<u8>>> {
        if self.next == self.shared.frames.len() {
            return None;
        }
        let mut state = self.shared.lock();
        let result = loop {
            if let Some(result) = state.done.remove(&self.next) {
                break result;
            }
            state = self
                .shared
                .ready
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        };
        state.taken = self.next + 1;
        if self.current.capacity() > 0 {
            state.spare.push(std::mem::take(&mut self.current));
        }
        drop(state);
        self.shared.room.notify_all();
        let frame = &self.shared.frames[self.next];
        self.progress.advance(u64::from(frame.c_size));
        self.next += 1;
        // The error names the frame by its byte offset already.
        Some(result)
    }
}

impl Read for ParallelFrames {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.failed {
                return Ok(0);
            }
            match self.next_frame() {
                None => return Ok(0),
                Some(Ok(bytes)) => {
                    self.current = bytes;
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ParallelFrames {
    fn drop(&mut self) {
        stop(&self.shared, std::mem::take(&mut self.threads));
    }
}

/// Tells the decompressing threads to stop and waits for them.
fn stop(shared: &Shared, threads: Vec<JoinHandle<()>>) {
    shared.lock().stop = true;
    shared.room.notify_all();
    for thread in threads {
        let _ = thread.join();
    }
}

/// A decompressing thread: takes the next frame nobody has taken, within the window
/// ahead of the reader, until there are none or it is told to stop.
fn decompress(shared: &Shared) {
    let mut packed = Vec::new();
    loop {
        let mut state = shared.lock();
        let mut out = state.spare.pop().unwrap_or_default();
        let i = loop {
            if state.stop || state.claimed == shared.frames.len() {
                return;
            }
            if state.claimed < state.taken + shared.window {
                break state.claimed;
            }
            state = shared.room.wait(state).unwrap_or_else(|p| p.into_inner());
        };
        state.claimed += 1;
        drop(state);
        // A panic must not lose the frame: the reader would wait for it forever.
        let result = catch_unwind(AssertUnwindSafe(|| {
            index::read_frame_into(&shared.file, &shared.frames[i], &mut packed, &mut out)
                .map(|()| out)
        }))
        .unwrap_or_else(|_| Err(io::Error::other("the decompressing thread failed")));
        shared.lock().done.insert(i, result);
        shared.ready.notify_all();
    }
}
