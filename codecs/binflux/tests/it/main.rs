//! Drives the `binflux` codec through its ABI object with the compliance harness, as the engine
//! does.

use temblor_harness::codec::{decode, encode};
use temblor_shim::{Frames, Value};

temblor_harness::codec_tests!(codec_binflux, "binflux", &[], &[&weather(), BARE]);

/// A point with a tag and float and string fields, as InfluxDB's own example has them.
fn weather() -> Vec<u8> {
    let mut point = Vec::new();
    point.extend_from_slice(b"\0\0\0\x07weather");
    point.extend_from_slice(&1_465_839_830_100_400_200_u64.to_be_bytes());
    point.extend_from_slice(b"\0\x01\0\x08location\0\x0aus-midwest\0\x02");
    point.extend_from_slice(b"\0\x0btemperature\x01");
    point.extend_from_slice(&82.0_f64.to_bits().to_be_bytes());
    point.extend_from_slice(b"\0\x04note\x02\0\x08too warm");
    point
}

/// A point with no tags and one boolean field.
const BARE: &[u8] = b"\0\0\0\x01m\0\0\0\0\0\0\0\0\0\0\0\x01\0\x01f\x03";

#[test]
fn decodes_a_batch_and_encodes_it_back() {
    let point = |m: &str, ts: i64| {
        Value::Object(
            [
                ("measurement", Value::from(m)),
                (
                    "tags",
                    Value::Object([("host", Value::from("a"))].into_iter().collect()),
                ),
                (
                    "fields",
                    Value::Object([("v", Value::I64(ts))].into_iter().collect()),
                ),
                ("timestamp", Value::I64(ts)),
            ]
            .into_iter()
            .collect(),
        )
    };
    let points: Vec<Value> = (0..100).map(|i| point(&format!("m{i}"), i)).collect();
    let mut c = codec();
    let wire = encode(&mut c, &points);
    assert_eq!(wire.len(), points.len());
    let mut frames: Frames = wire.iter().collect();
    frames.push(b"\0\x01");
    let (again, errors) = decode(&mut c, &frames);
    assert_eq!(again, points);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].index, 100);
    assert_eq!(
        errors[0].reason.as_str(),
        "binflux version 1 at byte 0: only 0 is known"
    );
}
