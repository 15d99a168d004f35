//! Writer threads for `unpack` of an indexed archive: the entry loop keeps reading the
//! archive and making every decision (names, confinement, the directory a file goes
//! in) in order, and hands "write these bytes as NAME in this directory" to a few
//! threads, so that the kernel work of many small files (create, write, owner, mode,
//! time, rename) runs on every core.
//!
//! What makes this the same extraction as the sequential one: a job only ever touches
//! its own name in a directory descriptor the entry loop already walked to without
//! following a link, and the loop waits for the jobs an entry depends on before it
//! acts ([`Writers::settle`]): an entry whose name, or a directory on its way, is a
//! file still being written, and a hard link whose target is. Everything else a later
//! entry does cannot see or change an earlier job's file.

use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc::{Receiver, SendError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use rustc_hash::{FxHashMap, FxHashSet};

use super::Problem;
use super::frames::Data;
use super::temp::{Finish, Temps, write_file};
use crate::error::ErrorKind;

/// Files larger than this are written by the entry loop itself, streamed from the
/// archive: a writer job holds its whole file in memory.
pub const LARGEST_JOB: u64 = 8 << 20;
/// Bytes of file data held by jobs at most (the memory bound of the writers); a job
/// whose data is a range of a decompressed frame counts that whole frame, once.
const BYTES_IN_FLIGHT: u64 = 64 << 20;
/// Jobs at most: each may hold a directory descriptor open.
const JOBS_IN_FLIGHT: usize = 512;
/// A batch is handed on once it has this many files...
const BATCH_JOBS: usize = 64;
/// ...or this many bytes.
const BATCH_BYTES: u64 = 2 << 20;

/// One file to write.
pub struct Job {
    /// The entry's name, for messages.
    pub name: Vec<u8>,
    /// Its path beneath the destination, by components.
    pub path: Vec<Vec<u8>>,
    /// The directory it goes in, already walked to.
    pub dir: Arc<OwnedFd>,
    pub data: Data,
    pub finish: Finish,
}

/// A finished job.
pub struct Done {
    pub name: Vec<u8>,
    pub path: Vec<Vec<u8>>,
    pub size: u64,
    /// The frame its data was in (offset and buffer size), if it was in one.
    frame: Option<(u64, u64)>,
    pub result: Result<(), Problem>,
}

/// The writer threads, and the jobs given to them that are not finished yet.
pub struct Writers {
    batches: Option<Sender<Vec<Job>>>,
    done: Receiver<Vec<Done>>,
    threads: Vec<JoinHandle<()>>,
    /// Jobs not handed on yet: they go in batches, so that a thread wakes once per
    /// batch rather than once per file (a wake-up costs more than a small file).
    batch: Vec<Job>,
    batch_bytes: u64,
    /// Paths of the files being written (batched or handed on). Looked up for every
    /// entry and each directory on its way, so with a fast hash rather than SipHash:
    /// names that collide on purpose could only make a lookup go through the
    /// [`JOBS_IN_FLIGHT`] paths at most.
    pending: FxHashSet<Vec<Vec<u8>>>,
    /// Jobs pending by the frame their data is in.
    frames: FxHashMap<u64, usize>,
    bytes: u64,
}

impl Writers {
    /// Starts `threads` writer threads.
    pub fn start(threads: usize, temps: Arc<Temps>) -> Result<Writers> {
        let (batches, rx) = channel::<Vec<Job>>();
        let rx = Arc::new(Mutex::new(rx));
        let (done_tx, done) = channel::<Vec<Done>>();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let (rx, done_tx, temps) = (Arc::clone(&rx), done_tx.clone(), Arc::clone(&temps));
            let handle = std::thread::Builder::new()
                .name(format!("spate-write-{i}"))
                .spawn(move || work(&rx, &done_tx, &temps))
                .context("starting the writer threads")?;
            handles.push(handle);
        }
        Ok(Writers {
            batches: Some(batches),
            done,
            threads: handles,
            batch: Vec::new(),
            batch_bytes: 0,
            pending: FxHashSet::default(),
            frames: FxHashMap::default(),
            bytes: 0,
        })
    }

    /// Hands `job` to the writers, once the jobs in flight leave room for it. Jobs that
    /// finished meanwhile go to `finished`.
    pub fn send(&mut self, job: Job, finished: &mut Vec<Done>) {
        let size = job.data.bytes().len() as u64;
        let frame = job.data.frame();
        // What the job adds to the memory held: its own bytes, or its frame's buffer
        // unless another pending job holds that already.
        let weight = |writers: &Writers| match frame {
            Some((at, _)) if writers.frames.contains_key(&at) => 0,
            Some((_, len)) => len,
            None => size,
        };
        while !self.pending.is_empty()
            && (self.bytes + weight(self) > BYTES_IN_FLIGHT || self.pending.len() >= JOBS_IN_FLIGHT)
        {
            self.wait_one(finished);
        }
        self.collect(finished);
        self.pending.insert(job.path.clone());
        let added = weight(self);
        self.bytes += added;
        if let Some((at, _)) = frame {
            *self.frames.entry(at).or_insert(0) += 1;
        }
        self.batch_bytes += size;
        self.batch.push(job);
        if self.batch.len() >= BATCH_JOBS || self.batch_bytes >= BATCH_BYTES {
            self.flush(finished);
        }
    }

    /// Hands the batch on.
    fn flush(&mut self, finished: &mut Vec<Done>) {
        if self.batch.is_empty() {
            return;
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        if let Some(batches) = &self.batches
            && let Err(SendError(batch)) = batches.send(batch)
        {
            // Every writer thread is gone (they only end when told to): say so for
            // these files rather than wait for them forever.
            for job in batch {
                let done = Done {
                    size: job.data.bytes().len() as u64,
                    frame: job.data.frame(),
                    name: job.name,
                    path: job.path,
                    result: Err(dead()),
                };
                self.finish(done, finished);
            }
        }
    }

    /// Waits until no file being written is `path` or a directory on its way.
    pub fn settle(&mut self, path: &[Vec<u8>], finished: &mut Vec<Done>) {
        self.collect(finished);
        while (1..=path.len()).any(|n| self.pending.contains(&path[..n])) {
            self.wait_one(finished);
        }
    }

    /// Waits for every job.
    pub fn drain(&mut self, finished: &mut Vec<Done>) {
        while !self.pending.is_empty() {
            self.wait_one(finished);
        }
    }

    /// Jobs already finished, without waiting.
    fn collect(&mut self, finished: &mut Vec<Done>) {
        while let Ok(done) = self.done.try_recv() {
            for done in done {
                self.finish(done, finished);
            }
        }
    }

    /// Waits for the next batch to finish (handing on the one being filled first).
    fn wait_one(&mut self, finished: &mut Vec<Done>) {
        self.flush(finished);
        if self.pending.is_empty() {
            return;
        }
        match self.done.recv() {
            Ok(done) => {
                for done in done {
                    self.finish(done, finished);
                }
            }
            // Cannot happen while jobs are pending (the threads hold the sender until
            // told to stop); forget them rather than wait forever.
            Err(_) => self.pending.clear(),
        }
    }

    fn finish(&mut self, done: Done, finished: &mut Vec<Done>) {
        self.pending.remove(&done.path);
        let weight = match done.frame {
            Some((at, len)) => match self.frames.get_mut(&at) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    0
                }
                _ => {
                    self.frames.remove(&at);
                    len
                }
            },
            None => done.size,
        };
        self.bytes -= weight.min(self.bytes);
        finished.push(done);
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        // Closing the channel ends the threads once they are idle.
        self.batches = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A writer thread: takes batches until the channel closes.
fn work(batches: &Mutex<Receiver<Vec<Job>>>, done: &Sender<Vec<Done>>, temps: &Temps) {
    loop {
        let batch = {
            let batches = batches.lock().unwrap_or_else(|p| p.into_inner());
            batches.recv()
        };
        let Ok(batch) = batch else { return };
        let results = batch.into_iter().map(|job| write(job, temps)).collect();
        if done.send(results).is_err() {
            return;
        }
    }
}

/// Writes one job's file.
fn write(job: Job, temps: &Temps) -> Done {
    let Job {
        name,
        path,
        dir,
        data,
        finish,
    } = job;
    let file_name = path.last().map_or(&[][..], Vec::as_slice);
    // A panic must not lose the job: the entry loop would wait for it forever.
    let bytes = data.bytes();
    let result = catch_unwind(AssertUnwindSafe(|| {
        write_file(temps, &dir, file_name, &finish, |file| {
            std::io::Write::write_all(file, bytes).map_err(super::failed("writing"))
        })
    }))
    .unwrap_or_else(|_| Err(dead()));
    Done {
        name,
        size: bytes.len() as u64,
        frame: data.frame(),
        path,
        result,
    }
}

fn dead() -> Problem {
    Problem::Failed(ErrorKind::Io, "the writer thread failed".into())
}

/// How many writer threads unpack into `dest` uses by default: one per core on a
/// file system in memory, where writing a small file is all system-call CPU and
/// scales with threads; none elsewhere: the entry loop writes every file itself, in
/// archive order, as the one-stream path and GNU tar do. On ext4 a writer thread
/// creating files while the entry loop made the directories and symbolic links ahead
/// of it cost the inode allocator more system time than the one-stream path, once up
/// to twice as much (see benches/unpack.sh and the README).
pub fn threads(dest: &Path, cores: usize) -> usize {
    if in_memory(dest) { cores } else { 0 }
}

/// Whether `dir` is on a tmpfs or ramfs.
fn in_memory(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: NUL-terminated path; the struct is read only when statfs filled it.
    if unsafe { libc::statfs(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: statfs succeeded.
    let kind = unsafe { st.assume_init() }.f_type;
    // ramfs's magic (0x858458f6) is not in libc's table.
    kind == libc::TMPFS_MAGIC || kind as u64 & 0xffff_ffff == 0x8584_58f6
}
