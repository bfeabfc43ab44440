//! The `dogstatsd` codec: one [DogStatsD] datagram line per frame (metrics, events and service
//! checks), both ways, in Tremor's event shape.
//!
//! # Event shape
//!
//! One key says what the line is, as in Tremor's `dogstatsd` codec:
//!
//! - a metric, `<name>:<value>[:<value>...]|<type>[|@<rate>][|#<tags>][|c:<container>][|T<ts>]`:
//!   `dog:111:222|g|@0.5|#foo:bar,fizz|c:123abc` decodes to
//!   ```json
//!   {"metric": {"metric": "dog", "values": [111, 222], "type": "g", "sample_rate": 0.5,
//!               "tags": ["foo:bar", "fizz"], "container_id": "123abc"}}
//!   ```
//!   `type` is `c`, `g`, `ms`, `h`, `s` or `d`; every value is a number (`I64`, `U64` above
//!   `i64::MAX`, or `F64` when written with `.` or an exponent: Tremor makes them all floats),
//!   except that a set's value may be any text (kept as a string). `timestamp` (`|T<unix
//!   seconds>`, DogStatsD 1.3) is an integer.
//! - an event, `_e{<title length>,<text length>}:<title>|<text>[|d:<ts>][|h:<host>][|k:<key>]
//!   [|p:<priority>][|s:<source>][|t:<alert type>][|#<tags>][|c:<container>]`: `{"event":
//!   {"title", "text", "timestamp", "hostname", "aggregation_key", "priority", "source",
//!   "type", "tags", "container_id"}}`, each optional key only when the line has it. The
//!   lengths are in bytes (UTF-8), so the title and the text may hold `|`; a `\n` in the text
//!   is written `\\n` on the wire, and decoded back.
//! - a service check, `_sc|<name>|<status>[|d:<ts>][|h:<host>][|#<tags>][|m:<message>]
//!   [|c:<container>]`: `{"service_check": {"name", "status", "timestamp", "hostname", "tags",
//!   "message", "container_id"}}`; `status` is 0 (OK) to 3 (UNKNOWN). The message comes last
//!   on the wire, and is everything after `m:`.
//!
//! Sections other than these, repeated sections, a bad number, a status above 3, lengths that
//! do not match, and a line break inside the line are per-frame errors saying which. Encoding
//! writes the sections in the order above; a decoded event encodes to a line that decodes to
//! an equal event. It fails for an event with none of the three keys, a missing or mistyped
//! field, or text that the line cannot carry where it goes (`|`, `,` in a tag, `:` in a metric
//! name, a line break).
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! DogStatsD over UDP, one datagram per frame, split at line breaks (a client may pack several
//! lines in one datagram):
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "udp_server"
//! codec = "dogstatsd"
//! preprocessors = ["separate"]
//! config = { url = "127.0.0.1:8125" }
//! ```
//!
//! [DogStatsD]: https://docs.datadoghq.com/developers/dogstatsd/datagram_shell/

use temblor_shim::{ByteSink, Codec, Object, PluginError, RVec, Value, keyless};

/// The metric types a line may have.
pub const TYPES: [&str; 6] = ["c", "g", "ms", "h", "s", "d"];

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The dogstatsd codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct DogStatsd;

/// Decodes one DogStatsD line.
///
/// # Errors
/// Why the line is not a metric, event or service check (see the crate docs).
pub fn decode_line(frame: &[u8]) -> Result<Value, String> {
    let line = std::str::from_utf8(frame)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(at) = line.find(['\r', '\n']) {
        return Err(format!("a line break inside the line at byte {at}"));
    }
    let (key, body) = if let Some(rest) = line.strip_prefix("_e{") {
        ("event", event(rest)?)
    } else if let Some(rest) = line.strip_prefix("_sc|") {
        ("service_check", service_check(rest)?)
    } else {
        ("metric", metric(line)?)
    };
    let mut outer = Object::with_capacity(1);
    outer.push(key.into(), Value::Object(body));
    Ok(Value::Object(outer))
}

/// Adds a section's field, refusing a repeat.
fn once(object: &mut Object, key: &str, value: Value) -> Result<(), String> {
    if object.get(key).is_some() {
        return Err(format!("more than one `{key}` section"));
    }
    object.push(key.into(), value);
    Ok(())
}

fn tags(list: &str) -> Value {
    if list.is_empty() {
        Value::Array(RVec::new())
    } else {
        Value::Array(list.split(',').map(Value::from).collect())
    }
}

fn integer(text: &str, what: &str) -> Result<Value, String> {
    text.parse::<i64>()
        .map(Value::I64)
        .map_err(|_| format!("bad {what} {text:?}"))
}

/// A number: digits (with a sign) are an integer, `.` or an exponent a finite float.
fn number(text: &str) -> Option<Value> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match text.strip_prefix('-') {
            Some(_) => text.parse::<i64>().ok().map(Value::I64),
            None => digits.parse::<u64>().ok().map(Value::from),
        };
    }
    let plain = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
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

fn metric(line: &str) -> Result<Object, String> {
    let (name, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("no ':' after the metric name in {line:?}"))?;
    if name.is_empty() || name.contains('|') {
        return Err(format!("bad metric name {name:?}"));
    }
    let (values_text, rest) = rest
        .split_once('|')
        .ok_or_else(|| format!("no '|' after the value in {line:?}"))?;
    let mut sections = rest.split('|');
    let kind = sections.next().unwrap_or_default();
    if !TYPES.contains(&kind) {
        return Err(format!(
            "unknown metric type {kind:?} (expected one of c, g, ms, h, s, d)"
        ));
    }
    let values: RVec<Value> = values_text
        .split(':')
        .map(|v| match number(v) {
            Some(n) => Ok(n),
            None if kind == "s" && !v.is_empty() => Ok(Value::from(v)),
            None => Err(format!("bad value {v:?}")),
        })
        .collect::<Result<_, _>>()?;
    let mut m = Object::with_capacity(7);
    m.push("metric".into(), Value::from(name));
    m.push("values".into(), Value::Array(values));
    m.push("type".into(), Value::from(kind));
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            let rate = match number(rate) {
                Some(Value::I64(i)) => Value::F64(i as f64),
                Some(Value::F64(f)) => Value::F64(f),
                _ => return Err(format!("bad sample rate {rate:?}")),
            };
            once(&mut m, "sample_rate", rate)?;
        } else if let Some(list) = section.strip_prefix('#') {
            once(&mut m, "tags", tags(list))?;
        } else if let Some(id) = section.strip_prefix("c:") {
            once(&mut m, "container_id", Value::from(id))?;
        } else if let Some(ts) = section.strip_prefix('T') {
            once(&mut m, "timestamp", integer(ts, "timestamp")?)?;
        } else {
            return Err(format!("unknown metric section '|{section}'"));
        }
    }
    Ok(in_order(m, &METRIC_ORDER))
}

/// The fields of each kind in the order the encoder writes them: a line whose sections come in
/// another order decodes to the same event as its re-encoding does.
const METRIC_ORDER: [&str; 7] = [
    "metric",
    "values",
    "type",
    "sample_rate",
    "tags",
    "container_id",
    "timestamp",
];
const EVENT_ORDER: [&str; 10] = [
    "title",
    "text",
    "timestamp",
    "hostname",
    "aggregation_key",
    "priority",
    "source",
    "type",
    "tags",
    "container_id",
];
const SERVICE_CHECK_ORDER: [&str; 7] = [
    "name",
    "status",
    "timestamp",
    "hostname",
    "container_id",
    "tags",
    "message",
];

/// `o`'s fields in `order` (every decoded field is named there).
fn in_order(mut o: Object, order: &[&str]) -> Object {
    let mut sorted = Object::with_capacity(o.len());
    for key in order {
        if let Some(v) = o.remove(key) {
            sorted.push((*key).into(), v);
        }
    }
    debug_assert!(o.is_empty(), "a decoded field missing from the order");
    sorted
}

fn event(rest: &str) -> Result<Object, String> {
    let (lengths, body) = rest
        .split_once("}:")
        .ok_or_else(|| "an event starts with _e{<title length>,<text length>}:".to_owned())?;
    let (title_len, text_len) = lengths
        .split_once(',')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("bad event lengths {{{lengths}}}"))?;
    let title = body
        .get(..title_len)
        .ok_or_else(|| format!("the event is shorter than its title length {title_len}"))?;
    let after = body[title_len..]
        .strip_prefix('|')
        .ok_or_else(|| format!("no '|' after the title of length {title_len}"))?;
    let text = after
        .get(..text_len)
        .ok_or_else(|| format!("the event is shorter than its text length {text_len}"))?;
    let rest = &after[text_len..];
    let mut e = Object::with_capacity(10);
    e.push("title".into(), Value::from(title));
    e.push("text".into(), Value::from(text.replace("\\n", "\n")));
    if rest.is_empty() {
        return Ok(e);
    }
    let rest = rest
        .strip_prefix('|')
        .ok_or_else(|| format!("no '|' after the text of length {text_len}"))?;
    for section in rest.split('|') {
        let (key, value) = match section.split_at_checked(2) {
            Some(("d:", ts)) => ("timestamp", integer(ts, "timestamp")?),
            Some(("h:", v)) => ("hostname", Value::from(v)),
            Some(("k:", v)) => ("aggregation_key", Value::from(v)),
            Some(("p:", v)) => ("priority", Value::from(v)),
            Some(("s:", v)) => ("source", Value::from(v)),
            Some(("t:", v)) => ("type", Value::from(v)),
            Some(("c:", v)) => ("container_id", Value::from(v)),
            _ => match section.strip_prefix('#') {
                Some(list) => ("tags", tags(list)),
                None => return Err(format!("unknown event section '|{section}'")),
            },
        };
        once(&mut e, key, value)?;
    }
    Ok(in_order(e, &EVENT_ORDER))
}

fn service_check(rest: &str) -> Result<Object, String> {
    let (name, rest) = rest
        .split_once('|')
        .ok_or_else(|| "a service check is _sc|<name>|<status>".to_owned())?;
    let (status, mut rest) = rest.split_once('|').unwrap_or((rest, ""));
    let status = match status {
        "0" | "1" | "2" | "3" => Value::I64(i64::from(status.as_bytes()[0] - b'0')),
        other => return Err(format!("bad service check status {other:?} (0 to 3)")),
    };
    let mut s = Object::with_capacity(7);
    s.push("name".into(), Value::from(name));
    s.push("status".into(), status);
    while !rest.is_empty() {
        // The message is last, and may hold '|'.
        if let Some(message) = rest.strip_prefix("m:") {
            once(&mut s, "message", Value::from(message))?;
            break;
        }
        let (section, after) = rest.split_once('|').unwrap_or((rest, ""));
        rest = after;
        let (key, value) = match section.split_at_checked(2) {
            Some(("d:", ts)) => ("timestamp", integer(ts, "timestamp")?),
            Some(("h:", v)) => ("hostname", Value::from(v)),
            Some(("c:", v)) => ("container_id", Value::from(v)),
            _ => match section.strip_prefix('#') {
                Some(list) => ("tags", tags(list)),
                None => return Err(format!("unknown service check section '|{section}'")),
            },
        };
        once(&mut s, key, value)?;
    }
    Ok(in_order(s, &SERVICE_CHECK_ORDER))
}

// --- encoding ---

fn text<'a>(o: &'a Object, key: &str) -> Result<Option<&'a str>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!("`{key}` is a string, not {}", other.type_name())),
    }
}

fn required<'a>(o: &'a Object, key: &str) -> Result<&'a str, String> {
    text(o, key)?.ok_or_else(|| format!("the event has no `{key}`"))
}

/// Refuses line breaks and `forbidden` in `value`.
fn check(what: &str, value: &str, forbidden: &[char]) -> Result<(), String> {
    match value.find(|c| c == '\r' || c == '\n' || forbidden.contains(&c)) {
        Some(at) => Err(format!(
            "the {what} {value:?} has {:?} at byte {at}, which the line cannot carry there",
            value[at..].chars().next().unwrap_or_default()
        )),
        None => Ok(()),
    }
}

fn put_section<B: ByteSink>(
    out: &mut B,
    o: &Object,
    key: &str,
    prefix: &[u8],
) -> Result<(), String> {
    if let Some(v) = text(o, key)? {
        check(key, v, &['|'])?;
        out.put(prefix);
        out.put(v.as_bytes());
    }
    Ok(())
}

fn put_integer<B: ByteSink>(
    out: &mut B,
    o: &Object,
    key: &str,
    prefix: &[u8],
) -> Result<(), String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v @ (Value::I64(_) | Value::U64(_))) => {
            out.put(prefix);
            v.write_json(out);
            Ok(())
        }
        Some(other) => Err(format!("`{key}` is an integer, not {}", other.type_name())),
    }
}

fn put_tags<B: ByteSink>(out: &mut B, o: &Object) -> Result<(), String> {
    match o.get("tags") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(tags)) => {
            out.put(b"|#");
            for (i, tag) in tags.iter().enumerate() {
                let tag = tag
                    .as_str()
                    .ok_or_else(|| format!("a tag is a string, not {}", tag.type_name()))?;
                check("tag", tag, &[',', '|'])?;
                if i > 0 {
                    out.put_byte(b',');
                }
                out.put(tag.as_bytes());
            }
            Ok(())
        }
        Some(other) => Err(format!(
            "`tags` is an array of strings, not {}",
            other.type_name()
        )),
    }
}

fn encode_metric<B: ByteSink>(m: &Object, out: &mut B) -> Result<(), String> {
    let name = required(m, "metric")?;
    if name.is_empty() {
        return Err("`metric` is empty".to_owned());
    }
    check("metric name", name, &[':', '|'])?;
    let kind = required(m, "type")?;
    if !TYPES.contains(&kind) {
        return Err(format!(
            "unknown metric type {kind:?} (expected one of c, g, ms, h, s, d)"
        ));
    }
    let values = match m.get("values") {
        Some(Value::Array(values)) if !values.is_empty() => values,
        Some(Value::Array(_)) => return Err("`values` is empty".to_owned()),
        Some(other) => return Err(format!("`values` is an array, not {}", other.type_name())),
        None => return Err("the event has no `values`".to_owned()),
    };
    out.put(name.as_bytes());
    for value in values.iter() {
        out.put_byte(b':');
        match value {
            Value::I64(_) | Value::U64(_) => value.write_json(out),
            Value::F64(f) if f.is_finite() => value.write_json(out),
            Value::String(s) if kind == "s" && !s.is_empty() && number(s).is_none() => {
                check("set value", s, &[':', '|'])?;
                out.put(s.as_bytes());
            }
            other => return Err(format!("a metric value is a finite number, not {other}")),
        }
    }
    out.put_byte(b'|');
    out.put(kind.as_bytes());
    match m.get("sample_rate") {
        None | Some(Value::Null) => {}
        Some(Value::F64(f)) if f.is_finite() => {
            out.put(b"|@");
            Value::F64(*f).write_json(out);
        }
        Some(other) => return Err(format!("`sample_rate` is a finite float, not {other}")),
    }
    put_tags(out, m)?;
    put_section(out, m, "container_id", b"|c:")?;
    put_integer(out, m, "timestamp", b"|T")
}

fn encode_event<B: ByteSink>(e: &Object, out: &mut B) -> Result<(), String> {
    let title = required(e, "title")?;
    let body = required(e, "text")?.replace('\n', "\\n");
    check("title", title, &[])?;
    check("text", &body, &[])?;
    out.put(b"_e{");
    Value::U64(title.len() as u64).write_json(out);
    out.put_byte(b',');
    Value::U64(body.len() as u64).write_json(out);
    out.put(b"}:");
    out.put(title.as_bytes());
    out.put_byte(b'|');
    out.put(body.as_bytes());
    put_integer(out, e, "timestamp", b"|d:")?;
    put_section(out, e, "hostname", b"|h:")?;
    put_section(out, e, "aggregation_key", b"|k:")?;
    put_section(out, e, "priority", b"|p:")?;
    put_section(out, e, "source", b"|s:")?;
    put_section(out, e, "type", b"|t:")?;
    put_tags(out, e)?;
    put_section(out, e, "container_id", b"|c:")
}

fn encode_service_check<B: ByteSink>(s: &Object, out: &mut B) -> Result<(), String> {
    let name = required(s, "name")?;
    check("name", name, &['|'])?;
    let status = match s.get("status") {
        Some(Value::I64(n @ 0..=3)) => *n,
        Some(Value::U64(n @ 0..=3)) => *n as i64,
        Some(other) => return Err(format!("`status` is 0 to 3, not {other}")),
        None => return Err("the event has no `status`".to_owned()),
    };
    out.put(b"_sc|");
    out.put(name.as_bytes());
    out.put_byte(b'|');
    Value::I64(status).write_json(out);
    put_integer(out, s, "timestamp", b"|d:")?;
    put_section(out, s, "hostname", b"|h:")?;
    put_section(out, s, "container_id", b"|c:")?;
    put_tags(out, s)?;
    if let Some(message) = text(s, "message")? {
        check("message", message, &[])?;
        out.put(b"|m:");
        out.put(message.as_bytes());
    }
    Ok(())
}

/// Encodes one event as a DogStatsD line into `out`.
///
/// # Errors
/// Why the event cannot be written (see the crate docs).
pub fn encode_line<B: ByteSink>(event: &Value, out: &mut B) -> Result<(), String> {
    let object = event
        .as_object()
        .ok_or_else(|| format!("a dogstatsd event is an object, not {}", event.type_name()))?;
    let inner = |key: &str| match object.get(key) {
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(format!("`{key}` is an object, not {}", other.type_name())),
        None => Ok(None),
    };
    if let Some(m) = inner("metric")? {
        encode_metric(m, out)
    } else if let Some(e) = inner("event")? {
        encode_event(e, out)
    } else if let Some(s) = inner("service_check")? {
        encode_service_check(s, out)
    } else {
        Err("the event has none of `metric`, `event`, `service_check`".to_owned())
    }
}

impl Codec for DogStatsd {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        decode_line(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        let start = out.len();
        encode_line(event, out).map_err(|e| {
            out.truncate(start);
            PluginError::data(e)
        })
    }
}

temblor_shim::export_plugin! { name: "dogstatsd", kind: Codec, codec: keyless::<Config, DogStatsd> }

#[cfg(test)]
mod tests {
    use super::*;

    temblor_harness::codec_unit_helpers!(DogStatsd);

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Each line decodes to the event, and the event encodes to the line.
    fn exact_json(line: &str, want: &str) {
        exact(line, &json(want));
    }

    /// The examples of Datadog's "Datagram Format and Shell Usage" page.
    #[test]
    fn the_datagram_format_examples() {
        exact_json(
            "page.views:1|c",
            r#"{"metric":{"metric":"page.views","values":[1],"type":"c"}}"#,
        );
        exact_json(
            "fuel.level:0.5|g",
            r#"{"metric":{"metric":"fuel.level","values":[0.5],"type":"g"}}"#,
        );
        exact_json(
            "song.length:240|h|@0.5",
            r#"{"metric":{"metric":"song.length","values":[240],"type":"h","sample_rate":0.5}}"#,
        );
        exact_json(
            "users.uniques:1234|s",
            r#"{"metric":{"metric":"users.uniques","values":[1234],"type":"s"}}"#,
        );
        exact_json(
            "users.online:1|c|#country:china",
            r#"{"metric":{"metric":"users.online","values":[1],"type":"c","tags":["country:china"]}}"#,
        );
        exact_json(
            "users.online:1|c|@0.5|#country:china",
            r#"{"metric":{"metric":"users.online","values":[1],"type":"c","sample_rate":0.5,"tags":["country:china"]}}"#,
        );
        // Several values in one datagram (DogStatsD 1.1), a container id (1.2), a timestamp (1.3).
        exact_json(
            "dog:111:222:333:4.44|g|@0.5|#foo:bar,fizz:buzz|c:123abc",
            r#"{"metric":{"metric":"dog","values":[111,222,333,4.44],"type":"g","sample_rate":0.5,"tags":["foo:bar","fizz:buzz"],"container_id":"123abc"}}"#,
        );
        exact_json(
            "page.views:15|c|#env:dev|T1656581400",
            r#"{"metric":{"metric":"page.views","values":[15],"type":"c","tags":["env:dev"],"timestamp":1656581400}}"#,
        );
        exact_json(
            "_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning|#err_type:bad_file",
            r#"{"event":{"title":"An exception occurred","text":"Cannot parse CSV file from 10.0.0.17","type":"warning","tags":["err_type:bad_file"]}}"#,
        );
        exact_json(
            "_e{21,41}:An exception occurred|Cannot parse JSON request:\\n{\"foo: \"bar\"}|p:low|#err_type:bad_request",
            r#"{"event":{"title":"An exception occurred","text":"Cannot parse JSON request:\n{\"foo: \"bar\"}","priority":"low","tags":["err_type:bad_request"]}}"#,
        );
        exact_json(
            "_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s",
            r#"{"service_check":{"name":"Redis connection","status":2,"tags":["env:dev"],"message":"Redis connection timed out after 10s"}}"#,
        );
        exact_json(
            "_e{5,4}:title|text|d:1656581400|h:web1|k:key|p:normal|s:my_apps|t:info|#a,b:c|c:ctr",
            r#"{"event":{"title":"title","text":"text","timestamp":1656581400,"hostname":"web1","aggregation_key":"key","priority":"normal","source":"my_apps","type":"info","tags":["a","b:c"],"container_id":"ctr"}}"#,
        );
        exact_json(
            "_sc|db|0|d:1656581400|h:db1|c:ctr|#env:prod|m:all | good",
            r#"{"service_check":{"name":"db","status":0,"timestamp":1656581400,"hostname":"db1","container_id":"ctr","tags":["env:prod"],"message":"all | good"}}"#,
        );
    }

    /// Found by the fuzzer: sections in another order than the encoder's decoded to an event
    /// whose fields came in that order, so the re-encoded line decoded to another event.
    #[test]
    fn sections_in_any_order_decode_to_the_encoders_field_order() {
        for (line, canonical) in [
            ("dog:1|g|c:|#obc", "dog:1|g|#obc|c:"),
            ("dog:1|c|T5|c:x|#a|@0.5", "dog:1|c|@0.5|#a|c:x|T5"),
            ("_e{1,1}:a|b|c:x|#t|d:7", "_e{1,1}:a|b|d:7|#t|c:x"),
            ("_sc|n|1|#t|c:x|h:h|m:msg", "_sc|n|1|h:h|c:x|#t|m:msg"),
        ] {
            let got = ok(line);
            assert_eq!(enc(&got), canonical, "{line}");
            assert_eq!(ok(canonical), got, "{line}");
        }
    }

    #[test]
    fn lengths_count_bytes_and_titles_may_hold_bars() {
        exact_json(
            "_e{5,6}:a|b c|été!|p:low",
            r#"{"event":{"title":"a|b c","text":"été!","priority":"low"}}"#,
        );
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, reason) in [
            ("dog:111", "no '|' after the value in \"dog:111\""),
            ("dog", "no ':' after the metric name in \"dog\""),
            (
                "dog:1|x",
                "unknown metric type \"x\" (expected one of c, g, ms, h, s, d)",
            ),
            ("dog:1:|c", "bad value \"\""),
            ("dog:abc|c", "bad value \"abc\""),
            ("dog:1|c|@x", "bad sample rate \"x\""),
            ("dog:1|c|#a|#b", "more than one `tags` section"),
            ("dog:1|c|z", "unknown metric section '|z'"),
            (
                "_e{5,10}:title|text",
                "the event is shorter than its text length 10",
            ),
            ("_e{x,1}:t|t", "bad event lengths {x,1}"),
            ("_e{1,1}:tt|t", "no '|' after the title of length 1"),
            ("_e{1,1}:t|t|q:1", "unknown event section '|q:1'"),
            ("_sc|db|4", "bad service check status \"4\" (0 to 3)"),
            ("_sc|db", "a service check is _sc|<name>|<status>"),
            ("a:1|c\nb:2|c", "a line break inside the line at byte 5"),
        ] {
            assert_eq!(
                decode_line(line.as_bytes()),
                Err(reason.to_owned()),
                "{line}"
            );
        }
        // A set keeps text values.
        assert_eq!(
            ok("users:alice:bob|s"),
            json(r#"{"metric":{"metric":"users","values":["alice","bob"],"type":"s"}}"#)
        );
    }

    #[test]
    fn encoding_refuses_what_a_line_cannot_carry() {
        let err = |v: &str| {
            let mut out = Vec::new();
            encode_line(&json(v), &mut out).unwrap_err()
        };
        assert_eq!(
            err("{}"),
            "the event has none of `metric`, `event`, `service_check`"
        );
        assert_eq!(
            err(r#"{"metric":{"metric":"m","type":"c"}}"#),
            "the event has no `values`"
        );
        assert!(err(r#"{"metric":{"metric":"a:b","type":"c","values":[1]}}"#).contains("':'"));
        assert!(
            err(r#"{"metric":{"metric":"m","type":"c","values":[1],"tags":["a,b"]}}"#)
                .contains("','")
        );
        assert!(err(r#"{"service_check":{"name":"n","status":7}}"#).contains("0 to 3"));
        assert!(err(r#"{"event":{"title":"t"}}"#).contains("`text`"));
    }
}
