//! Throughput over time, for the report's lines: a thread reads a job's byte counter
//! (and file counter, for tree workloads) every 100 ms, as fio's `log_avg_msec=100`.
//! The engines bump that counter for the progress line anyway, one relaxed atomic add
//! per completion, so sampling adds no lock and no system call to any I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the counters are read.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// A build with the `bench-baseline` feature samples nothing, draws no progress line
/// and bumps no counter during a job: the reference `benches/bench_overhead.sh`
/// measures the default build's sampling and live output against. Not for users: its
/// reports have no throughput over time.
pub const BASELINE: bool = cfg!(feature = "bench-baseline");

/// A job's throughput over time: one entry per interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    /// The interval asked for, seconds; each entry's own length is the time since the
    /// previous one (the last may be shorter: the job ended within it).
    pub interval_s: f64,
    /// End of each interval, seconds since the job's clock started.
    pub t_s: Vec<f64>,
    /// 10^6 bytes per second within each interval.
    pub mb_s: Vec<f64>,
    /// Files per second within each interval (tree workloads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_per_s: Option<Vec<f64>>,
    /// CPU time the sampling thread itself used, seconds: what sampling costs.
    pub cpu_s: f64,
}

/// CPU time the calling thread has used so far (CLOCK_THREAD_CPUTIME_ID), seconds;
/// 0 where the clock cannot be read.
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Counters read by the sampling thread: bytes, and files where a job counts them.
#[derive(Clone)]
pub struct Counters {
    pub bytes: Arc<AtomicU64>,
    pub files: Option<Arc<AtomicU64>>,
}

/// The sampling thread of one job; [`Sampler::finish`] stops it.
pub struct Sampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Samples>>,
}

impl Sampler {
    /// Samples `counters` every [`INTERVAL`] from `started`, the job's clock.
    pub fn start(counters: Counters, started: Instant) -> Sampler {
        if BASELINE {
            return Sampler {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("spate-bench-sampler".into())
            .spawn(move || sample(&counters, started, &stopped))
            .ok();
        Sampler {
            stop: Some(stop),
            thread,
        }
    }

    /// Stops sampling, with a last, shorter interval up to now; the samples so far.
    pub fn finish(mut self) -> Samples {
        self.stop.take();
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which ends on its own.
        self.stop.take();
    }
}

fn sample(counters: &Counters, started: Instant, stopped: &mpsc::Receiver<()>) -> Samples {
    let read = |c: &Option<Arc<AtomicU64>>| c.as_ref().map_or(0, |c| c.load(Ordering::Relaxed));
    // Cumulative (seconds, bytes, files) at each tick; rates are worked out at the end.
    let mut points: Vec<(f64, u64, u64)> = vec![(0.0, 0, 0)];
    let mut tick = 1u32;
    loop {
        // Ticks fixed to the start, so a late wake-up does not shift every later one.
        let due = started + INTERVAL * tick;
        let wait = due.saturating_duration_since(Instant::now());
        let last = !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
        let point = (
            started.elapsed().as_secs_f64(),
            counters.bytes.load(Ordering::Relaxed),
            read(&counters.files),
        );
        if last {
            // A last sliver of a few ms says more about timer noise than about the
            // disk: it joins the interval before it.
            if points.len() > 1
                && point.0 - points[points.len() - 1].0 < INTERVAL.as_secs_f64() / 10.0
            {
                points.pop();
            }
            points.push(point);
            let mut samples = rates(&points, counters.files.is_some());
            samples.cpu_s = thread_cpu_s();
            return samples;
        }
        points.push(point);
        tick += 1;
    }
}

/// The rate within each interval between cumulative points.
fn rates(points: &[(f64, u64, u64)], files: bool) -> Samples {
    let mut samples = Samples {
        interval_s: INTERVAL.as_secs_f64(),
        files_per_s: files.then(Vec::new),
        ..Samples::default()
    };
    for w in points.windows(2) {
        let ((t0, b0, f0), (t1, b1, f1)) = (w[0], w[1]);
        let span = (t1 - t0).max(1e-9);
        samples.t_s.push(t1);
        samples.mb_s.push(b1.saturating_sub(b0) as f64 / span / 1e6);
        if let Some(f) = &mut samples.files_per_s {
            f.push(f1.saturating_sub(f0) as f64 / span);
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_rate_of_each_interval() {
        let counters = Counters {
            bytes: Arc::new(AtomicU64::new(0)),
            files: Some(Arc::new(AtomicU64::new(0))),
        };
        let sampler = Sampler::start(counters.clone(), Instant::now());
        for _ in 0..5 {
            counters.bytes.fetch_add(1_000_000, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(60));
        }
        let samples = sampler.finish();
        assert!(samples.t_s.len() >= 2, "{samples:?}");
        assert!(samples.t_s.windows(2).all(|w| w[0] < w[1]));
        let total: f64 = samples
            .t_s
            .iter()
            .scan(0.0, |prev, &t| {
                let span = t - *prev;
                *prev = t;
                Some(span)
            })
            .zip(&samples.mb_s)
            .map(|(span, mb_s)| span * mb_s * 1e6)
            .sum();
        assert!(
            (total - 5e6).abs() < 1.0,
            "rates add up to the bytes: {total}"
        );
        assert_eq!(
            samples.files_per_s.map(|f| f.len()),
            Some(samples.t_s.len())
        );
    }
}
