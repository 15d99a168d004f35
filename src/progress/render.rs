//! The words of a progress report, from one snapshot of the counts: the line `plain`
//! prints every few seconds, and the message beside the bar. Pure functions, so the
//! rules (no percentage or ETA before the total is known) are tested without a clock.

use std::time::Duration;

use crate::report::PREFIX;
use humansize::{BINARY, format_size};

/// What is known about the total a run is heading for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// A walk is still finding files: the counts so far are a floor, not a total.
    Counting,
    /// Every file (or the whole archive) is counted.
    Known,
    /// No total can be known (an archive on standard input).
    Unknown,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub found_files: u64,
    pub found_bytes: u64,
    pub done_files: u64,
    pub done_bytes: u64,
    pub total: Total,
}

impl Snapshot {
    /// Bytes per second so far.
    pub fn rate(&self) -> u64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.done_bytes as f64 / secs) as u64
        } else {
            0
        }
    }

    /// Time left at the rate so far, once the total is known and something was done.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (self.total == Total::Known && rate > 0).then(|| {
            let left = self.found_bytes.saturating_sub(self.done_bytes);
            Duration::from_secs_f64(left as f64 / rate as f64)
        })
    }

    /// Done out of found, as a whole percentage, once the total is known.
    pub fn percent(&self) -> Option<u64> {
        (self.total == Total::Known).then(|| {
            let done = u128::from(self.done_bytes.min(self.found_bytes)) * 100;
            // Nothing to do is all done.
            done.checked_div(u128::from(self.found_bytes))
                .map_or(100, |p| p as u64)
        })
    }
}

/// The count of things done, and out of how many when that is known (`1,204/3,000
/// files`).
pub fn files(s: &Snapshot, unit: &str) -> String {
    if s.total == Total::Known && s.found_files >= s.done_files && s.found_files > 0 {
        format!("{}/{} {unit}", group(s.done_files), group(s.found_files))
    } else {
        format!("{} {unit}", group(s.done_files))
    }
}

/// The bar's message beside a bar with a total: rate and ETA over the whole run so
/// far (steadier than the last seconds' rate while a compressor catches up), and the
/// count of files.
pub fn beside_bar(s: &Snapshot, unit: &str) -> String {
    let eta = s.eta().map_or_else(|| "-".to_string(), clock);
    format!("{}/s ETA {eta} {}", size(s.rate()), files(s, unit))
}

/// The bar's message while the walk is still counting (no bar: there is no total to
/// fill it against).
pub fn counting(s: &Snapshot, unit: &str) -> String {
    format!(
        "counting… {} {unit}, {} found; {} done",
        group(s.found_files),
        size(s.found_bytes),
        size(s.done_bytes)
    )
}

/// One line for logs (`--progress=plain`), e.g.
/// `spate: progress: 0:05 1,204/3,000 files, 512 MiB/1.20 GiB (42%), 102 MiB/s, ETA 0:07`.
pub fn plain(s: &Snapshot, unit: &str) -> String {
    let head = format!("{PREFIX}progress: {}", clock(s.elapsed));
    let rate = format!("{}/s", size(s.rate()));
    match s.total {
        Total::Counting => format!("{head} {}, {rate}", counting(s, unit)),
        Total::Unknown => format!(
            "{head} {}, {} read, {rate}",
            files(s, unit),
            size(s.done_bytes)
        ),
        Total::Known => {
            let eta = s.eta().map_or_else(|| "-".to_string(), clock);
            format!(
                "{head} {}, {}/{} ({}%), {rate}, ETA {eta}",
                files(s, unit),
                size(s.done_bytes),
                size(s.found_bytes),
                s.percent().unwrap_or(0),
            )
        }
    }
}

/// The last line of `--progress=plain`, when the run is over.
pub fn plain_end(s: &Snapshot, unit: &str) -> String {
    format!(
        "{PREFIX}progress: {} done, {} {unit}, {} ({}/s)",
        clock(s.elapsed),
        group(s.done_files),
        size(s.done_bytes),
        size(s.rate())
    )
}

pub fn size(bytes: u64) -> String {
    format_size(bytes, BINARY)
}

/// `m:ss`, or `h:mm:ss` past an hour.
pub fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A count with thousands separated (`12,345`), as people read them in a log.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(total: Total) -> Snapshot {
        Snapshot {
            elapsed: Duration::from_secs(5),
            found_files: 3000,
            found_bytes: 100 << 20,
            done_files: 1204,
            done_bytes: 50 << 20,
            total,
        }
    }

    #[test]
    fn no_percentage_or_eta_while_counting() {
        let line = plain(&snap(Total::Counting), "files");
        assert!(line.contains("counting… 3,000 files, 100 MiB found; 50 MiB done"));
        assert!(!line.contains('%') && !line.contains("ETA"), "{line}");
    }

    #[test]
    fn a_known_total_gives_percentage_and_eta() {
        let line = plain(&snap(Total::Known), "files");
        assert_eq!(
            line,
            "spate: progress: 0:05 1,204/3,000 files, 50 MiB/100 MiB (50%), 10 MiB/s, ETA 0:05"
        );
    }

    #[test]
    fn an_unknown_total_gives_counts_only() {
        let line = plain(&snap(Total::Unknown), "entries");
        assert_eq!(
            line,
            "spate: progress: 0:05 1,204 entries, 50 MiB read, 10 MiB/s"
        );
    }

    #[test]
    fn counts_and_clocks_read_as_people_write_them() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(clock(Duration::from_secs(65)), "1:05");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
