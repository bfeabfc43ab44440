//! `length-prefixed`: a stream of `[big-endian length][payload]` records split into payloads
//! (pre), each frame prefixed with its length (post).
//!
//! The length is 8 bytes (`u64`) by default, as in Tremor's `length-prefixed`, so a Tremor
//! peer reads and writes the same stream; `length = "u32"` gives the 4-byte form.

use serde::Deserialize;
use temblor_shim::Frames;

use super::{
    PreprocessError,
    records::{self, Prefix, Records},
};

/// The width of the length prefix (always big-endian).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Width {
    /// 4 bytes.
    U32,
    /// 8 bytes: the default, as Tremor's.
    #[default]
    U64,
}

impl Width {
    fn bytes(self) -> usize {
        match self {
            Self::U32 => 4,
            Self::U64 => 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Config {
    length: Width,
    max_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            length: Width::U64,
            max_length: 8 * 1024 * 1024,
        }
    }
}

/// The preprocessor.
pub(super) type Splitter = records::Splitter<Binary>;

impl Splitter {
    pub(super) fn with(config: &Config) -> Self {
        let prefix = Binary {
            width: config.length.bytes(),
            head: [0; 8],
            head_len: 0,
        };
        Self::new(prefix, Records::new("length-prefixed", config.max_length))
    }
}

/// A big-endian length of `width` bytes, which may arrive in parts.
#[derive(Debug)]
pub(super) struct Binary {
    width: usize,
    /// A length prefix that arrived in part.
    head: [u8; 8],
    head_len: usize,
}

impl Binary {
    fn decode_length(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
    }
}

impl Prefix for Binary {
    fn read(&mut self, rest: &mut &[u8], _: &mut Vec<PreprocessError>) -> Option<u64> {
        if self.head_len == 0 && rest.len() >= self.width {
            let length = Self::decode_length(&rest[..self.width]);
            *rest = &rest[self.width..];
            return Some(length);
        }
        let n = (self.width - self.head_len).min(rest.len());
        self.head[self.head_len..self.head_len + n].copy_from_slice(&rest[..n]);
        self.head_len += n;
        *rest = &rest[n..];
        if self.head_len < self.width {
            return None;
        }
        self.head_len = 0;
        Some(Self::decode_length(&self.head[..self.width]))
    }

    fn finish(&mut self, errors: &mut Vec<PreprocessError>) -> bool {
        if self.head_len > 0 {
            errors.push(PreprocessError::EndedInPrefix {
                have: self.head_len,
                width: self.width,
            });
        }
        self.head_len = 0;
        true
    }
}

/// The postprocessor: prefixes every frame with its length.
pub(super) fn prefix(width: Width, input: &Frames, out: &mut Frames) {
    for frame in input.iter() {
        out.push_with(|buf| {
            // A frame is shorter than 4 GiB (a batch's offsets are u32), so it fits either width.
            let length = frame.len() as u64;
            match width {
                Width::U32 => {
                    buf.extend_from_copy_slice(
                        &u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes(),
                    );
                }
                Width::U64 => buf.extend_from_copy_slice(&length.to_be_bytes()),
            }
            buf.extend_from_copy_slice(frame);
        });
    }
}

impl Config {
    pub(super) fn width(&self) -> Width {
        self.length
    }
}
