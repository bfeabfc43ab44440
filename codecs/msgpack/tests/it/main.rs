//! Drives the `msgpack` codec through its ABI object, as the engine does.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use temblor_harness::codec::decode;
use temblor_shim::{Frames, Value};

temblor_harness::codec_tests!(
    codec_msgpack,
    "msgpack",
    &[],
    &[
        b"\x83\xa1a\x01\xa1b\x93\xc3\xc0\xa1x\xa1c\x81\xa1d\xcb\xc0\x04\x00\x00\x00\x00\x00\x00",
        b"\x90",
        b"\xadjust a string",
        b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\xc4\x03\x00\x01\xff",
    ],
);

// The data set shipped with the repository (`data.msgpack.xz`): 100 MessagePack values,
// base64-encoded one per line, xz-compressed.

/// The lines of the data set, base64-decoded.
fn data_frames() -> Vec<Vec<u8>> {
    temblor_harness::data_lines("data.msgpack.xz")
        .iter()
        .map(|line| STANDARD.decode(line).expect("base64"))
        .collect()
}

#[test]
fn the_data_set_decodes_and_round_trips() {
    let lines = data_frames();
    assert_eq!(lines.len(), 100);
    let frames: Frames = lines.iter().map(Vec::as_slice).collect();

    let mut c = codec();
    let events = temblor_harness::codec::decodes_the_data_set(&mut c, &frames);
    assert_eq!(
        events[0].get("array"),
        Some(&Value::from((0..10).map(Value::from).collect::<Vec<_>>()))
    );

    // The data set was written in the smallest forms too: it comes back byte for byte.
    let encoded = temblor_harness::codec::round_trips(&mut c, &events);
    for (written, line) in encoded.iter().zip(&lines) {
        assert_eq!(written, line.as_slice());
    }
}

#[test]
fn never_panics_on_garbage() {
    let mut c = codec();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xc1; 10],
        vec![0x91; 100_000],
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        b"\xa2\xff\xfe".to_vec(),
        b"\x81\xc3\x01".to_vec(),
    ];
    // Every cut of every data-set line, and every single byte flipped in the first one.
    let lines = data_frames();
    for line in lines.iter().take(5) {
        for cut in (0..line.len()).step_by(7) {
            garbage.push(line[..cut].to_vec());
        }
    }
    for i in 0..lines[0].len() {
        let mut flipped = lines[0].clone();
        flipped[i] ^= 0xa5;
        garbage.push(flipped);
    }
    let frames: Frames = garbage.iter().map(Vec::as_slice).collect();
    let (events, errors) = decode(&mut c, &frames);
    assert_eq!(events.len() + errors.len(), garbage.len());
    assert!(errors.len() >= 6, "{errors:?}");
    assert!(errors.iter().all(|e| !e.reason.is_empty()));
    // Whatever decoded encodes and decodes back to itself.
    temblor_harness::codec::round_trips(&mut c, &events);
}
