//! Drives the `nats` connector through its ABI objects, as the engine does, against real
//! `nats-server`s (JetStream on) started on free loopback ports.

mod server;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use server::{Client, NatsServer};
use temblor_harness::{TempDir, config, connector};
use temblor_shim::{
    ErrorKind, Frames, RVec, SourceBatch, Value,
    abi::SourceBox,
    abi_stable::std_types::{RResult, RSlice, RStr},
};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_nats::plugin_module()
}

/// A message as the source handed it over: its payload and meta.
#[derive(Debug, Clone)]
struct Got {
    payload: String,
    meta: Value,
}

impl Got {
    fn seq(&self) -> u64 {
        self.meta
            .get("stream_seq")
            .and_then(Value::as_u64)
            .expect("stream_seq")
    }
    fn delivered(&self) -> u64 {
        self.meta
            .get("delivered")
            .and_then(Value::as_u64)
            .expect("delivered")
    }
}

/// Pulls with `token` until `want` messages came or `timeout` passed.
fn pull(source: &mut SourceBox, token: u64, want: usize, timeout: Duration) -> Vec<Got> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut batch = SourceBatch::new();
    while got.len() < want && started.elapsed() < timeout {
        batch.reset(token);
        match source.pull_batch(&mut batch) {
            RResult::ROk(_) => {}
            RResult::RErr(e) => panic!("pull failed: {e}"),
        }
        let frames: Vec<Vec<u8>> = batch.frames().iter().map(<[u8]>::to_vec).collect();
        for (range, run) in batch.all_runs() {
            for i in range {
                got.push(Got {
                    payload: String::from_utf8(frames[i].clone()).unwrap(),
                    meta: run.meta.clone(),
                });
            }
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    got
}

fn js_source(
    server: &NatsServer,
    stream: &str,
    consumer: &str,
    extra: &[(&str, Value)],
) -> SourceBox {
    let mut fields = vec![
        (
            "servers",
            Value::Array(RVec::from(vec![Value::from(server.addr())])),
        ),
        ("stream", Value::from(stream)),
        ("consumer", Value::from(consumer)),
    ];
    fields.extend(extra.iter().cloned());
    let source = connector::source(module(), &config(&fields)).expect("source");
    assert!(source.wants_acks(), "a JetStream source wants acks");
    source
}

/// Polls the consumer's info until `field` is `want` (10 s at most); the last info.
/// A JetStream server for `test` with the stream `stream` on `subjects` (one replica), and a
/// client of it; first the server's folder, which outlives them.
fn with_stream(test: &str, stream: &str, subjects: &[&str]) -> (TempDir, NatsServer, Client) {
    let dir = TempDir::new(&format!("nats-{test}"));
    let server = NatsServer::start(&dir);
    let mut client = Client::connect(&server.addr());
    client.create_stream(stream, subjects, 1);
    (dir, server, client)
}

/// Acks the batch `token` of `source` and waits until consumer `c1` of `stream` has no
/// message pending.
fn acked(source: &mut SourceBox, token: u64, client: &mut Client, stream: &str) {
    assert!(source.ack(token).is_ok());
    wait_consumer(client, stream, "c1", "num_ack_pending", 0);
}

fn wait_consumer(
    client: &mut Client,
    stream: &str,
    consumer: &str,
    field: &str,
    want: u64,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = client.consumer_info(stream, consumer);
        if Client::field(&info, field) == want {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "{field} never became {want}: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn payloads(prefix: &str, range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("{prefix}{i}").into_bytes()).collect()
}

#[test]
fn the_manifest_and_unknown_keys() {
    connector::manifest(module(), "nats");
    let cfg = config(&[("subject", Value::from("a"))]);
    connector::rejects_unknown_key(module(), &cfg, true);
    connector::rejects_unknown_key(module(), &config(&[]), false);
}

#[test]
fn core_subjects_and_queue_groups() {
    let dir = TempDir::new("nats-core");
    let server = NatsServer::start(&dir);
    let servers = Value::Array(RVec::from(vec![Value::from(server.addr())]));
    let queued = config(&[
        ("servers", servers.clone()),
        ("subject", Value::from("core.*")),
        ("queue", Value::from("workers")),
    ]);
    let mut a = connector::source(module(), &queued).expect("a");
    let mut b = connector::source(module(), &queued).expect("b");
    let all = config(&[("servers", servers), ("subject", Value::from("core.>"))]);
    let mut c = connector::source(module(), &all).expect("c");
    assert!(!c.wants_acks(), "core NATS has nothing to ack");
    let mut client = Client::connect(&server.addr());
    // Warm up until every subscription is in place (queue members each got one).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut seen_a, mut seen_b, mut seen_c) = (0, 0, 0);
    while seen_a == 0 || seen_b == 0 || seen_c == 0 {
        assert!(
            Instant::now() < deadline,
            "subscriptions never all took messages"
        );
        client.publish("core.warm", None, &[], b"warm");
        client.flush();
        std::thread::sleep(Duration::from_millis(20));
        seen_a += pull(&mut a, 0, 1, Duration::from_millis(1)).len();
        seen_b += pull(&mut b, 0, 1, Duration::from_millis(1)).len();
        seen_c += pull(&mut c, 0, 1, Duration::from_millis(1)).len();
    }
    std::thread::sleep(Duration::from_millis(200));
    pull(&mut a, 0, 10_000, Duration::from_millis(100));
    pull(&mut b, 0, 10_000, Duration::from_millis(100));
    pull(&mut c, 0, 10_000, Duration::from_millis(100));

    for i in 0..200 {
        client.publish("core.m", None, &[("K", "v")], format!("m{i}").as_bytes());
    }
    client.flush();
    let got_c = pull(&mut c, 0, 200, Duration::from_secs(10));
    assert_eq!(got_c.len(), 200, "a plain subscriber gets every message");
    assert_eq!(got_c[0].meta.get("subject"), Some(&Value::from("core.m")));
    assert_eq!(
        got_c[0].meta.get("headers").and_then(|h| h.get("K")),
        Some(&Value::from("v"))
    );
    let mut got_ab = pull(&mut a, 0, 200, Duration::from_millis(500));
    let from_a = got_ab.len();
    got_ab.extend(pull(&mut b, 0, 200 - from_a, Duration::from_secs(5)));
    let mut names: Vec<String> = got_ab.iter().map(|g| g.payload.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(got_ab.len(), 200, "the queue group got each message once");
    assert_eq!(names.len(), 200, "no message went to both members");
    assert!(
        from_a > 0 && from_a < 200,
        "both members took a share: a took {from_a}"
    );
}

#[test]
fn jetstream_acks_only_after_the_engine_acked() {
    let (_dir, server, mut client) = with_stream("ack", "ACK", &["ack.>"]);
    client.js_publish_all("ack.a", &payloads("a", 0..10), 10);
    let mut source = js_source(&server, "ACK", "c1", &[("subject", Value::from("ack.>"))]);
    let got = pull(&mut source, 7, 10, Duration::from_secs(10));
    assert_eq!(got.len(), 10);
    let seqs: Vec<u64> = got.iter().map(Got::seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert!(got.iter().all(|g| g.delivered() == 1));
    assert_eq!(got[3].meta.get("subject"), Some(&Value::from("ack.a")));
    assert_eq!(got[3].payload, "a3");
    // Handed over, not acked: the server still waits for all ten.
    std::thread::sleep(Duration::from_millis(300));
    let info = client.consumer_info("ACK", "c1");
    assert_eq!(Client::field(&info, "num_ack_pending"), 10, "{info}");
    acked(&mut source, 7, &mut client, "ACK");
    let info = client.consumer_info("ACK", "c1");
    assert_eq!(Client::field(&info, "num_redelivered"), 0, "{info}");
}

#[test]
fn a_failed_batch_is_naked_and_delivered_again() {
    let (_dir, server, mut client) = with_stream("nak", "NAK", &["nak.>"]);
    client.js_publish_all("nak.a", &payloads("n", 0..5), 5);
    let mut source = js_source(
        &server,
        "NAK",
        "c1",
        &[("nak_delay_ms", Value::from(200_u64))],
    );
    let first = pull(&mut source, 1, 5, Duration::from_secs(10));
    assert_eq!(first.len(), 5);
    assert!(source.fail(1, RStr::from_str("a sink gave up")).is_ok());
    // ack_wait is 30 s: what comes back within the test came back because of the NAK.
    let again = pull(&mut source, 2, 5, Duration::from_secs(10));
    assert_eq!(again.len(), 5, "the NAKed messages come back");
    assert!(again.iter().all(|g| g.delivered() == 2), "{again:?}");
    acked(&mut source, 2, &mut client, "NAK");
}

#[test]
fn a_deleted_consumer_is_created_again() {
    let (_dir, server, mut client) = with_stream("deleted", "DEL", &["del.>"]);
    client.js_publish_all("del.a", &payloads("d", 0..3), 3);
    let mut source = js_source(&server, "DEL", "c1", &[]);
    assert_eq!(pull(&mut source, 1, 3, Duration::from_secs(10)).len(), 3);
    acked(&mut source, 1, &mut client, "DEL");
    let deleted = client.request("$JS.API.CONSUMER.DELETE.DEL.c1", b"");
    assert!(deleted.contains("\"success\":true"), "{deleted}");
    // Pull requests now find no consumer: after a few the source creates it again, which
    // (deliver all) hands the stream over from its start.
    let again = pull(&mut source, 2, 3, Duration::from_secs(20));
    let seqs: Vec<u64> = again.iter().map(Got::seq).collect();
    assert_eq!(seqs, vec![1, 2, 3], "the re-created consumer delivers");
    acked(&mut source, 2, &mut client, "DEL");
}

#[test]
fn unacked_messages_come_back_after_a_restart_and_slow_batches_are_kept() {
    let (_dir, server, mut client) = with_stream("restart", "RS", &["rs.>"]);
    let settings = [("ack_wait_ms", Value::from(1000_u64))];
    client.js_publish_all("rs.a", &payloads("r", 0..5), 5);
    let mut first = js_source(&server, "RS", "c1", &settings);
    assert_eq!(pull(&mut first, 1, 5, Duration::from_secs(10)).len(), 5);
    acked(&mut first, 1, &mut client, "RS");

    // A slow sink: five more wait 3 ack_waits for their outcome; `+WPI` keeps them.
    client.js_publish_all("rs.a", &payloads("r", 5..10), 5);
    let held = pull(&mut first, 2, 5, Duration::from_secs(10));
    assert_eq!(held.len(), 5);
    let mut other = js_source(&server, "RS", "c1", &settings);
    let stolen = pull(&mut other, 9, 1, Duration::from_millis(3000));
    assert!(
        stolen.is_empty(),
        "in progress messages were delivered again: {stolen:?}"
    );
    let info = client.consumer_info("RS", "c1");
    assert_eq!(Client::field(&info, "num_redelivered"), 0, "{info}");
    drop(other);

    // The source goes away without an outcome for them (a crash, a kill): after ack_wait
    // the server delivers them again, to the next instance.
    drop(first);
    let mut second = js_source(&server, "RS", "c1", &settings);
    let again = pull(&mut second, 3, 5, Duration::from_secs(10));
    let mut seqs: Vec<u64> = again.iter().map(Got::seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (6..=10).collect::<Vec<_>>(),
        "only the unacked ones come back"
    );
    assert!(again.iter().all(|g| g.delivered() == 2), "{again:?}");
    acked(&mut second, 3, &mut client, "RS");
}

fn sink_config(server: &NatsServer, fields: &[(&str, Value)]) -> Value {
    let mut all = vec![
        (
            "servers",
            Value::Array(RVec::from(vec![Value::from(server.addr())])),
        ),
        ("backoff_ms", Value::from(50_u64)),
        ("max_backoff_ms", Value::from(200_u64)),
        ("timeout_ms", Value::from(2000_u64)),
    ];
    all.extend(fields.iter().cloned());
    config(&all)
}

fn meta(subject: Option<&str>, msg_id: &str) -> Value {
    let mut m = temblor_shim::Object::new();
    if let Some(s) = subject {
        m.insert("subject", Value::from(s));
    }
    let mut h = temblor_shim::Object::new();
    h.insert("Nats-Msg-Id", Value::from(msg_id));
    m.insert("headers", Value::Object(h));
    Value::Object(m)
}

#[test]
fn the_jetstream_sink_waits_for_pubacks_and_ids_drop_duplicates() {
    let (_dir, mut server, mut client) = with_stream("sink", "OUT", &["out.>"]);
    let cfg = sink_config(&server, &[("jetstream", Value::from(true))]);
    let mut sink = connector::sink(module(), &cfg).expect("sink");
    let frames: Frames = [b"a".as_slice(), b"b", b"c"].into_iter().collect();
    let metas = [
        meta(Some("out.x"), "1"),
        meta(Some("out.y"), "2"),
        meta(Some("out.x"), "3"),
    ];
    let mut delivered = RVec::new();
    let pushed = sink.push_batch(&frames, RSlice::from_slice(&metas), &mut delivered);
    assert!(pushed.is_ok(), "{pushed:?}");
    // Stored when push_batch returned: no waiting.
    let info = client.stream_info("OUT");
    assert_eq!(Client::field(&info, "messages"), 3, "{info}");
    // The same ids again, and one more: the server keeps one of each.
    let frames: Frames = [b"a".as_slice(), b"b", b"c", b"d"].into_iter().collect();
    let metas = [
        meta(Some("out.x"), "1"),
        meta(Some("out.y"), "2"),
        meta(Some("out.x"), "3"),
        meta(Some("out.x"), "4"),
    ];
    assert!(
        sink.push_batch(&frames, RSlice::from_slice(&metas), &mut delivered)
            .is_ok()
    );
    let info = client.stream_info("OUT");
    assert_eq!(
        Client::field(&info, "messages"),
        4,
        "duplicates dropped: {info}"
    );

    // The server restarts: the next batch connects again and is stored.
    server.kill();
    server.restart();
    let frames: Frames = [b"e".as_slice()].into_iter().collect();
    let metas = [meta(Some("out.z"), "5")];
    let pushed = sink.push_batch(&frames, RSlice::from_slice(&metas), &mut delivered);
    assert!(pushed.is_ok(), "after a server restart: {pushed:?}");
    let mut client = Client::connect(&server.addr());
    let info = client.stream_info("OUT");
    assert_eq!(Client::field(&info, "messages"), 5, "{info}");

    // No stream takes the subject: the batch fails, nothing counted as written.
    let cfg = sink_config(
        &server,
        &[
            ("jetstream", Value::from(true)),
            ("subject", Value::from("nowhere.x")),
            ("max_retries", Value::from(1_u64)),
        ],
    );
    let mut lost = connector::sink(module(), &cfg).expect("sink");
    let frames: Frames = [b"z".as_slice()].into_iter().collect();
    let mut delivered = RVec::new();
    match lost.push_batch(&frames, RSlice::from_slice(&[]), &mut delivered) {
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Io, "{e}");
            assert!(e.message.contains("no stream"), "{e}");
        }
        RResult::ROk(()) => panic!("a message no stream takes counted as written"),
    }
    assert!(delivered.is_empty());
}

#[test]
fn the_core_sink_publishes_to_its_subject_with_headers() {
    let dir = TempDir::new("nats-core-sink");
    let server = NatsServer::start(&dir);
    let mut client = Client::connect(&server.addr());
    client.send(b"SUB plain.> 77\r\n");
    client.flush();
    let cfg = sink_config(&server, &[("subject", Value::from("plain.a"))]);
    let mut sink = connector::sink(module(), &cfg).expect("sink");
    let frames: Frames = [b"1".as_slice(), b"2"].into_iter().collect();
    let metas = [meta(None, "x"), meta(Some("ignored.b"), "y")];
    assert!(
        sink.push_batch(&frames, RSlice::from_slice(&metas), &mut RVec::new())
            .is_ok()
    );
    let mut seen = BTreeMap::new();
    for _ in 0..2 {
        let m = client.next_msg();
        assert_eq!(m.subject, "plain.a", "the config's subject wins");
        assert!(m.headers.contains("Nats-Msg-Id: "), "{}", m.headers);
        seen.insert(String::from_utf8(m.payload).unwrap(), m.headers);
    }
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["1", "2"]);
}
