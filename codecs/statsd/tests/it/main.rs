//! Drives the `statsd` codec through its ABI object, as the engine does.

use temblor_harness::codec::{decode_data_set, good_bad_good};
use temblor_shim::Value;

temblor_harness::codec_tests!(
    codec_statsd,
    "statsd",
    &[],
    &[
        b"gorets:1|c",
        b"glork:320|ms|@0.1",
        b"gaugor:-10|g",
        b"gaugor:+4.5|g|#env:prod,canary",
        b"horst:42.23|h|#a|@0.5",
        b"users:alice|s",
        b"big:18446744073709551615|d",
    ],
);

fn event(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect())
}

#[test]
fn the_data_set_decodes_and_round_trips() {
    let mut c = codec();
    let (lines, events) = decode_data_set(&mut c, "data.statsd.xz", 8);
    let m = |metric: &str, kind: &str, value: Value| {
        vec![
            ("metric", Value::from(metric)),
            ("type", Value::from(kind)),
            ("value", value),
        ]
    };
    let with = |mut pairs: Vec<(&'static str, Value)>, more: &[(&'static str, Value)]| {
        pairs.extend_from_slice(more);
        event(&pairs)
    };
    let half = [("sample_rate", Value::F64(0.5))];
    assert_eq!(
        events.as_slice(),
        [
            event(&m("statsd", "g", 111.into())),
            with(m("statsd", "g", 111.into()), &half),
            with(m("statsd", "g", 111.into()), &half),
            with(
                m("statsd", "ms", 320.into()),
                &[("sample_rate", Value::F64(0.1))]
            ),
            with(m("statsd", "g", 4.into()), &[("action", "add".into())]),
            event(&m("uniques", "s", 765.into())),
            with(m("gaugor", "g", 10.into()), &[("action", "sub".into())]),
            event(&m("horst", "h", Value::F64(42.23))),
        ]
    );

    // Every line is written back as it was.
    let encoded = temblor_harness::codec::round_trips(&mut c, &events);
    let written: Vec<&[u8]> = encoded.iter().collect();
    let want: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    assert_eq!(written, want);
}

#[test]
fn good_bad_good_gives_two_events_and_one_error() {
    let mut c = codec();
    let events = good_bad_good(
        &mut c,
        [b"a:1|c|#x:y", b"a:1|zz", b"b:-2|g"],
        "unknown metric type",
    );
    assert_eq!(events[1].get("action"), Some(&Value::from("sub")));
}
