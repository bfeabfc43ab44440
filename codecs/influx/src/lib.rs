//! The `influx` codec: one [InfluxDB line protocol] line per frame, both ways.
//!
//! # Event shape
//!
//! `weather,location=us-midwest temperature=82,count=3i,ok=t,note="too warm" 1465839830100400200`
//! decodes to (as in Tremor's influx codec)
//! ```json
//! {
//!   "measurement": "weather",
//!   "tags": {"location": "us-midwest"},
//!   "fields": {"temperature": 82.0, "count": 3, "ok": true, "note": "too warm"},
//!   "timestamp": 1465839830100400200
//! }
//! ```
//! - `measurement` (string): not empty.
//! - `tags` (object of strings): always there, `{}` when the line has none. Keys and values are
//!   not empty.
//! - `fields` (object, at least one field), by the value's syntax:
//!   - a float (`82`, `-1.5`, `1e3`, no suffix) → `F64`;
//!   - an integer with `i` (`82i`, `-3i`, within `i64`) → `I64`;
//!   - an unsigned integer with `u` (`82u`, within `u64`) → `U64`, **even when small**, so that
//!     it is written back with its `u` (`Value` compares `U64(82)` equal to `I64(82)`);
//!   - `t`, `T`, `true`, `True`, `TRUE` → `true`; `f`, `F`, `false`, `False`, `FALSE` → `false`;
//!   - a double-quoted string → `String`.
//! - `timestamp` (`I64`, nanoseconds, may be negative): only when the line has one. There is no
//!   ingest time to fill in, so a line without a timestamp gives an event without the key.
//!
//! Tags and fields keep the order of the line; a key repeated in a line is kept twice (lookups
//! find the first), as the line has it.
//!
//! # Escaping
//!
//! | where | escaped with `\` when decoding | escaped when encoding |
//! | --- | --- | --- |
//! | measurement | `,` and space | `,`, space and `\` |
//! | tag keys, tag values, field keys | `,`, `=` and space | `,`, `=`, space and `\` |
//! | string field values (in `"`) | `"` | `"` and `\` |
//!
//! Everywhere, `\\` is one backslash, and a backslash before any other character is kept as
//! it is (`"too hot\cold"` decodes to `too hot\cold`, as InfluxDB reads it); encoding doubles
//! every backslash, so what is written reads back the same.
//!
//! # Comments and blank lines
//!
//! A comment (a line whose first character other than whitespace is `#`) and an empty or
//! whitespace-only line are **skipped**, as the line protocol says: such a frame gives no
//! event and no error (the codec reports it to the engine as skipped, `FrameError::skipped`,
//! so the events after it keep their own frames' metadata). A frame holding a line break is an
//! error even when it starts with `#`, so no line after a comment is dropped unseen.
//!
//! # Errors
//!
//! Every problem is a per-frame error naming the byte where it is: not UTF-8, no fields, an empty measurement, tag
//! key, tag value or field key, a tag without `=` or with an unescaped `=` in its value, a bad
//! field value (`1.2.3`, `nan`, `inf`, `12x`, an integer beyond its range), an unterminated
//! string, something after a string other than `,` or a space, a bad timestamp, or a line break
//! inside the line. ASCII whitespace around the line (such as the `\r` of CRLF files) is
//! dropped first.
//!
//! Encoding writes a decoded event back to a line that decodes to an equal event (floats are
//! written the shortest way that reads back exactly, with a `.0` when whole). It fails for an
//! event without `measurement` or `fields`, with an empty `fields`, with a tag value that is not
//! a string or a field value that is null, an array, an object, bytes or a non-finite float,
//! with a `timestamp` that is not an `i64`, with an empty name, with a measurement that starts
//! with `#` or other whitespace than a space, or with a line break anywhere. Other keys of the
//! event are ignored.
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! Read line protocol from a file and write it back out:
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
//! plugin = "file"
//! codec = { name = "influx" }
//! postprocessors = ["separate"]
//! config = { path = "out.influx", mode = "write" }
//! ```
//!
//! [InfluxDB line protocol]: https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/

use temblor_shim::{ByteSink, Codec, Object, PluginError, RString, RVec, Value, keyless};

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The influx codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Influx;

/// Decodes one frame of line protocol: `None` for a comment or a blank line, which the
/// protocol skips.
///
/// # Errors
/// What is wrong with the line, and at which byte (see the crate docs).
pub fn decode_frame(frame: &[u8]) -> Result<Option<Value>, String> {
    let line = std::str::from_utf8(frame)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let start = line.len() - line.trim_ascii_start().len();
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    // Before the comment check: a frame of several lines is refused even when it starts with
    // a comment, rather than dropping the lines after it unseen.
    if let Some(at) = line.find(['\r', '\n']) {
        return Err(format!(
            "a line break inside the line at byte {}",
            start + at
        ));
    }
    if line.starts_with('#') {
        return Ok(None);
    }
    Parser {
        text: line,
        at: 0,
        offset: start,
    }
    .line()
    .map(Some)
}

/// Decodes one line of line protocol that must be a point: [`decode_frame`] with a comment
/// (`comment line`) or a blank line (`empty line`) an error, as one line cannot decode to
/// nothing here (the codec's batch decode skips them instead).
///
/// # Errors
/// What is wrong with the line, and at which byte (see the crate docs).
pub fn decode_line(frame: &[u8]) -> Result<Value, String> {
    match decode_frame(frame)? {
        Some(event) => Ok(event),
        None if frame.trim_ascii().is_empty() => Err("empty line".to_owned()),
        None => Err("comment line".to_owned()),
    }
}

/// Which characters end a name, and which a backslash escapes.
#[derive(Clone, Copy)]
enum Part {
    Measurement,
    TagKey,
    TagValue,
    FieldKey,
}

impl Part {
    fn what(self) -> &'static str {
        match self {
            Part::Measurement => "measurement",
            Part::TagKey => "tag key",
            Part::TagValue => "tag value",
            Part::FieldKey => "field key",
        }
    }

    /// Whether an unescaped `c` ends this part.
    fn ends_at(self, c: u8) -> bool {
        match self {
            Part::Measurement => c == b',' || c == b' ',
            Part::TagKey | Part::TagValue | Part::FieldKey => c == b',' || c == b' ' || c == b'=',
        }
    }

    /// Whether `\c` stands for `c`.
    fn escapes(self, c: u8) -> bool {
        c == b'\\' || self.ends_at(c)
    }
}

/// A cursor over one trimmed line.
struct Parser<'a> {
    text: &'a str,
    at: usize,
    /// Where `text` starts in the frame, for messages.
    offset: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn error(&self, at: usize, message: impl std::fmt::Display) -> String {
        format!("{message} at byte {}", self.offset + at)
    }

    fn line(mut self) -> Result<Value, String> {
        let measurement = self.name(Part::Measurement)?;
        let mut tags = Object::new();
        if self.peek() == Some(b',') {
            self.at += 1;
            loop {
                let key = self.name(Part::TagKey)?;
                if self.peek() != Some(b'=') {
                    return Err(self.error(self.at, format_args!("tag {key:?} has no '='")));
                }
                self.at += 1;
                let value = self.name(Part::TagValue)?;
                if self.peek() == Some(b'=') {
                    return Err(self.error(self.at, "unescaped '=' in a tag value"));
                }
                tags.push(key, Value::String(value));
                match self.peek() {
                    Some(b',') => self.at += 1,
                    _ => break,
                }
            }
        }
        match self.peek() {
            Some(b' ') => self.at += 1,
            _ => return Err(self.error(self.at, "no fields (a space and key=value expected)")),
        }

        let mut fields = Object::new();
        let more = loop {
            let key = self.name(Part::FieldKey)?;
            if self.peek() != Some(b'=') {
                return Err(self.error(self.at, format_args!("field {key:?} has no '='")));
            }
            self.at += 1;
            let value = self.field_value()?;
            fields.push(key, value);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b' ') => {
                    self.at += 1;
                    break true;
                }
                None => break false,
                Some(_) => {
                    return Err(self.error(self.at, "',' or a space expected after a field"));
                }
            }
        };

        let mut event = Object::with_capacity(4);
        event.push("measurement".into(), Value::String(measurement));
        event.push("tags".into(), Value::Object(tags));
        event.push("fields".into(), Value::Object(fields));
        if more {
            let text = &self.text[self.at..];
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.error(self.at, format_args!("bad timestamp {text:?}")));
            }
            let timestamp: i64 = text.parse().map_err(|_| {
                self.error(
                    self.at,
                    format_args!("timestamp {text} beyond the i64 range"),
                )
            })?;
            event.push("timestamp".into(), Value::I64(timestamp));
        }
        Ok(Value::Object(event))
    }

    /// Reads an unquoted name up to (not including) the character that ends it.
    fn name(&mut self, part: Part) -> Result<RString, String> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut out: Option<String> = None;
        let mut plain_from = start;
        while let Some(&c) = bytes.get(self.at) {
            if part.ends_at(c) {
                break;
            }
            if c == b'\\'
                && let Some(&next) = bytes.get(self.at + 1)
                && part.escapes(next)
            {
                let s = out.get_or_insert_with(String::new);
                s.push_str(&self.text[plain_from..self.at]);
                s.push(char::from(next));
                self.at += 2;
                plain_from = self.at;
                continue;
            }
            self.at += 1;
        }
        let name = match out {
            Some(mut s) => {
                s.push_str(&self.text[plain_from..self.at]);
                RString::from(s)
            }
            None => RString::from(&self.text[start..self.at]),
        };
        if name.is_empty() {
            return Err(self.error(start, format_args!("empty {}", part.what())));
        }
        Ok(name)
    }

    fn field_value(&mut self) -> Result<Value, String> {
        let start = self.at;
        if self.peek() == Some(b'"') {
            return self.string();
        }
        let bytes = self.text.as_bytes();
        while let Some(&c) = bytes.get(self.at) {
            if c == b',' || c == b' ' {
                break;
            }
            self.at += 1;
        }
        let text = &self.text[start..self.at];
        scalar(text).ok_or_else(|| self.error(start, format_args!("bad field value {text:?}")))
    }

    /// A double-quoted string, the cursor on its opening quote.
    fn string(&mut self) -> Result<Value, String> {
        let start = self.at;
        let bytes = self.text.as_bytes();
        self.at += 1;
        let mut out = String::new();
        let mut plain_from = self.at;
        loop {
            match bytes.get(self.at) {
                None => return Err(self.error(start, "unterminated string")),
                Some(b'"') => break,
                Some(b'\\') if matches!(bytes.get(self.at + 1), Some(b'"' | b'\\')) => {
                    out.push_str(&self.text[plain_from..self.at]);
                    out.push(char::from(bytes[self.at + 1]));
                    self.at += 2;
                    plain_from = self.at;
                }
                Some(_) => self.at += 1,
            }
        }
        out.push_str(&self.text[plain_from..self.at]);
        self.at += 1;
        match self.peek() {
            None | Some(b',' | b' ') => Ok(Value::from(out)),
            Some(_) => Err(self.error(self.at, "',' or a space expected after a string")),
        }
    }
}

/// An unquoted field value: a float, an `i` or `u` integer, or a boolean.
fn scalar(text: &str) -> Option<Value> {
    match text {
        "t" | "T" | "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    if let Some(int) = text.strip_suffix('i') {
        let digits = int.strip_prefix(['-', '+']).unwrap_or(int);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return int.parse().ok().map(Value::I64);
    }
    if let Some(digits) = text.strip_suffix('u') {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return digits.parse().ok().map(Value::U64);
    }
    let plain = text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !plain {
        return None;
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::F64)
}

/// Encodes one event as a line (no line break) into `out`.
///
/// # Errors
/// Why the event cannot be written as line protocol (see the crate docs).
pub fn encode_event<B: ByteSink>(event: &Value, out: &mut B) -> Result<(), String> {
    let object = event
        .as_object()
        .ok_or_else(|| format!("an influx event is an object, not {}", event.type_name()))?;
    let measurement = match object.get("measurement") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                "`measurement` is a string, not {}",
                other.type_name()
            ));
        }
        None => return Err("the event has no `measurement`".to_owned()),
    };
    if measurement.starts_with('#') {
        return Err(format!(
            "the measurement {measurement:?} starts with '#', which makes the line a comment"
        ));
    }
    if measurement.starts_with(|c: char| c.is_ascii_whitespace() && c != ' ') {
        return Err(format!(
            "the measurement {measurement:?} starts with whitespace that cannot be escaped"
        ));
    }
    write_name(out, Part::Measurement, measurement)?;

    match object.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(tags)) => {
            for (key, value) in tags.iter() {
                let Value::String(value) = value else {
                    return Err(format!(
                        "tag {key:?} is {}: tag values are strings",
                        value.type_name()
                    ));
                };
                out.put_byte(b',');
                write_name(out, Part::TagKey, key)?;
                out.put_byte(b'=');
                write_name(out, Part::TagValue, value)?;
            }
        }
        Some(other) => return Err(format!("`tags` is an object, not {}", other.type_name())),
    }

    let fields = match object.get("fields") {
        Some(Value::Object(fields)) if !fields.is_empty() => fields,
        Some(Value::Object(_)) => return Err("`fields` is empty".to_owned()),
        Some(other) => return Err(format!("`fields` is an object, not {}", other.type_name())),
        None => return Err("the event has no `fields`".to_owned()),
    };
    for (i, (key, value)) in fields.iter().enumerate() {
        out.put_byte(if i == 0 { b' ' } else { b',' });
        write_name(out, Part::FieldKey, key)?;
        out.put_byte(b'=');
        match value {
            Value::F64(f) if f.is_finite() => value.write_json(out),
            Value::I64(_) => {
                value.write_json(out);
                out.put_byte(b'i');
            }
            Value::U64(_) => {
                value.write_json(out);
                out.put_byte(b'u');
            }
            Value::Bool(true) => out.put(b"true"),
            Value::Bool(false) => out.put(b"false"),
            Value::String(s) => write_string(out, key, s)?,
            Value::F64(f) => {
                return Err(format!(
                    "field {key:?} is {f}, which line protocol cannot hold"
                ));
            }
            other => {
                return Err(format!(
                    "field {key:?} is {}: fields are numbers, booleans or strings",
                    other.type_name()
                ));
            }
        }
    }

    match object.get("timestamp") {
        None | Some(Value::Null) => {}
        Some(Value::I64(t)) => {
            out.put_byte(b' ');
            Value::I64(*t).write_json(out);
        }
        Some(other) => {
            return Err(format!(
                "`timestamp` is an integer in the i64 range (nanoseconds), not {other}"
            ));
        }
    }
    Ok(())
}

/// Writes a name with its escapes.
fn write_name<B: ByteSink>(out: &mut B, part: Part, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("empty {}", part.what()));
    }
    let bytes = name.as_bytes();
    let mut plain_from = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'\n' || c == b'\r' {
            return Err(format!("the {} {name:?} has a line break", part.what()));
        }
        if part.escapes(c) {
            out.put(&bytes[plain_from..i]);
            out.put_byte(b'\\');
            plain_from = i;
        }
    }
    out.put(&bytes[plain_from..]);
    Ok(())
}

/// Writes a string field value in double quotes, with its escapes.
fn write_string<B: ByteSink>(out: &mut B, key: &str, s: &str) -> Result<(), String> {
    out.put_byte(b'"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'\n' | b'\r' => return Err(format!("field {key:?} has a line break")),
            b'"' | b'\\' => {
                out.put(&bytes[plain_from..i]);
                out.put_byte(b'\\');
                plain_from = i;
            }
            _ => {}
        }
    }
    out.put(&bytes[plain_from..]);
    out.put_byte(b'"');
    Ok(())
}

impl Codec for Influx {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        decode_line(frame)
    }

    /// One event per point; a comment or blank frame is skipped
    /// ([`temblor_shim::FrameError::skipped`]: no event and no error), a bad one is a per-frame
    /// error.
    fn decode_or_skip(&mut self, frame: &[u8]) -> Result<Option<Value>, String> {
        decode_frame(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        encode_event(event, out).map_err(PluginError::data)
    }
}

temblor_shim::export_plugin! { name: "influx", kind: Codec, codec: keyless::<Config, Influx> }

#[cfg(test)]
mod tests {
    use temblor_harness::codec::{decode_batch, encode_batch};
    use temblor_shim::FrameError;

    use super::*;

    temblor_harness::codec_unit_helpers!(Influx);

    fn point(
        measurement: &str,
        tags: &[(&str, &str)],
        fields: &[(&str, Value)],
        ts: Option<i64>,
    ) -> Value {
        let tags: Vec<(&str, Value)> = tags.iter().map(|(k, v)| (*k, Value::from(*v))).collect();
        let mut pairs = vec![
            ("measurement", Value::from(measurement)),
            ("tags", obj(&tags)),
            ("fields", obj(fields)),
        ];
        if let Some(ts) = ts {
            pairs.push(("timestamp", Value::I64(ts)));
        }
        obj(&pairs)
    }

    #[test]
    fn decodes_the_tremor_example() {
        exact(
            "weather,location=us-midwest temperature=82.0 1465839830100400200",
            &point(
                "weather",
                &[("location", "us-midwest")],
                &[("temperature", Value::F64(82.0))],
                Some(1_465_839_830_100_400_200),
            ),
        );
        // Without a fraction a float is still a float, written back with `.0`.
        let v = ok("weather,location=us-midwest temperature=82 1465839830100400200");
        assert!(
            matches!(v.get("fields").and_then(|f| f.get("temperature")), Some(Value::F64(f)) if *f == 82.0)
        );
        assert_eq!(
            enc(&v),
            "weather,location=us-midwest temperature=82.0 1465839830100400200"
        );
    }

    #[test]
    fn field_types() {
        let v = ok("m f=-1.5e3,i=-3i,u=18446744073709551615u,s=\"x\",b=t,small=7u,pi=+2i");
        let fields = v.get("fields").unwrap();
        assert!(matches!(fields.get("f"), Some(Value::F64(f)) if *f == -1500.0));
        assert!(matches!(fields.get("i"), Some(Value::I64(-3))));
        assert!(matches!(fields.get("u"), Some(Value::U64(u64::MAX))));
        assert!(matches!(fields.get("s"), Some(Value::String(s)) if s == "x"));
        assert!(matches!(fields.get("b"), Some(Value::Bool(true))));
        assert!(
            matches!(fields.get("small"), Some(Value::U64(7))),
            "u stays unsigned"
        );
        assert!(matches!(fields.get("pi"), Some(Value::I64(2))));
        assert_eq!(
            enc(&v),
            "m f=-1500.0,i=-3i,u=18446744073709551615u,s=\"x\",b=true,small=7u,pi=2i"
        );
        assert!(matches!(
            ok("m i=-9223372036854775808i")
                .get("fields")
                .and_then(|f| f.get("i")),
            Some(Value::I64(i64::MIN))
        ));
        for (word, want) in [
            ("t", true),
            ("T", true),
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("f", false),
            ("F", false),
            ("false", false),
            ("False", false),
            ("FALSE", false),
        ] {
            let v = ok(&format!("m b={word}"));
            assert_eq!(
                v.get("fields").and_then(|f| f.get("b")),
                Some(&Value::Bool(want)),
                "{word}"
            );
        }
        for float in ["1", "-1", "1.", ".5", "1e-7", "1E+7", "+3.25", "0.000"] {
            let v = ok(&format!("m x={float}"));
            let Some(Value::F64(f)) = v.get("fields").and_then(|f| f.get("x")) else {
                panic!("{float}: {v}");
            };
            assert_eq!(*f, float.parse::<f64>().unwrap());
            assert_eq!(ok(&enc(&v)), v, "{float} round-trips");
        }
    }

    #[test]
    fn escapes_in_names() {
        exact(
            r"wea\,ther\ now,loc\,a\=t\ ion=us\,mid\=west\ x temp\=rat\,u\ re=1.0",
            &point(
                "wea,ther now",
                &[("loc,a=t ion", "us,mid=west x")],
                &[("temp=rat,u re", Value::F64(1.0))],
                None,
            ),
        );
        // `=` needs no escape in a measurement, and `\=` there is two characters.
        assert_eq!(ok("a=b f=1").get("measurement"), Some(&Value::from("a=b")));
        assert_eq!(
            ok(r"a\=b f=1").get("measurement"),
            Some(&Value::from(r"a\=b"))
        );
        assert_eq!(enc(&ok(r"a\=b f=1")), r"a\\=b f=1.0");
        // A backslash before anything else is kept; `\\` is one backslash.
        assert_eq!(
            ok(r"a\b,t=x\y f=1").get("measurement"),
            Some(&Value::from(r"a\b"))
        );
        assert_eq!(ok(r"a\\ f=1").get("measurement"), Some(&Value::from(r"a\")));
        assert_eq!(
            ok(r"a,t=x\y f=1").get("tags").and_then(|t| t.get("t")),
            Some(&Value::from(r"x\y"))
        );
        // Encoding doubles backslashes, so a name ending in one stays apart from what follows.
        let v = point(
            r"m\",
            &[(r"k\", r"v\")],
            &[(r"f\", Value::I64(1))],
            Some(-5),
        );
        let line = enc(&v);
        assert_eq!(line, r"m\\,k\\=v\\ f\\=1i -5");
        assert_eq!(ok(&line), v);
        // Non-ASCII is fine anywhere.
        exact(
            "météo,lieu=Zürich temp=1.5,note=\"été 😀\"",
            &point(
                "météo",
                &[("lieu", "Zürich")],
                &[("temp", Value::F64(1.5)), ("note", "été 😀".into())],
                None,
            ),
        );
    }

    #[test]
    fn escapes_in_strings() {
        let s = |line: &str| {
            ok(line)
                .get("fields")
                .and_then(|f| f.get("s"))
                .cloned()
                .unwrap()
        };
        assert_eq!(s(r#"m s="too\"hot\"""#), Value::from(r#"too"hot""#));
        assert_eq!(s(r#"m s="too hot/cold""#), Value::from("too hot/cold"));
        assert_eq!(s(r#"m s="too hot\cold""#), Value::from(r"too hot\cold"));
        assert_eq!(s(r#"m s="too hot\\cold""#), Value::from(r"too hot\cold"));
        assert_eq!(s(r#"m s="too hot\\\cold""#), Value::from(r"too hot\\cold"));
        assert_eq!(s(r#"m s="too hot\\\\cold""#), Value::from(r"too hot\\cold"));
        assert_eq!(
            s(r#"m s="too hot\\\\\cold""#),
            Value::from(r"too hot\\\cold")
        );
        assert_eq!(s(r#"m s="a,b c=d""#), Value::from("a,b c=d"));
        assert_eq!(s(r#"m s="""#), Value::from(""));
        assert_eq!(s(r#"m s="\\""#), Value::from("\\"));
        // Encoding escapes every quote and backslash.
        let v = point("m", &[], &[("s", Value::from(r#"a\b"c\"#))], None);
        assert_eq!(enc(&v), r#"m s="a\\b\"c\\""#);
        assert_eq!(ok(&enc(&v)), v);
    }

    #[test]
    fn tags_fields_and_timestamps() {
        exact(
            "cpu,host=a,region=eu usage=0.5,idle=99i",
            &point(
                "cpu",
                &[("host", "a"), ("region", "eu")],
                &[("usage", Value::F64(0.5)), ("idle", Value::I64(99))],
                None,
            ),
        );
        exact(
            "cpu v=1i -1",
            &point("cpu", &[], &[("v", Value::I64(1))], Some(-1)),
        );
        exact(
            "cpu v=1i 0",
            &point("cpu", &[], &[("v", Value::I64(1))], Some(0)),
        );
        // A repeated key is kept twice, in order.
        let v = ok("m,t=1,t=2 f=1i,f=2i");
        assert_eq!(
            v.get("tags").and_then(Value::as_object).map(Object::len),
            Some(2)
        );
        assert_eq!(
            v.get("fields").and_then(|f| f.get("f")),
            Some(&Value::I64(1))
        );
        assert_eq!(enc(&v), "m,t=1,t=2 f=1i,f=2i");
        // Surrounding whitespace goes; CRLF files decode.
        assert_eq!(ok("  m f=1i 5\r"), ok("m f=1i 5"));
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        for (line, reason) in [
            (&b""[..], "empty line"),
            (b"   \t", "empty line"),
            (b"# a comment", "comment line"),
            (b"  #x f=1", "comment line"),
            (b"#a\nm f=1", "a line break inside the line at byte 2"),
            (b"m", "no fields (a space and key=value expected) at byte 1"),
            (
                b"m,t=1",
                "no fields (a space and key=value expected) at byte 5",
            ),
            (b",t=1 f=1", "empty measurement at byte 0"),
            (b"m, f=1", "empty tag key at byte 2"),
            (b"m,t f=1", "tag \"t\" has no '=' at byte 3"),
            (b"m,t= f=1", "empty tag value at byte 4"),
            (b"m,t=a=b f=1", "unescaped '=' in a tag value at byte 5"),
            (b"m,t=a, f=1", "empty tag key at byte 6"),
            (b"m f", "field \"f\" has no '=' at byte 3"),
            (b"m =1", "empty field key at byte 2"),
            (b"m f=", "bad field value \"\" at byte 4"),
            (b"m f=1,", "empty field key at byte 6"),
            (b"m f=1, g=2", "empty field key at byte 6"),
            (b"m f=1.2.3", "bad field value \"1.2.3\" at byte 4"),
            (b"m f=nan", "bad field value \"nan\" at byte 4"),
            (b"m f=inf", "bad field value \"inf\" at byte 4"),
            (b"m f=1e999", "bad field value \"1e999\" at byte 4"),
            (b"m f=12x", "bad field value \"12x\" at byte 4"),
            (b"m f=i", "bad field value \"i\" at byte 4"),
            (b"m f=-u", "bad field value \"-u\" at byte 4"),
            (b"m f=-1u", "bad field value \"-1u\" at byte 4"),
            (
                b"m f=9223372036854775808i",
                "bad field value \"9223372036854775808i\" at byte 4",
            ),
            (
                b"m f=18446744073709551616u",
                "bad field value \"18446744073709551616u\" at byte 4",
            ),
            (b"m f=yes", "bad field value \"yes\" at byte 4"),
            (b"m f=\"abc", "unterminated string at byte 4"),
            (b"m f=\"abc\\\"", "unterminated string at byte 4"),
            (
                b"m f=\"a\"b",
                "',' or a space expected after a string at byte 7",
            ),
            (b"m f=1 x", "bad timestamp \"x\" at byte 6"),
            (b"m f=1 1 2", "bad timestamp \"1 2\" at byte 6"),
            (b"m f=1 -", "bad timestamp \"-\" at byte 6"),
            (b"m f=1 1.5", "bad timestamp \"1.5\" at byte 6"),
            (b"m f=1  5", "bad timestamp \" 5\" at byte 6"),
            (
                b"m f=1 99999999999999999999",
                "timestamp 99999999999999999999 beyond the i64 range at byte 6",
            ),
            (b"m f=\"a\nb\"", "a line break inside the line at byte 6"),
            (b" m f=\"a\rb\"", "a line break inside the line at byte 7"),
            (b"m f=\"\xff\"", "invalid UTF-8 at byte 5"),
        ] {
            assert_eq!(err(line), reason, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn encoding_refuses_what_a_line_cannot_carry() {
        let fields = obj(&[("f", Value::I64(1))]);
        let with = |pairs: &[(&str, Value)]| {
            let mut e = obj(&[("measurement", "m".into()), ("fields", fields.clone())]);
            for (k, v) in pairs {
                e.as_object_mut().unwrap().insert(*k, v.clone());
            }
            e
        };
        // Tags and timestamp may be left out or null; other keys are ignored.
        assert_eq!(enc(&with(&[])), "m f=1i");
        assert_eq!(
            enc(&with(&[
                ("tags", Value::Null),
                ("timestamp", Value::Null),
                ("x", 1.into())
            ])),
            "m f=1i"
        );
        assert_eq!(
            enc_err(&Value::Null),
            "an influx event is an object, not null"
        );
        assert_eq!(
            enc_err(&obj(&[("fields", fields.clone())])),
            "the event has no `measurement`"
        );
        assert_eq!(
            enc_err(&with(&[("measurement", 1.into())])),
            "`measurement` is a string, not integer"
        );
        assert_eq!(
            enc_err(&with(&[("measurement", "".into())])),
            "empty measurement"
        );
        assert!(
            enc_err(&with(&[("measurement", "#m".into())])).contains("makes the line a comment")
        );
        assert!(enc_err(&with(&[("measurement", "\tm".into())])).contains("cannot be escaped"));
        assert!(enc_err(&with(&[("measurement", "a\nb".into())])).contains("line break"));
        assert_eq!(
            enc_err(&obj(&[("measurement", "m".into())])),
            "the event has no `fields`"
        );
        assert_eq!(enc_err(&with(&[("fields", obj(&[]))])), "`fields` is empty");
        assert_eq!(
            enc_err(&with(&[("fields", 1.into())])),
            "`fields` is an object, not integer"
        );
        assert_eq!(
            enc_err(&with(&[("tags", 1.into())])),
            "`tags` is an object, not integer"
        );
        assert_eq!(
            enc_err(&with(&[("tags", obj(&[("t", 1.into())]))])),
            "tag \"t\" is integer: tag values are strings"
        );
        assert_eq!(
            enc_err(&with(&[("tags", obj(&[("t", "".into())]))])),
            "empty tag value"
        );
        assert_eq!(
            enc_err(&with(&[("tags", obj(&[("", "v".into())]))])),
            "empty tag key"
        );
        assert_eq!(
            enc_err(&with(&[("fields", obj(&[("f", Value::Null)]))])),
            "field \"f\" is null: fields are numbers, booleans or strings"
        );
        assert!(
            enc_err(&with(&[("fields", obj(&[("f", Value::F64(f64::NAN))]))]))
                .contains("cannot hold")
        );
        assert!(enc_err(&with(&[("fields", obj(&[("f", "a\nb".into())]))])).contains("line break"));
        assert!(
            enc_err(&with(&[("timestamp", "now".into())])).contains("`timestamp` is an integer")
        );
        assert!(
            enc_err(&with(&[("timestamp", Value::U64(u64::MAX))]))
                .contains("`timestamp` is an integer")
        );
    }

    /// The line protocol reference (InfluxDB v2, "Comments"): "Line protocol interprets `#`
    /// at the beginning of a line as a comment and ignores all subsequent characters until the
    /// next newline `\n`", with this example.
    #[test]
    fn comments_and_blank_lines_decode_to_nothing() {
        let spec = "# Line protocol\nmyMeasurement fieldKey=\"string value\" 1556813561098000000";
        let frames: Vec<&[u8]> = spec.split('\n').map(str::as_bytes).collect();
        let (out, errors) = decode_batch(&mut Influx, &frames);
        assert_eq!(
            out,
            [point(
                "myMeasurement",
                &[],
                &[("fieldKey", Value::from("string value"))],
                Some(1_556_813_561_098_000_000)
            )]
        );
        assert_eq!(errors.as_slice(), [FrameError::skipped(0)]);
        for nothing in [
            &b""[..],
            b" ",
            b"\t \r",
            b"#",
            b"# comment",
            b"  # indented",
            b"#m f=1",
        ] {
            assert_eq!(decode_frame(nothing), Ok(None), "{nothing:?}");
        }
        // `#` elsewhere than first is data.
        assert_eq!(
            ok("m,t=a#b f=1").get("tags").and_then(|t| t.get("t")),
            Some(&Value::from("a#b"))
        );
    }

    #[test]
    fn batch_keeps_going_after_a_bad_frame() {
        let frames: [&[u8]; 5] = [b"a f=1i", b"# comment", b"", b"m f=", b"b,t=x g=\"s\" 1"];
        let (out, errors) = decode_batch(&mut Influx, &frames);
        assert_eq!(out.len(), 2);
        let reasons: Vec<(u32, &str, bool)> = errors
            .iter()
            .map(|e: &FrameError| (e.index, e.reason.as_str(), e.is_skipped()))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, "", true),
                (2, "", true),
                (3, "bad field value \"\" at byte 4", false)
            ]
        );
        let written = encode_batch(&mut Influx, &out);
        assert_eq!(written, [&b"a f=1i"[..], b"b,t=x g=\"s\" 1"]);
    }

    #[test]
    fn config_takes_no_keys() {
        temblor_harness::codec::refuses_config_key(plugin_module(), "precision", Value::from("ns"));
    }
}
