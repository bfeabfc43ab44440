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
//! One file per task, each with its unit tests: `builder.rs` (every instance and chain built
//! before anything runs; which sources feed which sink), `source.rs` (streams, metadata,
//! tokens, the circuit breaker's gate), `pipeline_task.rs`, `sink.rs` (retries, partial writes,
//! dead letters, the breaker), `dead_letter.rs`, `stats.rs`, `live.rs` (instances that can be
//! rebuilt from a reloaded plugin: hot reload) and `restart.rs` (restarts with backoff, codecs
//! rebuilt after a panic). This file wires them: channels and threads. Delivery tokens are in
//! `crate::delivery`.
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

use tracing::{error, info, info_span, warn};

mod builder;
mod dead_letter;
mod live;
mod pipeline_task;
mod restart;
mod sink;
mod source;
mod stats;
#[cfg(test)]
mod testing;

use builder::Builder;
pub use live::{ReloadError, Reloaded, Reloader};
use restart::{call, recover_codec, restart};
pub(crate) use stats::add;
pub use stats::{
    ConnectorCounters, ConnectorState, Histogram, HistogramSnapshot, LATENCY_BOUNDS_S,
    PipelineCounters, StateCell, Stats,
};

use crate::{
    deploy::{Deployment, Link, Plan},
    pipeline::Events,
    registry::Registry,
};
use source::{Gate, SourceTask};

use crate::wakeup::Stop;

/// Batches in flight per channel. With up to ~1024 events a batch this bounds memory.
const CHANNEL_BATCHES: usize = 4;

/// Why a deployment could not start: one line per component that could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct StartError {
    /// One line per component that could not be built, naming it.
    pub problems: Vec<String>,
}

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
        let mut b = Builder::new(deployment, registry);

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
            builder::feeding(&plan.links, sink)
                .into_iter()
                .map(|s| Arc::clone(&gates[s]))
                .collect()
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
            if !builder::linked(&plan.links, i) {
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
