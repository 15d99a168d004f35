//! The data frames of an indexed archive, decompressed ahead on several threads and
//! handed over in order.
//!
//! Decompression is what a check of an archive spends its time on, and frames are
//! independent: each worker takes the next frame number, reads and decompresses it
//! (with its size and checksum verified by [`read_frame`]), and the consumer gets them
//! back in archive order, decompressing the next one itself when no worker has taken
//! it yet. Workers stay at most [`AHEAD_PER_THREAD`] frames per thread
//! ahead of the consumer, so memory is bounded by a few frames per core whatever the
//! archive's size. The consumer hands each frame's buffer back once it is through with
//! it ([`AheadFrames::recycle`]): a fresh buffer per frame was page-faulted in anew
//! every time (59k page faults were counted for the 28,761-member test archive).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::archive::index::{Frame, read_frame_into};

/// Frames each worker may decompress ahead of the consumer.
const AHEAD_PER_THREAD: usize = 4;

/// What became of one frame.
pub(super) type Decoded = io::Result<Vec<u8>>;

/// Where the workers stand.
struct Schedule {
    /// The next frame a worker takes.
    next: usize,
    /// Frames handed to the consumer so far.
    handed: usize,
    /// The consumer is gone: workers stop.
    stop: bool,
}

struct Shared {
    schedule: Mutex<Schedule>,
    moved: Condvar,
    /// Buffers of frames the consumer is through with.
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decompresses frame `frame` of `file` into a spare buffer (or a new one).
    fn decode(&self, file: &File, frame: &Frame, packed: &mut Vec<u8>) -> Decoded {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut out = spare.unwrap_or_default();
        read_frame_into(file, frame, packed, &mut out).map(|()| out)
    }
}

/// Frames in archive order, decompressed ahead.
pub(super) struct AheadFrames {
    file: Arc<File>,
    frames: Arc<Vec<Frame>>,
    results: Receiver<(usize, Decoded)>,
    /// Frames decompressed before their turn.
    early: BTreeMap<usize, Decoded>,
    /// The next frame to hand over.
    next: usize,
    count: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Room for the compressed bytes of the frames decompressed here.
    packed: Vec<u8>,
}

impl AheadFrames {
    /// Starts `threads` workers on `frames` of `file`.
    pub(super) fn start(file: Arc<File>, frames: Arc<Vec<Frame>>, threads: usize) -> AheadFrames {
        let threads = threads.max(1);
        let window = threads * AHEAD_PER_THREAD;
        let shared = Arc::new(Shared {
            schedule: Mutex::new(Schedule {
                next: 0,
                handed: 0,
                stop: false,
            }),
            moved: Condvar::new(),
            spare: Mutex::new(Vec::new()),
        });
        let (tx, results) = mpsc::channel();
        let count = frames.len();
        let workers = (0..threads.min(count.max(1)))
            .map(|_| {
                let (file, frames, shared, tx) = (
                    Arc::clone(&file),
                    Arc::clone(&frames),
                    Arc::clone(&shared),
                    tx.clone(),
                );
                std::thread::spawn(move || {
                    let mut packed = Vec::new();
                    while let Some(i) = take(&shared, frames.len(), window) {
                        let decoded = shared.decode(&file, &frames[i], &mut packed);
                        if tx.send((i, decoded)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        AheadFrames {
            file,
            frames,
            results,
            early: BTreeMap::new(),
            next: 0,
            count,
            shared,
            workers,
            packed: Vec::new(),
        }
    }

    /// Takes back the buffer of a frame the consumer is through with, for a later one.
    pub(super) fn recycle(&self, buf: Vec<u8>) {
        if buf.capacity() > 0 {
            let mut spare = self.shared.spare.lock().unwrap_or_else(|p| p.into_inner());
            spare.push(buf);
        }
    }

    /// The next frame in order, with its number; `None` after the last.
    pub(super) fn next_frame(&mut self) -> Option<(usize, Decoded)> {
        if self.next >= self.count {
            return None;
        }
        let decoded = loop {
            if let Some(decoded) = self.early.remove(&self.next) {
                break decoded;
            }
            // No worker has taken it yet: decompress it here rather than sleep until
            // one does (on a busy machine every wake-up waits for a core).
            let untaken = {
                let mut schedule = self.shared.lock();
                let untaken = schedule.next == self.next;
                if untaken {
                    schedule.next += 1;
                }
                untaken
            };
            if untaken {
                let frame = &self.frames[self.next];
                break self.shared.decode(&self.file, frame, &mut self.packed);
            }
            match self.results.recv() {
                Ok((i, decoded)) => _ = self.early.insert(i, decoded),
                // Every worker is gone without this frame: one of them panicked.
                Err(_) => break Err(io::Error::other("a decompression thread died")),
            }
        };
        let number = self.next;
        self.next += 1;
        self.shared.lock().handed = self.next;
        self.shared.moved.notify_all();
        Some((number, decoded))
    }
}

/// The next frame number for a worker, once it is within the window ahead of the
/// consumer; `None` when there is none left or the consumer is gone.
fn take(shared: &Shared, count: usize, window: usize) -> Option<usize> {
    let mut schedule = shared.lock();
    loop {
        if schedule.stop || schedule.next >= count {
            return None;
        }
        if schedule.next < schedule.handed + window {
            schedule.next += 1;
            return Some(schedule.next - 1);
        }
        schedule = shared
            .moved
            .wait(schedule)
            .unwrap_or_else(|p| p.into_inner());
    }
}

impl Drop for AheadFrames {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.moved.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
