//! The `ws_server` connector: a WebSocket server. As a source, each client connection is a
//! stream of its own and each message a frame; as a sink, it sends frames back to the clients
//! of a `ws_server` source (the one each event came from, or all of them).
//!
//! **Source.** The constructor binds `url`, so a port in use is reported when the engine
//! starts. Clients connect with a WebSocket handshake (any request path: it is in
//! `meta.path`); up to `max_connections` at once, one more gets `503 Service Unavailable`
//! (over TLS it is closed at once) and a warning in the log. A request that is not a WebSocket upgrade gets `400 Bad Request`.
//! Each accepted client is a stream (see `docs/delivery.md`): `start_stream` with its metadata
//! once its handshake is done, then one frame per message it sends (text and binary alike:
//! the message's payload as it is; an empty message is an empty frame), and `end_stream` when
//! it closes, breaks, or sends something invalid. So a connector without preprocessors gets
//! one event per message, and each client's events come in the order it sent them. A message
//! larger than `max_message` closes its connection with close code 1009 (the frames before it
//! are kept). Pings are answered with pongs (and the pong is written out at once); a close
//! from the client is answered and ends its stream.
//!
//! Network tasks run on the plugin's tokio runtime and hand what they read to `pull` through
//! a bounded queue that wakes the engine: `pull` never waits when the engine takes its wake-up
//! (it returns `Idle` at once when nothing is there), and waits at most 100 ms otherwise. When
//! the engine is slower than the clients the queue fills, the tasks stop reading, and TCP
//! slows the clients down. The source never ends by itself. When it is dropped (a stop, a
//! restart, a reload), every client gets close code 1001 and every socket is closed before the
//! drop returns.
//!
//! **Sink.** A `ws_server` sink has no socket of its own: it writes to the clients connected
//! to the `ws_server` *source* named by `server` (same deployment, same plugin library). Which
//! client gets a frame:
//! - `broadcast = false` (default): the client the event came from, found by the event's
//!   `meta.connector` (must be `server`) and `meta.stream` (its connection). That is a reply:
//!   a pipeline that keeps the metadata answers each client on its own connection. A frame
//!   whose event has no such metadata, or whose client has gone, is dropped and counted.
//! - `broadcast = true`: every client connected at the time, whatever the metadata.
//!
//! A frame is sent as a binary message when its event's `meta.binary` is `true` (a reply to a
//! binary message is binary), when `text = false`, or when it is not UTF-8; as a text message
//! otherwise. Each client has a queue of 1024 messages; a client that does not keep up loses
//! what does not fit (counted, logged at `debug`). The sink never blocks and never fails:
//! delivery to WebSocket clients is at most once.
//!
//! ## Config
//! Source:
//! - `url` (string, default `"127.0.0.1:8080"`): the `host:port` to listen on, optionally with
//!   `ws://` (or, with `tls`, `wss://`) before it. Port 0 picks a free port (the log says
//!   which). `"0.0.0.0:8080"` listens on every interface.
//! - `max_connections` (integer, default 64, at least 1): clients served at once.
//! - `max_message` (integer, default 1048576, 1 to 268435456): the largest message (and
//!   WebSocket frame) accepted, in bytes.
//! - `tls` (table, optional): `{ cert = "server.pem", key = "server.key" }`, PEM files of the
//!   certificate chain and its private key: the server speaks `wss://`. Files are read at
//!   start-up; a missing file or a key that does not fit is a config error.
//!
//! Sink:
//! - `server` (string, required): the id of the `ws_server` source whose clients get the
//!   frames.
//! - `broadcast` (bool, default false): every frame to every client, instead of to the client
//!   its event came from.
//! - `text` (bool, default true): send UTF-8 frames as text messages (see above); `false`
//!   sends every frame as binary.
//!
//! ## Metadata
//! Every event from a connection has:
//! - `meta.peer` (string): the client's address, `"ip:port"`;
//! - `meta.path` (string): the request target of its handshake, e.g. `"/chat?room=1"`;
//! - `meta.binary` (bool): whether the message was a binary message (text: `false`). The
//!   stream's metadata is per stream, so when a client switches between text and binary
//!   messages its stream is started again (same id) with the new value, which also ends what
//!   its preprocessors held (a message boundary);
//! - `meta.connector` and `meta.stream` (the connection: the same for all of one client's
//!   events), set by the engine.
//!
//! ## Example
//! An echo server that answers each client with its own messages, as JSON:
//! ```toml
//! [[connector]]
//! id = "ws"
//! plugin = "ws_server"
//! codec = "json"
//! config = { url = "127.0.0.1:8080", max_connections = 16, max_message = 65536 }
//!
//! [[connector]]
//! id = "reply"
//! plugin = "ws_server"
//! codec = "json"
//! config = { server = "ws" }
//!
//! [[pipeline]]
//! id = "main"
//! operators = [{ set = { "event.from" = 'meta.peer' } }]
//!
//! [[connect]]
//! from = "ws"
//! to = "main"
//!
//! [[connect]]
//! from = "main"
//! to = "reply"
//! ```

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, Weak, atomic::Ordering},
    time::Duration,
};

use temblor_net::{
    StopSignal,
    acceptor::{self, Counts, Listener, Options, Refuse},
    addr, check,
    conn::Conn,
    feed::{Fed, Feed, HandOver, Intake},
    tls::ServerTls,
    tokio::{self, sync::mpsc},
};
use temblor_shim::{
    Object, PluginError, RVec, Setup, SourceBatch, Value, meta_of,
    serde::Deserialize,
    sink::{Batch, BatchSink},
    tracing,
};
use tokio_tungstenite::tungstenite::{Bytes, Message, protocol::frame::coding::CloseCode};

#[allow(dead_code)] // shared with ws_client, which uses other parts of it
mod wsio;

use wsio::Event;

/// How the source takes in what the connection tasks read: 256 messages (stream starts,
/// messages, ends) queued ahead of `pull`, at most 1024 of them or about 1 MiB per pull, a
/// 100 ms wait for input when the engine gave no wake-up, 2 s for open connections to close
/// when the source stops.
const INTAKE: Intake = Intake::new("ws acceptor", 256, GRACE);

/// Replies a connection's task gathers into one write.
const WRITE_BYTES: usize = 1024 * 1024;

/// Messages queued for one client by the sink.
pub const CLIENT_QUEUE: usize = 1024;

/// How long a write to a client may take before the connection counts as broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to close when the source stops.
const GRACE: Duration = Duration::from_secs(2);

/// The largest `max_message` accepted.
pub const MAX_MESSAGE_LIMIT: usize = 256 * 1024 * 1024;

/// What a client over `max_connections` gets.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// The source's `config`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to listen on (`ws://` or `wss://` before it allowed).
    #[serde(default = "default_url")]
    pub url: String,
    /// Clients served at once.
    #[serde(default = "acceptor::default_max_connections")]
    pub max_connections: usize,
    /// The largest message accepted, in bytes.
    #[serde(default = "default_max_message")]
    pub max_message: usize,
    /// TLS: the certificate chain and key.
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

/// The sink's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct SinkConfig {
    /// The id of the `ws_server` source whose clients get the frames.
    pub server: String,
    /// Every frame to every client.
    #[serde(default)]
    pub broadcast: bool,
    /// UTF-8 frames as text messages.
    #[serde(default = "default_text")]
    pub text: bool,
}

fn default_url() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_max_message() -> usize {
    1024 * 1024
}

fn default_text() -> bool {
    true
}

impl Config {
    /// Checks the values serde cannot; returns the addresses to listen on.
    fn validate(&self) -> Result<Vec<SocketAddr>, PluginError> {
        check::at_least_one("max_connections", self.max_connections)?;
        check::in_range("max_message", self.max_message, MAX_MESSAGE_LIMIT)?;
        let (scheme, host_port) = addr::split_scheme(&self.url, &["ws://", "wss://"]);
        if scheme == "wss://" && self.tls.is_none() {
            return Err(PluginError::config(format_args!(
                "`url` {:?} says wss:// but there is no `tls` table (cert and key)",
                self.url
            )));
        }
        if scheme == "ws://" && self.tls.is_some() {
            return Err(PluginError::config(format_args!(
                "`url` {:?} says ws:// but `tls` is given: use wss://",
                self.url
            )));
        }
        addr::resolve("url", host_port)
    }
}

/// What the network tasks tell `pull`, in the order of each connection.
#[derive(Debug)]
enum Msg {
    /// A client finished its handshake.
    Start {
        stream: u64,
        peer: String,
        path: String,
    },
    /// A message from it.
    Data {
        stream: u64,
        bytes: Bytes,
        binary: bool,
    },
    /// It closed, broke, or was closed for a violation.
    End { stream: u64 },
}

/// The clients of one source, for sinks that write to them: each connection's queue.
#[derive(Debug, Default)]
struct Hub {
    clients: Mutex<HashMap<u64, mpsc::Sender<Message>>>,
}

impl Hub {
    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Message>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The hubs of the sources of this library copy, by connector id.
static HUBS: Mutex<Vec<(String, Weak<Hub>)>> = Mutex::new(Vec::new());

/// Makes `hub` the one of source `id` (replacing an older instance's).
fn register(id: &str, hub: &Arc<Hub>) {
    let mut hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.retain(|(name, h)| name != id && h.strong_count() > 0);
    hubs.push((id.to_owned(), Arc::downgrade(hub)));
}

/// The hub of the running source `id`.
fn hub_of(id: &str) -> Option<Arc<Hub>> {
    let hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.iter()
        .filter(|(name, _)| name == id)
        .find_map(|(_, h)| h.upgrade())
}

/// A stream's own metadata: `{peer, path, binary}`.
fn stream_meta(peer: &str, path: &str, binary: bool) -> Value {
    let mut meta = Object::with_capacity(3);
    meta.insert("peer", Value::from(peer));
    meta.insert("path", Value::from(path));
    meta.insert("binary", Value::from(binary));
    Value::Object(meta)
}

/// What `pull` keeps of an open stream: enough to start it again when the kind of its
/// messages changes.
#[derive(Debug)]
struct Open {
    peer: String,
    path: String,
    binary: bool,
}

/// What the connection tasks share, beside the feed.
struct Shared {
    id: String,
    hub: Arc<Hub>,
    ws_config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
}

/// What `pull` keeps of the streams: the open ones, and counts for the log.
#[derive(Debug, Default)]
struct Streams {
    open: HashMap<u64, Open>,
    messages: u64,
    bytes: u64,
}

impl HandOver<Msg> for Streams {
    fn hand_over(&mut self, msg: Msg, out: &mut SourceBatch) {
        match msg {
            Msg::Start { stream, peer, path } => {
                out.start_stream(stream, stream_meta(&peer, &path, false));
                self.open.insert(
                    stream,
                    Open {
                        peer,
                        path,
                        binary: false,
                    },
                );
            }
            Msg::Data {
                stream,
                bytes,
                binary,
            } => {
                if let Some(open) = self.open.get_mut(&stream)
                    && open.binary != binary
                {
                    open.binary = binary;
                    out.start_stream(stream, stream_meta(&open.peer, &open.path, binary));
                }
                self.messages += 1;
                self.bytes += bytes.len() as u64;
                out.push_stream(stream, &bytes);
            }
            Msg::End { stream } => {
                self.open.remove(&stream);
                out.end_stream(stream);
            }
        }
    }
}

/// The `ws_server` source.
pub struct WsServer {
    local: SocketAddr,
    streams: Streams,
    counts: Arc<Counts>,
    /// Kept for the sinks: registered under `id`.
    _hub: Arc<Hub>,
    /// Last: dropping it stops and joins the tasks.
    fed: Fed<Msg>,
}

impl WsServer {
    /// Binds the configured address and starts accepting clients.
    ///
    /// # Errors
    /// A `Config` error for a bad config (TLS files included); an `Io` error when the address
    /// cannot be bound or the runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        let addrs = config.validate()?;
        let tls = match &config.tls {
            Some(tls) => Some(tls.acceptor(&[b"http/1.1"])?),
            None => None,
        };
        let std_listener = addr::bind_tcp(&addrs)?;
        let local = std_listener
            .local_addr()
            .map_err(|e| PluginError::io(format_args!("listening socket"), &e))?;
        let listener =
            temblor_net::runtime::register("listening socket", || Listener::tcp(std_listener))?;
        let hub = Arc::new(Hub::default());
        register(id, &hub);
        let shared = Arc::new(Shared {
            id: id.to_owned(),
            hub: Arc::clone(&hub),
            ws_config: wsio::config(config.max_message),
        });
        let options = Options {
            id: id.to_owned(),
            max_connections: config.max_connections,
            refuse: Refuse::Reply(BUSY),
            tls: tls.clone(),
            grace: GRACE,
        };
        let (mut fed, feed) = Fed::new(INTAKE)?;
        let counts = fed.accept(listener, options, feed, move |conn, peer, stop, feed| {
            serve_client(conn, peer, stop, feed, Arc::clone(&shared))
        });
        tracing::info!(
            addr = %local,
            tls = tls.is_some(),
            max_connections = config.max_connections,
            "ws server listening"
        );
        Ok(Self {
            local,
            streams: Streams::default(),
            counts,
            _hub: hub,
            fed,
        })
    }

    /// The address the server listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

temblor_net::fed_source!(WsServer);

impl Drop for WsServer {
    fn drop(&mut self) {
        self.fed.service().stop();
        tracing::info!(
            addr = %self.local,
            accepted = self.counts.accepted.load(Ordering::Relaxed),
            refused = self.counts.refused.load(Ordering::Relaxed),
            messages = self.streams.messages,
            bytes = self.streams.bytes,
            "ws server closed"
        );
    }
}

/// One client: the handshake, then its messages until it closes or the source stops; replies
/// from sinks are written to it meanwhile.
async fn serve_client(
    conn: Conn,
    peer: String,
    mut stop: StopSignal,
    feed: Arc<Feed<Msg>>,
    shared: Arc<Shared>,
) {
    let id = &shared.id;
    let (mut ws, path) = match wsio::accept(conn, shared.ws_config, WRITE_TIMEOUT).await {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::debug!(connector = %id, peer = %peer, error = %e, "WebSocket handshake failed");
            return;
        }
    };
    let stream = feed.next_stream();
    tracing::debug!(connector = %id, peer = %peer, path = %path, stream, "ws client connected");
    let start = Msg::Start {
        stream,
        peer: peer.clone(),
        path,
    };
    if !feed.send(start, &mut stop).await {
        // Stopped right after the handshake: the client still gets its close code.
        ws.close(CloseCode::Away, "server stopping").await;
        return;
    }
    let (tx, mut replies) = mpsc::channel(CLIENT_QUEUE);
    shared.hub.clients().insert(stream, tx);
    // Why it ended (`None`: the source stopped, and the stream needs no end).
    let why: Option<String> = loop {
        match ws.next() {
            Event::Data(m) => {
                let binary = m.is_binary();
                let bytes = m.into_data();
                let data = Msg::Data {
                    stream,
                    bytes,
                    binary,
                };
                if !feed.send(data, &mut stop).await {
                    ws.close(CloseCode::Away, "server stopping").await;
                    break None;
                }
            }
            Event::Pong => {}
            Event::NeedInput => {
                // Pongs and close replies go out before waiting for more.
                if let Err(e) = ws.flush().await {
                    break Some(format!("writing failed: {e}"));
                }
                tokio::select! {
                    () = stop.stopped() => {
                        ws.close(CloseCode::Away, "server stopping").await;
                        break None;
                    }
                    read = ws.fill() => {
                        if let Err(e) = read {
                            break Some(format!("reading failed: {e}"));
                        }
                    }
                    Some(reply) = replies.recv() => {
                        let mut queued = ws.queue(reply);
                        // Whatever else is waiting goes out in the same write.
                        while queued.is_ok() && ws.queued() < WRITE_BYTES {
                            let Ok(more) = replies.try_recv() else { break };
                            queued = ws.queue(more);
                        }
                        if let Err(e) = queued {
                            break Some(format!("cannot send: {e}"));
                        }
                    }
                }
            }
            Event::Closed => {
                ws.finish().await;
                break Some("closed".to_owned());
            }
            Event::Failed(e) => {
                ws.fail(&e).await;
                tracing::warn!(connector = %id, peer = %peer, stream, error = %e, "ws client closed");
                break Some(e.to_string());
            }
        }
    };
    shared.hub.clients().remove(&stream);
    tracing::debug!(connector = %id, peer = %peer, stream, why = why.as_deref().unwrap_or("server stopping"), "ws client disconnected");
    if why.is_some() {
        let _ = feed.send(Msg::End { stream }, &mut stop).await;
    }
}

/// The `ws_server` sink: writes to the clients of a `ws_server` source.
#[derive(Debug)]
pub struct WsServerSink {
    config: SinkConfig,
    sent: u64,
    dropped: u64,
    /// Whether the server's hub was found at the last push (to log changes once).
    found: Option<bool>,
}

impl WsServerSink {
    /// A sink for the clients of source `server`.
    ///
    /// # Errors
    /// A `Config` error for a bad config.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: SinkConfig = setup.config()?;
        if config.server.is_empty() {
            return Err(PluginError::config(format_args!(
                "`server` must name a ws_server source"
            )));
        }
        Ok(Self {
            config,
            sent: 0,
            dropped: 0,
            found: None,
        })
    }

    /// Messages queued to clients, and frames dropped (no such client, or its queue full).
    #[must_use]
    pub fn totals(&self) -> (u64, u64) {
        (self.sent, self.dropped)
    }

    fn message(&self, frame: &[u8], meta: &Value) -> Message {
        let binary = matches!(meta.get("binary"), Some(Value::Bool(true)));
        wsio::message_of(frame, self.config.text && !binary)
    }

    /// The client `meta` names, when it came from this sink's server.
    fn client_of(&self, meta: &Value) -> Option<u64> {
        let connector = meta.get("connector").and_then(Value::as_str)?;
        (connector == self.config.server)
            .then(|| meta.get("stream").and_then(Value::as_u64))
            .flatten()
    }

    fn offer(&mut self, to: &mpsc::Sender<Message>, message: Message) {
        if to.try_send(message).is_ok() {
            self.sent += 1;
        } else {
            self.dropped += 1;
        }
    }
}

impl BatchSink for WsServerSink {
    fn write(&mut self, batch: Batch<'_>, _delivered: &mut RVec<u32>) -> Result<(), PluginError> {
        let Batch { frames, meta } = batch;
        let hub = hub_of(&self.config.server);
        if self.found != Some(hub.is_some()) {
            self.found = Some(hub.is_some());
            if hub.is_none() {
                tracing::warn!(server = %self.config.server, "no ws_server source of that id runs: frames are dropped until one does");
            }
        }
        let Some(hub) = hub else {
            self.dropped += frames.len() as u64;
            return Ok(());
        };
        let clients = hub.clients();
        let before = self.dropped;
        for (i, frame) in frames.iter().enumerate() {
            let m = meta_of(meta, i);
            let message = self.message(frame, m);
            if self.config.broadcast {
                for to in clients.values() {
                    self.offer(to, message.clone());
                }
            } else {
                match self.client_of(m).and_then(|s| clients.get(&s)) {
                    Some(to) => self.offer(to, message),
                    None => self.dropped += 1,
                }
            }
        }
        if self.dropped > before {
            tracing::debug!(
                dropped = self.dropped - before,
                "frames for clients that are gone or full were dropped"
            );
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        // Frames are queued to the clients' tasks, which write them at once.
        Ok(())
    }
}

temblor_shim::batch_sink!(WsServerSink);

impl Drop for WsServerSink {
    fn drop(&mut self) {
        tracing::info!(server = %self.config.server, sent = self.sent, dropped = self.dropped, "ws server sink done");
    }
}

temblor_shim::export_plugin! {
    name: "ws_server",
    kind: Connector,
    source: WsServer::new,
    sink: WsServerSink::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::config;
    use temblor_net::testing::refused;
    use temblor_shim::{Frames, Sink};

    fn setup(config: &Value) -> Setup<'_> {
        Setup { id: "t", config }
    }

    #[test]
    fn defaults() {
        let c: Config = temblor_shim::from_value(&config(&[])).expect("config");
        assert_eq!(c.url, "127.0.0.1:8080");
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.max_message, 1024 * 1024);
        assert!(c.tls.is_none());
        let s: SinkConfig =
            temblor_shim::from_value(&config(&[("server", Value::from("in"))])).expect("sink");
        assert!(!s.broadcast);
        assert!(s.text);
    }

    #[test]
    fn bad_values_are_config_errors() {
        for (fields, needle) in [
            (
                vec![("max_connections", Value::from(0_u64))],
                "max_connections",
            ),
            (vec![("max_message", Value::from(0_u64))], "max_message"),
            (
                vec![("max_message", Value::from(MAX_MESSAGE_LIMIT as u64 + 1))],
                "max_message",
            ),
            (vec![("url", Value::from("no port"))], "url"),
            (
                vec![("url", Value::from("wss://127.0.0.1:0"))],
                "no `tls` table",
            ),
            (vec![("server", Value::from("x"))], "unknown field `server`"),
        ] {
            refused(WsServer::new, &fields, needle);
        }
        refused(WsServerSink::new, &[], "server");
        let fields = [("server", Value::from("in")), ("url", Value::from("x:1"))];
        refused(WsServerSink::new, &fields, "unknown field `url`");
    }

    #[test]
    fn a_kind_change_starts_the_stream_again_with_the_new_binary_flag() {
        let cfg = config(&[("url", Value::from("127.0.0.1:0"))]);
        let mut server = WsServer::new(&setup(&cfg)).expect("server");
        let mut out = SourceBatch::new();
        let data = |binary: bool, text: &'static [u8]| Msg::Data {
            stream: 4,
            bytes: Bytes::from_static(text),
            binary,
        };
        server.streams.hand_over(
            Msg::Start {
                stream: 4,
                peer: "p".into(),
                path: "/x".into(),
            },
            &mut out,
        );
        server.streams.hand_over(data(false, b"a"), &mut out);
        server.streams.hand_over(data(false, b"b"), &mut out);
        server.streams.hand_over(data(true, b"c"), &mut out);
        server.streams.hand_over(Msg::End { stream: 4 }, &mut out);
        let runs: Vec<(std::ops::Range<usize>, bool, bool, Option<bool>)> = out
            .all_runs()
            .map(|(r, run)| {
                let binary = run.meta.get("binary").map(|b| *b == Value::from(true));
                (r, run.starts(), run.ends(), binary)
            })
            .collect();
        assert_eq!(
            runs,
            [
                (0..2, true, false, Some(false)),
                (2..3, true, true, Some(true)),
            ]
        );
        assert_eq!(out.runs()[0].meta.get("path"), Some(&Value::from("/x")));
        assert_eq!(out.runs()[1].meta.get("peer"), Some(&Value::from("p")));
    }

    #[test]
    fn the_sink_routes_by_connector_and_stream_or_broadcasts() {
        let hub = Arc::new(Hub::default());
        register("sink-test-src", &hub);
        let (tx1, mut rx1) = mpsc::channel(CLIENT_QUEUE);
        let (tx2, mut rx2) = mpsc::channel(CLIENT_QUEUE);
        hub.clients().insert(1, tx1);
        hub.clients().insert(2, tx2);
        let meta = |connector: &str, stream: u64, binary: bool| {
            let mut m = Object::new();
            m.insert("connector", Value::from(connector));
            m.insert("stream", Value::from(stream));
            m.insert("binary", Value::from(binary));
            Value::Object(m)
        };
        let cfg = config(&[("server", Value::from("sink-test-src"))]);
        let mut sink = WsServerSink::new(&setup(&cfg)).expect("sink");
        let frames: Frames = [&b"to-2"[..], b"to-1", b"other", b"gone", b"bin"]
            .into_iter()
            .collect();
        let metas = [
            meta("sink-test-src", 2, false),
            meta("sink-test-src", 1, false),
            meta("elsewhere", 1, false),
            meta("sink-test-src", 9, false),
            meta("sink-test-src", 1, true),
        ];
        sink.push_batch(&frames, &metas, &mut RVec::new())
            .expect("push");
        assert_eq!(sink.totals(), (3, 2));
        assert_eq!(rx2.try_recv().expect("reply"), Message::text("to-2"));
        assert_eq!(rx1.try_recv().expect("reply"), Message::text("to-1"));
        assert_eq!(
            rx1.try_recv().expect("reply"),
            Message::binary(b"bin".to_vec())
        );
        assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err());

        let cfg = config(&[
            ("server", Value::from("sink-test-src")),
            ("broadcast", Value::from(true)),
        ]);
        let mut all = WsServerSink::new(&setup(&cfg)).expect("sink");
        all.push(&[&b"hi"[..]].into_iter().collect()).expect("push");
        assert_eq!(all.totals(), (2, 0));
        assert_eq!(rx1.try_recv().expect("to all"), Message::text("hi"));
        assert_eq!(rx2.try_recv().expect("to all"), Message::text("hi"));

        drop(hub);
        all.push(&[&b"nobody"[..]].into_iter().collect())
            .expect("push");
        assert_eq!(all.totals(), (2, 1), "no server: dropped");
    }
}
