//! Facts about this process that the engine reports.

/// The peak resident set size of this process in KiB (`VmHWM`), where the OS tells it (Linux).
#[must_use]
pub fn peak_rss_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

/// A `kB` field of `/proc/self/status`.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_covers_what_was_touched() {
        // While the block is alive, the resident size, and so the peak, is at least its size
        // (other tests running beside this one only add to it).
        let block = vec![1_u8; 64 * 1024 * 1024];
        std::hint::black_box(&block);
        let resident = status_kb("VmRSS:").expect("Linux reports VmRSS");
        let peak = peak_rss_kb().expect("Linux reports VmHWM");
        assert!(
            resident >= 64 * 1024,
            "resident {resident} KiB with a 64 MiB block"
        );
        assert!(
            peak >= resident,
            "peak {peak} KiB below resident {resident} KiB"
        );
    }
}
