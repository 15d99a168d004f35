//! The settings every facade call shares: which files a walk visits and how they are
//! read. Plain values with the commands' defaults; they become the jobs' own settings
//! (probing io_uring, checking bounds) only when a call starts.

use crate::error::describe_chain;
use crate::read::limits::{self, MAX_BUFFER_SIZE, MAX_JOBS, MAX_QUEUE_DEPTH, MAX_READ_BUFFERS};
use crate::read::{self, IoMode};
use crate::walk;

/// Which files a walk visits (`spate hash`'s walk options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Glob patterns (`--exclude`); a match on the file name or the whole path leaves
    /// the entry out, and everything below it for a directory.
    pub exclude: Vec<String>,
    /// Follow symbolic links, with loop detection (`-L`).
    pub follow: bool,
    /// Do not cross file-system boundaries (`-x`).
    pub one_file_system: bool,
}

impl WalkOptions {
    pub(crate) fn to_walk(&self) -> walk::WalkOptions {
        walk::WalkOptions {
            exclude: self.exclude.clone(),
            follow: self.follow,
            one_file_system: self.one_file_system,
            ..Default::default()
        }
    }
}

/// Which I/O backend reads the files (`--io`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Io {
    /// io_uring where the kernel allows it, else the thread pool.
    #[default]
    Auto,
    /// io_uring only; the call fails where the kernel refuses it.
    Uring,
    /// A pool of threads reading with `pread`.
    Threads,
}

/// How files are read (`spate hash`'s I/O options). `None` takes the command's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// The backend (`--io`, default [`Io::Auto`]).
    pub io: Io,
    /// Rings (io_uring) or reader threads (`-j`, 1 to 1024; default one ring per core,
    /// or 2 threads per core and at least 16).
    pub jobs: Option<usize>,
    /// Files in flight at once (`--queue-depth`, 1 to 65536; default 32, raised up to
    /// 128 by io_uring while reads miss the page cache).
    pub queue_depth: Option<usize>,
    /// Bytes per read (`--buffer-size`, at most 1 GiB; default 1 MiB).
    pub buffer_size: Option<usize>,
    /// Never read large cached files through memory maps (`--no-mmap`).
    pub no_mmap: bool,
}

impl ReadOptions {
    /// Probes the backend and applies these settings to the defaults; `Err` in words
    /// when a setting is out of bounds or io_uring was demanded and is not available.
    pub(crate) fn resolve(&self) -> Result<read::ReadOptions, String> {
        let mode = match self.io {
            Io::Auto => IoMode::Auto,
            Io::Uring => IoMode::Uring,
            Io::Threads => IoMode::Threads,
        };
        // The notice that io_uring is unavailable is for people; a library caller
        // asked for `Auto` and gets the thread pool.
        let (backend, _notice) = read::select(mode).map_err(|e| describe_chain(&e))?;
        let mut options = read::ReadOptions::defaults(backend);
        if let Some(jobs) = self.jobs {
            check((1..=MAX_JOBS).contains(&jobs), "jobs", jobs, "1 to 1024")?;
            options.jobs = jobs;
        }
        if let Some(depth) = self.queue_depth {
            let bounds = "1 to 65536";
            check(
                (1..=MAX_QUEUE_DEPTH).contains(&depth),
                "queue_depth",
                depth,
                bounds,
            )?;
            options.queue_depth = depth;
            options.max_queue_depth = depth;
        }
        if let Some(size) = self.buffer_size {
            let bounds = "1 byte to 1 GiB";
            check(
                (1..=MAX_BUFFER_SIZE).contains(&size),
                "buffer_size",
                size,
                bounds,
            )?;
            options.buffer_size = size;
        }
        if self.no_mmap {
            options.mmap_threshold = None;
        }
        let bytes = limits::pool_bytes(&options);
        if bytes > MAX_READ_BUFFERS {
            return Err(format!(
                "queue_depth, jobs and buffer_size would hold {bytes} bytes of read buffers; \
                 at most 16 GiB"
            ));
        }
        Ok(options)
    }
}

fn check(ok: bool, name: &str, value: usize, bounds: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{name} must be {bounds} (got {value})"))
    }
}
