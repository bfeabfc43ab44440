//! Drives the blackhole connector through its ABI objects, as the engine does.

use temblor_harness::{config, connector};
use temblor_shim::{
    ErrorKind, Frames, Object, PluginError, Value, abi::SinkBox, abi_stable::std_types::RStr,
};

fn sink(config: &Value) -> Result<SinkBox, PluginError> {
    (connector_blackhole::plugin_module().new_sink())(RStr::from("t"), config).into_result()
}

#[test]
fn accepts_frames_and_flushes() {
    let mut sink = sink(&Value::Object(Object::new())).expect("sink");
    let frames: Frames = (0..1000).map(|_| &b"{\"a\":1}\n"[..]).collect();
    for _ in 0..10 {
        assert_eq!(sink.push(&frames).into_result(), Ok(()));
    }
    assert_eq!(sink.push(&Frames::new()).into_result(), Ok(()));
    assert_eq!(sink.flush().into_result(), Ok(()));
    drop(sink);
}

#[test]
fn unknown_config_key_is_a_config_error() {
    let config = Value::Object([("verbose", Value::from(true))].into_iter().collect());
    let err = sink(&config).err().expect("unknown key");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("verbose"), "{err}");
}

#[test]
fn blackhole_is_a_sink_only() {
    let result = (connector_blackhole::plugin_module().new_source())(
        RStr::from("t"),
        &Value::Object(Object::new()),
    )
    .into_result();
    let err = result.err().expect("no source");
    assert_eq!(err.kind, ErrorKind::Unsupported, "{err}");
    assert!(!err.message.contains("'t'"), "{err}");
    let manifest = (connector_blackhole::plugin_module().manifest())();
    assert_eq!(manifest.name.as_str(), "blackhole");
}

/// The shared compliance checks.
#[test]
fn compliance() {
    let module = connector_blackhole::plugin_module();
    connector::compliance(module, "blackhole", &config(&[]), connector::Offers::Sink);
    connector::sink_accepts(module, &config(&[]), &[b"{\"a\":1}\n", b"", b"x"]);
}
