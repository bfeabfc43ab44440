//! The root module every plugin exports, and the trait objects its constructors return.
//!
//! Everything here is `#[repr(C)]` and `StableAbi`: abi_stable checks its layout when a plugin
//! is loaded. The root module is a prefix type, so later interface versions can append fields
//! after `last_prefix_field` and still load plugins built against this one.

// `#[sabi_trait]` expands to impl blocks inside consts.
#![allow(non_local_definitions)]

use abi_stable::{
    StableAbi,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
};

use crate::{Frames, Notify, PluginError, SourceBatch, Value};

/// The version of this interface.
///
/// - 1: batches of frames, fire and forget.
/// - 2: streams, metadata and values in a source's batch ([`SourceFfi::pull_batch`]),
///   acknowledgements ([`SourceFfi::ack`], [`SourceFfi::fail`]), metadata and partial writes in
///   a sink's push ([`SinkFfi::push_batch`]), and the root module's `shutdown`.
/// - 3: wake-ups ([`SourceFfi::set_notify`]): a source that takes a [`Notify`] returns from a
///   pull at once when it has nothing, and wakes the engine when it has.
///
/// Every field and method added after 1 comes after its type's `last_prefix_field` and has a
/// default, so a plugin built against an older interface still loads and works (without what
/// came later). Anything older than [`MIN_SHIM_INTERFACE_VERSION`] or newer is refused.
pub const SHIM_INTERFACE_VERSION: u32 = 3;

/// The oldest interface version this shim still drives.
pub const MIN_SHIM_INTERFACE_VERSION: u32 = 1;

/// The rustc version this crate (and so the plugin linking it) was built with.
pub const RUSTC_VERSION: &str = env!("TEMBLOR_RUSTC_VERSION");

/// What a plugin provides.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    /// Moves bytes in (source) or out (sink), or both.
    Connector,
    /// Turns frames into events and back.
    Codec,
}

impl PluginKind {
    /// `"connector"` or `"codec"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connector => "connector",
            Self::Codec => "codec",
        }
    }
}

/// Who a plugin is and what it was built with.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct Manifest {
    /// The name deployments use (`plugin = "file"`, `codec = "json"`).
    pub name: RStr<'static>,
    /// Connector or codec.
    pub kind: PluginKind,
    /// The plugin crate's own version.
    pub version: RStr<'static>,
    /// The [`SHIM_INTERFACE_VERSION`] it was built against.
    pub shim_interface: u32,
    /// The rustc version it was built with.
    pub rustc: RStr<'static>,
}

/// The severity of a log line a plugin sends to the host.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Most verbose.
    Trace = 0,
    /// Debugging.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something to look at.
    Warn = 3,
    /// Something failed.
    Error = 4,
}

/// One log line from a plugin: level, plugin name, target (module path), message.
pub type LogFn = extern "C" fn(LogLevel, RStr<'_>, RStr<'_>, RStr<'_>);

/// The host's log callback, as handed to a plugin.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct HostLog {
    /// Called for each log line: level, plugin name, target (module path), message.
    pub func: extern "C" fn(LogLevel, RStr<'_>, RStr<'_>, RStr<'_>),
}

/// A per-frame decoding failure: the frame's index in its batch and the reason.
///
/// An empty `reason` says the frame was **skipped** on purpose: it decodes to nothing (an
/// influx comment or blank line), so it gives no event and no error. Use
/// [`FrameError::skipped`] and [`FrameError::is_skipped`]; a codec must account for every
/// frame it gives no event for this way, so the engine keeps each event with its frame's
/// metadata. (A host older than this convention reports a skipped frame as an error with an
/// empty reason.)
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// The index of the frame in the batch given to `decode`.
    pub index: u32,
    /// Why it could not be decoded; empty when the frame was skipped on purpose.
    pub reason: RString,
}

impl FrameError {
    /// Frame `index` decodes to nothing: no event, and no error.
    #[must_use]
    pub fn skipped(index: u32) -> Self {
        Self {
            index,
            reason: RString::new(),
        }
    }

    /// Whether this frame was skipped on purpose rather than failed (its reason is empty).
    #[must_use]
    pub fn is_skipped(&self) -> bool {
        self.reason.is_empty()
    }
}

/// What a source's `pull` found.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    /// Frames were appended (possibly none); pull again.
    Ready,
    /// Nothing arrived for a while; pull again (the engine checks for shutdown in between).
    Idle,
    /// The source has nothing more, ever; frames appended by this call still count.
    Exhausted,
}

/// A codec instance across the boundary. Built by [`PluginMod::new_codec`].
#[sabi_trait]
pub trait CodecFfi: Send {
    /// Decodes every frame: events are appended to `out`; a frame that cannot be decoded adds a
    /// [`FrameError`] instead, and the rest go on.
    fn decode(
        &mut self,
        frames: &Frames,
        out: &mut RVec<Value>,
        errors: &mut RVec<FrameError>,
    ) -> RResult<(), PluginError>;

    /// Encodes every event into one frame each, appended to `out`.
    #[sabi(last_prefix_field)]
    fn encode(&mut self, events: RSlice<'_, Value>, out: &mut Frames) -> RResult<(), PluginError>;
}

/// A source instance across the boundary. Built by [`PluginMod::new_source`].
///
/// The methods after `pull` came with interface 2; on a source built against interface 1 their
/// default bodies run in the host: `pull_batch` calls `pull`, and there are no acknowledgements.
#[sabi_trait]
pub trait SourceFfi: Send {
    /// Interface 1: appends the frames available now to `out` (stream 0), waiting at most
    /// about 100 ms for some. The engine calls `pull_batch`.
    #[sabi(last_prefix_field)]
    fn pull(&mut self, out: &mut Frames) -> RResult<Pull, PluginError>;

    /// Hands over what is available now, waiting at most about 100 ms for some: frames by
    /// stream, stream starts (with metadata) and ends, and values. Everything it adds is
    /// covered by `out.token()`.
    fn pull_batch(&mut self, out: &mut SourceBatch) -> RResult<Pull, PluginError> {
        self.pull(out)
    }

    /// Whether this instance wants `ack` and `fail` for its batches. Asked once, after it is
    /// built.
    fn wants_acks(&self) -> bool {
        false
    }

    /// Everything of the batch with this token was delivered (written and flushed by every
    /// sink it reached, dropped by a filter, or written to a dead letter file).
    fn ack(&mut self, token: u64) -> RResult<(), PluginError> {
        let _ = token;
        RResult::ROk(())
    }

    /// Some of the batch with this token could not be delivered (`reason` says why).
    fn fail(&mut self, token: u64, reason: RStr<'_>) -> RResult<(), PluginError> {
        let _ = (token, reason);
        RResult::ROk(())
    }

    /// Interface 3: offers the source a handle to wake the engine with. `true`: the source took
    /// it, and from now on `pull_batch` returns `Idle` at once when it has nothing and calls
    /// [`Notify::notify`] when it has something (the engine waits in between, without a
    /// timeout). `false` (the default, and every older source): `pull_batch` keeps waiting up
    /// to about 100 ms itself. Asked once, after the source is built.
    fn set_notify(&mut self, notify: Notify) -> bool {
        drop(notify);
        false
    }
}

/// A sink instance across the boundary. Built by [`PluginMod::new_sink`].
#[sabi_trait]
pub trait SinkFfi: Send {
    /// Writes every frame.
    fn push(&mut self, frames: &Frames) -> RResult<(), PluginError>;
    /// Makes everything written so far durable or delivered.
    fn flush(&mut self) -> RResult<(), PluginError>;
    /// Whether this sink asks the engine to stop (e.g. the `exit` connector after its first
    /// event). Asked after every push.
    #[sabi(last_prefix_field)]
    fn stop_requested(&mut self) -> bool;

    /// Interface 2: writes every frame, with the events' metadata: `meta` is empty (none), one
    /// value (the same for every frame) or one value per frame. On an error, `delivered` lists
    /// the indices of the frames that were written all the same, in order; the engine retries
    /// only the others. On a sink built against interface 1 this calls `push`.
    fn push_batch(
        &mut self,
        frames: &Frames,
        meta: RSlice<'_, Value>,
        delivered: &mut RVec<u32>,
    ) -> RResult<(), PluginError> {
        let _ = (meta, delivered);
        self.push(frames)
    }
}

/// An owned codec instance.
pub type CodecBox = CodecFfi_TO<'static, RBox<()>>;
/// An owned source instance.
pub type SourceBox = SourceFfi_TO<'static, RBox<()>>;
/// An owned sink instance.
pub type SinkBox = SinkFfi_TO<'static, RBox<()>>;

/// The root module of a plugin library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Who the plugin is.
    pub manifest: extern "C" fn() -> Manifest,
    /// Hands the plugin the host's log callback and the most verbose level the host wants.
    /// Called once, right after loading, and only for dynamically loaded plugins.
    pub init_logging: extern "C" fn(HostLog, LogLevel),
    /// Builds a codec (codec plugins). Constructors take the component's id (for messages) and
    /// its `config` from the deployment.
    pub new_codec: extern "C" fn(RStr<'_>, &Value) -> RResult<CodecBox, PluginError>,
    /// Builds a source (connector plugins that can read).
    pub new_source: extern "C" fn(RStr<'_>, &Value) -> RResult<SourceBox, PluginError>,
    /// Builds a sink (connector plugins that can write).
    #[sabi(last_prefix_field)]
    pub new_sink: extern "C" fn(RStr<'_>, &Value) -> RResult<SinkBox, PluginError>,
    /// Interface 2: the host will build nothing more from this library (it was replaced by a
    /// reload, or the engine is exiting) and every instance built from it was dropped: stop
    /// what the library runs on its own (threads, runtimes). Missing in interface 1 plugins.
    #[sabi(missing_field(option))]
    pub shutdown: extern "C" fn(),
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "temblor_plugin";
    const NAME: &'static str = "temblor plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The symbol name under which a plugin library exports its root module header: what
/// `#[export_root_module]` (in `export_plugin!`) names it, and what plugins of older interfaces,
/// which wrote it out by hand, export. abi_stable's loader must keep looking for this very name,
/// or those plugins stop loading (the test below fails first).
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_module_symbol_matches_abi_stable() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    #[test]
    fn rustc_version_is_embedded() {
        assert!(
            RUSTC_VERSION.split('.').count() >= 3,
            "not a version: {RUSTC_VERSION}"
        );
    }
}
