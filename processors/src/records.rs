//! What `length-prefixed` and `textual-length-prefixed` share: once a record's length is read,
//! its payload is passed on (straight from the input when it is all there, else collected
//! across chunks), or skipped as it passes when it is longer than `max_length`.

use temblor_shim::Frames;

use super::{PreprocessError, RETAINED_CAPACITY};

/// A splitter's state between a length prefix and the next one.
#[derive(Debug)]
pub(super) struct Records {
    /// The preprocessor's name, for its errors.
    processor: &'static str,
    max_length: u64,
    /// The payload length of the record being collected in `carry`.
    want: Option<usize>,
    /// A payload that arrived in part.
    pub(super) carry: Vec<u8>,
    /// Payload bytes of an over-long record still to discard.
    skip: u64,
}

impl Records {
    pub(super) fn new(processor: &'static str, max_length: usize) -> Self {
        Self {
            processor,
            max_length: u64::try_from(max_length).unwrap_or(u64::MAX),
            want: None,
            carry: Vec::new(),
            skip: 0,
        }
    }

    /// Inside a record's payload (collecting or skipping it): takes what of it `rest` holds
    /// and returns true. False, and `rest` untouched, at a record boundary: a length is next.
    pub(super) fn payload(&mut self, rest: &mut &[u8], out: &mut Frames) -> bool {
        if self.skip > 0 {
            let n = usize::try_from(self.skip).map_or(rest.len(), |s| s.min(rest.len()));
            *rest = &rest[n..];
            self.skip -= n as u64;
            return true;
        }
        let Some(want) = self.want else {
            return false;
        };
        let n = (want - self.carry.len()).min(rest.len());
        self.carry.extend_from_slice(&rest[..n]);
        *rest = &rest[n..];
        if self.carry.len() == want {
            out.push(&self.carry);
            self.carry.clear();
            if self.carry.capacity() > RETAINED_CAPACITY {
                self.carry.shrink_to(RETAINED_CAPACITY);
            }
            self.want = None;
        }
        true
    }

    /// A record of `length` bytes starts at `rest`: passed on if it is all there, else
    /// collected by [`Records::payload`]; skipped (and reported) if longer than `max_length`.
    pub(super) fn start(
        &mut self,
        length: u64,
        rest: &mut &[u8],
        out: &mut Frames,
        errors: &mut Vec<PreprocessError>,
    ) {
        if length > self.max_length {
            errors.push(PreprocessError::RecordTooLong {
                processor: self.processor,
                length,
                max_length: self.max_length,
            });
            self.skip = length;
            return;
        }
        // At most max_length, which is a usize.
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if rest.len() >= length {
            // The whole record is here: no copy into the carry buffer.
            out.push(&rest[..length]);
            *rest = &rest[length..];
        } else {
            self.want = Some(length);
        }
    }

    /// The stream ended: a record still incomplete (collected or skipped) is reported; the
    /// state starts over.
    pub(super) fn finish(&mut self, errors: &mut Vec<PreprocessError>) {
        let error = if let Some(want) = self.want {
            Some(PreprocessError::EndedInRecord {
                processor: self.processor,
                have: self.carry.len(),
                want,
            })
        } else if self.skip > 0 {
            Some(PreprocessError::EndedInSkipped {
                processor: self.processor,
                missing: self.skip,
            })
        } else {
            None
        };
        errors.extend(error);
        self.reset();
    }

    /// Forgets the record in progress.
    pub(super) fn reset(&mut self) {
        self.want = None;
        self.skip = 0;
        self.carry.clear();
        if self.carry.capacity() > RETAINED_CAPACITY {
            self.carry.shrink_to(RETAINED_CAPACITY);
        }
    }
}

/// How a record's length is written before it.
pub(super) trait Prefix {
    /// Reads a length prefix from `rest` (completing a partial one): `None` when `rest` ended
    /// first, or when the stream can no longer be read (reported in `errors`).
    fn read(&mut self, rest: &mut &[u8], errors: &mut Vec<PreprocessError>) -> Option<u64>;

    /// The stream ended: reports a partial prefix and starts over. False when the stream had
    /// been lost (already reported; nothing after the loss counts).
    fn finish(&mut self, errors: &mut Vec<PreprocessError>) -> bool;
}

/// A splitter of records, each a length prefix then that many bytes.
#[derive(Debug)]
pub(super) struct Splitter<P> {
    prefix: P,
    /// The record after the prefix.
    pub(super) records: Records,
}

impl<P: Prefix> Splitter<P> {
    pub(super) fn new(prefix: P, records: Records) -> Self {
        Self { prefix, records }
    }

    /// Reads a batch of chunks, a record cut short carried to the next chunk.
    pub(super) fn process(
        &mut self,
        input: &Frames,
        out: &mut Frames,
        errors: &mut Vec<PreprocessError>,
    ) {
        for mut rest in input.iter() {
            while !rest.is_empty() {
                if self.records.payload(&mut rest, out) {
                    continue;
                }
                let Some(length) = self.prefix.read(&mut rest, errors) else {
                    break;
                };
                self.records.start(length, &mut rest, out, errors);
            }
        }
    }

    /// The stream ended: a record or prefix still incomplete is dropped and reported (a
    /// partial prefix and a record in progress never come together).
    pub(super) fn finish(&mut self, errors: &mut Vec<PreprocessError>) {
        if self.prefix.finish(errors) {
            self.records.finish(errors);
        } else {
            self.records.reset();
        }
    }
}
