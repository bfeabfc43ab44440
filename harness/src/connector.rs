//! Compliance checks for connector plugins.

use std::time::{Duration, Instant};

use temblor_shim::{
    ErrorKind, Frames, PluginError, Pull, RVec, SourceBatch, Value,
    abi::{PluginKind, PluginModRef, SHIM_INTERFACE_VERSION, SinkBox, SourceBox},
    abi_stable::std_types::{RResult, RSlice, RStr},
};

use crate::with_unknown_key;

/// The manifest says connector, with a name and the shim's interface version.
///
/// # Panics
/// When it does not.
pub fn manifest(module: PluginModRef) {
    let manifest = module.manifest()();
    assert_eq!(
        manifest.kind,
        PluginKind::Connector,
        "the manifest says connector"
    );
    assert!(!manifest.name.is_empty(), "the plugin has a name");
    assert_eq!(manifest.shim_interface, SHIM_INTERFACE_VERSION);
}

/// Builds a source.
///
/// # Errors
/// The plugin's error.
pub fn source(module: PluginModRef, config: &Value) -> Result<SourceBox, PluginError> {
    module.new_source()(RStr::from_str("compliance"), config).into_result()
}

/// Builds a sink.
///
/// # Errors
/// The plugin's error.
pub fn sink(module: PluginModRef, config: &Value) -> Result<SinkBox, PluginError> {
    module.new_sink()(RStr::from_str("compliance"), config).into_result()
}

/// Pulls until `want` frames arrived, the source is exhausted, or `timeout` passed; returns
/// the frames and whether the source said it was exhausted. Each pull must come back within
/// about 100 ms (a little more is tolerated), so the engine can stop a source.
///
/// # Panics
/// When a pull fails or blocks too long.
pub fn pull_frames(source: &mut SourceBox, want: usize, timeout: Duration) -> (Vec<Vec<u8>>, bool) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut frames = SourceBatch::new();
    while got.len() < want && started.elapsed() < timeout {
        frames.reset(0);
        let pull_started = Instant::now();
        let pulled = source.pull_batch(&mut frames);
        assert!(
            pull_started.elapsed() < Duration::from_secs(2),
            "a pull blocked for {:?}",
            pull_started.elapsed()
        );
        got.extend(frames.iter().map(<[u8]>::to_vec));
        match pulled {
            RResult::ROk(Pull::Exhausted) => return (got, true),
            RResult::ROk(Pull::Ready | Pull::Idle) => {}
            RResult::RErr(e) => panic!("pull failed: {e}"),
        }
    }
    (got, false)
}

/// Pulls under delivery `token` (as the engine does for a source that wants acks) until `want`
/// frames arrived or `timeout` passed; returns each frame with its stream's metadata. Sleeps
/// 10 ms after an empty pull.
///
/// # Panics
/// When a pull fails.
pub fn pull_with_meta(
    source: &mut SourceBox,
    token: u64,
    want: usize,
    timeout: Duration,
) -> Vec<(Vec<u8>, Value)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut batch = SourceBatch::new();
    while got.len() < want && started.elapsed() < timeout {
        batch.reset(token);
        if let RResult::RErr(e) = source.pull_batch(&mut batch) {
            panic!("pull failed: {e}");
        }
        let frames: Vec<&[u8]> = batch.frames().iter().collect();
        for (range, run) in batch.all_runs() {
            for i in range {
                got.push((frames[i].to_vec(), run.meta.clone()));
            }
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    got
}

/// A source built from `config` delivers at least `want` frames within `timeout`, and is
/// dropped cleanly (it stops) afterwards; returns the frames.
///
/// # Panics
/// When it does not.
pub fn source_delivers(
    module: PluginModRef,
    config: &Value,
    want: usize,
    timeout: Duration,
) -> Vec<Vec<u8>> {
    manifest(module);
    let mut source =
        source(module, config).unwrap_or_else(|e| panic!("the source refused {config}: {e}"));
    let (frames, _) = pull_frames(&mut source, want, timeout);
    assert!(
        frames.len() >= want,
        "wanted {want} frames within {timeout:?}, got {}",
        frames.len()
    );
    drop(source);
    frames
}

/// A sink built from `config` accepts `frames` and flushes.
///
/// # Panics
/// When it does not.
pub fn sink_accepts(module: PluginModRef, config: &Value, frames: &[&[u8]]) {
    manifest(module);
    let mut sink =
        sink(module, config).unwrap_or_else(|e| panic!("the sink refused {config}: {e}"));
    let batch: Frames = frames.iter().copied().collect();
    if let RResult::RErr(e) = sink.push_batch(&batch, RSlice::from_slice(&[]), &mut RVec::new()) {
        panic!("push failed: {e}");
    }
    if let RResult::RErr(e) = sink.flush() {
        panic!("flush failed: {e}");
    }
    drop(sink);
}

/// With one more, unknown key in `config`, the constructor (`source` or `sink`) refuses with a
/// config error naming the key.
///
/// # Panics
/// When it does not.
pub fn rejects_unknown_key(module: PluginModRef, config: &Value, as_source: bool) {
    let config = with_unknown_key(config);
    let result = if as_source {
        source(module, &config).map(drop)
    } else {
        sink(module, &config).map(drop)
    };
    match result {
        Ok(()) => panic!("an unknown config key was accepted"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(
                e.message.contains("no_such_key_anywhere"),
                "the key is named: {e}"
            );
        }
    }
}

/// Asking for what the connector does not offer (a sink from a source-only connector, or the
/// reverse) is an `Unsupported` or `Config` error, never a panic.
///
/// # Panics
/// When it is something else.
pub fn refuses_the_other_direction(module: PluginModRef, config: &Value, as_source: bool) {
    let result = if as_source {
        source(module, config).map(drop)
    } else {
        sink(module, config).map(drop)
    };
    match result {
        Ok(()) => panic!("the connector accepted a direction it does not offer"),
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::Unsupported | ErrorKind::Config),
            "{e}"
        ),
    }
}
