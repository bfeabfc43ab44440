//! The sink task: encodes each batch, postprocesses it, writes it with its events' metadata,
//! and flushes when its input is idle (and, while it holds delivery tokens, every few
//! batches). A failed write is retried (only the frames the sink did not write), then written
//! to the dead letter file or counted as lost; a token is released (acked) once what it covers
//! was flushed or dead-lettered, and marked failed when it was lost.
//!
//! **Circuit breaker:** while a write fails, the sources that feed this sink are paused (their
//! [`Gate`]s closed); the first write that succeeds, or giving the batch up, opens them again.

use std::sync::{
    Arc,
    mpsc::{Receiver, TryRecvError},
};

use temblor_shim::{
    ErrorKind, Frames, RVec, Value,
    abi::{CodecBox, SinkBox},
    abi_stable::std_types::RSlice,
};
use tracing::{debug, error, info, warn};

use super::{
    add, call, dead_letter::DeadLetter, live::Live, recover_codec, restart, source::Gate,
    stats::ConnectorCounters,
};
use crate::{delivery::Tokens, deploy::RestartPolicy, pipeline::Events, wakeup::Stop};

/// While it holds tokens, a sink flushes at least every this many batches, so that acks do
/// not wait for its input to go idle.
const FLUSH_EVERY: usize = 8;

pub(crate) struct SinkTask {
    pub(crate) id: String,
    pub(crate) sink: Live<SinkBox>,
    pub(crate) encoder: Live<CodecBox>,
    pub(crate) post: Vec<crate::processors::Postprocessor>,
    pub(crate) restart: RestartPolicy,
    pub(crate) retries: u32,
    /// Restarts since the last successful write.
    pub(crate) failures: u32,
    /// Gave up restarting: every batch goes to the dead letter file (or is counted lost).
    pub(crate) dead: bool,
    pub(crate) dead_letter: Option<DeadLetter>,
    /// The gates of the sources that feed this sink.
    pub(crate) feeds: Vec<Arc<Gate>>,
    /// Whether this sink holds them closed.
    pub(crate) paused: bool,
    /// Tokens of what was written and not flushed yet, and of how many batches.
    pub(crate) pending: (Tokens, usize),
}

/// What became of one batch.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Written,
    DeadLettered,
    Lost(String),
}

/// The metadata to hand the sink with `frames`: one per frame when the events had their own
/// and encoded one frame each, the shared one, or none.
fn meta_for<'a>(events: &'a Events, frames: &Frames) -> &'a [Value] {
    if !events.meta.is_empty() && events.meta.len() == frames.len() {
        &events.meta
    } else if matches!(events.base, Value::Null) {
        &[]
    } else {
        std::slice::from_ref(&events.base)
    }
}

impl SinkTask {
    pub(crate) fn run(mut self, rx: Receiver<Events>, stop: &Stop, counters: &ConnectorCounters) {
        let mut frames = Frames::new();
        let mut scratch = Frames::new();
        let mut dirty = false;
        loop {
            let mut events = match rx.try_recv() {
                Ok(events) => events,
                Err(TryRecvError::Empty) => {
                    if dirty {
                        self.flush(counters);
                        dirty = false;
                    }
                    match rx.recv() {
                        Ok(events) => events,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            add(&counters.events_in, events.values.len());
            let tokens = std::mem::take(&mut events.tokens);
            // A reload is adopted here, between batches: the old sink is flushed and dropped
            // before the new one is built.
            if self.encoder.stale() {
                self.encoder.adopt_reload(false);
            }
            if self.sink.stale() && !self.dead {
                if dirty {
                    self.flush(counters);
                    dirty = false;
                }
                self.sink.adopt_reload(true);
            }
            frames.clear();
            if let Err(e) = call(&mut self.encoder, |c| {
                c.encode(RSlice::from_slice(&events.values), &mut frames)
            }) {
                add(&counters.errors, events.values.len());
                error!(connector = %self.id, error = %e, events = events.values.len(), "encoding a batch failed");
                // The events as JSON, for the dead letter file (if there is none, they are only
                // counted).
                let json: Vec<String> = if self.dead_letter.is_some() {
                    events.values.iter().map(Value::to_json).collect()
                } else {
                    Vec::new()
                };
                let fate = self.give_up(
                    json.iter().map(String::as_bytes),
                    events.values.len(),
                    &format!("encoding failed: {e}"),
                    counters,
                );
                settle(tokens, &fate);
                if !recover_codec(&mut self.encoder, &e) {
                    counters.sink_state.set(super::ConnectorState::Failed);
                    break;
                }
                continue;
            }
            crate::processors::postprocess(&mut self.post, &mut frames, &mut scratch);
            let fate = self.deliver(
                &frames,
                meta_for(&events, &frames),
                events.values.len(),
                counters,
            );
            if fate == Fate::Written {
                if let Some(born) = events.born {
                    counters.latency.observe(born.elapsed());
                }
                dirty = true;
                if !tokens.is_empty() {
                    self.pending.0.absorb(tokens);
                    self.pending.1 += 1;
                    if self.pending.1 >= FLUSH_EVERY {
                        self.flush(counters);
                        dirty = false;
                    }
                }
            } else {
                settle(tokens, &fate);
            }
            if let Some(sink) = self.sink.instance.as_mut()
                && sink.stop_requested()
                && stop.request()
            {
                info!(connector = %self.id, "sink asked the engine to stop");
            }
        }
        self.flush(counters);
        self.resume(counters);
        debug!(connector = %self.id, "sink finished");
    }

    /// Closes the gates of the sources feeding this sink (once).
    fn pause(&mut self, counters: &ConnectorCounters) {
        if self.paused || self.feeds.is_empty() {
            return;
        }
        self.paused = true;
        add(&counters.paused, 1);
        for g in &self.feeds {
            g.close();
        }
        warn!(connector = %self.id, sources = self.feeds.len(), "the sink cannot write: pausing the sources that feed it");
    }

    fn resume(&mut self, counters: &ConnectorCounters) {
        if !self.paused {
            return;
        }
        self.paused = false;
        add(&counters.resumed, 1);
        for g in &self.feeds {
            g.open();
        }
        info!(connector = %self.id, "the sink writes again: resuming its sources");
    }

    /// Writes `frames` (the encoding of `events` events): on a failure it retries what the
    /// sink did not write (after a restart when the sink panicked), and gives the rest up
    /// after `retries` retries.
    fn deliver(
        &mut self,
        frames: &Frames,
        meta: &[Value],
        events: usize,
        counters: &ConnectorCounters,
    ) -> Fate {
        let mut attempt = 0;
        let mut delivered: RVec<u32> = RVec::new();
        // What is left to write after a partial write.
        let mut rest: Option<(Frames, Vec<Value>)> = None;
        while !self.dead {
            let (f, m) = match &rest {
                Some((f, m)) => (f, m.as_slice()),
                None => (frames, meta),
            };
            delivered.clear();
            let e = match call(&mut self.sink, |s| {
                s.push_batch(f, RSlice::from_slice(m), &mut delivered)
            }) {
                Ok(()) => {
                    self.failures = 0;
                    add(&counters.bytes_out, f.byte_len());
                    self.resume(counters);
                    return Fate::Written;
                }
                Err(e) => e,
            };
            add(&counters.errors, 1);
            if !delivered.is_empty() {
                let (left_frames, left_meta) = remaining(f, m, &delivered);
                debug!(connector = %self.id, written = delivered.len(), left = left_frames.len(), "a write failed half-way; only the rest is retried");
                rest = Some((left_frames, left_meta));
            }
            if attempt >= self.retries {
                error!(connector = %self.id, error = %e, events, retries = attempt, "writing a batch failed after its retries");
                break;
            }
            self.pause(counters);
            attempt += 1;
            add(&counters.retries, 1);
            if e.kind == ErrorKind::Panic || self.sink.instance.is_none() {
                error!(connector = %self.id, error = %e, "the sink panicked or is gone");
                if !restart(
                    &mut self.sink,
                    &self.restart,
                    &mut self.failures,
                    None,
                    counters,
                    &counters.sink_state,
                ) {
                    self.dead = true;
                }
            } else {
                let wait = self.restart.backoff(attempt);
                warn!(connector = %self.id, error = %e, retry = attempt, wait_ms = wait.as_millis() as u64, "writing a batch failed; retrying");
                std::thread::sleep(wait);
            }
        }
        self.resume(counters);
        let (left, n) = match &rest {
            // Frames were one per event when the meta was (else the count is the batch's).
            Some((f, _)) if frames.len() == events => (f, f.len()),
            Some((f, _)) => (f, events),
            None => (frames, events),
        };
        self.give_up(left.iter(), n, "the sink could not write it", counters)
    }

    /// What could not be delivered goes to the dead letter file, or is counted lost.
    fn give_up<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a [u8]>,
        events: usize,
        why: &str,
        counters: &ConnectorCounters,
    ) -> Fate {
        match &mut self.dead_letter {
            Some(dl) => match dl.write(lines) {
                Ok(()) => {
                    add(&counters.dead_lettered, events);
                    Fate::DeadLettered
                }
                Err(e) => {
                    add(&counters.lost, events);
                    error!(connector = %self.id, file = %dl.path.display(), error = %e, events, "cannot write to the dead letter file; the events are lost");
                    Fate::Lost(format!(
                        "sink '{}': {why}, and the dead letter file failed: {e}",
                        self.id
                    ))
                }
            },
            None => {
                add(&counters.lost, events);
                warn!(connector = %self.id, events, "undeliverable events dropped (no dead_letter file is configured)");
                Fate::Lost(format!("sink '{}': {why}", self.id))
            }
        }
    }

    fn flush(&mut self, counters: &ConnectorCounters) {
        let result = match self.sink.instance.as_mut() {
            Some(s) => s.flush().into_result(),
            None => Ok(()),
        };
        let (tokens, _) = std::mem::take(&mut self.pending);
        if let Err(e) = result {
            add(&counters.errors, 1);
            error!(connector = %self.id, error = %e, "flushing failed");
            tokens.fail(&format!("sink '{}': flushing failed: {e}", self.id));
        }
        // Dropping the tokens releases them: acked unless failed.
        drop(tokens);
    }
}

/// Releases the tokens of a batch that was not written: dead-lettered counts as delivered.
fn settle(tokens: Tokens, fate: &Fate) {
    if let Fate::Lost(reason) = fate {
        tokens.fail(reason);
    }
}

/// The frames (and their meta) whose indices are not in `delivered` (sorted).
fn remaining(frames: &Frames, meta: &[Value], delivered: &[u32]) -> (Frames, Vec<Value>) {
    let mut left = Frames::new();
    let mut left_meta = Vec::new();
    let per_frame = meta.len() == frames.len() && meta.len() > 1;
    for (i, frame) in frames.iter().enumerate() {
        if delivered
            .binary_search(&u32::try_from(i).unwrap_or(u32::MAX))
            .is_ok()
        {
            continue;
        }
        left.push(frame);
        if per_frame {
            left_meta.push(meta[i].clone());
        }
    }
    if !per_frame {
        left_meta = meta.to_vec();
    }
    (left, left_meta)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, atomic::Ordering, mpsc::sync_channel};

    use super::*;
    use crate::engine::{builder::Builder, source::Gate, testing};

    /// Runs the `flaky` sink `id` (`extra` lines in its table) over batches of `["a", "b"]`
    /// until they end; the gate of the one source that feeds it is returned too.
    fn run(id: &str, extra: &str) -> (ConnectorCounters, Arc<Gate>) {
        let registry = testing::registry(false);
        let (d, plan) = testing::sink_deployment(id, extra, &registry);
        let gate = Arc::new(Gate::default());
        let sink = Builder::new(&d, &registry)
            .sink(0, &plan.connectors[0], vec![Arc::clone(&gate)])
            .expect("builds");
        let (tx, rx) = sync_channel(4);
        tx.send(Events::local(
            ["a", "b"].map(Value::from).into_iter().collect(),
        ))
        .unwrap();
        drop(tx);
        let counters = ConnectorCounters::default();
        sink.run(rx, &testing::stop(), &counters);
        (counters, gate)
    }

    fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[test]
    fn a_failed_write_is_retried_and_pauses_its_sources_meanwhile() {
        let (c, gate) = run(
            "retried",
            "postprocessors = [\"separate\"]\nretries = 3\nconfig = { fail = 2 }\n\
             restart = { backoff_ms = 1, max_backoff_ms = 2, max_restarts = 3 }",
        );
        assert_eq!(testing::written("retried"), ["\"a\"\n", "\"b\"\n"]);
        assert_eq!((count(&c.retries), count(&c.errors)), (2, 2));
        assert_eq!((count(&c.paused), count(&c.resumed)), (1, 1));
        assert!(!gate.is_closed(), "the source may pull again");
        assert_eq!((count(&c.lost), count(&c.dead_lettered)), (0, 0));
        assert_eq!(count(&c.events_in), 2);
    }

    #[test]
    fn what_cannot_be_written_goes_to_the_dead_letter_file() {
        let path = std::env::temp_dir().join(format!(
            "temblor-core-dead-letter-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let (c, gate) = run(
            "dead",
            &format!(
                "retries = 1\nconfig = {{ fail = 100 }}\ndead_letter = {:?}\n\
                 restart = {{ backoff_ms = 1, max_backoff_ms = 2, max_restarts = 3 }}",
                path.display().to_string()
            ),
        );
        let letters = std::fs::read_to_string(&path).expect("the dead letter file");
        let _ = std::fs::remove_file(&path);
        assert_eq!(letters, "\"a\"\n\"b\"\n");
        assert_eq!((count(&c.dead_lettered), count(&c.lost)), (2, 0));
        assert_eq!(count(&c.retries), 1);
        assert!(testing::written("dead").is_empty());
        assert!(!gate.is_closed());
    }

    #[test]
    fn without_a_dead_letter_file_what_cannot_be_written_is_counted_lost() {
        let (c, _) = run("lost", "retries = 0\nconfig = { fail = 100 }");
        assert_eq!((count(&c.lost), count(&c.dead_lettered)), (2, 0));
        assert_eq!((count(&c.retries), count(&c.errors)), (0, 1));
    }

    #[test]
    fn only_what_was_not_delivered_remains() {
        let frames: Frames = [&b"a"[..], b"b", b"c", b"d"].into_iter().collect();
        let meta: Vec<Value> = (0..4_u64).map(Value::from).collect();
        let (left, m) = remaining(&frames, &meta, &[0, 2]);
        assert_eq!(left.iter().collect::<Vec<_>>(), [&b"b"[..], b"d"]);
        assert_eq!(m, [Value::from(1_u64), Value::from(3_u64)]);
        let shared = [Value::from("all")];
        let (left, m) = remaining(&frames, &shared, &[3]);
        assert_eq!(left.len(), 3);
        assert_eq!(m, shared);
    }

    #[test]
    fn meta_goes_per_frame_only_when_frames_match_events() {
        let mut events = Events::local((0..2_u64).map(Value::from).collect());
        let two: Frames = [&b"x"[..], b"y"].into_iter().collect();
        let one: Frames = std::iter::once(&b"xy"[..]).collect();
        assert!(meta_for(&events, &two).is_empty());
        events.base = Value::from("shared");
        assert_eq!(meta_for(&events, &two), [Value::from("shared")]);
        events.ensure_meta();
        assert_eq!(meta_for(&events, &two).len(), 2);
        assert_eq!(meta_for(&events, &one), [Value::from("shared")]);
    }

    #[test]
    fn lost_fails_the_tokens_and_dead_lettered_acks_them() {
        use crate::delivery::{Acks, Outcome};
        let mut acks = Acks::default();
        settle(acks.issue(), &Fate::DeadLettered);
        settle(acks.issue(), &Fate::Lost("gone".to_owned()));
        let mut out = Vec::new();
        acks.collect(std::time::Duration::ZERO, &mut out);
        assert_eq!(out, [Outcome::Ack(1), Outcome::Fail(2, "gone".to_owned())]);
    }
}
