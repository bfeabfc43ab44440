//! `Backoff`: the wait between a client connector's attempts (`backoff_ms`, doubling up to
//! `max_backoff_ms`), so that each connector does not keep the doubling by hand.

use std::time::Duration;

/// The waits before the retries of one attempt: `first`, then twice the last, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first` and doubles up to `max` (a `max` below `first` is `first`).
    #[must_use]
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            next: first,
        }
    }

    /// The same in milliseconds, as the config keys give it.
    #[must_use]
    pub fn from_ms(first_ms: u64, max_ms: u64) -> Self {
        Self::new(
            Duration::from_millis(first_ms),
            Duration::from_millis(max_ms),
        )
    }

    /// The wait before the next retry; the one after it is twice as long (up to the most).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// Back to the first wait (after a connection that lasted).
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The longest wait.
    #[must_use]
    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_most_and_resets() {
        let mut b = Backoff::from_ms(100, 500);
        let waits: Vec<u128> = (0..5).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
        assert_eq!(b.max(), Duration::from_millis(500));
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::from_ms(u64::MAX / 2, u64::MAX);
        for _ in 0..4 {
            assert!(b.next_wait() <= Duration::from_millis(u64::MAX));
        }
    }
}
