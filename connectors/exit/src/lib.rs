//! The `exit` connector: a sink that stops the engine when the first event reaches it, like
//! Tremor's exit connector.
//!
//! On the first `push` that carries at least one frame (a batch of encoded events), the sink
//! waits `delay_ms` (inside that `push`: the sink's thread blocks, and with it, once the
//! channels between them are full, the pipelines feeding it), then asks the engine to stop
//! (`stop_requested` turns true). The engine then stops its sources, lets the events in flight
//! drain through the pipelines to every sink, flushes the sinks and exits with status 0. The
//! exit is always graceful, and always status 0.
//!
//! Frames after the first batch are accepted and ignored, as are the contents of the first:
//! unlike Tremor's, this connector does not read a delay or an exit code from the event (a sink
//! sees encoded bytes, not events). It writes nothing, so any codec will do.
//!
//! A shutdown for another reason (Ctrl-C) that begins while the sink waits is delayed until the
//! wait is over.
//!
//! ## Config
//! - `delay_ms` (integer ≥ 0, default 0): how long to wait, after the first event arrived,
//!   before asking the engine to stop.
//!
//! ## Example
//! ```toml
//! # Stops the deployment one second after the first event reached "stop".
//! [[connector]]
//! id = "stop"
//! plugin = "exit"
//! codec = "json"
//! config = { delay_ms = 1000 }
//! ```

use std::{thread, time::Duration};

use temblor_shim::{Frames, PluginError, Setup, Sink, serde::Deserialize, tracing};

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields, default)]
pub struct Config {
    /// Milliseconds to wait after the first event before stopping.
    pub delay_ms: u64,
}

/// Asks the engine to stop after its first event.
#[derive(Debug)]
pub struct Exit {
    delay: Duration,
    /// Whether the first event arrived and the delay passed.
    triggered: bool,
}

impl Exit {
    /// A sink waiting for its first event.
    ///
    /// # Errors
    /// A `Config` error for an unknown key or a `delay_ms` that is not a non-negative integer.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        Ok(Self {
            delay: Duration::from_millis(config.delay_ms),
            triggered: false,
        })
    }
}

impl Sink for Exit {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        if self.triggered || frames.is_empty() {
            return Ok(());
        }
        tracing::info!(
            delay_ms = self.delay.as_millis(),
            "exit: first event arrived; stopping the engine after the delay"
        );
        if !self.delay.is_zero() {
            thread::sleep(self.delay);
        }
        self.triggered = true;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    fn stop_requested(&mut self) -> bool {
        self.triggered
    }
}

temblor_shim::export_plugin! {
    name: "exit",
    kind: Connector,
    sink: Exit::new,
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use temblor_harness::config;
    use temblor_shim::{ErrorKind, Value};

    fn exit(fields: &[(&str, Value)]) -> Result<Exit, PluginError> {
        Exit::new(&Setup {
            id: "x",
            config: &config(fields),
        })
    }

    #[test]
    fn stops_after_the_first_non_empty_push() {
        let mut sink = exit(&[]).expect("sink");
        assert!(!sink.stop_requested());
        sink.push(&Frames::new()).expect("empty push");
        assert!(!sink.stop_requested(), "an empty batch is no event");
        sink.flush().expect("flush");
        assert!(!sink.stop_requested());
        let started = Instant::now();
        sink.push(&[&b"{}"[..]].into_iter().collect())
            .expect("push");
        assert!(started.elapsed() < Duration::from_millis(50));
        assert!(sink.stop_requested());
        // Later frames are accepted and ignored; it stays stopped.
        sink.push(&[&b"1"[..], b"2"].into_iter().collect())
            .expect("push");
        assert!(sink.stop_requested());
    }

    #[test]
    fn waits_the_delay_before_stopping() {
        let mut sink = exit(&[("delay_ms", Value::from(120))]).expect("sink");
        let started = Instant::now();
        sink.push(&[&b"{}"[..]].into_iter().collect())
            .expect("push");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(sink.stop_requested());
        // Only the first event waits.
        let started = Instant::now();
        sink.push(&[&b"{}"[..]].into_iter().collect())
            .expect("push");
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn bad_configs_are_config_errors() {
        for (config, needle) in [
            (vec![("delay", Value::from(5))], "unknown field `delay`"),
            (vec![("delay_ms", Value::from("soon"))], "soon"),
            (vec![("delay_ms", Value::from(-1))], "-1"),
        ] {
            let err = exit(&config).expect_err("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
    }
}
