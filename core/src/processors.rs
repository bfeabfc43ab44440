//! Preprocessors (bytes in, before decoding) and postprocessors (bytes out, after encoding).
//!
//! They are small, shared by every connector, and live here rather than in plugins.
//!
//! | name | pre | post | config (defaults) |
//! | --- | --- | --- | --- |
//! | `separate` | splits a byte stream at a separator; a last piece without one is kept | appends the separator to each frame | `separator = "\n"` (one byte), `max_length = 8388608` (pre: longer frames are dropped and reported), `keep_empty = false` (pre: empty frames are dropped) |
//!
//! In a deployment, a processor is a name or a table:
//! `preprocessors = ["separate"]` or `preprocessors = [{ name = "separate", separator = "|" }]`.

use std::fmt;

use serde::Deserialize;
use temblor_shim::{Frames, Value, from_value};

use crate::deploy::Named;

/// A processor that cannot be built: unknown name or bad config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorError(String);

impl fmt::Display for ProcessorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProcessorError {}

fn config<'a, T: Deserialize<'a>>(kind: &str, named: &'a Named) -> Result<T, ProcessorError> {
    from_value(&named.config).map_err(|e| ProcessorError(format!("{kind} '{}': {e}", named.name)))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SeparateConfig {
    separator: String,
    max_length: usize,
    keep_empty: bool,
}

impl Default for SeparateConfig {
    fn default() -> Self {
        Self {
            separator: "\n".to_owned(),
            max_length: 8 * 1024 * 1024,
            keep_empty: false,
        }
    }
}

impl SeparateConfig {
    fn separator_byte(&self, kind: &str) -> Result<u8, ProcessorError> {
        match self.separator.as_bytes() {
            [b] => Ok(*b),
            _ => Err(ProcessorError(format!(
                "{kind} 'separate': `separator` must be exactly one byte, found {:?}",
                self.separator
            ))),
        }
    }
}

/// Transforms incoming bytes before decoding.
#[derive(Debug)]
pub struct Preprocessor(Pre);

#[derive(Debug)]
enum Pre {
    Separate(Splitter),
}

#[derive(Debug)]
struct Splitter {
    separator: u8,
    max_length: usize,
    keep_empty: bool,
    carry: Vec<u8>,
    /// Dropping the rest of an over-long frame until the next separator.
    skipping: bool,
}

impl Splitter {
    fn emit(&self, frame: &[u8], out: &mut Frames) {
        if self.keep_empty || !frame.is_empty() {
            out.push(frame);
        }
    }

    fn too_long(&self, errors: &mut Vec<String>) {
        errors.push(format!(
            "separate: frame longer than max_length ({} bytes) dropped",
            self.max_length
        ));
    }

    fn process(&mut self, input: &Frames, out: &mut Frames, errors: &mut Vec<String>) {
        for chunk in input.iter() {
            let mut rest = chunk;
            while let Some(at) = memchr::memchr(self.separator, rest) {
                let (piece, after) = (&rest[..at], &rest[at + 1..]);
                rest = after;
                if self.skipping {
                    self.skipping = false;
                    self.carry.clear();
                } else if self.carry.is_empty() {
                    if piece.len() > self.max_length {
                        self.too_long(errors);
                    } else {
                        self.emit(piece, out);
                    }
                } else if self.carry.len() + piece.len() > self.max_length {
                    self.carry.clear();
                    self.too_long(errors);
                } else {
                    let mut carry = std::mem::take(&mut self.carry);
                    carry.extend_from_slice(piece);
                    self.emit(&carry, out);
                    carry.clear();
                    self.carry = carry;
                }
            }
            if !self.skipping {
                if self.carry.len() + rest.len() > self.max_length {
                    self.carry.clear();
                    self.skipping = true;
                    self.too_long(errors);
                } else {
                    self.carry.extend_from_slice(rest);
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Frames) {
        if !self.skipping && !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            self.emit(&carry, out);
        }
        self.skipping = false;
    }
}

impl Preprocessor {
    /// Builds the preprocessor `named` describes.
    ///
    /// # Errors
    /// Unknown name or bad config.
    pub fn new(named: &Named) -> Result<Self, ProcessorError> {
        match named.name.as_str() {
            "separate" => {
                let c: SeparateConfig = config("preprocessor", named)?;
                Ok(Self(Pre::Separate(Splitter {
                    separator: c.separator_byte("preprocessor")?,
                    max_length: c.max_length,
                    keep_empty: c.keep_empty,
                    carry: Vec::new(),
                    skipping: false,
                })))
            }
            other => Err(ProcessorError(format!(
                "unknown preprocessor '{other}' (available: separate)"
            ))),
        }
    }

    /// Processes a batch; problems with single frames are appended to `errors`.
    pub fn process(&mut self, input: &Frames, out: &mut Frames, errors: &mut Vec<String>) {
        match &mut self.0 {
            Pre::Separate(s) => s.process(input, out, errors),
        }
    }

    /// The stream ended: emits what is still buffered.
    pub fn finish(&mut self, out: &mut Frames) {
        match &mut self.0 {
            Pre::Separate(s) => s.finish(out),
        }
    }
}

/// Transforms outgoing bytes after encoding.
#[derive(Debug)]
pub struct Postprocessor(Post);

#[derive(Debug)]
enum Post {
    Separate(u8),
}

impl Postprocessor {
    /// Builds the postprocessor `named` describes.
    ///
    /// # Errors
    /// Unknown name or bad config.
    pub fn new(named: &Named) -> Result<Self, ProcessorError> {
        match named.name.as_str() {
            "separate" => {
                let c: SeparateConfig = config("postprocessor", named)?;
                Ok(Self(Post::Separate(c.separator_byte("postprocessor")?)))
            }
            other => Err(ProcessorError(format!(
                "unknown postprocessor '{other}' (available: separate)"
            ))),
        }
    }

    /// Processes a batch.
    pub fn process(&mut self, input: &Frames, out: &mut Frames) {
        match &self.0 {
            Post::Separate(sep) => {
                for frame in input.iter() {
                    out.push_with(|buf| {
                        buf.extend_from_copy_slice(frame);
                        buf.push(*sep);
                    });
                }
            }
        }
    }
}

/// Runs `frames` through a chain of preprocessors; the result is left in `frames`.
pub fn preprocess(
    chain: &mut [Preprocessor],
    frames: &mut Frames,
    scratch: &mut Frames,
    errors: &mut Vec<String>,
) {
    for stage in chain {
        scratch.clear();
        stage.process(frames, scratch, errors);
        std::mem::swap(frames, scratch);
    }
}

/// Ends a preprocessor chain: what each stage still buffers runs through the stages after it.
/// The result is left in `frames` (cleared first).
pub fn finish_preprocess(
    chain: &mut [Preprocessor],
    frames: &mut Frames,
    scratch: &mut Frames,
    errors: &mut Vec<String>,
) {
    frames.clear();
    for stage in chain {
        // What earlier stages flushed goes through this one, then this one's own rest.
        scratch.clear();
        stage.process(frames, scratch, errors);
        stage.finish(scratch);
        std::mem::swap(frames, scratch);
    }
}

/// Runs `frames` through a chain of postprocessors; the result is left in `frames`.
pub fn postprocess(chain: &mut [Postprocessor], frames: &mut Frames, scratch: &mut Frames) {
    for stage in chain {
        scratch.clear();
        stage.process(frames, scratch);
        std::mem::swap(frames, scratch);
    }
}

/// A `Named` with an empty config, for tests and defaults.
#[must_use]
pub fn named(name: &str) -> Named {
    Named {
        name: name.to_owned(),
        config: Value::Object(temblor_shim::Object::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Frames {
        parts.iter().copied().collect()
    }

    fn collect(f: &Frames) -> Vec<Vec<u8>> {
        f.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn separate_splits_across_chunks_and_keeps_the_tail() {
        let mut pre = vec![Preprocessor::new(&named("separate")).unwrap()];
        let mut f = frames(&[b"a\nbb", b"b\n\nc", b"cc"]);
        let mut scratch = Frames::new();
        let mut errors = Vec::new();
        preprocess(&mut pre, &mut f, &mut scratch, &mut errors);
        assert_eq!(collect(&f), [b"a".to_vec(), b"bbb".to_vec()]);
        finish_preprocess(&mut pre, &mut f, &mut scratch, &mut errors);
        assert_eq!(collect(&f), [b"ccc".to_vec()]);
        assert!(errors.is_empty());
    }

    #[test]
    fn separate_drops_and_reports_overlong_frames() {
        let mut named = named("separate");
        named.config = Value::Object(
            [("max_length", Value::from(3)), ("separator", "|".into())]
                .into_iter()
                .collect(),
        );
        let mut pre = vec![Preprocessor::new(&named).unwrap()];
        let mut f = frames(&[b"ok|toolong", b"still|x|"]);
        let mut scratch = Frames::new();
        let mut errors = Vec::new();
        preprocess(&mut pre, &mut f, &mut scratch, &mut errors);
        assert_eq!(collect(&f), [b"ok".to_vec(), b"x".to_vec()]);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn separate_postprocessor_appends_separator() {
        let mut post = vec![Postprocessor::new(&named("separate")).unwrap()];
        let mut f = frames(&[b"a", b"b"]);
        postprocess(&mut post, &mut f, &mut Frames::new());
        assert_eq!(collect(&f), [b"a\n".to_vec(), b"b\n".to_vec()]);
    }

    #[test]
    fn unknown_names_and_bad_config_are_reported() {
        let err = Preprocessor::new(&named("nope")).unwrap_err();
        assert!(err.to_string().contains("unknown preprocessor 'nope'"));
        let mut bad = named("separate");
        bad.config = Value::Object([("separator", Value::from("ab"))].into_iter().collect());
        let err = Postprocessor::new(&bad).unwrap_err();
        assert!(err.to_string().contains("exactly one byte"), "{err}");
        let mut bad = named("separate");
        bad.config = Value::Object([("sep", Value::from("|"))].into_iter().collect());
        let err = Preprocessor::new(&bad).unwrap_err();
        assert!(err.to_string().contains("unknown field `sep`"), "{err}");
    }
}
