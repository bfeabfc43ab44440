//! The retry settings the client connectors share (`backoff_ms`, `max_backoff_ms`,
//! `max_retries`, `timeout_ms`): their defaults, for `#[serde(default = "...")]`, and their
//! check.

use temblor_shim::PluginError;

/// `backoff_ms`: the wait before the first retry.
#[must_use]
pub fn default_backoff_ms() -> u64 {
    100
}

/// `max_backoff_ms`: the longest wait between retries (the wait doubles up to it).
#[must_use]
pub fn default_max_backoff_ms() -> u64 {
    5000
}

/// `max_retries`: attempts after the first before a batch fails.
#[must_use]
pub fn default_max_retries() -> u32 {
    10
}

/// `timeout_ms`: for connecting and for each write.
#[must_use]
pub fn default_timeout_ms() -> u64 {
    5000
}

/// Checks what serde cannot: `backoff_ms` and `timeout_ms` at least 1, `max_backoff_ms` at
/// least `backoff_ms`.
///
/// # Errors
/// A `Config` error naming the field.
pub fn check(backoff_ms: u64, max_backoff_ms: u64, timeout_ms: u64) -> Result<(), PluginError> {
    if backoff_ms == 0 {
        return Err(PluginError::config("`backoff_ms` must be at least 1"));
    }
    if max_backoff_ms < backoff_ms {
        return Err(PluginError::config(format_args!(
            "`max_backoff_ms` ({max_backoff_ms}) must be at least `backoff_ms` ({backoff_ms})"
        )));
    }
    if timeout_ms == 0 {
        return Err(PluginError::config("`timeout_ms` must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_value_is_named() {
        assert!(check(100, 5000, 5000).is_ok());
        assert!(check(1, 1, 1).is_ok());
        for ((b, m, t), says) in [
            ((0, 5000, 5000), "`backoff_ms` must be at least 1"),
            (
                (100, 50, 5000),
                "`max_backoff_ms` (50) must be at least `backoff_ms` (100)",
            ),
            ((100, 5000, 0), "`timeout_ms` must be at least 1"),
        ] {
            let e = check(b, m, t).unwrap_err();
            assert_eq!(e.kind, temblor_shim::ErrorKind::Config);
            assert_eq!(e.message, says);
        }
    }
}
