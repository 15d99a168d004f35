//! The process's own peak memory, for `--stats` and the check summary.

/// Peak resident set size in KiB (`VmHWM` of /proc/self/status): the high-water mark of
/// this process image only. (`getrusage`'s `ru_maxrss` would also count the memory of
/// the parent that spawned us, which exec carries over into it.) `None` off Linux.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `peak RSS 23.4 MiB`, or nothing when unknown.
pub fn peak_rss_text() -> String {
    match peak_rss_kib() {
        Some(kib) => format!(
            "; peak RSS {}",
            humansize::format_size(kib * 1024, humansize::BINARY)
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_known_and_plausible() {
        let kib = super::peak_rss_kib().expect("Linux has /proc/self/status");
        assert!(kib > 100 && kib < 64 << 20, "{kib} KiB");
    }
}
