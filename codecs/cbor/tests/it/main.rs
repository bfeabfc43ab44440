//! Drives the `cbor` codec through its ABI object with the compliance harness, as the engine
//! does.

use temblor_harness::codec::{decode, encode};
use temblor_shim::{Frames, Value};

temblor_harness::codec_tests!(
    codec_cbor,
    "cbor",
    &[],
    &[
        b"\xa2\x61\x61\x01\x61\x62\x82\x02\x03",
        b"\x83\x01\x82\x02\x03\x82\x04\x05",
        b"\xfb\x3f\xf1\x99\x99\x99\x99\x99\x9a",
        b"\x44\x01\x02\x03\x04",
        b"\x63\xe6\xb0\xb4",
        b"\xf6",
        b"\x3b\x7f\xff\xff\xff\xff\xff\xff\xff",
    ],
);

#[test]
fn decodes_a_batch_and_encodes_it_back() {
    let mut c = codec();
    // RFC 8949 Appendix A: {"a": 1, "b": [2, 3]}, a garbage frame, "IETF".
    let frames: Frames = [
        &b"\xa2\x61\x61\x01\x61\x62\x82\x02\x03"[..],
        b"\xa2\x61",
        b"\x64IETF",
    ]
    .into_iter()
    .collect();
    let (events, errors) = decode(&mut c, &frames);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].get("a"), Some(&Value::I64(1)));
    assert_eq!(events[1], Value::from("IETF"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].index, 1);
    assert_eq!(
        errors[0].reason.as_str(),
        "the frame ends inside an item at byte 2"
    );
    let encoded = encode(&mut c, &events);
    let good: Frames = [0, 2].into_iter().filter_map(|i| frames.get(i)).collect();
    assert_eq!(encoded, good);
}

#[test]
fn the_json_data_set_round_trips_through_cbor() {
    let lines = temblor_harness::data_lines("data.json.xz");
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).expect("the data set is JSON"))
        .collect();
    let mut c = codec();
    temblor_harness::codec::round_trips(&mut c, &events);
}
