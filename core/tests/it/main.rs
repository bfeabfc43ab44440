//! The engine end to end, with small plugins defined here and registered through the same
//! shim interface as loaded ones (no library is opened).

// The export macro checks the plugin crate's `export` feature, which this test crate lacks.
#![allow(unexpected_cfgs)]

mod pipeline;
mod plugins;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use temblor_core::{Deployment, Engine, Plugin, Registry};
use temblor_harness::deploy::{Connector, Deployment as Toml, Pipeline};

fn registry() -> Registry {
    let mut r = Registry::new();
    for (module, name) in [
        (plugins::lines::plugin_module(), "lines"),
        (plugins::int::plugin_module(), "int"),
        (plugins::collect::plugin_module(), "collect"),
        (plugins::endless::plugin_module(), "endless"),
        (plugins::notified::plugin_module(), "notified"),
    ] {
        r.add(Plugin::new(module, format!("test:{name}"))).unwrap();
    }
    r
}

fn start(text: &str, stop: Arc<AtomicBool>) -> Result<Engine, String> {
    start_in(&registry(), text, stop)
}

/// Parses, validates and starts `text` with the plugins of `registry`.
fn start_in(registry: &Registry, text: &str, stop: Arc<AtomicBool>) -> Result<Engine, String> {
    let d = Deployment::parse(text, "t.toml").map_err(|e| e.to_string())?;
    let plan = d.validate(registry, "t.toml").map_err(|e| e.to_string())?;
    Engine::start(&d, &plan, registry, stop).map_err(|e| e.to_string())
}

fn run(text: &str) -> Arc<temblor_core::Stats> {
    start(text, Arc::new(AtomicBool::new(false)))
        .unwrap()
        .wait()
}

/// The source `in` of `plugin` (`lines` and the like: integers, one a line), with its
/// config as a TOML inline table.
fn source(plugin: &str, config: &str) -> Connector {
    Connector::new("in", plugin)
        .codec("int")
        .pre("separate")
        .line(&format!("config = {config}"))
}

/// A `collect` sink, its frames kept under `name`.
fn collect(id: &str, name: &str) -> Connector {
    Connector::new(id, "collect").codec("int").set("name", name)
}

/// A `collect` sink of lines.
fn lines_sink(id: &str, name: &str) -> Connector {
    collect(id, name).post("separate")
}

/// `lines` (with `source_config`) → `main` → `out` (lines kept under `out`); `main/err` →
/// `errors` (kept under `err`).
fn deployment(source_config: &str, out: &str, err: &str) -> String {
    Toml::passthrough(source("lines", source_config), lines_sink("out", out))
        .connector(collect("errors", err))
        .connect("main/err", "errors")
        .to_toml()
}

#[test]
fn events_flow_and_bad_frames_go_to_the_error_port() {
    // Chunks split lines in the middle: the separate preprocessor joins them again.
    let stats = run(&deployment(
        r#"{ chunks = ["1\n2", "0\nx\n3", "\n\n4"] }"#,
        "flow-out",
        "flow-err",
    ));
    assert_eq!(
        plugins::collected("flow-out"),
        ["1\n", "20\n", "3\n", "4\n"]
    );
    let errors = plugins::collected("flow-err");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("not an integer"), "{}", errors[0]);
    assert!(errors[0].contains("\"bytes\":\"x\""), "{}", errors[0]);
    assert!(errors[0].contains("\"connector\":\"in\""), "{}", errors[0]);
    let stats = stats.to_value();
    assert_eq!(
        stats
            .get("connectors")
            .and_then(|c| c.get("in"))
            .and_then(|c| c.get("events_out"))
            .and_then(temblor_shim::Value::as_u64),
        Some(4)
    );
    let main = stats.get("pipelines").and_then(|p| p.get("main")).unwrap();
    assert_eq!(
        main.get("events_out").and_then(temblor_shim::Value::as_u64),
        Some(4)
    );
    assert_eq!(
        main.get("errors").and_then(temblor_shim::Value::as_u64),
        Some(1)
    );
}

#[test]
fn a_frame_the_codec_skips_gives_no_event_and_no_error() {
    let stats = run(&deployment(
        r#"{ chunks = ["skip\n1\nskip\nx\n", "skip\n", "3\nskip\n"] }"#,
        "skip-out",
        "skip-err",
    ));
    assert_eq!(plugins::collected("skip-out"), ["1\n", "3\n"]);
    let errors = plugins::collected("skip-err");
    assert_eq!(errors.len(), 1, "only the bad frame: {errors:?}");
    assert!(errors[0].contains("\"bytes\":\"x\""), "{}", errors[0]);
    let stats = stats.to_value();
    let count = |what: &str| {
        stats
            .get("connectors")
            .and_then(|c| c.get("in"))
            .and_then(|c| c.get(what))
            .and_then(temblor_shim::Value::as_u64)
    };
    assert_eq!(count("events_out"), Some(2));
}

#[test]
fn everything_drains_through_bounded_channels() {
    // Far more batches than the channels hold: backpressure, and nothing lost.
    let stats = run(&deployment(
        r#"{ count = 50000, per_pull = 100 }"#,
        "many-out",
        "many-err",
    ));
    let out = plugins::collected("many-out");
    assert_eq!(out.len(), 50000);
    assert_eq!(out[0], "0\n");
    assert_eq!(out[49999], "49999\n");
    assert!(plugins::collected("many-err").is_empty());
    let c = stats.connector("out").unwrap();
    assert_eq!(c.events_in.load(Ordering::Relaxed), 50000);
}

#[test]
fn elapsed_time_starts_when_every_connector_is_built() {
    // A source that takes 800 ms to build (as `bench` loading its data set) and then emits 10
    // lines: the time it took to build is not part of the run that throughput is measured on.
    let built = std::time::Instant::now();
    let stats = run(&deployment(
        r#"{ count = 10, new_delay_ms = 800 }"#,
        "slow-new-out",
        "slow-new-err",
    ));
    assert!(built.elapsed().as_secs_f64() >= 0.8);
    assert_eq!(plugins::collected("slow-new-out").len(), 10);
    let elapsed = stats.elapsed_s();
    assert!(elapsed < 0.8, "elapsed {elapsed} s includes building");
}

#[test]
fn a_panicking_codec_sends_its_batch_to_err_and_is_rebuilt() {
    let stats = run(&deployment(
        r#"{ chunks = ["1\n2\n", "panic\n3\n", "4\n"] }"#,
        "panic-out",
        "panic-err",
    ));
    // The batch with the panic ("panic", "3") goes to err; the batches around it go on.
    assert_eq!(plugins::collected("panic-out"), ["1\n", "2\n", "4\n"]);
    let errors = plugins::collected("panic-err");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("panicked in decode")),
        "{errors:?}"
    );
    assert_eq!(
        stats
            .connector("in")
            .unwrap()
            .errors
            .load(Ordering::Relaxed),
        2
    );
}

#[test]
fn a_source_that_takes_a_notify_is_pulled_only_when_it_wakes_the_engine() {
    // 20 lines 15 ms apart: 300 ms in which a polling engine would pull dozens of times.
    let text = deployment(
        "{ count = 20, every_ms = 15 }",
        "notified-out",
        "notified-err",
    )
    .replace("plugin = \"lines\"", "plugin = \"notified\"");
    let stats = run(&text);
    let got: Vec<String> = plugins::collected("notified-out");
    let want: Vec<String> = (0..20).map(|i| format!("{i}\n")).collect();
    assert_eq!(got, want, "every line, once, in order");
    let pulls = plugins::notified::PULLS.load(Ordering::SeqCst);
    // One pull per notify at most, plus the first; none while nothing happened.
    assert!(
        (1..=21).contains(&pulls),
        "pulled {pulls} times for 20 notifications"
    );
    assert_eq!(
        stats
            .connector("in")
            .unwrap()
            .events_out
            .load(Ordering::Relaxed),
        20
    );
}

#[test]
fn a_stop_wakes_a_source_waiting_for_its_notify() {
    // `count = 0`: the source never notifies; only the stop can end its wait.
    let text = deployment("{ count = 0, every_ms = 1 }", "quiet-out", "quiet-err")
        .replace("plugin = \"lines\"", "plugin = \"notified\"");
    let engine = start(&text, Arc::new(AtomicBool::new(false))).unwrap();
    let stopper = engine.stopper();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let stats = engine.wait();
        done_tx.send(stats.elapsed_s()).unwrap();
    });
    assert!(stopper.request(), "the first request");
    assert!(
        done_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .is_ok(),
        "the engine did not stop: the stop did not wake the waiting source"
    );
    waiter.join().unwrap();
}

#[test]
fn stop_ends_an_endless_source_and_flushes_sinks() {
    let stop = Arc::new(AtomicBool::new(false));
    let text = deployment("{}", "stop-out", "stop-err")
        .replace("plugin = \"lines\"", "plugin = \"endless\"");
    let engine = start(&text, Arc::clone(&stop)).unwrap();
    while engine
        .stats()
        .connector("out")
        .unwrap()
        .events_in
        .load(Ordering::Relaxed)
        < 1000
    {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    let stats = engine.wait();
    let delivered = stats
        .connector("out")
        .unwrap()
        .events_in
        .load(Ordering::Relaxed);
    let emitted = stats
        .connector("in")
        .unwrap()
        .events_out
        .load(Ordering::Relaxed);
    assert_eq!(delivered, emitted, "every emitted event reached the sink");
    assert_eq!(plugins::collected("stop-out").len() as u64, delivered);
    assert!(
        plugins::flushed("stop-out"),
        "the sink was flushed at the end"
    );
}

#[test]
fn constructor_errors_name_the_component() {
    let err = start(
        &deployment(r#"{ chunks = [], bogus = 1 }"#, "ctor-out", "ctor-err"),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_err();
    assert!(err.contains("source 'in' (plugin 'lines')"), "{err}");
    assert!(err.contains("unknown field `bogus`"), "{err}");
}

#[test]
fn validation_reports_every_problem_with_its_place() {
    let text = Toml::new()
        .connector(Connector::new("in", "nosuch").codec("int"))
        .connector(
            Connector::new("out", "collect")
                .codec("lines")
                .post("squash"),
        )
        .pipeline(Pipeline::new("main"))
        .connect("in", "out")
        .connect("main/sideways", "out")
        .connect("main", "nowhere")
        .to_toml();
    let err = start(&text, Arc::new(AtomicBool::new(false))).unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 6, "{err}");
    assert!(
        lines[0].starts_with("t.toml:3:10: connector 'in': no plugin named 'nosuch'"),
        "{err}"
    );
    assert!(
        lines[1]
            .starts_with("t.toml:9:9: connector 'out': plugin 'lines' is a connector, not a codec"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("t.toml:10:19: connector 'out': unknown postprocessor 'squash'"),
        "{err}"
    );
    assert!(lines[3].contains("both connectors"), "{err}");
    assert!(lines[4].contains("no port 'sideways'"), "{err}");
    assert!(lines[5].contains("'nowhere'"), "{err}");
}

#[test]
fn duplicate_ids_are_refused() {
    let text = "[[connector]]\nid = \"a\"\nplugin = \"collect\"\n\n[[pipeline]]\nid = \"a\"\n";
    let err = start(text, Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(err.contains("t.toml:6:6: id 'a' is used twice"), "{err}");
}
