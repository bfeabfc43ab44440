//! Drives the `msgpack` codec through its ABI object, as the engine does.

use temblor_harness::codec::decode;
use temblor_shim::{Frames, Value, abi::CodecBox};

// The data set shipped with the repository (`data.msgpack.xz`): 100 MessagePack values,
// base64-encoded one per line, xz-compressed.

fn codec() -> CodecBox {
    temblor_harness::codec::build(
        codec_msgpack::plugin_module(),
        &temblor_harness::config(&[]),
    )
}

/// Decodes standard base64 (with `=` padding), or says why it cannot.
fn base64_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Result<u32, String> {
        Ok(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("not base64: {:?}", char::from(c))),
        }))
    }
    if !text.len().is_multiple_of(4) {
        return Err(format!(
            "base64 length {} is not a multiple of 4",
            text.len()
        ));
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quad in text.chunks(4) {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0;
        for &c in &quad[..4 - pad] {
            n = n << 6 | sextet(c)?;
        }
        n <<= 6 * pad;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Ok(out)
}

/// The lines of the data set, base64-decoded.
fn data_frames() -> Vec<Vec<u8>> {
    temblor_harness::data_lines("data.msgpack.xz")
        .iter()
        .map(|line| base64_decode(line).unwrap())
        .collect()
}

#[test]
fn the_test_base64_decoder_is_right() {
    assert_eq!(base64_decode(b"").unwrap(), b"");
    assert_eq!(base64_decode(b"Zg==").unwrap(), b"f");
    assert_eq!(base64_decode(b"Zm8=").unwrap(), b"fo");
    assert_eq!(base64_decode(b"Zm9v").unwrap(), b"foo");
    assert_eq!(base64_decode(b"Zm9vYmFy").unwrap(), b"foobar");
    assert_eq!(base64_decode(b"//79").unwrap(), [0xff, 0xfe, 0xfd]);
    assert!(base64_decode(b"Zm9").is_err());
    assert!(base64_decode(b"Zm9*").is_err());
}

#[test]
fn manifest_names_a_msgpack_codec() {
    temblor_harness::codec::manifest_names(codec_msgpack::plugin_module(), "msgpack");
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

#[test]
fn passes_the_codec_compliance_harness() {
    temblor_harness::codec::compliance(
        codec_msgpack::plugin_module(),
        &temblor_harness::config(&[]),
        &[
            b"\x83\xa1a\x01\xa1b\x93\xc3\xc0\xa1x\xa1c\x81\xa1d\xcb\xc0\x04\x00\x00\x00\x00\x00\x00",
            b"\x90",
            b"\xadjust a string",
            b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xc4\x03\x00\x01\xff",
        ],
    );
}
