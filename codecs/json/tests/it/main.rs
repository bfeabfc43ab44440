//! Drives the `json` codec through its ABI object, as the engine does.

use temblor_harness::codec::{decode, encode, good_bad_good};
use temblor_shim::{Frames, Value};

temblor_harness::codec_tests!(
    codec_json,
    "json",
    &[],
    &[
        br#"{"a":1,"b":[true,null,"x"],"c":{"d":-2.5}}"#,
        b"[]",
        b"\"just a string\"",
        b"18446744073709551615",
    ],
);

#[test]
fn good_bad_good_gives_two_events_and_one_error() {
    let mut c = codec();
    let events = good_bad_good(
        &mut c,
        [br#"{"a":1}"#, br#"{"a":"#, br#"[true,"x"]"#],
        "at character",
    );
    assert_eq!(events[0].get("a"), Some(&Value::I64(1)));
    assert_eq!(
        events[1],
        Value::from(vec![Value::Bool(true), Value::from("x")])
    );

    let encoded = encode(&mut c, &events);
    let written: Vec<&[u8]> = encoded.iter().collect();
    assert_eq!(written, [&br#"{"a":1}"#[..], br#"[true,"x"]"#]);
}

#[test]
fn never_panics_on_garbage() {
    let mut c = codec();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 100],
        b"[".repeat(100_000),
        b"{\"a\":".repeat(50_000),
        b"\"\\ud800\"".to_vec(),
        b"[1,2,3".to_vec(),
        (0..=255).collect(),
    ];
    let frames: Frames = garbage.iter().map(Vec::as_slice).collect();
    let (events, errors) = decode(&mut c, &frames);
    assert!(events.is_empty(), "{events:?}");
    let indexes: Vec<u32> = errors.iter().map(|e| e.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5, 6]);
    // The codec still works afterwards.
    let frames: Frames = [&b"1"[..]].into_iter().collect();
    assert_eq!(decode(&mut c, &frames).0.as_slice(), [Value::I64(1)]);
}

#[test]
fn the_data_set_decodes_and_round_trips() {
    // Encoding gives back the lines as they were (they are compact JSON), and decoding that
    // gives the same events.
    let (lines, encoded) = temblor_harness::codec::the_json_data_set_round_trips(&mut codec());
    for (written, line) in encoded.iter().zip(&lines) {
        assert_eq!(
            String::from_utf8_lossy(written),
            String::from_utf8_lossy(line)
        );
    }
}
