//! Plugins for the engine tests, exported with the same macro as real ones.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use temblor_shim::{
    Frames, PluginError, Pull, RVec, Setup, Sink, Source, SourceBatch, Value, serde,
};

#[derive(Default)]
struct Collected {
    frames: Vec<String>,
    flushed: bool,
}

fn store() -> &'static Mutex<HashMap<String, Collected>> {
    static STORE: OnceLock<Mutex<HashMap<String, Collected>>> = OnceLock::new();
    STORE.get_or_init(Mutex::default)
}

/// What the `collect` sink named `name` received, one string per frame.
pub fn collected(name: &str) -> Vec<String> {
    store()
        .lock()
        .unwrap()
        .get(name)
        .map(|c| c.frames.clone())
        .unwrap_or_default()
}

/// Whether the `collect` sink named `name` was flushed after its last push.
pub fn flushed(name: &str) -> bool {
    store().lock().unwrap().get(name).is_some_and(|c| c.flushed)
}

/// `lines`: a source that emits its `chunks` (one pull each) or `count` numbered lines.
pub mod lines {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    struct Config {
        #[serde(default)]
        chunks: Vec<String>,
        #[serde(default)]
        count: usize,
        #[serde(default = "one")]
        per_pull: usize,
        /// The constructor sleeps this long first (a source that loads its data).
        #[serde(default)]
        new_delay_ms: u64,
    }

    fn one() -> usize {
        1
    }

    struct Lines {
        chunks: std::vec::IntoIter<String>,
        next: usize,
        count: usize,
        per_pull: usize,
    }

    impl Source for Lines {
        fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
            if let Some(chunk) = self.chunks.next() {
                out.push(chunk.as_bytes());
                return Ok(Pull::Ready);
            }
            for _ in 0..self.per_pull {
                if self.next == self.count {
                    break;
                }
                out.push(format!("{}\n", self.next).as_bytes());
                self.next += 1;
            }
            Ok(if self.next == self.count {
                Pull::Exhausted
            } else {
                Pull::Ready
            })
        }
    }

    fn new(setup: &Setup<'_>) -> Result<Lines, PluginError> {
        let c: Config = setup.config()?;
        std::thread::sleep(std::time::Duration::from_millis(c.new_delay_ms));
        Ok(Lines {
            chunks: c.chunks.into_iter(),
            next: 0,
            count: c.count,
            per_pull: c.per_pull,
        })
    }

    temblor_shim::export_plugin! { name: "lines", kind: Connector, source: new }
}

/// `endless`: a source that never runs out.
pub mod endless {
    use super::*;

    struct Endless(u64);

    impl Source for Endless {
        fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
            for _ in 0..64 {
                out.push(format!("{}\n", self.0).as_bytes());
                self.0 += 1;
            }
            Ok(Pull::Ready)
        }
    }

    fn new(_: &Setup<'_>) -> Result<Endless, PluginError> {
        Ok(Endless(0))
    }

    temblor_shim::export_plugin! { name: "endless", kind: Connector, source: new }
}

/// `notified`: takes the engine's wake-up and never waits in `pull`. A thread of its own
/// produces `count` lines, one every `every_ms`, notifying after each; `pull` hands over what
/// is queued and counts its calls (`pulls`). It ends when all were handed over, or never
/// (`count = 0`: it waits for a stop, which must wake it).
pub mod notified {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use temblor_shim::Notify;

    use super::*;

    /// Pulls made by the last instance with lines to hand (`count` above 0): an instance of
    /// `count = 0` (which only waits for the stop) may run beside it, in another test.
    pub static PULLS: AtomicU64 = AtomicU64::new(0);

    #[derive(serde::Deserialize)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    struct Config {
        count: u64,
        every_ms: u64,
    }

    struct Notified {
        config: Config,
        queue: Arc<Mutex<Vec<u64>>>,
        handed: u64,
    }

    impl Source for Notified {
        fn set_notify(&mut self, notify: Notify) -> bool {
            let (count, every) = (self.config.count, self.config.every_ms);
            let queue = Arc::clone(&self.queue);
            std::thread::spawn(move || {
                for i in 0..count {
                    std::thread::sleep(std::time::Duration::from_millis(every));
                    queue.lock().unwrap().push(i);
                    notify.notify();
                }
            });
            true
        }

        fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
            if self.config.count > 0 {
                PULLS.fetch_add(1, Ordering::SeqCst);
            }
            for i in self.queue.lock().unwrap().drain(..) {
                out.push(format!("{i}\n").as_bytes());
                self.handed += 1;
            }
            if self.config.count > 0 && self.handed == self.config.count {
                return Ok(Pull::Exhausted);
            }
            Ok(Pull::Idle)
        }
    }

    fn new(setup: &Setup<'_>) -> Result<Notified, PluginError> {
        let config: Config = setup.config()?;
        if config.count > 0 {
            PULLS.store(0, Ordering::SeqCst);
        }
        Ok(Notified {
            config,
            queue: Arc::default(),
            handed: 0,
        })
    }

    temblor_shim::export_plugin! { name: "notified", kind: Connector, source: new }
}

/// `int`: decimal integers; panics on the frame `panic`; skips the frame `skip`
/// (`FrameError::skipped`: no event, no error).
pub mod int {
    use super::*;

    struct Int;

    impl temblor_shim::Codec for Int {
        fn decode(
            &mut self,
            frames: &Frames,
            out: &mut RVec<Value>,
            errors: &mut RVec<temblor_shim::FrameError>,
        ) -> Result<(), PluginError> {
            for (index, frame) in frames.iter().enumerate() {
                let index = u32::try_from(index).unwrap();
                if frame == b"skip" {
                    errors.push(temblor_shim::FrameError::skipped(index));
                    continue;
                }
                match self.decode_one(frame) {
                    Ok(v) => out.push(v),
                    Err(reason) => errors.push(temblor_shim::FrameError {
                        index,
                        reason: reason.into(),
                    }),
                }
            }
            Ok(())
        }

        fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
            assert!(frame != b"panic", "told to");
            std::str::from_utf8(frame)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .map(Value::I64)
                .ok_or_else(|| "not an integer".to_owned())
        }

        fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
            match event {
                Value::I64(i) => out.extend_from_copy_slice(i.to_string().as_bytes()),
                other => out.extend_from_copy_slice(other.to_json().as_bytes()),
            }
            Ok(())
        }
    }

    fn new(_: &Setup<'_>) -> Result<Int, PluginError> {
        Ok(Int)
    }

    temblor_shim::export_plugin! { name: "int", kind: Codec, codec: new }
}

/// `collect`: a sink that keeps every frame, by `name`, for the test to read.
pub mod collect {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    struct Config {
        name: String,
    }

    struct Collect(String);

    impl Sink for Collect {
        fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
            let mut store = store().lock().unwrap();
            let c = store.entry(self.0.clone()).or_default();
            c.flushed = false;
            c.frames.extend(
                frames
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned()),
            );
            Ok(())
        }

        fn flush(&mut self) -> Result<(), PluginError> {
            store()
                .lock()
                .unwrap()
                .entry(self.0.clone())
                .or_default()
                .flushed = true;
            Ok(())
        }
    }

    fn new(setup: &Setup<'_>) -> Result<Collect, PluginError> {
        let c: Config = setup.config()?;
        Ok(Collect(c.name))
    }

    temblor_shim::export_plugin! { name: "collect", kind: Connector, sink: new }
}
