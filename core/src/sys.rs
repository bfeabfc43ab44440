//! Facts about this process that the engine reports.

/// The peak resident set size of this process in KiB (`VmHWM`), where the OS tells it (Linux).
#[must_use]
pub fn peak_rss_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

/// The resident set size of this process in KiB (`VmRSS`), where the OS tells it (Linux).
#[must_use]
pub fn rss_kb() -> Option<u64> {
    status_kb("VmRSS:")
}

/// How many threads this process runs (`Threads` of `/proc/self/status`).
#[must_use]
pub fn threads() -> Option<u64> {
    status_kb("Threads:")
}

/// How many file descriptors this process has open (entries of `/proc/self/fd`, less the one
/// reading it).
#[must_use]
pub fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// A `kB` (or plain number) field of `/proc/self/status`.
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
        assert!(rss_kb().is_some_and(|kb| kb >= 64 * 1024));
    }

    #[test]
    fn threads_and_files_are_counted() {
        let before = open_fds().expect("Linux lists /proc/self/fd");
        let file = std::fs::File::open("/proc/self/status").expect("open");
        let during = open_fds().expect("Linux lists /proc/self/fd");
        // Other tests open and close files meanwhile: this one is counted among them.
        assert!(during >= 1 && before < 100_000, "{before} then {during}");
        drop(file);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(threads().expect("Linux reports Threads") >= 2);
        drop(tx);
        let _ = t.join();
    }
}
