//! `separate`: splits a byte stream at a one-byte separator (pre), appends it (post).

use serde::Deserialize;
use temblor_shim::Frames;

use super::ProcessorError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Config {
    separator: String,
    max_length: usize,
    keep_empty: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            separator: "\n".to_owned(),
            max_length: 8 * 1024 * 1024,
            keep_empty: false,
        }
    }
}

impl Config {
    pub(super) fn separator_byte(&self, kind: &str) -> Result<u8, ProcessorError> {
        match self.separator.as_bytes() {
            [b] => Ok(*b),
            _ => Err(ProcessorError(format!(
                "{kind} 'separate': `separator` must be exactly one byte, found {:?}",
                self.separator
            ))),
        }
    }
}

#[derive(Debug)]
pub(super) struct Splitter {
    separator: u8,
    max_length: usize,
    keep_empty: bool,
    carry: Vec<u8>,
    /// Dropping the rest of an over-long frame until the next separator.
    skipping: bool,
}

impl Splitter {
    pub(super) fn new(config: &Config) -> Result<Self, ProcessorError> {
        Ok(Self {
            separator: config.separator_byte("preprocessor")?,
            max_length: config.max_length,
            keep_empty: config.keep_empty,
            carry: Vec::new(),
            skipping: false,
        })
    }

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

    pub(super) fn process(&mut self, input: &Frames, out: &mut Frames, errors: &mut Vec<String>) {
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

    pub(super) fn finish(&mut self, out: &mut Frames) {
        if !self.skipping && !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            self.emit(&carry, out);
        }
        self.skipping = false;
    }
}

/// The postprocessor: appends `separator` to every frame.
pub(super) fn append(separator: u8, input: &Frames, out: &mut Frames) {
    for frame in input.iter() {
        out.push_with(|buf| {
            buf.extend_from_copy_slice(frame);
            buf.push(separator);
        });
    }
}
