//! `length-prefixed`: a stream of `[big-endian length][payload]` records split into payloads
//! (pre), each frame prefixed with its length (post).
//!
//! The length is 8 bytes (`u64`) by default, as in Tremor's `length-prefixed`, so a Tremor
//! peer reads and writes the same stream; `length = "u32"` gives the 4-byte form.

use serde::Deserialize;
use temblor_shim::Frames;

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

/// The preprocessor's state between chunks.
#[derive(Debug)]
pub(super) struct Splitter {
    width: usize,
    max_length: u64,
    /// A length prefix that arrived in part.
    head: [u8; 8],
    head_len: usize,
    /// The payload length of the record being collected in `carry`.
    want: Option<usize>,
    /// A payload that arrived in part.
    pub(super) carry: Vec<u8>,
    /// Payload bytes of an over-long record still to discard.
    skip: u64,
}

impl Splitter {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            width: config.length.bytes(),
            max_length: u64::try_from(config.max_length).unwrap_or(u64::MAX),
            head: [0; 8],
            head_len: 0,
            want: None,
            carry: Vec::new(),
            skip: 0,
        }
    }

    fn decode_length(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
    }

    /// Reads a length prefix from `rest` (completing a partial one); `None` when `rest` ended
    /// first.
    fn read_length(&mut self, rest: &mut &[u8]) -> Option<u64> {
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

    fn process_chunk(&mut self, mut rest: &[u8], out: &mut Frames, errors: &mut Vec<String>) {
        while !rest.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip).map_or(rest.len(), |s| s.min(rest.len()));
                rest = &rest[n..];
                self.skip -= n as u64;
                continue;
            }
            if let Some(want) = self.want {
                let n = (want - self.carry.len()).min(rest.len());
                self.carry.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if self.carry.len() == want {
                    out.push(&self.carry);
                    self.carry.clear();
                    if self.carry.capacity() > super::RETAINED_CAPACITY {
                        self.carry.shrink_to(super::RETAINED_CAPACITY);
                    }
                    self.want = None;
                }
                continue;
            }
            let Some(length) = self.read_length(&mut rest) else {
                break;
            };
            if length > self.max_length {
                errors.push(format!(
                    "length-prefixed: record of {length} bytes is longer than max_length ({} bytes); skipped",
                    self.max_length
                ));
                self.skip = length;
                continue;
            }
            // At most max_length, which is a usize.
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if rest.len() >= length {
                // The whole record is here: no copy into the carry buffer.
                out.push(&rest[..length]);
                rest = &rest[length..];
            } else {
                self.want = Some(length);
            }
        }
    }

    pub(super) fn process(&mut self, input: &Frames, out: &mut Frames, errors: &mut Vec<String>) {
        for chunk in input.iter() {
            self.process_chunk(chunk, out, errors);
        }
    }

    /// The stream ended: a record still incomplete is dropped and reported.
    pub(super) fn finish(&mut self, errors: &mut Vec<String>) {
        if let Some(want) = self.want {
            errors.push(format!(
                "length-prefixed: the stream ended inside a record ({} of {want} bytes); dropped",
                self.carry.len()
            ));
        } else if self.head_len > 0 {
            errors.push(format!(
                "length-prefixed: the stream ended inside a length prefix ({} of {} bytes); dropped",
                self.head_len, self.width
            ));
        } else if self.skip > 0 {
            errors.push(format!(
                "length-prefixed: the stream ended inside a skipped record ({} bytes missing)",
                self.skip
            ));
        }
        self.want = None;
        self.head_len = 0;
        self.skip = 0;
        self.carry.clear();
        if self.carry.capacity() > super::RETAINED_CAPACITY {
            self.carry.shrink_to(super::RETAINED_CAPACITY);
        }
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
