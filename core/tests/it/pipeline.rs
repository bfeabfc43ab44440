//! Pipelines with operators in the running engine: route ports, the error port, timers that
//! fire without input, draining at the end, and what validation reports.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use temblor_core::{Deployment, Engine, Plugin, Registry};
use temblor_harness::deploy::{Deployment as Toml, Pipeline};
use temblor_shim::{PluginError, Pull, Setup, Source, SourceBatch, serde};

use crate::{lines_sink, plugins::collected, source, start_in};

/// `idle`: a source that emits its `chunks`, then idles (without ending) until stopped.
mod idle {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    struct Config {
        chunks: Vec<String>,
    }

    struct Idle(std::vec::IntoIter<String>);

    impl Source for Idle {
        fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
            if let Some(chunk) = self.0.next() {
                out.push(chunk.as_bytes());
                return Ok(Pull::Ready);
            }
            std::thread::sleep(Duration::from_millis(5));
            Ok(Pull::Idle)
        }
    }

    fn new(setup: &Setup<'_>) -> Result<Idle, PluginError> {
        let c: Config = setup.config()?;
        Ok(Idle(c.chunks.into_iter()))
    }

    temblor_shim::export_plugin! { name: "idle", kind: Connector, source: new }
}

fn registry() -> Registry {
    let mut r = super::registry();
    r.add(Plugin::new(idle::plugin_module(), "test:idle"))
        .unwrap();
    r
}

fn start(text: &str, stop: Arc<AtomicBool>) -> Result<Engine, String> {
    start_in(&registry(), text, stop)
}

fn run(text: &str) -> Arc<temblor_core::Stats> {
    start(text, Arc::new(AtomicBool::new(false)))
        .unwrap()
        .wait()
}

/// A `collect` sink named `name` (frames kept under `name`).
fn sink(id: &str, name: &str) -> String {
    format!(
        "[[connector]]\nid = \"{id}\"\nplugin = \"collect\"\ncodec = \"int\"\n\
         postprocessors = [\"separate\"]\nconfig = {{ name = \"{name}\" }}\n\n"
    )
}

fn link(from: &str, to: &str) -> String {
    format!("[[connect]]\nfrom = \"{from}\"\nto = \"{to}\"\n\n")
}

fn numbers(lines: &[String]) -> Vec<i64> {
    lines
        .iter()
        .map(|l| {
            l.trim_end()
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {l}"))
        })
        .collect()
}

#[test]
fn route_ports_filter_and_err_reach_their_sinks() {
    let main = Pipeline::new("main")
        .op("{ filter = 'event % 10 != 3' }")
        .op("{ filter = 'event / (event % 25) >= 0' }")
        .op(r#"{ route = { "big" = 'event >= 900', "even" = 'event % 2 == 0' } }"#);
    let text = Toml::pipe(
        source("lines", "{ count = 1000, per_pull = 7 }"),
        main,
        lines_sink("small", "rt-out"),
    )
    .connector(lines_sink("big", "rt-big"))
    .connector(lines_sink("even", "rt-even"))
    .connector(lines_sink("errors", "rt-err"))
    .connect("main/big", "big")
    .connect("main/even", "even")
    .connect("main/err", "errors")
    .to_toml();
    let stats = run(&text);

    // The same rules, computed here.
    let kept: Vec<i64> = (0..1000).filter(|n| n % 10 != 3 && n % 25 != 0).collect();
    let big: Vec<i64> = kept.iter().copied().filter(|n| *n >= 900).collect();
    let even: Vec<i64> = kept
        .iter()
        .copied()
        .filter(|n| *n < 900 && n % 2 == 0)
        .collect();
    let out: Vec<i64> = kept
        .iter()
        .copied()
        .filter(|n| *n < 900 && n % 2 != 0)
        .collect();
    let failed = (0..1000).filter(|n| n % 10 != 3 && n % 25 == 0).count();

    assert_eq!(numbers(&collected("rt-big")), big);
    assert_eq!(numbers(&collected("rt-even")), even);
    assert_eq!(numbers(&collected("rt-out")), out);
    let errors = collected("rt-err");
    assert_eq!(errors.len(), failed);
    assert!(
        errors[0].contains(r#""error":"filter: column 7: division by zero""#)
            && errors[0].contains(r#""pipeline":"main","operator":1,"event":0"#),
        "{}",
        errors[0]
    );

    let p = stats.pipeline("main").unwrap();
    assert_eq!(p.events_in.load(Ordering::Relaxed), 1000);
    assert_eq!(
        p.events_out.load(Ordering::Relaxed),
        (big.len() + even.len() + out.len()) as u64,
        "events_out counts out and the route ports"
    );
    assert_eq!(p.errors.load(Ordering::Relaxed), failed as u64);
    assert_eq!(p.dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn an_unconnected_route_port_drops_and_counts() {
    let text = Toml::pipe(
        source("lines", "{ count = 10 }"),
        Pipeline::new("main").op(r#"{ route = { "odd" = 'event % 2 == 1' } }"#),
        lines_sink("out", "drop-out"),
    )
    .to_toml();
    let stats = run(&text);
    assert_eq!(numbers(&collected("drop-out")), [0, 2, 4, 6, 8]);
    let p = stats.pipeline("main").unwrap();
    assert_eq!(p.dropped.load(Ordering::Relaxed), 5);
    assert_eq!(p.events_out.load(Ordering::Relaxed), 5);
}

#[test]
fn batch_and_count_hold_events_and_flush_everything_at_the_end() {
    let batches = Pipeline::new("batches").op("{ batch = { count = 100, timeout_ms = 60000 } }");
    let counts = Pipeline::new("counts")
        .op(r#"{ set = { "meta.parity" = 'event % 2' } }"#)
        .op(r#"{ count = { by = "meta.parity", window_s = 3600 } }"#);
    let text = Toml::pipe(
        source("lines", "{ count = 250, per_pull = 10 }"),
        batches,
        lines_sink("arrays", "hold-batches"),
    )
    .connector(lines_sink("counted", "hold-counts"))
    .pipeline(counts)
    .connect("in", "counts")
    .connect("counts", "counted")
    .to_toml();
    run(&text);
    let arrays = collected("hold-batches");
    assert_eq!(arrays.len(), 3, "two full batches and the rest at the end");
    let sizes: Vec<usize> = arrays.iter().map(|a| a.split(',').count()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert!(
        arrays[2].starts_with("[200,201,") && arrays[2].ends_with("249]\n"),
        "{}",
        arrays[2]
    );
    let counts = collected("hold-counts");
    assert_eq!(counts.len(), 2, "{counts:?}");
    for (c, value) in counts.iter().zip([0, 1]) {
        assert!(
            c.starts_with(&format!(
                r#"{{"by":"meta.parity","value":{value},"count":125,"#
            )),
            "{c}"
        );
    }
}

#[test]
fn a_batch_timeout_fires_while_no_input_arrives() {
    let stop = Arc::new(AtomicBool::new(false));
    let text = Toml::pipe(
        source("idle", r#"{ chunks = ["1\n2\n", "3\n"] }"#),
        Pipeline::new("main").op("{ batch = { count = 1000, timeout_ms = 50 } }"),
        lines_sink("out", "timeout-out"),
    )
    .to_toml();
    let engine = start(&text, Arc::clone(&stop)).unwrap();
    let started = Instant::now();
    while collected("timeout-out").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the batch timed out but nothing was emitted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !stop.load(Ordering::Relaxed),
        "emitted before the source stopped"
    );
    stop.store(true, Ordering::Relaxed);
    let _ = engine.wait();
    assert_eq!(collected("timeout-out"), ["[1,2,3]\n"]);
}

fn validate(text: &str) -> Result<temblor_core::Plan, temblor_core::DeployError> {
    let d = Deployment::parse(text, "t.toml").unwrap();
    d.validate(&registry(), "t.toml")
}

#[test]
fn validation_reports_operator_port_and_reachability_problems_at_their_place() {
    // (deployment, expected error lines, expected warning lines)
    let source = "[[connector]]\nid = \"in\"\nplugin = \"lines\"\ncodec = \"int\"\n\n";
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            // An expression error: the operator's line and column, the pipeline, the
            // operator's index and the column in the expression.
            format!(
                "{source}{}[[pipeline]]\nid = \"main\"\noperators = [\n  {{ filter = 'true' }},\n  {{ filter = 'event >' }},\n]\n\n{}{}",
                sink("out", "v1"),
                link("in", "main"),
                link("main", "out")
            ),
            vec!["t.toml:17:3: pipeline 'main' operators[1] (filter): column 8: expected a value"],
            vec![],
        ),
        (
            // An unknown route port; the known ones are listed.
            format!(
                "{source}{}[[pipeline]]\nid = \"main\"\noperators = [{{ route = {{ \"a\" = 'true' }}, default = \"b\" }}]\n\n{}{}{}",
                sink("out", "v2"),
                link("in", "main"),
                link("main/a", "out"),
                link("main/c", "out")
            ),
            vec![
                "t.toml:26:8: connect: pipeline 'main' has no port 'c' (its ports are 'out', 'err', 'a', 'b')",
            ],
            vec![],
        ),
        (
            // Every problem at once: a bad operator, a pipeline nothing feeds, a pipeline
            // whose events go nowhere (only `err` is connected).
            format!(
                "{source}{}[[pipeline]]\nid = \"lonely\"\n\n[[pipeline]]\nid = \"sinkless\"\noperators = [{{ nope = 1 }}]\n\n{}{}{}",
                sink("out", "v3"),
                link("lonely", "out"),
                link("in", "sinkless"),
                link("sinkless/err", "out")
            ),
            vec!["t.toml:18:14: pipeline 'sinkless' operators[0]: no operator in this table"],
            vec![
                "t.toml:14:6: pipeline 'lonely' has no input",
                "t.toml:17:6: pipeline 'sinkless': its events go nowhere",
            ],
        ),
        (
            // Warnings alone do not fail validation.
            format!(
                "{source}{}[[pipeline]]\nid = \"p\"\n\n{}",
                sink("out", "v4"),
                link("in", "p")
            ),
            vec![],
            vec!["t.toml:14:6: pipeline 'p': its events go nowhere"],
        ),
    ];
    for (text, errors, warnings) in cases {
        let (got_errors, got_warnings) = match validate(&text) {
            Ok(plan) => (
                Vec::new(),
                plan.warnings
                    .iter()
                    .map(|w| format!("t.toml:{w}"))
                    .collect(),
            ),
            Err(e) => (
                e.to_string().lines().map(str::to_owned).collect(),
                e.warning_lines(),
            ),
        };
        let matches = |got: &[String], want: &[&str]| {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.starts_with(w))
        };
        assert!(
            matches(&got_errors, &errors) && matches(&got_warnings, &warnings),
            "{text}\nerrors: {got_errors:#?}\nwarnings: {got_warnings:#?}"
        );
    }
}

#[test]
fn pipelines_still_cannot_feed_pipelines() {
    let text = format!(
        "[[pipeline]]\nid = \"a\"\n\n[[pipeline]]\nid = \"b\"\n\n{}",
        link("a", "b")
    );
    let err = validate(&text).unwrap_err().to_string();
    assert!(err.contains("linking pipelines is not available"), "{err}");
}
