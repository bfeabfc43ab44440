//! The `string` codec: each frame is one UTF-8 string.
//!
//! Decoding checks that the frame is UTF-8 and makes it a string event (one allocation: the
//! string itself). A frame that is not UTF-8 is a per-frame error naming the byte offset of the
//! first bad sequence, e.g. `invalid UTF-8 at byte offset 3: [ff]`; the other frames of the
//! batch are decoded.
//!
//! Encoding writes a string event as its bytes, without quotes or escapes; any other event
//! (number, bool, null, array, object, bytes) is written as compact JSON. One frame per event,
//! without a trailing newline (the `separate` postprocessor adds one).
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! Read a log file line by line, one string event per line:
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "string"
//! preprocessors = ["separate"]
//! config = { path = "app.log", mode = "read" }
//! ```

use std::str::Utf8Error;

use temblor_shim::{Codec, PluginError, RString, RVec, Value, keyless};

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The string codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Text;

impl Codec for Text {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        match std::str::from_utf8(frame) {
            Ok(text) => Ok(Value::String(RString::from(text))),
            Err(e) => Err(describe(frame, &e)),
        }
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        match event {
            Value::String(s) => out.extend_from_copy_slice(s.as_bytes()),
            other => other.write_json(out),
        }
        Ok(())
    }
}

/// Says where `frame` stops being UTF-8 and which bytes are at fault.
fn describe(frame: &[u8], e: &Utf8Error) -> String {
    let at = e.valid_up_to();
    match e.error_len() {
        Some(n) => {
            let bad = frame.get(at..at + n).unwrap_or_default();
            format!("invalid UTF-8 at byte offset {at}: {bad:02x?}")
        }
        None => format!(
            "invalid UTF-8 at byte offset {at}: the frame ends inside a multi-byte character"
        ),
    }
}

temblor_shim::export_plugin! { name: "string", kind: Codec, codec: keyless::<Config, Text> }

#[cfg(test)]
mod tests {
    use temblor_harness::codec::decode_batch;
    use temblor_shim::Object;

    use temblor_harness::alloc::allocations_of;

    use super::*;

    #[global_allocator]
    static ALLOCATOR: temblor_harness::alloc::Counting = temblor_harness::alloc::Counting;

    temblor_harness::codec_unit_helpers!(Text);

    #[test]
    fn decodes_utf8_as_it_is() {
        for text in [
            "",
            "plain",
            "with \"quotes\" and \\ and\nnewline\0",
            "日本語 😀 é",
        ] {
            assert_eq!(Text.decode_one(text.as_bytes()), Ok(Value::from(text)));
        }
    }

    #[test]
    fn decoding_allocates_once() {
        let frame = "a line of text, é".as_bytes();
        let (value, n) = allocations_of(|| Text.decode_one(frame));
        assert_eq!(value.unwrap().as_str(), Some("a line of text, é"));
        assert_eq!(n, 1);
        let (value, n) = allocations_of(|| Text.decode_one(b""));
        assert_eq!(value.unwrap().as_str(), Some(""));
        assert_eq!(n, 0);
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        assert_eq!(
            Text.decode_one(b"abc\xffdef"),
            Err("invalid UTF-8 at byte offset 3: [ff]".to_owned())
        );
        // A lead byte followed by a non-continuation byte: one bad byte.
        assert_eq!(
            Text.decode_one(b"\xc3x"),
            Err("invalid UTF-8 at byte offset 0: [c3]".to_owned())
        );
        // A surrogate encoded in UTF-8 (CESU) is invalid.
        assert_eq!(
            Text.decode_one(b"ok \xed\xa0\x80"),
            Err("invalid UTF-8 at byte offset 3: [ed]".to_owned())
        );
        let cut = &"xy😀".as_bytes()[..4];
        assert_eq!(
            Text.decode_one(cut),
            Err(
                "invalid UTF-8 at byte offset 2: the frame ends inside a multi-byte character"
                    .to_owned()
            )
        );
    }

    #[test]
    fn encodes_strings_raw_and_the_rest_as_json() {
        assert_eq!(enc_bytes(&Value::from("a \"b\"\n")), b"a \"b\"\n");
        assert_eq!(enc_bytes(&Value::from("")), b"");
        assert_eq!(enc_bytes(&Value::I64(-3)), b"-3");
        assert_eq!(enc_bytes(&Value::F64(1.5)), b"1.5");
        assert_eq!(enc_bytes(&Value::Null), b"null");
        assert_eq!(enc_bytes(&Value::Bool(true)), b"true");
        assert_eq!(
            enc_bytes(&Value::Bytes(vec![104_u8, 105].into())),
            b"[104,105]"
        );
        let object: Object = [("s", Value::from("x"))].into_iter().collect();
        assert_eq!(
            enc_bytes(&Value::from(vec![Value::Object(object), Value::from("y")])),
            br#"[{"s":"x"},"y"]"#
        );
    }

    #[test]
    fn batch_reports_bad_frames_by_index() {
        let (out, errors) = decode_batch(&mut Text, &[b"one", b"\xc3(", b"", b"three"]);
        assert_eq!(
            out,
            [Value::from("one"), Value::from(""), Value::from("three")]
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 1);
        assert_eq!(errors[0].reason, "invalid UTF-8 at byte offset 0: [c3]");
    }

    #[test]
    fn config_takes_no_keys() {
        temblor_harness::codec::refuses_config_key(
            plugin_module(),
            "encoding",
            Value::from("latin1"),
        );
    }
}
