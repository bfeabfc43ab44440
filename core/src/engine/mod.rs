//! Runs a validated deployment: one thread per source, pipeline and sink, joined by bounded
//! channels of event batches.
//!
//! ```text
//! source thread: pull frames -> preprocessors -> codec.decode ─┐ batch (events + error events)
//! pipeline thread: operators; events -> `out`/route ports, errors -> `err` ─┤ batch per port
//! sink thread: codec.encode -> postprocessors -> push; flush when idle and at the end
//! ```
//! A pipeline thread also wakes up without input when an operator has a deadline (a `batch`
//! timeout, the end of a `count` window), and flushes what its operators hold when its inputs
//! end.
//! Channels are bounded, so a slow sink slows its pipeline and then the sources (backpressure);
//! memory does not grow with the input. When every source is exhausted (or `stop` is set), the
//! sources drop their channel ends, pipelines drain and finish, sinks drain, flush and finish.
//!
//! **Architecture Invariant:** no event is converted or copied between stages; a batch moves
//! from thread to thread by value, and plugins are called once per batch, never per event.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel},
    },
    thread::JoinHandle,
    time::Instant,
};

use temblor_shim::{
    ErrorKind, FrameError, Frames, Object, PluginError, Pull, RVec, Value,
    abi::{CodecBox, SinkBox, SourceBox},
    abi_stable::std_types::{RResult, RSlice},
};
use tracing::{debug, error, info, warn};

mod live;

use live::{Cells, Instance, Live, sleep_unless_stopped};
pub use live::{ReloadError, Reloaded, Reloader};

use crate::{
    deploy::{ConnectorPlan, Deployment, Link, Named, Plan, RestartPolicy},
    pipeline::{ERR, Events, OUT, Output, Pipeline, PipelineDef},
    processors::{self, Postprocessor, Preprocessor},
    registry::Registry,
};

/// Batches in flight per channel. With up to ~1024 events a batch this bounds memory.
const CHANNEL_BATCHES: usize = 4;

/// How many bytes of an undecodable frame an error event carries.
const ERROR_BYTES_SHOWN: usize = 256;

/// Why a deployment could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    /// One line per component that could not be built.
    pub problems: Vec<String>,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for StartError {}

/// What went through one connector.
#[derive(Debug, Default)]
pub struct ConnectorCounters {
    /// Events received (sink side).
    pub events_in: AtomicU64,
    /// Events emitted (source side).
    pub events_out: AtomicU64,
    /// Bytes read (source side).
    pub bytes_in: AtomicU64,
    /// Bytes written (sink side).
    pub bytes_out: AtomicU64,
    /// Frames or events that failed, and failed calls.
    pub errors: AtomicU64,
    /// Instances rebuilt after a failure or a panic (sources and sinks).
    pub restarts: AtomicU64,
    /// Writes tried again after a failure (sinks).
    pub retries: AtomicU64,
    /// Events written to the dead letter file after their retries (sinks).
    pub dead_lettered: AtomicU64,
    /// Events that could not be delivered and had nowhere else to go (sinks).
    pub lost: AtomicU64,
}

/// What went through one pipeline.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Events received.
    pub events_in: AtomicU64,
    /// Events sent on `out` and on route ports.
    pub events_out: AtomicU64,
    /// Error events sent on `err`.
    pub errors: AtomicU64,
    /// Events dropped because nothing is connected to their port.
    pub dropped: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Live counters of a running engine.
#[derive(Debug)]
pub struct Stats {
    /// When the deployment's threads started, every connector built.
    started: Instant,
    connectors: Vec<(String, ConnectorCounters)>,
    pipelines: Vec<(String, PipelineCounters)>,
}

impl Stats {
    /// The counters of the connector with this id.
    #[must_use]
    pub fn connector(&self, id: &str) -> Option<&ConnectorCounters> {
        self.connectors
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, c)| c)
    }

    /// The counters of the pipeline with this id.
    #[must_use]
    pub fn pipeline(&self, id: &str) -> Option<&PipelineCounters> {
        self.pipelines.iter().find(|(i, _)| i == id).map(|(_, c)| c)
    }

    /// Every connector's counters, in deployment order.
    pub fn connectors(&self) -> impl Iterator<Item = (&str, &ConnectorCounters)> {
        self.connectors.iter().map(|(id, c)| (id.as_str(), c))
    }

    /// Seconds since the deployment started running (after every connector was built).
    #[must_use]
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Everything, as a value (written as JSON by `--stats-json`).
    #[must_use]
    pub fn to_value(&self) -> Value {
        let n = |c: &AtomicU64| Value::from(c.load(Ordering::Relaxed));
        let connectors: Object = self
            .connectors
            .iter()
            .map(|(id, c)| {
                let fields: Object = [
                    ("events_in", n(&c.events_in)),
                    ("events_out", n(&c.events_out)),
                    ("bytes_in", n(&c.bytes_in)),
                    ("bytes_out", n(&c.bytes_out)),
                    ("errors", n(&c.errors)),
                    ("restarts", n(&c.restarts)),
                    ("retries", n(&c.retries)),
                    ("dead_lettered", n(&c.dead_lettered)),
                    ("lost", n(&c.lost)),
                ]
                .into_iter()
                .collect();
                (id.as_str(), Value::Object(fields))
            })
            .collect();
        let pipelines: Object = self
            .pipelines
            .iter()
            .map(|(id, p)| {
                let fields: Object = [
                    ("events_in", n(&p.events_in)),
                    ("events_out", n(&p.events_out)),
                    ("errors", n(&p.errors)),
                    ("dropped", n(&p.dropped)),
                ]
                .into_iter()
                .collect();
                (id.as_str(), Value::Object(fields))
            })
            .collect();
        Value::Object(
            [
                ("elapsed_s", Value::F64(self.elapsed_s())),
                ("connectors", Value::Object(connectors)),
                ("pipelines", Value::Object(pipelines)),
            ]
            .into_iter()
            .collect(),
        )
    }
}

/// Events from a source for a pipeline: decoded events, and error events for what failed.
#[derive(Debug, Clone)]
struct Batch {
    events: Events,
    errors: Events,
}

/// Both ends of a bounded channel.
type Channel<T> = (SyncSender<T>, Receiver<T>);

/// A running deployment.
#[derive(Debug)]
pub struct Engine {
    stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
    reloader: Reloader,
}

impl Engine {
    /// Builds every component and starts the threads. Sources stop pulling when `stop` is set.
    ///
    /// # Errors
    /// Every component whose plugin refused to build it (bad config, missing file, ...).
    pub fn start(
        deployment: &Deployment,
        plan: &Plan,
        registry: &Registry,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, StartError> {
        let mut b = Builder {
            deployment,
            registry,
            cells: Cells::default(),
            problems: Vec::new(),
        };

        // Channels into pipelines and into sinks.
        let mut pipeline_in: Vec<Channel<Batch>> = deployment
            .pipelines
            .iter()
            .map(|_| sync_channel(CHANNEL_BATCHES))
            .collect();
        let mut sink_in: Vec<Option<Channel<Events>>> =
            deployment.connectors.iter().map(|_| None).collect();
        let mut source_targets: Vec<Vec<SyncSender<Batch>>> =
            deployment.connectors.iter().map(|_| Vec::new()).collect();
        let mut pipeline_out: Vec<Vec<Vec<SyncSender<Events>>>> = plan
            .pipelines
            .iter()
            .map(|def| def.ports().iter().map(|_| Vec::new()).collect())
            .collect();
        for link in &plan.links {
            match *link {
                Link::SourceToPipeline {
                    connector,
                    pipeline,
                } => source_targets[connector].push(pipeline_in[pipeline].0.clone()),
                Link::PipelineToSink {
                    pipeline,
                    port,
                    connector,
                } => {
                    let (tx, _) =
                        sink_in[connector].get_or_insert_with(|| sync_channel(CHANNEL_BATCHES));
                    pipeline_out[pipeline][port.index()].push(tx.clone());
                }
            }
        }

        // Build every plugin object first, so that nothing starts when something is wrong.
        let sources: Vec<_> = source_targets
            .into_iter()
            .enumerate()
            .filter(|(_, targets)| !targets.is_empty())
            .filter_map(|(i, targets)| b.source(i, &plan.connectors[i]).map(|s| (i, s, targets)))
            .collect();
        let sinks: Vec<_> = sink_in
            .iter_mut()
            .enumerate()
            .filter_map(|(i, ch)| ch.take().map(|(tx, rx)| (i, tx, rx)))
            .filter_map(|(i, tx, rx)| {
                drop(tx);
                b.sink(i, &plan.connectors[i]).map(|s| (i, s, rx))
            })
            .collect();
        for (i, c) in deployment.connectors.iter().enumerate() {
            let used = plan.links.iter().any(|l| match *l {
                Link::SourceToPipeline { connector, .. }
                | Link::PipelineToSink { connector, .. } => connector == i,
            });
            if !used {
                warn!(connector = %c.id.get_ref(), "connector is not connected to anything");
            }
        }
        if !b.problems.is_empty() {
            return Err(StartError {
                problems: b.problems,
            });
        }
        for w in &plan.warnings {
            warn!(
                line = w.line,
                column = w.column,
                "deployment: {}",
                w.message
            );
        }

        // The clock starts now, with every plugin object built: a source that loads its data
        // in its constructor (`bench` decompresses its data set) is not timed doing that.
        let stats = Arc::new(Stats {
            started: Instant::now(),
            connectors: deployment
                .connectors
                .iter()
                .map(|c| (c.id.get_ref().clone(), ConnectorCounters::default()))
                .collect(),
            pipelines: deployment
                .pipelines
                .iter()
                .map(|p| (p.id.get_ref().clone(), PipelineCounters::default()))
                .collect(),
        });
        let mut threads = Vec::new();
        for (i, (tx, rx)) in pipeline_in.drain(..).enumerate() {
            drop(tx);
            let ports = std::mem::take(&mut pipeline_out[i]);
            let def = plan.pipelines[i].clone();
            let stats = Arc::clone(&stats);
            threads.push(spawn(format!("pipeline-{}", def.id()), move || {
                run_pipeline(&def, &rx, &ports, &stats.pipelines[i].1);
            }));
        }
        for (i, sink, rx) in sinks {
            let stats = Arc::clone(&stats);
            let stop = Arc::clone(&stop);
            threads.push(spawn(format!("sink-{}", sink.id), move || {
                sink.run(rx, &stop, &stats.connectors[i].1);
            }));
        }
        for (i, source, targets) in sources {
            let stats = Arc::clone(&stats);
            let stop = Arc::clone(&stop);
            threads.push(spawn(format!("source-{}", source.id), move || {
                source.run(&targets, &stop, &stats.connectors[i].1);
            }));
        }
        info!(
            connectors = deployment.connectors.len(),
            pipelines = deployment.pipelines.len(),
            "deployment started"
        );
        Ok(Self {
            stats,
            threads,
            reloader: Reloader::new(b.cells),
        })
    }

    /// A handle that swaps plugins of this running engine (hot reload).
    #[must_use]
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The live counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Waits until every source is done and everything has drained and been flushed.
    #[must_use]
    pub fn wait(self) -> Arc<Stats> {
        for thread in self.threads {
            if thread.join().is_err() {
                error!("an engine thread panicked");
            }
        }
        self.stats
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("the OS refused to start a thread")
}

struct Builder<'a> {
    deployment: &'a Deployment,
    registry: &'a Registry,
    cells: Cells,
    problems: Vec<String>,
}

impl Builder<'_> {
    /// Builds the first instance of a plugin for connector `id`, or records why it cannot.
    fn live<T: Instance>(
        &mut self,
        what: &str,
        plugin: &str,
        id: &str,
        config: &Value,
    ) -> Option<Live<T>> {
        let Some(p) = self.registry.get(plugin) else {
            self.problems
                .push(format!("{what} '{id}': plugin '{plugin}' is not loaded"));
            return None;
        };
        let cell = self.cells.get_or_add(p);
        match Live::new(id, plugin, config, cell) {
            Ok(live) => Some(live),
            Err(e) => {
                self.problems
                    .push(format!("{what} '{id}' (plugin '{plugin}'): {e}"));
                None
            }
        }
    }

    fn processors<T>(
        &mut self,
        id: &str,
        list: &[Named],
        new: impl Fn(&Named) -> Result<T, processors::ProcessorError>,
    ) -> Vec<T> {
        list.iter()
            .filter_map(|n| {
                new(n)
                    .map_err(|e| self.problems.push(format!("connector '{id}': {e}")))
                    .ok()
            })
            .collect()
    }

    fn source(&mut self, i: usize, plan: &ConnectorPlan) -> Option<SourceTask> {
        let spec = &self.deployment.connectors[i];
        let id = spec.id.get_ref().clone();
        let source = self.live("source", spec.plugin.get_ref(), &id, &plan.config);
        let codec = self.live(
            "codec of connector",
            &plan.codec.name,
            &id,
            &plan.codec.config,
        );
        let pre = self.processors(&id, &plan.preprocessors, Preprocessor::new);
        Some(SourceTask {
            decoder: codec?,
            source: source?,
            pre,
            id,
            home: std::sync::mpsc::channel(),
            restart: plan.restart,
            failures: 0,
        })
    }

    fn sink(&mut self, i: usize, plan: &ConnectorPlan) -> Option<SinkTask> {
        let spec = &self.deployment.connectors[i];
        let id = spec.id.get_ref().clone();
        let sink = self.live("sink", spec.plugin.get_ref(), &id, &plan.config);
        let codec = self.live(
            "codec of connector",
            &plan.codec.name,
            &id,
            &plan.codec.config,
        );
        let post = self.processors(&id, &plan.postprocessors, Postprocessor::new);
        Some(SinkTask {
            encoder: codec?,
            sink: sink?,
            post,
            id,
            restart: plan.restart,
            retries: plan.retries,
            failures: 0,
            dead: false,
            dead_letter: plan.dead_letter.clone().map(DeadLetter::new),
        })
    }
}

/// After a failed decode or encode: a panicked codec may be broken, so build a fresh one.
/// False when that failed (the connector cannot go on).
fn recover_codec(codec: &mut Live<CodecBox>, e: &PluginError) -> bool {
    if e.kind != ErrorKind::Panic {
        return true;
    }
    match codec.rebuild() {
        Ok(()) => {
            warn!(connector = %codec.id, codec = %codec.plugin, "codec rebuilt after a panic");
            true
        }
        Err(e) => {
            error!(connector = %codec.id, codec = %codec.plugin, error = %e, "codec could not be rebuilt after a panic");
            false
        }
    }
}

/// Calls `f` on the instance, or fails when there is none (a rebuild failed).
fn call<T, R>(
    live: &mut Live<T>,
    f: impl FnOnce(&mut T) -> RResult<R, PluginError>,
) -> Result<R, PluginError> {
    match live.instance.as_mut() {
        Some(instance) => f(instance).into_result(),
        None => Err(PluginError::new(
            ErrorKind::Other,
            "no instance: the last rebuild failed",
        )),
    }
}

/// Restarts a failed source or sink: waits (exponential backoff, cut short by `stop`) and
/// builds a new instance, until one is built or `max_restarts` restarts in a row failed.
/// `failures` counts restarts since the last successful call. False when it gave up.
fn restart<T: Instance>(
    live: &mut Live<T>,
    policy: &RestartPolicy,
    failures: &mut u32,
    stop: Option<&AtomicBool>,
    counters: &ConnectorCounters,
) -> bool {
    loop {
        *failures += 1;
        if *failures > policy.max_restarts {
            error!(connector = %live.id, plugin = %live.plugin, restarts = *failures - 1, "giving up: the {} failed again after its last restart", T::WHAT);
            return false;
        }
        // Drop the failed instance first: it may hold what the new one needs (a port, a file).
        live.instance = None;
        let wait = policy.backoff(*failures);
        warn!(connector = %live.id, plugin = %live.plugin, restart = *failures, wait_ms = wait.as_millis() as u64, "restarting the {}", T::WHAT);
        let waited = match stop {
            Some(stop) => sleep_unless_stopped(stop, wait),
            None => {
                std::thread::sleep(wait);
                true
            }
        };
        if !waited {
            return false;
        }
        add(&counters.restarts, 1);
        match live.rebuild() {
            Ok(()) => {
                info!(connector = %live.id, plugin = %live.plugin, restart = *failures, "{} restarted", T::WHAT);
                return true;
            }
            Err(e) => {
                add(&counters.errors, 1);
                error!(connector = %live.id, plugin = %live.plugin, error = %e, "the {} could not be rebuilt", T::WHAT);
            }
        }
    }
}

struct SourceTask {
    id: String,
    source: Live<SourceBox>,
    decoder: Live<CodecBox>,
    pre: Vec<Preprocessor>,
    /// Where sent batches come back to be freed on this thread.
    home: (std::sync::mpsc::Sender<RVec<Value>>, Receiver<RVec<Value>>),
    restart: RestartPolicy,
    /// Restarts since the last successful pull.
    failures: u32,
}

/// An error event: why, from where, and the start of the offending bytes.
fn error_event(connector: &str, reason: &str, bytes: Option<&[u8]>) -> Value {
    let mut event = Object::with_capacity(3);
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

impl SourceTask {
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

    /// One pull; on a failure the source is restarted. True when the source is done.
    fn pull(
        &mut self,
        frames: &mut Frames,
        stop: &AtomicBool,
        counters: &ConnectorCounters,
    ) -> bool {
        if stop.load(Ordering::Relaxed) {
            info!(connector = %self.id, "source stopping on request");
            return true;
        }
        // A reload is adopted here, between batches. A source is dropped before its new
        // version is built: it may hold a port the new one binds.
        if self.source.stale() {
            self.source.adopt_reload(true);
        }
        if self.decoder.stale() {
            self.decoder.adopt_reload(false);
        }
        let pulled = call(&mut self.source, |s| s.pull(frames));
        add(&counters.bytes_in, frames.byte_len());
        match pulled {
            Ok(Pull::Ready | Pull::Idle) => {
                self.failures = 0;
                false
            }
            Ok(Pull::Exhausted) => true,
            Err(e) => {
                // What the failed pull had produced still goes on.
                add(&counters.errors, 1);
                error!(connector = %self.id, plugin = %self.source.plugin, error = %e, "source failed");
                !restart(
                    &mut self.source,
                    &self.restart,
                    &mut self.failures,
                    Some(stop),
                    counters,
                )
            }
        }
    }

    fn run(
        mut self,
        targets: &[SyncSender<Batch>],
        stop: &AtomicBool,
        counters: &ConnectorCounters,
    ) {
        let mut frames = Frames::new();
        let mut scratch = Frames::new();
        let mut pre_errors = Vec::new();
        let mut logged_error = false;
        debug!(connector = %self.id, "source started");
        loop {
            frames.clear();
            let done = self.pull(&mut frames, stop, counters);
            processors::preprocess(&mut self.pre, &mut frames, &mut scratch, &mut pre_errors);
            let sent = self.emit(
                &frames,
                &mut pre_errors,
                targets,
                counters,
                &mut logged_error,
            );
            if done || !sent {
                processors::finish_preprocess(
                    &mut self.pre,
                    &mut frames,
                    &mut scratch,
                    &mut pre_errors,
                );
                if sent {
                    self.emit(
                        &frames,
                        &mut pre_errors,
                        targets,
                        counters,
                        &mut logged_error,
                    );
                }
                break;
            }
        }
        debug!(connector = %self.id, "source finished");
    }

    /// Decodes `frames` and sends the batch to every target. False when no target is left.
    fn emit(
        &mut self,
        frames: &Frames,
        pre_errors: &mut Vec<String>,
        targets: &[SyncSender<Batch>],
        counters: &ConnectorCounters,
        logged_error: &mut bool,
    ) -> bool {
        if frames.is_empty() && pre_errors.is_empty() {
            return true;
        }
        let mut batch = Batch {
            events: Events::homed(self.recycled(frames.len()), self.home.0.clone()),
            errors: Events::local(RVec::new()),
        };
        let mut frame_errors: RVec<FrameError> = RVec::new();
        if let Err(e) = call(&mut self.decoder, |c| {
            c.decode(frames, &mut batch.events.values, &mut frame_errors)
        }) {
            error!(connector = %self.id, codec = %self.decoder.plugin, error = %e, frames = frames.len(), "decoding a batch failed; its frames go to the error port");
            batch.events.values.clear();
            frame_errors = (0..frames.len())
                .map(|index| FrameError {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    reason: e.to_string().into(),
                })
                .collect();
            if !recover_codec(&mut self.decoder, &e) {
                return false;
            }
        }
        for reason in pre_errors.drain(..) {
            batch
                .errors
                .values
                .push(error_event(&self.id, &reason, None));
        }
        for fe in &frame_errors {
            batch.errors.values.push(error_event(
                &self.id,
                &fe.reason,
                frames.get(fe.index as usize),
            ));
        }
        if !batch.errors.values.is_empty() {
            add(&counters.errors, batch.errors.values.len());
            if !*logged_error {
                *logged_error = true;
                warn!(connector = %self.id, first = %batch.errors.values[0], "input that could not be decoded goes to the error port (only the first is logged)");
            }
        }
        add(&counters.events_out, batch.events.values.len());
        send_all(targets, batch)
    }
}

/// Sends to every target (cloning for all but the last). False when every target is gone.
fn send_all<T: Clone>(targets: &[SyncSender<T>], item: T) -> bool {
    let Some((last, rest)) = targets.split_last() else {
        return false;
    };
    let mut any = false;
    for t in rest {
        any |= t.send(item.clone()).is_ok();
    }
    any | last.send(item).is_ok()
}

/// Runs a pipeline until its inputs end: each batch through the operators, wake-ups for
/// operators' deadlines, and a final flush of what they hold.
fn run_pipeline(
    def: &PipelineDef,
    rx: &Receiver<Batch>,
    ports: &[Vec<SyncSender<Events>>],
    counters: &PipelineCounters,
) {
    let id = def.id();
    let mut pipeline = Pipeline::new(def, Instant::now());
    let mut out = Output::default();
    let mut warned_drop = vec![false; ports.len()];
    loop {
        let received = match pipeline.deadline() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let now = Instant::now();
        let done = match received {
            Ok(batch) => {
                pipeline.tick(now, &mut out);
                add(&counters.events_in, batch.events.values.len());
                pipeline.process(batch.events, now, &mut out);
                if !batch.errors.values.is_empty() {
                    out.ports.push((ERR, batch.errors));
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => {
                pipeline.tick(now, &mut out);
                false
            }
            Err(RecvTimeoutError::Disconnected) => {
                pipeline.finish(now, &mut out);
                true
            }
        };
        for (port, events) in out.drain() {
            let n = events.values.len();
            let targets = &ports[port];
            if targets.is_empty() || !send_all(targets, events) {
                add(&counters.dropped, n);
                if !warned_drop[port] {
                    warned_drop[port] = true;
                    warn!(
                        pipeline = id,
                        port = def.ports()[port].as_str(),
                        "nothing is connected to this port; its events are dropped (counted as dropped)"
                    );
                }
            } else if port == ERR {
                add(&counters.errors, n);
            } else {
                debug_assert!(port == OUT || port > ERR);
                add(&counters.events_out, n);
            }
        }
        if done {
            break;
        }
    }
    debug!(pipeline = id, "pipeline finished");
}

/// Where a sink writes what it could not deliver: one frame a line (a newline is added unless
/// the frame ends with one), appended.
struct DeadLetter {
    path: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl DeadLetter {
    fn new(path: std::path::PathBuf) -> Self {
        Self { path, file: None }
    }

    fn write<'a>(&mut self, lines: impl Iterator<Item = &'a [u8]>) -> std::io::Result<()> {
        use std::io::Write as _;
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(std::io::BufWriter::new(file));
        }
        let Some(out) = self.file.as_mut() else {
            return Ok(());
        };
        for line in lines {
            out.write_all(line)?;
            if !line.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }
}

struct SinkTask {
    id: String,
    sink: Live<SinkBox>,
    encoder: Live<CodecBox>,
    post: Vec<Postprocessor>,
    restart: RestartPolicy,
    retries: u32,
    /// Restarts since the last successful write.
    failures: u32,
    /// Gave up restarting: every batch goes to the dead letter file (or is counted lost).
    dead: bool,
    dead_letter: Option<DeadLetter>,
}

impl SinkTask {
    fn run(mut self, rx: Receiver<Events>, stop: &AtomicBool, counters: &ConnectorCounters) {
        let mut frames = Frames::new();
        let mut scratch = Frames::new();
        let mut dirty = false;
        loop {
            let events = match rx.try_recv() {
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
                self.give_up(
                    json.iter().map(String::as_bytes),
                    events.values.len(),
                    counters,
                );
                if !recover_codec(&mut self.encoder, &e) {
                    break;
                }
                continue;
            }
            processors::postprocess(&mut self.post, &mut frames, &mut scratch);
            self.deliver(&frames, events.values.len(), counters);
            if let Some(sink) = self.sink.instance.as_mut()
                && sink.stop_requested()
                && !stop.swap(true, Ordering::Relaxed)
            {
                info!(connector = %self.id, "sink asked the engine to stop");
            }
            dirty = true;
        }
        self.flush(counters);
        debug!(connector = %self.id, "sink finished");
    }

    /// Writes `frames` (the encoding of `events` events): on a failure it retries (after a
    /// restart when the sink panicked), and gives the batch up after `retries` retries.
    fn deliver(&mut self, frames: &Frames, events: usize, counters: &ConnectorCounters) {
        let mut attempt = 0;
        while !self.dead {
            let e = match call(&mut self.sink, |s| s.push(frames)) {
                Ok(()) => {
                    self.failures = 0;
                    add(&counters.bytes_out, frames.byte_len());
                    return;
                }
                Err(e) => e,
            };
            add(&counters.errors, 1);
            if attempt >= self.retries {
                error!(connector = %self.id, error = %e, events, retries = attempt, "writing a batch failed after its retries");
                break;
            }
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
                ) {
                    self.dead = true;
                }
            } else {
                let wait = self.restart.backoff(attempt);
                warn!(connector = %self.id, error = %e, retry = attempt, wait_ms = wait.as_millis() as u64, "writing a batch failed; retrying");
                std::thread::sleep(wait);
            }
        }
        self.give_up(frames.iter(), events, counters);
    }

    /// What could not be delivered goes to the dead letter file, or is counted lost.
    fn give_up<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a [u8]>,
        events: usize,
        counters: &ConnectorCounters,
    ) {
        match &mut self.dead_letter {
            Some(dl) => match dl.write(lines) {
                Ok(()) => add(&counters.dead_lettered, events),
                Err(e) => {
                    add(&counters.lost, events);
                    error!(connector = %self.id, file = %dl.path.display(), error = %e, events, "cannot write to the dead letter file; the events are lost");
                }
            },
            None => {
                add(&counters.lost, events);
                warn!(connector = %self.id, events, "undeliverable events dropped (no dead_letter file is configured)");
            }
        }
    }

    fn flush(&mut self, counters: &ConnectorCounters) {
        if let Some(Err(e)) = self.sink.instance.as_mut().map(|s| s.flush().into_result()) {
            add(&counters.errors, 1);
            error!(connector = %self.id, error = %e, "flushing failed");
        }
    }
}
