//! The `kafka` connector: Kafka (any broker that speaks its protocol). As a source it reads
//! `topics` as a member of the consumer group `group_id`, storing a message's offset only once
//! the engine delivered it, and replaying a batch the engine failed; as a sink it produces
//! each frame with an idempotent producer (`acks=all`) and returns only when the broker
//! confirmed every message.
//!
//! The client is librdkafka (the `rdkafka` crate, built from the sources it bundles: Debian's
//! library is too old for the crate), through its **polled** API (`BaseConsumer`,
//! `BaseProducer`), not its tokio `StreamConsumer`: librdkafka runs its own threads for the
//! network and the group protocol whatever API is used, so a tokio runtime would only add a
//! task and a copy of every message between librdkafka's queue and `pull`. Here `pull` polls
//! the consumer's queue without waiting and copies each payload straight into the batch;
//! librdkafka calls back (from its own thread) when the queue goes from empty to non-empty,
//! and that callback wakes the engine (`Notify`). So the plugin owns no runtime; a panic in
//! any callback librdkafka calls through `extern "C"` is caught there (it would abort the
//! process), and librdkafka's log lines are forwarded to `tracing` with the connector's id.
//!
//! **Source.** `enable.auto.offset.store` is off: the source asks the engine for
//! acknowledgements (`docs/delivery.md`) and stores a partition's offset (the next one to
//! read) only when every batch up to it was acked, however the outcomes are ordered;
//! librdkafka commits the stored offsets every `commit_interval_ms` and when the source stops
//! (the commit it also tries when a rebalance revokes partitions is refused by the group while
//! it rebalances, so up to `commit_interval_ms` of acked batches are read again by the
//! partitions' next owner). A failed batch (a sink gave up on it) is replayed: each
//! of its partitions is sought back to the batch's first offset there, and everything from
//! that offset on is delivered again (Tremor's `transactional` mode); later batches of that
//! partition still in flight no longer count (their messages come again). When the group takes
//! partitions away (a rebalance: an instance joined or left), what is in flight for them is
//! forgotten: their new owner starts from the last committed offset, so a message can be
//! written twice, never lost (at least once, see `docs/scaling.md`). Between batches the
//! source stays quiet: an idle engine is woken every second to poll (librdkafka counts a
//! member that does not poll for `max.poll.interval.ms` as gone).
//!
//! **Sink.** Each frame becomes one message of `topic` (or of the event's `meta.topic`), with
//! the key from `meta.key` (a string or bytes) and the headers from `meta.headers` (an object:
//! name → string or bytes, or an array of them for a repeated header). The producer is
//! idempotent (`enable.idempotence`, so `acks=all`): the broker drops a retried duplicate.
//! `push_batch` returns when every message of the batch is confirmed; a message librdkafka
//! gave up on (after `timeout_ms`) fails the batch, and the messages that were confirmed are
//! reported delivered, so the engine's retries send only the others.
//!
//! ## Config
//! Source and sink:
//! - `brokers` (array of strings, default `["127.0.0.1:9092"]`): `host:port` of the bootstrap
//!   brokers.
//! - `options` (table, optional): more librdkafka settings (`"security.protocol" = "ssl"`,
//!   `"fetch.max.bytes" = 1048576`, ...), values as strings, integers or booleans. The
//!   settings this connector relies on (`group.id`, `enable.auto.offset.store`,
//!   `enable.idempotence`, `acks`, `bootstrap.servers`, ...) are refused there.
//!
//! Source:
//! - `group_id` (string, required): the consumer group; instances with the same one share the
//!   partitions of `topics`.
//! - `topics` (array of strings, required, not empty): the topics to read.
//! - `offset_reset` (`"earliest"` or `"latest"`, default `"earliest"`): where a partition with
//!   no committed offset starts.
//! - `commit_interval_ms` (integer, default 5000, at least 10): how often stored offsets are
//!   committed.
//! - `session_timeout_ms` (integer, default 45000, at least 1000): how long the group waits
//!   for a member that stopped heart-beating (a killed instance) before its partitions go to
//!   the others.
//! - `timeout_ms` (integer, default 5000, at least 1): for seeking back after a failed batch,
//!   and for the last commit when the source stops.
//!
//! Sink:
//! - `topic` (string, optional): the topic to produce to; without it each event's
//!   `meta.topic` (an event without one fails the batch).
//! - `timeout_ms` (integer, default 30000, at least 1): how long librdkafka tries to deliver
//!   a message (`message.timeout.ms`) before the batch fails.
//!
//! ## Metadata
//! Every event from the source has `meta.topic`, `meta.partition`, `meta.offset`,
//! `meta.timestamp` (milliseconds since the epoch, when the message has one), `meta.key` (a
//! string when it is UTF-8, else bytes; absent without a key) and `meta.headers` (an object:
//! name → string, bytes when not UTF-8, null for a null value, an array for a repeated name;
//! empty without headers). The sink reads `meta.topic` (without `topic` in its config),
//! `meta.key` and `meta.headers`.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "orders"
//! plugin = "kafka"
//! codec = "json"
//! config = { brokers = ["10.0.0.1:9092", "10.0.0.2:9092"], group_id = "temblor", topics = ["orders"], session_timeout_ms = 10000 }
//!
//! [[connector]]
//! id = "audit"
//! plugin = "kafka"
//! codec = "json"
//! config = { brokers = ["10.0.0.1:9092"], topic = "audit" }
//!
//! [[pipeline]]
//! id = "main"
//! operators = []
//!
//! [[connect]]
//! from = "orders"
//! to = "main"
//!
//! [[connect]]
//! from = "main"
//! to = "audit"
//! ```
//! Several engines running this deployment share the partitions of `orders`.

use std::{
    collections::{BTreeMap, HashMap},
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Message as _, Offset, TopicPartitionList,
    config::{FromClientConfigAndContext, RDKafkaLogLevel},
    consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    message::{BorrowedMessage, Header, Headers as _, OwnedHeaders},
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext},
};
use temblor_shim::{
    ErrorKind, Notify, Object, PluginError, Pull, RVec, Setup, Source, SourceBatch, Value, meta_of,
    serde::Deserialize,
    sink::{Batch, BatchSink},
    tracing,
};

/// The most messages one `pull` takes.
const PULL_ITEMS: usize = 4096;

/// The most bytes one `pull` takes (it stops after the message that crosses it).
const PULL_BYTES: usize = 1024 * 1024;

/// How often an idle engine is woken to poll the consumer.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// Settings this connector sets itself: `options` may not change them.
const RESERVED: [&str; 12] = [
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.offset.store",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "session.timeout.ms",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "message.timeout.ms",
];

/// The keys the source and the sink share (flattened into both): brokers and `options`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", default)]
pub struct Client {
    pub brokers: Vec<String>,
    pub options: HashMap<String, OptionValue>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            brokers: vec!["127.0.0.1:9092".to_owned()],
            options: HashMap::new(),
        }
    }
}

fn default_offset_reset() -> String {
    "earliest".to_owned()
}
fn default_commit_interval_ms() -> u64 {
    5000
}
fn default_session_timeout_ms() -> u64 {
    45_000
}
fn default_source_timeout_ms() -> u64 {
    5000
}

/// The source's `config`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(flatten)]
    pub client: Client,
    pub group_id: String,
    pub topics: Vec<String>,
    #[serde(default = "default_offset_reset")]
    pub offset_reset: String,
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    #[serde(default = "default_source_timeout_ms")]
    pub timeout_ms: u64,
}

/// The sink's `config`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", default, deny_unknown_fields)]
pub struct Config {
    #[serde(flatten)]
    pub client: Client,
    pub topic: Option<String>,
    pub timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client: Client::default(),
            topic: None,
            timeout_ms: 30_000,
        }
    }
}

/// A value of `options`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(crate = "temblor_shim::serde", untagged)]
pub enum OptionValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl OptionValue {
    fn text(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(n) => n.to_string(),
            Self::Text(s) => s.clone(),
        }
    }
}

impl Client {
    /// The librdkafka settings common to both sides: brokers and `options`, checked.
    fn settings(&self, id: &str) -> Result<ClientConfig, PluginError> {
        if self.brokers.is_empty() {
            return Err(PluginError::config("`brokers` is empty"));
        }
        for b in &self.brokers {
            let host_port = b.strip_prefix("kafka://").unwrap_or(b);
            if host_port.is_empty() || !host_port.contains(':') || host_port.contains(',') {
                return Err(PluginError::config(format_args!(
                    "`brokers`: {b:?} is not `host:port`"
                )));
            }
        }
        let mut cfg = ClientConfig::new();
        cfg.set("client.id", format!("temblor-{id}"));
        let mut keys: Vec<&String> = self.options.keys().collect();
        keys.sort();
        for key in keys {
            if RESERVED.contains(&key.as_str()) {
                return Err(PluginError::config(format_args!(
                    "`options` may not set {key:?}: the connector sets it (see its own keys)"
                )));
            }
            cfg.set(key.as_str(), self.options[key].text());
        }
        cfg.set(
            "bootstrap.servers",
            self.brokers
                .iter()
                .map(|b| b.strip_prefix("kafka://").unwrap_or(b))
                .collect::<Vec<_>>()
                .join(","),
        );
        Ok(cfg)
    }
}

/// A consumer or producer on `cfg`, its callbacks logging for connector `id` and keeping
/// `state`; librdkafka's refusal of a setting is a config error.
fn create<T, C>(cfg: &ClientConfig, id: &str, state: T) -> Result<C, PluginError>
where
    T: Send + Sync,
    C: FromClientConfigAndContext<Context<T>>,
{
    cfg.create_with_context(Context {
        id: id.to_owned(),
        state,
    })
    .map_err(|e| PluginError::config(format_args!("librdkafka refused the settings: {e}")))
}

/// Runs `f`, catching a panic: for code librdkafka calls through `extern "C"`, where an
/// unwinding panic would abort the process.
fn guarded(what: &str, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
        let e = PluginError::from_panic(what, &*p);
        tracing::error!(error = %e, "a librdkafka callback panicked");
    }
}

/// Forwards one librdkafka log line to `tracing`.
fn forward_log(id: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    guarded("logging", || match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(connector = id, facility, "librdkafka: {message}");
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(connector = id, facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(connector = id, facility, "librdkafka: {message}");
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(connector = id, facility, "librdkafka: {message}")
        }
    });
}

// ---------------------------------------------------------------------------------------
// Source

/// A topic and partition.
type Tp = (Arc<str>, i32);

/// What librdkafka's callbacks see: the connector's id (for their logs) and the state of
/// the source or the sink they report to.
struct Context<T> {
    id: String,
    state: T,
}

impl<T: Send + Sync> ClientContext for Context<T> {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(&self.id, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        guarded("error callback", || {
            tracing::warn!(connector = %self.id, error = %error, reason, "kafka client error");
        });
    }
}

/// What librdkafka's callbacks tell the source (they run inside `poll`, on the engine's
/// thread, or on librdkafka's threads for the wake-up).
#[derive(Default)]
struct Consumed {
    /// Partitions taken away since the source last looked.
    revoked: Mutex<Vec<(String, i32)>>,
    /// Bumped by every rebalance or commit event `poll` consumed (it then returns no message
    /// although more may wait).
    events: AtomicU64,
}

impl ConsumerContext for Context<Consumed> {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        guarded("rebalance callback", || {
            self.state.events.fetch_add(1, Ordering::SeqCst);
            match rebalance {
                Rebalance::Revoke(tpl) => {
                    let parts = partitions(tpl);
                    tracing::info!(connector = %self.id, partitions = %list(&parts), "partitions revoked");
                    locked(&self.state.revoked).extend(parts);
                }
                Rebalance::Assign(tpl) => {
                    tracing::info!(connector = %self.id, partitions = %list(&partitions(tpl)), "partitions assigned");
                }
                Rebalance::Error(e) => {
                    tracing::warn!(connector = %self.id, error = %e, "rebalance failed");
                }
            }
        });
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        guarded("commit callback", || {
            self.state.events.fetch_add(1, Ordering::SeqCst);
            match result {
                Ok(()) => {
                    let committed: Vec<String> = offsets
                        .elements()
                        .iter()
                        .map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset()))
                        .collect();
                    tracing::debug!(connector = %self.id, offsets = %committed.join(","), "offsets committed");
                }
                // Nothing to commit (no offset stored since the last commit) is no problem.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                // The commit librdkafka sends when an eager rebalance revokes the partitions
                // comes too late for the group: what was stored since the last periodic commit
                // is read again by the partitions' next owner (at least once).
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress)) => {
                    tracing::info!(connector = %self.id, "offsets not committed: the group is rebalancing (the partitions' next owner reads the last few again)");
                }
                Err(e) => {
                    tracing::warn!(connector = %self.id, error = %e, "committing offsets failed")
                }
            }
        });
    }
}

/// The topics and partitions of `tpl`.
fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// The value behind `m`, also when a panic poisoned it (every user leaves it consistent).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `topic/partition` pairs, for logs.
fn list(parts: &[(String, i32)]) -> String {
    parts
        .iter()
        .map(|(t, p)| format!("{t}/{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A batch's messages of one partition: from `first` (the map key) to `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    last: i64,
    token: u64,
    acked: bool,
}

/// What is in flight, by partition, and which ranges each token covers.
#[derive(Debug, Default)]
struct Inflight {
    parts: HashMap<Tp, BTreeMap<i64, Range>>,
    tokens: HashMap<u64, Vec<(Tp, i64)>>,
}

/// What to tell the consumer after an outcome.
#[derive(Debug, Default, PartialEq, Eq)]
struct Actions {
    /// Offsets to store (the next offset to read, per partition).
    store: Vec<(Tp, i64)>,
    /// Partitions to seek back to an offset.
    seek: Vec<(Tp, i64)>,
}

impl Inflight {
    /// Records that `token` covers `first..=last` of `tp`.
    fn add(&mut self, tp: Tp, first: i64, last: i64, token: u64) {
        self.parts.entry(tp.clone()).or_default().insert(
            first,
            Range {
                last,
                token,
                acked: false,
            },
        );
        self.tokens.entry(token).or_default().push((tp, first));
    }

    /// `token` was delivered: the offsets every partition can store now.
    fn ack(&mut self, token: u64) -> Actions {
        let mut actions = Actions::default();
        for (tp, first) in self.tokens.remove(&token).unwrap_or_default() {
            let Some(ranges) = self.parts.get_mut(&tp) else {
                continue;
            };
            match ranges.get_mut(&first) {
                Some(r) if r.token == token => r.acked = true,
                _ => continue,
            }
            let mut next = None;
            while let Some(entry) = ranges.first_entry() {
                if !entry.get().acked {
                    break;
                }
                next = Some(entry.remove().last + 1);
            }
            if let Some(next) = next {
                actions.store.push((tp.clone(), next));
            }
            if ranges.is_empty() {
                self.parts.remove(&tp);
            }
        }
        actions
    }

    /// `token` failed: every partition goes back to the token's first offset there, and
    /// what was in flight from there on is forgotten (it comes again).
    fn fail(&mut self, token: u64) -> Actions {
        let mut actions = Actions::default();
        for (tp, first) in self.tokens.remove(&token).unwrap_or_default() {
            let Some(ranges) = self.parts.get_mut(&tp) else {
                continue;
            };
            if ranges.get(&first).is_none_or(|r| r.token != token) {
                // An earlier failure already went back before it.
                continue;
            }
            drop(ranges.split_off(&first));
            actions.seek.push((tp.clone(), first));
            if ranges.is_empty() {
                self.parts.remove(&tp);
            }
        }
        actions
    }

    /// The group took `tp` away: forget what is in flight for it.
    fn revoke(&mut self, tp: &Tp) -> usize {
        self.parts.remove(tp).map_or(0, |r| r.len())
    }

    fn batches(&self) -> usize {
        self.tokens.len()
    }
}

/// Wakes an idle engine every [`KEEPALIVE`] so that the consumer is polled.
struct Keepalive {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Keepalive {
    fn start(notify: Notify, last_pull: Arc<Mutex<Instant>>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("kafka-keepalive".into())
            .spawn(move || {
                while !stopping.load(Ordering::SeqCst) {
                    thread::park_timeout(KEEPALIVE);
                    let since = locked(&last_pull).elapsed();
                    if since >= KEEPALIVE && !stopping.load(Ordering::SeqCst) {
                        notify.notify();
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl SourceConfig {
    /// The consumer's librdkafka settings, the keys checked.
    fn settings(&self, id: &str) -> Result<ClientConfig, PluginError> {
        if self.group_id.is_empty() {
            return Err(PluginError::config("`group_id` is empty"));
        }
        if self.topics.is_empty() || self.topics.iter().any(String::is_empty) {
            return Err(PluginError::config(
                "`topics` must name at least one topic (and no empty name)",
            ));
        }
        if !matches!(self.offset_reset.as_str(), "earliest" | "latest") {
            return Err(PluginError::config(format_args!(
                "`offset_reset` must be \"earliest\" or \"latest\", found {:?}",
                self.offset_reset
            )));
        }
        if self.commit_interval_ms < 10 {
            return Err(PluginError::config(
                "`commit_interval_ms` must be at least 10",
            ));
        }
        if self.session_timeout_ms < 1000 {
            return Err(PluginError::config(
                "`session_timeout_ms` must be at least 1000",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(PluginError::config("`timeout_ms` must be at least 1"));
        }
        let mut cfg = self.client.settings(id)?;
        cfg.set("group.id", &self.group_id)
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                self.commit_interval_ms.to_string(),
            )
            .set("auto.offset.reset", &self.offset_reset)
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 3).max(100).to_string(),
            );
        Ok(cfg)
    }
}

/// The `kafka` source.
pub struct KafkaSource {
    consumer: BaseConsumer<Context<Consumed>>,
    inflight: Inflight,
    /// Topic names, shared by the partitions' keys.
    topics: HashMap<String, Arc<str>>,
    timeout: Duration,
    notifies: bool,
    last_pull: Arc<Mutex<Instant>>,
    keepalive: Option<Keepalive>,
    next_stream: u64,
    messages: u64,
    replays: u64,
}

impl KafkaSource {
    /// Checks the config, creates the consumer and subscribes (connecting happens in the
    /// background: a broker not up yet is no error).
    ///
    /// # Errors
    /// A `Config` error for a bad config or settings librdkafka refuses.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let c: SourceConfig = setup.config()?;
        let consumer: BaseConsumer<Context<Consumed>> =
            create(&c.settings(setup.id)?, setup.id, Consumed::default())?;
        let topics: Vec<&str> = c.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| {
            PluginError::config(format_args!("cannot subscribe to {topics:?}: {e}"))
        })?;
        tracing::info!(group = %c.group_id, topics = ?topics, "kafka consumer subscribed");
        Ok(Self {
            consumer,
            inflight: Inflight::default(),
            topics: HashMap::new(),
            timeout: Duration::from_millis(c.timeout_ms),
            notifies: false,
            last_pull: Arc::new(Mutex::new(Instant::now())),
            keepalive: None,
            next_stream: 0,
            messages: 0,
            replays: 0,
        })
    }

    fn meta(msg: &BorrowedMessage<'_>) -> Value {
        let mut meta = Object::with_capacity(6);
        meta.insert("topic", Value::from(msg.topic()));
        meta.insert("partition", Value::from(msg.partition()));
        meta.insert("offset", Value::from(msg.offset()));
        if let Some(ts) = msg.timestamp().to_millis() {
            meta.insert("timestamp", Value::from(ts));
        }
        if let Some(key) = msg.key() {
            meta.insert("key", text_or_bytes(key));
        }
        let mut headers = Object::new();
        if let Some(hs) = msg.headers() {
            for h in hs.iter() {
                let v = h.value.map_or(Value::Null, text_or_bytes);
                let merged = match headers.get(h.key) {
                    None => v,
                    Some(Value::Array(values)) => {
                        let mut values = values.clone();
                        values.push(v);
                        Value::Array(values)
                    }
                    Some(first) => Value::Array(RVec::from(vec![first.clone(), v])),
                };
                headers.insert(h.key, merged);
            }
        }
        meta.insert("headers", Value::Object(headers));
        Value::Object(meta)
    }

    /// Forgets what is in flight for partitions the group took away meanwhile (and for those
    /// of `batch`, the ranges of the pull under way).
    fn take_revoked(&mut self, batch: &mut HashMap<Tp, (i64, i64)>) {
        let revoked = std::mem::take(&mut *locked(&self.consumer.context().state.revoked));
        for (topic, partition) in revoked {
            let tp = (intern(&mut self.topics, &topic), partition);
            let forgotten = self.inflight.revoke(&tp) + usize::from(batch.remove(&tp).is_some());
            if forgotten > 0 {
                tracing::info!(
                    topic,
                    partition,
                    batches = forgotten,
                    "partition revoked with batches in flight: its next owner reads them again from the last committed offset"
                );
            }
        }
    }

    fn apply(&self, actions: Actions) {
        for (tp, next) in actions.store {
            // librdkafka stores (and commits) the offset given plus one: the next to read.
            if let Err(e) = self.consumer.store_offset(&tp.0, tp.1, next - 1) {
                // The partition was revoked meanwhile: its new owner reads from the committed
                // offset.
                tracing::debug!(topic = %tp.0, partition = tp.1, offset = next, error = %e, "offset not stored");
            }
        }
        for (tp, first) in actions.seek {
            match self
                .consumer
                .seek(&tp.0, tp.1, Offset::Offset(first), self.timeout)
            {
                Ok(()) => {
                    tracing::info!(topic = %tp.0, partition = tp.1, offset = first, "sought back to replay a failed batch");
                }
                Err(e) => {
                    tracing::warn!(topic = %tp.0, partition = tp.1, offset = first, error = %e, "cannot seek back to replay a failed batch (the partition was revoked?): its next owner reads it from the last committed offset");
                }
            }
        }
    }
}

/// The shared name of `topic`.
fn intern(topics: &mut HashMap<String, Arc<str>>, name: &str) -> Arc<str> {
    if let Some(t) = topics.get(name) {
        return Arc::clone(t);
    }
    let t: Arc<str> = Arc::from(name);
    topics.insert(name.to_owned(), Arc::clone(&t));
    t
}

/// A string when `bytes` is UTF-8, else bytes.
fn text_or_bytes(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::from(s),
        Err(_) => Value::Bytes(RVec::from(bytes.to_vec())),
    }
}

impl Source for KafkaSource {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        *locked(&self.last_pull) = Instant::now();
        let token = out.token();
        let mut batch: HashMap<Tp, (i64, i64)> = HashMap::new();
        let mut taken = 0;
        let mut empty = false;
        // Without a wake-up (an older host) the first poll waits up to 100 ms.
        let mut wait = if self.notifies {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        let mut events = self.consumer.context().state.events.load(Ordering::SeqCst);
        while taken < PULL_ITEMS && out.byte_len() < PULL_BYTES {
            let polled = self.consumer.poll(wait);
            wait = Duration::ZERO;
            let now = self.consumer.context().state.events.load(Ordering::SeqCst);
            let event = now != events;
            events = now;
            match polled {
                Some(Ok(msg)) => {
                    self.next_stream += 1;
                    let stream = self.next_stream;
                    out.start_stream(stream, Self::meta(&msg));
                    out.push_stream(stream, msg.payload().unwrap_or_default());
                    out.end_stream(stream);
                    let tp = (intern(&mut self.topics, msg.topic()), msg.partition());
                    let offset = msg.offset();
                    batch
                        .entry(tp)
                        .and_modify(|r| r.1 = r.1.max(offset))
                        .or_insert((offset, offset));
                    taken += 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    // The engine restarts the source: a new consumer, from the committed
                    // offsets (what this pull took is handed over all the same).
                    return Err(PluginError::new(
                        ErrorKind::Io,
                        format_args!("the kafka consumer failed: {e}"),
                    ));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                }
                // A rebalance or commit event was served: more may wait.
                None if event => {}
                None => {
                    empty = true;
                    break;
                }
            }
            if event {
                self.take_revoked(&mut batch);
            }
        }
        self.take_revoked(&mut batch);
        self.messages += taken as u64;
        if token == 0 {
            // The engine tracks nothing for us: store at once (at most once).
            let store = batch.into_iter().map(|(tp, (_, last))| (tp, last + 1));
            self.apply(Actions {
                store: store.collect(),
                seek: Vec::new(),
            });
        } else {
            for (tp, (first, last)) in batch {
                self.inflight.add(tp, first, last, token);
            }
        }
        if taken > 0 || !empty {
            Ok(Pull::Ready)
        } else {
            Ok(Pull::Idle)
        }
    }

    fn wants_acks(&self) -> bool {
        true
    }

    fn ack(&mut self, token: u64) -> Result<(), PluginError> {
        let actions = self.inflight.ack(token);
        self.apply(actions);
        Ok(())
    }

    fn fail(&mut self, token: u64, reason: &str) -> Result<(), PluginError> {
        let actions = self.inflight.fail(token);
        if !actions.seek.is_empty() {
            self.replays += 1;
            tracing::warn!(
                partitions = actions.seek.len(),
                reason,
                "batch failed; replaying it from its first offsets"
            );
        }
        self.apply(actions);
        Ok(())
    }

    fn set_notify(&mut self, notify: Notify) -> bool {
        let keep = notify.clone();
        let wake = move || guarded("wake-up", || keep.notify());
        self.consumer.set_nonempty_callback(wake);
        match Keepalive::start(notify, Arc::clone(&self.last_pull)) {
            Ok(k) => {
                self.keepalive = Some(k);
                self.notifies = true;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the keep-alive thread; polling in pull instead");
                false
            }
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.keepalive = None;
        // The engine waited for every outcome: the stored offsets are final. The commit is
        // sent now; the consumer's close (dropping it) waits for it and leaves the group. (A
        // synchronous commit could wait for ever for a broker that is gone.)
        match self.consumer.commit_consumer_state(CommitMode::Async) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "last commit failed: the offsets stored since the previous one are read again");
            }
        }
        tracing::debug!(
            messages = self.messages,
            replays = self.replays,
            in_flight = self.inflight.batches(),
            "kafka source closed"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Sink

/// Delivery reports by tag, gathered by the producer's callback (run inside `poll`, on the
/// engine's thread).
type Reports = Mutex<Vec<(usize, Result<(), String>)>>;

impl ProducerContext for Context<Reports> {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        guarded("delivery callback", || {
            let outcome = match result {
                Ok(_) => Ok(()),
                Err((e, _)) => Err(e.to_string()),
            };
            locked(&self.state).push((tag, outcome));
        });
    }
}

/// A message's tag: the batch number (low 31 bits) and the frame's index.
fn tag(batch: u64, index: usize) -> usize {
    (((batch & 0x7fff_ffff) as usize) << 32) | (index & 0xffff_ffff)
}

impl Config {
    /// The producer's librdkafka settings, the keys checked.
    fn settings(&self, id: &str) -> Result<ClientConfig, PluginError> {
        if self.timeout_ms == 0 {
            return Err(PluginError::config("`timeout_ms` must be at least 1"));
        }
        if self.topic.as_deref() == Some("") {
            return Err(PluginError::config("`topic` is empty"));
        }
        let mut cfg = self.client.settings(id)?;
        cfg.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.timeout_ms.to_string());
        Ok(cfg)
    }
}

/// The `kafka` sink.
pub struct KafkaSink {
    producer: BaseProducer<Context<Reports>>,
    topic: Option<String>,
    timeout: Duration,
    batch_no: u64,
    messages: u64,
}

impl KafkaSink {
    /// Checks the config and creates the producer (it connects in the background).
    ///
    /// # Errors
    /// A `Config` error for a bad config or settings librdkafka refuses.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let c: Config = setup.config()?;
        let producer: BaseProducer<Context<Reports>> =
            create(&c.settings(setup.id)?, setup.id, Reports::default())?;
        Ok(Self {
            producer,
            topic: c.topic,
            timeout: Duration::from_millis(c.timeout_ms),
            batch_no: 0,
            messages: 0,
        })
    }

    /// Queues frame `i` (polling while librdkafka's queue is full). An error that is the
    /// message's own (no topic, too large) comes back as `Err`.
    fn send(&self, frame: &[u8], meta: &Value, i: usize, deadline: Instant) -> Result<(), String> {
        let topic = match (&self.topic, meta.get("topic")) {
            (Some(t), _) => t.as_str(),
            (None, Some(Value::String(t))) => t.as_str(),
            (None, _) => {
                return Err(format!(
                    "frame {i} has no `meta.topic` and the config gives no `topic`"
                ));
            }
        };
        let key: Option<&[u8]> = match meta.get("key") {
            Some(Value::String(s)) => Some(s.as_bytes()),
            Some(Value::Bytes(b)) => Some(b.as_slice()),
            _ => None,
        };
        let mut record =
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, tag(self.batch_no, i))
                .payload(frame);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(Value::Object(h)) = meta.get("headers")
            && !h.is_empty()
        {
            record = record.headers(headers(h));
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(format!("frame {i}: {e}")),
            }
        }
    }
}

/// `meta.headers` as Kafka headers: strings and bytes as they are, other scalars as text,
/// arrays as repeated headers, null as a null value.
fn headers(h: &Object) -> OwnedHeaders {
    fn one(out: OwnedHeaders, key: &str, v: &Value) -> OwnedHeaders {
        let text;
        let value: Option<&[u8]> = match v {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b.as_slice()),
            other => {
                text = match other {
                    Value::Bool(b) => b.to_string(),
                    Value::I64(n) => n.to_string(),
                    Value::U64(n) => n.to_string(),
                    Value::F64(n) => n.to_string(),
                    _ => other.to_json(),
                };
                Some(text.as_bytes())
            }
        };
        out.insert(Header { key, value })
    }
    let mut out = OwnedHeaders::new_with_capacity(h.len());
    for (key, v) in h.iter() {
        match v {
            Value::Array(values) => {
                for v in values.iter() {
                    out = one(out, key, v);
                }
            }
            v => out = one(out, key, v),
        }
    }
    out
}

impl BatchSink for KafkaSink {
    fn write(&mut self, batch: Batch<'_>, delivered: &mut RVec<u32>) -> Result<(), PluginError> {
        let Batch { frames, meta } = batch;
        self.batch_no += 1;
        let started = Instant::now();
        // librdkafka reports every message within `message.timeout.ms`; a little more for the
        // last reports to arrive.
        let deadline = started + self.timeout + Duration::from_secs(5);
        let mut errors: Vec<String> = Vec::new();
        let mut waiting = 0_usize;
        for (i, frame) in frames.iter().enumerate() {
            match self.send(frame, meta_of(meta, i), i, deadline) {
                Ok(()) => waiting += 1,
                Err(e) => errors.push(e),
            }
        }
        let mut ok = vec![false; frames.len()];
        while waiting > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(50));
            let reports = std::mem::take(&mut *locked(&self.producer.context().state));
            for (t, outcome) in reports {
                let index = t & 0xffff_ffff;
                if t >> 32 != (self.batch_no & 0x7fff_ffff) as usize || index >= ok.len() {
                    continue; // a late report of an earlier batch
                }
                waiting = waiting.saturating_sub(1);
                match outcome {
                    Ok(()) => ok[index] = true,
                    Err(e) => errors.push(format!("frame {index}: {e}")),
                }
            }
        }
        if waiting > 0 {
            errors.push(format!(
                "{waiting} messages without a delivery report after {} ms",
                started.elapsed().as_millis()
            ));
        }
        let confirmed = ok.iter().filter(|d| **d).count();
        self.messages += confirmed as u64;
        if errors.is_empty() {
            return Ok(());
        }
        delivered.extend(
            ok.iter()
                .enumerate()
                .filter(|(_, d)| **d)
                .filter_map(|(i, _)| u32::try_from(i).ok()),
        );
        tracing::warn!(confirmed, frames = frames.len(), error = %errors[0], "kafka batch not fully delivered");
        Err(PluginError::new(
            ErrorKind::Io,
            format_args!(
                "{} of {} messages not delivered to kafka: {}",
                frames.len() - confirmed,
                frames.len(),
                errors[0]
            ),
        ))
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        // Every push_batch waits for its delivery reports.
        Ok(())
    }
}

temblor_shim::batch_sink!(KafkaSink);

impl Drop for KafkaSink {
    fn drop(&mut self) {
        if let Err(e) = self.producer.flush(self.timeout) {
            tracing::warn!(error = %e, "kafka producer not flushed when closing");
        }
        tracing::debug!(messages = self.messages, "kafka sink closed");
    }
}

temblor_shim::export_plugin! {
    name: "kafka",
    kind: Connector,
    source: KafkaSource::new,
    sink: KafkaSink::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::{config, connector};

    fn tp(p: i32) -> Tp {
        (Arc::from("t"), p)
    }

    /// What is in flight after adding each `(partition, first, last, token)` of topic `t`.
    fn inflight(ranges: &[(i32, i64, i64, u64)]) -> Inflight {
        let mut f = Inflight::default();
        for &(p, first, last, token) in ranges {
            f.add(tp(p), first, last, token);
        }
        f
    }

    #[test]
    fn defaults() {
        let c: SourceConfig = temblor_shim::from_value(&config(&[
            ("group_id", Value::from("g")),
            ("topics", Value::Array(RVec::from(vec![Value::from("a")]))),
        ]))
        .expect("c");
        assert_eq!(c.client.brokers, ["127.0.0.1:9092"]);
        assert_eq!(
            (
                c.offset_reset.as_str(),
                c.commit_interval_ms,
                c.session_timeout_ms,
                c.timeout_ms
            ),
            ("earliest", 5000, 45_000, 5000)
        );
        let s: Config = temblor_shim::from_value(&config(&[])).expect("c");
        assert!(s.topic.is_none() && s.client.options.is_empty());
        assert_eq!(s.timeout_ms, 30_000);
    }

    #[test]
    fn bad_configs_are_config_errors() {
        let s = |v: &str| Value::from(v);
        let topics = Value::Array(RVec::from(vec![s("a")]));
        let options = |k: &str| Value::Object([(k, s("x"))].into_iter().collect());
        let mut cases = vec![
            (vec![("topics", topics.clone())], "group_id"),
            (vec![("group_id", s("g"))], "topics"),
        ];
        // One key added to (or replacing one of) a valid source config.
        for (key, value, needle) in [
            ("topics", Value::Array(RVec::new()), "`topics` must name"),
            ("offset_reset", s("smallest"), "`offset_reset`"),
            (
                "brokers",
                Value::Array(RVec::from(vec![s("nohost")])),
                "not `host:port`",
            ),
            (
                "options",
                options("enable.auto.offset.store"),
                "may not set \"enable.auto.offset.store\"",
            ),
            ("options", options("no.such.setting"), "librdkafka refused"),
            (
                "session_timeout_ms",
                Value::from(5_u64),
                "session_timeout_ms",
            ),
            ("topic", s("x"), "unknown field `topic`"),
        ] {
            let mut fields = vec![("group_id", s("g")), ("topics", topics.clone())];
            fields.retain(|(k, _)| *k != key);
            fields.push((key, value));
            cases.push((fields, needle));
        }
        for (fields, needle) in cases {
            let err = connector::source(plugin_module(), &config(&fields))
                .err()
                .expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
        let err = connector::sink(plugin_module(), &config(&[("options", options("acks"))]))
            .err()
            .expect("acks is the connector's");
        assert!(err.message.contains("may not set \"acks\""), "{err}");
    }

    #[test]
    fn offsets_are_stored_only_up_to_the_first_batch_not_acked() {
        let mut f = inflight(&[
            (0, 0, 9, 1),
            (1, 100, 104, 1),
            (0, 10, 19, 2),
            (0, 20, 29, 3),
        ]);
        // Out of order: 2 first stores nothing on partition 0.
        assert_eq!(f.ack(2), Actions::default());
        assert_eq!(
            {
                let mut a = f.ack(1);
                a.store.sort();
                a
            },
            Actions {
                store: vec![(tp(0), 20), (tp(1), 105)],
                seek: vec![]
            }
        );
        assert_eq!(f.ack(3).store, vec![(tp(0), 30)]);
        assert!(f.parts.is_empty() && f.tokens.is_empty());
        // An unknown or repeated token changes nothing.
        assert_eq!(f.ack(3), Actions::default());
    }

    #[test]
    fn a_failed_batch_is_replayed_from_its_first_offset_and_later_ones_forgotten() {
        let mut f = inflight(&[(0, 0, 9, 1), (0, 10, 19, 2), (0, 20, 29, 3), (1, 5, 6, 3)]);
        assert_eq!(
            f.fail(2),
            Actions {
                store: vec![],
                seek: vec![(tp(0), 10)]
            }
        );
        // Batch 3's partition 0 part was forgotten (it comes again); its partition 1 part counts.
        assert_eq!(f.ack(3).store, vec![(tp(1), 7)]);
        assert_eq!(f.ack(1).store, vec![(tp(0), 10)]);
        // The replay, then its ack.
        f.add(tp(0), 10, 29, 4);
        assert_eq!(f.ack(4).store, vec![(tp(0), 30)]);
        // A failure behind an earlier failure seeks nowhere new.
        f.add(tp(0), 30, 39, 5);
        f.add(tp(0), 40, 49, 6);
        assert_eq!(f.fail(5).seek, vec![(tp(0), 30)]);
        assert_eq!(f.fail(6), Actions::default());
    }

    #[test]
    fn a_revoked_partition_is_forgotten() {
        let mut f = inflight(&[(0, 0, 9, 1), (1, 0, 9, 1)]);
        assert_eq!(f.revoke(&tp(0)), 1);
        assert_eq!(f.ack(1).store, vec![(tp(1), 10)]);
    }

    #[test]
    fn tags_carry_the_batch_and_the_index() {
        let t = tag(7, 3);
        assert_eq!((t >> 32, t & 0xffff_ffff), (7, 3));
        assert_eq!(tag(0x8000_0001, 0) >> 32, 1, "the batch number wraps");
    }

    #[test]
    fn headers_from_meta() {
        let mut h = Object::new();
        h.insert("id", Value::from("x1"));
        h.insert(
            "rep",
            Value::Array(RVec::from(vec![Value::from("a"), Value::from("b")])),
        );
        h.insert("n", Value::from(3_i64));
        h.insert("none", Value::Null);
        let out = headers(&h);
        let got: Vec<(String, Option<Vec<u8>>)> = out
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            got,
            [
                ("id".to_owned(), Some(b"x1".to_vec())),
                ("rep".to_owned(), Some(b"a".to_vec())),
                ("rep".to_owned(), Some(b"b".to_vec())),
                ("n".to_owned(), Some(b"3".to_vec())),
                ("none".to_owned(), None),
            ]
        );
    }
}
