//! The source task: pulls a source plugin, runs each stream's bytes through its own
//! preprocessor chain, decodes, gives every event its metadata, and sends the batch (with its
//! delivery token) to every pipeline the source is linked to. Between pulls it hands the
//! outcomes of earlier batches back to the plugin (`ack`, `fail`), and it does not pull while a
//! sink it feeds has paused it (circuit breaker).
//!
//! ```text
//! pull -> SourceBatch { runs of frames by stream, values }
//!      -> per stream: preprocessors (one chain per stream, flushed at the stream's end)
//!      -> codec.decode -> events + meta {connector, stream, ...the stream's own}
//!      -> Batch (events, error events, token) -> every linked pipeline
//! ```

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc::{Receiver, Sender, SyncSender},
    },
    time::{Duration, Instant},
};

use temblor_shim::{
    DEFAULT_STREAM, FrameError, Frames, NO_OFFSET, Notify, Object, Pull, RVec, SourceBatch,
    StreamRun, Value,
    abi::{CodecBox, SourceBox},
    abi_stable::std_types::RStr,
};
use tracing::{debug, error, info, warn};

use super::{
    Batch, add, call, live::Live, recover_codec, restart, send_all, stats::ConnectorCounters,
};
use crate::{
    delivery::{Acks, Outcome, Tokens},
    deploy::{Named, RestartPolicy},
    pipeline::Events,
    processors::{self, Preprocessor},
    wakeup::{Stop, Wakeup},
};

/// How many bytes of an undecodable frame an error event carries.
const ERROR_BYTES_SHOWN: usize = 256;

/// How long an idle source with batches in flight waits for their outcomes before it is
/// pulled again.
const ACK_WAIT: Duration = Duration::from_millis(10);

/// Whether a source may be pulled: sinks it feeds close it while they cannot write.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// How many sinks hold it closed.
    closed_by: AtomicUsize,
    /// The source's thread, woken when the gate opens.
    wakeup: Arc<Wakeup>,
}

impl Gate {
    pub(crate) fn close(&self) {
        self.closed_by.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn open(&self) {
        let _ = self
            .closed_by
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.wakeup.wake();
    }

    /// The wake-up of the source behind this gate.
    pub(crate) fn wakeup(&self) -> &Arc<Wakeup> {
        &self.wakeup
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed_by.load(Ordering::Acquire) > 0
    }
}

/// One stream's state: its preprocessors and the metadata of its events.
pub(crate) struct Stream {
    chain: Vec<Preprocessor>,
    /// `{connector, stream, ...the fields the source gave at its start}`.
    meta: Value,
    /// The offset of the stream's first byte, when the source gave one and the chain lets
    /// frames be traced back to their bytes (none, or `separate` alone).
    base: Option<u64>,
    /// Bytes of this stream seen so far (for a chain without preprocessors).
    seen: u64,
}

pub(crate) struct SourceTask {
    pub(crate) id: String,
    pub(crate) source: Live<SourceBox>,
    pub(crate) decoder: Live<CodecBox>,
    /// The preprocessors each new stream gets (checked at start-up).
    pub(crate) pre: Vec<Named>,
    pub(crate) streams: HashMap<u64, Stream>,
    /// Where sent batches come back to be freed on this thread.
    pub(crate) home: (Sender<RVec<Value>>, Receiver<RVec<Value>>),
    pub(crate) restart: RestartPolicy,
    /// Restarts since the last successful pull.
    pub(crate) failures: u32,
    /// Tokens and their outcomes, when the current instance wants acknowledgements.
    pub(crate) acks: Acks,
    pub(crate) wants_acks: bool,
    pub(crate) gate: Arc<Gate>,
    /// Whether the current instance took a `Notify`: it is pulled again only when woken.
    pub(crate) notified: bool,
    /// The instance was replaced: its streams end before the next batch.
    pub(crate) reset: bool,
    /// The engine asked it to stop.
    pub(crate) stopping: bool,
}

impl std::fmt::Debug for SourceTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTask")
            .field("id", &self.id)
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

/// Work buffers of one source thread, kept between batches.
#[derive(Default)]
struct Scratch {
    work: Frames,
    tmp: Frames,
    merged: Frames,
    starts: Vec<u64>,
    /// Per merged frame: the index of its metadata in `metas`, and its offset (`NO_OFFSET`:
    /// none).
    origin: Vec<(u32, u64)>,
    /// The metadata of the streams whose frames are in this batch.
    metas: Vec<Value>,
    /// Stream id to index in `metas`, for this batch.
    meta_index: HashMap<u64, u32>,
    pre_errors: Vec<processors::PreprocessError>,
}

/// An error event: why, from where, and the start of the offending bytes.
fn error_event(connector: &str, reason: &str, bytes: Option<&[u8]>) -> Value {
    let mut event = Object::with_capacity(4);
    event.push("error".into(), reason.into());
    event.push("connector".into(), connector.into());
    if let Some(bytes) = bytes {
        let shown = &bytes[..bytes.len().min(ERROR_BYTES_SHOWN)];
        event.push(
            "bytes".into(),
            String::from_utf8_lossy(shown).into_owned().into(),
        );
        event.push("bytes_len".into(), bytes.len().into());
    }
    Value::Object(event)
}

/// The metadata every event of a stream gets: `connector`, `stream`, then the source's fields.
fn stream_meta(connector: &str, stream: u64, own: &Value) -> Value {
    let fields = own.as_object();
    let mut meta = Object::with_capacity(2 + fields.map_or(0, Object::len));
    meta.push("connector".into(), connector.into());
    meta.push("stream".into(), stream.into());
    if let Some(fields) = fields {
        for (k, v) in fields.iter() {
            if k != "connector" && k != "stream" {
                meta.push(k.into(), v.clone());
            }
        }
    } else if !matches!(own, Value::Null) {
        meta.push("source".into(), own.clone());
    }
    Value::Object(meta)
}

fn with_offset(meta: &Value, offset: u64) -> Value {
    let mut meta = meta.clone();
    if let Some(o) = meta.as_object_mut() {
        o.insert("offset", offset.into());
    }
    meta
}

impl SourceTask {
    fn new_stream(&self, stream: u64, own: &Value, offset: u64) -> Stream {
        let mut chain: Vec<Preprocessor> = self
            .pre
            .iter()
            .filter_map(|n| {
                Preprocessor::new(n)
                    .map_err(|e| error!(error = %e, "a preprocessor checked at start-up failed to build"))
                    .ok()
            })
            .collect();
        let traceable = chain.is_empty() || (self.pre.len() == 1 && self.pre[0].name == "separate");
        let base = (offset != NO_OFFSET && traceable).then_some(offset);
        if base.is_some()
            && let Some(first) = chain.first_mut()
        {
            first.track_starts();
        }
        Stream {
            chain,
            meta: stream_meta(&self.id, stream, own),
            base,
            seen: 0,
        }
    }

    /// Frees the batches that came back, and reuses one's vector for the next batch.
    fn recycled(&mut self, capacity: usize) -> RVec<Value> {
        let mut spare: Option<RVec<Value>> = None;
        while let Ok(mut values) = self.home.1.try_recv() {
            values.clear();
            if spare
                .as_ref()
                .is_none_or(|s| s.capacity() < values.capacity())
            {
                spare = Some(values);
            }
        }
        let mut values = spare.unwrap_or_default();
        values.reserve(capacity);
        values
    }

    /// A new instance of the source runs from now on: it is asked whether it wants acks, and
    /// outcomes of the old one's batches are not passed to it. Its streams start afresh.
    fn adopted(&mut self) {
        self.acks.new_instance();
        self.reset = !self.streams.is_empty();
        self.wants_acks = self
            .source
            .instance
            .as_ref()
            .is_some_and(|s| s.wants_acks());
        let wakeup = Arc::clone(self.gate.wakeup());
        self.notified = self
            .source
            .instance
            .as_mut()
            .is_some_and(|s| s.set_notify(Notify::new(wakeup)));
    }

    /// Passes the outcomes that arrived (waiting up to `wait` for one) to the plugin.
    fn deliver_outcomes(
        &mut self,
        wait: Duration,
        outcomes: &mut Vec<Outcome>,
        counters: &ConnectorCounters,
    ) {
        if self.acks.outstanding() == 0 {
            return;
        }
        self.acks.collect(wait, outcomes);
        for o in outcomes.drain(..) {
            let Some(source) = self.source.instance.as_mut() else {
                continue;
            };
            let result = match &o {
                Outcome::Ack(token) => {
                    add(&counters.acked, 1);
                    source.ack(*token)
                }
                Outcome::Fail(token, reason) => {
                    add(&counters.failed, 1);
                    warn!(connector = %self.id, token, reason = %reason, "a batch could not be delivered; telling the source");
                    source.fail(*token, RStr::from_str(reason))
                }
            };
            if let Err(e) = result.into_result() {
                add(&counters.errors, 1);
                error!(connector = %self.id, error = %e, "the source failed to take an acknowledgement");
            }
        }
    }

    /// One pull; on a failure the source is restarted. `(done, idle)`.
    fn pull(
        &mut self,
        batch: &mut SourceBatch,
        stop: &Stop,
        counters: &ConnectorCounters,
    ) -> (bool, bool) {
        batch.reset(0);
        if stop.requested() {
            info!(connector = %self.id, "source stopping on request");
            self.stopping = true;
            return (true, false);
        }
        // A reload is adopted here, between batches. A source is dropped before its new
        // version is built: it may hold a port the new one binds.
        if self.source.stale() {
            self.source.adopt_reload(true);
            self.adopted();
        }
        if self.decoder.stale() {
            self.decoder.adopt_reload(false);
        }
        batch.reset(if self.wants_acks { self.acks.peek() } else { 0 });
        let pulled = call(&mut self.source, |s| s.pull_batch(batch));
        add(&counters.bytes_in, batch.byte_len());
        match pulled {
            Ok(Pull::Ready) => {
                self.failures = 0;
                (false, false)
            }
            Ok(Pull::Idle) => {
                self.failures = 0;
                (false, true)
            }
            Ok(Pull::Exhausted) => (true, false),
            Err(e) => {
                // What the failed pull had produced still goes on.
                add(&counters.errors, 1);
                error!(connector = %self.id, plugin = %self.source.plugin, error = %e, "source failed");
                let restarted = restart(
                    &mut self.source,
                    &self.restart,
                    &mut self.failures,
                    Some(stop),
                    counters,
                    &counters.source_state,
                );
                if restarted {
                    self.adopted();
                }
                (!restarted, false)
            }
        }
    }

    /// Pulls until the source is exhausted or the engine stops. A source stopped on request is
    /// handed back, still open, for the engine to drop once every sink has flushed: what its
    /// connections still receive meanwhile (a sink of the same deployment writing to it, say)
    /// finds a peer, not a closed port.
    pub(crate) fn run(
        mut self,
        targets: Vec<SyncSender<Batch>>,
        stop: &Stop,
        counters: &ConnectorCounters,
    ) -> Option<Self> {
        stop.register(self.gate.wakeup());
        let mut batch = SourceBatch::new();
        let mut scratch = Scratch::default();
        let mut logged_error = false;
        let mut outcomes = Vec::new();
        self.adopted();
        debug!(connector = %self.id, acks = self.wants_acks, notified = self.notified, "source started");
        loop {
            self.deliver_outcomes(Duration::ZERO, &mut outcomes, counters);
            if self.gate.is_closed() {
                self.wait_while_paused(stop, &mut outcomes, counters);
            }
            let (done, idle) = self.pull(&mut batch, stop, counters);
            let sent = self.emit(
                &mut batch,
                done,
                &mut scratch,
                &targets,
                counters,
                &mut logged_error,
            );
            if done || !sent {
                if !sent {
                    debug!(connector = %self.id, "every pipeline this source feeds is gone");
                }
                break;
            }
            if idle && self.notified {
                // Until the plugin has data, a sink has an outcome, or the engine news.
                self.gate.wakeup().wait(None);
            } else if idle {
                self.deliver_outcomes(ACK_WAIT, &mut outcomes, counters);
            }
        }
        // Nothing more goes out: the pipelines can finish, and the sinks flush what they hold,
        // which resolves the tokens still in flight.
        drop(targets);
        self.wait_for_outcomes(&mut outcomes, counters);
        debug!(connector = %self.id, "source finished");
        self.stopping.then_some(self)
    }

    fn wait_while_paused(
        &mut self,
        stop: &Stop,
        outcomes: &mut Vec<Outcome>,
        counters: &ConnectorCounters,
    ) {
        let since = Instant::now();
        info!(connector = %self.id, "source paused by a sink that cannot write");
        while self.gate.is_closed() && !stop.requested() {
            // Woken by the gate opening, an outcome, or the stop.
            self.gate.wakeup().wait(None);
            self.deliver_outcomes(Duration::ZERO, outcomes, counters);
        }
        info!(connector = %self.id, paused_ms = since.elapsed().as_millis() as u64, "source resumed");
    }

    fn wait_for_outcomes(&mut self, outcomes: &mut Vec<Outcome>, counters: &ConnectorCounters) {
        let since = Instant::now();
        let mut next_report = Duration::from_secs(5);
        while self.acks.outstanding() > 0 {
            self.deliver_outcomes(Duration::from_millis(100), outcomes, counters);
            if since.elapsed() >= next_report {
                info!(connector = %self.id, in_flight = self.acks.outstanding(), "waiting for the sinks to deliver what this source handed over");
                next_report += Duration::from_secs(5);
            }
        }
    }

    /// The index in `s.metas` of the metadata of `id`'s events in this batch.
    fn meta_index(&self, id: u64, s: &mut Scratch) -> u32 {
        if let Some(&i) = s.meta_index.get(&id) {
            return i;
        }
        let meta = self.streams.get(&id).map_or_else(
            || stream_meta(&self.id, id, &Value::Null),
            |st| st.meta.clone(),
        );
        let i = u32::try_from(s.metas.len()).unwrap_or(u32::MAX);
        s.metas.push(meta);
        s.meta_index.insert(id, i);
        i
    }

    /// Runs one run of frames of a stream through its chain, appending the frames that come
    /// out to `s.merged` with their origin.
    fn run_stream(&mut self, run: &StreamRun, input: &Frames, s: &mut Scratch) {
        if run.starts()
            && let Some(old) = self.streams.remove(&run.stream)
        {
            // Started again without an end: what the old one holds is flushed first.
            self.finish_stream(run.stream, old, s);
        }
        if !self.streams.contains_key(&run.stream) {
            let own = if run.starts() {
                &run.meta
            } else {
                &Value::Null
            };
            let offset = if run.starts() { run.offset } else { NO_OFFSET };
            let stream = self.new_stream(run.stream, own, offset);
            self.streams.insert(run.stream, stream);
            s.meta_index.remove(&run.stream);
        }
        let meta = self.meta_index(run.stream, s);
        if let Some(stream) = self.streams.get_mut(&run.stream) {
            s.work.clear();
            for frame in input.iter() {
                s.work.push(frame);
            }
            let chunk_at = stream.seen;
            stream.seen += input.byte_len() as u64;
            processors::preprocess(
                &mut stream.chain,
                &mut s.work,
                &mut s.tmp,
                &mut s.pre_errors,
            );
            append(stream, meta, chunk_at, input, s);
        }
        if run.ends()
            && let Some(stream) = self.streams.remove(&run.stream)
        {
            self.finish_stream(run.stream, stream, s);
        }
    }

    /// Flushes what the chain of an ended stream holds into `s.merged`.
    fn finish_stream(&mut self, id: u64, mut stream: Stream, s: &mut Scratch) {
        let meta = match s.meta_index.remove(&id) {
            Some(i) => i,
            None => {
                let i = u32::try_from(s.metas.len()).unwrap_or(u32::MAX);
                s.metas.push(stream.meta.clone());
                i
            }
        };
        processors::finish_preprocess(
            &mut stream.chain,
            &mut s.work,
            &mut s.tmp,
            &mut s.pre_errors,
        );
        let seen = stream.seen;
        append(&mut stream, meta, seen, &Frames::new(), s);
    }

    /// Stopped on request: a frame a stream had not finished (a line whose end had not come)
    /// is not handed on cut short. Its bytes are dropped and logged.
    fn drop_unfinished(&mut self) {
        let mut s = Scratch::default();
        let mut dropped = 0;
        for (_, mut stream) in self.streams.drain() {
            processors::finish_preprocess(
                &mut stream.chain,
                &mut s.work,
                &mut s.tmp,
                &mut s.pre_errors,
            );
            dropped += s.work.byte_len();
        }
        if dropped > 0 {
            warn!(connector = %self.id, bytes = dropped, "stopped with unfinished frames (partial lines of open streams); they are dropped, not cut short");
        }
    }

    /// Every stream ends (the source is done, or was replaced by a new instance).
    fn finish_all(&mut self, s: &mut Scratch) {
        let mut ids: Vec<u64> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(stream) = self.streams.remove(&id) {
                self.finish_stream(id, stream, s);
            }
        }
    }

    /// Preprocesses, decodes and sends what one pull handed over (and, when `done`, what every
    /// stream still holds). False when no target is left.
    fn emit(
        &mut self,
        batch: &mut SourceBatch,
        done: bool,
        s: &mut Scratch,
        targets: &[SyncSender<Batch>],
        counters: &ConnectorCounters,
        logged_error: &mut bool,
    ) -> bool {
        s.merged.clear();
        s.origin.clear();
        s.metas.clear();
        s.meta_index.clear();
        let handed_over = !batch.is_empty();
        if self.reset {
            // A new instance of the source: the old one's streams are over.
            self.reset = false;
            self.finish_all(s);
        }
        // The common case, one stream without offsets: its chain runs on the batch in place.
        let fast = s.merged.is_empty()
            && s.pre_errors.is_empty()
            && batch.runs().is_empty()
            && self
                .streams
                .get(&DEFAULT_STREAM)
                .is_none_or(|st| st.base.is_none());
        if fast {
            if !self.streams.contains_key(&DEFAULT_STREAM) {
                let stream = self.new_stream(DEFAULT_STREAM, &Value::Null, NO_OFFSET);
                self.streams.insert(DEFAULT_STREAM, stream);
            }
            let meta = self.meta_index(DEFAULT_STREAM, s);
            if let Some(stream) = self.streams.get_mut(&DEFAULT_STREAM) {
                stream.seen += batch.byte_len() as u64;
                processors::preprocess(&mut stream.chain, batch, &mut s.tmp, &mut s.pre_errors);
            }
            if done {
                for frame in batch.frames().iter() {
                    s.merged.push(frame);
                }
                s.origin
                    .extend(std::iter::repeat_n((meta, NO_OFFSET), batch.frames().len()));
            }
        } else {
            let mut input = Frames::new();
            let runs: Vec<(std::ops::Range<usize>, StreamRun)> =
                batch.all_runs().map(|(r, run)| (r, run.clone())).collect();
            for (range, run) in &runs {
                input.clear();
                for i in range.clone() {
                    if let Some(frame) = batch.frames().get(i) {
                        input.push(frame);
                    }
                }
                self.run_stream(run, &input, s);
            }
        }
        let uniform = fast && !done;
        if done && self.stopping {
            self.drop_unfinished();
        } else if done {
            self.finish_all(s);
        }
        let (values, value_meta) = batch.take_values();
        let frames: &Frames = if uniform { batch.frames() } else { &s.merged };
        if frames.is_empty() && s.pre_errors.is_empty() && values.is_empty() {
            if handed_over && self.wants_acks {
                // Nothing came out (a stream start, a partial line): delivered at once.
                drop(self.acks.issue());
            }
            return true;
        }
        let tokens = if self.wants_acks && handed_over {
            self.acks.issue()
        } else {
            Tokens::default()
        };
        let mut events = Events::homed(
            self.recycled(frames.len() + values.len()),
            self.home.0.clone(),
        );
        let mut frame_errors: RVec<FrameError> = RVec::new();
        if !frames.is_empty()
            && let Err(e) = call(&mut self.decoder, |c| {
                c.decode(frames, &mut events.values, &mut frame_errors)
            })
        {
            error!(connector = %self.id, codec = %self.decoder.plugin, error = %e, frames = frames.len(), "decoding a batch failed; its frames go to the error port");
            events.values.clear();
            frame_errors = (0..frames.len())
                .map(|index| FrameError {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    reason: e.to_string().into(),
                })
                .collect();
            if !recover_codec(&mut self.decoder, &e) {
                counters.source_state.set(super::ConnectorState::Failed);
                return false;
            }
        }
        // Metadata: one value for the batch when every event shares it, else one each.
        let decoded = events.values.len();
        let default_meta = stream_meta(&self.id, DEFAULT_STREAM, &Value::Null);
        let frames_meta = if decoded == 0 {
            Some(None)
        } else if uniform || (s.metas.len() == 1 && s.origin.iter().all(|o| o.1 == NO_OFFSET)) {
            Some(s.metas.first())
        } else {
            None
        };
        let values_plain = value_meta.iter().all(|m| matches!(m, Value::Null));
        let shared = match (frames_meta, values.is_empty()) {
            (Some(m), true) => Some(m.cloned().unwrap_or(Value::Null)),
            (Some(None), false) if values_plain => Some(default_meta.clone()),
            (Some(Some(m)), false) if values_plain && *m == default_meta => Some(m.clone()),
            _ => None,
        };
        if let Some(base) = shared {
            events.base = base;
        } else {
            // Failed and skipped frames (`FrameError::skipped`) gave no event.
            let mut failed = frame_errors.iter().map(|fe| fe.index as usize).peekable();
            let mut meta = RVec::with_capacity(decoded + values.len());
            for (i, &(m, at)) in s.origin.iter().enumerate() {
                if failed.peek() == Some(&i) {
                    failed.next();
                    continue;
                }
                if meta.len() == decoded {
                    break;
                }
                let stream_meta = &s.metas[m as usize];
                meta.push(if at == NO_OFFSET {
                    stream_meta.clone()
                } else {
                    with_offset(stream_meta, at)
                });
            }
            // The fast path keeps no origins (every frame is of stream 0); and a codec may
            // decode fewer events than frames without saying why.
            let pad = if uniform {
                s.metas
                    .first()
                    .cloned()
                    .unwrap_or_else(|| default_meta.clone())
            } else {
                default_meta.clone()
            };
            meta.resize(decoded, pad);
            for m in &value_meta {
                meta.push(stream_meta(&self.id, DEFAULT_STREAM, m));
            }
            events.meta = meta;
        }
        events.values.extend(values);
        events.tokens = tokens;
        // One clock read per batch: the sinks observe the latency from here.
        events.born = Some(Instant::now());
        let mut errors = Events::local(RVec::new());
        for reason in s.pre_errors.drain(..) {
            errors
                .values
                .push(error_event(&self.id, &reason.to_string(), None));
        }
        for fe in frame_errors.iter().filter(|fe| !fe.is_skipped()) {
            errors.values.push(error_event(
                &self.id,
                &fe.reason,
                frames.get(fe.index as usize),
            ));
        }
        if !errors.values.is_empty() {
            errors.tokens = events.tokens.clone();
            add(&counters.errors, errors.values.len());
            if !*logged_error {
                *logged_error = true;
                warn!(connector = %self.id, first = %errors.values[0], "input that could not be decoded goes to the error port (only the first is logged)");
            }
        }
        add(&counters.events_out, events.values.len());
        send_all(targets, Batch { events, errors })
    }
}

/// Appends `s.work` (what the chain of `stream` produced) to `s.merged`, with each frame's
/// origin: the index of its metadata and its offset.
fn append(stream: &mut Stream, meta: u32, chunk_at: u64, input: &Frames, s: &mut Scratch) {
    match stream.base {
        None => s
            .origin
            .extend(std::iter::repeat_n((meta, NO_OFFSET), s.work.len())),
        Some(base) if stream.chain.is_empty() => {
            // Each chunk is a frame: its offset is where the chunk began.
            let mut at = base + chunk_at;
            for frame in input.iter() {
                s.origin.push((meta, at));
                at += frame.len() as u64;
            }
        }
        Some(base) => {
            s.starts.clear();
            if let Some(first) = stream.chain.first_mut() {
                first.take_starts(&mut s.starts);
            }
            let mut starts = s.starts.iter();
            for _ in 0..s.work.len() {
                let at = starts.next().map_or(NO_OFFSET, |p| base + p);
                s.origin.push((meta, at));
            }
        }
    }
    for frame in s.work.iter() {
        s.merged.push(frame);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;
    use crate::engine::{builder::Builder, testing};

    /// Runs the `chunks` source of `chunks` through `extra`'s preprocessors and codec `ver1`
    /// to the end: every event with its meta, and every error event.
    fn run(chunks: &str, extra: &str) -> (Vec<(Value, Value)>, Vec<Value>, ConnectorCounters) {
        let registry = testing::registry(false);
        let (d, plan) = testing::deployment(chunks, extra, &registry);
        let mut b = Builder::new(&d, &registry);
        let task = b
            .source(0, &plan.connectors[0], Arc::new(Gate::default()))
            .expect("builds");
        let (tx, rx) = sync_channel(64);
        let counters = ConnectorCounters::default();
        assert!(task.run(vec![tx], &testing::stop(), &counters).is_none());
        let (mut events, mut errors) = (Vec::new(), Vec::new());
        for batch in rx.try_iter() {
            for (i, v) in batch.events.values.iter().enumerate() {
                events.push((v.clone(), batch.events.meta_of(i).clone()));
            }
            errors.extend(batch.errors.values.iter().cloned());
        }
        (events, errors, counters)
    }

    #[test]
    fn frames_cut_across_pulls_are_joined_decoded_and_given_their_meta() {
        let (events, errors, counters) = run(
            r#"["a\nb", "c\nbad\n", "tail"]"#,
            r#"preprocessors = ["separate"]"#,
        );
        let values: Vec<&Value> = events.iter().map(|(v, _)| v).collect();
        // The last piece, without a separator, comes out when the stream ends.
        assert_eq!(
            values,
            ["v1:a", "v1:bc", "v1:tail"]
                .map(Value::from)
                .iter()
                .collect::<Vec<_>>()
        );
        for (_, meta) in &events {
            assert_eq!(meta.get("connector"), Some(&Value::from("in")));
            assert_eq!(meta.get("stream"), Some(&Value::from(DEFAULT_STREAM)));
        }
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].get("error"), Some(&Value::from("bad frame")));
        assert_eq!(errors[0].get("bytes"), Some(&Value::from("bad")));
        assert_eq!(errors[0].get("connector"), Some(&Value::from("in")));
        assert_eq!(counters.events_out.load(Ordering::Relaxed), 3);
        assert_eq!(counters.errors.load(Ordering::Relaxed), 1);
        assert_eq!(counters.bytes_in.load(Ordering::Relaxed), 3 + 6 + 4);
    }

    #[test]
    fn what_a_preprocessor_drops_is_an_error_event() {
        let (events, errors, _) = run(
            r#"["not base64!", "aGk="]"#,
            r#"preprocessors = ["base64"]"#,
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, Value::from("v1:hi"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let reason = errors[0].get("error").and_then(Value::as_str).unwrap();
        assert!(reason.starts_with("base64: "), "{reason}");
        assert_eq!(errors[0].get("connector"), Some(&Value::from("in")));
    }

    #[test]
    fn meta_is_connector_and_stream_then_the_sources_own_fields() {
        let own: Object = [
            ("path", Value::from("/tmp/x")),
            ("stream", Value::from("forged")),
            ("connector", Value::from("forged")),
        ]
        .into_iter()
        .collect();
        let meta = stream_meta("in", 7, &Value::Object(own));
        let keys: Vec<&str> = meta.as_object().unwrap().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["connector", "stream", "path"]);
        assert_eq!(meta.get("stream"), Some(&Value::from(7_u64)));
        // A source's meta that is not a table is kept under `source`.
        let meta = stream_meta("in", 0, &Value::from(42));
        assert_eq!(meta.get("source"), Some(&Value::from(42)));
        assert_eq!(
            with_offset(&meta, 9).get("offset"),
            Some(&Value::from(9_u64))
        );
    }

    #[test]
    fn an_error_event_shows_the_start_of_the_bytes_and_their_length() {
        let long = vec![b'x'; ERROR_BYTES_SHOWN * 2];
        let event = error_event("in", "why", Some(&long));
        let shown = event.get("bytes").and_then(Value::as_str).unwrap();
        assert_eq!(shown.len(), ERROR_BYTES_SHOWN);
        assert_eq!(event.get("bytes_len"), Some(&Value::from(long.len())));
        let event = error_event("in", "why", None);
        assert_eq!(event.get("bytes"), None);
        assert_eq!(event.get("error"), Some(&Value::from("why")));
    }

    #[test]
    fn a_gate_is_closed_while_any_sink_holds_it() {
        let gate = Gate::default();
        assert!(!gate.is_closed());
        gate.close();
        gate.close();
        gate.open();
        assert!(gate.is_closed(), "one sink still holds it");
        gate.open();
        assert!(!gate.is_closed());
        // An extra open does not make a later close count for nothing.
        gate.open();
        gate.close();
        assert!(gate.is_closed());
    }
}
