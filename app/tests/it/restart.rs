//! Failing and panicking sources and sinks (the `faulty` fixture in test-plugins/): restarts
//! with backoff, retries, the dead letter file, and what is counted.

use std::{collections::BTreeMap, path::Path, process::Command};

use temblor_harness::path_value;
use temblor_shim::Value;

use crate::support::{
    Connector, Deployment, Engine, connector_stat as stat, free_port, output, plugin_dir, temp_dir,
};

fn temblor() -> Command {
    let mut cmd = crate::support::temblor();
    cmd.arg("--plugin-dir").arg(plugin_dir("test-plugins"));
    cmd
}

/// The source's restart policy in most tests.
const RESTART: &str = "{ backoff_ms = 10, max_backoff_ms = 40 }";

/// `faulty` numbered lines (1..=1000, batches of 100, with `source`'s keys), restarted after
/// `restart` → passthrough → `sink`.
fn deploy(source: &[(&str, Value)], restart: &str, sink: Connector) -> Deployment {
    let mut src = Connector::new("src", "faulty")
        .codec("string")
        .set("lines", 1000)
        .set("batch", 100);
    for (key, value) in source {
        src = src.set(key, value.clone());
    }
    Deployment::passthrough(src.line(&format!("restart = {restart}")), sink)
}

/// `faulty` numbered lines, restarted after [`RESTART`], → passthrough → `sink`.
fn into_sink(sink: Connector) -> Deployment {
    deploy(&[], RESTART, sink)
}

/// The file sink writing `out.txt` in `dir`.
fn file_sink(dir: &Path) -> Connector {
    Connector::new("dst", "file")
        .codec("string")
        .post("separate")
        .set_path("path", &dir.join("out.txt"))
        .set("mode", "write")
}

/// The faulty sink (it adds a newline to each frame itself) writing `out.txt` in `dir`, with
/// `keys`.
fn faulty_sink(dir: &Path, keys: &[(&str, Value)]) -> Connector {
    let mut sink = Connector::new("dst", "faulty")
        .codec("string")
        .set_path("path", &dir.join("out.txt"));
    for (key, value) in keys {
        sink = sink.set(key, value.clone());
    }
    sink
}

/// Runs `deploy` in `dir`: it must succeed, with the counts `want` (`(count, value)`) of
/// connector `id` and a log that says each of `says`; the log and the stats.
fn run_ok(
    dir: &Path,
    deploy: &Deployment,
    (id, want): (&str, &[(&str, u64)]),
    says: &[&str],
) -> (String, String) {
    let (ok, log, stats) = run(dir, deploy);
    assert!(ok, "{log}");
    assert_counts(&stats, id, want);
    for needle in says {
        assert!(log.contains(needle), "{needle} missing in {log}");
    }
    (log, stats)
}

/// Each `(count, value)` of `want` for connector `id` in the stats.
fn assert_counts(stats: &str, id: &str, want: &[(&str, u64)]) {
    for (count, value) in want {
        assert_eq!(stat(stats, id, count), *value, "{id}.{count}: {stats}");
    }
}

fn run(dir: &Path, deploy: &Deployment) -> (bool, String, String) {
    let file = deploy.write(dir);
    let stats = dir.join("stats.json");
    let (out, _, log) = output(
        temblor()
            .arg("run")
            .arg(&file)
            .arg("--stats-json")
            .arg(&stats),
    );
    let stats = std::fs::read_to_string(&stats).unwrap_or_default();
    (out.status.success(), log, stats)
}

/// How often each line occurs in `files` together.
fn counts(files: &[&Path]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines() {
            *counts.entry(line.parse::<u64>().unwrap()).or_insert(0) += 1;
        }
    }
    counts
}

fn assert_each_once(counts: &BTreeMap<u64, usize>, n: u64) {
    assert_eq!(counts.len() as u64, n, "lines missing");
    assert!(
        counts.iter().all(|(_, &c)| c == 1),
        "lines repeated: {:?}",
        counts
            .iter()
            .filter(|(_, c)| **c > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(counts.keys().next(), Some(&1));
    assert_eq!(counts.keys().last(), Some(&n));
}

/// A `faulty` source with `keys`, restarted after `restart`, into the file sink: the run
/// succeeds with `restarts` restarts of the source, a log that says each of `says`, and lines
/// 1..=`delivered` written once each.
fn faulty_source(
    test: &str,
    keys: &[(&str, Value)],
    restart: &str,
    restarts: u64,
    says: &[&str],
    delivered: u64,
) {
    let dir = temp_dir(test);
    let text = deploy(keys, restart, file_sink(&dir));
    run_ok(&dir, &text, ("src", &[("restarts", restarts)]), says);
    assert_each_once(&counts(&[&dir.join("out.txt")]), delivered);
}

#[test]
fn a_panicking_source_is_restarted_and_loses_nothing() {
    // The panic's own message reaches the host's log.
    let says = ["restarting the source", "source restarted", "panic"];
    let keys = [
        ("panic_pull_at", 450.into()),
        ("panic_pull_times", 2.into()),
    ];
    faulty_source("restart-source-panic", &keys, RESTART, 2, &says, 1000);
}

#[test]
fn a_failing_source_backs_off_exponentially() {
    // 10 ms, 20 ms, then 40 ms (the maximum), in the log's structured fields.
    let says = ["wait_ms=10", "wait_ms=20", "wait_ms=40"];
    let keys = [("fail_pull_at", 1.into()), ("fail_pull_times", 3.into())];
    faulty_source("restart-source-fail", &keys, RESTART, 3, &says, 1000);
}

#[test]
fn a_source_that_keeps_failing_is_given_up_after_max_restarts() {
    // The engine ends (the source gave up), having delivered what came before the fault.
    let keys = [
        ("panic_pull_at", 301.into()),
        ("panic_pull_times", 100.into()),
    ];
    let restart = "{ backoff_ms = 1, max_backoff_ms = 2, max_restarts = 3 }";
    faulty_source(
        "restart-source-give-up",
        &keys,
        restart,
        3,
        &["giving up"],
        300,
    );
}

#[test]
fn a_panicking_sink_is_restarted_and_its_batch_written_once() {
    let dir = temp_dir("restart-sink-panic");
    let text = into_sink(faulty_sink(&dir, &[("panic_push_times", 2.into())]));
    run_ok(
        &dir,
        &text,
        ("dst", &[("restarts", 2), ("retries", 2), ("lost", 0)]),
        &["restarting the sink"],
    );
    assert_each_once(&counts(&[&dir.join("out.txt")]), 1000);
}

#[test]
fn what_a_failing_sink_cannot_write_goes_to_the_dead_letter_file() {
    let dir = temp_dir("restart-sink-dead-letter");
    let dead = dir.join("dead.txt");
    // 5 failures with 2 retries a batch: the first batch fails 3 times and is given up, the
    // second fails twice more and then goes through.
    let text = into_sink(
        faulty_sink(&dir, &[("fail_push_times", 5.into())])
            .line("retries = 2")
            .line(&format!("dead_letter = {}", path_value(&dead))),
    );
    let (log, stats) = run_ok(
        &dir,
        &text,
        ("dst", &[("retries", 4), ("lost", 0)]),
        &["failed after its retries"],
    );
    let out = dir.join("out.txt");
    assert_each_once(&counts(&[&out, &dead]), 1000);
    let dead_lines = counts(&[&dead]).len() as u64;
    assert!(dead_lines > 0, "{log}");
    assert_counts(&stats, "dst", &[("dead_lettered", dead_lines)]);
}

#[test]
fn a_sink_that_cannot_write_pauses_its_source_until_it_can() {
    let dir = temp_dir("restart-breaker");
    let out = dir.join("out.json");
    // A tick every 5 ms into a sink whose first three writes fail (50 ms apart): the source is
    // paused meanwhile instead of ticking into full channels, and resumes after.
    let file = Deployment::passthrough(
        Connector::new("src", "metronome").set("interval_ms", 5),
        Connector::new("dst", "faulty")
            .codec("json")
            .set_path("path", &out)
            .set("fail_push_times", 3)
            .line("retries = 5")
            .line("restart = { backoff_ms = 50, max_backoff_ms = 50 }"),
    )
    .write(&dir);
    let stats = dir.join("stats.json");
    let engine = Engine::spawn(
        temblor()
            .arg("run")
            .arg(&file)
            .arg("--stats-json")
            .arg(&stats),
    );
    // Ticks for a while once it runs (loading can take a while on a busy machine).
    engine.wait_for("deployment started");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let log = engine.stop();
    let stats = std::fs::read_to_string(&stats).unwrap();
    assert_counts(
        &stats,
        "dst",
        &[("paused", 1), ("resumed", 1), ("retries", 3)],
    );
    for needle in [
        "pausing the sources that feed it",
        "source paused by a sink that cannot write",
        "resuming its sources",
    ] {
        assert!(log.contains(needle), "{needle} missing in {log}");
    }
    // Every tick emitted was written, once, in order.
    let ids: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let v = codec_json::decode_slice(l.as_bytes()).unwrap();
            v.get("id").and_then(temblor_shim::Value::as_u64).unwrap()
        })
        .collect();
    assert!(ids.len() >= 10, "{} ticks: {log}", ids.len());
    assert!(ids.iter().copied().eq(0..ids.len() as u64), "{ids:?}");
    assert_eq!(
        stat(&stats, "src", "events_out"),
        ids.len() as u64,
        "{stats}"
    );
}

#[test]
fn without_a_dead_letter_file_undeliverable_events_are_counted_lost() {
    let dir = temp_dir("restart-sink-lost");
    let text = into_sink(faulty_sink(&dir, &[("fail_push_times", 1.into())]).line("retries = 0"));
    let (_, stats) = run_ok(
        &dir,
        &text,
        ("dst", &[]),
        &["no dead_letter file is configured"],
    );
    let written = counts(&[&dir.join("out.txt")]).len() as u64;
    let lost = stat(&stats, "dst", "lost");
    assert!(lost > 0, "{stats}");
    assert_eq!(written + lost, 1000, "{stats}");
}

#[test]
fn a_bad_restart_policy_is_a_deployment_error() {
    let dir = temp_dir("restart-bad-policy");
    let text = deploy(
        &[],
        "{ backoff_ms = 100, max_backoff_ms = 10 }",
        file_sink(&dir),
    );
    let (ok, log, _) = run(&dir, &text);
    assert!(!ok);
    assert!(
        log.contains("restart needs 0 < backoff_ms <= max_backoff_ms") && log.contains(":6:"),
        "{log}"
    );
}

/// An HTTP server on loopback that answers every request with 500, counting the requests.
fn http_500_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let counted = std::sync::Arc::clone(&counted);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let answer = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, requests)
}

/// `faulty` lines → `http_client` at `url`, retried once by the engine, then dead-lettered.
fn http_deployment(url: &str, dead: &Path) -> Deployment {
    Deployment::passthrough(
        Connector::new("src", "faulty")
            .codec("string")
            .set("lines", 50)
            .set("batch", 10),
        Connector::new("dst", "http_client")
            .codec("string")
            .set("url", url)
            .set("max_retries", 1)
            .set("backoff_ms", 1)
            .set("max_backoff_ms", 2)
            .set("timeout_ms", 2000)
            .line("restart = { backoff_ms = 1, max_backoff_ms = 2 }")
            .line("retries = 1")
            .line(&format!("dead_letter = {}", path_value(dead))),
    )
}

#[test]
fn http_client_answered_with_500s_retries_then_dead_letters_every_event() {
    let dir = temp_dir("restart-http-500");
    let (port, requests) = http_500_server();
    let dead = dir.join("dead.txt");
    let text = http_deployment(&format!("http://127.0.0.1:{port}/ingest"), &dead);
    run_ok(
        &dir,
        &text,
        ("dst", &[("dead_lettered", 50), ("retries", 5), ("lost", 0)]),
        &[],
    );
    assert_each_once(&counts(&[&dead]), 50);
    // Each batch, in each of the engine's two attempts: its first frame is tried twice by the
    // connector (its own retry), the next once (a second failure ends the attempt).
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::Relaxed),
        5 * 3 * 2
    );
}

#[test]
fn http_client_to_a_server_that_is_down_dead_letters_every_event() {
    let dir = temp_dir("restart-http-down");
    // A port that was free a moment ago: nothing listens there.
    let port = free_port();
    let dead = dir.join("dead.txt");
    let text = http_deployment(&format!("http://127.0.0.1:{port}/"), &dead);
    let (_, stats) = run_ok(
        &dir,
        &text,
        ("dst", &[("dead_lettered", 50), ("lost", 0)]),
        &[],
    );
    assert_each_once(&counts(&[&dead]), 50);
    // Each failing batch opened the circuit breaker, and giving it up closed it.
    let paused = stat(&stats, "dst", "paused");
    assert!(paused >= 1, "{stats}");
    assert_eq!(stat(&stats, "dst", "resumed"), paused, "{stats}");
}
