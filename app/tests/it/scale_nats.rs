//! Scale-out on NATS JetStream end to end (issue 16): a 3-node JetStream cluster with an R3
//! stream holding 100,000 messages; three temblor instances share one durable pull consumer
//! and write what they get to their own files. Mid-way, one instance and one nats node (one a
//! surviving instance is connected to) are SIGKILLed. When the stream is drained, every
//! message is in the union of the outputs; the duplicates (written by an instance whose ack
//! never reached the consumer: the killed instance's, and those whose acks died with the
//! node) are counted and are at most the consumer's `max_ack_pending` (its limit of messages
//! out and not acked, over all instances); each surviving instance did at least 20 % of the
//! work. A smaller run on a single server (an instance
//! killed, no node) tells the two failures apart when one breaks.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::support::{
    Connector, Deployment, Engine, line_count as lines, temp_dir, written_ids as ids,
};

#[path = "../../../connectors/nats/tests/it/server.rs"]
mod server;

use server::{Client, NatsServer};
use temblor_shim::Value;

/// The consumer's `max_ack_pending`: the most messages delivered and not acked at any time.
const MAX_ACK_PENDING: u64 = 1000;

/// An instance on `servers` writing to `out`, its deployment in a folder of its own.
fn instance(dir: &Path, servers: &[String], out: &Path) -> PathBuf {
    let servers: Vec<Value> = servers.iter().map(|s| s.as_str().into()).collect();
    Deployment::passthrough(
        Connector::new("in", "nats")
            .codec("json")
            .set("servers", servers)
            .set("stream", "SCALE")
            .set("consumer", "workers")
            .set("subject", "scale.>")
            .set("batch", 100)
            .set("max_ack_pending", MAX_ACK_PENDING)
            .set("ack_wait_ms", 2000)
            .set("backoff_ms", 50)
            .set("max_backoff_ms", 500),
        Connector::file_write("out", out),
    )
    .write(dir.join(out.file_stem().unwrap()))
}

/// Fills the stream with `messages` messages (`{"id":N}`, each with its `Nats-Msg-Id`).
fn fill(client: &mut Client, messages: u64) {
    let payloads: Vec<Vec<u8>> = (0..messages)
        .map(|i| format!("{{\"id\":{i}}}").into_bytes())
        .collect();
    client.js_publish_all("scale.in", &payloads, 1000);
    let info = client.stream_info("SCALE");
    assert_eq!(
        Client::field(&info, "messages"),
        messages,
        "the stream does not hold the messages: {info}"
    );
}

/// The name of the node leading the consumer (`"leader":"n1"` in a cluster's reply).
fn consumer_leader(info: &str) -> Option<String> {
    let at = info.find("\"leader\":\"")? + "\"leader\":\"".len();
    Some(info[at..].split('"').next()?.to_owned())
}

/// Runs the three instances on a stream holding `messages`; `midway` runs once half of them
/// were written, right after the instance that had written the most was SIGKILLed (it is
/// given that instance's index), and returns the address of a server still up. (Killing the
/// busiest leaves the most work to the survivors: which instance pulls fastest depends on how
/// the 2 cores are shared, and each survivor must still write 20 %.) Checks the outcome and returns the lines each instance wrote.
fn share(
    dir: &Path,
    servers: &[String],
    client: &mut Client,
    messages: u64,
    midway: impl FnOnce(&mut Client, usize) -> Option<String>,
) -> Vec<u64> {
    let started = Instant::now();
    let outs: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("out-{i}.jsonl"))).collect();
    // Every instance has the same list, so all connect to the same node (and, when it goes
    // down, to the same next one): in a cluster, an instance on the consumer leader's node
    // gets its pull requests answered a route hop sooner than one on another node, and
    // takes most of the messages (seen: 43,716 of the first 50,000).
    let deploys: Vec<PathBuf> = outs.iter().map(|o| instance(dir, servers, o)).collect();
    let mut engines: Vec<Option<Engine>> = deploys.iter().map(|d| Some(Engine::start(d))).collect();
    for e in engines.iter().flatten() {
        e.wait_for("bound to the JetStream consumer");
    }
    // Mid-way (half of the messages written), SIGKILL the busiest instance.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written: u64 = outs.iter().map(|o| lines(o)).sum();
        if written >= messages / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {written} of {messages} messages written in 120 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let so_far: Vec<u64> = outs.iter().map(|o| lines(o)).collect();
    let k = (0..so_far.len()).max_by_key(|i| so_far[*i]).unwrap_or(0);
    drop(engines[k].take()); // Engine's drop: SIGKILL
    let killed_at = started.elapsed();
    let killed_lines = lines(&outs[k]);
    assert!(
        killed_lines > 0,
        "the killed instance had written nothing before its kill"
    );
    let fresh_client = midway(client, k).map(|addr| Client::connect(&addr));
    let client = match fresh_client {
        Some(c) => &mut Box::new(c),
        None => client,
    };
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
            "the stream was not drained 180 s after the kills: {info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let drained_at = started.elapsed();
    // The survivors' logs, for a failure below (reconnections, lost pull requests).
    let mut logs = String::new();
    for (i, e) in engines.iter_mut().enumerate() {
        if let Some(e) = e.take() {
            for line in e.stop().lines().filter(|l| l.contains("WARN")) {
                logs.push_str(&format!("instance {i}: {line}\n"));
            }
        }
    }
    let per: Vec<Vec<u64>> = outs.iter().map(|o| ids(o)).collect();
    let mut times: HashMap<u64, u32> = HashMap::new();
    for id in per.iter().flatten() {
        *times.entry(*id).or_default() += 1;
    }
    let missing: Vec<u64> = (0..messages)
        .filter(|i| !times.contains_key(i))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "messages lost (in no output), e.g. {missing:?}"
    );
    assert_eq!(times.len() as u64, messages, "ids outside the stream");
    let written: u64 = per.iter().map(|p| p.len() as u64).sum();
    let duplicates = written - messages;
    // Of those, the ones the killed instance wrote too (its unacked messages, written again).
    let killed: HashSet<u64> = per[k].iter().copied().collect();
    let duplicates_of_killed = killed.iter().filter(|id| times[*id] > 1).count();
    let shares: Vec<u64> = per.iter().map(|p| p.len() as u64).collect();
    eprintln!(
        "scale-out ({} node(s)): {messages} messages; written per instance {shares:?} \
         (instance {k} SIGKILLed at {:.1} s after {killed_lines} lines); {duplicates} duplicates \
         ({duplicates_of_killed} of them ids the killed instance wrote), max_ack_pending \
         {MAX_ACK_PENDING}; drained {:.1} s after the instances started",
        servers.len(),
        killed_at.as_secs_f64(),
        drained_at.as_secs_f64(),
    );
    assert!(
        duplicates <= MAX_ACK_PENDING,
        "{duplicates} duplicates: more than the killed instance's max_ack_pending ({MAX_ACK_PENDING})"
    );
    for (i, n) in shares.iter().enumerate().filter(|(i, _)| *i != k) {
        assert!(
            *n >= messages / 5,
            "surviving instance {i} wrote {n} of {messages}: less than 20 % ({shares:?}); the survivors' warnings:\n{logs}"
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
    fill(&mut client, 20_000);
    share(&dir, &[server.addr()], &mut client, 20_000, |_, _| None);
}

#[test]
fn a_three_node_cluster_loses_a_node_and_an_instance() {
    const MESSAGES: u64 = 100_000;
    let started = Instant::now();
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
    fill(&mut client, MESSAGES);
    let filled = started.elapsed();
    // Mid-way, a node goes down too: n0, which every instance is connected to, unless it
    // leads the consumer (then n1, a replica of the R3 stream). (Killing the leader
    // instead makes the new leader deliver again what the old one had acked but not yet
    // replicated: duplicates that no instance's `max_ack_pending` bounds.)
    let addrs = servers.clone();
    let shares = share(&dir, &servers, &mut client, MESSAGES, |client, _| {
        let info = client.consumer_info("SCALE", "workers");
        let leader = consumer_leader(&info);
        let down = if leader.as_deref() == Some("n0") {
            1
        } else {
            0
        };
        nodes[down].kill();
        eprintln!(
            "SIGKILLed nats node n{down} (the consumer's leader: {})",
            leader.as_deref().unwrap_or("unknown")
        );
        Some(addrs[(down + 1) % 3].clone())
    });
    eprintln!(
        "cluster test: stream filled in {:.1} s, whole test {:.1} s, shares {shares:?}",
        filled.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
