//! Drives the metronome connector through its ABI objects with the compliance harness.

use std::time::Duration;

use temblor_harness::{config, connector};
use temblor_shim::Value;

fn module() -> temblor_shim::abi::PluginModRef {
    connector_metronome::plugin_module()
}

/// `ingest_ns` and `id` of a tick frame.
fn fields(frame: &[u8]) -> (u64, u64) {
    let text = std::str::from_utf8(frame).expect("utf-8");
    let rest = text
        .strip_prefix("{\"onramp\":\"metronome\",\"ingest_ns\":")
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a tick: {text}"));
    let (ns, id) = rest
        .split_once(",\"id\":")
        .unwrap_or_else(|| panic!("not a tick: {text}"));
    (ns.parse().expect("ingest_ns"), id.parse().expect("id"))
}

#[test]
fn delivers_ticks_with_consecutive_ids_and_increasing_times() {
    let cfg = config(&[("interval_ms", Value::from(10))]);
    let frames = connector::source_delivers(module(), &cfg, 5, Duration::from_secs(1));
    let ticks: Vec<(u64, u64)> = frames.iter().map(|f| fields(f)).collect();
    for (i, pair) in ticks.windows(2).enumerate() {
        assert_eq!(
            pair[1].1,
            pair[0].1 + 1,
            "ids are consecutive at {i}: {ticks:?}"
        );
        assert!(
            pair[1].0 > pair[0].0,
            "ingest_ns increases at {i}: {ticks:?}"
        );
        // Ten milliseconds apart, give or take the scheduler.
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= 5_000_000, "ticks {gap} ns apart: {ticks:?}");
    }
    assert_eq!(ticks[0].1, 0);
}

#[test]
fn a_slow_metronome_stays_responsive() {
    // One tick a minute: every pull still returns within about 100 ms (checked by the harness).
    let cfg = config(&[("interval_ms", Value::from(60_000))]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let (frames, exhausted) = connector::pull_frames(&mut source, 1, Duration::from_millis(350));
    assert!(frames.is_empty());
    assert!(!exhausted, "a metronome never ends");
}

#[test]
fn rejects_unknown_key() {
    connector::rejects_unknown_key(module(), &config(&[("interval_ms", Value::from(10))]), true);
}

#[test]
fn refuses_the_other_direction() {
    connector::manifest(module());
    connector::refuses_the_other_direction(
        module(),
        &config(&[("interval_ms", Value::from(10))]),
        false,
    );
}

#[test]
fn interval_is_required_and_positive() {
    for cfg in [config(&[]), config(&[("interval_ms", Value::from(0))])] {
        let err = connector::source(module(), &cfg).err().expect("refused");
        assert_eq!(err.kind, temblor_shim::ErrorKind::Config, "{err}");
        assert!(err.message.contains("interval_ms"), "{err}");
    }
}
