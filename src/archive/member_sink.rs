//! What pack's readers do with a member's bytes: hold a small file whole until the
//! writer's turn comes, or hand a large one to the writer while reading it.

use super::pack::{INLINE_MAX, Kind, Member};
use super::streamed::Streamer;
use crate::read::{Sink, SinkFactory};
use crate::walk::Entry;

/// A file read whole (empty when it was streamed), and its BLAKE3 digest when asked
/// for (as bytes: the table of contents keeps bytes, and only a manifest line needs
/// the hex digits).
pub struct Collected {
    pub data: Vec<u8>,
    pub digest: Option<blake3::Hash>,
}

/// What a reader does with a member's bytes.
pub enum MemberSink {
    /// Holds a small file whole until the writer's turn comes.
    Collect(Collector),
    /// Hands a large one to the writer while reading.
    Stream(Streamer),
}

impl Sink for MemberSink {
    type Output = Collected;

    fn update(&mut self, data: &[u8]) {
        match self {
            MemberSink::Collect(c) => c.update(data),
            MemberSink::Stream(s) => s.update(data),
        }
    }

    fn finish(self, len: u64) -> Collected {
        match self {
            MemberSink::Collect(c) => c.finish(len),
            MemberSink::Stream(s) => Collected {
                data: Vec::new(),
                digest: s.finish(),
            },
        }
    }

    fn may_wait(&self) -> bool {
        matches!(self, MemberSink::Stream(_))
    }
}

/// Collects a file's bytes (and hashes them on the reader's thread).
pub struct Collector {
    data: Vec<u8>,
    hasher: Option<blake3::Hasher>,
}

impl Sink for Collector {
    type Output = Collected;

    fn update(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
    }

    fn finish(self, _len: u64) -> Collected {
        Collected {
            data: self.data,
            digest: self.hasher.map(|h| h.finalize()),
        }
    }
}

pub struct CollectFactory {
    pub digest: bool,
}

impl SinkFactory for CollectFactory {
    type Tag = Member;
    type Sink = MemberSink;

    fn make(&self, entry: &Entry, member: &Member) -> MemberSink {
        if let Kind::StreamRead(outgoing) = &member.kind
            && let Some(streamer) = outgoing.take(self.digest)
        {
            return MemberSink::Stream(streamer);
        }
        MemberSink::Collect(Collector {
            data: Vec::with_capacity(entry.size.min(INLINE_MAX) as usize),
            hasher: self.digest.then(blake3::Hasher::new),
        })
    }

    fn unread(&self, _entry: &Entry, member: &Member) {
        // The writer waits on this stream: end it.
        if let Kind::StreamRead(outgoing) = &member.kind {
            outgoing.close();
        }
    }
}
