//! Small in-process plugins for the engine's unit tests, exported with the same macro as real
//! plugins (no library is opened: `plugin_module()` hands over the root module).

// The export macro checks the plugin crate's `export` feature, which core lacks (no header).
#![allow(unexpected_cfgs)]

use std::sync::{Arc, atomic::AtomicBool};

use temblor_harness::deploy::{Connector, Deployment as Toml, Pipeline};
use temblor_shim::{
    Codec, FrameError, Frames, PluginError, Pull, RVec, Setup, Source, SourceBatch, Value, abi,
    serde,
};

use super::live::{Cells, PluginCell};
use crate::{registry::Plugin, wakeup::Stop};

/// A codec named `ver` whose events say which version built it; `version` 0 refuses to build.
macro_rules! version_codec {
    ($module:ident, $version:literal) => {
        pub(crate) mod $module {
            use super::*;

            struct Ver;

            impl Codec for Ver {
                fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
                    assert!(frame != b"panic", "told to");
                    match frame {
                        b"bad" => Err("bad frame".to_owned()),
                        frame => Ok(Value::from(format!(
                            "v{}:{}",
                            $version,
                            String::from_utf8_lossy(frame)
                        ))),
                    }
                }

                fn encode_one(
                    &mut self,
                    event: &Value,
                    out: &mut RVec<u8>,
                ) -> Result<(), PluginError> {
                    out.extend_from_copy_slice(event.to_json().as_bytes());
                    Ok(())
                }
            }

            fn new(_: &Setup<'_>) -> Result<Ver, PluginError> {
                if $version == 0 {
                    return Err(PluginError::config("broken on purpose"));
                }
                Ok(Ver)
            }

            temblor_shim::export_plugin! { name: "ver", kind: Codec, codec: new }
        }
    };
}

version_codec!(ver1, 1);
version_codec!(ver2, 2);
version_codec!(broken, 0);

/// `chunks`: a source that hands over its `chunks`, one per pull, then is exhausted.
pub(crate) mod chunks {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    struct Config {
        chunks: Vec<String>,
    }

    struct Chunks(std::vec::IntoIter<String>);

    impl Source for Chunks {
        fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
            match self.0.next() {
                Some(chunk) => {
                    out.push(chunk.as_bytes());
                    Ok(Pull::Ready)
                }
                None => Ok(Pull::Exhausted),
            }
        }
    }

    fn new(setup: &Setup<'_>) -> Result<Chunks, PluginError> {
        let c: Config = setup.config()?;
        Ok(Chunks(c.chunks.into_iter()))
    }

    temblor_shim::export_plugin! { name: "chunks", kind: Connector, source: new }
}

/// `flaky`: a sink whose first `fail` pushes fail (not a panic); what it writes is kept by
/// connector id ([`written`]).
pub(crate) mod flaky {
    use std::{
        collections::HashMap,
        sync::{Mutex, OnceLock},
    };

    use temblor_shim::{ErrorKind, Sink};

    use super::*;

    pub(crate) fn store() -> &'static Mutex<HashMap<String, Vec<String>>> {
        static STORE: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
        STORE.get_or_init(Mutex::default)
    }

    #[derive(serde::Deserialize)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    struct Config {
        fail: u32,
    }

    struct Flaky {
        id: String,
        fail: u32,
    }

    impl Sink for Flaky {
        fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(PluginError::new(ErrorKind::Other, "not now"));
            }
            let mut store = store().lock().unwrap();
            let mine = store.entry(self.id.clone()).or_default();
            mine.extend(
                frames
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned()),
            );
            Ok(())
        }

        fn flush(&mut self) -> Result<(), PluginError> {
            Ok(())
        }
    }

    fn new(setup: &Setup<'_>) -> Result<Flaky, PluginError> {
        let c: Config = setup.config()?;
        Ok(Flaky {
            id: setup.id.to_owned(),
            fail: c.fail,
        })
    }

    temblor_shim::export_plugin! { name: "flaky", kind: Connector, sink: new }
}

/// What the `flaky` sink of connector `id` wrote, one string per frame.
pub(crate) fn written(id: &str) -> Vec<String> {
    flaky::store()
        .lock()
        .unwrap()
        .get(id)
        .cloned()
        .unwrap_or_default()
}

/// The plugin of `module`, as the registry would hold it.
pub(crate) fn plugin(module: abi::PluginModRef, origin: &str) -> Plugin {
    Plugin::new(module, origin)
}

/// A cell for `module` in fresh `cells`.
pub(crate) fn cell(cells: &mut Cells, module: abi::PluginModRef) -> Arc<PluginCell> {
    cells.get_or_add(&plugin(module, "test"))
}

/// A stop nobody requested.
pub(crate) fn stop() -> Stop {
    Stop::new(Arc::new(AtomicBool::new(false)))
}

/// The frames of `items`.
pub(crate) fn frames(items: &[&str]) -> Frames {
    items.iter().map(|s| s.as_bytes()).collect()
}

/// Decodes `frames` with `live`'s codec: the events, and each failed frame's reason.
pub(crate) fn decode(
    live: &mut super::live::Live<abi::CodecBox>,
    items: &[&str],
) -> Result<(Vec<Value>, Vec<String>), PluginError> {
    let mut out = RVec::new();
    let mut errors = RVec::<FrameError>::new();
    super::restart::call(live, |c| c.decode(&frames(items), &mut out, &mut errors))?;
    Ok((
        out.into_iter().collect(),
        errors.iter().map(|e| e.reason.to_string()).collect(),
    ))
}

/// A registry of the plugins above (`ver` is `ver1`, or `broken` when `broken_codec`).
pub(crate) fn registry(broken_codec: bool) -> crate::registry::Registry {
    let mut r = crate::registry::Registry::new();
    let codec = if broken_codec {
        broken::plugin_module()
    } else {
        ver1::plugin_module()
    };
    r.add(plugin(codec, "test")).unwrap();
    r.add(plugin(chunks::plugin_module(), "test")).unwrap();
    r.add(plugin(flaky::plugin_module(), "test")).unwrap();
    r
}

/// A deployment of one `chunks` source, codec `ver`, with `extra` lines in its table, into a
/// pipeline `p`, validated against `registry`.
pub(crate) fn deployment(
    chunks: &str,
    extra: &str,
    registry: &crate::registry::Registry,
) -> (crate::deploy::Deployment, crate::deploy::Plan) {
    let source = Connector::new("in", "chunks")
        .codec("ver")
        .line(extra)
        .line(&format!("config = {{ chunks = {chunks} }}"));
    let text = Toml::new()
        .connector(source)
        .pipeline(Pipeline::new("p"))
        .connect("in", "p");
    validated(&text.to_toml(), registry)
}

/// A deployment of pipeline `p` into the `flaky` sink `id` (codec `ver`, `extra` lines in its
/// table), validated against `registry`.
pub(crate) fn sink_deployment(
    id: &str,
    extra: &str,
    registry: &crate::registry::Registry,
) -> (crate::deploy::Deployment, crate::deploy::Plan) {
    let sink = Connector::new(id, "flaky").codec("ver").line(extra);
    let text = Toml::new()
        .pipeline(Pipeline::new("p"))
        .connector(sink)
        .connect("p", id);
    validated(&text.to_toml(), registry)
}

fn validated(
    text: &str,
    registry: &crate::registry::Registry,
) -> (crate::deploy::Deployment, crate::deploy::Plan) {
    let d = crate::deploy::Deployment::parse(text, "t.toml").expect("parses");
    let plan = d.validate(registry, "t.toml").expect("valid");
    (d, plan)
}
