//! Drives the stdio connector through its ABI objects, as the engine does.
//!
//! The stdin source is not built here (the test's stdin is whatever the runner gives it); its
//! reader is tested on a chosen input through the same ABI object instead.

use std::io::Cursor;

use temblor_shim::{
    ErrorKind, Frames, Object, PluginError, Pull, Value, abi::SinkBox, abi_stable::std_types::RStr,
};

fn sink(config: &Value) -> Result<SinkBox, PluginError> {
    (connector_stdio::plugin_module().new_sink())(RStr::from("t"), config).into_result()
}

fn config(fields: &[(&str, &str)]) -> Value {
    Value::Object(fields.iter().map(|(k, v)| (*k, Value::from(*v))).collect())
}

#[test]
fn sink_writes_to_stdout() {
    for cfg in [
        Value::Object(Object::new()),
        config(&[("stream", "stdout")]),
    ] {
        let mut sink = sink(&cfg).expect("sink");
        let frames: Frames = [
            &b"stdio sink test: line 1\n"[..],
            b"stdio sink test: line 2\n",
        ]
        .into_iter()
        .collect();
        assert_eq!(sink.push(&frames).into_result(), Ok(()));
        assert_eq!(sink.push(&Frames::new()).into_result(), Ok(()));
        assert_eq!(sink.flush().into_result(), Ok(()));
    }
}

#[test]
fn sink_writes_to_stderr() {
    let mut sink = sink(&config(&[("stream", "stderr")])).expect("sink");
    let frames: Frames = [&b"stdio sink test: to stderr\n"[..]].into_iter().collect();
    assert_eq!(sink.push(&frames).into_result(), Ok(()));
    assert_eq!(sink.flush().into_result(), Ok(()));
}

#[test]
fn bad_config_is_a_config_error() {
    let err = sink(&config(&[("stream", "stdin")]))
        .err()
        .expect("bad stream");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("stdin"), "{err}");
    let err = sink(&config(&[("path", "x")])).err().expect("unknown key");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("unknown field `path`"), "{err}");
    let err = (connector_stdio::plugin_module().new_source())(
        RStr::from("t"),
        &config(&[("strem", "stdout")]),
    )
    .into_result()
    .err()
    .expect("unknown key for the source too");
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("strem"), "{err}");
}

#[test]
fn stream_source_through_the_abi_object() {
    let data: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
    let source = connector_stdio::StreamSource::spawn("t", "test input", Cursor::new(data.clone()))
        .expect("spawn");
    let mut source = temblor_shim::source_object(source);
    let mut frames = Frames::new();
    let mut last = Pull::Idle;
    for _ in 0..1000 {
        last = source.pull(&mut frames).into_result().expect("pull");
        if last == Pull::Exhausted {
            break;
        }
    }
    assert_eq!(last, Pull::Exhausted);
    assert!(frames.iter().all(|f| f.len() <= 64 * 1024));
    let joined: Vec<u8> = frames.iter().flatten().copied().collect();
    assert_eq!(joined, data);
}

#[test]
fn manifest_names_the_connector() {
    let manifest = (connector_stdio::plugin_module().manifest())();
    assert_eq!(manifest.name.as_str(), "stdio");
}

/// The shared compliance checks. The stdin source is not built (see the top of this file); the
/// connector offers both directions, so there is no other direction to refuse.
mod compliance {
    use temblor_harness::{config, connector};
    use temblor_shim::Value;

    fn module() -> temblor_shim::abi::PluginModRef {
        connector_stdio::plugin_module()
    }

    #[test]
    fn sink_accepts() {
        connector::sink_accepts(
            module(),
            &config(&[]),
            &[b"stdio compliance: stdout\n", b""],
        );
        connector::sink_accepts(
            module(),
            &config(&[("stream", Value::from("stderr"))]),
            &[b"stdio compliance: stderr\n"],
        );
    }

    #[test]
    fn rejects_unknown_key() {
        connector::rejects_unknown_key(module(), &config(&[]), false);
        // Refused while reading the config, before stdin is touched.
        connector::rejects_unknown_key(module(), &config(&[]), true);
    }
}
