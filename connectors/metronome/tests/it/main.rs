//! Drives the metronome connector through its ABI objects, as the engine does, and with the
//! compliance harness.

use std::time::{Duration, Instant};

use temblor_harness::{config, connector};
use temblor_shim::{Pull, SourceBatch, Value, abi::SourceBox};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_metronome::plugin_module()
}

/// `ingest_ns` and `id` of a tick.
fn fields(tick: &Value) -> (u64, u64) {
    let field = |name: &str| {
        tick.get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no {name} in the tick {tick}"))
    };
    (field("ingest_ns"), field("id"))
}

/// Pulls through the interface 2 entry until `want` ticks arrived or `timeout` passed; each
/// pull must come back within about 100 ms.
fn pull_ticks(source: &mut SourceBox, want: usize, timeout: Duration) -> Vec<Value> {
    let started = Instant::now();
    let mut ticks = Vec::new();
    let mut batch = SourceBatch::new();
    while ticks.len() < want && started.elapsed() < timeout {
        batch.reset(0);
        let pull_started = Instant::now();
        let pulled = source.pull_batch(&mut batch).into_result().expect("pull");
        assert!(pull_started.elapsed() < Duration::from_millis(500));
        assert_ne!(pulled, Pull::Exhausted, "a metronome never ends");
        assert!(batch.frames().is_empty(), "ticks are values, not frames");
        let (values, meta) = batch.take_values();
        assert!(meta.iter().all(|m| *m == Value::Null));
        ticks.extend(values);
    }
    ticks
}

#[test]
fn delivers_ticks_with_consecutive_ids_and_increasing_times() {
    connector::manifest(module(), "metronome");
    let cfg = config(&[("interval_ms", Value::from(10))]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    let mut source = connector::source(module(), &cfg).expect("source");
    assert!(!source.wants_acks());
    let ticks: Vec<(u64, u64)> = pull_ticks(&mut source, 5, Duration::from_secs(1))
        .iter()
        .map(fields)
        .collect();
    assert!(ticks.len() >= 5, "{ticks:?}");
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
    }
    // Never early: tick `i` is due `i + 1` intervals after the first pull (which came after
    // `before`); a late tick never makes a later one early, so this holds on a loaded machine.
    for (i, (ingest_ns, _)) in ticks.iter().enumerate() {
        let due = before + (i as u64 + 1) * 10_000_000;
        assert!(
            *ingest_ns >= due,
            "tick {i} came {} ns early: {ticks:?}",
            due - ingest_ns
        );
    }
    assert_eq!(ticks[0].1, 0);
}

#[test]
fn ticks_encode_as_json_objects_with_id_and_ingest_ns() {
    let cfg = config(&[("interval_ms", Value::from(1))]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let ticks = pull_ticks(&mut source, 1, Duration::from_secs(1));
    let json = ticks[0].to_json();
    assert!(json.starts_with("{\"id\":0,\"ingest_ns\":"), "{json}");
    assert_eq!(ticks[0].as_object().map(temblor_shim::Object::len), Some(2));
}

#[test]
fn a_slow_metronome_stays_responsive() {
    // One tick a minute: every pull still returns within about 100 ms.
    let cfg = config(&[("interval_ms", Value::from(60_000))]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let started = Instant::now();
    let ticks = pull_ticks(&mut source, 1, Duration::from_millis(350));
    assert!(ticks.is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn compliance() {
    connector::compliance(
        module(),
        "metronome",
        &config(&[("interval_ms", Value::from(10))]),
        connector::Offers::Source,
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
