//! Checks of config values that serde cannot make, with the messages every connector gives.

use temblor_shim::PluginError;

/// `value` is at least 1 (`max_connections`, ...).
///
/// # Errors
/// A `Config` error naming `field`.
pub fn at_least_one(field: &str, value: usize) -> Result<(), PluginError> {
    if value == 0 {
        return Err(PluginError::config(format_args!(
            "`{field}` must be at least 1"
        )));
    }
    Ok(())
}

/// `value` is between 1 and `limit` (`max_frame`, `max_message`, ...).
///
/// # Errors
/// A `Config` error naming `field`, the range and the value.
pub fn in_range(field: &str, value: usize, limit: usize) -> Result<(), PluginError> {
    if !(1..=limit).contains(&value) {
        return Err(PluginError::config(format_args!(
            "`{field}` must be between 1 and {limit}, found {value}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_value_is_named() {
        assert!(at_least_one("max_connections", 1).is_ok());
        assert!(in_range("max_frame", 10, 10).is_ok());
        for (e, says) in [
            (
                at_least_one("max_connections", 0),
                "`max_connections` must be at least 1",
            ),
            (
                in_range("max_frame", 0, 10),
                "`max_frame` must be between 1 and 10, found 0",
            ),
            (
                in_range("max_message", 11, 10),
                "`max_message` must be between 1 and 10, found 11",
            ),
        ] {
            let e = e.unwrap_err();
            assert_eq!(e.kind, temblor_shim::ErrorKind::Config);
            assert_eq!(e.message, says);
        }
    }
}
