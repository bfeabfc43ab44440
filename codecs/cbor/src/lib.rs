//! The `cbor` codec: one [CBOR] data item (RFC 8949) per frame, both ways, as Tremor's `cbor`
//! codec.
//!
//! The decoder and encoder are written here on the frame in memory (no dependency): the format
//! is a header byte (major type and argument) per item.
//!
//! # Decoding
//!
//! | CBOR | event |
//! | --- | --- |
//! | unsigned integer (major 0) | `I64`, or `U64` above `i64::MAX` |
//! | negative integer (major 1) | `I64`; below `i64::MIN` an error |
//! | byte string (major 2, also indefinite-length) | `Bytes` |
//! | text string (major 3, also indefinite-length) | `String` (must be UTF-8) |
//! | array (major 4, also indefinite-length) | `Array` |
//! | map (major 5, also indefinite-length) | `Object` |
//! | tag (major 6) | the tagged item itself: the tag number is dropped (`1(1363896240)` decodes to `1363896240`, a bignum `2(h'..')` to its bytes) |
//! | `false`, `true`, `null`, `undefined` | `Bool`, `Bool`, `Null`, `Null` |
//! | half, single and double floats | `F64` (exactly) |
//!
//! - **Map keys**: a text key is the field name; an integer key becomes its decimal text
//!   (`{1: 2}` decodes to `{"1": 2}`). Any other key is an error. A key that occurs twice keeps
//!   its last value at its first position (as the `json` codec; RFC 8949 §5.6 leaves
//!   duplicates to the application).
//! - Other simple values (0 to 19, 24 to 255), a `break` outside an indefinite-length item,
//!   reserved argument values (28 to 30), a chunk of the wrong type inside an
//!   indefinite-length string, nesting deeper than 128 arrays, maps and tags, a frame cut short
//!   and bytes after the item are per-frame errors naming the byte where they are. A length
//!   is never trusted for an allocation beyond the bytes the frame has left.
//!
//! # Encoding
//!
//! Each event is one item with the shortest argument: integers as major 0 or 1, `F64` as a
//! double (64-bit) float so it reads back exactly, `String` as text, `Bytes` as a byte string,
//! arrays and objects with definite lengths (object keys as text), `Null` as `null`. So
//! `decode(encode(event)) == event` for every event this codec decodes.
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! CBOR records over TCP, 8-byte length prefixes (Tremor's `length-prefixed`):
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "tcp_server"
//! codec = "cbor"
//! preprocessors = ["length-prefixed"]
//! config = { url = "127.0.0.1:4242" }
//! ```
//!
//! [CBOR]: https://www.rfc-editor.org/rfc/rfc8949

use std::collections::HashMap;

use temblor_shim::{ByteSink, Codec, Object, PluginError, RString, RVec, Value, keyless};

/// The deepest nesting of arrays, maps and tags accepted.
pub const MAX_DEPTH: usize = 128;

/// Maps with up to this many entries find repeated keys by a linear scan; larger ones hash.
const LINEAR_KEYS: usize = 16;

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The CBOR codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cbor;

/// Decodes one frame holding exactly one CBOR data item.
///
/// # Errors
/// What is wrong, and at which byte (see the crate docs).
pub fn decode_item(frame: &[u8]) -> Result<Value, String> {
    let mut reader = Reader {
        bytes: frame,
        at: 0,
    };
    let value = reader.item(0)?;
    if reader.at != frame.len() {
        return Err(format!(
            "{} bytes after the item at byte {}",
            frame.len() - reader.at,
            reader.at
        ));
    }
    Ok(value)
}

/// An item's header: its major type and argument.
enum Head {
    /// Major types 0 to 6 with their argument.
    Arg(u8, u64),
    /// Major types 2 to 5 of indefinite length.
    Indefinite(u8),
    /// A float of major type 7.
    Float(f64),
    /// A simple value of major type 7.
    Simple(u8),
    /// The `break` stop code.
    Break,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, at: usize, message: impl std::fmt::Display) -> String {
        format!("{message} at byte {at}")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let start = self.at;
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error(self.bytes.len(), "the frame ends inside an item"))?;
        self.at = end;
        Ok(&self.bytes[start..end])
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0, |v, &b| (v << 8) | u64::from(b)))
    }

    fn head(&mut self) -> Result<Head, String> {
        let at = self.at;
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            return Ok(match info {
                0..=19 | 24 => {
                    let value = if info == 24 { self.take(1)?[0] } else { info };
                    Head::Simple(value)
                }
                20..=23 => Head::Simple(info),
                25 => Head::Float(half(u16::try_from(self.uint(2)?).unwrap_or(0))),
                26 => Head::Float(f64::from(f32::from_bits(
                    u32::try_from(self.uint(4)?).unwrap_or(0),
                ))),
                27 => Head::Float(f64::from_bits(self.uint(8)?)),
                31 => Head::Break,
                _ => return Err(self.error(at, format_args!("reserved simple value {info}"))),
            });
        }
        let argument = match info {
            0..=23 => u64::from(info),
            24 => self.uint(1)?,
            25 => self.uint(2)?,
            26 => self.uint(4)?,
            27 => self.uint(8)?,
            31 if (2..=5).contains(&major) => return Ok(Head::Indefinite(major)),
            _ => {
                return Err(self.error(
                    at,
                    format_args!("reserved argument {info} for major type {major}"),
                ));
            }
        };
        Ok(Head::Arg(major, argument))
    }

    /// A length to allocate for: never more than the bytes left (each element takes one).
    fn capacity(&self, n: u64) -> usize {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len() - self.at)
    }

    fn item(&mut self, depth: usize) -> Result<Value, String> {
        let at = self.at;
        match self.head()? {
            Head::Arg(0, n) => Ok(Value::from(n)),
            Head::Arg(1, n) => i64::try_from(n)
                .map(|n| Value::I64(-1 - n))
                .map_err(|_| self.error(at, format_args!("-1 - {n} is below the i64 range"))),
            Head::Arg(2, n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                Ok(Value::Bytes(RVec::from(self.take(n)?)))
            }
            Head::Arg(3, n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let text = self.take(n)?;
                let text = std::str::from_utf8(text)
                    .map_err(|e| self.error(at, format_args!("text not UTF-8 ({e})")))?;
                Ok(Value::from(text))
            }
            Head::Indefinite(major @ (2 | 3)) => self.chunks(major, at),
            Head::Arg(4, n) => {
                let depth = self.nested(depth, at)?;
                let mut items = RVec::with_capacity(self.capacity(n));
                for _ in 0..n {
                    items.push(self.item(depth)?);
                }
                Ok(Value::Array(items))
            }
            Head::Indefinite(4) => {
                let depth = self.nested(depth, at)?;
                let mut items = RVec::new();
                while !self.at_break()? {
                    items.push(self.item(depth)?);
                }
                Ok(Value::Array(items))
            }
            Head::Arg(5, n) => {
                let depth = self.nested(depth, at)?;
                self.map(Some(n), depth)
            }
            Head::Indefinite(_) => {
                let depth = self.nested(depth, at)?;
                self.map(None, depth)
            }
            Head::Arg(_, _) => {
                // Major type 6: a tag, then the item it tags.
                let depth = self.nested(depth, at)?;
                self.item(depth)
            }
            Head::Float(f) => Ok(Value::F64(f)),
            Head::Simple(20) => Ok(Value::Bool(false)),
            Head::Simple(21) => Ok(Value::Bool(true)),
            Head::Simple(22 | 23) => Ok(Value::Null),
            Head::Simple(s) => Err(self.error(at, format_args!("unsupported simple value {s}"))),
            Head::Break => Err(self.error(at, "a break outside an indefinite-length item")),
        }
    }

    fn nested(&self, depth: usize, at: usize) -> Result<usize, String> {
        if depth < MAX_DEPTH {
            Ok(depth + 1)
        } else {
            Err(self.error(at, format_args!("nested deeper than {MAX_DEPTH}")))
        }
    }

    /// Consumes a `break` if one is next.
    fn at_break(&mut self) -> Result<bool, String> {
        match self.bytes.get(self.at) {
            Some(0xff) => {
                self.at += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(self.error(self.at, "the frame ends inside an item")),
        }
    }

    /// An indefinite-length byte (2) or text (3) string: definite chunks of its type.
    fn chunks(&mut self, major: u8, start: usize) -> Result<Value, String> {
        let mut out = Vec::new();
        while !self.at_break()? {
            let at = self.at;
            match self.head()? {
                Head::Arg(m, n) if m == major => {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    let chunk = self.take(n)?;
                    if major == 3 && std::str::from_utf8(chunk).is_err() {
                        return Err(self.error(at, "text chunk not UTF-8"));
                    }
                    out.extend_from_slice(chunk);
                }
                _ => {
                    return Err(self.error(
                        at,
                        "a chunk of another type inside an indefinite-length string",
                    ));
                }
            }
        }
        if major == 2 {
            return Ok(Value::Bytes(RVec::from(out)));
        }
        String::from_utf8(out)
            .map(Value::from)
            .map_err(|_| self.error(start, "text not UTF-8"))
    }

    /// A map of `n` entries, or up to a `break`.
    fn map(&mut self, n: Option<u64>, depth: usize) -> Result<Value, String> {
        let mut object = Object::with_capacity(n.map_or(0, |n| self.capacity(n)));
        let mut seen: Option<HashMap<RString, usize>> = None;
        let mut count = 0_u64;
        loop {
            match n {
                Some(n) if count == n => break,
                None if self.at_break()? => break,
                _ => {}
            }
            count += 1;
            let key = self.key()?;
            let value = self.item(depth)?;
            // A repeated key: the last value, at the first position.
            if object.len() < LINEAR_KEYS {
                match object.get_mut(&key) {
                    Some(slot) => *slot = value,
                    None => object.push(key, value),
                }
                continue;
            }
            let seen = seen.get_or_insert_with(|| {
                object
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (RString::from(k), i))
                    .collect()
            });
            if let Some(&i) = seen.get(&key) {
                if let Some(slot) = object.value_at_mut(i) {
                    *slot = value;
                }
            } else {
                seen.insert(key.clone(), object.len());
                object.push(key, value);
            }
        }
        Ok(Value::Object(object))
    }

    fn key(&mut self) -> Result<RString, String> {
        let at = self.at;
        match self.head()? {
            Head::Arg(3, n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let text = self.take(n)?;
                std::str::from_utf8(text)
                    .map(RString::from)
                    .map_err(|_| self.error(at, "key not UTF-8"))
            }
            Head::Indefinite(3) => match self.chunks(3, at)? {
                Value::String(s) => Ok(s),
                _ => Err(self.error(at, "key not text")),
            },
            Head::Arg(0, n) => Ok(RString::from(n.to_string())),
            Head::Arg(1, n) => Ok(RString::from(format!("-{}", u128::from(n) + 1))),
            _ => Err(self.error(at, "a map key that is neither text nor an integer")),
        }
    }
}

/// An IEEE 754 half-precision float, exactly, as f64 (RFC 8949 Appendix D).
fn half(bits: u16) -> f64 {
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2_f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (mantissa + 1024.0) * 2_f64.powi(e - 25),
    };
    if bits & 0x8000 == 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Writes a header with the shortest argument.
fn head<B: ByteSink>(out: &mut B, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.put_byte(m | n as u8),
        24..=0xff => {
            out.put_byte(m | 24);
            out.put_byte(n as u8);
        }
        0x100..=0xffff => {
            out.put_byte(m | 25);
            out.put(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.put_byte(m | 26);
            out.put(&(n as u32).to_be_bytes());
        }
        _ => {
            out.put_byte(m | 27);
            out.put(&n.to_be_bytes());
        }
    }
}

/// Encodes one event as one CBOR item into `out`.
pub fn encode_value<B: ByteSink>(value: &Value, out: &mut B) {
    match value {
        Value::Null => out.put_byte(0xf6),
        Value::Bool(false) => out.put_byte(0xf4),
        Value::Bool(true) => out.put_byte(0xf5),
        Value::I64(i) if *i >= 0 => head(out, 0, i.unsigned_abs()),
        // -1 - n: n is |i| - 1.
        Value::I64(i) => head(out, 1, i.unsigned_abs() - 1),
        Value::U64(u) => head(out, 0, *u),
        Value::F64(f) => {
            out.put_byte(0xfb);
            out.put(&f.to_bits().to_be_bytes());
        }
        Value::String(s) => {
            head(out, 3, s.len() as u64);
            out.put(s.as_bytes());
        }
        Value::Bytes(b) => {
            head(out, 2, b.len() as u64);
            out.put(b);
        }
        Value::Array(items) => {
            head(out, 4, items.len() as u64);
            for item in items {
                encode_value(item, out);
            }
        }
        Value::Object(object) => {
            head(out, 5, object.len() as u64);
            for (key, item) in object.iter() {
                head(out, 3, key.len() as u64);
                out.put(key.as_bytes());
                encode_value(item, out);
            }
        }
    }
}

impl Codec for Cbor {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        decode_item(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        encode_value(event, out);
        Ok(())
    }
}

temblor_shim::export_plugin! { name: "cbor", kind: Codec, codec: keyless::<Config, Cbor> }

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn ok(hex_text: &str) -> Value {
        decode_item(&hex(hex_text)).unwrap_or_else(|e| panic!("{hex_text}: {e}"))
    }

    fn enc(value: &Value) -> String {
        let mut out = Vec::new();
        encode_value(value, &mut out);
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// RFC 8949 Appendix A: every example whose diagnostic notation is a plain value, decoded,
    /// and (where this codec writes the same bytes: integers, strings, arrays, maps and simple
    /// values) encoded back to the example's bytes.
    #[test]
    fn rfc_8949_appendix_a() {
        for (value, hex_text, same_bytes) in [
            (Value::I64(0), "00", true),
            (Value::I64(1), "01", true),
            (Value::I64(10), "0a", true),
            (Value::I64(23), "17", true),
            (Value::I64(24), "1818", true),
            (Value::I64(25), "1819", true),
            (Value::I64(100), "1864", true),
            (Value::I64(1000), "1903e8", true),
            (Value::I64(1_000_000), "1a000f4240", true),
            (Value::I64(1_000_000_000_000), "1b000000e8d4a51000", true),
            (Value::U64(u64::MAX), "1bffffffffffffffff", true),
            (Value::I64(-1), "20", true),
            (Value::I64(-10), "29", true),
            (Value::I64(-100), "3863", true),
            (Value::I64(-1000), "3903e7", true),
            (Value::F64(0.0), "f90000", false),
            (Value::F64(-0.0), "f98000", false),
            (Value::F64(1.0), "f93c00", false),
            (Value::F64(1.1), "fb3ff199999999999a", true),
            (Value::F64(1.5), "f93e00", false),
            (Value::F64(65504.0), "f97bff", false),
            (Value::F64(100_000.0), "fa47c35000", false),
            (Value::F64(3.402_823_466_385_288_6e38), "fa7f7fffff", false),
            (Value::F64(1.0e300), "fb7e37e43c8800759c", true),
            (Value::F64(5.960_464_477_539_063e-8), "f90001", false),
            (Value::F64(0.000_061_035_156_25), "f90400", false),
            (Value::F64(-4.0), "f9c400", false),
            (Value::F64(-4.1), "fbc010666666666666", true),
            (Value::F64(f64::INFINITY), "f97c00", false),
            (Value::F64(f64::NEG_INFINITY), "f9fc00", false),
            (Value::F64(f64::INFINITY), "fa7f800000", false),
            (Value::F64(f64::NEG_INFINITY), "fbfff0000000000000", true),
            (Value::Bool(false), "f4", true),
            (Value::Bool(true), "f5", true),
            (Value::Null, "f6", true),
            (Value::Null, "f7", false),
            (Value::Bytes(RVec::new()), "40", true),
            (
                Value::Bytes(RVec::from(vec![1, 2, 3, 4])),
                "4401020304",
                true,
            ),
            (Value::from(""), "60", true),
            (Value::from("a"), "6161", true),
            (Value::from("IETF"), "6449455446", true),
            (Value::from("\"\\"), "62225c", true),
            (Value::from("\u{fc}"), "62c3bc", true),
            (Value::from("\u{6c34}"), "63e6b0b4", true),
            (Value::from("\u{10151}"), "64f0908591", true),
            (json("[]"), "80", true),
            (json("[1,2,3]"), "83010203", true),
            (json("[1,[2,3],[4,5]]"), "8301820203820405", true),
            (
                json("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]"),
                "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
                true,
            ),
            (json("{}"), "a0", true),
            (json(r#"{"a":1,"b":[2,3]}"#), "a26161016162820203", true),
            (json(r#"["a",{"b":"c"}]"#), "826161a161626163", true),
            (
                json(r#"{"a":"A","b":"B","c":"C","d":"D","e":"E"}"#),
                "a56161614161626142616361436164614461656145",
                true,
            ),
            // Integer keys become their decimal text.
            (json(r#"{"1":2,"3":4}"#), "a201020304", false),
            // Tags: the tagged item.
            (
                Value::from("2013-03-21T20:04:00Z"),
                "c074323031332d30332d32315432303a30343a30305a",
                false,
            ),
            (Value::I64(1_363_896_240), "c11a514b67b0", false),
            (Value::F64(1_363_896_240.5), "c1fb41d452d9ec200000", false),
            (
                Value::Bytes(RVec::from(vec![1, 2, 3, 4])),
                "d74401020304",
                false,
            ),
            (
                Value::from("http://www.example.com"),
                "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
                false,
            ),
            // Indefinite lengths.
            (
                Value::Bytes(RVec::from(vec![1, 2, 3, 4, 5])),
                "5f42010243030405ff",
                false,
            ),
            (
                Value::from("streaming"),
                "7f657374726561646d696e67ff",
                false,
            ),
            (json("[]"), "9fff", false),
            (json("[1,[2,3],[4,5]]"), "9f018202039f0405ffff", false),
            (json("[1,[2,3],[4,5]]"), "9f01820203820405ff", false),
            (json("[1,[2,3],[4,5]]"), "83018202039f0405ff", false),
            (json("[1,[2,3],[4,5]]"), "83019f0203ff820405", false),
            (
                json(r#"{"a":1,"b":[2,3]}"#),
                "bf61610161629f0203ffff",
                false,
            ),
            (json(r#"["a",{"b":"c"}]"#), "826161bf61626163ff", false),
            (
                json(r#"{"Fun":true,"Amt":-2}"#),
                "bf6346756ef563416d7421ff",
                false,
            ),
        ] {
            let got = ok(hex_text);
            assert_eq!(got, value, "{hex_text}");
            if let (Value::F64(a), Value::F64(b)) = (&got, &value) {
                assert_eq!(a.to_bits(), b.to_bits(), "{hex_text}: the sign of zero too");
            }
            if same_bytes {
                assert_eq!(enc(&value), hex_text, "{value}");
            }
            assert_eq!(decode_item(&hex(&enc(&got))), Ok(got.clone()), "{hex_text}");
        }
        // NaN (f97e00) is a NaN.
        assert!(matches!(ok("f97e00"), Value::F64(f) if f.is_nan()));
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value_at_the_first_position() {
        // {"a": 1, "b": 2, "a": 3}
        let v = ok("a3616101616202616103");
        assert_eq!(enc(&v), "a2616103616202");
        // 20 keys and a repeat of the 3rd (hashed).
        let mut wire = vec![0xb8, 21];
        for i in 0..20_u8 {
            wire.extend_from_slice(&[0x61, b'a' + i, i]);
        }
        wire.extend_from_slice(&[0x61, b'c', 0x20]);
        let v = decode_item(&wire).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 20);
        assert_eq!(o.get("c"), Some(&Value::I64(-1)));
        assert_eq!(o.iter().nth(2).map(|(k, _)| k), Some("c"));
    }

    #[test]
    fn bad_items_are_errors_naming_the_byte() {
        for (hex_text, reason) in [
            ("", "the frame ends inside an item at byte 0"),
            ("18", "the frame ends inside an item at byte 1"),
            ("1c", "reserved argument 28 for major type 0 at byte 0"),
            (
                "3bffffffffffffffff",
                "-1 - 18446744073709551615 is below the i64 range at byte 0",
            ),
            ("62c3", "the frame ends inside an item at byte 2"),
            (
                "62c328",
                "text not UTF-8 (invalid utf-8 sequence of 1 bytes from index 0) at byte 0",
            ),
            ("0001", "1 bytes after the item at byte 1"),
            ("ff", "a break outside an indefinite-length item at byte 0"),
            ("f0", "unsupported simple value 16 at byte 0"),
            ("f820", "unsupported simple value 32 at byte 0"),
            ("fc", "reserved simple value 28 at byte 0"),
            (
                "5f6161ff",
                "a chunk of another type inside an indefinite-length string at byte 1",
            ),
            (
                "a1f600",
                "a map key that is neither text nor an integer at byte 1",
            ),
            ("9f01", "the frame ends inside an item at byte 2"),
            ("1f", "reserved argument 31 for major type 0 at byte 0"),
            // An array claiming 2^64 - 1 items allocates for the bytes there are, and ends.
            (
                "9bffffffffffffffff00",
                "the frame ends inside an item at byte 10",
            ),
        ] {
            assert_eq!(
                decode_item(&hex(hex_text)),
                Err(reason.to_owned()),
                "{hex_text}"
            );
        }
        let deep = [vec![0x81; MAX_DEPTH + 1], vec![0]].concat();
        assert_eq!(
            decode_item(&deep),
            Err(format!(
                "nested deeper than {MAX_DEPTH} at byte {MAX_DEPTH}"
            ))
        );
        let ok_depth = [vec![0x81; MAX_DEPTH], vec![0]].concat();
        assert!(decode_item(&ok_depth).is_ok());
    }

    #[test]
    fn encoding_round_trips_every_value() {
        let v = json(
            r#"{"i":-9223372036854775808,"u":18446744073709551615,"f":0.1,"s":"é😀","n":null,"b":[true,false],"o":{"":{}}}"#,
        );
        let mut out = Vec::new();
        encode_value(&v, &mut out);
        assert_eq!(decode_item(&out), Ok(v));
        let bytes = Value::Bytes(RVec::from((0..=255).collect::<Vec<u8>>()));
        assert!(enc(&bytes).starts_with("590100"), "a 2-byte length");
        assert_eq!(decode_item(&hex(&enc(&bytes))), Ok(bytes));
    }
}
