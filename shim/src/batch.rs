//! What a source hands over in one pull (interface 2): frames grouped by stream, stream starts
//! with their metadata and ends, and structured events that need no codec.
//!
//! ```
//! use temblor_shim::{SourceBatch, Value};
//!
//! let mut out = SourceBatch::new();
//! out.start_stream(7, Value::from("peer meta"));
//! out.push_stream(7, b"half a li");
//! out.push_stream(7, b"ne\n");
//! out.end_stream(7);
//! out.push(b"stream 0"); // frames pushed without a stream belong to stream 0
//! out.push_value(Value::from(42_u64), Value::Null);
//! assert_eq!(out.frames().len(), 3);
//! assert_eq!(out.runs().len(), 1); // stream 7, started and ended
//! assert_eq!(out.all_runs().count(), 2); // and the frame of stream 0 after it
//! ```

use std::ops::{Deref, DerefMut};

use abi_stable::{StableAbi, std_types::RVec};

use crate::{Frames, Value};

/// The stream of frames pushed without naming one.
pub const DEFAULT_STREAM: u64 = 0;

/// "No offset": the stream's byte positions are not tracked.
pub const NO_OFFSET: u64 = u64::MAX;

/// A run of frames of one stream inside a [`SourceBatch`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct StreamRun {
    /// The stream (a connection, a file, a request): each has its own preprocessor chain.
    pub stream: u64,
    /// The index after this run's last frame: the run holds the frames from the previous
    /// run's `end` up to here.
    pub end: u32,
    /// [`StreamRun::START`] (before this run's frames) and [`StreamRun::END`] (after them).
    pub flags: u8,
    /// With `START`: the byte offset of the stream's first byte (a resumed file), or
    /// [`NO_OFFSET`]. When given, every event of the stream gets `meta.offset`.
    pub offset: u64,
    /// With `START`: the stream's metadata (an object, or null), given to each of its events.
    pub meta: Value,
}

impl StreamRun {
    /// The stream starts before this run's frames.
    pub const START: u8 = 1;
    /// The stream ends after this run's frames: its preprocessors' partial last frame is
    /// flushed.
    pub const END: u8 = 2;

    /// Whether the run starts its stream.
    #[must_use]
    pub fn starts(&self) -> bool {
        self.flags & Self::START != 0
    }

    /// Whether the run ends its stream.
    #[must_use]
    pub fn ends(&self) -> bool {
        self.flags & Self::END != 0
    }
}

/// One pull's worth of input: frames (for the codec) in runs by stream, and values.
///
/// It dereferences to its [`Frames`]: `out.push(bytes)` adds a frame of stream 0, as a source
/// of interface 1 did.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct SourceBatch {
    frames: Frames,
    /// Runs in order; frames after the last run's `end` belong to stream 0.
    runs: RVec<StreamRun>,
    values: RVec<Value>,
    /// One per value (null when it has none).
    value_meta: RVec<Value>,
    /// The delivery token of this batch: set by the engine before the pull (0 when the source
    /// does not take acknowledgements).
    token: u64,
}

impl SourceBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the batch for the next pull (keeping its allocations) and sets its token.
    pub fn reset(&mut self, token: u64) {
        self.frames.clear();
        self.runs.clear();
        self.values.clear();
        self.value_meta.clear();
        self.token = token;
    }

    /// The delivery token the engine will `ack` or `fail` for what this pull hands over (0
    /// when this source takes no acknowledgements).
    #[must_use]
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Whether nothing was handed over (no frame, value, stream start or end).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.runs.is_empty() && self.values.is_empty()
    }

    /// The frames, in order.
    #[must_use]
    pub fn frames(&self) -> &Frames {
        &self.frames
    }

    /// The runs, in order.
    #[must_use]
    pub fn runs(&self) -> &[StreamRun] {
        &self.runs
    }

    /// The structured values and their metadata (one each).
    #[must_use]
    pub fn values(&self) -> (&[Value], &[Value]) {
        (&self.values, &self.value_meta)
    }

    /// Takes the values and their metadata out, leaving empty vectors.
    pub fn take_values(&mut self) -> (RVec<Value>, RVec<Value>) {
        (
            std::mem::take(&mut self.values),
            std::mem::take(&mut self.value_meta),
        )
    }

    fn frame_count(&self) -> u32 {
        u32::try_from(self.frames.len()).unwrap_or(u32::MAX)
    }

    /// Puts frames pushed without a stream into a run of stream 0.
    fn cover(&mut self) {
        let end = self.frame_count();
        if self.runs.last().map_or(end > 0, |r| r.end < end) {
            self.runs.push(StreamRun {
                stream: DEFAULT_STREAM,
                end,
                flags: 0,
                offset: NO_OFFSET,
                meta: Value::Null,
            });
        }
    }

    /// Starts `stream` with its metadata (an object with the fields every event of the stream
    /// gets, such as `peer`). A stream that is never started has no metadata of its own.
    pub fn start_stream(&mut self, stream: u64, meta: Value) {
        self.start_stream_at(stream, NO_OFFSET, meta);
    }

    /// Starts `stream` whose first byte is at `offset` (a file resumed there): each of its
    /// events gets `meta.offset`, the byte offset where its frame began, when its connector's
    /// preprocessors are none or begin with `separate`.
    pub fn start_stream_at(&mut self, stream: u64, offset: u64, meta: Value) {
        self.cover();
        self.runs.push(StreamRun {
            stream,
            end: self.frame_count(),
            flags: StreamRun::START,
            offset,
            meta,
        });
    }

    /// Appends bytes of `stream` (a chunk: the preprocessors cut it into frames).
    pub fn push_stream(&mut self, stream: u64, bytes: &[u8]) {
        self.cover();
        self.frames.push(bytes);
        let end = self.frame_count();
        match self.runs.last_mut() {
            Some(last) if last.stream == stream && !last.ends() => last.end = end,
            _ => self.runs.push(StreamRun {
                stream,
                end,
                flags: 0,
                offset: NO_OFFSET,
                meta: Value::Null,
            }),
        }
    }

    /// Ends `stream`: its preprocessors flush what they hold (a last line without a newline)
    /// and forget it.
    pub fn end_stream(&mut self, stream: u64) {
        self.cover();
        match self.runs.last_mut() {
            Some(last) if last.stream == stream && !last.ends() => last.flags |= StreamRun::END,
            _ => {
                let end = self.frame_count();
                self.runs.push(StreamRun {
                    stream,
                    end,
                    flags: StreamRun::END,
                    offset: NO_OFFSET,
                    meta: Value::Null,
                });
            }
        }
    }

    /// Hands over an event as it is, with no codec (`meta`: an object of fields for its
    /// metadata, or null).
    pub fn push_value(&mut self, value: Value, meta: Value) {
        self.values.push(value);
        self.value_meta.push(meta);
    }

    /// Every run, with the frames of stream 0 pushed after the last run as a final run.
    pub fn all_runs(&self) -> impl Iterator<Item = (std::ops::Range<usize>, &StreamRun)> + '_ {
        static TAIL: StreamRun = StreamRun {
            stream: DEFAULT_STREAM,
            end: 0,
            flags: 0,
            offset: NO_OFFSET,
            meta: Value::Null,
        };
        let total = self.frames.len();
        let covered = self.runs.last().map_or(0, |r| r.end as usize);
        let mut start = 0;
        self.runs
            .iter()
            .map(move |r| {
                let range = start..r.end as usize;
                start = r.end as usize;
                (range, r)
            })
            .chain((covered < total).then_some((covered..total, &TAIL)))
    }
}

impl Deref for SourceBatch {
    type Target = Frames;
    fn deref(&self) -> &Frames {
        &self.frames
    }
}

impl DerefMut for SourceBatch {
    /// Frames pushed through this belong to stream 0.
    fn deref_mut(&mut self) -> &mut Frames {
        &mut self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(b: &SourceBatch) -> Vec<(std::ops::Range<usize>, u64, u8)> {
        b.all_runs()
            .map(|(range, r)| (range, r.stream, r.flags))
            .collect()
    }

    #[test]
    fn plain_frames_are_stream_zero() {
        let mut b = SourceBatch::new();
        b.push(b"a");
        b.push(b"b");
        assert_eq!(runs(&b), [(0..2, 0, 0)]);
        assert!(b.runs().is_empty());
    }

    #[test]
    fn streams_interleave_in_runs() {
        let mut b = SourceBatch::new();
        b.push(b"zero");
        b.start_stream(1, Value::Null);
        b.push_stream(1, b"x");
        b.push_stream(1, b"y");
        b.push_stream(2, b"z");
        b.end_stream(1);
        b.push_stream(2, b"w");
        b.end_stream(2);
        assert_eq!(
            runs(&b),
            [
                (0..1, 0, 0),
                (1..3, 1, StreamRun::START),
                (3..4, 2, 0),
                (4..4, 1, StreamRun::END),
                (4..5, 2, StreamRun::END),
            ]
        );
    }

    #[test]
    fn reset_keeps_nothing_but_the_token() {
        let mut b = SourceBatch::new();
        b.start_stream(3, Value::Null);
        b.push_stream(3, b"x");
        b.push_value(Value::from(1_u64), Value::Null);
        assert!(!b.is_empty());
        b.reset(9);
        assert!(b.is_empty());
        assert_eq!(b.token(), 9);
        assert_eq!(b.values().0.len(), 0);
    }
}
