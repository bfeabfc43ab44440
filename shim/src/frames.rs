//! A batch of frames (byte strings) in one buffer: what sources, preprocessors, codecs,
//! postprocessors and sinks hand each other.

use abi_stable::{StableAbi, std_types::RVec};

/// Frames packed end to end in one buffer, with the end offset of each.
///
/// Filling a batch allocates nothing once its buffers have grown: `clear` keeps the capacity.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq, Eq)]
pub struct Frames {
    data: RVec<u8>,
    ends: RVec<u32>,
}

impl Frames {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of frames.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no frames.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The total number of bytes in all frames.
    #[must_use]
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Removes every frame, keeping the allocations.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// Appends one frame.
    ///
    /// # Panics
    /// When the batch would exceed 4 GiB (producers flush long before).
    pub fn push(&mut self, frame: &[u8]) {
        self.data.extend_from_copy_slice(frame);
        self.seal();
    }

    /// Appends one frame written by `write` straight into the buffer (no intermediate copy).
    pub fn push_with(&mut self, write: impl FnOnce(&mut RVec<u8>)) {
        write(&mut self.data);
        self.seal();
    }

    fn seal(&mut self) {
        let end = u32::try_from(self.data.len()).expect("a frame batch stays below 4 GiB");
        self.ends.push(end);
    }

    /// The `i`th frame.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.data[start..end])
    }

    /// The frames in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let frame = &self.data[start..end as usize];
            start = end as usize;
            frame
        })
    }
}

impl<'a> FromIterator<&'a [u8]> for Frames {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut frames = Self::new();
        for frame in iter {
            frames.push(frame);
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_including_empty_ones() {
        let mut f = Frames::new();
        f.push(b"one");
        f.push(b"");
        f.push_with(|buf| buf.extend_from_slice(b"three"));
        assert_eq!(f.len(), 3);
        assert_eq!(f.byte_len(), 8);
        let all: Vec<&[u8]> = f.iter().collect();
        assert_eq!(all, [&b"one"[..], b"", b"three"]);
        assert_eq!(f.get(2), Some(&b"three"[..]));
        assert_eq!(f.get(3), None);
        f.clear();
        assert!(f.is_empty());
        assert_eq!(f.iter().count(), 0);
    }
}
