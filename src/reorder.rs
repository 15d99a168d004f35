//! The reorder limit: how far the walk may run ahead of the printer.
//!
//! Results are printed in walk order, so a slow file holds back every result after it.
//! Those results wait in the printer's reorder buffer; the limit caps how many can
//! wait, which keeps memory bounded even when one huge file sits in front of a million
//! small ones.

use std::sync::{Condvar, Mutex};

/// Hands out sequence numbers, at most `size` ahead of the last one printed.
pub struct ReorderLimit {
    state: Mutex<State>,
    moved: Condvar,
    size: u64,
}

struct State {
    next: u64,
    printed: u64,
    closed: bool,
}

impl ReorderLimit {
    /// A limit that lets `size` entries be in flight or waiting to print.
    pub fn new(size: u64) -> Self {
        ReorderLimit {
            state: Mutex::new(State {
                next: 0,
                printed: 0,
                closed: false,
            }),
            moved: Condvar::new(),
            size: size.max(1),
        }
    }

    /// The next sequence number; blocks while the limit is reached. After [`close`]
    /// it no longer blocks, so a walker being torn down can finish.
    ///
    /// [`close`]: ReorderLimit::close
    pub fn admit(&self) -> u64 {
        self.admit_run(1)
    }

    /// The first of `n` consecutive sequence numbers, taken at once; blocks until all
    /// `n` fit under the limit (a limit below `n` is stretched to `n`, or they never
    /// would).
    pub fn admit_run(&self, n: u64) -> u64 {
        let room = self.size.max(n);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.closed && s.next + n > s.printed + room {
            s = self.moved.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        let seq = s.next;
        s.next += n;
        seq
    }

    /// True when [`admit`](ReorderLimit::admit) would wait now. Only the walker admits and
    /// the printed mark only rises, so for the walker a `false` stays true until it admits.
    pub fn would_block(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        !s.closed && s.next >= s.printed + self.size
    }

    /// Records that every sequence number below `printed` has been printed.
    pub fn printed_up_to(&self, printed: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if printed > s.printed {
            s.printed = printed;
            self.moved.notify_all();
        }
    }

    /// Stops holding the walk back (the run is ending).
    pub fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.closed = true;
        self.moved.notify_all();
    }

    /// How many sequence numbers were handed out.
    pub fn issued(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn walk_waits_for_printer_when_window_is_full() {
        let w = Arc::new(ReorderLimit::new(2));
        assert_eq!(w.admit(), 0);
        assert_eq!(w.admit(), 1);
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || w2.admit());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "third admit must wait");
        w.printed_up_to(1);
        assert_eq!(t.join().unwrap(), 2);
    }
}
