//! Drives the `ws_server` connector through its ABI objects with the compliance harness, as the
//! engine does.

use std::time::Duration;

use temblor_harness::{config, connector};
use temblor_shim::Value;

fn module() -> temblor_shim::abi::PluginModRef {
    connector_ws_server::plugin_module()
}

#[test]
fn the_source_delivers_count_frames_then_ends() {
    let cfg = config(&[("count", Value::from(5)), ("text", Value::from("tick"))]);
    let frames = connector::source_delivers(module(), &cfg, 5, Duration::from_secs(5));
    let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("tick {i}").into_bytes()).collect();
    assert_eq!(frames, expected);

    let mut source = connector::source(module(), &cfg).expect("source");
    let (frames, exhausted) = connector::pull_frames(&mut source, 100, Duration::from_secs(5));
    assert!(exhausted, "the source ends after `count` frames");
    assert_eq!(frames.len(), 5);
}

#[test]
fn a_paced_source_stays_responsive() {
    // One frame a minute: the first comes at once, then every pull still returns within about
    // 100 ms (checked by the harness).
    let cfg = config(&[
        ("count", Value::from(5)),
        ("interval_ms", Value::from(60_000)),
    ]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let (frames, exhausted) = connector::pull_frames(&mut source, 2, Duration::from_millis(350));
    assert_eq!(frames, [b"hello 0".to_vec()]);
    assert!(!exhausted);
}

#[test]
fn the_sink_writes_what_it_accepts() {
    let file = format!("connector_ws_server-it-{}.txt", std::process::id());
    let path = std::env::temp_dir().join(file);
    let cfg = config(&[("path", Value::from(path.display().to_string()))]);
    connector::sink_accepts(module(), &cfg, &[b"{\"a\":1}\n", b"", b"x"]);
    assert_eq!(std::fs::read(&path).expect("written"), b"{\"a\":1}\nx");
    std::fs::remove_file(&path).expect("remove");
    // Without a path it only counts.
    connector::sink_accepts(module(), &config(&[]), &[b"y"]);
}

#[test]
fn rejects_unknown_keys() {
    connector::manifest(module());
    connector::rejects_unknown_key(module(), &config(&[("count", Value::from(1))]), true);
    connector::rejects_unknown_key(module(), &config(&[]), false);
}
