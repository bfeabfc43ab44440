//! `http_server` with `response = "delivered"` end to end, with `curl` as the client: a request
//! is answered `200` only once its events are in the sink's file (or in the dead letter file),
//! and `503` when the sink gave up on them (docs/delivery.md).
//!
//! Two tests use the `faulty` test plugin (test-plugins/faulty) for a sink that always fails,
//! which the monolith does not have: declare this module as `restart` is
//! (`#[cfg(not(feature = "monolith"))] mod http_delivery;`).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use temblor_harness::path_value;

use crate::support::{Connector, Deployment, Engine as Running, lines, plugin_dir, temp_dir};

/// The binary with the shipped plugins and the test plugins.
fn temblor() -> Command {
    let mut cmd = crate::support::temblor();
    cmd.arg("--plugin-dir").arg(plugin_dir("test-plugins"));
    cmd
}

/// `in` (`http_server`, `response = "delivered"`, JSON, on a free loopback port, with
/// `preprocessors`) → `main` → `sink` (with the id `out`).
fn http_to(preprocessors: &[&str], sink: Connector) -> Deployment {
    let mut source = Connector::new("in", "http_server")
        .codec("json")
        .set("url", "127.0.0.1:0")
        .set("response", "delivered")
        .set("timeout_ms", 20_000);
    for pre in preprocessors {
        source = source.pre(*pre);
    }
    Deployment::passthrough(source, sink)
}

/// A sink whose every push fails (the `faulty` plugin), not retried by the engine.
fn failing_sink() -> Connector {
    Connector::new("out", "faulty")
        .codec("json")
        .set("fail_push_times", 1_000_000)
        .line("retries = 0")
}

/// A running engine and its server's `host:port` (from its "http server listening" log
/// line): stopped with SIGTERM by `stop`, killed when dropped otherwise.
struct Engine {
    running: Running,
    addr: String,
}

impl Engine {
    fn start(dir: &Path, deploy: &Deployment) -> Self {
        let running = Running::spawn(
            temblor()
                .arg("run")
                .arg(deploy.write(dir))
                .arg("--stats-json")
                .arg(dir.join("stats.json")),
        );
        let (_, addr) = running.listening_id("http server listening");
        Self { running, addr }
    }

    fn log(&self) -> String {
        self.running.log()
    }

    /// `curl --data-binary body` to the server, the answer's body into `answer`: the status
    /// curl prints.
    fn post(&self, body: &str, answer: &Path) -> String {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "30", "-o"])
            .arg(answer)
            .args(["-w", "%{http_code}", "--data-binary", body])
            .arg(format!("http://{}/", self.addr))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGTERM; waits at most 30 s for the exit, which must be a success.
    fn stop(self) {
        self.running.stop();
    }
}

#[test]
fn delivered_curl_gets_200_once_the_event_is_in_the_file() {
    let dir = temp_dir("http-delivered");
    let out = dir.join("out.json");
    let engine = Engine::start(&dir, &http_to(&[], Connector::file_write("out", &out)));
    // The real client, as a user would call it.
    let curl = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data",
            "{\"a\":1}",
        ])
        .arg(format!("http://{}/", engine.addr))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "200",
        "{}",
        engine.log()
    );
    // When curl returns, the event is written and flushed.
    assert_eq!(lines(&out), ["{\"a\":1}"], "{}", engine.log());
    engine.stop();
    assert_eq!(lines(&out), ["{\"a\":1}"]);
}

#[test]
fn delivered_ndjson_bodies_are_split_per_request_and_answered_when_all_are_written() {
    let dir = temp_dir("http-delivered-ndjson");
    let (out, answer) = (dir.join("out.json"), dir.join("answer.txt"));
    let engine = Engine::start(
        &dir,
        &http_to(&["separate"], Connector::file_write("out", &out)),
    );
    // The last line without a newline: it ends with its request (its stream), not later.
    let status = engine.post("{\"n\":1}\n{\"n\":2}\n{\"n\":3}", &answer);
    assert_eq!(status, "200", "{}", engine.log());
    assert_eq!(
        lines(&out),
        ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"],
        "{}",
        engine.log()
    );
    let status = engine.post("{\"n\":4}\n", &answer);
    assert_eq!(status, "200", "{}", engine.log());
    assert_eq!(lines(&out).len(), 4, "{}", engine.log());
    engine.stop();
}

#[test]
fn delivered_curl_gets_503_when_the_sink_gives_up() {
    let dir = temp_dir("http-delivered-lost");
    let answer = dir.join("answer.txt");
    let engine = Engine::start(&dir, &http_to(&[], failing_sink()));
    let begin = Instant::now();
    let status = engine.post("{\"a\":1}", &answer);
    assert_eq!(status, "503", "{}", engine.log());
    // Failed by the engine, not timed out (timeout_ms is 20 s).
    assert!(
        begin.elapsed() < Duration::from_secs(15),
        "{:?}",
        begin.elapsed()
    );
    let body = std::fs::read_to_string(&answer).unwrap();
    assert!(body.starts_with("not delivered: "), "{body}");
    engine.stop();
}

#[test]
fn delivered_curl_gets_200_when_the_event_is_dead_lettered() {
    let dir = temp_dir("http-delivered-dead-letter");
    let (answer, dead) = (dir.join("answer.txt"), dir.join("dead.json"));
    let sink = failing_sink().line(&format!("dead_letter = {}", path_value(&dead)));
    let engine = Engine::start(&dir, &http_to(&[], sink));
    let status = engine.post("{\"a\":1}", &answer);
    assert_eq!(
        status,
        "200",
        "dead-lettered counts as delivered: {}",
        engine.log()
    );
    assert_eq!(lines(&dead), ["{\"a\":1}"], "{}", engine.log());
    engine.stop();
}
