//! The `binary` codec: each frame is an opaque byte string.
//!
//! Decoding makes each frame a bytes event as it is, without looking at it (one allocation: the
//! bytes themselves). It never fails.
//!
//! Encoding writes a bytes event as it is and a string event as its UTF-8 bytes (no quotes);
//! any other event (number, bool, null, array, object) is written as compact JSON. One frame per
//! event, nothing added.
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! Copy a file chunk by chunk, untouched:
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "binary"
//! config = { path = "in.bin", mode = "read" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "binary"
//! config = { path = "out.bin", mode = "write" }
//! ```

use temblor_shim::{Codec, PluginError, RVec, Value, keyless};

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The binary codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Binary;

impl Codec for Binary {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        Ok(Value::Bytes(RVec::from(frame)))
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        match event {
            Value::Bytes(bytes) => out.extend_from_copy_slice(bytes),
            Value::String(s) => out.extend_from_copy_slice(s.as_bytes()),
            other => other.write_json(out),
        }
        Ok(())
    }
}

temblor_shim::export_plugin! { name: "binary", kind: Codec, codec: keyless::<Config, Binary> }

#[cfg(test)]
mod tests {
    use temblor_harness::codec::{decode_batch, encode_batch};
    use temblor_shim::Object;

    use temblor_harness::alloc::allocations_of;

    use super::*;

    #[global_allocator]
    static ALLOCATOR: temblor_harness::alloc::Counting = temblor_harness::alloc::Counting;

    temblor_harness::codec_unit_helpers!(Binary);

    #[test]
    fn decodes_any_bytes_as_they_are() {
        let all: Vec<u8> = (0..=255).collect();
        for frame in [
            &b""[..],
            b"text",
            b"\xff\xfe\x00",
            b"{\"not\":\"parsed\"}",
            &all,
        ] {
            let value = Binary.decode_one(frame).unwrap();
            assert!(
                matches!(&value, Value::Bytes(b) if b.as_slice() == frame),
                "{value:?}"
            );
        }
    }

    #[test]
    fn decoding_allocates_once() {
        let frame = [7_u8; 1000];
        let (value, n) = allocations_of(|| Binary.decode_one(&frame));
        assert!(matches!(value, Ok(Value::Bytes(b)) if b.len() == 1000));
        assert_eq!(n, 1);
    }

    #[test]
    fn encodes_bytes_and_strings_raw_and_the_rest_as_json() {
        assert_eq!(
            enc_bytes(&Value::Bytes(vec![0_u8, 255, 10].into())),
            [0, 255, 10]
        );
        assert_eq!(enc_bytes(&Value::Bytes(RVec::new())), b"");
        assert_eq!(enc_bytes(&Value::from("é \"q\"")), "é \"q\"".as_bytes());
        assert_eq!(enc_bytes(&Value::U64(u64::MAX)), b"18446744073709551615");
        assert_eq!(enc_bytes(&Value::Null), b"null");
        assert_eq!(enc_bytes(&Value::Bool(false)), b"false");
        let object: Object = [("b", Value::Bytes(vec![1_u8].into()))]
            .into_iter()
            .collect();
        assert_eq!(enc_bytes(&Value::Object(object)), br#"{"b":[1]}"#);
    }

    #[test]
    fn batches_round_trip() {
        let frames: [&[u8]; 3] = [b"\x00\x01", b"", b"\xff"];
        let (events, errors) = decode_batch(&mut Binary, &frames);
        assert!(errors.is_empty());
        assert_eq!(events.len(), 3);
        assert_eq!(encode_batch(&mut Binary, &events), frames);
    }

    #[test]
    fn config_takes_no_keys() {
        temblor_harness::codec::refuses_config_key(plugin_module(), "size", Value::I64(4));
    }
}
