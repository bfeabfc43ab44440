//! The counters of a running engine: per connector and per pipeline, read live and written as
//! JSON by `--stats-json`.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
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
    /// Groups those operators gave up because their `max_groups` was reached (an `aggregate`
    /// emits them early, a `bucket` forgets their counts).
    pub evicted: AtomicU64,
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
                    ("acked", n(&c.acked)),
                    ("failed", n(&c.failed)),
                    ("paused", n(&c.paused)),
                    ("resumed", n(&c.resumed)),
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
                    ("state_groups", n(&p.state_groups)),
                    ("evicted", n(&p.evicted)),
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
}
