//! The stable ABI between the temblor engine and its plugins.
//!
//! This is the only crate a connector or codec plugin depends on. It defines:
//! - [`Value`], the event type of the whole engine, ABI-stable itself, so events cross a plugin
//!   boundary as they are, in batches, never converted;
//! - [`Frames`], a batch of byte strings in one buffer, and [`SourceBatch`], what a source
//!   hands over: frames by stream, stream metadata, and values that need no codec;
//! - the root module each plugin library exports ([`abi::PluginMod`]) with its [`abi::Manifest`],
//!   and the codec, source and sink objects its constructors return;
//! - [`PluginError`], the error that crosses the boundary;
//! - for plugin authors: the [`Codec`], [`Source`] and [`Sink`] traits, [`Setup`] and
//!   [`export_plugin!`], which hide abi_stable, catch panics and forward logs to the host.
//!
//! A plugin is written like this (a crate with `crate-type = ["cdylib", "rlib"]`, a default
//! feature `export`, and for release builds a `<lib>_lto` cdylib example whose source is the
//! shared `shim/lto.rs`; `cargo xtask new-plugin` writes all of it):
//! ```
//! use temblor_shim::{Codec, PluginError, RVec, Setup, Value};
//!
//! /// Decodes each frame into an upper-cased string.
//! struct Upper;
//!
//! impl Codec for Upper {
//!     fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
//!         let text = std::str::from_utf8(frame).map_err(|e| e.to_string())?;
//!         Ok(Value::from(text.to_uppercase()))
//!     }
//!     fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
//!         // `extend_from_copy_slice` is one memcpy; `RVec::extend_from_slice` copies byte by byte.
//!         out.extend_from_copy_slice(event.as_str().unwrap_or_default().as_bytes());
//!         Ok(())
//!     }
//! }
//!
//! fn new(_: &Setup<'_>) -> Result<Upper, PluginError> {
//!     Ok(Upper)
//! }
//!
//! temblor_shim::export_plugin! { name: "upper", kind: Codec, codec: new }
//!
//! let manifest = (plugin_module().manifest())();
//! assert_eq!(manifest.name.as_str(), "upper");
//! ```

pub mod abi;
mod batch;
mod error;
mod frames;
pub mod log;
mod notify;
mod plugin;
pub mod sink;
mod value;

pub use abi::{FrameError, Pull};
pub use abi_stable::std_types::{RString, RVec};
pub use batch::{DEFAULT_STREAM, NO_OFFSET, SourceBatch, StreamRun};
pub use error::{ErrorKind, PluginError};
pub use frames::Frames;
pub use notify::{Notify, Wake};
pub use plugin::{
    Codec, Setup, Sink, Source, codec_object, keyless, meta_of, sink_object, source_object,
};
pub use value::{ByteSink, Field, FromValueError, Object, Value, from_value};

/// Re-exported so plugins log through the shim's `tracing` without depending on it themselves.
pub use tracing;

/// Re-exported so plugins derive `Deserialize` for their `Config`
/// (`#[serde(crate = "temblor_shim::serde")]`).
pub use serde;

/// The body of every plugin's `<lib>_lto` release example (`shim/lto.rs`): links the library.
pub use temblor_shim_macros::link_plugin;

/// Re-exported for the loader in the engine; plugins do not need it.
pub use abi_stable;

/// What `#[export_root_module]` (in [`export_plugin!`]) expands to names, as
/// `::abi_stable::library::...`, where `::abi_stable` is the shim itself (the macro gives the
/// plugin's crate root `extern crate temblor_shim as abi_stable;`). Not for direct use.
#[doc(hidden)]
pub use abi_stable::library;

/// What [`export_plugin!`] expands to refers to these. Not for direct use.
#[doc(hidden)]
pub mod __private {
    pub use crate::abi::{
        CodecBox, HostLog, LogLevel, Manifest, PluginKind, PluginMod, PluginModRef, RUSTC_VERSION,
        SHIM_INTERFACE_VERSION, SinkBox, SourceBox,
    };
    pub use crate::log::init as init_log;
    pub use crate::plugin::{codec_object, construct, sink_object, source_object, unsupported};
    pub use crate::{PluginError, Value};
    pub use abi_stable::export_root_module;
    pub use abi_stable::prefix_type::WithMetadata;
    pub use abi_stable::std_types::{RResult, RStr};
}
