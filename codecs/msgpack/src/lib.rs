//! The `msgpack` codec: one [MessagePack] value per frame.
//!
//! Decoding reads each frame with [rmp]'s markers and builds the event straight from the bytes
//! (no serde, no intermediate value); strings and binaries are copied once, into the event.
//! Encoding writes each event with rmp's writers, which pick the smallest encoding of every
//! integer, string, binary, array and map length.
//!
//! # Event shape
//!
//! | MessagePack | event ([`Value`]) | encoded back as |
//! | --- | --- | --- |
//! | nil | `Null` | nil |
//! | true / false | `Bool` | true / false |
//! | positive int (fixint, uint 8–64, int 8–64) | `I64`, or `U64` above `i64::MAX` | the smallest int |
//! | negative int | `I64` | the smallest int |
//! | float 32 / float 64 | `F64` (a float 32 is widened exactly) | float 64 |
//! | str (valid UTF-8) | `String` | str |
//! | bin | `Bytes` | bin |
//! | array | `Array` | array |
//! | map | `Object` (fields in the order of the map) | map with str keys |
//!
//! - **Map keys**: a str key is the field name; an integer key (positive or negative) becomes
//!   the field name in decimal (`{1: "a"}` decodes to `{"1": "a"}`, and encodes back with the
//!   str key `"1"`). Any other key (nil, bool, float, bin, array, map, ext) is an error. A key
//!   that occurs twice is kept twice, as the map has it (lookups find the first).
//! - **Ext** (including the timestamp extension, type -1) is an error: `ext type <t> is not
//!   supported`.
//! - A frame that is not exactly one value is an error: empty, cut short
//!   (`unexpected end of frame at byte <n>`), the never-used marker `0xc1`, a str that is not
//!   UTF-8, or bytes after the value (`<n> bytes of trailing data after the value`).
//! - Nesting is limited to `max_depth` arrays and maps (default [`MAX_DEPTH`], 128); deeper
//!   input is an error, so no frame can overflow the stack. Claimed lengths are never trusted for allocation beyond what
//!   the frame can hold.
//!
//! Encoding never fails for events the codec decoded. It fails (the batch fails) only for
//! strings, binaries, arrays or objects longer than `u32::MAX`, which MessagePack cannot hold.
//! Each event is one frame with nothing added: MessagePack values delimit themselves, so frames
//! written back to back form a valid MessagePack stream (no `separate` postprocessor needed).
//!
//! # Config
//!
//! - `max_depth` (integer, 1 to 1024, default 128): the deepest nesting of arrays and maps
//!   accepted.
//!
//! Unknown keys are refused.
//!
//! # Example
//!
//! Read newline-delimited JSON and write it as a MessagePack stream:
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
//! codec = "msgpack"    # or codec = { name = "msgpack" }
//! config = { path = "out.msgpack", mode = "write" }
//! ```
//!
//! [MessagePack]: https://msgpack.org
//! [rmp]: https://docs.rs/rmp

use rmp::{Marker, encode::ByteBuf};
use temblor_shim::{Codec, Object, PluginError, RString, RVec, Setup, Value};

/// The deepest nesting of arrays and maps a frame may have.
pub const MAX_DEPTH: usize = 128;

/// The most `max_depth` may be (decoding recurses once per level).
pub const DEPTH_CEILING: usize = 1024;

/// The codec's configuration.
#[derive(temblor_shim::serde::Deserialize, Debug)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields, default)]
pub struct Config {
    /// The deepest nesting accepted.
    pub max_depth: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_depth: MAX_DEPTH,
        }
    }
}

/// The MessagePack codec, with the encoding buffer it reuses from event to event.
#[derive(Debug)]
pub struct Msgpack {
    /// What rmp writes into; copied to the frame with one memcpy, then cleared.
    scratch: ByteBuf,
    max_depth: usize,
}

impl Default for Msgpack {
    fn default() -> Self {
        Self::new()
    }
}

impl Msgpack {
    /// A codec with an empty buffer.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_depth(MAX_DEPTH)
    }

    /// A codec that refuses nesting deeper than `max_depth`.
    #[must_use]
    pub fn with_max_depth(max_depth: usize) -> Self {
        Self {
            scratch: ByteBuf::new(),
            max_depth,
        }
    }
}

/// Decodes one frame holding exactly one MessagePack value.
///
/// # Errors
/// Why the frame is not exactly one value this codec accepts (see the crate docs).
pub fn decode_slice(frame: &[u8]) -> Result<Value, String> {
    decode_with_max_depth(frame, MAX_DEPTH)
}

/// [`decode_slice`] with another nesting limit.
///
/// # Errors
/// As [`decode_slice`].
pub fn decode_with_max_depth(frame: &[u8], max_depth: usize) -> Result<Value, String> {
    let mut reader = Reader {
        bytes: frame,
        at: 0,
        max_depth,
    };
    let value = reader.value(0)?;
    let rest = frame.len() - reader.at;
    if rest > 0 {
        return Err(format!("{rest} bytes of trailing data after the value"));
    }
    Ok(value)
}

/// Encodes one value as MessagePack (for tests and tools; the codec reuses its buffer instead).
///
/// # Errors
/// When a string, binary, array or object is longer than MessagePack can hold.
pub fn encode_to_vec(value: &Value) -> Result<Vec<u8>, String> {
    let mut buf = ByteBuf::new();
    write(value, &mut buf)?;
    Ok(buf.into_vec())
}

/// A cursor over a frame.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "unexpected end of frame at byte {}: {n} more bytes needed, {} left",
                self.at,
                self.bytes.len() - self.at
            ));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// How many bytes are left: an upper bound for how many values a container can hold.
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn marker(&mut self) -> Result<Marker, String> {
        if self.at >= self.bytes.len() {
            return Err(if self.bytes.is_empty() {
                "empty frame".to_owned()
            } else {
                format!(
                    "unexpected end of frame at byte {}: a value expected",
                    self.at
                )
            });
        }
        Ok(Marker::from_u8(self.u8()?))
    }

    fn string(&mut self, len: usize) -> Result<RString, String> {
        let at = self.at;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(RString::from(s)),
            Err(e) => Err(format!(
                "invalid UTF-8 in the str at byte {at}, {} bytes into it",
                e.valid_up_to()
            )),
        }
    }

    /// Reads one value, `depth` arrays and maps deep.
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let at = self.at;
        Ok(match self.marker()? {
            Marker::Null => Value::Null,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::FixPos(n) => Value::I64(i64::from(n)),
            Marker::FixNeg(n) => Value::I64(i64::from(n)),
            Marker::U8 => Value::I64(i64::from(self.u8()?)),
            Marker::U16 => Value::I64(i64::from(self.u16()?)),
            Marker::U32 => Value::I64(i64::from(self.u32()?)),
            Marker::U64 => Value::from(self.u64()?),
            Marker::I8 => Value::I64(i64::from(i8::from_be_bytes(self.array()?))),
            Marker::I16 => Value::I64(i64::from(i16::from_be_bytes(self.array()?))),
            Marker::I32 => Value::I64(i64::from(i32::from_be_bytes(self.array()?))),
            Marker::I64 => Value::I64(i64::from_be_bytes(self.array()?)),
            Marker::F32 => Value::F64(f64::from(f32::from_be_bytes(self.array()?))),
            Marker::F64 => Value::F64(f64::from_be_bytes(self.array()?)),
            Marker::FixStr(n) => Value::String(self.string(usize::from(n))?),
            Marker::Str8 => {
                let len = usize::from(self.u8()?);
                Value::String(self.string(len)?)
            }
            Marker::Str16 => {
                let len = usize::from(self.u16()?);
                Value::String(self.string(len)?)
            }
            Marker::Str32 => {
                let len = self.u32()? as usize;
                Value::String(self.string(len)?)
            }
            Marker::Bin8 => {
                let len = usize::from(self.u8()?);
                Value::Bytes(RVec::from(self.take(len)?))
            }
            Marker::Bin16 => {
                let len = usize::from(self.u16()?);
                Value::Bytes(RVec::from(self.take(len)?))
            }
            Marker::Bin32 => {
                let len = self.u32()? as usize;
                Value::Bytes(RVec::from(self.take(len)?))
            }
            Marker::FixArray(n) => self.array_items(usize::from(n), depth)?,
            Marker::Array16 => {
                let len = usize::from(self.u16()?);
                self.array_items(len, depth)?
            }
            Marker::Array32 => {
                let len = self.u32()? as usize;
                self.array_items(len, depth)?
            }
            Marker::FixMap(n) => self.map_fields(usize::from(n), depth)?,
            Marker::Map16 => {
                let len = usize::from(self.u16()?);
                self.map_fields(len, depth)?
            }
            Marker::Map32 => {
                let len = self.u32()? as usize;
                self.map_fields(len, depth)?
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16 => return Err(self.ext_error(at, 0)),
            Marker::Ext8 => return Err(self.ext_error(at, 1)),
            Marker::Ext16 => return Err(self.ext_error(at, 2)),
            Marker::Ext32 => return Err(self.ext_error(at, 4)),
            Marker::Reserved => return Err(format!("the never-used marker 0xc1 at byte {at}")),
        })
    }

    /// The error for an ext value at `at` whose length takes `len_bytes` bytes.
    fn ext_error(&mut self, at: usize, len_bytes: usize) -> String {
        match self.take(len_bytes).and_then(|_| self.array::<1>()) {
            Ok([ty]) => format!(
                "ext type {} at byte {at} is not supported",
                i8::from_be_bytes([ty])
            ),
            Err(e) => e,
        }
    }

    fn array_items(&mut self, len: usize, depth: usize) -> Result<Value, String> {
        let depth = nested(depth, self.at, self.max_depth)?;
        // Every value takes at least one byte: a lying length cannot allocate more than that.
        let mut items = RVec::with_capacity(len.min(self.left()));
        for _ in 0..len {
            items.push(self.value(depth)?);
        }
        Ok(Value::Array(items))
    }

    fn map_fields(&mut self, len: usize, depth: usize) -> Result<Value, String> {
        let depth = nested(depth, self.at, self.max_depth)?;
        let mut object = Object::with_capacity(len.min(self.left() / 2));
        for _ in 0..len {
            let key = self.key()?;
            let value = self.value(depth)?;
            // No lookup for an earlier field with this key: a repeated key is kept as it is.
            object.push(key, value);
        }
        Ok(Value::Object(object))
    }

    /// A map key: a str, or an integer written in decimal.
    fn key(&mut self) -> Result<RString, String> {
        let at = self.at;
        let marker = self.marker()?;
        let text = |i: i128| Ok(RString::from(i.to_string()));
        match marker {
            Marker::FixStr(n) => self.string(usize::from(n)),
            Marker::Str8 => {
                let len = usize::from(self.u8()?);
                self.string(len)
            }
            Marker::Str16 => {
                let len = usize::from(self.u16()?);
                self.string(len)
            }
            Marker::Str32 => {
                let len = self.u32()? as usize;
                self.string(len)
            }
            Marker::FixPos(n) => text(i128::from(n)),
            Marker::FixNeg(n) => text(i128::from(n)),
            Marker::U8 => text(i128::from(self.u8()?)),
            Marker::U16 => text(i128::from(self.u16()?)),
            Marker::U32 => text(i128::from(self.u32()?)),
            Marker::U64 => text(i128::from(self.u64()?)),
            Marker::I8 => text(i128::from(i8::from_be_bytes(self.array()?))),
            Marker::I16 => text(i128::from(i16::from_be_bytes(self.array()?))),
            Marker::I32 => text(i128::from(i32::from_be_bytes(self.array()?))),
            Marker::I64 => text(i128::from(i64::from_be_bytes(self.array()?))),
            other => Err(format!(
                "map key at byte {at} is {}: only str and integer keys are supported",
                marker_name(other)
            )),
        }
    }
}

/// The depth inside one more array or map, or the error when that is too deep.
fn nested(depth: usize, at: usize, max_depth: usize) -> Result<usize, String> {
    if depth < max_depth {
        Ok(depth + 1)
    } else {
        Err(format!(
            "nesting deeper than {max_depth} arrays and maps at byte {at}"
        ))
    }
}

/// What a marker introduces, for error messages.
fn marker_name(marker: Marker) -> &'static str {
    match marker {
        Marker::Null => "nil",
        Marker::True | Marker::False => "a bool",
        Marker::F32 | Marker::F64 => "a float",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "a bin",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "an array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "a map",
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => "an ext",
        Marker::Reserved => "the never-used marker 0xc1",
        _ => "a str or integer",
    }
}

/// A length as MessagePack's `u32`.
fn len32(len: usize, what: &str) -> Result<u32, String> {
    u32::try_from(len).map_err(|_| format!("{what} of {len} is longer than MessagePack can hold"))
}

fn write(value: &Value, buf: &mut ByteBuf) -> Result<(), String> {
    // `ByteBuf` cannot fail to write (its error type is `Infallible`); only lengths can.
    match value {
        Value::Null => {
            let Ok(()) = rmp::encode::write_nil(buf);
        }
        Value::Bool(b) => {
            let Ok(()) = rmp::encode::write_bool(buf, *b);
        }
        Value::I64(i) => {
            let Ok(_) = rmp::encode::write_sint(buf, *i);
        }
        Value::U64(u) => {
            let Ok(_) = rmp::encode::write_uint(buf, *u);
        }
        Value::F64(f) => {
            let Ok(()) = rmp::encode::write_f64(buf, *f);
        }
        Value::String(s) => write_str(buf, s)?,
        Value::Bytes(bytes) => {
            let Ok(_) = rmp::encode::write_bin_len(buf, len32(bytes.len(), "a binary")?);
            buf.as_mut_vec().extend_from_slice(bytes);
        }
        Value::Array(items) => {
            let Ok(_) = rmp::encode::write_array_len(buf, len32(items.len(), "an array")?);
            for item in items {
                write(item, buf)?;
            }
        }
        Value::Object(object) => {
            let Ok(_) = rmp::encode::write_map_len(buf, len32(object.len(), "an object")?);
            for (key, item) in object.iter() {
                write_str(buf, key)?;
                write(item, buf)?;
            }
        }
    }
    Ok(())
}

fn write_str(buf: &mut ByteBuf, s: &str) -> Result<(), String> {
    let Ok(_) = rmp::encode::write_str_len(buf, len32(s.len(), "a string")?);
    buf.as_mut_vec().extend_from_slice(s.as_bytes());
    Ok(())
}

impl Codec for Msgpack {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        decode_with_max_depth(frame, self.max_depth)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        self.scratch.as_mut_vec().clear();
        write(event, &mut self.scratch).map_err(PluginError::data)?;
        out.extend_from_copy_slice(self.scratch.as_slice());
        Ok(())
    }
}

/// The constructor the engine calls.
///
/// # Errors
/// A `Config` error for an unknown key or a `max_depth` out of range.
pub fn new(setup: &Setup<'_>) -> Result<Msgpack, PluginError> {
    let Config { max_depth } = setup.config::<Config>()?;
    if !(1..=DEPTH_CEILING).contains(&max_depth) {
        return Err(PluginError::config(format_args!(
            "max_depth must be 1 to {DEPTH_CEILING}, not {max_depth}"
        )));
    }
    Ok(Msgpack::with_max_depth(max_depth))
}

temblor_shim::export_plugin! { name: "msgpack", kind: Codec, codec: new }

#[cfg(test)]
mod tests {
    use temblor_harness::codec::{decode_batch, encode_batch, indexes};
    use temblor_shim::{ErrorKind, Frames, abi_stable::std_types::RStr};

    use super::*;

    temblor_harness::codec_unit_helpers!(Msgpack::new());

    #[test]
    fn decodes_every_scalar_format() {
        assert!(matches!(ok(&[0xc0]), Value::Null));
        assert!(matches!(ok(&[0xc3]), Value::Bool(true)));
        assert!(matches!(ok(&[0xc2]), Value::Bool(false)));
        assert!(matches!(ok(&[0x00]), Value::I64(0)));
        assert!(matches!(ok(&[0x7f]), Value::I64(127)));
        assert!(matches!(ok(&[0xe0]), Value::I64(-32)));
        assert!(matches!(ok(&[0xff]), Value::I64(-1)));
        assert!(matches!(ok(&[0xcc, 0xff]), Value::I64(255)));
        assert!(matches!(ok(&[0xcd, 0x01, 0x00]), Value::I64(256)));
        assert!(matches!(
            ok(&[0xce, 0xff, 0xff, 0xff, 0xff]),
            Value::I64(4_294_967_295)
        ));
        assert!(matches!(
            ok(&[0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Value::I64(i64::MAX)
        ));
        assert!(matches!(
            ok(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Value::U64(u64::MAX)
        ));
        assert!(matches!(ok(&[0xd0, 0x80]), Value::I64(-128)));
        assert!(matches!(ok(&[0xd1, 0x80, 0x00]), Value::I64(-32768)));
        assert!(matches!(
            ok(&[0xd2, 0x80, 0, 0, 0]),
            Value::I64(-2_147_483_648)
        ));
        assert!(matches!(
            ok(&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Value::I64(i64::MIN)
        ));
        // A positive number in a signed format is still an integer.
        assert!(matches!(ok(&[0xd0, 0x05]), Value::I64(5)));
        assert!(matches!(ok(&[0xca, 0x3f, 0xc0, 0, 0]), Value::F64(f) if f == 1.5));
        assert!(
            matches!(ok(&[0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]), Value::F64(f) if f == std::f64::consts::PI)
        );
        assert_eq!(ok(&[0xa0]), Value::from(""));
        assert_eq!(ok(b"\xa3abc"), Value::from("abc"));
        assert_eq!(ok(b"\xd9\x03abc"), Value::from("abc"));
        assert_eq!(ok(b"\xda\x00\x03abc"), Value::from("abc"));
        assert_eq!(ok(b"\xdb\x00\x00\x00\x03abc"), Value::from("abc"));
        assert_eq!(
            ok(b"\xc4\x02\x00\xff"),
            Value::Bytes(vec![0_u8, 0xff].into())
        );
        assert_eq!(ok(b"\xc5\x00\x01\x07"), Value::Bytes(vec![7_u8].into()));
        assert_eq!(ok(b"\xc6\x00\x00\x00\x00"), Value::Bytes(RVec::new()));
    }

    #[test]
    fn decodes_utf8_strings_and_containers() {
        let mut frame = vec![0xa5];
        frame.extend_from_slice("é€".as_bytes());
        assert_eq!(ok(&frame), Value::from("é€"));
        assert_eq!(ok(&[0x90]), Value::from(Vec::new()));
        assert_eq!(ok(&[0x80]), obj(&[]));
        assert_eq!(
            ok(b"\x93\x01\xa1x\xc0"),
            Value::from(vec![Value::I64(1), Value::from("x"), Value::Null])
        );
        assert_eq!(
            ok(b"\xdc\x00\x01\xc3"),
            Value::from(vec![Value::Bool(true)])
        );
        assert_eq!(
            ok(b"\xdd\x00\x00\x00\x01\xc2"),
            Value::from(vec![Value::Bool(false)])
        );
        let v = ok(b"\x82\xa1b\x01\xa1a\x91\x80");
        assert_eq!(
            v,
            obj(&[("b", Value::I64(1)), ("a", Value::from(vec![obj(&[])]))])
        );
        let keys: Vec<_> = v.as_object().unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a"], "map order is kept");
        assert_eq!(
            ok(b"\xde\x00\x01\xa1k\xa1v"),
            obj(&[("k", Value::from("v"))])
        );
        assert_eq!(
            ok(b"\xdf\x00\x00\x00\x01\xa1k\xa1v"),
            obj(&[("k", Value::from("v"))])
        );
    }

    #[test]
    fn integer_keys_become_decimal_names_and_other_keys_are_errors() {
        assert_eq!(
            ok(b"\x83\x01\xa1a\xff\xa1b\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xa1c"),
            obj(&[
                ("1", Value::from("a")),
                ("-1", Value::from("b")),
                ("18446744073709551615", Value::from("c")),
            ])
        );
        assert_eq!(
            ok(b"\x81\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xc0"),
            obj(&[("-9223372036854775808", Value::Null)])
        );
        for (frame, what) in [
            (&b"\x81\xc0\x01"[..], "nil"),
            (b"\x81\xc3\x01", "a bool"),
            (b"\x81\xcb\0\0\0\0\0\0\0\0\x01", "a float"),
            (b"\x81\xc4\x01a\x01", "a bin"),
            (b"\x81\x90\x01", "an array"),
            (b"\x81\x80\x01", "a map"),
            (b"\x81\xd4\x01\x00\x01", "an ext"),
        ] {
            assert_eq!(
                err(frame),
                format!("map key at byte 1 is {what}: only str and integer keys are supported")
            );
        }
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let v = ok(b"\x82\xa1a\x01\xa1a\x02");
        assert_eq!(v.as_object().map(Object::len), Some(2));
        assert_eq!(v.get("a"), Some(&Value::I64(1)));
        assert_eq!(enc_bytes(&v), b"\x82\xa1a\x01\xa1a\x02");
    }

    #[test]
    fn rejects_bad_frames_with_a_reason() {
        assert_eq!(err(b""), "empty frame");
        assert_eq!(err(&[0xc1]), "the never-used marker 0xc1 at byte 0");
        assert_eq!(
            err(&[0x01, 0x02]),
            "1 bytes of trailing data after the value"
        );
        assert_eq!(
            err(&[0xcd, 0x01]),
            "unexpected end of frame at byte 1: 2 more bytes needed, 1 left"
        );
        assert_eq!(
            err(&[0x92, 0x01]),
            "unexpected end of frame at byte 2: a value expected"
        );
        assert_eq!(
            err(b"\xa3ab"),
            "unexpected end of frame at byte 1: 3 more bytes needed, 2 left"
        );
        assert_eq!(
            err(b"\xa2a\xff"),
            "invalid UTF-8 in the str at byte 1, 1 bytes into it"
        );
        assert_eq!(
            err(b"\xd4\x05\x00"),
            "ext type 5 at byte 0 is not supported"
        );
        assert_eq!(
            err(b"\xd6\xff\x00\x00\x00\x00"),
            "ext type -1 at byte 0 is not supported"
        );
        assert_eq!(
            err(b"\xc7\x01\x02\x00"),
            "ext type 2 at byte 0 is not supported"
        );
        assert_eq!(
            err(b"\xc8\x00\x01\x03\x00"),
            "ext type 3 at byte 0 is not supported"
        );
        assert_eq!(
            err(b"\xc9\x00\x00\x00\x01\x04\x00"),
            "ext type 4 at byte 0 is not supported"
        );
        assert!(err(b"\xc9\x00").starts_with("unexpected end of frame"));
        // A huge claimed length allocates nothing up front and fails at the end of the frame.
        assert!(err(b"\xdd\xff\xff\xff\xff\x01").starts_with("unexpected end of frame"));
        assert!(err(b"\xdf\xff\xff\xff\xff\xa1a\x01").starts_with("unexpected end of frame"));
        assert!(err(b"\xdb\xff\xff\xff\xff").starts_with("unexpected end of frame"));
        assert!(err(b"\xc6\xff\xff\xff\xff").starts_with("unexpected end of frame"));
    }

    #[test]
    fn depth_is_bounded() {
        let nested = |n: usize| {
            let mut frame = vec![0x91; n - 1];
            frame.push(0x90);
            frame
        };
        let v = ok(&nested(MAX_DEPTH));
        let mut depth = 0;
        let mut at = &v;
        while let Some(items) = at.as_array() {
            depth += 1;
            match items.first() {
                Some(inner) => at = inner,
                None => break,
            }
        }
        assert_eq!(depth, MAX_DEPTH);
        assert_eq!(enc_bytes(&v), nested(MAX_DEPTH));
        assert_eq!(
            err(&nested(MAX_DEPTH + 1)),
            format!(
                "nesting deeper than {MAX_DEPTH} arrays and maps at byte {}",
                MAX_DEPTH + 1
            )
        );
        // Maps count too, and a million open arrays is an error, not a stack overflow.
        let maps: Vec<u8> = b"\x81\xa1k"
            .repeat(MAX_DEPTH + 1)
            .into_iter()
            .chain([0xc0])
            .collect();
        assert!(err(&maps).starts_with("nesting deeper than"));
        assert!(err(&vec![0x91; 1_000_000]).starts_with("nesting deeper than"));
        assert!(err(&b"\x81\xa0".repeat(1_000_000)).starts_with("nesting deeper than"));
    }

    #[test]
    fn max_depth_is_configurable() {
        // `n` arrays, one inside the other.
        let nested = |n: usize| {
            let mut frame = vec![0x91; n - 1];
            frame.push(0x90);
            frame
        };
        assert!(decode_with_max_depth(&nested(2), 2).is_ok());
        assert!(
            decode_with_max_depth(&nested(3), 2)
                .unwrap_err()
                .starts_with("nesting deeper than 2 arrays and maps at byte")
        );
        let module = plugin_module();
        let name = RStr::from("t");
        let codec = |depth: i64| {
            let config: Object = [("max_depth", Value::from(depth))].into_iter().collect();
            module.new_codec()(name, &Value::Object(config)).into_result()
        };
        let Ok(mut c) = codec(1) else {
            panic!("max_depth = 1 was refused");
        };
        let frames: Frames = [nested(1), nested(2)].iter().map(Vec::as_slice).collect();
        let (mut out, mut errors) = (RVec::new(), RVec::new());
        c.decode(&frames, &mut out, &mut errors).unwrap();
        assert_eq!((out.len(), errors.len()), (1, 1));
        for bad in [0, 1025] {
            let Err(e) = codec(bad) else {
                panic!("max_depth = {bad} was accepted");
            };
            assert_eq!(e.kind, ErrorKind::Config);
            assert!(e.message.contains("max_depth"), "{e}");
        }
    }

    #[test]
    fn encodes_in_the_smallest_form() {
        assert_eq!(enc_bytes(&Value::Null), [0xc0]);
        assert_eq!(enc_bytes(&Value::Bool(true)), [0xc3]);
        assert_eq!(enc_bytes(&Value::I64(5)), [0x05]);
        assert_eq!(enc_bytes(&Value::I64(-5)), [0xfb]);
        assert_eq!(enc_bytes(&Value::I64(200)), [0xcc, 200]);
        assert_eq!(enc_bytes(&Value::I64(-200)), [0xd1, 0xff, 0x38]);
        assert_eq!(
            enc_bytes(&Value::I64(i64::MIN)),
            [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc_bytes(&Value::U64(u64::MAX)),
            [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            enc_bytes(&Value::F64(1.5)),
            [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(enc_bytes(&Value::from("abc")), b"\xa3abc");
        assert_eq!(
            enc_bytes(&Value::from("x".repeat(40))),
            [&b"\xd9\x28"[..], &b"x".repeat(40)].concat()
        );
        assert_eq!(
            enc_bytes(&Value::Bytes(vec![1_u8, 2].into())),
            b"\xc4\x02\x01\x02"
        );
        assert_eq!(
            enc_bytes(&obj(&[(
                "a",
                Value::from(vec![Value::I64(1), Value::Null])
            )])),
            b"\x81\xa1a\x92\x01\xc0"
        );
        let big: Vec<Value> = (0..20).map(Value::from).collect();
        assert_eq!(&enc_bytes(&Value::from(big))[..3], [0xdc, 0x00, 20]);
        // Non-finite floats are floats in MessagePack.
        assert!(
            matches!(ok(&enc_bytes(&Value::F64(f64::INFINITY))), Value::F64(f) if f == f64::INFINITY)
        );
        assert!(matches!(ok(&enc_bytes(&Value::F64(f64::NAN))), Value::F64(f) if f.is_nan()));
    }

    #[test]
    fn round_trips() {
        let values = [
            obj(&[
                ("s", Value::from("é€ \"x\"")),
                ("i", Value::I64(-70_000)),
                ("u", Value::U64(u64::MAX)),
                ("f", Value::F64(-0.1)),
                ("b", Value::Bytes((0..=255).collect::<Vec<u8>>().into())),
                ("n", Value::Null),
                ("t", Value::Bool(false)),
                ("a", Value::from(vec![obj(&[]), Value::from(Vec::new())])),
                ("long", Value::from("y".repeat(70_000))),
            ]),
            Value::from((0..70_000).map(Value::from).collect::<Vec<_>>()),
            (0..300)
                .map(|i| (format!("k{i}"), Value::from(i)))
                .collect::<Object>()
                .into(),
        ];
        for value in values {
            let bytes = enc_bytes(&value);
            let back = ok(&bytes);
            assert_eq!(back, value);
            assert_eq!(enc_bytes(&back), bytes, "encoding is stable");
        }
        // A float 32 is widened exactly, and written back as a float 64 of the same value.
        let v = ok(&[0xca, 0x3d, 0xcc, 0xcc, 0xcd]);
        assert!(matches!(v, Value::F64(f) if f == f64::from(0.1_f32)));
        assert_eq!(ok(&enc_bytes(&v)), v);
    }

    #[test]
    fn batch_keeps_going_after_a_bad_frame() {
        let mut codec = Msgpack::new();
        let (out, errors) = decode_batch(&mut codec, &[b"\x01", b"\xc1", b"\xa1x", b""]);
        assert_eq!(out, [Value::I64(1), Value::from("x")]);
        assert_eq!(indexes(&errors), [1, 3]);
        assert_eq!(encode_batch(&mut codec, &out), [&b"\x01"[..], b"\xa1x"]);
    }

    #[test]
    fn config_takes_no_keys() {
        temblor_harness::codec::refuses_config_key(plugin_module(), "ext", Value::Bool(true));
    }
}
