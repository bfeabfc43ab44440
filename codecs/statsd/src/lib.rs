//! The `statsd` codec: one [statsd] metric line per frame, with [DogStatsD] tags.
//!
//! A line is `<metric>:<value>|<type>` followed by optional sections, in any order, each at
//! most once: `|@<sample rate>` and `|#<tag>,<tag>,...`. For example
//! `api.requests:1|c|@0.5|#env:prod,canary` decodes to
//! ```json
//! {"metric": "api.requests", "type": "c", "value": 1, "sample_rate": 0.5,
//!  "tags": ["env:prod", "canary"]}
//! ```
//!
//! # Event shape
//!
//! - `metric` (string): everything before the first `:`; not empty, no `|`.
//! - `type` (string): `c` (counter), `g` (gauge), `ms` (timer), `h` (histogram), `s` (set) or
//!   `d` (DogStatsD distribution).
//! - `value`: an integer (`I64`, or `U64` above `i64::MAX`) when the text is digits, a float
//!   (`F64`) when it has a `.` or an exponent (`42.23`, `1e3`). For sets only, a value that is
//!   not a number is kept as a string (`users:alice|s` gives `"value": "alice"`).
//! - `action` (string, gauges only, and only when the value is signed): a gauge line with a sign
//!   is a change, not a new value. `gaugor:+4|g` gives `"value": 4, "action": "add"` and
//!   `gaugor:-10|g` gives `"value": 10, "action": "sub"`: the value is the size of the change,
//!   never negative (as in Tremor's statsd codec). An unsigned gauge has no `action`. For the
//!   other types a `-` makes the value negative (`c:-5|c` gives `-5`) and a `+` is dropped.
//! - `sample_rate` (float): only when the line has `|@`.
//! - `tags` (array of strings): only when the line has `|#`, split at `,`, each tag as written
//!   (`key:value` or a bare `key`); `|#` alone gives `[]`.
//!
//! Decoding errors (per frame, with the reason): not UTF-8, no `:` or `|`, an empty metric or a
//! metric with `|`, an unknown type, a value that is not a number (except for sets), an integer
//! beyond 64 bits, a non-finite float (`nan`, `inf`), an unknown or repeated section, a bad
//! sample rate, or a `\r` or `\n` inside the line (one `\r` at the very end, from CRLF files, is
//! dropped).
//!
//! Encoding writes the same line back (`metric:value|type`, then `|@rate`, then `|#tags`); a
//! decoded event encodes to a line that decodes to an equal event. It fails when `metric`,
//! `type` or `value` is missing or of the wrong type, when a string has a character the line
//! cannot carry (`:` or `|` in the metric, `,` or `|` in a tag, `|` in a set value, `\r` or `\n`
//! anywhere), when `action` is set on another type than `g` or with a negative value, when a
//! gauge without `action` is negative (statsd would read the `-` as a decrement), or when a
//! float is not finite.
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! Read statsd lines from a file and write them back out:
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "statsd"
//! preprocessors = ["separate"]
//! config = { path = "in.statsd", mode = "read" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = { name = "statsd" }
//! postprocessors = ["separate"]
//! config = { path = "out.statsd", mode = "write" }
//! ```
//!
//! [statsd]: https://github.com/statsd/statsd/blob/master/docs/metric_types.md
//! [DogStatsD]: https://docs.datadoghq.com/developers/dogstatsd/datagram_shell/

use temblor_shim::{ByteSink, Codec, Object, PluginError, RVec, Value, keyless};

/// The metric types a line may have.
pub const TYPES: [&str; 6] = ["c", "g", "ms", "h", "s", "d"];

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The statsd codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Statsd;

/// A sign written before the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    None,
    Plus,
    Minus,
}

/// Decodes one statsd line.
///
/// # Errors
/// Why the line is not a statsd metric (see the crate docs).
pub fn decode_line(frame: &[u8]) -> Result<Value, String> {
    let line = std::str::from_utf8(frame)
        .map_err(|e| format!("invalid UTF-8 at byte offset {}", e.valid_up_to()))?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(at) = line.find(['\r', '\n']) {
        return Err(format!("a line break inside the line at byte {at}"));
    }
    let (metric, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("no ':' after the metric name in {line:?}"))?;
    if metric.is_empty() {
        return Err("empty metric name".to_owned());
    }
    if metric.contains('|') {
        return Err(format!("'|' in the metric name {metric:?}"));
    }
    let (value_text, rest) = rest
        .split_once('|')
        .ok_or_else(|| format!("no '|' after the value in {line:?}"))?;
    let mut sections = rest.split('|');
    // `split` always yields at least one piece.
    let kind = sections.next().unwrap_or_default();
    if !TYPES.contains(&kind) {
        return Err(format!(
            "unknown metric type {kind:?} (expected one of c, g, ms, h, s, d)"
        ));
    }

    let mut event = Object::with_capacity(6);
    event.push("metric".into(), Value::from(metric));
    event.push("type".into(), Value::from(kind));
    let (value, action) = parse_value(value_text, kind)?;
    event.push("value".into(), value);
    if let Some(action) = action {
        event.push("action".into(), Value::from(action));
    }

    let mut sample_rate = None;
    let mut tags = None;
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            if sample_rate.is_some() {
                return Err("more than one sample rate ('|@')".to_owned());
            }
            sample_rate =
                Some(parse_float(rate).ok_or_else(|| format!("bad sample rate {rate:?}"))?);
        } else if let Some(list) = section.strip_prefix('#') {
            if tags.is_some() {
                return Err("more than one tag list ('|#')".to_owned());
            }
            let list: RVec<Value> = if list.is_empty() {
                RVec::new()
            } else {
                list.split(',').map(Value::from).collect()
            };
            tags = Some(list);
        } else {
            return Err(format!(
                "unknown section '|{section}' (expected '|@<sample rate>' or '|#<tags>')"
            ));
        }
    }
    if let Some(rate) = sample_rate {
        event.push("sample_rate".into(), Value::F64(rate));
    }
    if let Some(tags) = tags {
        event.push("tags".into(), Value::Array(tags));
    }
    Ok(Value::Object(event))
}

/// The value and, for a signed gauge, its action.
fn parse_value(text: &str, kind: &str) -> Result<(Value, Option<&'static str>), String> {
    let (sign, digits) = if let Some(rest) = text.strip_prefix('+') {
        (Sign::Plus, rest)
    } else if let Some(rest) = text.strip_prefix('-') {
        (Sign::Minus, rest)
    } else {
        (Sign::None, text)
    };
    let magnitude = match parse_number(digits) {
        Ok(n) => n,
        // A set counts unique values of any kind: keep the text as it is.
        Err(_) if kind == "s" && !text.is_empty() => return Ok((Value::from(text), None)),
        Err(e) => return Err(format!("bad value {text:?}: {e}")),
    };
    if kind == "g" {
        let action = match sign {
            Sign::None => None,
            Sign::Plus => Some("add"),
            Sign::Minus => Some("sub"),
        };
        return Ok((magnitude, action));
    }
    let value = match (sign, magnitude) {
        (Sign::Minus, Value::F64(f)) => Value::F64(-f),
        (Sign::Minus, Value::I64(i)) => Value::I64(-i),
        (Sign::Minus, Value::U64(u)) => {
            // Only -2^63 fits below `i64::MIN + 1`.
            0_i64
                .checked_sub_unsigned(u)
                .map(Value::I64)
                .ok_or_else(|| format!("bad value {text:?}: below the 64-bit range"))?
        }
        (_, magnitude) => magnitude,
    };
    Ok((value, None))
}

/// An unsigned number: digits (an integer) or a finite float with `.` or an exponent.
fn parse_number(text: &str) -> Result<Value, &'static str> {
    if text.is_empty() {
        return Err("no number");
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| "beyond the 64-bit range");
    }
    if text.starts_with(['+', '-']) {
        return Err("more than one sign");
    }
    parse_float(text).map(Value::F64).ok_or("not a number")
}

/// A finite float in decimal notation (no `inf`, `nan` or hexadecimal).
fn parse_float(text: &str) -> Option<f64> {
    let plain = !text.is_empty()
        && text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !plain {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Encodes one event as a statsd line into `out`.
///
/// # Errors
/// Why the event cannot be written as a statsd line (see the crate docs).
pub fn encode_event<B: ByteSink>(event: &Value, out: &mut B) -> Result<(), String> {
    let object = event
        .as_object()
        .ok_or_else(|| format!("a statsd event is an object, not {}", event.type_name()))?;
    let metric = string_field(object, "metric")?;
    if metric.is_empty() {
        return Err("`metric` is empty".to_owned());
    }
    check_text("metric", metric, &[':', '|'])?;
    let kind = string_field(object, "type")?;
    if !TYPES.contains(&kind) {
        return Err(format!(
            "unknown metric type {kind:?} (expected one of c, g, ms, h, s, d)"
        ));
    }
    let value = object
        .get("value")
        .ok_or_else(|| "the event has no `value`".to_owned())?;
    let action = match object.get("action") {
        None | Some(Value::Null) => None,
        Some(Value::String(a)) if kind == "g" && (a == "add" || a == "sub") => Some(a.as_str()),
        Some(Value::String(a)) if kind == "g" => {
            return Err(format!("unknown gauge action {a:?} (expected add or sub)"));
        }
        Some(_) => {
            return Err(format!(
                "`action` applies to gauges (type g) only, and is \"add\" or \"sub\"; this is type {kind}"
            ));
        }
    };

    out.put(metric.as_bytes());
    out.put_byte(b':');
    match value {
        Value::String(s) if kind == "s" => {
            if s.is_empty() {
                return Err("an empty set value".to_owned());
            }
            check_text("value", s, &['|'])?;
            out.put(s.as_bytes());
        }
        Value::I64(_) | Value::U64(_) | Value::F64(_) => {
            if let Value::F64(f) = value
                && !f.is_finite()
            {
                return Err(format!("the value {f} is not a finite number"));
            }
            let negative = match value {
                Value::I64(i) => *i < 0,
                Value::F64(f) => *f < 0.0,
                _ => false,
            };
            match action {
                Some(_) if negative => {
                    return Err(format!(
                        "a gauge with an action has a value of at least 0, not {value}"
                    ));
                }
                Some("add") => out.put_byte(b'+'),
                Some(_) => out.put_byte(b'-'),
                None if negative && kind == "g" => {
                    return Err(format!(
                        "a gauge cannot be set to the negative value {value}: statsd reads a \
                         leading '-' as a decrement (use \"action\": \"sub\")"
                    ));
                }
                None => {}
            }
            value.write_json(out);
        }
        other => {
            return Err(format!(
                "`value` is a number{}, not {}",
                if kind == "s" { " or a string" } else { "" },
                other.type_name()
            ));
        }
    }
    out.put_byte(b'|');
    out.put(kind.as_bytes());

    match object.get("sample_rate") {
        None | Some(Value::Null) => {}
        Some(rate @ (Value::I64(_) | Value::U64(_))) => {
            out.put(b"|@");
            rate.write_json(out);
        }
        Some(rate @ Value::F64(f)) if f.is_finite() => {
            out.put(b"|@");
            rate.write_json(out);
        }
        Some(other) => return Err(format!("`sample_rate` is a finite number, not {other}")),
    }

    match object.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tags)) => {
            out.put(b"|#");
            for (i, tag) in tags.iter().enumerate() {
                let tag = tag
                    .as_str()
                    .ok_or_else(|| format!("a tag is a string, not {}", tag.type_name()))?;
                check_text("tag", tag, &[',', '|'])?;
                if i > 0 {
                    out.put_byte(b',');
                }
                out.put(tag.as_bytes());
            }
        }
        Some(other) => {
            return Err(format!(
                "`tags` is an array of strings, not {}",
                other.type_name()
            ));
        }
    }
    Ok(())
}

fn string_field<'a>(object: &'a Object, key: &str) -> Result<&'a str, String> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(format!("`{key}` is a string, not {}", other.type_name())),
        None => Err(format!("the event has no `{key}`")),
    }
}

/// Refuses line breaks and the given separators in `text`.
fn check_text(what: &str, text: &str, separators: &[char]) -> Result<(), String> {
    match text.find(|c| c == '\r' || c == '\n' || separators.contains(&c)) {
        Some(at) => Err(format!(
            "the {what} {text:?} has {:?} at byte {at}, which a statsd line cannot carry there",
            text[at..].chars().next().unwrap_or_default()
        )),
        None => Ok(()),
    }
}

impl Codec for Statsd {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        decode_line(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        encode_event(event, out).map_err(PluginError::data)
    }
}

temblor_shim::export_plugin! { name: "statsd", kind: Codec, codec: keyless::<Config, Statsd> }

#[cfg(test)]
mod tests {
    use temblor_harness::codec::{decode_batch, encode_batch, indexes};

    use super::*;

    temblor_harness::codec_unit_helpers!(Statsd);

    #[test]
    fn decodes_each_type() {
        for (line, metric, kind, value) in [
            ("gorets:1|c", "gorets", "c", Value::I64(1)),
            ("glork:320|ms", "glork", "ms", Value::I64(320)),
            ("gaugor:333|g", "gaugor", "g", Value::I64(333)),
            ("uniques:765|s", "uniques", "s", Value::I64(765)),
            ("horst:42.23|h", "horst", "h", Value::F64(42.23)),
            ("dist:7|d", "dist", "d", Value::I64(7)),
        ] {
            let want = obj(&[
                ("metric", metric.into()),
                ("type", kind.into()),
                ("value", value),
            ]);
            exact(line, &want);
        }
        // The value keeps its kind: integers stay integers, floats stay floats.
        assert!(matches!(ok("a:7|c").get("value"), Some(Value::I64(7))));
        assert!(matches!(ok("a:7.0|c").get("value"), Some(Value::F64(f)) if *f == 7.0));
        assert!(matches!(ok("a:1e3|ms").get("value"), Some(Value::F64(f)) if *f == 1000.0));
        assert!(matches!(
            ok("a:18446744073709551615|c").get("value"),
            Some(Value::U64(u64::MAX))
        ));
    }

    #[test]
    fn gauge_signs_are_actions_on_the_size_of_the_change() {
        exact(
            "addy:+123|g",
            &obj(&[
                ("metric", "addy".into()),
                ("type", "g".into()),
                ("value", 123.into()),
                ("action", "add".into()),
            ]),
        );
        exact(
            "subastian:-234|g",
            &obj(&[
                ("metric", "subastian".into()),
                ("type", "g".into()),
                ("value", 234.into()),
                ("action", "sub".into()),
            ]),
        );
        exact(
            "f:-1.5|g|@0.5",
            &obj(&[
                ("metric", "f".into()),
                ("type", "g".into()),
                ("value", Value::F64(1.5)),
                ("action", "sub".into()),
                ("sample_rate", Value::F64(0.5)),
            ]),
        );
        // Other types: a minus makes the value negative, a plus is dropped.
        exact(
            "c:-5|c",
            &obj(&[
                ("metric", "c".into()),
                ("type", "c".into()),
                ("value", (-5).into()),
            ]),
        );
        let plus = ok("c:+5|c");
        assert_eq!(plus.get("value"), Some(&Value::I64(5)));
        assert_eq!(plus.get("action"), None);
        assert_eq!(enc(&plus), "c:5|c");
        assert_eq!(
            ok("c:-9223372036854775808|c").get("value"),
            Some(&Value::I64(i64::MIN))
        );
        assert!(err(b"c:-9223372036854775809|c").contains("below the 64-bit range"));
        // A gauge's change may be as large as a u64.
        assert_eq!(
            ok("g:-18446744073709551615|g").get("value"),
            Some(&Value::U64(u64::MAX))
        );
    }

    #[test]
    fn sample_rates_and_tags_in_any_order() {
        let want = obj(&[
            ("metric", "api.requests".into()),
            ("type", "c".into()),
            ("value", 1.into()),
            ("sample_rate", Value::F64(0.5)),
            (
                "tags",
                Value::from(vec!["env:prod".into(), "canary".into()]),
            ),
        ]);
        exact("api.requests:1|c|@0.5|#env:prod,canary", &want);
        assert_eq!(ok("api.requests:1|c|#env:prod,canary|@0.5"), want);
        exact(
            "t:1|c|#",
            &obj(&[
                ("metric", "t".into()),
                ("type", "c".into()),
                ("value", 1.into()),
                ("tags", Value::from(Vec::new())),
            ]),
        );
        // Empty tags are kept as they are written.
        exact(
            "t:1|c|#a,,b:",
            &obj(&[
                ("metric", "t".into()),
                ("type", "c".into()),
                ("value", 1.into()),
                (
                    "tags",
                    Value::from(vec!["a".into(), "".into(), "b:".into()]),
                ),
            ]),
        );
        assert!(matches!(ok("x:1|c|@1").get("sample_rate"), Some(Value::F64(f)) if *f == 1.0));
        assert_eq!(enc(&ok("x:1|c|@1")), "x:1|c|@1.0");
        // An integer sample rate given by a pipeline is written as an integer.
        let mut e = ok("x:1|c");
        e.as_object_mut()
            .unwrap()
            .insert("sample_rate", Value::I64(1));
        assert_eq!(enc(&e), "x:1|c|@1");
    }

    #[test]
    fn sets_keep_text_values() {
        exact(
            "users:alice|s",
            &obj(&[
                ("metric", "users".into()),
                ("type", "s".into()),
                ("value", "alice".into()),
            ]),
        );
        assert_eq!(ok("users:-x|s").get("value"), Some(&Value::from("-x")));
        assert_eq!(
            ok("users:1.2.3.4|s").get("value"),
            Some(&Value::from("1.2.3.4"))
        );
        // Other types need a number.
        assert_eq!(err(b"users:alice|c"), "bad value \"alice\": not a number");
    }

    #[test]
    fn names_may_hold_anything_but_colon_pipe_and_line_breaks() {
        let v = ok("my.app-1/ä b#@:2|c");
        assert_eq!(
            v.get("metric").and_then(Value::as_str),
            Some("my.app-1/ä b#@")
        );
        assert_eq!(enc(&v), "my.app-1/ä b#@:2|c");
        // Only the first colon ends the name: later ones belong to tags.
        let v = ok("a:1|c|#k:v:w");
        assert_eq!(v.get("tags"), Some(&Value::from(vec!["k:v:w".into()])));
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        assert_eq!(err(b""), "no ':' after the metric name in \"\"");
        assert_eq!(err(b"gorets"), "no ':' after the metric name in \"gorets\"");
        assert_eq!(
            err(b"gorets:1"),
            "no ':' after the metric name in \"gorets:1\""
                .replace("':' after the metric name", "'|' after the value")
        );
        assert_eq!(err(b":1|c"), "empty metric name");
        assert_eq!(err(b"a|b:1|c"), "'|' in the metric name \"a|b\"");
        assert_eq!(
            err(b"a:1|x"),
            "unknown metric type \"x\" (expected one of c, g, ms, h, s, d)"
        );
        assert_eq!(
            err(b"a:1|"),
            "unknown metric type \"\" (expected one of c, g, ms, h, s, d)"
        );
        assert_eq!(err(b"a:|c"), "bad value \"\": no number");
        assert_eq!(err(b"a:-|c"), "bad value \"-\": no number");
        assert_eq!(err(b"a:+-1|c"), "bad value \"+-1\": more than one sign");
        assert_eq!(err(b"a:1.2.3|c"), "bad value \"1.2.3\": not a number");
        assert_eq!(err(b"a:nan|c"), "bad value \"nan\": not a number");
        assert_eq!(err(b"a:inf|g"), "bad value \"inf\": not a number");
        assert_eq!(err(b"a:1e999|h"), "bad value \"1e999\": not a number");
        assert_eq!(
            err(b"a:18446744073709551616|c"),
            "bad value \"18446744073709551616\": beyond the 64-bit range"
        );
        assert_eq!(err(b"a:1|c|@x"), "bad sample rate \"x\"");
        assert_eq!(err(b"a:1|c|@"), "bad sample rate \"\"");
        assert_eq!(err(b"a:1|c|@0.5|@0.1"), "more than one sample rate ('|@')");
        assert_eq!(err(b"a:1|c|#a|#b"), "more than one tag list ('|#')");
        assert_eq!(
            err(b"a:1|c|c:abc"),
            "unknown section '|c:abc' (expected '|@<sample rate>' or '|#<tags>')"
        );
        assert_eq!(
            err(b"a:1|c|"),
            "unknown section '|' (expected '|@<sample rate>' or '|#<tags>')"
        );
        assert_eq!(err(b"a:1|c\n"), "a line break inside the line at byte 5");
        assert_eq!(err(b"a\rb:1|c"), "a line break inside the line at byte 1");
        assert_eq!(err(b"a:\xff|c"), "invalid UTF-8 at byte offset 2");
        // One trailing carriage return (CRLF files) is dropped.
        assert_eq!(ok("a:1|c\r"), ok("a:1|c"));
    }

    #[test]
    fn encoding_refuses_what_a_line_cannot_carry() {
        let base = |pairs: &[(&str, Value)]| {
            let mut e = obj(&[
                ("metric", "m".into()),
                ("type", "c".into()),
                ("value", 1.into()),
            ]);
            for (k, v) in pairs {
                e.as_object_mut().unwrap().insert(*k, v.clone());
            }
            e
        };
        assert_eq!(enc(&base(&[])), "m:1|c");
        assert_eq!(
            enc_err(&Value::I64(1)),
            "a statsd event is an object, not integer"
        );
        assert_eq!(enc_err(&obj(&[])), "the event has no `metric`");
        assert_eq!(
            enc_err(&base(&[("metric", 1.into())])),
            "`metric` is a string, not integer"
        );
        assert_eq!(
            enc_err(&base(&[("metric", "".into())])),
            "`metric` is empty"
        );
        assert!(enc_err(&base(&[("metric", "a:b".into())])).contains("':' at byte 1"));
        assert!(enc_err(&base(&[("metric", "a\nb".into())])).contains("'\\n' at byte 1"));
        assert_eq!(
            enc_err(&base(&[("type", "x".into())])),
            "unknown metric type \"x\" (expected one of c, g, ms, h, s, d)"
        );
        assert_eq!(
            enc_err(&base(&[("value", Value::Null)])),
            "`value` is a number, not null"
        );
        assert_eq!(
            enc_err(&base(&[("value", "a".into())])),
            "`value` is a number, not string"
        );
        assert!(enc_err(&base(&[("value", Value::F64(f64::NAN))])).contains("not a finite number"));
        assert!(enc_err(&base(&[("action", "add".into())])).contains("gauges (type g) only"));
        assert_eq!(
            enc_err(&base(&[("type", "g".into()), ("action", "mul".into())])),
            "unknown gauge action \"mul\" (expected add or sub)"
        );
        assert!(
            enc_err(&base(&[
                ("type", "g".into()),
                ("action", "sub".into()),
                ("value", (-1).into())
            ]))
            .contains("at least 0")
        );
        assert!(
            enc_err(&base(&[("type", "g".into()), ("value", Value::F64(-2.5))]))
                .contains("statsd reads a leading '-' as a decrement")
        );
        assert!(
            enc_err(&base(&[("sample_rate", "x".into())]))
                .contains("`sample_rate` is a finite number")
        );
        assert!(enc_err(&base(&[("tags", "x".into())])).contains("`tags` is an array of strings"));
        assert!(
            enc_err(&base(&[("tags", Value::from(vec![1.into()]))])).contains("a tag is a string")
        );
        assert!(
            enc_err(&base(&[("tags", Value::from(vec!["a,b".into()]))])).contains("',' at byte 1")
        );
        assert!(
            enc_err(&base(&[("type", "s".into()), ("value", "a|b".into())]))
                .contains("'|' at byte 1")
        );
        assert_eq!(
            enc_err(&base(&[("type", "s".into()), ("value", "".into())])),
            "an empty set value"
        );
        // Null optional keys are as good as absent; a negative non-gauge is fine.
        assert_eq!(
            enc(&base(&[
                ("action", Value::Null),
                ("sample_rate", Value::Null),
                ("tags", Value::Null),
                ("value", (-3).into())
            ])),
            "m:-3|c"
        );
    }

    #[test]
    fn batch_keeps_going_after_a_bad_frame() {
        let (out, errors) = decode_batch(&mut Statsd, &[b"a:1|c", b"nope", b"b:2.5|ms"]);
        assert_eq!(out.len(), 2);
        assert_eq!(indexes(&errors), [1]);
        assert_eq!(
            encode_batch(&mut Statsd, &out),
            [&b"a:1|c"[..], b"b:2.5|ms"]
        );
    }

    #[test]
    fn config_takes_no_keys() {
        temblor_harness::codec::refuses_config_key(plugin_module(), "dogstatsd", Value::Bool(true));
    }
}
