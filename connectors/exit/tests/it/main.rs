//! Drives the exit connector through its ABI objects with the compliance harness.

use std::time::{Duration, Instant};

use temblor_harness::{config, connector};
use temblor_shim::{Frames, Value};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_exit::plugin_module()
}

#[test]
fn sink_accepts() {
    connector::sink_accepts(module(), &config(&[]), &[b"{}", b"", b"more"]);
    connector::sink_accepts(module(), &config(&[("delay_ms", Value::from(0))]), &[]);
}

#[test]
fn asks_to_stop_after_the_first_event_and_the_delay() {
    let mut sink =
        connector::sink(module(), &config(&[("delay_ms", Value::from(100))])).expect("sink");
    assert!(!sink.stop_requested());
    sink.push(&Frames::new()).into_result().expect("empty push");
    assert!(!sink.stop_requested(), "no event yet");
    let started = Instant::now();
    let one: Frames = [&b"{\"a\":1}"[..]].into_iter().collect();
    sink.push(&one).into_result().expect("push");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(sink.stop_requested());
    sink.push(&one)
        .into_result()
        .expect("later frames are accepted");
    sink.flush().into_result().expect("flush");
    assert!(sink.stop_requested());
}

#[test]
fn compliance() {
    connector::compliance(module(), "exit", &config(&[]), connector::Offers::Sink);
    connector::compliance(
        module(),
        "exit",
        &config(&[("delay_ms", Value::from(5))]),
        connector::Offers::Sink,
    );
}
