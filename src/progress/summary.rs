//! The lines printed at the end of a run: hash's `--stats`, and what `pack` and
//! `unpack` say they did (as `zstd -v` says its ratio).

use std::time::Instant;

use humansize::{BINARY, format_size};

use super::render::group;

/// Counts for the `--stats` summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub errors: u64,
}

impl Summary {
    /// One human-readable line, e.g.
    /// `12 files, 3.50 MiB in 0.20 s (17.50 MiB/s); 1 skipped, 0 errors`.
    pub fn render(&self, started: Instant) -> String {
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (self.bytes as f64 / secs) as u64
        } else {
            0
        };
        format!(
            "{} files, {} in {:.2} s ({}/s); {} skipped, {} errors",
            self.files,
            format_size(self.bytes, BINARY),
            secs,
            format_size(rate, BINARY),
            self.skipped,
            self.errors
        )
    }
}

/// What an archive job moved: entries, and bytes as tar data and as the archive holds
/// them (compressed).
#[derive(Debug, Default, Clone)]
pub struct ArchiveSummary {
    pub entries: u64,
    /// Bytes of the tar stream (`pack`), or of the file data written (`unpack`).
    pub tar_bytes: u64,
    /// The archive's bytes, compressed.
    pub archive_bytes: u64,
}

impl ArchiveSummary {
    /// `pack`'s line, with the ratio as `zstd -v` gives it, e.g.
    /// `x.tar.zst: 31.25% (512 MiB => 160 MiB), 1,204 entries in 1.30 s (393.85 MiB/s)`.
    pub fn render_pack(&self, archive: &str, started: Instant) -> String {
        let (secs, rate) = timing(self.tar_bytes, started);
        format!(
            "{archive}: {:.2}% ({} => {}), {} entries in {secs:.2} s ({}/s)",
            percent(self.archive_bytes, self.tar_bytes),
            format_size(self.tar_bytes, BINARY),
            format_size(self.archive_bytes, BINARY),
            group(self.entries),
            format_size(rate, BINARY),
        )
    }

    /// `unpack`'s line, e.g.
    /// `x.tar.zst: 1,204 entries, 512 MiB (from 160 MiB) in 1.30 s (393.85 MiB/s)`.
    pub fn render_unpack(&self, archive: &str, started: Instant) -> String {
        let (secs, rate) = timing(self.tar_bytes, started);
        format!(
            "{archive}: {} entries, {} (from {}) in {secs:.2} s ({}/s)",
            group(self.entries),
            format_size(self.tar_bytes, BINARY),
            format_size(self.archive_bytes, BINARY),
            format_size(rate, BINARY),
        )
    }
}

/// Seconds since `started`, and `bytes` per second over them.
fn timing(bytes: u64, started: Instant) -> (f64, u64) {
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    };
    (secs, rate)
}

/// `part` as a percentage of `whole` (100% of nothing is nothing).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_says_the_ratio_as_zstd_does() {
        let s = ArchiveSummary {
            entries: 1204,
            tar_bytes: 512 << 20,
            archive_bytes: 160 << 20,
        };
        let line = s.render_pack("x.tar.zst", Instant::now());
        assert!(
            line.starts_with("x.tar.zst: 31.25% (512 MiB => 160 MiB), 1,204 entries in "),
            "{line}"
        );
    }
}
