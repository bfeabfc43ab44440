//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! A metrics crate (`prometheus-client`) would bring its own registry, atomics, a derive macro
//! and its dependencies to re-expose counters the engine already keeps in its own atomics; the
//! format is a few lines per family. `promtool check metrics` checks the output in the tests.
//!
//! Families (every counter ends in `_total`):
//! - per connector (`connector` label): `temblor_connector_{events_in,events_out,bytes_in,
//!   bytes_out,errors,restarts,retries,dead_lettered,lost,acked,failed,paused,resumed}_total`,
//!   `temblor_connector_state{role,state}` (1 for the state each of its tasks is in);
//! - per sink: `temblor_batch_latency_seconds` (histogram, from the source making a batch to
//!   this sink having written it);
//! - per pipeline (`pipeline` label): `temblor_pipeline_{events_in,events_out,dropped,errors}_total`,
//!   `temblor_pipeline_state{state}`;
//! - the process: `process_resident_memory_bytes`, `process_open_fds`, `process_threads`,
//!   `temblor_peak_resident_memory_bytes`, `temblor_uptime_seconds`, `temblor_healthy`;
//! - `temblor_build_info{version}`, `temblor_plugin_info{plugin,kind,version,rustc,
//!   shim_interface,file,sha256}` and `temblor_plugin_generation{plugin}`.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

use temblor_core::engine::{ConnectorCounters, ConnectorState, PipelineCounters};

use crate::status::Report;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A counter of a counters struct `C`: its name, help and field.
type Counter<C> = (&'static str, &'static str, fn(&C) -> &AtomicU64);

/// A table of counters: each field of a counters struct, named after the field (the metric's
/// name without prefix and `_total`), with its help text.
macro_rules! counters {
    ($($field:ident: $help:literal,)*) => {
        [$((stringify!($field), $help, |c| &c.$field),)*]
    };
}

/// Every connector counter: name, help, field.
const CONNECTOR_COUNTERS: [Counter<ConnectorCounters>; 13] = counters! {
    events_in: "Events a sink received.",
    events_out: "Events a source emitted.",
    bytes_in: "Bytes a source read.",
    bytes_out: "Bytes a sink wrote.",
    errors: "Frames or events that failed, and failed calls.",
    restarts: "Instances rebuilt after a failure or a panic.",
    retries: "Writes tried again after a failure.",
    dead_lettered: "Events written to the dead letter file after their retries.",
    lost: "Events that could not be delivered and had nowhere else to go.",
    acked: "Batches whose delivery was acknowledged to the source.",
    failed: "Batches reported failed to the source.",
    paused: "Times a failing write paused the sources feeding this sink.",
    resumed: "Times a write succeeded again and those sources resumed.",
};

/// Every pipeline counter: name, help, field.
const PIPELINE_COUNTERS: [Counter<PipelineCounters>; 4] = counters! {
    events_in: "Events a pipeline received.",
    events_out: "Events a pipeline sent on out and route ports.",
    dropped: "Events dropped because nothing is connected to their port.",
    errors: "Error events sent on err.",
};

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `{a="x",b="y"}` (nothing for no labels).
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A float as the format writes it (`+Inf`, `-Inf`, `NaN`, or Rust's shortest round trip).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{} {value}", labels(pairs));
}

/// One counter family `temblor_{what}_{name}_total` per row of `table`, with a sample for each
/// of `items()` (its id as the label `what`).
fn counter_families<'a, C: 'a, I: Iterator<Item = (&'a str, &'a C)>>(
    out: &mut String,
    what: &str,
    table: &[Counter<C>],
    items: impl Fn() -> I,
) {
    for (name, help, field) in table {
        let metric = format!("temblor_{what}_{name}_total");
        family(out, &metric, "counter", help);
        for (id, counters) in items() {
            sample(
                out,
                &metric,
                &[(what, id)],
                field(counters).load(Ordering::Relaxed),
            );
        }
    }
}

/// The whole exposition.
#[allow(clippy::cast_precision_loss)]
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let stats = &report.stats;
    counter_families(&mut out, "connector", &CONNECTOR_COUNTERS, || {
        stats.connectors()
    });
    family(
        &mut out,
        "temblor_connector_state",
        "gauge",
        "1 for the state each task (source, sink) of a connector is in, 0 for the others.",
    );
    for (id, c) in stats.connectors() {
        for (role, cell) in [("source", &c.source_state), ("sink", &c.sink_state)] {
            let now = cell.get();
            if now == ConnectorState::Absent {
                continue;
            }
            for state in &ConnectorState::ALL[1..] {
                sample(
                    &mut out,
                    "temblor_connector_state",
                    &[("connector", id), ("role", role), ("state", state.as_str())],
                    u8::from(*state == now),
                );
            }
        }
    }
    family(
        &mut out,
        "temblor_batch_latency_seconds",
        "histogram",
        "From a source making a batch to this sink having written it.",
    );
    for (id, c) in stats.connectors() {
        if c.sink_state.get() == ConnectorState::Absent {
            continue;
        }
        let h = c.latency.snapshot();
        let name = "temblor_batch_latency_seconds_bucket";
        for (le, n) in &h.buckets {
            sample(&mut out, name, &[("connector", id), ("le", &float(*le))], n);
        }
        sample(
            &mut out,
            name,
            &[("connector", id), ("le", "+Inf")],
            h.count,
        );
        sample(
            &mut out,
            "temblor_batch_latency_seconds_sum",
            &[("connector", id)],
            float(h.sum_s),
        );
        sample(
            &mut out,
            "temblor_batch_latency_seconds_count",
            &[("connector", id)],
            h.count,
        );
    }
    counter_families(&mut out, "pipeline", &PIPELINE_COUNTERS, || {
        stats.pipelines()
    });
    family(
        &mut out,
        "temblor_pipeline_state",
        "gauge",
        "1 for the state a pipeline is in, 0 for the others.",
    );
    for (id, p) in stats.pipelines() {
        let now = p.state.get();
        for state in [ConnectorState::Running, ConnectorState::Finished] {
            sample(
                &mut out,
                "temblor_pipeline_state",
                &[("pipeline", id), ("state", state.as_str())],
                u8::from(state == now),
            );
        }
    }
    let process = report.process();
    let gauges: [(&str, &str, Option<f64>); 6] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.rss_kb.map(|kb| kb as f64 * 1024.0),
        ),
        (
            "temblor_peak_resident_memory_bytes",
            "Peak resident memory size in bytes.",
            process.peak_rss_kb.map(|kb| kb as f64 * 1024.0),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            process.open_fds.map(|n| n as f64),
        ),
        (
            "process_threads",
            "Number of OS threads in the process.",
            process.threads.map(|n| n as f64),
        ),
        (
            "temblor_uptime_seconds",
            "Seconds since temblor run started.",
            Some(process.uptime_s),
        ),
        (
            "temblor_healthy",
            "1 while every connector runs (GET /health answers 200), else 0.",
            Some(if report.problems().is_empty() {
                1.0
            } else {
                0.0
            }),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            family(&mut out, name, "gauge", help);
            sample(&mut out, name, &[], float(v));
        }
    }
    family(
        &mut out,
        "temblor_build_info",
        "gauge",
        "The temblor version, as a label; always 1.",
    );
    sample(
        &mut out,
        "temblor_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    let plugins = report.plugins();
    family(
        &mut out,
        "temblor_plugin_info",
        "gauge",
        "Each plugin the deployment uses, as it runs now, as labels; always 1.",
    );
    for p in &plugins {
        let shim = p.shim_interface.to_string();
        sample(
            &mut out,
            "temblor_plugin_info",
            &[
                ("plugin", &p.name),
                ("kind", p.kind),
                ("version", &p.version),
                ("rustc", &p.rustc),
                ("shim_interface", &shim),
                ("file", &p.file),
                ("sha256", p.sha256.as_deref().unwrap_or("")),
            ],
            1,
        );
    }
    family(
        &mut out,
        "temblor_plugin_generation",
        "gauge",
        "Hot reloads of each plugin since start-up.",
    );
    for p in &plugins {
        sample(
            &mut out,
            "temblor_plugin_generation",
            &[("plugin", &p.name)],
            p.generation,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&[("a", "x\"y"), ("b", "back\\slash\nnew")]),
            r#"{a="x\"y",b="back\\slash\nnew"}"#
        );
        assert_eq!(labels(&[]), "");
    }

    #[test]
    fn floats_are_written_as_the_format_reads_them() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(0.000_05), "0.00005");
        assert_eq!(float(2.5), "2.5");
        assert_eq!(float(1.0), "1");
    }
}
