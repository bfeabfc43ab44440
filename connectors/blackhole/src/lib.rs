//! The `blackhole` connector: a sink that discards every frame, counting frames and bytes.
//!
//! For benchmarks and tests: the pipeline runs in full (codec, postprocessors) but nothing is
//! written. The totals are logged at `info` when the sink is dropped (when the engine shuts the
//! connector down), and at `debug` on every flush.
//!
//! ## Config
//! None: `config` must be empty or absent.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "out"
//! plugin = "blackhole"
//! codec = "json"
//! ```

use temblor_shim::{Frames, PluginError, Setup, Sink, serde::Deserialize, tracing};

/// The connector's `config`: no keys.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// Discards frames, counting them.
#[derive(Debug)]
pub struct Blackhole {
    frames: u64,
    bytes: u64,
}

impl Blackhole {
    /// A sink with zero counts.
    ///
    /// # Errors
    /// A `Config` error when the config has any key.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let Config {} = setup.config()?;
        Ok(Self {
            frames: 0,
            bytes: 0,
        })
    }

    /// The frames and bytes discarded so far.
    #[must_use]
    pub fn totals(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }
}

impl Sink for Blackhole {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        self.frames += frames.len() as u64;
        self.bytes += frames.byte_len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        let (frames, bytes) = self.totals();
        tracing::debug!(frames, bytes, "blackhole flushed");
        Ok(())
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let (frames, bytes) = self.totals();
        tracing::info!(frames, bytes, "blackhole discarded");
    }
}

temblor_shim::export_plugin! {
    name: "blackhole",
    kind: Connector,
    sink: Blackhole::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_shim::{ErrorKind, Value};

    /// The sink `id` with `config`, or its error.
    fn blackhole(id: &str, config: &Value) -> Result<Blackhole, PluginError> {
        Blackhole::new(&Setup { id, config })
    }

    #[test]
    fn counts_frames_and_bytes() {
        let mut sink = blackhole("t", &Value::Object(temblor_shim::Object::new())).expect("sink");
        assert_eq!(sink.totals(), (0, 0));
        let frames: Frames = [&b"abc"[..], b"", b"de\n"].into_iter().collect();
        sink.push(&frames).expect("push");
        sink.push(&frames).expect("push");
        sink.flush().expect("flush");
        assert_eq!(sink.totals(), (6, 12));
    }

    #[test]
    fn any_config_key_is_refused() {
        let config = Value::Object([("path", Value::from("x"))].into_iter().collect());
        let err = blackhole("t", &config).expect_err("a key");
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.contains("unknown field `path`"), "{err}");
    }

    /// Records the fields of each event logged while it is the default subscriber.
    #[derive(Default, Clone)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
            let mut fields = Fields(format!("{}", event.metadata().level()));
            event.record(&mut fields);
            self.0.lock().expect("lock").push(fields.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn totals_are_logged_on_drop() {
        let capture = Capture::default();
        tracing::subscriber::with_default(capture.clone(), || {
            let mut sink =
                blackhole("bh", &Value::Object(temblor_shim::Object::new())).expect("sink");
            sink.push(&[&b"12345"[..], b"678"].into_iter().collect())
                .expect("push");
            sink.flush().expect("flush");
            drop(sink);
        });
        let lines = capture.0.lock().expect("lock").clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("DEBUG"), "{lines:?}");
        let last = &lines[1];
        assert!(last.starts_with("INFO"), "{last}");
        for field in ["frames=2", "bytes=8"] {
            assert!(last.contains(field), "{field} in {last}");
        }
    }
}
