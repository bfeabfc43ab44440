//! The `yaml` codec: one [YAML] document per frame.
//!
//! Decoding runs [yaml-rust2]'s parser and builds the event straight from its events (no
//! intermediate YAML tree), resolving untagged scalars with the YAML 1.2 core schema.
//! Encoding writes each event as a block-style document that starts with `---`, so frames
//! joined by line breaks (the `separate` postprocessor) are a valid multi-document YAML stream.
//!
//! # Event shape
//!
//! | YAML | event ([`Value`]) |
//! | --- | --- |
//! | `null`, `Null`, `NULL`, `~`, nothing | `Null` |
//! | `true`, `True`, `TRUE`, `false`, `False`, `FALSE` | `Bool` |
//! | `12`, `-3`, `+7`, `0o17`, `0x1F` | `I64`, or `U64` above `i64::MAX`; an integer beyond 64 bits is an `F64` |
//! | `1.5`, `-2e3`, `.5`, `.inf`, `-.Inf`, `.nan` | `F64` |
//! | any other plain scalar, and every quoted (`'…'`, `"…"`) or block (`\|`, `>`) scalar | `String` |
//! | `!!binary` scalar (base64, whitespace allowed) | `Bytes` |
//! | sequence | `Array` |
//! | mapping | `Object` (fields in document order) |
//!
//! - Tags of the YAML core schema override resolution: `!!str 12` is the string `"12"`,
//!   `!!int "12"` the integer 12, `!!float 1` the float 1.0, `!!bool`, `!!null`, `!!binary`.
//!   Such a tag on text that does not fit it is an error. Other tags (`!local`, `!!set`,
//!   `!!timestamp`, ...) are ignored: the node resolves as if untagged.
//! - Mapping keys are scalars, and a key is the scalar's text as written: `1: a` gives the key
//!   `"1"`, `~: a` the key `"~"`. An alias as a key gives the text of the scalar it stands for
//!   (a string as it is, other scalars in their JSON form). A sequence or mapping as a key is an
//!   error. A key given twice is kept twice, in order (lookups find the first). `<<` merge keys
//!   are ordinary keys.
//! - Anchors and aliases are resolved: an alias is a copy of the node it refers to. Aliases
//!   cannot blow up memory: a document may expand to at most [`NODES_PER_BYTE`] values per byte
//!   of the frame (plus 1024), beyond that it is an error.
//! - Nesting is limited to [`MAX_DEPTH`] (128) sequences and mappings, aliases included.
//! - A frame is exactly one document: an empty frame (no document), a second document
//!   (`---` twice), invalid UTF-8 and every syntax error are per-frame errors with yaml-rust2's
//!   message and position (`<what> at byte <n> line <l> column <c>`).
//!
//! # Encoding
//!
//! - A mapping or sequence is written in block style, two spaces per level, sequences of
//!   mappings in the compact `- key: value` form; empty ones are `{}` and `[]`.
//! - A string is written plain when that cannot be misread (letters, digits, `_`, `-`, `.`,
//!   `/` and single inner spaces, starting with a letter or `_`, and not a word like `null`,
//!   `true`, `no` or `off`); otherwise in double quotes, with `\"`, `\\`, `\n`, `\t`, `\r`,
//!   `\0` and `\xNN` / `\uNNNN` for control and other non-printable characters. Keys follow
//!   the same rule; a key longer than 1000 characters as written (escapes included) is written as an explicit
//!   `? key` entry.
//! - Integers in decimal; floats the shortest way that reads back exactly, always with a `.`
//!   and a signed exponent if any (`1.0`, `1.0e+100`, `5.0e-324`, which YAML 1.1 readers take
//!   for floats too); non-finite floats as `.inf`, `-.inf` and `.nan`; bytes as
//!   `!!binary "<base64>"`.
//!
//! Every decoded event encodes to a document that decodes to an equal event (except `.nan`,
//! which is never equal to itself). Encoding never fails.
//!
//! # Config
//!
//! None: the codec takes no `config` keys, and refuses unknown ones.
//!
//! # Example
//!
//! JSON is YAML: read newline-delimited JSON with this codec and write block-style YAML:
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = "yaml"
//! preprocessors = ["separate"]
//! config = { path = "in.json", mode = "read" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = { name = "yaml" }
//! postprocessors = ["separate"]
//! config = { path = "out.yaml", mode = "write" }
//! ```
//!
//! [YAML]: https://yaml.org/spec/1.2.2/
//! [yaml-rust2]: https://docs.rs/yaml-rust2

use temblor_shim::{ByteSink, Codec, Object, PluginError, RString, RVec, Value, keyless};
use yaml_rust2::{
    parser::{Event, Parser, Tag},
    scanner::TScalarStyle,
};

/// The deepest nesting of sequences and mappings a document may have.
pub const MAX_DEPTH: usize = 128;

/// How many values a document may expand to (through aliases) per byte of the frame.
pub const NODES_PER_BYTE: usize = 4;

/// The codec's configuration: it has no keys.
#[derive(temblor_shim::serde::Deserialize, Debug, Default)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {}

/// The YAML codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct Yaml;

/// The handle of the core schema's tags (`!!int` is this handle and `int`).
const CORE: &str = "tag:yaml.org,2002:";

/// A collection being built.
enum Open {
    Seq {
        items: RVec<Value>,
        anchor: usize,
    },
    Map {
        object: Object,
        key: Option<RString>,
        anchor: usize,
    },
}

/// A completed anchored node: its value, how many values it holds, how deep it is.
struct Anchored {
    id: usize,
    value: Value,
    nodes: usize,
    depth: usize,
}

/// Builds one document's value from parser events.
struct Builder {
    stack: Vec<Open>,
    root: Option<Value>,
    anchors: Vec<Anchored>,
    /// How many more values the document may hold.
    budget: usize,
}

impl Builder {
    /// Whether the next node is a mapping key.
    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Open::Map { key: None, .. }))
    }

    fn spend(&mut self, nodes: usize) -> Result<(), String> {
        match self.budget.checked_sub(nodes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err("the document expands to too many values (aliases of aliases?)".to_owned()),
        }
    }

    /// Opens a collection.
    fn open(&mut self, open: Open, what: &str) -> Result<(), String> {
        if self.expects_key() {
            return Err(format!("a {what} as a mapping key is not supported"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!(
                "nesting deeper than {MAX_DEPTH} sequences and mappings"
            ));
        }
        self.spend(1)?;
        self.stack.push(open);
        Ok(())
    }

    /// Closes the innermost collection.
    fn close(&mut self) -> Result<(), String> {
        let (value, anchor) = match self.stack.pop() {
            Some(Open::Seq { items, anchor }) => (Value::Array(items), anchor),
            Some(Open::Map { object, anchor, .. }) => (Value::Object(object), anchor),
            None => return Err("internal error: a collection closed twice".to_owned()),
        };
        self.complete(value, anchor);
        Ok(())
    }

    /// Puts a finished node where it belongs, remembering it when it is anchored.
    fn complete(&mut self, value: Value, anchor: usize) {
        if anchor != 0 {
            let (nodes, depth) = measure(&value);
            self.anchors.push(Anchored {
                id: anchor,
                value: value.clone(),
                nodes,
                depth,
            });
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Open::Seq { items, .. }) => items.push(value),
            Some(Open::Map { object, key, .. }) => {
                if let Some(key) = key.take() {
                    object.push(key, value);
                }
            }
        }
    }

    /// Sets the pending key of the innermost mapping.
    fn set_key(&mut self, text: RString) {
        if let Some(Open::Map { key, .. }) = self.stack.last_mut() {
            *key = Some(text);
        }
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
    ) -> Result<(), String> {
        self.spend(1)?;
        if self.expects_key() {
            if anchor != 0 {
                let value = resolve(&text, style, tag)?;
                self.anchors.push(Anchored {
                    id: anchor,
                    value,
                    nodes: 1,
                    depth: 0,
                });
            }
            self.set_key(RString::from(text));
            return Ok(());
        }
        let value = resolve(&text, style, tag)?;
        self.complete(value, anchor);
        Ok(())
    }

    fn alias(&mut self, id: usize) -> Result<(), String> {
        let Some(at) = self.anchors.iter().rposition(|a| a.id == id) else {
            return Err("an alias to an unknown or unfinished anchor".to_owned());
        };
        let (nodes, depth) = (self.anchors[at].nodes, self.anchors[at].depth);
        if self.expects_key() {
            let key = match &self.anchors[at].value {
                Value::String(s) => s.clone(),
                Value::Array(_) | Value::Object(_) => {
                    return Err(
                        "an alias to a collection as a mapping key is not supported".to_owned()
                    );
                }
                scalar => RString::from(scalar.to_json()),
            };
            self.spend(1)?;
            self.set_key(key);
            return Ok(());
        }
        if self.stack.len() + depth > MAX_DEPTH {
            return Err(format!(
                "nesting deeper than {MAX_DEPTH} sequences and mappings (through an alias)"
            ));
        }
        self.spend(nodes)?;
        let value = self.anchors[at].value.clone();
        self.complete(value, 0);
        Ok(())
    }
}

/// How many values a value holds (itself included) and how deep its collections go.
fn measure(value: &Value) -> (usize, usize) {
    match value {
        Value::Array(items) => items.iter().fold((1, 1), |(n, d), item| {
            let (m, e) = measure(item);
            (n + m, d.max(e + 1))
        }),
        Value::Object(object) => object.iter().fold((1, 1), |(n, d), (_, item)| {
            let (m, e) = measure(item);
            (n + m, d.max(e + 1))
        }),
        _ => (1, 0),
    }
}

/// Decodes one frame holding exactly one YAML document.
///
/// # Errors
/// yaml-rust2's message with its position, or why the document is not accepted (see the crate
/// docs).
pub fn decode_document(frame: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(frame)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        anchors: Vec::new(),
        budget: frame
            .len()
            .saturating_mul(NODES_PER_BYTE)
            .saturating_add(1024),
    };
    let mut documents = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| e.to_string())?;
        let at = |message: String| {
            format!(
                "{message} at byte {} line {} column {}",
                mark.index(),
                mark.line(),
                mark.col() + 1
            )
        };
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(at("more than one document in the frame".to_owned()));
                }
            }
            Event::Scalar(text, style, anchor, tag) => builder
                .scalar(text, style, anchor, tag.as_ref())
                .map_err(at)?,
            Event::Alias(id) => builder.alias(id).map_err(at)?,
            Event::SequenceStart(anchor, _) => builder
                .open(
                    Open::Seq {
                        items: RVec::new(),
                        anchor,
                    },
                    "sequence",
                )
                .map_err(at)?,
            Event::MappingStart(anchor, _) => builder
                .open(
                    Open::Map {
                        object: Object::new(),
                        key: None,
                        anchor,
                    },
                    "mapping",
                )
                .map_err(at)?,
            Event::SequenceEnd | Event::MappingEnd => builder.close().map_err(at)?,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
    }
    builder
        .root
        .ok_or_else(|| "no YAML document in the frame".to_owned())
}

/// The value of a scalar, from its text, style and tag.
fn resolve(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag.filter(|t| t.handle == CORE) {
        let wrong = || format!("{text:?} is not a valid !!{}", tag.suffix);
        match tag.suffix.as_str() {
            "str" => return Ok(Value::from(text)),
            "null" => {
                return if null(text) {
                    Ok(Value::Null)
                } else {
                    Err(wrong())
                };
            }
            "bool" => return boolean(text).map(Value::Bool).ok_or_else(wrong),
            "int" => return integer(text).ok_or_else(wrong),
            "float" => {
                return match float(text).or_else(|| integer(text)) {
                    Some(Value::F64(f)) => Ok(Value::F64(f)),
                    Some(Value::I64(i)) => Ok(Value::F64(i as f64)),
                    Some(Value::U64(u)) => Ok(Value::F64(u as f64)),
                    _ => Err(wrong()),
                };
            }
            "binary" => {
                return base64_decode(text)
                    .map(|bytes| Value::Bytes(bytes.into()))
                    .map_err(|e| format!("bad !!binary: {e}"));
            }
            _ => {}
        }
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::from(text));
    }
    if null(text) {
        return Ok(Value::Null);
    }
    if let Some(b) = boolean(text) {
        return Ok(Value::Bool(b));
    }
    Ok(integer(text)
        .or_else(|| float(text))
        .unwrap_or_else(|| Value::from(text)))
}

fn null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A core-schema integer: decimal (with a sign), `0o` octal or `0x` hexadecimal.
fn integer(text: &str) -> Option<Value> {
    let radix_digits = |prefix: &str, radix: u32| {
        let digits = text.strip_prefix(prefix)?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u64::from_str_radix(digits, radix).ok().map(Value::from)
    };
    if let Some(v) = radix_digits("0o", 8).or_else(|| radix_digits("0x", 16)) {
        return Some(v);
    }
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match digits.parse::<u64>() {
        Ok(u) if negative => match 0_i64.checked_sub_unsigned(u) {
            Some(i) => Value::I64(i),
            None => Value::F64(-(u as f64)),
        },
        Ok(u) => Value::from(u),
        // Beyond 64 bits: the nearest float.
        Err(_) => Value::F64(text.parse().ok()?),
    })
}

/// A core-schema float: `[-+]?(.digits|digits(.digits?)?)([eE][-+]?digits)?`, `.inf`, `.nan`.
fn float(text: &str) -> Option<Value> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        let inf = if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return Some(Value::F64(inf));
    }
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(Value::F64(f64::NAN));
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int)
        && frac.is_none_or(digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    text.parse().ok().map(Value::F64)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes standard base64 with padding; whitespace is skipped.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut quad = [0_u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for (at, c) in text.bytes().enumerate() {
        let sextet = match c {
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            b'=' => {
                pad += 1;
                0
            }
            _ if pad > 0 => return Err(format!("data after '=' padding at {at}")),
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("{:?} at {at} is not base64", char::from(c))),
        };
        quad[n] = sextet;
        n += 1;
        if n == 4 {
            if pad > 2 {
                return Err("too much '=' padding".to_owned());
            }
            let bits = quad.iter().fold(0_u32, |acc, &s| acc << 6 | u32::from(s));
            out.extend_from_slice(&bits.to_be_bytes()[1..4 - pad]);
            n = 0;
            if pad > 0 {
                pad = 3; // nothing may follow a padded quad
            }
        }
    }
    if n != 0 {
        return Err("the base64 length is not a multiple of 4".to_owned());
    }
    Ok(out)
}

fn base64_encode<B: ByteSink>(bytes: &[u8], out: &mut B) {
    for chunk in bytes.chunks(3) {
        let mut buf = [0_u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from(buf[0]) << 16 | u32::from(buf[1]) << 8 | u32::from(buf[2]);
        let mut quad = [b'='; 4];
        for (i, slot) in quad.iter_mut().enumerate().take(chunk.len() + 1) {
            *slot = BASE64[(bits >> (18 - 6 * i) & 63) as usize];
        }
        out.put(&quad);
    }
}

/// Encodes one value as a YAML document (starting with `---`, no final line break) into `out`.
pub fn encode_document<B: ByteSink>(value: &Value, out: &mut B) {
    out.put(b"---");
    match value {
        Value::Object(object) if !object.is_empty() => write_map(out, object, 0, false),
        Value::Array(items) if !items.is_empty() => write_seq(out, items, 0, false),
        scalar => {
            out.put_byte(b' ');
            write_scalar(out, scalar);
        }
    }
}

fn newline<B: ByteSink>(out: &mut B, indent: usize) {
    out.put_byte(b'\n');
    for _ in 0..indent {
        out.put_byte(b' ');
    }
}

/// Writes a mapping's entries at `indent`; the first on the current line if `inline_first`.
fn write_map<B: ByteSink>(out: &mut B, object: &Object, indent: usize, inline_first: bool) {
    for (i, (key, value)) in object.iter().enumerate() {
        if i > 0 || !inline_first {
            newline(out, indent);
        }
        // Implicit keys are limited to 1024 characters as written (escapes included); an
        // explicit `? key` is not. Escaping makes a byte at most 6 characters long, so only a
        // key that could exceed the limit is rendered first to measure it.
        if key.len() * 6 + 2 <= 1000 {
            write_string(out, key);
        } else {
            let mut written = Vec::with_capacity(key.len() + 2);
            write_string(&mut written, key);
            if written.len() > 1000 {
                out.put(b"? ");
                out.put(&written);
                newline(out, indent);
            } else {
                out.put(&written);
            }
        }
        out.put_byte(b':');
        match value {
            Value::Object(o) if !o.is_empty() => write_map(out, o, indent + 2, false),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2, false),
            scalar => {
                out.put_byte(b' ');
                write_scalar(out, scalar);
            }
        }
    }
}

/// Writes a sequence's items at `indent`; the first on the current line if `inline_first`.
fn write_seq<B: ByteSink>(out: &mut B, items: &[Value], indent: usize, inline_first: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            newline(out, indent);
        }
        out.put(b"- ");
        match item {
            Value::Object(o) if !o.is_empty() => write_map(out, o, indent + 2, true),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2, true),
            scalar => write_scalar(out, scalar),
        }
    }
}

/// Writes a scalar, or an empty collection in flow style.
fn write_scalar<B: ByteSink>(out: &mut B, value: &Value) {
    match value {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::I64(_) | Value::U64(_) => value.write_json(out),
        Value::F64(f) if f.is_finite() => write_float(out, value),
        Value::F64(f) if f.is_nan() => out.put(b".nan"),
        Value::F64(f) if *f > 0.0 => out.put(b".inf"),
        Value::F64(_) => out.put(b"-.inf"),
        Value::String(s) => write_string(out, s),
        Value::Bytes(bytes) => {
            out.put(b"!!binary \"");
            base64_encode(bytes, out);
            out.put_byte(b'"');
        }
        Value::Array(_) => out.put(b"[]"),
        Value::Object(_) => out.put(b"{}"),
    }
}

/// Writes a finite float the shortest way that reads back exactly, in a form YAML 1.1 readers
/// take for a float too: with a `.` and a signed exponent (`1.0e+300`, not `1e300`).
fn write_float<B: ByteSink>(out: &mut B, value: &Value) {
    let mut text = Vec::with_capacity(24);
    value.write_json(&mut text);
    match text.iter().position(|&b| b == b'e') {
        Some(e) => {
            out.put(&text[..e]);
            if !text[..e].contains(&b'.') {
                out.put(b".0");
            }
            out.put_byte(b'e');
            if text.get(e + 1) != Some(&b'-') {
                out.put_byte(b'+');
            }
            out.put(&text[e + 1..]);
        }
        None => out.put(&text),
    }
}

/// Whether a string can be written as a plain scalar and read back as the same string.
fn plain_safe(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'_') || bytes.ends_with(b" ") {
        return false;
    }
    let chars_ok = bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b' '));
    if !chars_ok || s.contains("  ") {
        return false;
    }
    // Words some YAML reader takes for something else (1.1 booleans included).
    !matches!(
        s.to_ascii_lowercase().as_str(),
        "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    )
}

/// Writes a string plain, or double-quoted with escapes.
fn write_string<B: ByteSink>(out: &mut B, s: &str) {
    if plain_safe(s) {
        out.put(s.as_bytes());
        return;
    }
    out.put_byte(b'"');
    let mut plain_from = 0;
    for (at, c) in s.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\t' => Some(b"\\t"),
            '\r' => Some(b"\\r"),
            '\0' => Some(b"\\0"),
            _ => None,
        };
        let needs_hex = escape.is_none()
            && (c < ' '
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ));
        if escape.is_none() && !needs_hex {
            continue;
        }
        out.put(&s.as_bytes()[plain_from..at]);
        plain_from = at + c.len_utf8();
        match escape {
            Some(e) => out.put(e),
            None => {
                let code = u32::from(c);
                let hex = b"0123456789abcdef";
                if code <= 0xff {
                    out.put(&[
                        b'\\',
                        b'x',
                        hex[(code >> 4) as usize],
                        hex[(code & 15) as usize],
                    ]);
                } else {
                    out.put(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.put_byte(hex[(code >> shift & 15) as usize]);
                    }
                }
            }
        }
    }
    out.put(&s.as_bytes()[plain_from..]);
    out.put_byte(b'"');
}

impl Codec for Yaml {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        decode_document(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        encode_document(event, out);
        Ok(())
    }
}

temblor_shim::export_plugin! { name: "yaml", kind: Codec, codec: keyless::<Config, Yaml> }

#[cfg(test)]
mod tests {
    use temblor_harness::codec::{decode_batch, encode_batch, indexes};

    use super::*;

    temblor_harness::codec_unit_helpers!(Yaml);

    fn arr(items: &[Value]) -> Value {
        Value::from(items.to_vec())
    }

    /// Encodes, decodes, and checks the value is the same.
    fn round_trip(value: &Value) -> String {
        let yaml = enc(value);
        let back = decode_document(yaml.as_bytes()).unwrap_or_else(|e| panic!("{yaml}\n: {e}"));
        assert_eq!(&back, value, "\n{yaml}");
        yaml
    }

    #[test]
    fn resolves_plain_scalars_with_the_core_schema() {
        for null in ["~", "null", "Null", "NULL", "---", "--- ~", "--- ", "a:"] {
            let v = ok(null);
            let v = v.get("a").unwrap_or(&v);
            assert!(matches!(v, Value::Null), "{null:?}");
        }
        for (text, want) in [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("false", false),
            ("False", false),
            ("FALSE", false),
        ] {
            assert_eq!(ok(text), Value::Bool(want), "{text}");
        }
        for (text, want) in [
            ("0", 0_i64),
            ("12", 12),
            ("-3", -3),
            ("+7", 7),
            ("007", 7),
            ("0o17", 15),
            ("0x1F", 31),
            ("0xff", 255),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert!(
                matches!(ok(text), Value::I64(i) if i == want),
                "{text}: {:?}",
                ok(text)
            );
        }
        assert!(matches!(ok("18446744073709551615"), Value::U64(u64::MAX)));
        assert!(matches!(ok("0xffffffffffffffff"), Value::U64(u64::MAX)));
        assert!(
            matches!(ok("123456789012345678901234567890"), Value::F64(f) if f == 1.2345678901234568e29)
        );
        for (text, want) in [
            ("1.5", 1.5),
            ("-2e3", -2000.0),
            (".5", 0.5),
            ("1.", 1.0),
            ("+1.25E+2", 125.0),
            ("0.0", 0.0),
        ] {
            assert!(
                matches!(ok(text), Value::F64(f) if f == want),
                "{text}: {:?}",
                ok(text)
            );
        }
        assert!(matches!(ok(".inf"), Value::F64(f) if f == f64::INFINITY));
        assert!(matches!(ok("-.Inf"), Value::F64(f) if f == f64::NEG_INFINITY));
        assert!(matches!(ok(".NaN"), Value::F64(f) if f.is_nan()));
        // Everything else is a string: YAML 1.1 words, odd numbers, plain text.
        for text in [
            "yes",
            "no",
            "on",
            "off",
            "y",
            "1_000",
            "0b101",
            "1e",
            "e5",
            ".",
            "-x",
            "0o8",
            "0x",
            "1.2.3",
            "nan",
            "inf",
            "hello world",
            "a:b",
        ] {
            let v = ok(&format!("!!str {text}"));
            assert_eq!(v, Value::from(text), "{text}");
            assert_eq!(ok(text), Value::from(text), "{text} untagged");
        }
    }

    #[test]
    fn quoted_and_block_scalars_are_strings() {
        assert_eq!(ok("'12'"), Value::from("12"));
        assert_eq!(ok("\"true\""), Value::from("true"));
        assert_eq!(ok("''"), Value::from(""));
        assert_eq!(ok("'it''s'"), Value::from("it's"));
        assert_eq!(
            ok(r#""a\"b\\c\n\t\x41\u00e9\U0001F600\N\L\P\0""#),
            Value::from("a\"b\\c\n\tAé😀\u{85}\u{2028}\u{2029}\0")
        );
        assert_eq!(
            ok("|\n  line 1\n  line 2\n"),
            Value::from("line 1\nline 2\n")
        );
        assert_eq!(ok(">\n  folded\n  text\n"), Value::from("folded text\n"));
        assert_eq!(ok("é 😀"), Value::from("é 😀"));
    }

    #[test]
    fn tags_override_resolution() {
        assert_eq!(ok("!!str 12"), Value::from("12"));
        assert!(matches!(ok("!!int \"12\""), Value::I64(12)));
        assert!(matches!(ok("!!float 1"), Value::F64(f) if f == 1.0));
        assert!(matches!(ok("!!float '2.5'"), Value::F64(f) if f == 2.5));
        assert_eq!(ok("!!bool 'true'"), Value::Bool(true));
        assert_eq!(ok("!!null ''"), Value::Null);
        assert_eq!(
            ok("!!binary aGVsbG8="),
            Value::Bytes(b"hello".to_vec().into())
        );
        assert_eq!(
            ok("!!binary |\n  aGVs\n  bG8h\n"),
            Value::Bytes(b"hell\x6f!".to_vec().into())
        );
        assert_eq!(ok("!!binary ''"), Value::Bytes(RVec::new()));
        // Other tags are ignored.
        assert!(matches!(ok("!local 12"), Value::I64(12)));
        assert_eq!(ok("!!timestamp 2001-12-14"), Value::from("2001-12-14"));
        assert_eq!(
            ok("!!set {a, b}"),
            obj(&[("a", Value::Null), ("b", Value::Null)])
        );
        // A tag that does not fit is an error: the message starts with, or holds, the reason.
        for (yaml, starts, reason) in [
            ("!!int abc", true, "\"abc\" is not a valid !!int at byte"),
            ("!!bool yes", false, "is not a valid !!bool"),
            ("!!null x", false, "is not a valid !!null"),
            ("!!float x", false, "is not a valid !!float"),
            (
                "!!binary a$==",
                true,
                "bad !!binary: '$' at 1 is not base64",
            ),
            ("!!binary abc", false, "not a multiple of 4"),
            ("!!binary ab=c", false, "data after '=' padding"),
        ] {
            let e = err(yaml);
            let says = if starts {
                e.starts_with(reason)
            } else {
                e.contains(reason)
            };
            assert!(says, "{yaml}: {e}");
        }
    }

    #[test]
    fn collections_keep_order_and_duplicate_keys() {
        let v = ok("z: 1\na:\n  - x\n  - {b: [1, 2], c: null}\nm: {}\nn: []\n");
        assert_eq!(
            v,
            obj(&[
                ("z", 1.into()),
                (
                    "a",
                    arr(&[
                        "x".into(),
                        obj(&[("b", arr(&[1.into(), 2.into()])), ("c", Value::Null)])
                    ])
                ),
                ("m", obj(&[])),
                ("n", arr(&[])),
            ])
        );
        let keys: Vec<_> = v.as_object().unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["z", "a", "m", "n"]);
        let dup = ok("a: 1\na: 2");
        assert_eq!(dup.as_object().map(Object::len), Some(2));
        assert_eq!(dup.get("a"), Some(&Value::I64(1)));
        assert_eq!(enc(&dup), "---\na: 1\na: 2");
    }

    #[test]
    fn keys_are_the_scalar_text() {
        let v = ok("1: a\n~: b\ntrue: c\n'q': d\n0x10: e\n: f");
        let keys: Vec<_> = v.as_object().unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["1", "~", "true", "q", "0x10", ""]);
        assert_eq!(
            round_trip(&v),
            "---\n\"1\": a\n\"~\": b\n\"true\": c\nq: d\n\"0x10\": e\n\"\": f"
        );
        assert!(err(b"[a]: 1").starts_with("a sequence as a mapping key is not supported"));
        assert!(err(b"? {a: 1}\n: 2").starts_with("a mapping as a mapping key is not supported"));
    }

    #[test]
    fn anchors_and_aliases() {
        let v = ok(
            "base: &b {x: 1, y: [2]}\ncopy: *b\nn: &n 5\nm: *n\n*n : key from an alias\n&k kk: v\nagain: *k",
        );
        assert_eq!(v.get("copy"), v.get("base"));
        assert_eq!(v.get("m"), Some(&Value::I64(5)));
        assert_eq!(v.get("5"), Some(&Value::from("key from an alias")));
        assert_eq!(v.get("again"), Some(&Value::from("kk")));
        // A later anchor of the same name wins.
        assert_eq!(
            ok("- &a 1\n- &a 2\n- *a"),
            arr(&[1.into(), 2.into(), 2.into()])
        );
        assert!(
            err(b"*nope").contains("did not find expected") || err(b"*nope").contains("unknown")
        );
        assert!(
            err(b"&a [*a]").starts_with("an alias to an unknown or unfinished anchor"),
            "{}",
            err(b"&a [*a]")
        );
        assert!(err(b"- &c [1]\n- {*c : x}").contains("an alias to a collection as a mapping key"));
    }

    #[test]
    fn billion_laughs_are_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = err(doc.as_bytes());
        assert!(
            e.starts_with("the document expands to too many values"),
            "{e}"
        );
        // A few aliases are fine.
        assert!(ok("a: &a [1, 2, 3]\nb: [*a, *a, *a]").get("b").is_some());
    }

    #[test]
    fn depth_is_bounded() {
        let flow = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert_eq!(measure(&ok(&flow(MAX_DEPTH))).1, MAX_DEPTH);
        assert!(err(flow(MAX_DEPTH + 1).as_bytes()).starts_with("nesting deeper than 128"));
        let block: String = (0..=MAX_DEPTH)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert!(err(block.as_bytes()).starts_with("nesting deeper than 128"));
        let seqs: String = (0..200).map(|i| format!("{}-\n", " ".repeat(i))).collect();
        assert!(err(seqs.as_bytes()).starts_with("nesting deeper than 128"));
        // Aliases cannot nest deeper either.
        let deep = flow(100);
        let e = err(format!(
            "a: &a {deep}\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        )
        .as_bytes());
        assert!(e.contains("through an alias"), "{e}");
        // Scanner limits are errors too, never a stack overflow.
        assert!(decode_document("[".repeat(100_000).as_bytes()).is_err());
        assert!(decode_document("- ".repeat(100_000).as_bytes()).is_err());
        assert!(decode_document("{a: ".repeat(100_000).as_bytes()).is_err());
    }

    #[test]
    fn one_document_per_frame() {
        assert_eq!(err(b""), "no YAML document in the frame");
        assert_eq!(err(b"# only a comment\n"), "no YAML document in the frame");
        assert!(err(b"a: 1\n---\nb: 2").starts_with("more than one document in the frame at byte"));
        assert_eq!(ok("--- 1\n..."), Value::I64(1));
        assert_eq!(ok("%YAML 1.2\n---\nx"), Value::from("x"));
        assert!(err(b"a: [1, 2").contains("at byte"), "{}", err(b"a: [1, 2"));
        assert!(err(b"a: b: c").contains("line 1"), "{}", err(b"a: b: c"));
        assert_eq!(err(b"\xff"), "invalid UTF-8 at byte 0");
    }

    #[test]
    fn encodes_block_style() {
        assert_eq!(enc(&Value::Null), "--- null");
        assert_eq!(enc(&Value::I64(-3)), "--- -3");
        assert_eq!(enc(&Value::F64(1.0)), "--- 1.0");
        assert_eq!(enc(&Value::F64(-0.25)), "--- -0.25");
        assert_eq!(enc(&Value::F64(1e300)), "--- 1.0e+300");
        assert_eq!(enc(&Value::F64(-1.5e-7)), "--- -1.5e-7");
        assert_eq!(enc(&Value::F64(5e-324)), "--- 5.0e-324");
        assert_eq!(enc(&Value::F64(f64::NEG_INFINITY)), "--- -.inf");
        assert_eq!(enc(&Value::from("plain text")), "--- plain text");
        assert_eq!(enc(&obj(&[])), "--- {}");
        assert_eq!(enc(&arr(&[])), "--- []");
        assert_eq!(
            enc(&Value::Bytes(b"hello".to_vec().into())),
            "--- !!binary \"aGVsbG8=\""
        );
        let v = obj(&[
            ("name", "ann".into()),
            ("tags", arr(&["a".into(), "b c".into()])),
            (
                "nested",
                obj(&[("deep", obj(&[("x", 1.into())])), ("e", obj(&[]))]),
            ),
            (
                "rows",
                arr(&[
                    obj(&[("k", 1.into()), ("l", 2.into())]),
                    arr(&[1.into(), arr(&[2.into(), 3.into()])]),
                ]),
            ),
        ]);
        assert_eq!(
            round_trip(&v),
            "---\nname: ann\ntags:\n  - a\n  - b c\nnested:\n  deep:\n    x: 1\n  e: {}\nrows:\n  - k: 1\n    l: 2\n  - - 1\n    - - 2\n      - 3"
        );
    }

    #[test]
    fn quotes_strings_that_need_it() {
        for (s, want) in [
            ("", r#""""#),
            ("12", r#""12""#),
            ("1.5", r#""1.5""#),
            ("true", r#""true""#),
            ("No", r#""No""#),
            ("null", r#""null""#),
            ("~", r#""~""#),
            ("-a", r#""-a""#),
            ("a: b", r#""a: b""#),
            ("a #b", r#""a #b""#),
            ("trailing ", r#""trailing ""#),
            ("two  spaces", r#""two  spaces""#),
            ("é", r#""é""#),
            ("say \"hi\"\\", r#""say \"hi\"\\""#),
            ("l1\nl2\tt\r\0", r#""l1\nl2\tt\r\0""#),
            (
                "\u{1}\u{7f}\u{85}\u{2028}\u{feff}",
                r#""\x01\x7f\x85\u2028\ufeff""#,
            ),
            ("😀", r#""😀""#),
        ] {
            let yaml = round_trip(&Value::from(s));
            assert_eq!(yaml, format!("--- {want}"), "{s:?}");
        }
        for s in ["a", "doc-type", "v1.2/x_y", "_private", "Hello World"] {
            assert_eq!(round_trip(&Value::from(s)), format!("--- {s}"));
        }
    }

    #[test]
    fn round_trips() {
        let long_key = "k".repeat(2000);
        let values = [
            obj(&[
                ("s", Value::from("é€ \"x\" 'y' # z: w")),
                ("i", Value::I64(i64::MIN)),
                ("u", Value::U64(u64::MAX)),
                ("f", Value::F64(-0.1)),
                ("tiny", Value::F64(5e-324)),
                ("big", Value::F64(1e300)),
                ("b", Value::Bytes((0..=255).collect::<Vec<u8>>().into())),
                ("e", Value::Bytes(RVec::new())),
                ("n", Value::Null),
                ("t", Value::Bool(false)),
                ("inf", Value::F64(f64::INFINITY)),
                ("multi", Value::from("line 1\nline 2\n")),
                (
                    long_key.as_str(),
                    arr(&[1.into(), obj(&[(long_key.as_str(), 2.into())])]),
                ),
                ("", Value::from("empty key")),
            ]),
            arr(&[
                arr(&[arr(&[])]),
                obj(&[("a", arr(&[obj(&[])]))]),
                Value::Null,
            ]),
            Value::from("x".repeat(5000)),
        ];
        for value in &values {
            round_trip(value);
        }
        // Deep but allowed.
        let mut deep = Value::I64(1);
        for i in 0..MAX_DEPTH {
            deep = if i % 2 == 0 {
                arr(&[deep])
            } else {
                obj(&[("k", deep)])
            };
        }
        round_trip(&deep);
    }

    #[test]
    fn json_is_yaml() {
        let v = ok(r#"{"a": [1, -2.5, "x", true, null, {"b": {}}], "c": "d\"e"}"#);
        assert_eq!(
            v,
            obj(&[
                (
                    "a",
                    arr(&[
                        1.into(),
                        Value::F64(-2.5),
                        "x".into(),
                        true.into(),
                        Value::Null,
                        obj(&[("b", obj(&[]))])
                    ])
                ),
                ("c", "d\"e".into()),
            ])
        );
        round_trip(&v);
    }

    #[test]
    fn never_panics_on_mangled_documents() {
        let doc = enc(&obj(&[
            (
                "a",
                arr(&[1.into(), "x y".into(), obj(&[("k", Value::from("v: w"))])]),
            ),
            ("b", Value::Bytes(b"bin".to_vec().into())),
            ("c", Value::from("q\"uote\n")),
        ]));
        let doc = format!("{doc}\nd: &x [1, {{e: *x}}]\nf: |\n  lit\ng: >-\n  fold\nh: !!int 3");
        let bytes = doc.as_bytes();
        let mut decoded = 0;
        for i in 0..bytes.len() {
            for b in [
                b'-', b':', b' ', b'\n', b'[', b'{', b'"', b'\'', b'&', b'*', b'!', b'|', b'>',
                b'#', b'?', b'\t', 0xff,
            ] {
                let mut mangled = bytes.to_vec();
                mangled[i] = b;
                if let Ok(v) = decode_document(&mangled) {
                    decoded += 1;
                    // Whatever decodes round-trips.
                    let again = decode_document(enc(&v).as_bytes()).unwrap();
                    assert!(
                        again == v || format!("{v:?}").contains("NaN"),
                        "{:?}",
                        String::from_utf8_lossy(&mangled)
                    );
                }
            }
            let _ = decode_document(&bytes[..i]);
            let _ = decode_document(&bytes[i..]);
        }
        assert!(decoded > 0);
    }

    #[test]
    fn batch_keeps_going_after_a_bad_frame() {
        let (out, errors) = decode_batch(&mut Yaml, &[b"a: 1", b"a: [", b"- x", b""]);
        assert_eq!(out, [obj(&[("a", 1.into())]), arr(&["x".into()])]);
        assert_eq!(indexes(&errors), [1, 3]);
        let written = encode_batch(&mut Yaml, &out);
        assert_eq!(written, [&b"---\na: 1"[..], b"---\n- x"]);
    }

    #[test]
    fn config_takes_no_keys() {
        temblor_harness::codec::refuses_config_key(plugin_module(), "indent", Value::I64(4));
    }

    #[test]
    fn a_key_that_escaping_makes_long_round_trips() {
        // Found by the fuzzer: 302 bytes that escape to 1,203 characters.
        let key = format!("k{}", "\u{1}".repeat(300));
        let object: Object = [(key.as_str(), Value::from(1))].into_iter().collect();
        let mut codec = Yaml;
        let mut out = RVec::new();
        codec
            .encode_one(&Value::Object(object.clone()), &mut out)
            .unwrap();
        let back = codec.decode_one(&out).unwrap();
        assert_eq!(back, Value::Object(object));
    }
}
