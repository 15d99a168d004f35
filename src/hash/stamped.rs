//! Digests stamped with what the file was when it was read: the metadata a JSON
//! manifest records.

use std::marker::PhantomData;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::manifest::FileMeta;
use crate::manifest::meta::nanos;
use crate::read::{Sink, SinkFactory};
use crate::walk::Entry;

use super::digest::{Digests, HasherFactory, MultiHasher};

/// The metadata of an entry as the reader is about to read it. The `stat` it comes
/// from was taken before the first byte was read (by the walk, or on the opened file),
/// so any write after it moves mtime or ctime away from what is recorded, and a later
/// `--update` reads the file again.
pub(crate) fn meta_of(entry: &Entry, hashed_ns: Option<i64>) -> FileMeta {
    FileMeta {
        mtime_ns: nanos(entry.mtime),
        ctime_ns: nanos(entry.identity.ctime),
        inode: entry.identity.inode,
        dev: entry.identity.dev,
        hashed_ns,
    }
}

/// Now, in nanoseconds since the epoch (0 on a clock set before 1970).
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Makes, per file, the digests of [`HasherFactory`] plus the file's [`FileMeta`].
/// Generic over the job's tag, which it ignores (`--update` tags why a file is read).
pub(crate) struct StampedFactory<T> {
    pub hasher: HasherFactory,
    tag: PhantomData<fn(T)>,
}

impl<T> StampedFactory<T> {
    pub fn new(hasher: HasherFactory) -> Self {
        StampedFactory {
            hasher,
            tag: PhantomData,
        }
    }
}

pub(crate) struct StampedSink {
    hasher: MultiHasher,
    meta: FileMeta,
}

impl StampedSink {
    /// Stamps the digests of `hasher` with what `entry` is as it is about to be read
    /// (for sinks whose algorithms vary per file, as `check`'s).
    pub fn new(hasher: MultiHasher, entry: &Entry) -> Self {
        StampedSink {
            hasher,
            meta: meta_of(entry, Some(now_ns())),
        }
    }
}

impl<T: Send + 'static> SinkFactory for StampedFactory<T> {
    type Tag = T;
    type Sink = StampedSink;
    fn make(&self, entry: &Entry, _tag: &T) -> StampedSink {
        StampedSink::new(self.hasher.make(entry, &()), entry)
    }
}

impl Sink for StampedSink {
    type Output = (Digests, FileMeta);

    fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    fn finish(self, len: u64) -> (Digests, FileMeta) {
        (self.hasher.finish(len), self.meta)
    }
}
