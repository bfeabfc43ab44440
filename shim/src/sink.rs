//! What the sinks that write a batch with its metadata share: [`BatchSink`], written once per
//! batch, and [`batch_sink!`](crate::batch_sink), which makes one the shim's `Sink` (the
//! `push` of an interface-1 engine is a batch without metadata; an empty batch writes nothing).

use crate::{Frames, PluginError, RVec, Value, meta_of};

/// A batch handed to a sink: its frames (at least one) and their metadata (none, one value for
/// every frame, or one each).
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub frames: &'a Frames,
    pub meta: &'a [Value],
}

impl Batch<'_> {
    /// The metadata of frame `index` (null when there is none).
    #[must_use]
    pub fn meta(&self, index: usize) -> &Value {
        meta_of(self.meta, index)
    }

    /// Where frame `index` goes: `configured` (the sink's own key `key`), else the frame's
    /// `meta.<key>` (a string).
    ///
    /// # Errors
    /// When there is neither, naming the frame and `key`.
    pub fn destination<'b>(
        &'b self,
        index: usize,
        configured: Option<&'b str>,
        key: &str,
    ) -> Result<&'b str, String> {
        match (configured, self.meta(index).get(key)) {
            (Some(to), _) => Ok(to),
            (None, Some(Value::String(to))) => Ok(to.as_str()),
            (None, _) => Err(format!(
                "frame {index} has no `meta.{key}` and the config gives no `{key}`"
            )),
        }
    }
}

/// A sink that writes a batch at a time, with its metadata.
pub trait BatchSink {
    /// Writes `batch`. When some frames were written and others not, the error comes with the
    /// indices of the ones written in `delivered`, so that only the others are retried.
    ///
    /// # Errors
    /// When (some of) the batch could not be written.
    fn write(&mut self, batch: Batch<'_>, delivered: &mut RVec<u32>) -> Result<(), PluginError>;

    /// Makes what was written durable or delivered. The default: nothing to do, every batch is
    /// written (and confirmed) before `write` returns.
    ///
    /// # Errors
    /// When flushing fails.
    fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Implements the shim's `Sink` for a type that implements [`BatchSink`]:
/// `batch_sink!(MySink)`, or for a generic one `batch_sink!(impl<L: Link> for Retrying<L>)`.
#[macro_export]
macro_rules! batch_sink {
    (impl<$($g:ident: $bound:path),*> for $sink:ty) => {
        impl<$($g: $bound),*> $crate::Sink for $sink {
            fn push(
                &mut self,
                frames: &$crate::Frames,
            ) -> ::core::result::Result<(), $crate::PluginError> {
                $crate::Sink::push_batch(self, frames, &[], &mut $crate::RVec::new())
            }

            fn push_batch(
                &mut self,
                frames: &$crate::Frames,
                meta: &[$crate::Value],
                delivered: &mut $crate::RVec<u32>,
            ) -> ::core::result::Result<(), $crate::PluginError> {
                if frames.is_empty() {
                    return Ok(());
                }
                let batch = $crate::sink::Batch { frames, meta };
                $crate::sink::BatchSink::write(self, batch, delivered)
            }

            fn flush(&mut self) -> ::core::result::Result<(), $crate::PluginError> {
                $crate::sink::BatchSink::flush(self)
            }
        }
    };
    ($sink:ty) => {
        $crate::batch_sink!(impl<> for $sink);
    };
}

/// Frames marked `true` in `written`, as the indices `delivered` lists.
pub fn written(written: &[bool], delivered: &mut RVec<u32>) {
    delivered.extend(
        written
            .iter()
            .enumerate()
            .filter(|(_, w)| **w)
            .filter_map(|(i, _)| u32::try_from(i).ok()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sink;

    /// Writes frames until the one that says `fail`.
    #[derive(Default)]
    struct Upto {
        batches: usize,
        metas: Vec<Value>,
    }

    impl BatchSink for Upto {
        fn write(
            &mut self,
            batch: Batch<'_>,
            delivered: &mut RVec<u32>,
        ) -> Result<(), PluginError> {
            self.batches += 1;
            let mut done = vec![false; batch.frames.len()];
            for (i, frame) in batch.frames.iter().enumerate() {
                self.metas.push(batch.meta(i).clone());
                if frame == b"fail" {
                    written(&done, delivered);
                    return Err(PluginError::data("fail"));
                }
                done[i] = true;
            }
            Ok(())
        }
    }

    crate::batch_sink!(Upto);

    #[test]
    fn push_is_a_batch_without_meta_and_an_empty_batch_writes_nothing() {
        let mut sink = Upto::default();
        assert_eq!(sink.push(&Frames::new()), Ok(()));
        assert_eq!(sink.batches, 0, "nothing to write");
        let frames: Frames = [&b"a"[..], b"b"].into_iter().collect();
        assert_eq!(sink.push(&frames), Ok(()));
        assert_eq!(sink.metas, [Value::Null, Value::Null]);
        assert_eq!(Sink::flush(&mut sink), Ok(()));
    }

    #[test]
    fn meta_and_what_was_written_reach_the_engine() {
        let mut sink = Upto::default();
        let frames: Frames = [&b"a"[..], b"b", b"fail", b"c"].into_iter().collect();
        let mut delivered = RVec::new();
        let err = sink
            .push_batch(&frames, &[Value::from("all")], &mut delivered)
            .expect_err("the third frame fails");
        assert_eq!(err.message, "fail");
        assert_eq!(delivered.as_slice(), [0, 1]);
        assert_eq!(sink.metas, vec![Value::from("all"); 3]);
    }

    #[test]
    fn the_configured_destination_comes_before_the_meta() {
        let frames: Frames = [&b"a"[..], b"b"].into_iter().collect();
        let meta = [
            Value::Object([("topic", Value::from("t1"))].into_iter().collect()),
            Value::Null,
        ];
        let batch = Batch {
            frames: &frames,
            meta: &meta,
        };
        assert_eq!(batch.destination(0, None, "topic"), Ok("t1"));
        assert_eq!(batch.destination(0, Some("mine"), "topic"), Ok("mine"));
        assert_eq!(batch.destination(1, Some("mine"), "topic"), Ok("mine"));
        assert_eq!(
            batch.destination(1, None, "topic"),
            Err("frame 1 has no `meta.topic` and the config gives no `topic`".to_owned())
        );
    }
}
