//! Scale-out on NATS JetStream end to end: three temblor instances share one durable pull
//! consumer and write what they get to their own files; one of them is SIGKILLed half-way.
//! When the stream is drained, every message is in the union of the outputs, the duplicates
//! (what the killed instance wrote but never acked, written again by another) are at most
//! the consumer's `max_ack_pending`, and each surviving instance did a fair share.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::support::{Engine, deployment, temp_dir};

#[path = "../../../connectors/nats/tests/it/server.rs"]
mod server;

use server::{Client, NatsServer};

/// Messages in the stream.
const MESSAGES: u64 = 20_000;

/// The consumer's `max_ack_pending`: the most messages delivered and not acked at any time.
const MAX_ACK_PENDING: u64 = 1000;

fn instance(dir: &Path, servers: &[String], out: &Path) -> PathBuf {
    let dir = dir.join(out.file_stem().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    deployment(
        &dir,
        &format!(
            r#"
[[connector]]
id = "in"
plugin = "nats"
codec = "json"
config = {{ servers = [{}], stream = "SCALE", consumer = "workers", subject = "scale.>", batch = 100, max_ack_pending = {MAX_ACK_PENDING}, ack_wait_ms = 2000, backoff_ms = 50, max_backoff_ms = 500 }}

[[pipeline]]
id = "main"
operators = []

[[connector]]
id = "out"
plugin = "file"
codec = "json"
postprocessors = ["separate"]
config = {{ path = "{}", mode = "write" }}

[[connect]]
from = "in"
to = "main"

[[connect]]
from = "main"
to = "out"
"#,
            servers.join(", "),
            out.display()
        ),
    )
}

/// The message ids in an output file (a line cut short by the kill is skipped).
fn ids(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("{\"id\":")?;
            rest.strip_suffix('}')?.parse().ok()
        })
        .collect()
}

fn lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
        .unwrap_or(0)
}

/// Runs the three instances against `servers`; `midway` runs once a third of the messages
/// were written (after the first instance was killed). Returns the lines each instance wrote.
fn share(dir: &Path, servers: &[String], client: &mut Client, midway: impl FnOnce()) -> Vec<u64> {
    let outs: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("out-{i}.jsonl"))).collect();
    // Each instance starts with another server of the list (a cluster's nodes in turn).
    let deploys: Vec<PathBuf> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut list = servers.to_vec();
            list.rotate_left(i % servers.len());
            instance(dir, &list, o)
        })
        .collect();
    let mut engines: Vec<Option<Engine>> = deploys.iter().map(|d| Some(Engine::start(d))).collect();
    for e in engines.iter().flatten() {
        e.wait_for("bound to the JetStream consumer");
    }
    // Every instance has its two pull requests waiting at the server (in a cluster, those
    // sent before the consumer had a leader were dropped, and are sent again).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = client.consumer_info("SCALE", "workers");
        if !info.contains("\"error\"") && Client::field(&info, "num_waiting") >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the instances' pull requests are not all waiting: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The stream fills while the three share it (a first instance alone on a full stream
    // would take much of it before the others are up).
    let publish_to = servers[0].clone();
    let publisher = std::thread::spawn(move || {
        let mut client = Client::connect(&publish_to);
        let payloads: Vec<Vec<u8>> = (0..MESSAGES)
            .map(|i| format!("{{\"id\":{i}}}").into_bytes())
            .collect();
        client.js_publish_all("scale.in", &payloads, 500);
        let info = client.stream_info("SCALE");
        assert_eq!(Client::field(&info, "messages"), MESSAGES, "{info}");
    });
    // Half-way (a third of the messages written), SIGKILL the first instance.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written: u64 = outs.iter().map(|o| lines(o)).sum();
        if written >= MESSAGES / 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {written} messages written in 120 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(engines[0].take()); // Engine's drop: SIGKILL
    publisher.join().unwrap();
    let killed_lines = lines(&outs[0]);
    assert!(
        killed_lines > 0,
        "the killed instance had written something"
    );
    midway();
    // Drained: nothing left to deliver, nothing waiting for an ack.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let info = client.consumer_info("SCALE", "workers");
        if !info.contains("\"error\"")
            && Client::field(&info, "num_pending") == 0
            && Client::field(&info, "num_ack_pending") == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stream was not drained in 180 s: {info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for e in engines.iter_mut().filter_map(Option::take) {
        e.stop();
    }
    let per: Vec<Vec<u64>> = outs.iter().map(|o| ids(o)).collect();
    let all: Vec<u64> = per.iter().flatten().copied().collect();
    let distinct: HashSet<u64> = all.iter().copied().collect();
    let missing: Vec<u64> = (0..MESSAGES)
        .filter(|i| !distinct.contains(i))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "messages lost, e.g. {missing:?}");
    assert_eq!(distinct.len() as u64, MESSAGES, "ids outside the stream");
    let duplicates = all.len() as u64 - MESSAGES;
    let shares: Vec<u64> = per.iter().map(|p| p.len() as u64).collect();
    eprintln!(
        "scale-out ({} servers): {MESSAGES} messages, {duplicates} duplicates, per instance {shares:?} (instance 0 SIGKILLed after {killed_lines})",
        servers.len()
    );
    assert!(
        duplicates <= MAX_ACK_PENDING,
        "{duplicates} duplicates: more than max_ack_pending ({MAX_ACK_PENDING})"
    );
    for (i, n) in shares.iter().enumerate().skip(1) {
        assert!(
            *n >= MESSAGES / 5,
            "surviving instance {i} wrote {n} of {MESSAGES}: less than 20 % ({shares:?})"
        );
    }
    shares
}

#[test]
fn three_instances_share_a_durable_consumer_and_survive_a_kill() {
    let dir = temp_dir("scale-nats");
    let server = NatsServer::start(&dir.join("nats"));
    let mut client = Client::connect(&server.addr());
    client.create_stream("SCALE", &["scale.>"], 1);
    share(&dir, &[server.addr()], &mut client, || {});
}

#[test]
fn a_three_node_cluster_loses_a_node_and_an_instance() {
    let dir = temp_dir("scale-nats-cluster");
    let client_ports: Vec<u16> = (0..3).map(|_| server::free_port()).collect();
    let cluster_ports: Vec<u16> = (0..3).map(|_| server::free_port()).collect();
    let routes: Vec<String> = cluster_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let mut nodes: Vec<NatsServer> = (0..3)
        .map(|i| {
            NatsServer::start_with(
                &dir.join(format!("n{i}")),
                client_ports[i],
                &[
                    "--server_name".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "temblor".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", cluster_ports[i]),
                    "--routes".into(),
                    routes.join(","),
                ],
            )
        })
        .collect();
    let servers: Vec<String> = nodes.iter().map(NatsServer::addr).collect();
    // JetStream needs a meta leader first (API requests before one are not answered).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes.iter().any(|n| {
        std::fs::read_to_string(n.dir.join("nats-server.log"))
            .is_ok_and(|log| log.contains("Self is new JetStream cluster metadata leader"))
    }) {
        assert!(
            Instant::now() < deadline,
            "no JetStream meta leader in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut client = Client::connect(&servers[0]);
    client.create_stream("SCALE", &["scale.>"], 3);
    // The third node goes down mid-way too (the client talks to the first).
    let third = &mut nodes[2];
    share(&dir, &servers, &mut client, || third.kill());
}
