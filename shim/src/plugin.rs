//! What a plugin author writes against: ordinary Rust traits, a [`Setup`] to read the config
//! from, and [`export_plugin!`](crate::export_plugin) to turn them into a plugin library.
//!
//! The adapters here wrap every call in `catch_unwind`: a panic inside a plugin becomes a
//! [`PluginError`] of kind `Panic` and never unwinds into the host (where it would abort).

use std::{
    mem::ManuallyDrop,
    panic::{AssertUnwindSafe, catch_unwind},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RStr, RVec},
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{
    Frames, Notify, PluginError, SourceBatch, Value,
    abi::{
        CodecBox, CodecFfi, CodecFfi_TO, FrameError, Pull, SinkBox, SinkFfi, SinkFfi_TO, SourceBox,
        SourceFfi, SourceFfi_TO,
    },
    error::ErrorKind,
};

/// What a constructor gets: the component's id in the deployment and its `config` table.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The connector's id (or, for a codec, the id of the connector using it).
    pub id: &'a str,
    /// The `config` table (an empty object when the deployment gives none).
    pub config: &'a Value,
}

impl<'a> Setup<'a> {
    /// Deserializes the config into the plugin's `Config` type.
    ///
    /// # Errors
    /// A `Config` error naming the field at fault (the engine adds which component).
    pub fn config<T: Deserialize<'a>>(&self) -> Result<T, PluginError> {
        crate::from_value(self.config).map_err(PluginError::config)
    }
}

/// The constructor of a component that takes no config keys: its `Config` (a `struct Config {}`
/// with `deny_unknown_fields`) refuses every key, by name, and the component is `T::default()`.
///
/// ```text
/// temblor_shim::export_plugin! { name: "binary", kind: Codec, codec: temblor_shim::keyless::<Config, Binary> }
/// ```
///
/// # Errors
/// A `Config` error naming the first key the deployment gives.
pub fn keyless<C: DeserializeOwned, T: Default>(setup: &Setup<'_>) -> Result<T, PluginError> {
    setup.config::<C>()?;
    Ok(T::default())
}

/// A codec: frames to events and back. Implement the per-frame methods; the batch methods
/// have loops over them that a codec may replace with something faster.
pub trait Codec: Send + 'static {
    /// Decodes one frame into one event, or says why it cannot.
    ///
    /// # Errors
    /// The reason, which the engine puts on the error event.
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String>;

    /// Appends one event, encoded, to `out`.
    ///
    /// # Errors
    /// When the event cannot be encoded: the batch fails.
    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError>;

    /// Decodes one frame of a batch into one event, or into none (`Ok(None)`: the frame is
    /// skipped on purpose, an influx comment or a csv header row). The default is
    /// [`Codec::decode_one`]'s event.
    ///
    /// # Errors
    /// As for [`Codec::decode_one`].
    #[inline]
    fn decode_or_skip(&mut self, frame: &[u8]) -> Result<Option<Value>, String> {
        self.decode_one(frame).map(Some)
    }

    /// Decodes a batch with [`Codec::decode_or_skip`]: one event per good frame, one
    /// [`FrameError`] per bad one, and [`FrameError::skipped`] (no event, no error) for each
    /// frame that decodes to nothing.
    ///
    /// # Errors
    /// When the whole batch fails (per-frame failures go to `errors`).
    fn decode(
        &mut self,
        frames: &Frames,
        out: &mut RVec<Value>,
        errors: &mut RVec<FrameError>,
    ) -> Result<(), PluginError> {
        for (index, frame) in frames.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match self.decode_or_skip(frame) {
                Ok(Some(event)) => out.push(event),
                Ok(None) => errors.push(FrameError::skipped(index)),
                Err(reason) => errors.push(FrameError {
                    index,
                    // An empty reason would mean "skipped": a failure always says something.
                    reason: if reason.is_empty() {
                        "the frame could not be decoded".into()
                    } else {
                        reason.into()
                    },
                }),
            }
        }
        Ok(())
    }

    /// Encodes a batch, one frame per event.
    ///
    /// # Errors
    /// When an event cannot be encoded.
    fn encode(&mut self, events: &[Value], out: &mut Frames) -> Result<(), PluginError> {
        for event in events {
            let mut result = Ok(());
            out.push_with(|buf| result = self.encode_one(event, buf));
            result?;
        }
        Ok(())
    }
}

/// A source: produces frames (by stream) and values.
pub trait Source: Send + 'static {
    /// Appends what is available now to `out`, waiting at most about 100 ms: `out.push(bytes)`
    /// for stream 0, or `start_stream`, `push_stream`, `end_stream` and `push_value`.
    ///
    /// # Errors
    /// When reading fails; the engine reports it and restarts this source.
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError>;

    /// Whether this source wants [`Source::ack`] and [`Source::fail`] for its batches (asked
    /// once, after it is built). The default: no.
    fn wants_acks(&self) -> bool {
        false
    }

    /// Everything pulled under `token` (see [`SourceBatch::token`]) was delivered.
    ///
    /// # Errors
    /// When recording it fails (a checkpoint file cannot be written): logged, and counted.
    fn ack(&mut self, token: u64) -> Result<(), PluginError> {
        let _ = token;
        Ok(())
    }

    /// Some of what was pulled under `token` could not be delivered.
    ///
    /// # Errors
    /// As for [`Source::ack`].
    fn fail(&mut self, token: u64, reason: &str) -> Result<(), PluginError> {
        let _ = (token, reason);
        Ok(())
    }

    /// Takes the engine's wake-up handle (asked once, after the source is built). A source that
    /// returns `true` promises that [`Source::pull`] returns [`Pull::Idle`] at once when it has
    /// nothing, and that it calls [`Notify::notify`] when something arrives (the engine does
    /// not pull it again until then). The default keeps the handle unused and returns `false`:
    /// `pull` then waits up to about 100 ms itself.
    fn set_notify(&mut self, notify: Notify) -> bool {
        drop(notify);
        false
    }
}

/// A sink: consumes frames.
pub trait Sink: Send + 'static {
    /// Writes every frame.
    ///
    /// # Errors
    /// When writing fails.
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError>;

    /// Makes everything written so far durable or delivered.
    ///
    /// # Errors
    /// When flushing fails.
    fn flush(&mut self) -> Result<(), PluginError>;

    /// Whether the engine should stop: its sources stop, everything drains, sinks flush.
    /// Asked after every push; the default never asks.
    fn stop_requested(&mut self) -> bool {
        false
    }

    /// Writes every frame, with the events' metadata (`meta`: empty, one value for all frames,
    /// or one per frame). A sink that writes frame by frame and fails half-way puts the
    /// indices of the frames it did write into `delivered`, so that only the others are
    /// retried. The default ignores the metadata and calls [`Sink::push`].
    ///
    /// # Errors
    /// When writing (some of the frames) fails.
    fn push_batch(
        &mut self,
        frames: &Frames,
        meta: &[Value],
        delivered: &mut RVec<u32>,
    ) -> Result<(), PluginError> {
        let _ = (meta, delivered);
        self.push(frames)
    }
}

/// The metadata of frame `index` of a batch given to [`Sink::push_batch`]: its own, the one
/// shared by every frame, or none (null).
#[must_use]
pub fn meta_of(meta: &[Value], index: usize) -> &Value {
    static NULL: Value = Value::Null;
    match meta {
        [] => &NULL,
        [all] => all,
        each => each.get(index).unwrap_or(&NULL),
    }
}

/// Runs `f`, turning a panic into a `Panic` error.
pub(crate) fn guard<T>(
    during: &str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(PluginError::from_panic(during, payload.as_ref())),
    }
}

/// A plugin's value in an adapter: dropped inside the plugin, with a panic of its `Drop`
/// (which would otherwise unwind into the host and abort it) caught and logged.
struct Guarded<T> {
    value: ManuallyDrop<T>,
    /// What dropping it is, for the log (`dropping a codec`).
    what: &'static str,
}

impl<T> Guarded<T> {
    fn new(value: T, what: &'static str) -> Self {
        Self {
            value: ManuallyDrop::new(value),
            what,
        }
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        let value = &mut self.value;
        // SAFETY: called once, from `Drop`; the value is not used afterwards.
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(value) }));
        if let Err(payload) = result {
            let e = PluginError::from_panic(self.what, payload.as_ref());
            tracing::error!(error = %e, "a plugin panicked while it was dropped; the panic was caught");
        }
    }
}

impl<T> std::ops::Deref for Guarded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for Guarded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

struct CodecAdapter<C>(Guarded<C>);

impl<C: Codec> CodecFfi for CodecAdapter<C> {
    fn decode(
        &mut self,
        frames: &Frames,
        out: &mut RVec<Value>,
        errors: &mut RVec<FrameError>,
    ) -> RResult<(), PluginError> {
        guard("decode", || self.0.decode(frames, out, errors))
    }

    fn encode(&mut self, events: RSlice<'_, Value>, out: &mut Frames) -> RResult<(), PluginError> {
        guard("encode", || self.0.encode(events.as_slice(), out))
    }
}

struct SourceAdapter<S> {
    source: Guarded<S>,
    /// For interface 1 hosts, which call `pull`: the batch pulled into, whose frames are
    /// handed over.
    scratch: SourceBatch,
}

impl<S: Source> SourceFfi for SourceAdapter<S> {
    fn pull(&mut self, out: &mut Frames) -> RResult<Pull, PluginError> {
        let Self { source, scratch } = self;
        guard("pull", || {
            scratch.reset(0);
            let pulled = source.pull(scratch)?;
            for frame in scratch.frames().iter() {
                out.push(frame);
            }
            Ok(pulled)
        })
    }

    fn pull_batch(&mut self, out: &mut SourceBatch) -> RResult<Pull, PluginError> {
        guard("pull", || self.source.pull(out))
    }

    fn wants_acks(&self) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.source.wants_acks())).unwrap_or(false)
    }

    fn ack(&mut self, token: u64) -> RResult<(), PluginError> {
        guard("ack", || self.source.ack(token))
    }

    fn fail(&mut self, token: u64, reason: RStr<'_>) -> RResult<(), PluginError> {
        guard("fail", || self.source.fail(token, reason.as_str()))
    }

    fn set_notify(&mut self, notify: Notify) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.source.set_notify(notify))).unwrap_or(false)
    }
}

struct SinkAdapter<S>(Guarded<S>);

impl<S: Sink> SinkFfi for SinkAdapter<S> {
    fn push_batch(
        &mut self,
        frames: &Frames,
        meta: RSlice<'_, Value>,
        delivered: &mut RVec<u32>,
    ) -> RResult<(), PluginError> {
        guard("push", || {
            self.0.push_batch(frames, meta.as_slice(), delivered)
        })
    }

    fn push(&mut self, frames: &Frames) -> RResult<(), PluginError> {
        guard("push", || self.0.push(frames))
    }

    fn flush(&mut self) -> RResult<(), PluginError> {
        guard("flush", || self.0.flush())
    }

    fn stop_requested(&mut self) -> bool {
        // A panic here counts as a request to stop: the sink is in no state to go on.
        catch_unwind(AssertUnwindSafe(|| self.0.stop_requested())).unwrap_or(true)
    }
}

/// Wraps a plain codec into the ABI-stable object the engine drives (used by the export macro,
/// and by tests that drive a codec without loading a library).
pub fn codec_object<C: Codec>(codec: C) -> CodecBox {
    CodecFfi_TO::from_value(
        CodecAdapter(Guarded::new(codec, "dropping a codec")),
        TD_Opaque,
    )
}

/// Wraps a plain source into the ABI-stable object the engine drives.
pub fn source_object<S: Source>(source: S) -> SourceBox {
    SourceFfi_TO::from_value(
        SourceAdapter {
            source: Guarded::new(source, "dropping a source"),
            scratch: SourceBatch::new(),
        },
        TD_Opaque,
    )
}

/// Wraps a plain sink into the ABI-stable object the engine drives.
pub fn sink_object<S: Sink>(sink: S) -> SinkBox {
    SinkFfi_TO::from_value(
        SinkAdapter(Guarded::new(sink, "dropping a sink")),
        TD_Opaque,
    )
}

/// Runs a constructor behind the boundary: panics caught, the result wrapped.
pub fn construct<T, O>(
    what: &str,
    id: RStr<'_>,
    config: &Value,
    ctor: impl FnOnce(&Setup<'_>) -> Result<T, PluginError>,
    wrap: impl FnOnce(T) -> O,
) -> RResult<O, PluginError> {
    guard(what, || {
        let setup = Setup {
            id: id.as_str(),
            config,
        };
        ctor(&setup).map(wrap)
    })
}

/// The constructor of something this plugin does not provide.
/// (The engine's message names the component's id: it is not said again here.)
pub fn unsupported<O>(plugin: &str, what: &str, _id: RStr<'_>) -> RResult<O, PluginError> {
    RResult::RErr(PluginError::new(
        ErrorKind::Unsupported,
        format_args!("plugin '{plugin}' has no {what}"),
    ))
}

/// Builds one constructor of [`export_plugin!`](crate::export_plugin): the given one, or one
/// that says the plugin has no such component.
#[doc(hidden)]
#[macro_export]
macro_rules! __constructor {
    ($what:literal, $name:literal, $id:ident, $config:ident, $wrap:ident, ) => {
        $crate::__private::unsupported($name, $what, $id)
    };
    ($what:literal, $name:literal, $id:ident, $config:ident, $wrap:ident, $ctor:expr) => {
        $crate::__private::construct(
            concat!($what, " constructor"),
            $id,
            $config,
            $ctor,
            $crate::__private::$wrap,
        )
    };
}

/// The interface version a plugin claims: the shim's own, unless a test fixture overrides it.
#[doc(hidden)]
#[macro_export]
macro_rules! __interface_version {
    () => {
        $crate::__private::SHIM_INTERFACE_VERSION
    };
    ($version:expr) => {
        $version
    };
}

/// Exports a plugin: its manifest and constructors, as the root module of the library.
///
/// ```text
/// temblor_shim::export_plugin! {
///     name: "file",
///     kind: Connector,
///     source: FileSource::new,
///     sink: FileSink::new,
/// }
/// ```
/// (The crate docs have a complete, tested example.)
/// Constructors are `fn(&Setup<'_>) -> Result<impl Codec | Source | Sink, PluginError>`;
/// `shutdown: fn()` (optional) stops what the library runs on its own once the host builds
/// nothing more from it.
/// (`shim_interface: N` after them makes a plugin claim another interface version: only for
/// the loader's tests.)
///
/// It defines `pub fn plugin_module() -> PluginModRef` (how the monolith build registers the
/// plugin) and, when the crate's `export` feature is on (the default), the library header that
/// makes the `cdylib` loadable (the crate's own, and the `<lib>_lto` example's, which links the
/// crate and so exports the header too), through abi_stable's `#[export_root_module]`. Invoke
/// it at the crate root: the header's expansion needs the `extern crate` alias the macro puts
/// there. The monolith turns `export` off so that many plugins can be linked into one binary
/// without their headers clashing.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:literal,
        kind: $kind:ident
        $(, codec: $codec:expr)?
        $(, source: $source:expr)?
        $(, sink: $sink:expr)?
        $(, shutdown: $shutdown:expr)?
        $(, shim_interface: $interface:expr)?
        $(,)?
    ) => {
        /// This plugin's root module.
        #[must_use]
        pub fn plugin_module() -> $crate::abi::PluginModRef {
            use $crate::__private::*;

            extern "C" fn manifest() -> Manifest {
                Manifest {
                    name: RStr::from_str($name),
                    kind: PluginKind::$kind,
                    version: RStr::from_str(env!("CARGO_PKG_VERSION")),
                    shim_interface: $crate::__interface_version!($($interface)?),
                    rustc: RStr::from_str(RUSTC_VERSION),
                }
            }
            extern "C" fn init_logging(log: HostLog, max: LogLevel) {
                init_log($name, log.func, max);
            }
            extern "C" fn new_codec(id: RStr<'_>, config: &Value) -> RResult<CodecBox, PluginError> {
                $crate::__constructor!("codec", $name, id, config, codec_object, $($codec)?)
            }
            extern "C" fn new_source(id: RStr<'_>, config: &Value) -> RResult<SourceBox, PluginError> {
                $crate::__constructor!("source", $name, id, config, source_object, $($source)?)
            }
            extern "C" fn new_sink(id: RStr<'_>, config: &Value) -> RResult<SinkBox, PluginError> {
                $crate::__constructor!("sink", $name, id, config, sink_object, $($sink)?)
            }
            extern "C" fn shutdown() {
                $(
                    let f: fn() = $shutdown;
                    if let Err(payload) = ::std::panic::catch_unwind(f) {
                        let e = PluginError::from_panic("shutdown", payload.as_ref());
                        $crate::tracing::error!(error = %e, "shutdown panicked; the panic was caught");
                    }
                )?
            }
            const MODULE: &WithMetadata<PluginMod> = &WithMetadata::new(PluginMod {
                manifest,
                init_logging,
                new_codec,
                new_source,
                new_sink,
                shutdown,
            });
            PluginModRef(MODULE.static_as_prefix())
        }

        // The library header abi_stable's loader looks for, exported the documented way:
        // `#[export_root_module]`. Its expansion names `::abi_stable::library::...`; plugins
        // depend on the shim only, so the crate root gets the shim under that name (an
        // `extern crate` at the crate root joins the extern prelude), and the shim's hidden
        // `library` module is abi_stable's.
        #[cfg(feature = "export")]
        extern crate temblor_shim as abi_stable;

        /// The root module abi_stable's loader calls.
        #[cfg(feature = "export")]
        #[$crate::__private::export_root_module]
        #[doc(hidden)]
        pub fn __temblor_root_module() -> $crate::abi::PluginModRef {
            plugin_module()
        }
    };
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Panics when dropped, after counting the drop.
    struct PanicsOnDrop(&'static AtomicUsize);

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("dropped");
        }
    }

    impl Codec for PanicsOnDrop {
        fn decode_one(&mut self, _: &[u8]) -> Result<Value, String> {
            Ok(Value::Null)
        }
        fn encode_one(&mut self, _: &Value, _: &mut RVec<u8>) -> Result<(), PluginError> {
            Ok(())
        }
    }

    impl Source for PanicsOnDrop {
        fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
            out.start_stream(3, Value::Null);
            out.push_stream(3, b"x");
            Ok(Pull::Exhausted)
        }
    }

    impl Sink for PanicsOnDrop {
        fn push(&mut self, _: &Frames) -> Result<(), PluginError> {
            Err(PluginError::data("push"))
        }
        fn flush(&mut self) -> Result<(), PluginError> {
            Ok(())
        }
    }

    #[test]
    fn a_panic_in_drop_is_caught_inside_the_plugin() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        // Were the panic to leave the adapter's `Drop`, it would unwind through abi_stable's
        // `extern "C"` drop function and abort this test binary.
        drop(codec_object(PanicsOnDrop(&DROPS)));
        drop(source_object(PanicsOnDrop(&DROPS)));
        drop(sink_object(PanicsOnDrop(&DROPS)));
        assert_eq!(DROPS.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn interface_2_objects_serve_interface_1_calls() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let mut source = source_object(PanicsOnDrop(&DROPS));
        let mut frames = Frames::new();
        // `pull` (interface 1) hands over the frames of every stream.
        assert_eq!(source.pull(&mut frames).into_result(), Ok(Pull::Exhausted));
        assert_eq!(frames.iter().collect::<Vec<_>>(), [&b"x"[..]]);
        assert!(!source.wants_acks());
        assert_eq!(source.ack(1).into_result(), Ok(()));
        let mut sink = sink_object(PanicsOnDrop(&DROPS));
        let mut delivered = RVec::new();
        // The default `push_batch` calls `push`.
        let pushed = sink.push_batch(&frames, RSlice::from_slice(&[]), &mut delivered);
        assert_eq!(
            pushed.into_result().map_err(|e| e.kind),
            Err(ErrorKind::Data)
        );
        assert!(delivered.is_empty());
    }

    #[test]
    fn meta_of_reads_none_shared_or_per_frame() {
        let shared = [Value::from("all")];
        let each = [Value::from(1_u64), Value::from(2_u64)];
        assert_eq!(meta_of(&[], 5), &Value::Null);
        assert_eq!(meta_of(&shared, 7), &Value::from("all"));
        assert_eq!(meta_of(&each, 1), &Value::from(2_u64));
        assert_eq!(meta_of(&each, 2), &Value::Null);
    }
}
