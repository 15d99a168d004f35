//! The progress line of a running job: bytes moved and the rate so far, redrawn a few
//! times a second on stderr, and only when stderr is a terminal (like `progress.rs`).
//! Engines only bump an atomic counter; this thread reads it, so the hot path never
//! touches the terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress line for one job; [`Live::finish`] clears it.
pub struct Live {
    stop: Arc<AtomicBool>,
    /// Returns the CPU time the thread used, seconds.
    thread: Option<JoinHandle<f64>>,
}

impl Live {
    /// Shows `label` and the bytes in `moved` out of `total`, if `show` and stderr is a
    /// terminal.
    pub fn start(show: bool, label: &str, total: u64, moved: Arc<AtomicU64>) -> Live {
        let stop = Arc::new(AtomicBool::new(false));
        let show = show && !super::samples::BASELINE;
        let thread = (show && std::io::stderr().is_terminal())
            .then(|| {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(
                    "{spinner} {msg} {elapsed} {wide_bar} {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_message(label.to_string());
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name("spate-bench-progress".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            bar.set_position(moved.load(Ordering::Relaxed));
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        bar.finish_and_clear();
                        super::samples::thread_cpu_s()
                    })
                    .ok()
            })
            .flatten();
        Live { stop, thread }
    }

    /// Removes the line from the terminal; the CPU time its thread used, seconds (0
    /// when no line was drawn).
    pub fn finish(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
