//! The counters of a running engine: per connector and per pipeline, read live and written as
//! JSON by `--stats-json`; each connector's and pipeline's state (running, restarting, failed,
//! finished); and the batch latency from source to sink as a histogram of atomic buckets.
//!
//! **Architecture Invariant:** nothing here locks: every figure is an atomic that a task adds
//! to per batch (never per event) and a reader loads whenever it likes.

use std::{
    sync::atomic::{AtomicU8, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use temblor_shim::{Object, Value};

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
    /// Batches whose delivery was acknowledged to the source (sources taking acks).
    pub acked: AtomicU64,
    /// Batches reported failed to the source (sources taking acks).
    pub failed: AtomicU64,
    /// Times a failing write paused the sources feeding this sink (circuit breaker opened).
    pub paused: AtomicU64,
    /// Times a write succeeded again and those sources resumed (circuit breaker closed).
    pub resumed: AtomicU64,
    /// The state of its source task (`Absent` when it is not used as a source).
    pub source_state: StateCell,
    /// The state of its sink task (`Absent` when it is not used as a sink).
    pub sink_state: StateCell,
    /// From the moment a source made a batch until this sink wrote it (sinks).
    pub latency: Histogram,
}

impl ConnectorCounters {
    /// The connector's state: the worse of its source's and its sink's (failed, then
    /// restarting, then running, then finished).
    #[must_use]
    pub fn state(&self) -> ConnectorState {
        let (a, b) = (self.source_state.get(), self.sink_state.get());
        if a.rank() >= b.rank() { a } else { b }
    }
}

/// What a connector's task (or a pipeline) is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnectorState {
    /// No such task (a connector used only as a sink has no source task).
    Absent = 0,
    /// Running normally.
    Running = 1,
    /// Its plugin failed; waiting for the backoff or rebuilding the instance.
    Restarting = 2,
    /// Gave up restarting after `max_restarts` (a sink then dead-letters or loses everything).
    Failed = 3,
    /// Done: its input ended, or the engine stopped.
    Finished = 4,
}

impl ConnectorState {
    /// Every state, in the order of their numbers.
    pub const ALL: [Self; 5] = [
        Self::Absent,
        Self::Running,
        Self::Restarting,
        Self::Failed,
        Self::Finished,
    ];

    /// Its name in JSON, metrics and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Finished => "finished",
        }
    }

    /// How bad it is, for combining a connector's two tasks.
    const fn rank(self) -> u8 {
        match self {
            Self::Absent => 0,
            Self::Finished => 1,
            Self::Running => 2,
            Self::Restarting => 3,
            Self::Failed => 4,
        }
    }
}

/// A state that one task writes (on transitions only) and anyone reads.
#[derive(Debug, Default)]
pub struct StateCell(AtomicU8);

impl StateCell {
    /// The current state.
    #[must_use]
    pub fn get(&self) -> ConnectorState {
        let n = self.0.load(Ordering::Acquire);
        ConnectorState::ALL
            .get(usize::from(n))
            .copied()
            .unwrap_or(ConnectorState::Absent)
    }

    pub(crate) fn set(&self, state: ConnectorState) {
        self.0.store(state as u8, Ordering::Release);
    }

    /// The task ended: finished, unless it had failed (which stays).
    pub(crate) fn finish(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != ConnectorState::Failed as u8).then_some(ConnectorState::Finished as u8)
            });
    }
}

/// The upper bounds of the latency buckets, in seconds (the last bucket, `+Inf`, is implied).
pub const LATENCY_BOUNDS_S: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// The same bounds in nanoseconds, for the comparison `observe` makes.
const LATENCY_BOUNDS_NS: [u64; 16] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// A histogram of durations: one atomic per bucket (not cumulative), and the sum. No lock.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// What a [`Histogram`] held when it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, cumulative, for every bound
    /// of [`LATENCY_BOUNDS_S`].
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_s: f64,
}

impl HistogramSnapshot {
    /// The upper bound of the bucket holding quantile `q` (0..=1), `None` without
    /// observations, `+Inf` when it lies above the last bound.
    #[must_use]
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((self.count as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        Some(
            self.buckets
                .iter()
                .find(|(_, n)| *n >= rank)
                .map_or(f64::INFINITY, |(le, _)| *le),
        )
    }
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(LATENCY_BOUNDS_NS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The cumulative buckets, their count and the sum (the count is the buckets' total, so a
    /// reader always sees `+Inf` equal to the count).
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BOUNDS_S.len());
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            if let Some(&le) = LATENCY_BOUNDS_S.get(i) {
                buckets.push((le, total));
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let sum_s = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        HistogramSnapshot {
            buckets,
            count: total,
            sum_s,
        }
    }
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
    /// Groups the stateful operators (`aggregate`, `bucket`, `count`) hold now.
    pub state_groups: AtomicU64,
    /// An estimate of the bytes those operators hold (their groups' keys and states).
    pub state_bytes: AtomicU64,
    /// Groups those operators gave up because their `max_groups` was reached (an `aggregate`
    /// emits them early, a `bucket` forgets their counts).
    pub evicted: AtomicU64,
    /// Running, then finished.
    pub state: StateCell,
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Live counters of a running engine.
#[derive(Debug)]
pub struct Stats {
    /// When the deployment's threads started, every connector built.
    pub(crate) started: Instant,
    pub(crate) connectors: Vec<(String, ConnectorCounters)>,
    pub(crate) pipelines: Vec<(String, PipelineCounters)>,
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

    /// Every pipeline's counters, in deployment order.
    pub fn pipelines(&self) -> impl Iterator<Item = (&str, &PipelineCounters)> {
        self.pipelines.iter().map(|(id, p)| (id.as_str(), p))
    }

    /// Why the deployment is not healthy: one line per connector whose task is not running
    /// (restarting, failed, finished), naming it and its state. Empty while every connector
    /// runs.
    #[must_use]
    pub fn unhealthy(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, c) in &self.connectors {
            for (role, cell) in [("source", &c.source_state), ("sink", &c.sink_state)] {
                let state = cell.get();
                if !matches!(state, ConnectorState::Absent | ConnectorState::Running) {
                    problems.push(format!("connector '{id}' ({role}) is {}", state.as_str()));
                }
            }
        }
        problems
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
        let role = |cell: &StateCell| match cell.get() {
            ConnectorState::Absent => Value::Null,
            state => state.as_str().into(),
        };
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
                    ("acked", n(&c.acked)),
                    ("failed", n(&c.failed)),
                    ("paused", n(&c.paused)),
                    ("resumed", n(&c.resumed)),
                    ("state", c.state().as_str().into()),
                    ("source", role(&c.source_state)),
                    ("sink", role(&c.sink_state)),
                ]
                .into_iter()
                .collect();
                let mut fields = fields;
                if c.sink_state.get() != ConnectorState::Absent {
                    fields.insert("latency", latency_value(&c.latency.snapshot()));
                }
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
                    ("state_groups", n(&p.state_groups)),
                    ("state_bytes", n(&p.state_bytes)),
                    ("evicted", n(&p.evicted)),
                    ("state", p.state.get().as_str().into()),
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

/// `{count, sum_s, p50_le_s, p99_le_s, buckets: [[le_s, cumulative], ...]}`.
fn latency_value(h: &HistogramSnapshot) -> Value {
    let bound = |q| match h.quantile_bound(q) {
        Some(b) if b.is_finite() => Value::F64(b),
        // Above the last bound, or no observation yet.
        _ => Value::Null,
    };
    let buckets: Vec<Value> = h
        .buckets
        .iter()
        .map(|&(le, n)| Value::from(vec![Value::F64(le), Value::from(n)]))
        .collect();
    Value::Object(
        [
            ("count", Value::from(h.count)),
            ("sum_s", Value::F64(h.sum_s)),
            ("p50_le_s", bound(0.5)),
            ("p99_le_s", bound(0.99)),
            ("buckets", Value::from(buckets)),
        ]
        .into_iter()
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_in_the_json() {
        let stats = Stats {
            started: Instant::now(),
            connectors: vec![("in".to_owned(), ConnectorCounters::default())],
            pipelines: vec![("main".to_owned(), PipelineCounters::default())],
        };
        let c = stats.connector("in").expect("counters of 'in'");
        add(&c.acked, 3);
        add(&c.paused, 1);
        let v = stats.to_value();
        let json = v.to_json();
        for key in [
            "events_in",
            "events_out",
            "bytes_in",
            "bytes_out",
            "errors",
            "restarts",
            "retries",
            "dead_lettered",
            "lost",
            "acked",
            "failed",
            "paused",
            "resumed",
            "state_groups",
            "state_bytes",
            "evicted",
        ] {
            assert!(
                json.contains(&format!("\"{key}\"")),
                "{key} missing in {json}"
            );
        }
        let acked = v
            .get("connectors")
            .and_then(|c| c.get("in"))
            .and_then(|c| c.get("acked"))
            .and_then(Value::as_u64);
        assert_eq!(acked, Some(3));
        assert!(stats.pipeline("main").is_some());
        assert!(stats.connector("nope").is_none());
    }

    #[test]
    fn latency_buckets_are_cumulative_and_count_every_observation() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10)); // first bucket
        h.observe(Duration::from_millis(3)); // le 0.005
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), LATENCY_BOUNDS_S.len());
        assert_eq!(s.buckets[0], (0.000_05, 1));
        let at = |le: f64| s.buckets.iter().find(|b| b.0 == le).map(|b| b.1);
        assert_eq!(at(0.0025), Some(1));
        assert_eq!(at(0.005), Some(3));
        assert_eq!(at(5.0), Some(3));
        assert!((s.sum_s - 60.006_01).abs() < 1e-6, "{}", s.sum_s);
        assert_eq!(s.quantile_bound(0.5), Some(0.005));
        assert_eq!(s.quantile_bound(0.99), Some(f64::INFINITY));
        assert_eq!(Histogram::default().snapshot().quantile_bound(0.5), None);
    }

    #[test]
    fn a_connector_is_as_bad_as_its_worst_task_and_failed_stays() {
        let c = ConnectorCounters::default();
        assert_eq!(c.state(), ConnectorState::Absent);
        c.source_state.set(ConnectorState::Running);
        c.sink_state.set(ConnectorState::Restarting);
        assert_eq!(c.state(), ConnectorState::Restarting);
        c.sink_state.set(ConnectorState::Failed);
        c.sink_state.finish();
        assert_eq!(c.sink_state.get(), ConnectorState::Failed);
        c.source_state.finish();
        assert_eq!(c.source_state.get(), ConnectorState::Finished);
        assert_eq!(c.state(), ConnectorState::Failed);
    }

    #[test]
    fn unhealthy_names_the_connector_and_its_state() {
        let stats = Stats {
            started: Instant::now(),
            connectors: vec![
                ("in".to_owned(), ConnectorCounters::default()),
                ("out".to_owned(), ConnectorCounters::default()),
            ],
            pipelines: Vec::new(),
        };
        let (_, i) = &stats.connectors[0];
        let (_, o) = &stats.connectors[1];
        i.source_state.set(ConnectorState::Running);
        o.sink_state.set(ConnectorState::Running);
        assert!(stats.unhealthy().is_empty());
        o.sink_state.set(ConnectorState::Failed);
        assert_eq!(stats.unhealthy(), ["connector 'out' (sink) is failed"]);
        let v = stats.to_value();
        let state = v
            .get("connectors")
            .and_then(|c| c.get("out"))
            .and_then(|c| c.get("state"))
            .and_then(Value::as_str);
        assert_eq!(state, Some("failed"));
        let latency = v
            .get("connectors")
            .and_then(|c| c.get("out"))
            .and_then(|c| c.get("latency"));
        assert!(latency.is_some(), "a sink reports its latency: {v}");
    }
}
