//! The sinks a check's readers feed: for each listed file, a hasher in the algorithms
//! its own line may be in.

use super::Note;
use super::next::Next;
use crate::algo::{Algo, AlgoSet};
use crate::hash::digest::MultiHasher;
use crate::hash::stamped::StampedSink;
use crate::read::SinkFactory;
use crate::walk::Entry;

/// Makes the hashers for each listed file: the algorithms its own line's digests may be
/// in, since every line of a manifest may name another, plus those of `--update`'s NEW.
pub(super) struct LineHashers {
    extra: AlgoSet,
}

impl LineHashers {
    /// Hashers for a check; with `next`, also in the algorithms NEW is written in.
    pub(super) fn new(next: Option<&Next>) -> LineHashers {
        let extra = next.map_or(AlgoSet::default(), |n| n.algos().iter().copied().collect());
        LineHashers { extra }
    }
}

impl SinkFactory for LineHashers {
    type Tag = Note;
    type Sink = StampedSink;
    fn make(&self, entry: &Entry, note: &Note) -> StampedSink {
        let algos: Vec<Algo> = match note {
            Note::Listed(listed) => listed.algos().union(self.extra).iter().collect(),
            // Only listed files are handed to the readers.
            Note::Judged(..)
            | Note::Malformed { .. }
            | Note::GaveUp { .. }
            | Note::Misplaced { .. } => Vec::new(),
        };
        StampedSink::new(MultiHasher::new(&algos), entry)
    }
}
