//! The `csv` codec: one CSV record per frame (give the source the `separate` preprocessor so
//! that each line is a frame).
//!
//! Records are read with [csv-core]: fields are separated by `delimiter`, a field in `quote`s
//! may hold delimiters, quotes (doubled: `""`) and line breaks, and a leading UTF-8 byte order
//! mark is dropped. csv-core prefers some parse to none, so a stray quote is kept as text
//! (`a"b` is the field `a"b`) and an unterminated quoted field runs to the end of the frame.
//!
//! # Event shape
//!
//! - Without a header (the default): each record is an **array of strings**, `a,"b,c",` gives
//!   `["a", "b,c", ""]`. An empty frame gives `[]` and `""` gives `[""]`.
//! - With a header (`header = true` or `headers = [...]`): each record is an **object** from
//!   column name to string, in column order: with the header `x,y`, the row `1,2` gives
//!   `{"x": "1", "y": "2"}`. A row with another number of fields than the header is an error.
//!   With `header = true` the first frame the codec sees is the header row: it gives no event
//!   (and no error); if it is bad (not UTF-8, empty, a repeated name) it is an error and the
//!   next frame is taken as the header instead.
//!
//! Decoding errors (per frame): a field that is not UTF-8, more than one record in a frame
//! (a line break outside quotes), a row whose field count differs from the header's.
//!
//! # Encoding
//!
//! One record per frame, without a line break (the `separate` postprocessor adds it). A field
//! is quoted when it has to be: when it holds the delimiter, the quote (doubled inside), `\r`
//! or `\n`, starts with a byte order mark, or is the only field of its row and empty (so that
//! `[""]` and `[]` stay apart). Every decoded event encodes to a record that decodes equal.
//! - An array is written as a row, its items as fields.
//! - An object with known columns (from `headers`, from a decoded header, or, with
//!   `header = true`, from the keys of the first event written) is written in column order; a
//!   missing column is an empty field, a key that is not a column is an error. Without columns,
//!   an object's values are written in their order.
//! - Fields: a string as it is, a number or a bool as its JSON text, null as an empty field,
//!   bytes as they are, an array or object as compact JSON (quoted as needed).
//! - With `header = true`, the header row is written first, once, as a frame of its own: the
//!   first batch gives one frame more than it has events.
//! - Any other event (a string, a number...) is an error: a row is an array or an object.
//!
//! # Config
//!
//! - `header` (bool, default `false`): the first frame read is the header row, and a header row
//!   is written before the first row.
//! - `headers` (array of strings, default none): the column names. With `header = false`, rows
//!   become objects with these names and no header row is read or written; with
//!   `header = true`, the header row read is skipped (these names are used instead) and these
//!   names are written as the header row.
//! - `delimiter` (one-byte string, default `","`): the field separator, e.g. `";"` or `"\t"`.
//! - `quote` (one-byte string, default `"\""`): the quote character, e.g. `"'"`.
//!
//! The delimiter and the quote differ and neither is `\r` or `\n`; the names in `headers` are
//! not repeated.
//!
//! # Example
//!
//! Read a CSV file with a header row as objects, write them back as semicolon-separated values
//! with a header:
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "file"
//! codec = { name = "csv", config = { header = true } }
//! preprocessors = ["separate"]
//! config = { path = "in.csv", mode = "read" }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = { name = "csv", config = { header = true, delimiter = ";" } }
//! postprocessors = ["separate"]
//! config = { path = "out.csv", mode = "write" }
//! ```
//!
//! [csv-core]: https://docs.rs/csv-core

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use temblor_shim::{ByteSink, Codec, Frames, Object, PluginError, RString, RVec, Setup, Value};

/// The codec's configuration.
#[derive(temblor_shim::serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields, default)]
pub struct Config {
    /// Whether the first frame is a header row, and a header row is written first.
    pub header: bool,
    /// The column names, if given.
    pub headers: Option<Vec<String>>,
    /// The field separator (one byte).
    pub delimiter: String,
    /// The quote character (one byte).
    pub quote: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            header: false,
            headers: None,
            delimiter: ",".to_owned(),
            quote: "\"".to_owned(),
        }
    }
}

/// The CSV codec, with its columns and the buffers it reuses from frame to frame.
#[derive(Debug)]
pub struct Csv {
    reader: Reader,
    delimiter: u8,
    quote: u8,
    /// Whether the header row is read first and written first.
    header: bool,
    /// Whether `headers` were configured (a header row read is then skipped).
    fixed_columns: bool,
    /// The column names, once known.
    columns: Option<Vec<RString>>,
    /// Whether the next frame decoded is the header row.
    expect_header: bool,
    /// Whether the header row has been written.
    header_written: bool,
    /// Unescaped field bytes of the record being read.
    fields: Vec<u8>,
    /// End offsets of the fields in `fields`.
    ends: Vec<usize>,
    /// Where a non-string field is rendered before it is quoted.
    scratch: Vec<u8>,
}

/// One byte from a config string.
fn one_byte(key: &str, value: &str) -> Result<u8, PluginError> {
    match value.as_bytes() {
        [b'\n' | b'\r'] => Err(PluginError::config(format_args!(
            "`{key}` cannot be a line break"
        ))),
        [b] => Ok(*b),
        _ => Err(PluginError::config(format_args!(
            "`{key}` must be exactly one byte, found {value:?}"
        ))),
    }
}

/// Checks a header row: not empty, no name twice.
fn check_columns(names: &[RString]) -> Result<(), String> {
    if names.is_empty() {
        return Err("the header has no columns".to_owned());
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(format!("the header names the column {name:?} twice"));
        }
    }
    Ok(())
}

impl Csv {
    /// A codec for `config`.
    ///
    /// # Errors
    /// A `Config` error for a bad delimiter, quote or list of headers.
    pub fn new(config: &Config) -> Result<Self, PluginError> {
        let delimiter = one_byte("delimiter", &config.delimiter)?;
        let quote = one_byte("quote", &config.quote)?;
        if delimiter == quote {
            return Err(PluginError::config("`delimiter` and `quote` must differ"));
        }
        let columns: Option<Vec<RString>> = config
            .headers
            .as_ref()
            .map(|names| names.iter().map(|n| RString::from(n.as_str())).collect());
        if let Some(columns) = &columns {
            check_columns(columns)
                .map_err(|e| PluginError::config(format_args!("`headers`: {e}")))?;
        }
        Ok(Self {
            reader: ReaderBuilder::new()
                .delimiter(delimiter)
                .quote(quote)
                .build(),
            delimiter,
            quote,
            header: config.header,
            fixed_columns: columns.is_some(),
            columns,
            expect_header: config.header,
            header_written: false,
            fields: Vec::new(),
            ends: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Reads the one record of a frame into `fields` and `ends`; returns the number of fields.
    fn read_record(&mut self, frame: &[u8]) -> Result<usize, String> {
        self.reader.reset();
        // Unescaping only shrinks a field, and there are at most `len + 1` fields.
        self.fields.resize(frame.len(), 0);
        self.ends.resize(frame.len() + 1, 0);
        let (mut result, mut nin, nout, mut nend) =
            self.reader
                .read_record(frame, &mut self.fields, &mut self.ends);
        if result == ReadRecordResult::InputEmpty {
            // The end of the input: the reader completes the last field (or says `End`).
            let (last, _, _, more) =
                self.reader
                    .read_record(&[], &mut self.fields[nout..], &mut self.ends[nend..]);
            result = last;
            nend += more;
            nin = frame.len();
        }
        match result {
            ReadRecordResult::End => return Ok(0),
            ReadRecordResult::Record => {}
            // The buffers are as large as the frame: neither fills up.
            ReadRecordResult::InputEmpty
            | ReadRecordResult::OutputFull
            | ReadRecordResult::OutputEndsFull => {
                return Err("internal error: the CSV reader ran out of room".to_owned());
            }
        }
        // A record ended before the frame did: only blank lines may follow.
        let rest = &frame[nin..];
        if rest.iter().any(|&b| b != b'\r' && b != b'\n') {
            return Err(format!(
                "more than one record in the frame (a line break outside quotes at byte {})",
                nin.saturating_sub(1)
            ));
        }
        Ok(nend)
    }

    /// The `i`th field of the record read last, as text.
    fn field(&self, i: usize) -> Result<&str, String> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        std::str::from_utf8(&self.fields[start..self.ends[i]]).map_err(|e| {
            format!(
                "field {} is not UTF-8 (at byte {} of it)",
                i + 1,
                e.valid_up_to()
            )
        })
    }

    /// Decodes one frame: `Ok(None)` for a header row.
    fn decode_frame(&mut self, frame: &[u8]) -> Result<Option<Value>, String> {
        let n = self.read_record(frame)?;
        if self.expect_header {
            if !self.fixed_columns {
                let names = (0..n)
                    .map(|i| self.field(i).map(RString::from))
                    .collect::<Result<Vec<_>, _>>()?;
                check_columns(&names)?;
                self.columns = Some(names);
            }
            self.expect_header = false;
            return Ok(None);
        }
        match &self.columns {
            Some(columns) => {
                if n != columns.len() {
                    return Err(format!(
                        "the row has {n} fields, the header has {}",
                        columns.len()
                    ));
                }
                let mut object = Object::with_capacity(n);
                for (i, name) in columns.iter().enumerate() {
                    object.push(name.clone(), Value::from(self.field(i)?));
                }
                Ok(Some(Value::Object(object)))
            }
            None => {
                let mut items = RVec::with_capacity(n);
                for i in 0..n {
                    items.push(Value::from(self.field(i)?));
                }
                Ok(Some(Value::Array(items)))
            }
        }
    }

    /// Writes one field, quoted if it must be.
    fn write_field<B: ByteSink>(&self, out: &mut B, field: &[u8], alone: bool) {
        let must_quote = (alone && field.is_empty())
            || field.starts_with(b"\xef\xbb\xbf")
            || field
                .iter()
                .any(|&b| b == self.delimiter || b == self.quote || b == b'\n' || b == b'\r');
        if !must_quote {
            out.put(field);
            return;
        }
        out.put_byte(self.quote);
        let mut plain_from = 0;
        for (i, &b) in field.iter().enumerate() {
            if b == self.quote {
                // Written up to and including the quote, which is then written again.
                out.put(&field[plain_from..=i]);
                plain_from = i;
            }
        }
        out.put(&field[plain_from..]);
        out.put_byte(self.quote);
    }

    /// Writes one value as a field.
    fn write_value<B: ByteSink>(&mut self, out: &mut B, value: &Value, alone: bool) {
        match value {
            Value::String(s) => self.write_field(out, s.as_bytes(), alone),
            Value::Bytes(b) => self.write_field(out, b, alone),
            Value::Null => self.write_field(out, b"", alone),
            other => {
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.clear();
                other.write_json(&mut scratch);
                self.write_field(out, &scratch, alone);
                self.scratch = scratch;
            }
        }
    }

    /// Writes one event as a row.
    fn write_row<B: ByteSink>(&mut self, out: &mut B, event: &Value) -> Result<(), String> {
        match event {
            Value::Array(items) => {
                let alone = items.len() == 1;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.put_byte(self.delimiter);
                    }
                    self.write_value(out, item, alone);
                }
            }
            Value::Object(object) => match self.columns.take() {
                Some(columns) => {
                    let result = self.write_object_in_columns(out, object, &columns);
                    self.columns = Some(columns);
                    result?;
                }
                None => {
                    let alone = object.len() == 1;
                    for (i, (_, item)) in object.iter().enumerate() {
                        if i > 0 {
                            out.put_byte(self.delimiter);
                        }
                        self.write_value(out, item, alone);
                    }
                }
            },
            other => {
                return Err(format!(
                    "a CSV row is an array or an object, not {}",
                    other.type_name()
                ));
            }
        }
        Ok(())
    }

    fn write_object_in_columns<B: ByteSink>(
        &mut self,
        out: &mut B,
        object: &Object,
        columns: &[RString],
    ) -> Result<(), String> {
        if let Some((key, _)) = object.iter().find(|(k, _)| !columns.iter().any(|c| c == k)) {
            return Err(format!(
                "the event has the key {key:?}, which is not a column"
            ));
        }
        let alone = columns.len() == 1;
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.put_byte(self.delimiter);
            }
            let value = object.get(column).unwrap_or(&Value::Null);
            self.write_value(out, value, alone);
        }
        Ok(())
    }

    /// Writes the header row as a frame, the first time, when `header = true`.
    fn write_header(&mut self, event: &Value, out: &mut Frames) -> Result<(), PluginError> {
        if !self.header || self.header_written {
            return Ok(());
        }
        if self.columns.is_none() {
            let Value::Object(object) = event else {
                return Err(PluginError::data(format_args!(
                    "header = true: the first event must be an object, or `headers` given, to \
                     write the header row (it is {})",
                    event.type_name()
                )));
            };
            let names: Vec<RString> = object.iter().map(|(k, _)| RString::from(k)).collect();
            check_columns(&names).map_err(PluginError::data)?;
            self.columns = Some(names);
        }
        let names: Vec<Value> = self
            .columns
            .iter()
            .flatten()
            .map(|name| Value::String(name.clone()))
            .collect();
        let mut result = Ok(());
        out.push_with(|buf| result = self.write_row(buf, &Value::from(names)));
        result.map_err(PluginError::data)?;
        self.header_written = true;
        Ok(())
    }
}

impl Codec for Csv {
    fn decode_one(&mut self, frame: &[u8]) -> Result<Value, String> {
        // Only called directly: the batch method (what the engine calls) skips the header row.
        self.decode_frame(frame)?
            .ok_or_else(|| "the header row (read as the column names; it is no event)".to_owned())
    }

    /// A header row is skipped ([`temblor_shim::FrameError::skipped`]: no event, no error), so
    /// that the engine keeps each event with its own frame's metadata.
    fn decode_or_skip(&mut self, frame: &[u8]) -> Result<Option<Value>, String> {
        self.decode_frame(frame)
    }

    fn encode_one(&mut self, event: &Value, out: &mut RVec<u8>) -> Result<(), PluginError> {
        self.write_row(out, event).map_err(PluginError::data)
    }

    fn encode(&mut self, events: &[Value], out: &mut Frames) -> Result<(), PluginError> {
        for event in events {
            self.write_header(event, out)?;
            let mut result = Ok(());
            out.push_with(|buf| result = self.encode_one(event, buf));
            result?;
        }
        Ok(())
    }
}

/// The constructor the engine calls.
///
/// # Errors
/// A `Config` error for unknown keys, a bad delimiter or quote, or repeated `headers`.
pub fn new(setup: &Setup<'_>) -> Result<Csv, PluginError> {
    Csv::new(&setup.config::<Config>()?)
}

temblor_shim::export_plugin! { name: "csv", kind: Codec, codec: new }

#[cfg(test)]
mod tests {
    use temblor_shim::{ErrorKind, abi_stable::std_types::RStr};

    use super::*;

    fn codec(config: &Config) -> Csv {
        Csv::new(config).unwrap()
    }

    fn plain() -> Csv {
        codec(&Config::default())
    }

    /// `header = true`: the first frame is the header row.
    fn with_header() -> Csv {
        codec(&Config {
            header: true,
            ..Config::default()
        })
    }

    fn strings(items: &[&str]) -> Value {
        Value::from(items.iter().map(|s| Value::from(*s)).collect::<Vec<_>>())
    }

    fn obj(pairs: &[(&str, &str)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (*k, Value::from(*v))).collect())
    }

    fn ok(c: &mut Csv, frame: &str) -> Value {
        c.decode_one(frame.as_bytes())
            .unwrap_or_else(|e| panic!("{frame:?}: {e}"))
    }

    fn enc(c: &mut Csv, event: &Value) -> String {
        let mut out = RVec::new();
        c.encode_one(event, &mut out)
            .unwrap_or_else(|e| panic!("{event}: {e}"));
        String::from_utf8(out.into_vec()).unwrap()
    }

    fn enc_err(c: &mut Csv, event: &Value) -> String {
        let mut out = RVec::new();
        match c.encode_one(event, &mut out) {
            Ok(()) => panic!("{event} encoded to {:?}", String::from_utf8_lossy(&out)),
            Err(e) => e.message.into_string(),
        }
    }

    /// Decodes a batch: events, and (index, reason) of each error.
    fn batch(c: &mut Csv, frames: &[&str]) -> (Vec<Value>, Vec<(u32, String)>) {
        let frames: Vec<&[u8]> = frames.iter().map(|f| f.as_bytes()).collect();
        batch_bytes(c, &frames)
    }

    fn batch_bytes(c: &mut Csv, frames: &[&[u8]]) -> (Vec<Value>, Vec<(u32, String)>) {
        let frames: Frames = frames.iter().copied().collect();
        let mut out = RVec::new();
        let mut errors = RVec::new();
        c.decode(&frames, &mut out, &mut errors).unwrap();
        let errors = errors
            .iter()
            .map(|e| (e.index, e.reason.to_string()))
            .collect();
        (out.into_vec(), errors)
    }

    fn encode_batch(c: &mut Csv, events: &[Value]) -> Result<Vec<String>, PluginError> {
        let mut frames = Frames::new();
        c.encode(events, &mut frames)?;
        Ok(frames
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect())
    }

    #[test]
    fn rows_become_arrays_of_strings() {
        let mut c = plain();
        assert_eq!(ok(&mut c, "a,b,c"), strings(&["a", "b", "c"]));
        assert_eq!(ok(&mut c, "a,\"b,c\","), strings(&["a", "b,c", ""]));
        assert_eq!(
            ok(&mut c, "\"say \"\"hi\"\"\",x"),
            strings(&["say \"hi\"", "x"])
        );
        assert_eq!(
            ok(&mut c, "\"multi\nline\",2"),
            strings(&["multi\nline", "2"])
        );
        assert_eq!(
            ok(&mut c, " padded , kept "),
            strings(&[" padded ", " kept "])
        );
        assert_eq!(ok(&mut c, "é,😀"), strings(&["é", "😀"]));
        assert_eq!(ok(&mut c, ","), strings(&["", ""]));
        assert_eq!(ok(&mut c, "\"\""), strings(&[""]));
        assert_eq!(ok(&mut c, ""), strings(&[]));
        // A CRLF line's `\r` is the end of the record, as is a trailing `\n`.
        assert_eq!(ok(&mut c, "a,b\r"), strings(&["a", "b"]));
        assert_eq!(ok(&mut c, "a,b\r\n"), strings(&["a", "b"]));
        // A byte order mark at the start is dropped.
        assert_eq!(ok(&mut c, "\u{feff}a,b"), strings(&["a", "b"]));
        // csv-core prefers a parse: stray quotes are text, an open quote runs to the end.
        assert_eq!(ok(&mut c, "a\"b,c"), strings(&["a\"b", "c"]));
        assert_eq!(ok(&mut c, "\"abc,d"), strings(&["abc,d"]));
    }

    #[test]
    fn bad_frames_are_errors_with_a_reason() {
        let mut c = plain();
        assert_eq!(
            c.decode_one(b"a,b\nc,d"),
            Err(
                "more than one record in the frame (a line break outside quotes at byte 3)"
                    .to_owned()
            )
        );
        assert_eq!(
            c.decode_one(b"a,\xff\xfe"),
            Err("field 2 is not UTF-8 (at byte 0 of it)".to_owned())
        );
        // The codec goes on after an error.
        assert_eq!(ok(&mut c, "x"), strings(&["x"]));
    }

    #[test]
    fn encodes_rows_quoting_only_when_needed() {
        let mut c = plain();
        assert_eq!(enc(&mut c, &strings(&["a", "b", "c"])), "a,b,c");
        assert_eq!(
            enc(&mut c, &strings(&["a,b", "say \"hi\"", "x\ny", "r\r"])),
            "\"a,b\",\"say \"\"hi\"\"\",\"x\ny\",\"r\r\""
        );
        assert_eq!(enc(&mut c, &strings(&[" sp ", "é"])), " sp ,é");
        assert_eq!(enc(&mut c, &strings(&[""])), "\"\"");
        assert_eq!(enc(&mut c, &strings(&["", ""])), ",");
        assert_eq!(enc(&mut c, &strings(&[])), "");
        assert_eq!(enc(&mut c, &strings(&["\u{feff}x"])), "\"\u{feff}x\"");
        assert_eq!(enc(&mut c, &strings(&["\""])), "\"\"\"\"");
        // Other values: numbers and bools as JSON, null empty, bytes raw, nested as JSON.
        let mixed = Value::from(vec![
            Value::I64(-1),
            Value::U64(u64::MAX),
            Value::F64(1.5),
            Value::Bool(true),
            Value::Null,
            Value::Bytes(b"raw".to_vec().into()),
            Value::from(vec![Value::I64(1), Value::from("x")]),
            obj(&[("k", "v")]),
        ]);
        assert_eq!(
            enc(&mut c, &mixed),
            "-1,18446744073709551615,1.5,true,,raw,\"[1,\"\"x\"\"]\",\"{\"\"k\"\":\"\"v\"\"}\""
        );
        // Without columns, an object's values in order.
        assert_eq!(enc(&mut c, &obj(&[("b", "2"), ("a", "1")])), "2,1");
        assert_eq!(
            enc_err(&mut c, &Value::from("text")),
            "a CSV row is an array or an object, not string"
        );
    }

    #[test]
    fn round_trips() {
        let mut c = plain();
        for row in [
            strings(&["a", "b,c", "", "say \"hi\"", "multi\nline", " x ", "\r"]),
            strings(&[""]),
            strings(&[]),
            strings(&["", ""]),
            strings(&["\"", "\"\"", "\u{feff}"]),
        ] {
            let line = enc(&mut c, &row);
            assert_eq!(ok(&mut c, &line), row, "{line:?}");
        }
    }

    #[test]
    fn other_delimiters_and_quotes() {
        let mut c = codec(&Config {
            delimiter: ";".to_owned(),
            quote: "'".to_owned(),
            ..Config::default()
        });
        assert_eq!(ok(&mut c, "a;'b;c';\"d\""), strings(&["a", "b;c", "\"d\""]));
        assert_eq!(
            enc(&mut c, &strings(&["a,b", "c;d", "it's"])),
            "a,b;'c;d';'it''s'"
        );
        let mut tabs = codec(&Config {
            delimiter: "\t".to_owned(),
            ..Config::default()
        });
        assert_eq!(
            ok(&mut tabs, "a\tb c\t\"d\te\""),
            strings(&["a", "b c", "d\te"])
        );
        assert_eq!(enc(&mut tabs, &strings(&["x\ty", "z"])), "\"x\ty\"\tz");
    }

    #[test]
    fn header_row_names_the_columns() {
        let mut c = with_header();
        let (events, errors) = batch(&mut c, &["name,age", "ann,31", "bob", "\"c, d\",7"]);
        assert_eq!(
            events,
            [
                obj(&[("name", "ann"), ("age", "31")]),
                obj(&[("name", "c, d"), ("age", "7")])
            ]
        );
        let keys: Vec<_> = events[0]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["name", "age"], "column order");
        // The header row is skipped (no event, no error), so each event keeps its own frame.
        assert_eq!(
            errors,
            [
                (0, String::new()),
                (2, "the row has 1 fields, the header has 2".to_owned())
            ]
        );
        // The same codec writes the header it read, once, then rows in column order.
        let out = encode_batch(
            &mut c,
            &[
                obj(&[("age", "40"), ("name", "eve")]),
                obj(&[("name", "x")]),
            ],
        )
        .unwrap();
        assert_eq!(out, ["name,age", "eve,40", "x,"]);
        assert_eq!(
            encode_batch(&mut c, &[obj(&[("name", "y")])]).unwrap(),
            ["y,"]
        );
        assert_eq!(
            enc_err(&mut c, &obj(&[("name", "y"), ("extra", "z")])),
            "the event has the key \"extra\", which is not a column"
        );
        // Arrays are written as they are.
        assert_eq!(enc(&mut c, &strings(&["p", "q"])), "p,q");
    }

    #[test]
    fn a_bad_header_row_is_an_error_and_the_next_frame_is_the_header() {
        let mut c = with_header();
        let (events, errors) = batch_bytes(&mut c, &[b"a,a", b"\xff", b"x,y", b"1,2"]);
        assert_eq!(events, [obj(&[("x", "1"), ("y", "2")])]);
        assert_eq!(
            errors,
            [
                (0, "the header names the column \"a\" twice".to_owned()),
                (1, "field 1 is not UTF-8 (at byte 0 of it)".to_owned()),
                (2, String::new())
            ]
        );
        let mut c = with_header();
        assert_eq!(
            batch(&mut c, &[""]).1,
            [(0, "the header has no columns".to_owned())]
        );
        assert_eq!(
            c.decode_one(b"h"),
            Err("the header row (read as the column names; it is no event)".to_owned())
        );
    }

    #[test]
    fn header_written_from_the_first_object_when_none_was_read() {
        let mut c = with_header();
        let out = encode_batch(
            &mut c,
            &[obj(&[("b", "1"), ("a", "x,y")]), obj(&[("a", "2")])],
        )
        .unwrap();
        assert_eq!(out, ["b,a", "1,\"x,y\"", ",2"]);
        let mut c = with_header();
        let e = encode_batch(&mut c, &[strings(&["a"])]).unwrap_err();
        assert!(
            e.message.contains("the first event must be an object"),
            "{e}"
        );
    }

    #[test]
    fn explicit_headers() {
        // Without `header`, rows are objects and no header row is read or written.
        let mut c = codec(&Config {
            headers: Some(vec!["x".to_owned(), "y".to_owned()]),
            ..Config::default()
        });
        let (events, errors) = batch(&mut c, &["1,2", "3,4"]);
        assert!(errors.is_empty());
        assert_eq!(
            events,
            [
                obj(&[("x", "1"), ("y", "2")]),
                obj(&[("x", "3"), ("y", "4")])
            ]
        );
        assert_eq!(encode_batch(&mut c, &events).unwrap(), ["1,2", "3,4"]);
        // With `header`, the header row read is skipped and the given one is written.
        let mut c = codec(&Config {
            header: true,
            headers: Some(vec!["x".to_owned(), "y".to_owned()]),
            ..Config::default()
        });
        let (events, _) = batch(&mut c, &["ignored,names", "1,2"]);
        assert_eq!(events, [obj(&[("x", "1"), ("y", "2")])]);
        assert_eq!(encode_batch(&mut c, &events).unwrap(), ["x,y", "1,2"]);
        // A one-column row with an empty field is quoted, as for arrays.
        let mut c = codec(&Config {
            headers: Some(vec!["only".to_owned()]),
            ..Config::default()
        });
        assert_eq!(enc(&mut c, &obj(&[("only", "")])), "\"\"");
        assert_eq!(ok(&mut c, "\"\""), obj(&[("only", "")]));
    }

    #[test]
    fn config_is_checked() {
        let bad = |config: Config, want: &str| {
            let e = Csv::new(&config).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config);
            assert_eq!(e.message, want);
        };
        for (delimiter, quote, want) in [
            (
                ",,",
                "\"",
                "`delimiter` must be exactly one byte, found \",,\"",
            ),
            (
                "é",
                "\"",
                "`delimiter` must be exactly one byte, found \"é\"",
            ),
            (",", "", "`quote` must be exactly one byte, found \"\""),
            ("\n", "\"", "`delimiter` cannot be a line break"),
            (",", ",", "`delimiter` and `quote` must differ"),
        ] {
            let config = Config {
                delimiter: delimiter.to_owned(),
                quote: quote.to_owned(),
                ..Config::default()
            };
            bad(config, want);
        }
        for (headers, want) in [
            (
                vec!["a".to_owned(), "a".to_owned()],
                "`headers`: the header names the column \"a\" twice",
            ),
            (vec![], "`headers`: the header has no columns"),
        ] {
            let config = Config {
                headers: Some(headers),
                ..Config::default()
            };
            bad(config, want);
        }
        let module = plugin_module();
        let name = RStr::from("t");
        let config: Object = [
            ("header", Value::Bool(true)),
            ("delimiter", Value::from(";")),
        ]
        .into_iter()
        .collect();
        assert!(module.new_codec()(name, &Value::Object(config)).is_ok());
        temblor_harness::codec::refuses_config_key(module, "separator", Value::from(";"));
    }
}
