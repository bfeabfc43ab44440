//! The `nats` connector: NATS and JetStream. As a source it subscribes to a subject (core
//! NATS, optionally in a queue group) or pulls from a JetStream durable consumer, acking each
//! message only once the engine delivered it; as a sink it publishes each frame, and with
//! `jetstream = true` waits for the stream's acknowledgement of every message.
//!
//! The client is this crate's own (`proto.rs`, the NATS text protocol over TCP; `client.rs`,
//! the connection), run on the plugin's tokio runtime (`temblor-net`); docs/scaling.md says
//! why not async-nats.
//!
//! **Source, core NATS** (no `stream`): `SUB subject [queue]`. Every message is one event (one
//! stream of one frame, with its metadata). Core NATS keeps nothing: what arrives while the
//! source is down or its connection is broken is lost (at most once). Several instances in the
//! same `queue` group share the messages (each goes to one of them).
//!
//! **Source, JetStream** (`stream` and `consumer` given): on its first connection the source
//! creates the durable pull consumer `consumer` on `stream` (explicit acks, `ack_wait_ms`,
//! `max_ack_pending`, `subject` as its filter) or binds to it when it exists with the same
//! settings (again after a reconnection only when pull requests find no consumer: a cluster
//! that just lost its meta leader cannot answer a create, but the consumer's own leader still
//! serves pulls), then asks for `batch` messages at a time (`$JS.API.CONSUMER.MSG.NEXT`, at
//! most two requests open, and no more while `2 × batch` messages wait for `pull`). The source asks the
//! engine for acknowledgements (`docs/delivery.md`): a message is acked (`+ACK`) only when
//! every sink wrote and flushed the batch it came in; a failed batch's messages are NAKed
//! (`-NAK`) with a delay of `nak_delay_ms`, so the server delivers them again later. While a
//! batch waits for its outcome (a slow sink), the source tells the server it is still working
//! on its messages (`+WPI`) every third of `ack_wait_ms`, so they are not delivered again
//! meanwhile. Messages the source received but the engine never took are NAKed when the source
//! stops; a source that dies (SIGKILL) leaves its unacked messages to the server, which
//! delivers them again (to any instance) after `ack_wait_ms`. Several temblor instances with
//! the same `stream` and `consumer` share its messages (at least once: a message written by an
//! instance that died before its ack went out is written again by another one; see
//! `docs/scaling.md`).
//!
//! Connections that fail or break are opened again after `backoff_ms`, doubling up to
//! `max_backoff_ms`, trying `servers` in turn, for ever. `pull` never waits: the engine is
//! woken when messages arrive.
//!
//! **Sink.** Each frame is published as one message to `subject`, or, without it, to the
//! event's `meta.subject`; the event's `meta.headers` (an object of strings, or of arrays of
//! strings) become the message's headers, so `meta.headers["Nats-Msg-Id"]` lets the server
//! drop a message it already has (JetStream's duplicate window). Without `jetstream`, a batch
//! counts as written once the server answered a `PING` sent after it. With `jetstream = true`
//! every message asks for a reply and `push_batch` returns only when every message of the
//! batch has its PubAck (a duplicate counts as stored); a message refused by the server (no
//! stream for its subject, a full stream) or a broken connection makes the sink connect again
//! and send what has no PubAck, waiting `backoff_ms` before each new attempt, doubling up to
//! `max_backoff_ms`. After `max_retries` attempts more the batch fails with an `Io` error and
//! the frames that were stored go back to the engine in `delivered`.
//!
//! ## Config
//! Source and sink:
//! - `servers` (array of strings, default `["127.0.0.1:4222"]`): `host:port` or
//!   `nats://host:port`, tried in turn.
//! - `name` (string, default the connector's id): the client name the server shows.
//! - `backoff_ms` (integer, default 100, at least 1): the wait before the first reconnection.
//! - `max_backoff_ms` (integer, default 5000, at least `backoff_ms`): the longest wait.
//! - `timeout_ms` (integer, default 5000, at least 1): for connecting, for JetStream API
//!   requests, and for the sink's PubAcks of one batch.
//!
//! Source:
//! - `subject` (string; required without `stream`, else an optional filter of the consumer):
//!   the subject, wildcards allowed.
//! - `queue` (string, optional, core NATS only): the queue group.
//! - `stream` (string, optional): the JetStream stream; with it the source is a JetStream
//!   consumer.
//! - `consumer` (string, required with `stream`): the durable consumer's name.
//! - `batch` (integer, default 256, 1 to 10000): messages asked for in one pull request.
//! - `max_ack_pending` (integer, default 1024, at least 1): the consumer's limit of messages
//!   delivered and not yet acked (over all instances sharing it).
//! - `ack_wait_ms` (integer, default 30000, at least 100): how long the server waits for an
//!   ack before it delivers a message again.
//! - `nak_delay_ms` (integer, default 1000): the delay asked for when NAKing a failed message.
//!
//! Sink:
//! - `subject` (string, optional): the subject to publish to; without it each event's
//!   `meta.subject` (an event without one fails the batch).
//! - `jetstream` (bool, default false): wait for each message's PubAck.
//! - `max_retries` (integer, default 10): attempts after the first before a batch fails.
//!
//! ## Metadata
//! Every event from the source has `meta.subject` (string) and `meta.headers` (an object:
//! name → string, or an array of strings for a repeated header; empty without headers); from
//! JetStream also `meta.stream_seq` (the message's sequence in the stream) and
//! `meta.delivered` (1 the first time, more when delivered again). The sink reads
//! `meta.subject` (without `subject` in its config) and `meta.headers`.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "orders"
//! plugin = "nats"
//! codec = "json"
//! config = { servers = ["127.0.0.1:4222"], stream = "ORDERS", consumer = "temblor", subject = "orders.>", ack_wait_ms = 10000 }
//!
//! [[connector]]
//! id = "audit"
//! plugin = "nats"
//! codec = "json"
//! config = { subject = "audit.orders", jetstream = true }
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
//! Several engines running this deployment share the `ORDERS` stream's messages.

pub mod client;
pub mod proto;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use client::Link;
use proto::{Msg, Op};
use temblor_net::{
    Service, StopSignal,
    backoff::Backoff,
    inbox::{self, Closed, Drain, Inbox, Outbox, Received},
    retry,
    tokio::{self, sync::mpsc},
};
use temblor_shim::{
    ErrorKind, Notify, Object, PluginError, Pull, RVec, Setup, Source, SourceBatch, Value,
    serde::Deserialize,
    sink::{self, Batch, BatchSink},
    tracing,
};

/// The most messages one `pull` takes (from JetStream: at most `batch`).
const PULL_ITEMS: usize = 1024;

/// How long a stopping instance's tasks get to finish.
const GRACE: Duration = Duration::from_secs(2);

/// How long a JetStream pull request stays open at the server. Short, because a request can
/// be lost without a word (sent while a new consumer's interest is still spreading through a
/// cluster, or held by a consumer leader that died): the source sends a new one once this
/// (and a second more) passed without its end, so a lost request idles an instance ~2 s.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// Pull requests in a row that no consumer answered (503, "consumer deleted", or nothing by
/// their deadline), after which the source creates the consumer again.
const UNANSWERED_LIMIT: u32 = 4;

/// The largest `batch`.
pub const MAX_BATCH: usize = 10_000;

/// Where and how to connect: the keys the source and the sink share (flattened into both).
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", default)]
pub struct Connection {
    pub servers: Vec<String>,
    pub name: Option<String>,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub timeout_ms: u64,
}

impl Default for Connection {
    fn default() -> Self {
        Self {
            servers: vec!["127.0.0.1:4222".to_owned()],
            name: None,
            backoff_ms: retry::default_backoff_ms(),
            max_backoff_ms: retry::default_max_backoff_ms(),
            timeout_ms: retry::default_timeout_ms(),
        }
    }
}

/// The source's `config`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", default, deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(flatten)]
    pub connection: Connection,
    pub subject: Option<String>,
    pub queue: Option<String>,
    pub stream: Option<String>,
    pub consumer: Option<String>,
    pub batch: usize,
    pub max_ack_pending: u64,
    pub ack_wait_ms: u64,
    pub nak_delay_ms: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            connection: Connection::default(),
            subject: None,
            queue: None,
            stream: None,
            consumer: None,
            batch: 256,
            max_ack_pending: 1024,
            ack_wait_ms: 30_000,
            nak_delay_ms: 1000,
        }
    }
}

/// The sink's `config`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", default, deny_unknown_fields)]
pub struct Config {
    #[serde(flatten)]
    pub connection: Connection,
    pub subject: Option<String>,
    pub jetstream: bool,
    pub max_retries: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            connection: Connection::default(),
            subject: None,
            jetstream: false,
            max_retries: retry::default_max_retries(),
        }
    }
}

/// Where and how to connect: shared by the sink and the source.
#[derive(Debug, Clone)]
struct Target {
    id: String,
    name: String,
    servers: Vec<String>,
    backoff: Backoff,
    timeout: Duration,
}

impl Target {
    fn new(id: &str, c: &Connection) -> Result<Self, PluginError> {
        retry::check(c.backoff_ms, c.max_backoff_ms, c.timeout_ms)?;
        if c.servers.is_empty() {
            return Err(PluginError::config("`servers` is empty"));
        }
        let mut list = Vec::with_capacity(c.servers.len());
        for server in &c.servers {
            let (_, host_port) = temblor_net::addr::split_scheme(server, &["nats://"]);
            temblor_net::addr::resolve("servers", host_port)?;
            list.push(host_port.to_owned());
        }
        Ok(Self {
            id: id.to_owned(),
            name: c.name.as_deref().unwrap_or(id).to_owned(),
            servers: list,
            backoff: Backoff::from_ms(c.backoff_ms, c.max_backoff_ms),
            timeout: Duration::from_millis(c.timeout_ms),
        })
    }

    /// Connects to the server `at` (an index into `servers`, taken modulo) and does the
    /// handshake.
    async fn open(&self, at: usize) -> Result<Link, String> {
        let server = &self.servers[at % self.servers.len()];
        match tokio::time::timeout(self.timeout, Link::open(server, &self.name)).await {
            Ok(done) => done,
            Err(_) => Err(format!(
                "connecting to {server} took longer than {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Source

/// What the engine's thread asks of the source's task.
#[derive(Debug)]
enum Cmd {
    /// Protocol bytes to send (acks, NAKs): kept across reconnections until written.
    Acks(Vec<u8>),
    /// `pull` took this many messages.
    Pulled(usize),
}

/// Batches handed to the engine and waiting for their outcome: their ack subjects.
#[derive(Debug, Default)]
struct Pending {
    batches: HashMap<u64, (Vec<String>, Instant)>,
}

impl Pending {
    /// The ack subjects of the batch `token`, which is no longer pending.
    fn take(pending: &Mutex<Self>, token: u64) -> Option<Vec<String>> {
        let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.batches.remove(&token).map(|(replies, _)| replies)
    }
}

/// The JetStream side of the source's config, checked.
#[derive(Debug, Clone)]
struct Js {
    stream: String,
    consumer: String,
    filter: Option<String>,
    batch: usize,
    max_ack_pending: u64,
    ack_wait: Duration,
}

impl SourceConfig {
    /// The JetStream settings (none for core NATS), checked with the rest of the source's keys.
    fn jetstream(&self) -> Result<Option<Js>, PluginError> {
        if let Some(s) = &self.subject
            && !proto::valid_subject(s, true)
        {
            return Err(PluginError::config(format_args!(
                "`subject` {s:?} is not a NATS subject"
            )));
        }
        match (&self.stream, &self.consumer) {
            (Some(stream), Some(consumer)) => {
                for (field, name) in [("stream", stream), ("consumer", consumer)] {
                    if !proto::valid_name(name) {
                        return Err(PluginError::config(format_args!(
                            "`{field}` {name:?} is not a valid name (no spaces, '.', '*', '>')"
                        )));
                    }
                }
                if self.queue.is_some() {
                    return Err(PluginError::config(
                        "`queue` is for core NATS: instances of a JetStream consumer share it without one",
                    ));
                }
                if !(1..=MAX_BATCH).contains(&self.batch) {
                    return Err(PluginError::config(format_args!(
                        "`batch` must be between 1 and {MAX_BATCH}, found {}",
                        self.batch
                    )));
                }
                if self.max_ack_pending == 0 {
                    return Err(PluginError::config("`max_ack_pending` must be at least 1"));
                }
                if self.ack_wait_ms < 100 {
                    return Err(PluginError::config(format_args!(
                        "`ack_wait_ms` must be at least 100, found {}",
                        self.ack_wait_ms
                    )));
                }
                Ok(Some(Js {
                    stream: stream.clone(),
                    consumer: consumer.clone(),
                    filter: self.subject.clone(),
                    batch: self.batch,
                    max_ack_pending: self.max_ack_pending,
                    ack_wait: Duration::from_millis(self.ack_wait_ms),
                }))
            }
            (Some(_), None) => Err(PluginError::config("`stream` needs `consumer`")),
            (None, Some(_)) => Err(PluginError::config("`consumer` needs `stream`")),
            (None, None) => {
                if self.subject.is_none() {
                    return Err(PluginError::config(
                        "`subject` is required (or `stream` and `consumer`)",
                    ));
                }
                if let Some(q) = &self.queue
                    && !proto::valid_name(q)
                {
                    return Err(PluginError::config(format_args!(
                        "`queue` {q:?} is not a valid name"
                    )));
                }
                Ok(None)
            }
        }
    }
}

/// The `nats` source.
pub struct NatsSource {
    inbox: Inbox<Msg>,
    cmds: mpsc::UnboundedSender<Cmd>,
    pending: Arc<Mutex<Pending>>,
    jetstream: bool,
    /// The most messages one `pull` takes: [`PULL_ITEMS`], or `batch` from JetStream, so that
    /// `max_ack_pending` spans several engine batches whose acks come back one by one (one
    /// batch of them all would stop delivery until the engine acked it: stop and wait).
    pull_items: usize,
    nak: Vec<u8>,
    next_stream: u64,
    messages: u64,
    service: Service,
}

impl NatsSource {
    /// Checks the config and starts connecting.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let c: SourceConfig = setup.config()?;
        let target = Target::new(setup.id, &c.connection)?;
        let js = c.jetstream()?;
        let capacity = js.as_ref().map_or(1024, |j| 2 * j.batch + 64);
        let handle = temblor_net::runtime::handle()?;
        let (outbox, inbox) = inbox::channel(capacity, handle.clone());
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let mut service = Service::new(handle, GRACE);
        let task = SourceTask {
            target,
            subject: c.subject.clone(),
            queue: c.queue.clone(),
            jetstream: js.clone(),
            outbox,
            cmds: cmd_rx,
            pending: Arc::clone(&pending),
            stop: service.signal(),
            acks: Vec::new(),
            backlog: VecDeque::new(),
            queued: 0,
            inbox: format!("_INBOX.{}", proto::nuid()),
            bound: false,
            unanswered: 0,
        };
        service.spawn(task.run());
        let nak = format!(
            "-NAK {{\"delay\":{}}}",
            u128::from(c.nak_delay_ms) * 1_000_000
        )
        .into_bytes();
        Ok(Self {
            inbox,
            cmds,
            pending,
            jetstream: js.is_some(),
            pull_items: js.as_ref().map_or(PULL_ITEMS, |j| j.batch.min(PULL_ITEMS)),
            nak,
            next_stream: 0,
            messages: 0,
            service,
        })
    }

    fn meta(msg: &Msg) -> Value {
        let mut meta = Object::with_capacity(4);
        meta.insert("subject", Value::from(msg.subject.as_str()));
        if let Some(info) = msg.reply.as_deref().and_then(proto::ack_info) {
            meta.insert("stream_seq", Value::from(info.stream_seq));
            meta.insert("delivered", Value::from(info.delivered));
        }
        let mut headers = Object::with_capacity(msg.headers.len());
        for (k, v) in &msg.headers {
            let merged = match headers.get(k.as_str()) {
                None => Value::from(v.as_str()),
                Some(Value::Array(values)) => {
                    let mut values = values.clone();
                    values.push(Value::from(v.as_str()));
                    Value::Array(values)
                }
                Some(first) => {
                    Value::Array(RVec::from(vec![first.clone(), Value::from(v.as_str())]))
                }
            };
            headers.insert(k.as_str(), merged);
        }
        meta.insert("headers", Value::Object(headers));
        Value::Object(meta)
    }

    /// Protocol bytes that answer every subject of `replies` with `body`.
    fn answer(replies: &[String], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(replies.len() * (body.len() + 64));
        for r in replies {
            proto::publish(&mut out, r, None, &[], body);
        }
        out
    }
}

impl Source for NatsSource {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        let mut replies = Vec::new();
        // Waits (up to 100 ms) only for the first item, and only for a host that gave no
        // wake-up.
        let mut drain = Drain::new(self.pull_items, Duration::from_millis(100));
        while let Some(msg) = drain.next(&mut self.inbox).map_err(|Closed| {
            PluginError::new(
                ErrorKind::Other,
                "the nats client task stopped unexpectedly",
            )
        })? {
            self.next_stream += 1;
            let stream = self.next_stream;
            out.start_stream(stream, Self::meta(&msg));
            out.push_stream(stream, &msg.payload);
            out.end_stream(stream);
            if self.jetstream
                && let Some(reply) = msg.reply
            {
                replies.push(reply);
            }
            if out.byte_len() > 1024 * 1024 {
                break;
            }
        }
        let taken = drain.taken();
        if taken == 0 {
            return Ok(Pull::Idle);
        }
        self.messages += taken as u64;
        if !replies.is_empty() {
            let token = out.token();
            if token == 0 {
                // The engine tracks nothing for us: ack now (at most once).
                let _ = self.cmds.send(Cmd::Acks(Self::answer(&replies, b"+ACK")));
            } else {
                // One token per batch; a host that pulls twice with one token gets both acked.
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .batches
                    .entry(token)
                    .or_insert_with(|| (Vec::new(), Instant::now()))
                    .0
                    .extend(replies);
            }
        }
        let _ = self.cmds.send(Cmd::Pulled(taken));
        Ok(Pull::Ready)
    }

    fn wants_acks(&self) -> bool {
        self.jetstream
    }

    fn ack(&mut self, token: u64) -> Result<(), PluginError> {
        if let Some(replies) = Pending::take(&self.pending, token) {
            let _ = self.cmds.send(Cmd::Acks(Self::answer(&replies, b"+ACK")));
        }
        Ok(())
    }

    fn fail(&mut self, token: u64, reason: &str) -> Result<(), PluginError> {
        if let Some(replies) = Pending::take(&self.pending, token) {
            tracing::warn!(
                messages = replies.len(),
                reason,
                "batch failed; NAKing its messages for redelivery"
            );
            let _ = self.cmds.send(Cmd::Acks(Self::answer(&replies, &self.nak)));
        }
        Ok(())
    }

    fn set_notify(&mut self, notify: Notify) -> bool {
        self.inbox.set_notify(notify)
    }
}

impl Drop for NatsSource {
    fn drop(&mut self) {
        // What was received but never handed over goes back to the server at once.
        let mut left = Vec::new();
        while let Received::Item(msg) = self.inbox.try_recv() {
            if let Some(reply) = msg.reply.filter(|_| self.jetstream) {
                left.push(reply);
            }
        }
        if !left.is_empty() {
            let _ = self.cmds.send(Cmd::Acks(Self::answer(&left, b"-NAK")));
        }
        self.service.stop();
        tracing::debug!(
            messages = self.messages,
            returned = left.len(),
            "nats source closed"
        );
    }
}

/// The source's network task: connects, subscribes or pulls, hands messages over, writes
/// acks, for ever (reconnecting) until the source stops.
struct SourceTask {
    target: Target,
    subject: Option<String>,
    queue: Option<String>,
    jetstream: Option<Js>,
    outbox: Outbox<Msg>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    pending: Arc<Mutex<Pending>>,
    stop: StopSignal,
    /// Ack bytes not written yet.
    acks: Vec<u8>,
    /// Messages the inbox had no room for.
    backlog: VecDeque<Msg>,
    /// Messages handed over that `pull` has not taken yet.
    queued: usize,
    inbox: String,
    /// The consumer was created or bound on an earlier connection: a new connection pulls at
    /// once, without asking the cluster's meta leader again (which may be the node that died).
    bound: bool,
    /// Pull requests in a row that no consumer answered: 503 (no responders), 409 (consumer
    /// deleted), or nothing at all by their deadline (a standalone server drops requests for
    /// a consumer it does not have). After [`UNANSWERED_LIMIT`] the source creates it again.
    unanswered: u32,
}

/// Why a connection's loop ended.
enum End {
    Stopped,
    Lost(String),
}

impl SourceTask {
    async fn run(mut self) {
        let mut backoff = self.target.backoff;
        let mut at = 0;
        loop {
            let opened = tokio::select! {
                opened = self.target.open(at) => opened,
                () = self.stop.stopped() => return,
            };
            let since = Instant::now();
            let why = match opened {
                Ok(mut link) => {
                    tracing::info!(connector = %self.target.id, server = %link.server, "connected to the nats server");
                    match self.serve(&mut link).await {
                        End::Stopped => {
                            let _ = self.write_acks(&mut link).await;
                            return;
                        }
                        End::Lost(why) => why,
                    }
                }
                Err(why) => why,
            };
            if since.elapsed() > backoff.max() {
                backoff.reset();
            }
            let wait = backoff.next_wait();
            tracing::warn!(connector = %self.target.id, error = %why, backoff_ms = wait.as_millis() as u64, "nats connection lost or refused; connecting again");
            at += 1;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.stop.stopped() => return,
            }
        }
    }

    /// Writes the acks gathered so far (and any the engine sent meanwhile).
    async fn write_acks(&mut self, link: &mut Link) -> Result<(), String> {
        while let Ok(cmd) = self.cmds.try_recv() {
            self.take(cmd);
        }
        if !self.acks.is_empty() {
            link.write(&self.acks).await?;
            self.acks.clear();
        }
        Ok(())
    }

    fn take(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Acks(bytes) => self.acks.extend_from_slice(&bytes),
            Cmd::Pulled(n) => {
                self.queued = self.queued.saturating_sub(n);
                let mut moved = false;
                while let Some(msg) = self.backlog.pop_front() {
                    match self.outbox.try_send_quiet(msg) {
                        Ok(()) => {
                            self.queued += 1;
                            moved = true;
                        }
                        Err(msg) => {
                            self.backlog.push_front(msg);
                            break;
                        }
                    }
                }
                if moved {
                    self.outbox.wake();
                }
            }
        }
    }

    /// Queues `msg` for `pull` without waking the engine: the caller wakes it once per read.
    fn hand_over(&mut self, msg: Msg) {
        if self.backlog.is_empty() {
            match self.outbox.try_send_quiet(msg) {
                Ok(()) => self.queued += 1,
                Err(msg) => self.backlog.push_back(msg),
            }
        } else {
            self.backlog.push_back(msg);
        }
    }

    /// Creates (or binds to) the durable consumer: a request on the API, its reply.
    async fn create_consumer(&self, link: &mut Link, js: &Js) -> Result<(), String> {
        let mut config = format!(
            "{{\"stream_name\":{},\"config\":{{\"durable_name\":{},\"deliver_policy\":\"all\",\"ack_policy\":\"explicit\",\"ack_wait\":{},\"max_ack_pending\":{}",
            proto::json_string(&js.stream),
            proto::json_string(&js.consumer),
            js.ack_wait.as_nanos(),
            js.max_ack_pending
        );
        if let Some(f) = &js.filter {
            config.push_str(&format!(",\"filter_subject\":{}", proto::json_string(f)));
        }
        config.push_str("}}");
        let mut out = Vec::new();
        let reply = format!("{}.api", self.inbox);
        proto::publish(
            &mut out,
            &format!(
                "$JS.API.CONSUMER.DURABLE.CREATE.{}.{}",
                js.stream, js.consumer
            ),
            Some(&reply),
            &[],
            config.as_bytes(),
        );
        link.write(&out).await?;
        let wait = async {
            loop {
                if let Op::Msg(m) = link.next_op().await?
                    && m.subject == reply
                {
                    return Ok::<Msg, String>(m);
                }
            }
        };
        let m = tokio::time::timeout(self.target.timeout, wait)
            .await
            .map_err(|_| format!("no answer from JetStream on {} in time", link.server))??;
        if m.status == Some(503) {
            return Err(format!("{}: JetStream is not enabled", link.server));
        }
        if let Some(e) = proto::api_error(&m.payload) {
            return Err(format!(
                "creating consumer '{}' on stream '{}': {e}",
                js.consumer, js.stream
            ));
        }
        tracing::info!(connector = %self.target.id, stream = %js.stream, consumer = %js.consumer, "bound to the JetStream consumer");
        Ok(())
    }

    /// One connection: subscribe (or create the consumer), then read, hand over, pull and
    /// ack until it breaks or the source stops.
    async fn serve(&mut self, link: &mut Link) -> End {
        let mut out = Vec::new();
        let js = self.jetstream.clone();
        if let Some(js) = &js {
            proto::sub(&mut out, &format!("{}.*", self.inbox), None, 1);
            if let Err(e) = link.write(&out).await {
                return End::Lost(e);
            }
            if !self.bound {
                if let Err(e) = self.create_consumer(link, js).await {
                    return End::Lost(e);
                }
                self.bound = true;
            }
        } else {
            let subject = self.subject.as_deref().unwrap_or(">");
            proto::sub(&mut out, subject, self.queue.as_deref(), 1);
            if let Err(e) = link.write(&out).await {
                return End::Lost(e);
            }
        }
        // Open pull requests, oldest first: (reply subject, messages still to come, when to
        // give up). Messages come with their own subject, not the request's: the server serves
        // requests in order, so each one counts against the oldest; a status (408 expired)
        // names its request.
        let mut requests: VecDeque<(String, usize, Instant)> = VecDeque::new();
        let mut request_no = 0_u64;
        let mut pause_until = Instant::now();
        let tick_every = js.as_ref().map_or(Duration::from_secs(1), |j| {
            (j.ack_wait / 3).max(Duration::from_millis(50))
        });
        let mut tick = tokio::time::interval(tick_every);
        let mut wake = tokio::time::interval(Duration::from_millis(100));
        loop {
            if let Err(e) = self.write_acks(link).await {
                return End::Lost(e);
            }
            if let Some(js) = &js {
                // Messages still to come do not count: a request goes out as soon as one is
                // served, so the server is never left waiting for the engine (counting them
                // held the source to half the raw client's rate, docs/performance.md).
                let now = Instant::now();
                if requests.len() < 2
                    && now >= pause_until
                    && self.queued + self.backlog.len() < 2 * js.batch
                {
                    request_no += 1;
                    let reply = format!("{}.p{request_no}", self.inbox);
                    let body = format!(
                        "{{\"batch\":{},\"expires\":{}}}",
                        js.batch,
                        PULL_EXPIRES.as_nanos()
                    );
                    out.clear();
                    proto::publish(
                        &mut out,
                        &format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", js.stream, js.consumer),
                        Some(&reply),
                        &[],
                        body.as_bytes(),
                    );
                    if let Err(e) = link.write(&out).await {
                        return End::Lost(e);
                    }
                    requests.push_back((
                        reply,
                        js.batch,
                        now + PULL_EXPIRES + Duration::from_secs(1),
                    ));
                }
            }
            let reading = self.backlog.is_empty();
            tokio::select! {
                () = self.stop.stopped() => return End::Stopped,
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.take(cmd),
                    None => return End::Stopped,
                },
                read = link.fill(), if reading => {
                    if let Err(e) = read {
                        return End::Lost(e);
                    }
                    let handed = self.queued + self.backlog.len();
                    let end = self.read_ops(link, js.as_ref(), &mut requests, &mut pause_until).await;
                    if self.queued + self.backlog.len() != handed {
                        self.outbox.wake();
                    }
                    if let Some(end) = end {
                        return end;
                    }
                },
                _ = tick.tick(), if js.is_some() => {
                    self.progress(tick_every);
                },
                _ = wake.tick() => {
                    let now = Instant::now();
                    let before = requests.len();
                    // A request past its deadline with nothing at all came back got lost.
                    requests.retain(|(_, _, deadline)| *deadline > now);
                    let lost = before - requests.len();
                    if lost > 0 && let Some(why) = self.unanswered(lost as u32) {
                        return End::Lost(format!("{}: {why} (no answer by their deadline)", link.server));
                    }
                    // The backlog waits for room in the inbox; look again now and then.
                    self.take(Cmd::Pulled(0));
                },
            }
        }
    }

    /// Handles every whole operation read so far: messages handed over (without waking the
    /// engine: the caller wakes it once), pull requests' ends; `Some` when the connection ends.
    async fn read_ops(
        &mut self,
        link: &mut Link,
        js: Option<&Js>,
        requests: &mut VecDeque<(String, usize, Instant)>,
        pause_until: &mut Instant,
    ) -> Option<End> {
        loop {
            let op = match link.parsed() {
                Ok(Some(op)) => op,
                Ok(None) => return None,
                Err(e) => return Some(End::Lost(e)),
            };
            match op {
                Op::Ping => {
                    if let Err(e) = link.write(b"PONG\r\n").await {
                        return Some(End::Lost(e));
                    }
                }
                Op::Err(e) => return Some(End::Lost(format!("{}: -ERR {e}", link.server))),
                Op::Msg(m) if js.is_some() => {
                    if let Some(status) = m.status {
                        if status == 100 {
                            continue;
                        }
                        if status == 503 || (status == 409 && m.description.contains("Deleted")) {
                            if let Some(why) = self.unanswered(1) {
                                return Some(End::Lost(format!(
                                    "{}: {why} ({status} {})",
                                    link.server, m.description
                                )));
                            }
                        } else {
                            self.unanswered = 0;
                        }
                        if status != 408 && status != 404 {
                            tracing::debug!(id = %self.target.id, status, description = %m.description, "pull request ended");
                            *pause_until = Instant::now() + Duration::from_millis(250);
                        }
                        requests.retain(|(reply, _, _)| *reply != m.subject);
                        continue;
                    }
                    if m.reply.is_none() {
                        continue;
                    }
                    self.unanswered = 0;
                    if let Some(front) = requests.front_mut() {
                        front.1 = front.1.saturating_sub(1);
                        if front.1 == 0 {
                            requests.pop_front();
                        }
                    }
                    self.hand_over(m);
                }
                Op::Msg(m) => self.hand_over(m),
                Op::Info | Op::Pong | Op::Ok => {}
            }
        }
    }

    /// Counts `n` more unanswered pull requests; past [`UNANSWERED_LIMIT`], forgets the
    /// binding (the next connection creates the consumer again) and says why.
    fn unanswered(&mut self, n: u32) -> Option<String> {
        self.unanswered += n;
        if self.unanswered < UNANSWERED_LIMIT {
            return None;
        }
        self.unanswered = 0;
        self.bound = false;
        let consumer = self.jetstream.as_ref().map_or("", |j| j.consumer.as_str());
        Some(format!(
            "{UNANSWERED_LIMIT} pull requests in a row found no consumer '{consumer}': creating it again"
        ))
    }

    /// `+WPI` for the messages of batches that have waited `every` or longer since the last.
    fn progress(&mut self, every: Duration) {
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut touched = 0;
        for (replies, since) in pending.batches.values_mut() {
            if now.duration_since(*since) >= every {
                for r in replies.iter() {
                    proto::publish(&mut self.acks, r, None, &[], b"+WPI");
                }
                touched += replies.len();
                *since = now;
            }
        }
        if touched > 0 {
            tracing::debug!(connector = %self.target.id, messages = touched, "in progress (+WPI) for messages waiting for their sinks");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sink

/// The `nats` sink.
pub struct NatsSink {
    target: Target,
    subject: Option<String>,
    jetstream: bool,
    max_retries: u32,
    link: Option<Link>,
    at: usize,
    inbox: String,
    batch_no: u64,
    messages: u64,
    service: Service,
}

impl NatsSink {
    /// Checks the config and tries to connect once (a server not up yet is no error).
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let c: Config = setup.config()?;
        let target = Target::new(setup.id, &c.connection)?;
        if let Some(s) = &c.subject
            && !proto::valid_subject(s, false)
        {
            return Err(PluginError::config(format_args!(
                "`subject` {s:?} is not a subject to publish to (no wildcards)"
            )));
        }
        let handle = temblor_net::runtime::handle()?;
        let mut sink = Self {
            target,
            subject: c.subject,
            jetstream: c.jetstream,
            max_retries: c.max_retries,
            link: None,
            at: 0,
            inbox: format!("_INBOX.{}", proto::nuid()),
            batch_no: 0,
            messages: 0,
            service: Service::new(handle, GRACE),
        };
        if let Err(e) = sink.connect() {
            tracing::warn!(error = %e, "nats server not reachable yet; the first batch tries again");
        }
        Ok(sink)
    }

    fn connect(&mut self) -> Result<(), String> {
        self.link = None;
        let target = self.target.clone();
        let at = self.at;
        self.at += 1;
        let sub = format!("SUB {}.> 1\r\n", self.inbox);
        let link = self.service.block_on(async move {
            let mut link = target.open(at).await?;
            link.write(sub.as_bytes()).await?;
            Ok::<Link, String>(link)
        })?;
        tracing::info!(server = %link.server, "connected to the nats server");
        self.link = Some(link);
        Ok(())
    }

    /// Sends the frames not `stored` yet and waits for the server: marks what it took.
    fn attempt(&mut self, batch: Batch<'_>, stored: &mut [bool]) -> Result<(), String> {
        let frames = batch.frames;
        if self.link.is_none() {
            self.connect()?;
        }
        self.batch_no += 1;
        let prefix = format!("{}.{}.", self.inbox, self.batch_no);
        let mut out = Vec::with_capacity(frames.byte_len() + frames.len() * 64);
        for (i, frame) in frames.iter().enumerate() {
            if stored[i] {
                continue;
            }
            let subject = batch.destination(i, self.subject.as_deref(), "subject")?;
            let mut headers = Vec::new();
            if let Some(Value::Object(h)) = batch.meta(i).get("headers") {
                for (k, v) in h.iter() {
                    match v {
                        Value::String(s) => headers.push((k.to_string(), s.to_string())),
                        Value::Array(values) => {
                            for v in values.iter() {
                                if let Value::String(s) = v {
                                    headers.push((k.to_string(), s.to_string()));
                                }
                            }
                        }
                        other => headers.push((k.to_string(), scalar(other))),
                    }
                }
            }
            let reply = self.jetstream.then(|| format!("{prefix}{i}"));
            proto::publish(&mut out, subject, reply.as_deref(), &headers, frame);
        }
        if !self.jetstream {
            out.extend_from_slice(b"PING\r\n");
        }
        let Some(mut link) = self.link.take() else {
            return Err("not connected".into());
        };
        let jetstream = self.jetstream;
        let timeout = self.target.timeout;
        let mut waiting: usize = stored.iter().filter(|s| !**s).count();
        let mut errors = Vec::new();
        let result = self.service.block_on(async {
            let work = async {
                link.write(&out).await?;
                if !jetstream {
                    loop {
                        match link.next_op().await? {
                            Op::Pong => {
                                stored.iter_mut().for_each(|s| *s = true);
                                return Ok(());
                            }
                            Op::Err(e) => return Err(format!("{}: -ERR {e}", link.server)),
                            _ => {}
                        }
                    }
                }
                while waiting > 0 {
                    match link.next_op().await? {
                        Op::Msg(m) => {
                            let Some(i) = m
                                .subject
                                .strip_prefix(prefix.as_str())
                                .and_then(|i| i.parse::<usize>().ok())
                                .filter(|i| *i < stored.len() && !stored[*i])
                            else {
                                continue;
                            };
                            waiting -= 1;
                            if m.status == Some(503) {
                                errors.push(format!(
                                    "no stream takes the subject of frame {i} (503 no responders)"
                                ));
                            } else if let Some(e) = proto::api_error(&m.payload) {
                                errors.push(format!("frame {i}: {e}"));
                            } else {
                                stored[i] = true;
                            }
                        }
                        Op::Err(e) => return Err(format!("{}: -ERR {e}", link.server)),
                        _ => {}
                    }
                }
                Ok(())
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(done) => done,
                Err(_) => Err(format!(
                    "no answer from {} within {} ms ({waiting} PubAcks missing)",
                    link.server,
                    timeout.as_millis()
                )),
            }
        });
        match result {
            Ok(()) => {
                self.link = Some(link);
                if let Some(first) = errors.first() {
                    return Err(format!(
                        "{} of the batch's messages refused: {first}",
                        errors.len()
                    ));
                }
                Ok(())
            }
            // The connection is dropped: the next attempt connects again.
            Err(e) => Err(e),
        }
    }
}

/// A header value from a non-string meta value.
fn scalar(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        _ => String::new(),
    }
}

impl BatchSink for NatsSink {
    fn write(&mut self, batch: Batch<'_>, delivered: &mut RVec<u32>) -> Result<(), PluginError> {
        let frames = batch.frames;
        let mut stored = vec![false; frames.len()];
        let mut backoff = self.target.backoff;
        let mut retry = 0;
        loop {
            let e = match self.attempt(batch, &mut stored) {
                Ok(()) => {
                    self.messages += frames.len() as u64;
                    return Ok(());
                }
                Err(e) => e,
            };
            if retry == self.max_retries {
                let sent = stored.iter().filter(|s| **s).count();
                tracing::error!(attempts = retry + 1, stored = sent, frames = frames.len(), error = %e, "giving up on a batch");
                sink::written(&stored, delivered);
                return Err(PluginError::new(
                    ErrorKind::Io,
                    format_args!(
                        "cannot publish to nats after {} attempts ({sent} of {} stored): {e}",
                        retry + 1,
                        frames.len()
                    ),
                ));
            }
            retry += 1;
            let wait = backoff.next_wait();
            tracing::warn!(retry, backoff_ms = wait.as_millis() as u64, error = %e, "publishing to nats failed; trying again");
            self.link = None;
            thread::sleep(wait);
        }
    }
}

temblor_shim::batch_sink!(NatsSink);

impl Drop for NatsSink {
    fn drop(&mut self) {
        self.link = None;
        self.service.stop();
        tracing::debug!(messages = self.messages, "nats sink closed");
    }
}

temblor_shim::export_plugin! {
    name: "nats",
    kind: Connector,
    source: NatsSource::new,
    sink: NatsSink::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::config;

    /// The error `new` (a source's or a sink's) refuses the config `fields` with.
    fn refused<T>(
        new: fn(&Setup<'_>) -> Result<T, PluginError>,
        fields: &[(&str, Value)],
    ) -> PluginError {
        let cfg = config(fields);
        new(&Setup {
            id: "bad",
            config: &cfg,
        })
        .err()
        .expect("refused")
    }

    #[test]
    fn defaults() {
        let c: SourceConfig =
            temblor_shim::from_value(&config(&[("subject", Value::from("a"))])).expect("c");
        assert_eq!(c.connection.servers, ["127.0.0.1:4222"]);
        assert_eq!(
            (
                c.batch,
                c.max_ack_pending,
                c.ack_wait_ms,
                c.nak_delay_ms,
                c.connection.backoff_ms,
                c.connection.max_backoff_ms,
                c.connection.timeout_ms
            ),
            (256, 1024, 30_000, 1000, 100, 5000, 5000)
        );
        let s: Config = temblor_shim::from_value(&config(&[])).expect("c");
        assert!(!s.jetstream && s.subject.is_none());
        assert_eq!(s.max_retries, 10);
    }

    #[test]
    fn bad_source_configs_are_config_errors() {
        let s = |v: &str| Value::from(v);
        for (fields, needle) in [
            (vec![], "`subject` is required"),
            (vec![("subject", s("a b"))], "not a NATS subject"),
            (vec![("stream", s("S"))], "needs `consumer`"),
            (vec![("consumer", s("C"))], "needs `stream`"),
            (
                vec![("stream", s("S.x")), ("consumer", s("C"))],
                "`stream` \"S.x\"",
            ),
            (
                vec![("stream", s("S")), ("consumer", s("C")), ("queue", s("q"))],
                "`queue` is for core NATS",
            ),
            (
                vec![
                    ("stream", s("S")),
                    ("consumer", s("C")),
                    ("batch", Value::from(0_u64)),
                ],
                "`batch`",
            ),
            (
                vec![
                    ("stream", s("S")),
                    ("consumer", s("C")),
                    ("ack_wait_ms", Value::from(5_u64)),
                ],
                "`ack_wait_ms`",
            ),
            (
                vec![("subject", s("a")), ("servers", Value::Array(RVec::new()))],
                "`servers` is empty",
            ),
            (
                vec![("subject", s("a")), ("backoff_ms", Value::from(0_u64))],
                "backoff_ms",
            ),
            (
                vec![("subject", s("a")), ("jetstream", Value::from(true))],
                "unknown field `jetstream`",
            ),
        ] {
            let err = refused(NatsSource::new, &fields);
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
        let err = refused(NatsSink::new, &[("subject", Value::from("a.*"))]);
        assert!(err.message.contains("no wildcards"), "{err}");
    }

    #[test]
    fn meta_has_subject_sequence_delivery_count_and_headers() {
        let msg = Msg {
            subject: "orders.new".into(),
            reply: Some("$JS.ACK.S.C.2.41.40.1700000000000000000.0".into()),
            headers: vec![
                ("Nats-Msg-Id".into(), "x1".into()),
                ("K".into(), "a".into()),
                ("K".into(), "b".into()),
            ],
            ..Msg::default()
        };
        let meta = NatsSource::meta(&msg);
        assert_eq!(meta.get("subject"), Some(&Value::from("orders.new")));
        assert_eq!(meta.get("stream_seq"), Some(&Value::from(41_u64)));
        assert_eq!(meta.get("delivered"), Some(&Value::from(2_u64)));
        let headers = meta.get("headers").expect("headers");
        assert_eq!(headers.get("Nats-Msg-Id"), Some(&Value::from("x1")));
        assert_eq!(
            headers.get("K"),
            Some(&Value::Array(RVec::from(vec![
                Value::from("a"),
                Value::from("b")
            ])))
        );
    }
}
