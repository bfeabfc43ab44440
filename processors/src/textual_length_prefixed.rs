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

use super::{
    PreprocessError,
    records::{self, Prefix, Records},
};

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

/// The preprocessor.
pub(super) type Splitter = records::Splitter<Decimal>;

impl Splitter {
    pub(super) fn with(config: &Config) -> Self {
        let prefix = Decimal {
            length: 0,
            digits: 0,
            lost: false,
        };
        Self::new(
            prefix,
            Records::new("textual-length-prefixed", config.max_length),
        )
    }
}

/// A length in ASCII decimal then a space, which may arrive in parts.
#[derive(Debug)]
pub(super) struct Decimal {
    /// The length read so far, and its number of digits.
    length: u64,
    digits: usize,
    /// A bad prefix was met: everything is dropped until the stream ends.
    lost: bool,
}

impl Prefix for Decimal {
    fn read(&mut self, rest: &mut &[u8], errors: &mut Vec<PreprocessError>) -> Option<u64> {
        while let Some((&byte, after)) = rest.split_first().filter(|_| !self.lost) {
            *rest = after;
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
                        errors.push(PreprocessError::LengthOverflow);
                        self.lost = true;
                    }
                }
            } else if byte != b' ' || self.digits == 0 {
                errors.push(PreprocessError::NotALength {
                    byte,
                    after_digits: self.digits > 0,
                });
                self.lost = true;
            } else {
                let length = self.length;
                self.length = 0;
                self.digits = 0;
                return Some(length);
            }
        }
        None
    }

    /// A lost stream starts over.
    fn finish(&mut self, errors: &mut Vec<PreprocessError>) -> bool {
        let lost = self.lost;
        if !lost && self.digits > 0 {
            errors.push(PreprocessError::EndedInDigits {
                digits: self.digits,
            });
        }
        self.length = 0;
        self.digits = 0;
        self.lost = false;
        !lost
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
