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
//! sources drop their channel ends, pipelines drain and finish, sinks drain, flush and finish;
//! a source that takes acknowledgements then waits for the outcome of everything it handed out.
//!
//! One file per task: `source.rs` (streams, metadata, tokens, the circuit breaker's gate),
//! `pipeline_task.rs`, `sink.rs` (retries, partial writes, dead letters, the breaker),
//! `dead_letter.rs`, `stats.rs`, and `live.rs` (instances that can be rebuilt: restarts and hot
//! reload). Delivery tokens are in `crate::delivery`.
//!
//! **Architecture Invariant:** no event is converted or copied between stages; a batch moves
//! from thread to thread by value, and plugins are called once per batch, never per event.

use std::{
    sync::{
        Arc, Mutex,
        atomic::AtomicBool,
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    thread::JoinHandle,
    time::Instant,
};

use temblor_shim::{ErrorKind, PluginError, Value, abi::CodecBox, abi_stable::std_types::RResult};
use tracing::{error, info, info_span, warn};

mod dead_letter;
mod live;
mod pipeline_task;
mod sink;
mod source;
mod stats;

use live::{Cells, Instance, Live};
pub use live::{ReloadError, Reloaded, Reloader};
pub(crate) use stats::add;
pub use stats::{
    ConnectorCounters, ConnectorState, Histogram, HistogramSnapshot, LATENCY_BOUNDS_S,
    PipelineCounters, StateCell, Stats,
};

use crate::{
    deploy::{ConnectorPlan, Deployment, Link, Named, Plan, RestartPolicy},
    pipeline::Events,
    processors::{self, Postprocessor, Preprocessor},
    registry::Registry,
};
use dead_letter::DeadLetter;
use sink::SinkTask;
use source::{Gate, SourceTask};

use crate::wakeup::Stop;

/// Batches in flight per channel. With up to ~1024 events a batch this bounds memory.
const CHANNEL_BATCHES: usize = 4;

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

/// Events from a source for a pipeline: decoded events, and error events for what failed.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
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
    /// Sources stopped on request, kept open until every sink has flushed.
    stopped: Arc<Mutex<Vec<SourceTask>>>,
    reloader: Reloader,
    stop: Stop,
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

        // The circuit breaker: each sink can pause the sources that feed it, through any
        // pipeline.
        let gates: Vec<Arc<Gate>> = deployment
            .connectors
            .iter()
            .map(|_| Arc::new(Gate::default()))
            .collect();
        let feeds = |sink: usize| -> Vec<Arc<Gate>> {
            let into: Vec<usize> = plan
                .links
                .iter()
                .filter_map(|l| match *l {
                    Link::PipelineToSink {
                        pipeline,
                        connector,
                        ..
                    } if connector == sink => Some(pipeline),
                    _ => None,
                })
                .collect();
            let mut sources: Vec<usize> = plan
                .links
                .iter()
                .filter_map(|l| match *l {
                    Link::SourceToPipeline {
                        connector,
                        pipeline,
                    } if into.contains(&pipeline) => Some(connector),
                    _ => None,
                })
                .collect();
            sources.sort_unstable();
            sources.dedup();
            sources.into_iter().map(|s| Arc::clone(&gates[s])).collect()
        };

        // Build every plugin object first, so that nothing starts when something is wrong.
        let sources: Vec<_> = source_targets
            .into_iter()
            .enumerate()
            .filter(|(_, targets)| !targets.is_empty())
            .filter_map(|(i, targets)| {
                b.source(i, &plan.connectors[i], Arc::clone(&gates[i]))
                    .map(|s| (i, s, targets))
            })
            .collect();
        let sinks: Vec<_> = sink_in
            .iter_mut()
            .enumerate()
            .filter_map(|(i, ch)| ch.take().map(|(tx, rx)| (i, tx, rx)))
            .filter_map(|(i, tx, rx)| {
                drop(tx);
                b.sink(i, &plan.connectors[i], feeds(i)).map(|s| (i, s, rx))
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
        // Every task runs from now on; each one's state changes only at its transitions.
        for (_, p) in &stats.pipelines {
            p.state.set(ConnectorState::Running);
        }
        for (i, _, _) in &sinks {
            stats.connectors[*i]
                .1
                .sink_state
                .set(ConnectorState::Running);
        }
        for (i, _, _) in &sources {
            stats.connectors[*i]
                .1
                .source_state
                .set(ConnectorState::Running);
        }
        let mut threads = Vec::new();
        // Each thread runs in a span naming its connector or pipeline: every log line it
        // writes (the plugins' too, which arrive through the log callback on this thread)
        // carries the id.
        for (i, (tx, rx)) in pipeline_in.drain(..).enumerate() {
            drop(tx);
            let ports = std::mem::take(&mut pipeline_out[i]);
            let def = plan.pipelines[i].clone();
            let stats = Arc::clone(&stats);
            threads.push(spawn(format!("pipeline-{}", def.id()), move || {
                let _span = info_span!("pipeline", id = def.id()).entered();
                let counters = &stats.pipelines[i].1;
                pipeline_task::run_pipeline(&def, &rx, &ports, counters);
                counters.state.finish();
            }));
        }
        let stop = Stop::new(stop);
        for (i, sink, rx) in sinks {
            let stats = Arc::clone(&stats);
            let stop = stop.clone();
            threads.push(spawn(format!("sink-{}", sink.id), move || {
                let _span = info_span!("connector", id = %sink.id).entered();
                let counters = &stats.connectors[i].1;
                sink.run(rx, &stop, counters);
                counters.sink_state.finish();
            }));
        }
        let stopped = Arc::new(Mutex::new(Vec::new()));
        for (i, source, targets) in sources {
            let stats = Arc::clone(&stats);
            let stop = stop.clone();
            let stopped = Arc::clone(&stopped);
            threads.push(spawn(format!("source-{}", source.id), move || {
                let _span = info_span!("connector", id = %source.id).entered();
                let counters = &stats.connectors[i].1;
                let open = source.run(targets, &stop, counters);
                counters.source_state.finish();
                if let Some(open) = open {
                    stopped.lock().unwrap_or_else(|e| e.into_inner()).push(open);
                }
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
            stopped,
            reloader: Reloader::new(b.cells, stop.clone()),
            stop,
        })
    }

    /// What stops this engine from another thread (a signal's, say): sources stop pulling,
    /// everything in flight drains, sinks flush, and [`Engine::wait`] returns.
    #[must_use]
    pub fn stopper(&self) -> Stop {
        self.stop.clone()
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
        // Every sink has flushed: the stopped sources close their ports and connections now.
        let closing = std::mem::take(&mut *self.stopped.lock().unwrap_or_else(|e| e.into_inner()));
        drop(closing);
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
        // The constructor's log lines name the connector as its thread's do (no plugin says it).
        let _span = info_span!("connector", id = %id).entered();
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

    fn source(&mut self, i: usize, plan: &ConnectorPlan, gate: Arc<Gate>) -> Option<SourceTask> {
        let spec = &self.deployment.connectors[i];
        let id = spec.id.get_ref().clone();
        let source = self.live("source", spec.plugin.get_ref(), &id, &plan.config);
        let codec = self.live(
            "codec of connector",
            &plan.codec.name,
            &id,
            &plan.codec.config,
        );
        // Checked here; each stream builds its own chain from the list.
        let pre = self.processors(&id, &plan.preprocessors, Preprocessor::new);
        if pre.len() != plan.preprocessors.len() {
            return None;
        }
        Some(SourceTask {
            decoder: codec?,
            source: source?,
            pre: plan.preprocessors.clone(),
            streams: std::collections::HashMap::new(),
            id,
            home: std::sync::mpsc::channel(),
            restart: plan.restart,
            failures: 0,
            acks: crate::delivery::Acks::waking(Arc::clone(gate.wakeup())),
            wants_acks: false,
            notified: false,
            gate,
            reset: false,
            stopping: false,
        })
    }

    fn sink(&mut self, i: usize, plan: &ConnectorPlan, feeds: Vec<Arc<Gate>>) -> Option<SinkTask> {
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
            feeds,
            paused: false,
            pending: Default::default(),
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
/// `failures` counts restarts since the last successful call. False when it gave up (`state`
/// is then `Failed`) or the engine stopped meanwhile; `state` is `Restarting` while it waits
/// and builds.
fn restart<T: Instance>(
    live: &mut Live<T>,
    policy: &RestartPolicy,
    failures: &mut u32,
    stop: Option<&Stop>,
    counters: &ConnectorCounters,
    state: &StateCell,
) -> bool {
    loop {
        *failures += 1;
        if *failures > policy.max_restarts {
            state.set(ConnectorState::Failed);
            error!(connector = %live.id, plugin = %live.plugin, restarts = *failures - 1, "giving up: the {} failed again after its last restart", T::WHAT);
            return false;
        }
        state.set(ConnectorState::Restarting);
        // Drop the failed instance first: it may hold what the new one needs (a port, a file).
        live.instance = None;
        let wait = policy.backoff(*failures);
        warn!(connector = %live.id, plugin = %live.plugin, restart = *failures, wait_ms = wait.as_millis() as u64, "restarting the {}", T::WHAT);
        let waited = match stop {
            Some(stop) => stop.sleep(wait),
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
                state.set(ConnectorState::Running);
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
