//! The `binflux` codec: Tremor's binary form of an influx point, one per frame, both ways.
//!
//! # Wire format
//!
//! As Tremor's `binflux` codec writes and reads it (every integer big-endian, every string a
//! `u16` byte length then UTF-8):
//!
//! 1. `u16` version, `0`;
//! 2. the measurement (string);
//! 3. `u64` timestamp;
//! 4. `u16` number of tags, then each tag's key and value (strings);
//! 5. `u16` number of fields, then each field's key (string), a type byte and the value:
//!    `0` an `i64`, `1` an `f64` (IEEE 754 bits), `2` a string, `3` true, `4` false.
//!
//! (Tremor's documentation lists the types as `2` true, `3` false, `4` string; its code, and
//! so every binflux stream Tremor writes, uses `2` string, `3` true, `4` false, as here.)
//!
//! The format has no framing of its own: use it with `length-prefixed` (8 bytes, as Tremor).
//!
//! # Event shape
//!
//! The `influx` codec's: `{"measurement": .., "tags": {..}, "fields": {..}, "timestamp": ..}`,
//! with the timestamp an integer (`I64`, or `U64` above `i64::MAX`), tags strings, fields
//! `I64`, `F64`, strings and booleans, in the frame's order (a key repeated keeps the last
//! value at its first position).
//!
//! # Errors
//!
//! Decoding: a version other than 0, a frame cut short, a string not UTF-8, an unknown field
//! type, or bytes after the point are per-frame errors naming the byte where they are.
//! Encoding fails for an event without a string `measurement` or without a non-negative
//! integer `timestamp`, with a `tags` or `fields` that is not an object, a tag value that is
//! not a string, a field value that is not an integer within `i64`, a float, a string or a
//! boolean, a string longer than 65535 bytes, or more than 65535 tags or fields.
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! Influx lines in, binflux records out over TCP, as a Tremor peer reads them:
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "influx"
//! preprocessors = ["separate"]
//! config = { path = "in.influx", mode = "read" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "tcp_client"
//! codec = "binflux"
//! postprocessors = ["length-prefixed"]
//! config = { url = "127.0.0.1:4242" }
//! ```

use temblor_shim::{ByteSink, Codec, Object, PluginError, RString, RVec, Value, keyless};

const TYPE_I64: u8 = 0;
const TYPE_F64: u8 = 1;
const TYPE_STRING: u8 = 2;
const TYPE_TRUE: u8 = 3;
const TYPE_FALSE: u8 = 4;

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The binflux codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Binflux;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at + n;
        let bytes = self.bytes.get(self.at..end).ok_or_else(|| {
            format!(
                "the frame ends inside the {what} at byte {}",
                self.bytes.len()
            )
        })?;
        self.at = end;
        Ok(bytes)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(b))
    }

    fn string(&mut self, what: &str) -> Result<RString, String> {
        let n = usize::from(self.u16(what)?);
        let at = self.at;
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes)
            .map(RString::from)
            .map_err(|_| format!("the {what} is not UTF-8 at byte {at}"))
    }
}

/// Sets `key` in an object being decoded: a repeated key keeps its last value.
fn set(object: &mut Object, key: RString, value: Value) {
    match object.get_mut(&key) {
        Some(slot) => *slot = value,
        None => object.push(key, value),
    }
}

/// Decodes one binflux point.
///
/// # Errors
/// What is wrong, and at which byte (see the crate docs).
pub fn decode_point(frame: &[u8]) -> Result<Value, String> {
    let mut r = Reader {
        bytes: frame,
        at: 0,
    };
    let version = r.u16("version")?;
    if version != 0 {
        return Err(format!(
            "binflux version {version} at byte 0: only 0 is known"
        ));
    }
    let measurement = r.string("measurement")?;
    let timestamp = r.u64("timestamp")?;
    let count = r.u16("tag count")?;
    let mut tags = Object::with_capacity(usize::from(count).min(frame.len() / 4));
    for _ in 0..count {
        let key = r.string("tag key")?;
        let value = r.string("tag value")?;
        set(&mut tags, key, Value::String(value));
    }
    let count = r.u16("field count")?;
    let mut fields = Object::with_capacity(usize::from(count).min(frame.len() / 3));
    for _ in 0..count {
        let key = r.string("field key")?;
        let at = r.at;
        let value = match r.take(1, "field type")?[0] {
            TYPE_I64 => Value::I64(i64::from_be_bytes(r.u64("field value")?.to_be_bytes())),
            TYPE_F64 => Value::F64(f64::from_bits(r.u64("field value")?)),
            TYPE_STRING => Value::String(r.string("field value")?),
            TYPE_TRUE => Value::Bool(true),
            TYPE_FALSE => Value::Bool(false),
            other => return Err(format!("unknown field type {other} at byte {at}")),
        };
        set(&mut fields, key, value);
    }
    if r.at != frame.len() {
        return Err(format!(
            "{} bytes after the point at byte {}",
            frame.len() - r.at,
            r.at
        ));
    }
    let mut event = Object::with_capacity(4);
    event.push("measurement".into(), Value::String(measurement));
    event.push("tags".into(), Value::Object(tags));
    event.push("fields".into(), Value::Object(fields));
    event.push("timestamp".into(), Value::from(timestamp));
    Ok(Value::Object(event))
}

fn put_string<B: ByteSink>(out: &mut B, s: &str, what: &str) -> Result<(), String> {
    let n = u16::try_from(s.len())
        .map_err(|_| format!("the {what} {s:.20?}... is longer than 65535 bytes"))?;
    out.put(&n.to_be_bytes());
    out.put(s.as_bytes());
    Ok(())
}

fn object<'v>(event: &'v Object, key: &str) -> Result<Option<&'v Object>, String> {
    match event.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(format!("`{key}` is an object, not {}", other.type_name())),
    }
}

fn count(object: Option<&Object>, what: &str) -> Result<[u8; 2], String> {
    let n = object.map_or(0, Object::len);
    u16::try_from(n)
        .map(u16::to_be_bytes)
        .map_err(|_| format!("{n} {what}: binflux holds at most 65535"))
}

/// Encodes one event as a binflux point into `out` (on error, `out` may hold part of it).
///
/// # Errors
/// Why the event cannot be written (see the crate docs).
pub fn encode_point<B: ByteSink>(event: &Value, out: &mut B) -> Result<(), String> {
    let event = event
        .as_object()
        .ok_or_else(|| format!("a binflux event is an object, not {}", event.type_name()))?;
    let measurement = match event.get("measurement") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                "`measurement` is a string, not {}",
                other.type_name()
            ));
        }
        None => return Err("the event has no `measurement`".to_owned()),
    };
    let timestamp = match event.get("timestamp") {
        Some(Value::I64(t)) if *t >= 0 => t.unsigned_abs(),
        Some(Value::U64(t)) => *t,
        Some(other) => {
            return Err(format!(
                "`timestamp` is a non-negative integer, not {other}"
            ));
        }
        None => return Err("the event has no `timestamp`".to_owned()),
    };
    let tags = object(event, "tags")?;
    let fields = object(event, "fields")?;
    out.put(&[0, 0]);
    put_string(out, measurement, "measurement")?;
    out.put(&timestamp.to_be_bytes());
    out.put(&count(tags, "tags")?);
    for (key, value) in tags.iter().flat_map(|t| t.iter()) {
        let Value::String(value) = value else {
            return Err(format!(
                "tag {key:?} is {}: tag values are strings",
                value.type_name()
            ));
        };
        put_string(out, key, "tag key")?;
        put_string(out, value, "tag value")?;
    }
    out.put(&count(fields, "fields")?);
    for (key, value) in fields.iter().flat_map(|f| f.iter()) {
        put_string(out, key, "field key")?;
        match value {
            Value::I64(i) => {
                out.put_byte(TYPE_I64);
                out.put(&i.to_be_bytes());
            }
            Value::U64(u) => {
                let i = i64::try_from(*u).map_err(|_| {
                    format!("field {key:?} is {u}: binflux integers are within i64")
                })?;
                out.put_byte(TYPE_I64);
                out.put(&i.to_be_bytes());
            }
            Value::F64(f) => {
                out.put_byte(TYPE_F64);
                out.put(&f.to_bits().to_be_bytes());
            }
            Value::String(s) => {
                out.put_byte(TYPE_STRING);
                put_string(out, s, "field value")?;
            }
            Value::Bool(true) => out.put_byte(TYPE_TRUE),
            Value::Bool(false) => out.put_byte(TYPE_FALSE),
            other => {
                return Err(format!(
                    "field {key:?} is {}: fields are integers, floats, strings or booleans",
                    other.type_name()
                ));
            }
        }
    }
    Ok(())
}

impl Codec for Binflux {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        decode_point(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        let start = out.len();
        encode_point(event, out).map_err(|e| {
            out.truncate(start);
            PluginError::data(e)
        })
    }
}

temblor_shim::export_plugin! { name: "binflux", kind: Codec, codec: keyless::<Config, Binflux> }

#[cfg(test)]
mod tests {
    use super::*;

    temblor_harness::codec_unit_helpers!(Binflux);

    /// Tremor's own test point (`encode_decode` in its binflux codec), byte for byte as
    /// Tremor's encoder writes it.
    #[test]
    fn tremors_test_point() {
        let point = obj(&[
            ("measurement", "m".into()),
            ("tags", obj(&[("t1", "v1".into()), ("t2", "v2".into())])),
            (
                "fields",
                obj(&[
                    ("f1", Value::I64(42)),
                    ("f2", Value::F64(42.0)),
                    ("f3", Value::Bool(true)),
                    ("f4", Value::Bool(false)),
                    ("f5", "snot".into()),
                ]),
            ),
            ("timestamp", Value::I64(42)),
        ]);
        let mut want: Vec<u8> = vec![0, 0, 0, 1, b'm', 0, 0, 0, 0, 0, 0, 0, 42, 0, 2];
        want.extend_from_slice(b"\0\x02t1\0\x02v1\0\x02t2\0\x02v2\0\x05");
        want.extend_from_slice(b"\0\x02f1\x00\0\0\0\0\0\0\0\x2a");
        want.extend_from_slice(b"\0\x02f2\x01");
        want.extend_from_slice(&42.0_f64.to_bits().to_be_bytes());
        want.extend_from_slice(b"\0\x02f3\x03\0\x02f4\x04\0\x02f5\x02\0\x04snot");
        assert_eq!(enc_bytes(&point), want);
        assert_eq!(decode_point(&want), Ok(point));
    }

    #[test]
    fn the_influx_event_shape_round_trips() {
        let point = obj(&[
            ("measurement", "weather".into()),
            ("tags", obj(&[("location", "us-midwest".into())])),
            (
                "fields",
                obj(&[
                    ("temperature", Value::F64(82.0)),
                    ("u", Value::U64(7)),
                    ("neg", Value::I64(i64::MIN)),
                    ("s", "é 😀".into()),
                ]),
            ),
            ("timestamp", Value::I64(1_465_839_830_100_400_200)),
        ]);
        let wire = enc_bytes(&point);
        assert_eq!(decode_point(&wire), Ok(point));
        // No tags, no fields, the largest timestamp.
        let bare = obj(&[
            ("measurement", "".into()),
            ("tags", obj(&[])),
            ("fields", obj(&[])),
            ("timestamp", Value::U64(u64::MAX)),
        ]);
        assert_eq!(decode_point(&enc_bytes(&bare)), Ok(bare));
    }

    #[test]
    fn bad_frames_are_errors_naming_the_byte() {
        let good = enc_bytes(&obj(&[
            ("measurement", "m".into()),
            ("fields", obj(&[("f", Value::Bool(true))])),
            ("timestamp", Value::I64(1)),
        ]));
        for cut in 0..good.len() {
            let err = decode_point(&good[..cut]).unwrap_err();
            assert!(err.starts_with("the frame ends inside the"), "{cut}: {err}");
        }
        assert_eq!(
            decode_point(&[&good[..], b"x"].concat()),
            Err(format!("1 bytes after the point at byte {}", good.len()))
        );
        let mut bad = good.clone();
        bad[1] = 1;
        assert_eq!(
            decode_point(&bad),
            Err("binflux version 1 at byte 0: only 0 is known".to_owned())
        );
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] = 9;
        assert_eq!(
            decode_point(&bad),
            Err(format!("unknown field type 9 at byte {}", n - 1))
        );
        let mut bad = good;
        bad[4] = 0xff;
        assert_eq!(
            decode_point(&bad),
            Err("the measurement is not UTF-8 at byte 4".to_owned())
        );
    }

    #[test]
    fn encoding_refuses_what_binflux_cannot_hold() {
        let base = |extra: &[(&str, Value)]| {
            let mut e = obj(&[("measurement", "m".into()), ("timestamp", Value::I64(1))]);
            for (k, v) in extra {
                e.as_object_mut().unwrap().insert(*k, v.clone());
            }
            e
        };
        let err = |event: &Value| {
            let mut out = Vec::new();
            encode_point(event, &mut out).unwrap_err()
        };
        assert_eq!(err(&Value::Null), "a binflux event is an object, not null");
        assert_eq!(
            err(&obj(&[("timestamp", Value::I64(1))])),
            "the event has no `measurement`"
        );
        assert_eq!(
            err(&obj(&[("measurement", "m".into())])),
            "the event has no `timestamp`"
        );
        assert!(err(&base(&[("timestamp", Value::I64(-1))])).contains("non-negative"));
        assert!(
            err(&base(&[("tags", obj(&[("t", Value::I64(1))]))]))
                .contains("tag values are strings")
        );
        assert!(
            err(&base(&[("fields", obj(&[("f", Value::Null)]))])).contains("fields are integers")
        );
        assert!(
            err(&base(&[("fields", obj(&[("f", Value::U64(u64::MAX))]))])).contains("within i64")
        );
        assert!(err(&base(&[("measurement", "x".repeat(70_000).into())])).contains("65535"));
        assert!(err(&base(&[("fields", Value::I64(1))])).contains("`fields` is an object"));
    }
}
