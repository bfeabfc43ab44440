//! What a plugin author writes against: ordinary Rust traits, a [`Setup`] to read the config
//! from, and [`export_plugin!`](crate::export_plugin) to turn them into a plugin library.
//!
//! The adapters here wrap every call in `catch_unwind`: a panic inside a plugin becomes a
//! [`PluginError`] of kind `Panic` and never unwinds into the host (where it would abort).

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RStr, RVec},
};
use serde::Deserialize;

use crate::{
    Frames, PluginError, Value,
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

    /// Decodes a batch: one event per good frame, one [`FrameError`] per bad one.
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
            match self.decode_one(frame) {
                Ok(event) => out.push(event),
                Err(reason) => errors.push(FrameError {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    reason: reason.into(),
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

/// A source: produces frames.
pub trait Source: Send + 'static {
    /// Appends what is available now to `out`, waiting at most about 100 ms.
    ///
    /// # Errors
    /// When reading fails; the engine reports it and stops this source.
    fn pull(&mut self, out: &mut Frames) -> Result<Pull, PluginError>;
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

struct CodecAdapter<C>(C);

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

struct SourceAdapter<S>(S);

impl<S: Source> SourceFfi for SourceAdapter<S> {
    fn pull(&mut self, out: &mut Frames) -> RResult<Pull, PluginError> {
        guard("pull", || self.0.pull(out))
    }
}

struct SinkAdapter<S>(S);

impl<S: Sink> SinkFfi for SinkAdapter<S> {
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
    CodecFfi_TO::from_value(CodecAdapter(codec), TD_Opaque)
}

/// Wraps a plain source into the ABI-stable object the engine drives.
pub fn source_object<S: Source>(source: S) -> SourceBox {
    SourceFfi_TO::from_value(SourceAdapter(source), TD_Opaque)
}

/// Wraps a plain sink into the ABI-stable object the engine drives.
pub fn sink_object<S: Sink>(sink: S) -> SinkBox {
    SinkFfi_TO::from_value(SinkAdapter(sink), TD_Opaque)
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
pub fn unsupported<O>(plugin: &str, what: &str, id: RStr<'_>) -> RResult<O, PluginError> {
    RResult::RErr(PluginError::new(
        ErrorKind::Unsupported,
        format_args!("'{id}': plugin '{plugin}' has no {what}"),
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
/// Constructors are `fn(&Setup<'_>) -> Result<impl Codec | Source | Sink, PluginError>`.
/// (`shim_interface: N` after them makes a plugin claim another interface version: only for
/// the loader's tests.)
///
/// It defines `pub fn plugin_module() -> PluginModRef` (how the monolith build registers the
/// plugin) and, when the crate's `export` feature is on (the default), the library header that
/// makes the `cdylib` loadable (the crate's own, and the `<lib>_lto` example's, which links the
/// crate and so exports the header too). The monolith turns `export` off so that many plugins
/// can be linked into one binary without their headers clashing.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:literal,
        kind: $kind:ident
        $(, codec: $codec:expr)?
        $(, source: $source:expr)?
        $(, sink: $sink:expr)?
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
            const MODULE: &WithMetadata<PluginMod> = &WithMetadata::new(PluginMod {
                manifest,
                init_logging,
                new_codec,
                new_source,
                new_sink,
            });
            PluginModRef(MODULE.static_as_prefix())
        }

        /// The header abi_stable looks for when it loads this library.
        #[cfg(feature = "export")]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static TEMBLOR_PLUGIN_HEADER: $crate::__private::LibHeader = {
            extern "C" fn root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::call_root_module_loader(plugin_module)
            }
            // SAFETY: `root_module` returns this crate's `PluginModRef`, the type named here,
            // and the layout is checked by the loader.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::abi::PluginModRef>(
                    root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
