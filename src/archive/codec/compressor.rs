//! The compressor thread: [`ThreadEncoder`] collects the bytes written into 1 MiB
//! chunks and hands them over a bounded channel to a thread of its own, which runs one
//! of [`super::encode`]'s compressors on them ([`Chunks`] is that thread's end). Spent
//! chunks travel back to be filled again, and the error that stopped the thread (the
//! output's own) comes back as the writer's.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{CHUNK, QUEUE};
use crate::output::Output;

/// Collects bytes into chunks and hands them to the compressor thread.
pub struct ThreadEncoder {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    /// Chunks the compressor is done with, to fill again: fresh 1 MiB allocations
    /// would cost a page fault and a page clear every 4 KiB.
    spent: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<Output>>>,
    /// The output, as messages name it.
    pub(super) what: String,
}

impl ThreadEncoder {
    /// Starts a compressor thread running `body` on the chunks written. `body` owns
    /// the output: when it fails or panics, the output (and a temporary file) is
    /// dropped with it.
    pub(super) fn spawn(
        what: String,
        body: impl FnOnce(Chunks) -> io::Result<Output> + Send + 'static,
    ) -> io::Result<ThreadEncoder> {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let (spent_tx, spent) = sync_channel::<Vec<u8>>(QUEUE + 2);
        let chunks = Chunks {
            rx,
            spent: spent_tx,
        };
        let thread = std::thread::Builder::new()
            .name("spate-compress".into())
            .spawn(move || body(chunks))
            .map_err(|e| io::Error::new(e.kind(), format!("starting the compressor: {e}")))?;
        Ok(ThreadEncoder {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            spent,
            thread: Some(thread),
            what,
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut next = self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let chunk = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    /// The compressor thread ended before its input did: the error that stopped it
    /// (the output's own, as `File too large (os error 27)`), which is the real
    /// cause of the failed write.
    fn stopped(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Ok(Ok(_))) => io::Error::other("the compressor ended before its input"),
            Some(Err(_)) => io::Error::other("the compressor thread panicked"),
            // Already joined: its error was returned by an earlier write.
            None => io::Error::other("the compressor had stopped"),
        }
    }

    /// Sends what is left, waits for the compressor and returns the finished output.
    pub(super) fn finish(mut self) -> io::Result<Output> {
        self.send()?;
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the compressor thread panicked")),
            None => Err(io::Error::other("the compressor had stopped")),
        }
    }
}

/// An encoder dropped without `ThreadEncoder::finish` (the run failed) still waits for its
/// thread, so the output it owns is dropped — and a temporary file removed — before
/// the process exits.
impl Drop for ThreadEncoder {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for ThreadEncoder {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = bytes.len().min(room);
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The chunks a compressor thread receives; each goes back once it is consumed.
pub(super) struct Chunks {
    pub(super) rx: Receiver<Vec<u8>>,
    pub(super) spent: SyncSender<Vec<u8>>,
}

impl Chunks {
    /// Calls `f` on every chunk, in order, and hands each back for reuse.
    pub(super) fn each(self, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        for chunk in self.rx {
            f(&chunk)?;
            let _ = self.spent.try_send(chunk);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressor_thread_that_panics_fails_the_write_and_finish() {
        let panicking = || ThreadEncoder::spawn("out".into(), |_| panic!("compressor")).unwrap();
        let mut enc = panicking();
        // More chunks than the queue holds: a send either fails or waits for the panic.
        let err = Write::write_all(&mut enc, &vec![0u8; (QUEUE + 2) * CHUNK]).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let mut enc = panicking();
        Write::write_all(&mut enc, b"less than a chunk").unwrap();
        let err = enc.finish().err().expect("finish fails");
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[test]
    fn a_failed_output_write_is_reported_as_the_os_error() {
        // What the compressor thread met, not "the compressor stopped".
        let efbig = || io::Error::from_raw_os_error(libc::EFBIG);
        let mut enc = ThreadEncoder::spawn("out".into(), move |chunks| {
            chunks.each(|_| Err(efbig()))?;
            unreachable!("the first chunk fails")
        })
        .unwrap();
        let err = Write::write_all(&mut enc, &vec![0u8; (QUEUE + 2) * CHUNK]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    }
}
