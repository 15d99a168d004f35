//! The tar stream of an indexed `.tar.zst`, decompressed a frame at a time on every
//! core and handed on in order, for `unpack` of a whole archive.
//!
//! The seek table only says where the frames are: each is checked as it is
//! decompressed (its size and checksum, by [`index::read_frame`]), and the tar stream
//! is parsed from its first byte as for any archive, so nothing in the table decides
//! what is extracted. An archive without a table, or whose table does not hold
//! together, is read the ordinary way.
//!
//! A small file's data is not copied out of its frame: the entry loop hands a writer
//! thread a range of the frame's buffer ([`Data`]) and the tar reader seeks over it;
//! the buffer goes back to the decompressing threads when the last writer is through
//! with it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use crate::archive::index::{self, Digests, Frame};
use crate::archive::input;
use crate::progress::Progress;
use crate::report::Reporter;

/// The decompressed tar stream of `path` when it is an indexed archive on disk (not
/// standard input, not a pipe), decompressed on `threads` threads; `None` for
/// anything else, which the caller reads the ordinary way. A table that is there but
/// wrong is said once, as a notice.
pub fn open(path: &Path, threads: usize, reporter: &Reporter) -> Result<Option<Frames>> {
    // The one check of the table, said in the words `list` and member extraction use.
    // Only the frames are used here, so the members are not copied out of the view; the
    // digests are still read, so the table is checked whole, as before.
    let Some((file, table)) = index::open::indexed_table(path, reporter, Digests::Read) else {
        return Ok(None);
    };
    if let Ok(meta) = file.metadata() {
        reporter.progress().set_known_total(meta.len());
    }
    let progress = reporter.progress();
    let mut frames = ParallelFrames::start(file, table.frames, threads, progress)
        .with_context(|| format!("reading {}", path.display()))?;
    // Not a tar stream after all (or a first frame that is damaged): the ordinary path
    // says what it is, in its words. Looked at in place: nothing is consumed.
    match frames.fill() {
        Ok(true) if input::is_tar_block(frames.current.get(..BLOCK).unwrap_or(&[])) => {}
        _ => return Ok(None),
    }
    Ok(Some(Frames(Rc::new(RefCell::new(frames)))))
}

/// Bytes of a tar header block.
const BLOCK: usize = 512;

/// Frames decompressed ahead of the one being read, at most, per thread: enough that
/// no thread waits on a frame slower than its neighbours, few enough to bound memory
/// (frames hold up to a few MiB).
const AHEAD_PER_THREAD: usize = 2;

/// The decompressed stream of an indexed archive, for the tar reader (`Read`, and
/// `Seek` forward, so that the data of an entry not read is passed over rather than
/// copied out) and for the entry loop, which takes a small file's data straight from
/// the frame that holds it ([`Frames::data`]).
#[derive(Clone)]
pub struct Frames(Rc<RefCell<ParallelFrames>>);

impl Frames {
    /// The `len` bytes at offset `at` of the tar stream, shared with the frame buffer
    /// that holds them, when they are all in the frame being read and not read yet.
    /// `None` otherwise (the caller reads them).
    pub fn data(&self, at: u64, len: u64) -> Option<Data> {
        let frames = self.0.borrow();
        let from = usize::try_from(at.checked_sub(frames.current_at)?).ok()?;
        let to = from.checked_add(usize::try_from(len).ok()?)?;
        (from >= frames.pos && to <= frames.current.len()).then(|| Data::Frame {
            frame: Arc::clone(&frames.current.0),
            from,
            to,
        })
    }
}

impl Read for Frames {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl Seek for Frames {
    /// Only forward from the current position, as the tar reader passes over data.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Current(by) if by >= 0 => self.0.borrow_mut().skip(by as u64),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the stream only moves forward",
            )),
        }
    }
}

/// A file's bytes for a writer thread: a range of a decompressed frame (no copy), or
/// bytes of their own (a file that spans frames).
pub enum Data {
    Frame {
        frame: Arc<FrameBuf>,
        from: usize,
        to: usize,
    },
    Owned(Vec<u8>),
}

impl Data {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Data::Frame { frame, from, to } => &frame.bytes[*from..*to],
            Data::Owned(bytes) => bytes,
        }
    }

    /// The frame whose buffer it holds (by its offset in the tar stream), and that
    /// buffer's size, for the writers' memory bound.
    pub fn frame(&self) -> Option<(u64, u64)> {
        match self {
            Data::Frame { frame, .. } => Some((frame.at, frame.bytes.capacity() as u64)),
            Data::Owned(_) => None,
        }
    }
}

/// One decompressed frame's bytes, shared by the reader and the writer jobs whose
/// files are in it; the buffer goes back to the decompressing threads when the last
/// of them is through with it (a fresh buffer would be page-faulted in anew).
pub struct FrameBuf {
    bytes: Vec<u8>,
    /// Where the frame starts in the tar stream.
    at: u64,
    shared: Option<Arc<Shared>>,
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take()
            && self.bytes.capacity() > 0
        {
            shared.lock().spare.push(std::mem::take(&mut self.bytes));
        }
    }
}

/// The frame being read, shared.
struct Current(Arc<FrameBuf>);

impl std::ops::Deref for Current {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0.bytes
    }
}

/// The decompressed stream.
pub struct ParallelFrames {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    current: Current,
    /// Offset in the tar stream of the current frame's first byte.
    current_at: u64,
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
    /// Buffers of frames nobody uses any more, for the next frames: fresh ones would be
    /// page-faulted in anew, frame after frame.
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
        let empty = FrameBuf {
            bytes: Vec::new(),
            at: 0,
            shared: None,
        };
        Ok(ParallelFrames {
            shared,
            threads: handles,
            current: Current(Arc::new(empty)),
            current_at: 0,
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
        drop(state);
        self.shared.room.notify_all();
        let frame = &self.shared.frames[self.next];
        self.progress.advance(u64::from(frame.c_size));
        self.next += 1;
        // The error names the frame by its byte offset already.
        Some(result)
    }

    /// Makes the current frame hold the next byte, if there is one (`Ok(false)` at the
    /// end of the stream, and after an error was handed on).
    fn fill(&mut self) -> io::Result<bool> {
        while self.pos == self.current.len() {
            if self.failed {
                return Ok(false);
            }
            let at = self.current_at + self.current.len() as u64;
            match self.next_frame() {
                None => return Ok(false),
                Some(Ok(bytes)) => {
                    let buf = FrameBuf {
                        bytes,
                        at,
                        shared: Some(Arc::clone(&self.shared)),
                    };
                    // The old frame's buffer goes back once no writer job holds it.
                    self.current = Current(Arc::new(buf));
                    self.current_at = at;
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        Ok(true)
    }

    /// Passes over `by` bytes; the new offset in the stream.
    fn skip(&mut self, mut by: u64) -> io::Result<u64> {
        while by > 0 {
            if !self.fill()? {
                // What the tar reader says when it reads over the data instead.
                return Err(io::Error::other("unexpected EOF during skip"));
            }
            let n = by.min((self.current.len() - self.pos) as u64);
            self.pos += n as usize;
            by -= n;
        }
        Ok(self.current_at + self.pos as u64)
    }
}

impl Read for ParallelFrames {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.fill()? {
            return Ok(0);
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
