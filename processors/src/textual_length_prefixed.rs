//! `textual-length-prefixed`: a stream of `<decimal length> <payload>` records, as Tremor's
//! processor of that name and the octet counting of syslog over TCP and TLS (RFC 6587 §3.4.1,
//! RFC 5425 §4.3: `MSG-LEN SP SYSLOG-MSG`), split into payloads (pre); each frame prefixed with
//! its length in ASCII decimal and a space (post).
//!
//! The length counts the payload's bytes, not the prefix or the space. Reading is lenient
//! where the RFCs are strict (leading zeros and a length of 0 are accepted) but a prefix is at
//! most 20 digits. Anything else where a length is expected (a letter, a space first, a line
//! break) leaves no way to find the next record: it is reported once, and the rest of the
//! stream is dropped until it ends.

use serde::Deserialize;
use temblor_shim::Frames;

/// The most digits a length may have (`u64::MAX` has 20).
const MAX_DIGITS: usize = 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Config {
    max_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_length: 8 * 1024 * 1024,
        }
    }
}

/// The preprocessor's state between chunks.
#[derive(Debug)]
pub(super) struct Splitter {
    max_length: u64,
    /// The length read so far, and its number of digits.
    length: u64,
    digits: usize,
    /// The payload length of the record being collected in `carry`.
    want: Option<usize>,
    /// A payload that arrived in part.
    pub(super) carry: Vec<u8>,
    /// Payload bytes of an over-long record still to discard.
    skip: u64,
    /// A bad prefix was met: everything is dropped until the stream ends.
    lost: bool,
}

impl Splitter {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            max_length: u64::try_from(config.max_length).unwrap_or(u64::MAX),
            length: 0,
            digits: 0,
            want: None,
            carry: Vec::new(),
            skip: 0,
            lost: false,
        }
    }

    fn process_chunk(&mut self, mut rest: &[u8], out: &mut Frames, errors: &mut Vec<String>) {
        while !rest.is_empty() && !self.lost {
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
            let byte = rest[0];
            rest = &rest[1..];
            if byte.is_ascii_digit() {
                let next = self
                    .length
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(byte - b'0')));
                match next {
                    Some(n) if self.digits < MAX_DIGITS => {
                        self.length = n;
                        self.digits += 1;
                    }
                    _ => {
                        errors.push(
                            "textual-length-prefixed: a length beyond 2^64 - 1; the rest of the stream is dropped"
                                .to_owned(),
                        );
                        self.lost = true;
                    }
                }
                continue;
            }
            if byte != b' ' || self.digits == 0 {
                errors.push(format!(
                    "textual-length-prefixed: byte {byte:#04x} where a decimal length{} was expected; the rest of the stream is dropped",
                    if self.digits == 0 { "" } else { " or a space" }
                ));
                self.lost = true;
                continue;
            }
            let length = self.length;
            self.length = 0;
            self.digits = 0;
            if length > self.max_length {
                errors.push(format!(
                    "textual-length-prefixed: record of {length} bytes is longer than max_length ({} bytes); skipped",
                    self.max_length
                ));
                self.skip = length;
                continue;
            }
            // At most max_length, which is a usize.
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if rest.len() >= length {
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

    /// The stream ended: a record still incomplete is dropped and reported; a lost stream
    /// starts over.
    pub(super) fn finish(&mut self, errors: &mut Vec<String>) {
        if self.lost {
            // Reported when it was lost.
        } else if let Some(want) = self.want {
            errors.push(format!(
                "textual-length-prefixed: the stream ended inside a record ({} of {want} bytes); dropped",
                self.carry.len()
            ));
        } else if self.digits > 0 {
            errors.push(format!(
                "textual-length-prefixed: the stream ended inside a length prefix ({} digits); dropped",
                self.digits
            ));
        } else if self.skip > 0 {
            errors.push(format!(
                "textual-length-prefixed: the stream ended inside a skipped record ({} bytes missing)",
                self.skip
            ));
        }
        self.want = None;
        self.length = 0;
        self.digits = 0;
        self.skip = 0;
        self.lost = false;
        self.carry.clear();
        if self.carry.capacity() > super::RETAINED_CAPACITY {
            self.carry.shrink_to(super::RETAINED_CAPACITY);
        }
    }
}

/// The postprocessor: prefixes every frame with its length in decimal and a space.
pub(super) fn prefix(input: &Frames, out: &mut Frames) {
    for frame in input.iter() {
        out.push_with(|buf| {
            let mut digits = [0_u8; MAX_DIGITS];
            let mut at = MAX_DIGITS;
            let mut n = frame.len();
            loop {
                at -= 1;
                // A digit: `n % 10` is below 10.
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            buf.extend_from_copy_slice(&digits[at..]);
            buf.push(b' ');
            buf.extend_from_copy_slice(frame);
        });
    }
}
