//! Drives the `kafka` connector through its ABI objects, as the engine does. The tests named
//! `kafka_protocol_against_tansu_*` ("Kafka protocol, against tansu") run a real broker: tansu,
//! a Kafka-protocol broker, started on a free loopback port (`tansu.rs`).

mod tansu;

use std::time::{Duration, Instant};

use tansu::Tansu;
use temblor_harness::{TempDir, config, connector};
use temblor_shim::{
    Frames, Object, RVec, Value,
    abi::{SinkBox, SourceBox},
    abi_stable::std_types::{RResult, RSlice, RStr},
};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_kafka::plugin_module()
}

fn brokers(broker: &Tansu) -> Value {
    Value::Array(RVec::from(vec![Value::from(broker.addr())]))
}

/// A message as the source handed it over: its payload and meta.
#[derive(Debug, Clone)]
struct Got {
    payload: String,
    meta: Value,
}

impl Got {
    fn int(&self, field: &str) -> i64 {
        self.meta
            .get(field)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("meta.{field}: {:?}", self.meta))
    }
    fn offset(&self) -> (i64, i64) {
        (self.int("partition"), self.int("offset"))
    }
}

/// Pulls with `token` until `want` messages came or `timeout` passed.
fn pull(source: &mut SourceBox, token: u64, want: usize, timeout: Duration) -> Vec<Got> {
    connector::pull_with_meta(source, token, want, timeout)
        .into_iter()
        .map(|(frame, meta)| Got {
            payload: String::from_utf8(frame).unwrap(),
            meta,
        })
        .collect()
}

fn source(broker: &Tansu, group: &str, topic: &str) -> SourceBox {
    source_with(broker, group, topic, 100)
}

fn source_with(broker: &Tansu, group: &str, topic: &str, commit_interval_ms: u64) -> SourceBox {
    let cfg = config(&[
        ("brokers", brokers(broker)),
        ("group_id", Value::from(group)),
        ("topics", Value::Array(RVec::from(vec![Value::from(topic)]))),
        ("commit_interval_ms", Value::from(commit_interval_ms)),
        ("session_timeout_ms", Value::from(6000_u64)),
    ]);
    let source = connector::source(module(), &cfg).expect("source");
    assert!(source.wants_acks(), "the kafka source wants acks");
    source
}

fn sink(broker: &Tansu, topic: Option<&str>) -> SinkBox {
    let mut fields = vec![
        ("brokers", brokers(broker)),
        ("timeout_ms", Value::from(10_000_u64)),
    ];
    if let Some(t) = topic {
        fields.push(("topic", Value::from(t)));
    }
    connector::sink(module(), &config(&fields)).expect("sink")
}

/// Produces `payloads` with the connector's own sink, one meta per frame.
fn produce(sink: &mut SinkBox, payloads: &[String], meta: &[Value]) {
    let frames: Frames = payloads.iter().map(String::as_bytes).collect();
    let mut delivered = RVec::new();
    match sink.push_batch(&frames, RSlice::from_slice(meta), &mut delivered) {
        RResult::ROk(()) => {}
        RResult::RErr(e) => panic!("producing failed: {e}"),
    }
}

fn names(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// The payloads of `got`, in order.
fn payloads(got: &[Got]) -> Vec<String> {
    got.iter().map(|g| g.payload.clone()).collect()
}

/// A broker for `test` whose one-partition `topic` holds `{prefix}0` to `{prefix}9`: its
/// folder, the broker, and the sink (to `topic`) that produced them.
fn topic_of(test: &str, topic: &str, prefix: &str) -> (TempDir, Tansu, SinkBox) {
    let dir = TempDir::new(&format!("kafka-{test}"));
    let broker = Tansu::start(&dir);
    broker.create_topic(topic, 1);
    let mut out = sink(&broker, Some(topic));
    produce(&mut out, &names(prefix, 0..10), &[]);
    (dir, broker, out)
}

#[test]
fn the_manifest_and_unknown_keys() {
    connector::manifest(module(), "kafka");
    let cfg = config(&[
        ("group_id", Value::from("g")),
        ("topics", Value::Array(RVec::from(vec![Value::from("t")]))),
    ]);
    connector::rejects_unknown_key(module(), &cfg, true);
    connector::rejects_unknown_key(module(), &config(&[]), false);
}

#[test]
fn kafka_protocol_against_tansu_round_trip_with_key_headers_and_meta() {
    let dir = TempDir::new("kafka-round-trip");
    let broker = Tansu::start(&dir);
    broker.create_topic("rt", 2);
    let mut out = sink(&broker, None);
    let payloads = names("m", 0..50);
    let meta: Vec<Value> = (0..50)
        .map(|i| {
            let mut headers = Object::new();
            headers.insert("id", Value::from(format!("h{i}").as_str()));
            headers.insert(
                "rep",
                Value::Array(RVec::from(vec![Value::from("a"), Value::from("b")])),
            );
            let mut m = Object::new();
            m.insert("topic", Value::from("rt"));
            m.insert("key", Value::from(format!("k{}", i % 5).as_str()));
            m.insert("headers", Value::Object(headers));
            Value::Object(m)
        })
        .collect();
    produce(&mut out, &payloads, &meta);

    let mut src = source(&broker, "rt-group", "rt");
    let got = pull(&mut src, 1, 50, Duration::from_secs(60));
    assert_eq!(got.len(), 50, "every message came: {}", broker.log());
    let mut seen: Vec<String> = got.iter().map(|g| g.payload.clone()).collect();
    seen.sort();
    let mut want = payloads.clone();
    want.sort();
    assert_eq!(seen, want);
    for g in &got {
        let i: usize = g.payload[1..].parse().unwrap();
        assert_eq!(g.meta.get("topic"), Some(&Value::from("rt")));
        let key = format!("k{}", i % 5);
        assert_eq!(g.meta.get("key"), Some(&Value::from(key.as_str())), "{g:?}");
        let headers = g.meta.get("headers").expect("headers");
        assert_eq!(
            headers.get("id"),
            Some(&Value::from(format!("h{i}").as_str()))
        );
        assert_eq!(
            headers.get("rep"),
            Some(&Value::Array(RVec::from(vec![
                Value::from("a"),
                Value::from("b")
            ])))
        );
        assert!(g.int("partition") == 0 || g.int("partition") == 1, "{g:?}");
        assert!(g.int("offset") >= 0);
    }
    // One key, one partition: the producer's partitioner hashes the key.
    for k in 0..5 {
        let key = Value::from(format!("k{k}").as_str());
        let parts: Vec<i64> = got
            .iter()
            .filter(|g| g.meta.get("key") == Some(&key))
            .map(|g| g.int("partition"))
            .collect();
        assert!(parts.windows(2).all(|w| w[0] == w[1]), "{key}: {parts:?}");
    }
    // Offsets within a partition come in order, from 0.
    for p in 0..2 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|g| g.int("partition") == p)
            .map(|g| g.int("offset"))
            .collect();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }
    assert!(src.ack(1).is_ok());

    // The sink with a `topic` of its own and no meta: keyless messages.
    let mut plain = sink(&broker, Some("rt"));
    produce(&mut plain, &names("p", 0..3), &[]);
    let more = pull(&mut src, 2, 3, Duration::from_secs(30));
    assert_eq!(more.len(), 3);
    assert!(more.iter().all(|g| g.meta.get("key").is_none()), "{more:?}");
    assert!(src.ack(2).is_ok());
}

#[test]
fn kafka_protocol_against_tansu_a_failed_batch_is_replayed() {
    let (_dir, broker, mut out) = topic_of("replay", "rp", "r");
    let mut src = source(&broker, "rp-group", "rp");
    let first = pull(&mut src, 1, 10, Duration::from_secs(60));
    assert_eq!(first.len(), 10);
    assert_eq!(
        first.iter().map(Got::offset).collect::<Vec<_>>(),
        (0..10).map(|o| (0, o)).collect::<Vec<_>>()
    );
    assert!(src.fail(1, RStr::from_str("a sink gave up")).is_ok());
    let again = pull(&mut src, 2, 10, Duration::from_secs(30));
    assert_eq!(
        payloads(&again),
        names("r", 0..10),
        "the failed batch comes again, in order"
    );
    assert_eq!(again[0].offset(), (0, 0));
    assert!(src.ack(2).is_ok());
    // Acked now: nothing more comes, and a new member of the group starts after it.
    assert!(pull(&mut src, 3, 1, Duration::from_millis(500)).is_empty());
    drop(src);
    produce(&mut out, &names("r", 10..12), &[]);
    let mut next = source(&broker, "rp-group", "rp");
    let rest = pull(&mut next, 1, 12, Duration::from_secs(30));
    assert_eq!(
        payloads(&rest),
        names("r", 10..12),
        "only what came after the acked batch"
    );
}

#[test]
fn kafka_protocol_against_tansu_offsets_survive_a_restart_of_the_consumer() {
    let (_dir, broker, mut out) = topic_of("restart", "rs", "s");
    // No periodic commit within the test: the commit that counts is the one at the stop.
    let mut src = source_with(&broker, "rs-group", "rs", 600_000);
    assert_eq!(pull(&mut src, 1, 10, Duration::from_secs(60)).len(), 10);
    // Batch 2 is handed over and never acked (the engine died before its sinks wrote it);
    // batch 1's ack comes after it (outcomes come in any order).
    produce(&mut out, &names("s", 10..20), &[]);
    assert_eq!(pull(&mut src, 2, 10, Duration::from_secs(30)).len(), 10);
    assert!(src.ack(1).is_ok());
    drop(src);
    let mut next = source(&broker, "rs-group", "rs");
    let again = pull(&mut next, 1, 10, Duration::from_secs(60));
    assert_eq!(
        payloads(&again),
        names("s", 10..20),
        "what was acked is not delivered again, what was not is"
    );
    assert!(
        pull(&mut next, 1, 1, Duration::from_millis(500)).is_empty(),
        "nothing more"
    );
}

#[test]
fn a_batch_nobody_confirms_fails_and_a_message_without_topic_is_refused() {
    // Nothing listens there: librdkafka gives up after `timeout_ms`.
    let port = tansu::free_port();
    let cfg = config(&[
        (
            "brokers",
            Value::Array(RVec::from(vec![Value::from(format!("127.0.0.1:{port}"))])),
        ),
        ("timeout_ms", Value::from(500_u64)),
    ]);
    let mut out = connector::sink(module(), &cfg).expect("sink");
    let frames: Frames = ["x", "y"].iter().map(|s| s.as_bytes()).collect();
    let mut delivered = RVec::new();
    let mut topic = Object::new();
    topic.insert("topic", Value::from("t"));
    let started = Instant::now();
    match out.push_batch(
        &frames,
        RSlice::from_slice(&[Value::Object(topic)]),
        &mut delivered,
    ) {
        RResult::RErr(e) => assert!(e.message.contains("2 of 2 messages not delivered"), "{e}"),
        RResult::ROk(()) => panic!("a batch without a broker was confirmed"),
    }
    assert!(delivered.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by timeout_ms"
    );
    // No topic anywhere: refused before anything is sent.
    match out.push_batch(&frames, RSlice::from_slice(&[]), &mut delivered) {
        RResult::RErr(e) => assert!(e.message.contains("no `meta.topic`"), "{e}"),
        RResult::ROk(()) => panic!("a message without a topic was accepted"),
    }
}
