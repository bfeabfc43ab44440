//! Drives the `string` codec through its ABI object, as the engine does.

use temblor_harness::codec::{decode, encode};
use temblor_shim::{Frames, Object, Value};

temblor_harness::codec_tests!(
    codec_string,
    "string",
    &[],
    &[
        b"first line",
        "ünïcødé 😀".as_bytes(),
        b"",
        b"{\"a\":1}",
        b"with \"quotes\" and \\ and a tab\t",
    ],
);

#[test]
fn decodes_a_batch_and_encodes_it_back() {
    let mut c = codec();
    let frames: Frames = [
        &b"first line"[..],
        "ünïcødé 😀".as_bytes(),
        b"bad \xff",
        b"",
        b"{\"a\":1}",
    ]
    .into_iter()
    .collect();
    let (events, errors) = decode(&mut c, &frames);
    assert_eq!(
        events.as_slice(),
        [
            Value::from("first line"),
            Value::from("ünïcødé 😀"),
            Value::from(""),
            Value::from("{\"a\":1}"),
        ]
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].index, 2);
    assert_eq!(errors[0].reason, "invalid UTF-8 at byte offset 4: [ff]");

    // Strings go back as they came; the bad frame is gone.
    let encoded = encode(&mut c, &events);
    let good: Frames = [0, 1, 3, 4]
        .into_iter()
        .filter_map(|i| frames.get(i))
        .collect();
    assert_eq!(encoded, good);
}

#[test]
fn encodes_other_values_as_json() {
    let mut c = codec();
    let object: Object = [("k", Value::from("v"))].into_iter().collect();
    let events = [
        Value::I64(7),
        Value::Object(object),
        Value::from("raw \"text\""),
    ];
    let encoded = encode(&mut c, &events);
    let written: Vec<&[u8]> = encoded.iter().collect();
    assert_eq!(written, [&b"7"[..], br#"{"k":"v"}"#, br#"raw "text""#]);
}
