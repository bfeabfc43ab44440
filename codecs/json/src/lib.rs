//! The `json` codec: one JSON value per frame.
//!
//! Decoding parses each frame with [simd-json] and builds the event straight from simd-json's
//! tape: no intermediate serde or simd-json value. The parser's buffers, its tape and the padded
//! copy of the frame it works on live in the codec and are reused, so a batch allocates nothing
//! per frame beyond the event itself.
//!
//! - Integers become `I64`, or `U64` above `i64::MAX`. An integer outside
//!   `i64::MIN..=u64::MAX` is an error (simd-json is built without `big-int-as-float`), as is a
//!   float outside the `f64` range (`1e400`).
//! - Object fields keep their order. A key repeated in an object keeps **its last value, at
//!   its first position** (`{"a":1,"b":2,"a":3}` decodes to `{"a":3,"b":2}`), as Tremor,
//!   JavaScript's `JSON.parse` and serde_json do (RFC 8259 §4: "Many implementations report
//!   the last name/value pair only"). Objects of up to 16 fields find repeats with a linear
//!   scan of the keys so far (no hashing); larger ones with a hash map of their keys.
//! - Nesting is limited to `max_depth` arrays and objects (default [`MAX_DEPTH`], 128); deeper
//!   input is an error. A frame longer than `max_frame` bytes is an error without being parsed.
//! - A frame that is not exactly one JSON value (empty, truncated, a bad escape or `\u` code
//!   point, invalid UTF-8, trailing data) is a per-frame error carrying simd-json's message
//!   (`<what> at character <offset>`, e.g. `Eof at character 0` for an empty frame); the other
//!   frames of the batch are decoded.
//!
//! Encoding writes each event as compact JSON, one frame per event, without a trailing newline
//! (the `separate` postprocessor adds one). Bytes are written as an array of numbers, and
//! non-finite floats as `null`.
//!
//! Use [`decode_slice`] to parse JSON elsewhere (e.g. in other crates' tests).
//!
//! # Config
//!
//! - `max_depth` (integer, 1 to 1024, default 128): the deepest nesting of arrays and objects
//!   accepted.
//! - `max_frame` (integer ≥ 1, default 16777216): the longest frame accepted, in bytes.
//!
//! Unknown keys are refused.
//!
//! # Example
//!
//! Read newline-delimited JSON from a file and write it back out:
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "json"
//! preprocessors = ["separate"]
//! config = { path = "in.json", mode = "read" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "out.json", mode = "write" }
//! ```
//!
//! [simd-json]: https://docs.rs/simd-json

use std::collections::{HashMap, hash_map::Entry};

use simd_json::{Buffers, INPUT_PADDING, Node, StaticNode, Tape, fill_tape_padded};
use temblor_shim::{Codec, Object, PluginError, RString, RVec, Setup, Value};

/// The deepest nesting of arrays and objects a frame may have.
pub const MAX_DEPTH: usize = 128;

/// The most `max_depth` may be (decoding recurses once per level).
pub const DEPTH_CEILING: usize = 1024;

/// The default `max_frame`: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The codec's configuration.
#[derive(temblor_shim::serde::Deserialize, Debug)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields, default)]
pub struct Config {
    /// The deepest nesting accepted.
    pub max_depth: usize,
    /// The longest frame accepted, in bytes.
    pub max_frame: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_depth: MAX_DEPTH,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// The JSON codec, with the parser state it reuses from frame to frame.
pub struct Json {
    /// The frame being parsed, followed by the padding simd-json reads over.
    input: Vec<u8>,
    /// simd-json's scratch buffers (structural indexes, strings, stack).
    buffers: Buffers,
    /// The tape, kept empty between frames (hence `'static`) so that its allocation is reused.
    tape: Tape<'static>,
    max_depth: usize,
    max_frame: usize,
}

impl Default for Json {
    fn default() -> Self {
        Self::new()
    }
}

impl Json {
    /// A codec with empty buffers; they grow to the largest frame seen.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(MAX_DEPTH, DEFAULT_MAX_FRAME)
    }

    /// A codec that refuses nesting deeper than `max_depth` and frames longer than `max_frame`
    /// bytes.
    #[must_use]
    pub fn with_limits(max_depth: usize, max_frame: usize) -> Self {
        Self {
            input: Vec::new(),
            buffers: Buffers::with_max_depth(0, max_depth),
            tape: Tape(Vec::new()),
            max_depth,
            max_frame,
        }
    }

    /// Parses one frame into a value.
    ///
    /// # Errors
    /// simd-json's message when the frame is not exactly one JSON value.
    pub fn decode_frame(&mut self, frame: &[u8]) -> Result<Value, String> {
        let len = frame.len();
        if len > self.max_frame {
            return Err(format!(
                "frame of {len} bytes is longer than max_frame ({} bytes)",
                self.max_frame
            ));
        }
        self.input.clear();
        self.input.reserve(len + INPUT_PADDING);
        self.input.extend_from_slice(frame);
        // The padding's content does not matter; simd-json only needs to be able to read it.
        self.input.resize(len + INPUT_PADDING, b' ');

        // The stored tape is empty: give it the lifetime of this frame's input, and take it back
        // (emptied again) afterwards, keeping its allocation.
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let result = match fill_tape_padded(&mut self.input, len, &mut self.buffers, &mut tape) {
            Ok(()) => from_tape(&tape.0, self.max_depth).map_err(String::from),
            Err(e) => Err(e.to_string()),
        };
        self.tape = tape.reset();
        result
    }
}

/// Parses one JSON value (for tests and tools; a codec instance reuses its buffers instead).
///
/// # Errors
/// simd-json's message when `bytes` is not exactly one JSON value.
pub fn decode_slice(bytes: &[u8]) -> Result<Value, String> {
    Json::new().decode_frame(bytes)
}

/// What the conversion says if the tape is not what simd-json promises (it never happens).
const BAD_TAPE: &str = "internal error: malformed simd-json tape";

/// Builds the value of a whole tape (simd-json has already rejected trailing data).
fn from_tape(nodes: &[Node<'_>], max_depth: usize) -> Result<Value, &'static str> {
    let mut nodes = nodes.iter();
    let value = next_value(&mut nodes, 0, max_depth)?;
    if nodes.next().is_some() {
        return Err(BAD_TAPE);
    }
    Ok(value)
}

/// Objects with up to this many fields find repeated keys by a linear scan; larger ones hash.
const LINEAR_KEYS: usize = 16;

/// Builds the value starting at the next node, consuming its nested nodes.
///
/// Recursion is bounded: simd-json refuses documents nested deeper than `max_depth`, and the
/// depth is checked here again so that a bad tape cannot overflow the stack either.
fn next_value<'i>(
    nodes: &mut std::slice::Iter<'_, Node<'i>>,
    depth: usize,
    max_depth: usize,
) -> Result<Value, &'static str> {
    Ok(match *nodes.next().ok_or(BAD_TAPE)? {
        Node::String(s) => Value::String(RString::from(s)),
        Node::Static(s) => static_value(s),
        Node::Array { len, .. } => {
            let depth = nested(depth, max_depth)?;
            let mut items = RVec::with_capacity(len);
            for _ in 0..len {
                items.push(next_value(nodes, depth, max_depth)?);
            }
            Value::Array(items)
        }
        Node::Object { len, .. } => {
            let depth = nested(depth, max_depth)?;
            let mut object = Object::with_capacity(len);
            // A repeated key: the last value, at the first position.
            if len <= LINEAR_KEYS {
                for _ in 0..len {
                    let key = next_key(nodes)?;
                    let value = next_value(nodes, depth, max_depth)?;
                    match object.get_mut(key) {
                        Some(slot) => *slot = value,
                        None => object.push(RString::from(key), value),
                    }
                }
            } else {
                let mut seen: HashMap<&'i str, usize> = HashMap::with_capacity(len);
                for _ in 0..len {
                    let key = next_key(nodes)?;
                    let value = next_value(nodes, depth, max_depth)?;
                    match seen.entry(key) {
                        Entry::Occupied(at) => {
                            *object.value_at_mut(*at.get()).ok_or(BAD_TAPE)? = value;
                        }
                        Entry::Vacant(at) => {
                            at.insert(object.len());
                            object.push(RString::from(key), value);
                        }
                    }
                }
            }
            Value::Object(object)
        }
    })
}

/// The key of an object's next field.
fn next_key<'i>(nodes: &mut std::slice::Iter<'_, Node<'i>>) -> Result<&'i str, &'static str> {
    match nodes.next() {
        Some(Node::String(key)) => Ok(key),
        _ => Err(BAD_TAPE),
    }
}

/// The depth inside one more array or object.
fn nested(depth: usize, max_depth: usize) -> Result<usize, &'static str> {
    if depth < max_depth {
        Ok(depth + 1)
    } else {
        Err(BAD_TAPE)
    }
}

fn static_value(node: StaticNode) -> Value {
    match node {
        StaticNode::I64(i) => Value::I64(i),
        // simd-json gives every non-negative integer as `U64`; the engine prefers `I64`.
        StaticNode::U64(u) => Value::from(u),
        StaticNode::F64(f) => Value::F64(f),
        StaticNode::Bool(b) => Value::Bool(b),
        StaticNode::Null => Value::Null,
    }
}

impl Codec for Json {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        self.decode_frame(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        event.write_json(out);
        Ok(())
    }
}

/// The constructor the engine calls.
///
/// # Errors
/// A `Config` error for an unknown key or a limit out of range.
pub fn new(setup: &Setup<'_>) -> Result<Json, PluginError> {
    let Config {
        max_depth,
        max_frame,
    } = setup.config::<Config>()?;
    if !(1..=DEPTH_CEILING).contains(&max_depth) {
        return Err(PluginError::config(format_args!(
            "max_depth must be 1 to {DEPTH_CEILING}, not {max_depth}"
        )));
    }
    if max_frame == 0 {
        return Err(PluginError::config("max_frame must be at least 1"));
    }
    Ok(Json::with_limits(max_depth, max_frame))
}

temblor_shim::export_plugin! { name: "json", kind: Codec, codec: new }

#[cfg(test)]
mod tests {
    use temblor_harness::codec::{decode_batch, encode_batch, indexes};
    use temblor_shim::{ErrorKind, Frames, abi_stable::std_types::RStr};

    use temblor_harness::alloc::allocations_of;

    use super::*;

    #[global_allocator]
    static ALLOCATOR: temblor_harness::alloc::Counting = temblor_harness::alloc::Counting;

    temblor_harness::codec_unit_helpers!(Json::new());

    fn nested_arrays(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    /// The nesting depth of a value, counted without recursion.
    fn depth_of(value: &Value) -> usize {
        let mut depth = 0;
        let mut v = value;
        while let Some(items) = v.as_array() {
            depth += 1;
            match items.first() {
                Some(inner) => v = inner,
                None => break,
            }
        }
        depth
    }

    #[test]
    fn decodes_every_type() {
        assert!(matches!(ok("null"), Value::Null));
        assert!(matches!(ok("true"), Value::Bool(true)));
        assert!(matches!(ok("false"), Value::Bool(false)));
        assert!(matches!(ok("0"), Value::I64(0)));
        assert!(matches!(ok("42"), Value::I64(42)));
        assert!(matches!(ok("-7"), Value::I64(-7)));
        assert!(matches!(ok("1.5"), Value::F64(f) if f == 1.5));
        assert!(matches!(ok("-2.5e3"), Value::F64(f) if f == -2500.0));
        assert!(matches!(ok("1E2"), Value::F64(f) if f == 100.0));
        assert!(matches!(ok(r#""hi""#), Value::String(s) if s == "hi"));
        assert!(matches!(ok(r#""""#), Value::String(s) if s.is_empty()));
        assert!(matches!(ok("[]"), Value::Array(a) if a.is_empty()));
        assert!(matches!(ok("{}"), Value::Object(o) if o.is_empty()));

        let v = ok(r#" { "a" : [1, "two", 3.0, null, true, {"b": false}], "c": {} } "#);
        let a = v.get("a").and_then(Value::as_array).unwrap();
        assert_eq!(a.len(), 6);
        assert!(matches!(a[0], Value::I64(1)));
        assert_eq!(a[1].as_str(), Some("two"));
        assert!(matches!(a[2], Value::F64(f) if f == 3.0));
        assert!(matches!(a[3], Value::Null));
        assert!(matches!(a[4], Value::Bool(true)));
        assert!(matches!(a[5].get("b"), Some(Value::Bool(false))));
        assert!(v.get("c").and_then(Value::as_object).unwrap().is_empty());
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().iter().map(|(k, _)| k).collect()
    }

    /// RFC 8259 §4: "The names within an object SHOULD be unique. [...] When the names within
    /// an object are not unique, the behavior of software that receives such an object is
    /// unpredictable. Many implementations report the last name/value pair only." Here: the
    /// last value, at the first key's position (as `JSON.parse` and serde_json keep it).
    #[test]
    fn a_repeated_key_keeps_the_last_value_at_the_first_position() {
        let v = ok(r#"{"z":1,"a":2,"m":3,"a":4}"#);
        assert_eq!(keys(&v), ["z", "a", "m"]);
        assert_eq!(v.get("a"), Some(&Value::I64(4)));
        assert_eq!(enc(&v), r#"{"z":1,"a":4,"m":3}"#);
        for (json, want) in [
            (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            (r#"{"a":1,"a":2,"a":3}"#, r#"{"a":3}"#),
            (r#"{"a":{"x":1},"b":0,"a":[1]}"#, r#"{"a":[1],"b":0}"#),
            // Nested objects are each their own scope.
            (
                r#"{"o":{"k":1,"k":2},"p":{"k":3}}"#,
                r#"{"o":{"k":2},"p":{"k":3}}"#,
            ),
            // Keys are compared after unescaping: "a" is "a".
            (r#"{"a":1,"\u0061":2}"#, r#"{"a":2}"#),
            (r#"{"":1,"":null}"#, r#"{"":null}"#),
        ] {
            assert_eq!(enc(&ok(json)), want, "{json}");
        }
        // Larger objects (hashed) behave the same.
        for n in [16, 17, 100] {
            let mut json = String::from("{");
            for i in 0..n {
                json.push_str(&format!("\"k{i}\":{i},"));
            }
            json.push_str("\"k3\":\"last\",\"k0\":-1,\"new\":true}");
            let v = ok(&json);
            let o = v.as_object().unwrap();
            assert_eq!(o.len(), n + 1, "{n}");
            assert_eq!(keys(&v)[..4], ["k0", "k1", "k2", "k3"], "{n}");
            assert_eq!(keys(&v)[n], "new", "{n}");
            assert_eq!(o.get("k3"), Some(&Value::from("last")), "{n}");
            assert_eq!(o.get("k0"), Some(&Value::I64(-1)), "{n}");
            assert_eq!(o.get("k5"), Some(&Value::I64(5)), "{n}");
        }
    }

    #[test]
    fn decodes_escapes_and_unicode() {
        assert_eq!(
            ok(r#""\"\\\/\b\f\n\r\t""#).as_str(),
            Some("\"\\/\u{8}\u{c}\n\r\t")
        );
        assert_eq!(ok(r#""\u0041\u00e9\u20AC""#).as_str(), Some("Aé€"));
        assert_eq!(ok(r#""\u0000""#).as_str(), Some("\0"));
        // A surrogate pair is one code point.
        assert_eq!(ok(r#""\ud83d\ude00""#).as_str(), Some("😀"));
        assert_eq!(ok(r#""x\uD834\uDD1Ey""#).as_str(), Some("x𝄞y"));
        // Raw UTF-8 passes through, in keys too.
        let v = ok(r#"{"clé":"日本語 😀"}"#);
        assert_eq!(v.get("clé").and_then(Value::as_str), Some("日本語 😀"));
        // A long string with escapes spread over several SIMD blocks.
        let long = "ab\\n".repeat(100);
        let want = "ab\n".repeat(100);
        assert_eq!(ok(&format!("\"{long}\"")).as_str(), Some(want.as_str()));
    }

    #[test]
    fn rejects_bad_unicode_escapes() {
        // A lone or reversed surrogate is not a code point, and UTF-8 cannot hold it.
        for bad in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ude00\ud83d""#,
            r#""\ud83d\u0041""#,
            r#""\u12""#,
            r#""\uzzzz""#,
        ] {
            let e = err(bad.as_bytes());
            assert!(e.contains("at character"), "{bad}: {e}");
        }
        assert_eq!(
            err(br#""\ud800""#),
            "InvalidUnicodeCodepoint at character 0 ('u')"
        );
    }

    #[test]
    fn huge_numbers() {
        assert!(matches!(ok("9223372036854775807"), Value::I64(i64::MAX)));
        assert!(matches!(
            ok("9223372036854775808"),
            Value::U64(9_223_372_036_854_775_808)
        ));
        assert!(matches!(ok("18446744073709551615"), Value::U64(u64::MAX)));
        assert!(matches!(ok("-9223372036854775808"), Value::I64(i64::MIN)));
        // Integers beyond u64 / below i64 are errors, not floats (no `big-int-as-float`).
        assert!(err(b"18446744073709551616").contains("InvalidNumber"));
        assert!(err(b"-9223372036854775809").contains("InvalidNumber"));
        assert!(err(b"123456789012345678901234567890").contains("InvalidNumber"));
        // Written as a float, a big number is a float.
        assert!(
            matches!(ok("18446744073709551616.0"), Value::F64(f) if f == 18_446_744_073_709_551_616.0)
        );
        assert!(matches!(ok("1e308"), Value::F64(f) if f == 1e308));
        assert!(matches!(ok("5e-324"), Value::F64(f) if f == 5e-324));
        // Out of the f64 range.
        assert!(err(b"1e400").contains("at character"));
        // And they all write back as they were read.
        assert_eq!(enc(&ok("18446744073709551615")), "18446744073709551615");
        assert_eq!(enc(&ok("-9223372036854775808")), "-9223372036854775808");
    }

    #[test]
    fn invalid_frames_are_errors() {
        for bad in [
            &b""[..],
            b" \n\t",
            b"{",
            b"[1,2",
            br#"{"a":1"#,
            br#"{"a":}"#,
            br#"{"a" 1}"#,
            br#"{1:2}"#,
            br#""abc"#,
            br#""a\x""#,
            b"\"\xff\"",
            b"\"\xc3\"",
            b"\xef\xbb\xbf{}",
            b"{} x",
            b"1 2",
            b"[] []",
            b"nul",
            b"nulll",
            b"tru",
            b"01",
            b"1.",
            b"-",
            b"+1",
            b".5",
            b"NaN",
            b"[1,]",
            b"{\"a\":1,}",
            b"'a'",
            b"\"tab\there\"",
        ] {
            let e = err(bad);
            // simd-json's message: `<ErrorType> at character <n>`.
            assert!(
                e.contains(" at character "),
                "{:?}: {e}",
                String::from_utf8_lossy(bad)
            );
        }
        // Some messages, exactly as simd-json words them.
        assert_eq!(err(b""), "Eof at character 0");
        assert_eq!(err(b"1 2"), "TrailingData at character 0 ('1')");
        assert_eq!(
            err(br#"{"a" 1}"#),
            "ExpectedObjectColon at character 5 ('1')"
        );
        assert!(
            err(b"\"\xff\"").contains("InvalidUtf8"),
            "{}",
            err(b"\"\xff\"")
        );
        assert!(
            err(br#""a\x""#).contains("InvalidEscape"),
            "{}",
            err(br#""a\x""#)
        );
    }

    #[test]
    fn depth_is_bounded() {
        let v = ok(&nested_arrays(MAX_DEPTH));
        assert_eq!(depth_of(&v), MAX_DEPTH);
        assert_eq!(enc(&v), nested_arrays(MAX_DEPTH));
        assert!(err(nested_arrays(MAX_DEPTH + 1).as_bytes()).contains("DepthLimitExceeded"));
        let objects = "{\"a\":".repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(MAX_DEPTH + 1);
        assert!(err(objects.as_bytes()).contains("DepthLimitExceeded"));
    }

    #[test]
    fn hundred_thousand_open_brackets_are_an_error_not_a_stack_overflow() {
        let open = "[".repeat(100_000);
        assert!(err(open.as_bytes()).contains("at character"));
        assert!(err(nested_arrays(100_000).as_bytes()).contains("DepthLimitExceeded"));
        let objects = "{\"a\":".repeat(100_000);
        assert!(err(objects.as_bytes()).contains("at character"));
    }

    #[test]
    fn buffers_are_reused_across_frames_of_any_size() {
        let mut json = Json::new();
        let big = format!("[{}1]", "\"abcdefghij\\n\",".repeat(10_000));
        let v = json.decode_frame(big.as_bytes()).unwrap();
        assert_eq!(v.as_array().map(<[Value]>::len), Some(10_001));
        assert_eq!(
            json.decode_frame(b"{\"a\":1}").unwrap().get("a"),
            Some(&Value::I64(1))
        );
        assert!(json.decode_frame(b"{\"a\":").is_err());
        assert!(json.decode_frame(b"\"x\"").unwrap().as_str() == Some("x"));
        // A bare number right at the end of the input is terminated properly.
        assert!(matches!(json.decode_frame(b"12345"), Ok(Value::I64(12345))));
        assert!(json.decode_frame(b"12345x").is_err());
    }

    #[test]
    fn a_warm_codec_allocates_only_the_value() {
        let mut json = Json::new();
        let frame = br#"{"key":"value with \n escape","list":[1,2.5,null],"empty":{},"none":[]}"#;
        let first = json.decode_frame(frame).unwrap();
        let (second, n) = allocations_of(|| json.decode_frame(frame));
        assert_eq!(second.as_ref(), Ok(&first));
        // The root object, 4 keys, 1 string value and the non-empty list; empty containers
        // allocate nothing, and neither does the parser.
        assert_eq!(n, 7);
        // The same holds in a batch, whatever the frames' sizes (the buffers grew to the
        // largest one already).
        let frames: Frames = [&frame[..], b"[\"a\"]", frame].into_iter().collect();
        let mut out = RVec::with_capacity(3);
        let mut errors = RVec::new();
        let ((), n) = allocations_of(|| json.decode(&frames, &mut out, &mut errors).unwrap());
        assert_eq!(out.len(), 3);
        assert_eq!(n, 7 + 2 + 7);
    }

    #[test]
    fn round_trips() {
        for json in [
            r#"{"a":[1,-2,1.5,"x\n\"y\"",true,false,null,{}],"b":{"c":[]},"d":""}"#,
            r#"[18446744073709551615,-9223372036854775808,0.1,1e-7,"😀é\u0001"]"#,
            r#""\\ \/ \b \f \n \r \t""#,
            "123",
            "null",
        ] {
            let v = ok(json);
            let written = enc(&v);
            assert_eq!(ok(&written), v, "{json} -> {written}");
            // Writing what was written gives the same bytes again.
            assert_eq!(enc(&ok(&written)), written);
        }
        // Compact input comes back byte for byte.
        let compact = r#"{"a":[1,-2,1.5,"x",true,false,null,{}],"b":{"c":[]}}"#;
        assert_eq!(enc(&ok(compact)), compact);
        // Bytes and non-finite floats have JSON forms too.
        assert_eq!(enc(&Value::Bytes(vec![0_u8, 255].into())), "[0,255]");
        assert_eq!(enc(&Value::F64(f64::INFINITY)), "null");
    }

    #[test]
    fn batch_keeps_going_after_a_bad_frame() {
        let mut json = Json::new();
        let frames: [&[u8]; 4] = [b"{\"n\":1}", b"{\"n\":", b"{\"n\":3}", b""];
        let (out, errors) = decode_batch(&mut json, &frames);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].get("n"), Some(&Value::I64(1)));
        assert_eq!(out[1].get("n"), Some(&Value::I64(3)));
        assert_eq!(indexes(&errors), [1, 3]);
        assert!(
            errors[0].reason.contains("at character"),
            "{}",
            errors[0].reason
        );

        let frames = encode_batch(&mut json, &out);
        assert_eq!(frames, [&b"{\"n\":1}"[..], b"{\"n\":3}"]);
    }

    #[test]
    fn depth_and_frame_limits_are_configurable() {
        let mut shallow = Json::with_limits(2, 16);
        assert!(shallow.decode_frame(b"[[1]]").is_ok());
        assert!(shallow.decode_frame(b"[[[1]]]").is_err());
        let e = shallow.decode_frame(b"\"seventeen bytes\"").unwrap_err();
        assert_eq!(e, "frame of 17 bytes is longer than max_frame (16 bytes)");
        assert!(shallow.decode_frame(b"\"sixteen bytes!\"").is_ok());

        let module = plugin_module();
        let name = RStr::from("t");
        let codec = |config: &[(&str, Value)]| {
            let config: Object = config.iter().cloned().collect();
            module.new_codec()(name, &Value::Object(config)).into_result()
        };
        let Ok(mut c) = codec(&[("max_depth", 1_i64.into()), ("max_frame", 100_i64.into())]) else {
            panic!("valid limits were refused");
        };
        let frames: Frames = [&b"[1]"[..], b"[[1]]"].into_iter().collect();
        let (mut out, mut errors) = (RVec::new(), RVec::new());
        c.decode(&frames, &mut out, &mut errors).unwrap();
        assert_eq!((out.len(), errors.len()), (1, 1));
        for bad in [("max_depth", 0_i64), ("max_depth", 1025), ("max_frame", 0)] {
            let Err(e) = codec(&[(bad.0, bad.1.into())]) else {
                panic!("{bad:?} was accepted");
            };
            assert_eq!(e.kind, ErrorKind::Config);
            assert!(e.message.contains(bad.0), "{e}");
        }
    }

    #[test]
    fn config_refuses_unknown_keys() {
        temblor_harness::codec::refuses_config_key(plugin_module(), "pretty", Value::Bool(true));
    }
}
