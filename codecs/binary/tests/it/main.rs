//! Drives the `binary` codec through its ABI object, as the engine does.

use temblor_harness::codec::{decode, encode};
use temblor_shim::{Frames, Value};

temblor_harness::codec_tests!(
    codec_binary,
    "binary",
    &[],
    &samples().iter().collect::<Vec<_>>()
);

/// Text, nothing, bytes that are no UTF-8, every byte value, JSON.
fn samples() -> Frames {
    let all: Vec<u8> = (0..=255).collect();
    [&b"plain"[..], b"", b"\xff\x00\xfe", &all, b"{\"x\":1}\n"]
        .into_iter()
        .collect()
}

#[test]
fn frames_round_trip_untouched() {
    let mut c = codec();
    let all: Vec<u8> = (0..=255).collect();
    let frames = samples();
    let (events, errors) = decode(&mut c, &frames);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(events.len(), 5);
    assert!(
        events.iter().all(|e| matches!(e, Value::Bytes(_))),
        "{events:?}"
    );
    assert_eq!(events[3], Value::Bytes(all.into()));
    assert_eq!(encode(&mut c, &events), frames);
}

#[test]
fn encodes_strings_raw_and_other_values_as_json() {
    let mut c = codec();
    let events = [
        Value::from("text é"),
        Value::from(vec![Value::I64(1), Value::Null]),
        Value::F64(0.25),
    ];
    let encoded = encode(&mut c, &events);
    let written: Vec<&[u8]> = encoded.iter().collect();
    assert_eq!(written, ["text é".as_bytes(), b"[1,null]", b"0.25"]);
}
