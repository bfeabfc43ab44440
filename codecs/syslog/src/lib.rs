//! The `syslog` codec: one syslog message per frame, [RFC 5424] (the syslog protocol) and
//! [RFC 3164] (BSD syslog), both ways, with the event shape of Tremor's `syslog` codec.
//!
//! A message `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47
//! [exampleSDID@32473 iut="3" eventSource="Application"] An application event log entry...`
//! decodes to
//! ```json
//! {"protocol": "RFC5424", "protocol_version": 1, "facility": "local4", "severity": "notice",
//!  "timestamp": 1065910455003000000, "hostname": "mymachine.example.com",
//!  "appname": "evntslog", "msgid": "ID47",
//!  "structured_data": {"exampleSDID@32473": [{"iut": "3"}, {"eventSource": "Application"}]},
//!  "msg": "An application event log entry..."}
//! ```
//! and `<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick` to
//! `{"protocol": "RFC3164", "facility": "auth", "severity": "crit", "timestamp": ...,
//! "hostname": "mymachine", "appname": "su", "procid": "230", "msg": "'su root' failed for
//! lonvick"}`.
//!
//! **Fields.** `facility` and `severity` are names (`kern`, `user`, `mail`, `daemon`, `auth`,
//! `syslog`, `lpr`, `news`, `uucp`, `cron`, `authpriv`, `ftp`, `ntp`, `audit`, `alert`,
//! `clockd`, `local0` … `local7`; `emerg`, `alert`, `crit`, `err`, `warning`, `notice`, `info`,
//! `debug`). `timestamp` is nanoseconds since the Unix epoch, in UTC (an RFC 5424 offset is
//! applied). `procid` is a string. `structured_data` is an object of SD-IDs, each an array of
//! one-field objects (a parameter may repeat). A nil (`-`) or absent part gives no field, and an
//! empty `msg` none either. Fields come in the order above.
//!
//! **Decoding** tells the two formats apart as RFC 5424 §6 defines them: after the PRI
//! (`<0>` to `<191>`), a version of one to three digits and a space is RFC 5424. A frame that
//! looks like RFC 5424 but does not parse as it is read as RFC 3164; one without a PRI is read
//! as if `<13>` (`user`/`notice`) stood before it, as a relay does (RFC 3164 §4.3.3). An
//! RFC 3164 message has the timestamp `Mmm dd hh:mm:ss` (no year: the current year in UTC is
//! assumed, the previous one for a December message read in January), then the hostname
//! (absent when the first word holds a `[` or `:`, a tag), then `appname[procid]: msg`; when the
//! timestamp is missing or invalid the rest after the PRI is all `msg` (RFC 3164 §4.3.2). A
//! leading UTF-8 BOM of an RFC 5424 `msg` is dropped. RFC 5424 header fields are printable
//! US-ASCII within the RFC's lengths (hostname 255, appname 48, procid 128, msgid 32), SD
//! names 1 to 32 characters, parameter values may escape `"`, `\` and `]` with `\`. A frame
//! that is empty or not UTF-8 is a per-frame error.
//!
//! **Encoding** writes RFC 3164 when `protocol` is `"RFC3164"`, and RFC 5424 when it is
//! `"RFC5424"` or absent (as Tremor does), with `protocol_version` (default 1). A missing
//! `facility` or `severity` means `user`/`notice` (priority 13, RFC 3164 §4.3.3); both may
//! also be given as their numbers. RFC 5424 writes the timestamp as UTC (`Z`) with 3, 6 or 9
//! fraction digits as needed, nil (`-`) for what is absent, escapes parameter values, and
//! writes a BOM only before a `msg` that starts with one (so it decodes back the same).
//! RFC 3164 writes `Mmm dd hh:mm:ss hostname appname[procid]: msg` (`-` for a missing
//! hostname); without `timestamp` it writes the current time, or just `<PRI>msg` when there
//! is no hostname, appname or procid either; `structured_data` and `msgid` are refused. An
//! event that is not an object, a field of the wrong type, an unknown name, a space in an
//! RFC 5424 header field or a field too long is an error naming the field.
//!
//! Frames carry no framing: use `separate` (newline) or `textual-length-prefixed` (octet
//! counting, RFC 6587) for TCP, nothing for UDP (one datagram, one message).
//!
//! [RFC 5424]: https://www.rfc-editor.org/rfc/rfc5424
//! [RFC 3164]: https://www.rfc-editor.org/rfc/rfc3164
//!
//! # Config
//! None: the config table must be empty (unknown keys are refused).
//!
//! # Example
//! Receive syslog over UDP (e.g. `logger --server 127.0.0.1 --port 5514 --udp hello`) and write
//! the events as JSON lines:
//! ```toml
//! [[connector]]
//! id = "syslog"
//! plugin = "udp_server"
//! codec = "syslog"
//! config = { url = "127.0.0.1:5514" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "syslog.jsonl", mode = "write" }
//!
//! [[link]]
//! from = "syslog"
//! to = "out"
//! ```

use std::fmt::Write as _;

use temblor_shim::{Codec, Object, PluginError, RVec, Value, keyless, serde::Deserialize};

/// The codec's `config`: no keys.
#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// Facility names by code (RFC 5424 §6.2.1, names as Tremor's).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clockd", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Severity names by code (RFC 5424 §6.2.1).
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The priority a message without one gets: `user.notice` (RFC 3164 §4.3.3).
const DEFAULT_PRI: u8 = 13;

const NANOS_PER_SEC: i64 = 1_000_000_000;

const BOM: char = '\u{feff}';

/// Nanoseconds since the epoch now, for RFC 3164's year and a missing timestamp.
type Clock = fn() -> i64;

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The `syslog` codec.
#[derive(Debug, Clone)]
pub struct Syslog {
    clock: Clock,
}

impl Default for Syslog {
    /// A codec on the system clock.
    fn default() -> Self {
        Self {
            clock: system_clock,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar (proleptic Gregorian, UTC)

/// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A UTC date and time, split from nanoseconds since the epoch.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
}

impl Civil {
    fn from_nanos(ns: i64) -> Self {
        let secs = ns.div_euclid(NANOS_PER_SEC);
        let nanos = ns.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            nanos,
        }
    }

    /// Nanoseconds since the epoch, or `None` outside `i64`'s range (years 1677 to 2262).
    fn to_nanos(&self) -> Option<i64> {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + self.hour * 3600 + self.minute * 60 + self.second;
        secs.checked_mul(NANOS_PER_SEC)?.checked_add(self.nanos)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A cursor over the frame's text.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// Takes `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let head = self.rest.get(..n)?;
        if !head.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.rest = &self.rest[n..];
        head.parse().ok()
    }

    fn eat(&mut self, c: char) -> Option<()> {
        self.rest = self.rest.strip_prefix(c)?;
        Some(())
    }

    /// Takes the text up to the next space (or the end); `None` when that is empty.
    fn word(&mut self) -> Option<&'a str> {
        let end = self.rest.find(' ').unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(word)
    }
}

/// `hh:mm:ss`, each in range.
fn time_of_day(c: &mut Cursor<'_>) -> Option<(i64, i64, i64)> {
    let hour = c.digits(2)?;
    c.eat(':')?;
    let minute = c.digits(2)?;
    c.eat(':')?;
    let second = c.digits(2)?;
    (hour <= 23 && minute <= 59 && second <= 59)
        .then(|| (i64::from(hour), i64::from(minute), i64::from(second)))
}

/// A valid date at `(hour, minute, second)`, in nanoseconds since the epoch.
fn date_nanos(year: i64, month: u32, day: u32, time: (i64, i64, i64), nanos: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let (hour, minute, second) = time;
    Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
    }
    .to_nanos()
}

/// `<PRI>` at the start: (facility, severity) and the text after it.
fn parse_pri(text: &str) -> Option<(u8, &str)> {
    let inner = text.strip_prefix('<')?;
    let end = inner.find('>')?;
    let digits = &inner[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pri: u8 = digits.parse().ok()?;
    (pri <= 191).then_some((pri, &inner[end + 1..]))
}

fn priority_fields(out: &mut Object, pri: u8) {
    out.push(
        "facility".into(),
        Value::from(FACILITIES[usize::from(pri >> 3)]),
    );
    out.push(
        "severity".into(),
        Value::from(SEVERITIES[usize::from(pri & 7)]),
    );
}

fn push_str(out: &mut Object, key: &str, value: &str) {
    out.push(key.into(), Value::from(value));
}

/// An RFC 5424 header field: printable US-ASCII, at most `max` characters; `-` is nil.
fn header_field<'a>(c: &mut Cursor<'a>, max: usize) -> Option<Option<&'a str>> {
    c.eat(' ')?;
    let word = c.word()?;
    if word.len() > max || !word.bytes().all(|b| (33..=126).contains(&b)) {
        return None;
    }
    Some((word != "-").then_some(word))
}

/// RFC 3339 as RFC 5424 §6.2.3 restricts it, in nanoseconds (fractions of up to 9 digits are
/// read, the RFC allows 6).
fn parse_rfc3339(c: &mut Cursor<'_>) -> Option<i64> {
    let year = c.digits(4)?;
    c.eat('-')?;
    let month = c.digits(2)?;
    c.eat('-')?;
    let day = c.digits(2)?;
    c.eat('T')?;
    let time = time_of_day(c)?;
    let mut nanos = 0_i64;
    if c.eat('.').is_some() {
        let n = c.rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        let frac: i64 = c.rest[..n].parse().ok()?;
        nanos = frac * 10_i64.pow(u32::try_from(9 - n).ok()?);
        c.rest = &c.rest[n..];
    }
    let offset_secs = if c.eat('Z').is_some() {
        0
    } else {
        let sign = if c.eat('+').is_some() {
            1
        } else {
            c.eat('-')?;
            -1
        };
        let oh = c.digits(2)?;
        c.eat(':')?;
        let om = c.digits(2)?;
        if oh > 23 || om > 59 {
            return None;
        }
        sign * (i64::from(oh) * 3600 + i64::from(om) * 60)
    };
    let local = date_nanos(i64::from(year), month, day, time, nanos)?;
    local.checked_sub(offset_secs.checked_mul(NANOS_PER_SEC)?)
}

/// An SD-NAME (RFC 5424 §6.3): 1 to 32 printable US-ASCII but `=`, space, `]` and `"`.
fn sd_name<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    let n = c
        .rest
        .bytes()
        .take_while(|b| (33..=126).contains(b) && !matches!(b, b'=' | b']' | b'"'))
        .count();
    if n == 0 || n > 32 {
        return None;
    }
    let (name, rest) = c.rest.split_at(n);
    c.rest = rest;
    Some(name)
}

/// A PARAM-VALUE up to its closing `"`, with `\"`, `\\` and `\]` unescaped (any other
/// backslash is kept, RFC 5424 §6.3.3).
fn param_value(c: &mut Cursor<'_>) -> Option<String> {
    let mut value = String::new();
    let mut chars = c.rest.char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '"' => {
                c.rest = &c.rest[i + 1..];
                return Some(value);
            }
            '\\' => match chars.clone().next() {
                Some((_, next @ ('"' | '\\' | ']'))) => {
                    chars.next();
                    value.push(next);
                }
                _ => value.push('\\'),
            },
            other => value.push(other),
        }
    }
    None
}

/// STRUCTURED-DATA: nil, or one or more `[SD-ID param="value" ...]`.
fn structured_data(c: &mut Cursor<'_>) -> Option<Option<Object>> {
    c.eat(' ')?;
    if c.eat('-').is_some() {
        return Some(None);
    }
    let mut sd = Object::new();
    while c.eat('[').is_some() {
        let id = sd_name(c)?;
        let mut params = RVec::new();
        while c.eat(' ').is_some() {
            let name = sd_name(c)?;
            c.eat('=')?;
            c.eat('"')?;
            let value = param_value(c)?;
            let param: Object = [(name, Value::from(value.as_str()))].into_iter().collect();
            params.push(Value::Object(param));
        }
        c.eat(']')?;
        sd.push(id.into(), Value::Array(params));
    }
    (!sd.is_empty()).then_some(Some(sd))
}

/// An RFC 5424 message after its PRI, or `None` when it is not one.
fn decode_rfc5424(pri: u8, text: &str) -> Option<Object> {
    let mut c = Cursor { rest: text };
    let version = c.word()?;
    if version.len() > 3 || !version.bytes().all(|b| b.is_ascii_digit()) || version.starts_with('0')
    {
        return None;
    }
    let version: i64 = version.parse().ok()?;
    c.eat(' ')?;
    let timestamp = if c.eat('-').is_some() {
        None
    } else {
        Some(parse_rfc3339(&mut c)?)
    };
    let hostname = header_field(&mut c, 255)?;
    let appname = header_field(&mut c, 48)?;
    let procid = header_field(&mut c, 128)?;
    let msgid = header_field(&mut c, 32)?;
    let sd = structured_data(&mut c)?;
    let msg = if c.rest.is_empty() {
        ""
    } else {
        c.eat(' ')?;
        c.rest.strip_prefix(BOM).unwrap_or(c.rest)
    };

    let mut out = Object::with_capacity(11);
    push_str(&mut out, "protocol", "RFC5424");
    out.push("protocol_version".into(), Value::I64(version));
    priority_fields(&mut out, pri);
    if let Some(ts) = timestamp {
        out.push("timestamp".into(), Value::I64(ts));
    }
    for (key, value) in [
        ("hostname", hostname),
        ("appname", appname),
        ("procid", procid),
        ("msgid", msgid),
    ] {
        if let Some(value) = value {
            push_str(&mut out, key, value);
        }
    }
    if let Some(sd) = sd {
        out.push("structured_data".into(), Value::Object(sd));
    }
    if !msg.is_empty() {
        push_str(&mut out, "msg", msg);
    }
    Some(out)
}

/// RFC 3164's `Mmm dd hh:mm:ss` (the day space- or zero-padded), in nanoseconds, the year
/// taken from `now`.
fn parse_rfc3164_time(c: &mut Cursor<'_>, now: i64) -> Option<i64> {
    let month = MONTHS.iter().position(|m| c.rest.starts_with(m))?;
    c.rest = &c.rest[3..];
    c.eat(' ')?;
    let day = if c.eat(' ').is_some() {
        c.digits(1)?
    } else {
        c.digits(2)?
    };
    c.eat(' ')?;
    let time = time_of_day(c)?;
    let month = u32::try_from(month + 1).ok()?;
    let today = Civil::from_nanos(now);
    let year = if today.month == 1 && month == 12 {
        today.year - 1
    } else {
        today.year
    };
    date_nanos(year, month, day, time, 0)
}

/// `appname[procid]: msg` or `appname: msg` (the space after `:` is optional).
fn split_tag(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let end = text.find([' ', '[', ':'])?;
    if end == 0 {
        return None;
    }
    let (appname, rest) = text.split_at(end);
    let (procid, rest) = match rest.strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']')?;
            (Some(&inner[..close]), &inner[close + 1..])
        }
        None => (None, rest),
    };
    let msg = rest.strip_prefix(':')?;
    Some((
        appname,
        procid.filter(|p| !p.is_empty()),
        msg.strip_prefix(' ').unwrap_or(msg),
    ))
}

/// An RFC 3164 message after its PRI.
fn decode_rfc3164(pri: u8, text: &str, now: i64) -> Object {
    let mut out = Object::with_capacity(8);
    push_str(&mut out, "protocol", "RFC3164");
    priority_fields(&mut out, pri);
    let mut c = Cursor { rest: text };
    let Some(timestamp) =
        parse_rfc3164_time(&mut c, now).filter(|_| c.rest.is_empty() || c.rest.starts_with(' '))
    else {
        // No valid timestamp: all of it is the message (RFC 3164 §4.3.2).
        if !text.is_empty() {
            push_str(&mut out, "msg", text);
        }
        return out;
    };
    out.push("timestamp".into(), Value::I64(timestamp));
    let rest = c.rest.strip_prefix(' ').unwrap_or(c.rest);
    let mut c = Cursor { rest };
    let rest = match c.word() {
        // A first word that is (or starts) a `tag:` means there is no hostname.
        Some(word) if word.contains(['[', ':']) => rest,
        Some(word) => {
            if word != "-" {
                push_str(&mut out, "hostname", word);
            }
            c.rest.strip_prefix(' ').unwrap_or(c.rest)
        }
        None => rest,
    };
    let msg = match split_tag(rest) {
        Some((appname, procid, msg)) => {
            push_str(&mut out, "appname", appname);
            if let Some(procid) = procid {
                push_str(&mut out, "procid", procid);
            }
            msg
        }
        None => rest,
    };
    if !msg.is_empty() {
        push_str(&mut out, "msg", msg);
    }
    out
}

impl Syslog {
    fn decode_text(&self, text: &str) -> Value {
        // No PRI: read as if `<13>` stood before it (RFC 3164 §4.3.3), so that what such an
        // event encodes to decodes the same.
        let (pri, rest) = parse_pri(text).unwrap_or((DEFAULT_PRI, text));
        let object =
            decode_rfc5424(pri, rest).unwrap_or_else(|| decode_rfc3164(pri, rest, (self.clock)()));
        Value::Object(object)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn bad(what: impl std::fmt::Display) -> PluginError {
    PluginError::data(what)
}

/// A string field, if present.
fn get_str<'a>(event: &'a Object, key: &str) -> Result<Option<&'a str>, PluginError> {
    match event.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(bad(format_args!(
            "`{key}` must be a string, found {}",
            other.type_name()
        ))),
    }
}

/// `facility` or `severity`: a name from `names`, or its number.
fn code(event: &Object, key: &str, names: &[&str], default: u8) -> Result<u8, PluginError> {
    let found = match event.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::String(s)) => names.iter().position(|n| *n == s.as_str()),
        Some(v) => v.as_u64().and_then(|n| usize::try_from(n).ok()),
    };
    found
        .filter(|&i| i < names.len())
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| {
            bad(format_args!(
                "`{key}` must be one of {} (or 0 to {}), found {}",
                names.join(", "),
                names.len() - 1,
                event.get(key).map(Value::to_json).unwrap_or_default()
            ))
        })
}

fn get_timestamp(event: &Object) -> Result<Option<i64>, PluginError> {
    match event.get("timestamp") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            bad(format_args!(
                "`timestamp` must be nanoseconds since the epoch (an integer), found {}",
                v.to_json()
            ))
        }),
    }
}

/// Writes an RFC 5424 header field (printable US-ASCII, at most `max`), or `-`.
fn write_header_field(
    out: &mut String,
    event: &Object,
    key: &str,
    max: usize,
) -> Result<(), PluginError> {
    out.push(' ');
    match get_str(event, key)? {
        None => out.push('-'),
        Some(v) => {
            if v.is_empty() || v.len() > max || !v.bytes().all(|b| (33..=126).contains(&b)) {
                return Err(bad(format_args!(
                    "`{key}` must be 1 to {max} printable US-ASCII characters without spaces \
                     (RFC 5424), found {v:?}"
                )));
            }
            out.push_str(v);
        }
    }
    Ok(())
}

fn check_sd_name(name: &str, what: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'));
    if ok {
        Ok(())
    } else {
        Err(bad(format_args!(
            "`structured_data`: {what} {name:?} must be 1 to 32 printable US-ASCII characters \
             without `=`, `]`, `\"` or spaces"
        )))
    }
}

fn write_structured_data(out: &mut String, sd: &Value) -> Result<(), PluginError> {
    let shape = || {
        bad(
            "`structured_data` must be an object of SD-IDs, each an array of objects of string parameters",
        )
    };
    let sd = sd.as_object().ok_or_else(shape)?;
    if sd.is_empty() {
        out.push('-');
        return Ok(());
    }
    for (id, params) in sd.iter() {
        check_sd_name(id, "SD-ID")?;
        out.push('[');
        out.push_str(id);
        for param in params.as_array().ok_or_else(shape)? {
            for (name, value) in param.as_object().ok_or_else(shape)?.iter() {
                check_sd_name(name, "parameter name")?;
                let value = value.as_str().ok_or_else(shape)?;
                out.push(' ');
                out.push_str(name);
                out.push_str("=\"");
                for ch in value.chars() {
                    if matches!(ch, '"' | '\\' | ']') {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('"');
            }
        }
        out.push(']');
    }
    Ok(())
}

fn write_rfc3339(out: &mut String, ns: i64) {
    let t = Civil::from_nanos(ns);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    if t.nanos % 1_000_000 == 0 {
        if t.nanos != 0 {
            let _ = write!(out, ".{:03}", t.nanos / 1_000_000);
        }
    } else if t.nanos % 1000 == 0 {
        let _ = write!(out, ".{:06}", t.nanos / 1000);
    } else {
        let _ = write!(out, ".{:09}", t.nanos);
    }
    out.push('Z');
}

fn encode_rfc5424(out: &mut String, event: &Object, pri: u8) -> Result<(), PluginError> {
    let version = match event.get("protocol_version") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|v| (1..=999).contains(v))
            .ok_or_else(|| {
                bad(format_args!(
                    "`protocol_version` must be an integer from 1 to 999, found {}",
                    v.to_json()
                ))
            })?,
    };
    let _ = write!(out, "<{pri}>{version} ");
    match get_timestamp(event)? {
        Some(ns) => write_rfc3339(out, ns),
        None => out.push('-'),
    }
    write_header_field(out, event, "hostname", 255)?;
    write_header_field(out, event, "appname", 48)?;
    write_header_field(out, event, "procid", 128)?;
    write_header_field(out, event, "msgid", 32)?;
    out.push(' ');
    match event.get("structured_data") {
        None | Some(Value::Null) => out.push('-'),
        Some(sd) => write_structured_data(out, sd)?,
    }
    if let Some(msg) = get_str(event, "msg")?.filter(|m| !m.is_empty()) {
        out.push(' ');
        if msg.starts_with(BOM) {
            out.push(BOM);
        }
        out.push_str(msg);
    }
    Ok(())
}

fn encode_rfc3164(
    out: &mut String,
    event: &Object,
    pri: u8,
    now: Clock,
) -> Result<(), PluginError> {
    for key in ["structured_data", "msgid"] {
        if event.get(key).is_some_and(|v| !matches!(v, Value::Null)) {
            return Err(bad(format_args!(
                "`{key}` cannot be written in RFC 3164: set `protocol` to \"RFC5424\""
            )));
        }
    }
    let hostname = get_str(event, "hostname")?;
    let appname = get_str(event, "appname")?;
    let procid = get_str(event, "procid")?;
    let msg = get_str(event, "msg")?.unwrap_or("");
    for (key, value) in [("hostname", hostname), ("appname", appname)] {
        if let Some(v) = value
            && (v.is_empty() || v.contains([' ', '[', ':']))
        {
            return Err(bad(format_args!(
                "`{key}` must not be empty or hold a space, `[` or `:` in RFC 3164, found {v:?}"
            )));
        }
    }
    if procid.is_some_and(|p| p.contains(']')) {
        return Err(bad("`procid` must not hold `]` in RFC 3164"));
    }
    let _ = write!(out, "<{pri}>");
    let timestamp = match get_timestamp(event)? {
        Some(ns) => ns,
        None if hostname.is_none() && appname.is_none() && procid.is_none() => {
            out.push_str(msg);
            return Ok(());
        }
        None => now(),
    };
    let t = Civil::from_nanos(timestamp);
    let month = MONTHS[usize::try_from(t.month - 1).unwrap_or(0)];
    let _ = write!(
        out,
        "{month} {:>2} {:02}:{:02}:{:02} {}",
        t.day,
        t.hour,
        t.minute,
        t.second,
        hostname.unwrap_or("-")
    );
    out.push(' ');
    match (appname, procid) {
        (Some(app), Some(pid)) => {
            let _ = write!(out, "{app}[{pid}]: ");
        }
        (Some(app), None) => {
            let _ = write!(out, "{app}: ");
        }
        (None, Some(_)) => return Err(bad("`procid` needs an `appname` in RFC 3164")),
        (None, None) => {}
    }
    out.push_str(msg);
    Ok(())
}

impl Codec for Syslog {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        if frame.is_empty() {
            return Err("an empty frame is no syslog message".to_owned());
        }
        let text = std::str::from_utf8(frame)
            .map_err(|e| format!("invalid UTF-8 at byte offset {}", e.valid_up_to()))?;
        Ok(self.decode_text(text))
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        let event = event.as_object().ok_or_else(|| {
            bad(format_args!(
                "a syslog event must be an object, found {}",
                event.type_name()
            ))
        })?;
        let pri = (code(event, "facility", &FACILITIES, 1)? << 3)
            | code(event, "severity", &SEVERITIES, 5)?;
        let mut text = String::with_capacity(128);
        match get_str(event, "protocol")? {
            Some("RFC3164") => encode_rfc3164(&mut text, event, pri, self.clock)?,
            Some("RFC5424") | None => encode_rfc5424(&mut text, event, pri)?,
            Some(other) => {
                return Err(bad(format_args!(
                    "`protocol` must be \"RFC5424\" or \"RFC3164\", found {other:?}"
                )));
            }
        }
        // `extend_from_copy_slice` is one memcpy; `RVec::extend_from_slice` copies byte by byte.
        out.extend_from_copy_slice(text.as_bytes());
        Ok(())
    }
}

temblor_shim::export_plugin! { name: "syslog", kind: Codec, codec: keyless::<Config, Syslog> }

#[cfg(test)]
mod tests;
