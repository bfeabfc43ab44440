//! The `ws_client` connector: a WebSocket client. As a sink it sends each frame as one
//! message to `url`, reconnecting when the connection breaks; as a source it hands over what
//! the server sends on a connection of its own.
//!
//! **Sink.** The constructor checks `url` (and the `tls` files) and tries to connect once; a
//! server that is not up yet is no error (the first batch connects). Each frame is sent as one
//! message (so the connector normally has no postprocessors): a **text** message when
//! `text = true` (the default) and the frame is UTF-8 and its event's `meta.binary` is not
//! `true`; a **binary** message otherwise. What the server sends on the sink's connection is
//! read and thrown away (pings are answered).
//!
//! *Broken connections.* Before each batch the sink looks whether its connection is still
//! open (a server that closed between batches loses nothing); if not, it connects first. When
//! sending fails, it connects again and goes on from the first frame that was not sent,
//! waiting `backoff_ms` before each new attempt, doubling up to `max_backoff_ms`. After
//! `max_retries` attempts more the batch fails with an `Io` error and the indices of the
//! frames that were sent go back to the engine in `delivered` (see `docs/delivery.md`): the
//! engine's retries resend only the others. A frame counts as sent once the socket took it; a
//! write that broke half-way is sent again, so the server may see a message twice (at least
//! once). `push` blocks while it retries (backpressure), for at most about `max_retries ×
//! max_backoff_ms` plus the timeouts.
//!
//! *Keep-alive.* Every `ping_interval_s` the connection sends a ping; when nothing at all
//! (no pong, no message) came back by the next one, the connection counts as dead and is
//! closed: the next batch connects again. Idle connections stay open through proxies and
//! NATs that drop silent ones.
//!
//! **Source.** A `ws_client` source connects to `url` and hands over every message the
//! server sends, one frame per message, until it is dropped: each connection is a stream
//! (`start_stream` with its metadata once the handshake is done, `end_stream` when it
//! closes). When the connection fails or closes, it connects again after `backoff_ms`,
//! doubling up to `max_backoff_ms` (reset by a connection that worked), for ever; it pings as
//! the sink does. Network tasks hand what they read to `pull` through a bounded queue that
//! wakes the engine: `pull` never waits when the engine takes its wake-up, and waits at most
//! 100 ms otherwise. The source sends nothing but pings and pongs.
//!
//! Both run on the plugin's tokio runtime; dropping an instance closes its connection (close
//! code 1000) before the drop returns.
//!
//! ## Config
//! Sink and source:
//! - `url` (string, required): `ws://host:port/path` or `wss://host:port/path` (the port
//!   defaults to 80 and 443).
//! - `tls` (table, optional, `wss://` only): `{ ca = "ca.pem" }` to trust the certificates
//!   in that PEM file instead of the system's roots, and `server_name` to check the server's
//!   certificate against another name than the host of `url`. `wss://` without it uses the
//!   system's roots.
//! - `ping_interval_s` (integer, default 30): seconds between pings; 0 sends none.
//! - `max_message` (integer, default 1048576, 1 to 268435456): the largest message accepted
//!   from the server, in bytes (a larger one closes the connection with code 1009).
//! - `backoff_ms` (integer, default 100, at least 1): the wait before the first reconnection.
//! - `max_backoff_ms` (integer, default 5000, at least `backoff_ms`): the longest wait.
//! - `timeout_ms` (integer, default 5000, at least 1): for connecting (and the handshake)
//!   and for each write; a server that takes nothing in for that long counts as gone.
//!
//! Sink only:
//! - `text` (bool, default true): send UTF-8 frames as text messages; `false` sends every
//!   frame as binary.
//! - `max_retries` (integer, default 10): attempts after the first before a batch fails.
//!
//! ## Metadata
//! The sink reads `meta.binary` (a `true` there sends the frame as binary: what a `ws_server`
//! source sets for binary messages). Every event from the source has:
//! - `meta.url` (string): the `url` it connected to;
//! - `meta.peer` (string): the server's address, `"ip:port"`;
//! - `meta.binary` (bool): whether the message was binary (when the server switches kind,
//!   the stream is started again, same id, with the new value);
//! - `meta.connector` and `meta.stream` (the connection), set by the engine.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "push"
//! plugin = "ws_client"
//! codec = "json"
//! config = { url = "ws://127.0.0.1:8080/ingest", ping_interval_s = 20, max_retries = 5 }
//!
//! [[connector]]
//! id = "feed"
//! plugin = "ws_client"
//! codec = "json"
//! config = { url = "wss://feeds.example.com/ticker", tls = { ca = "ca.pem" } }
//! ```

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use temblor_net::{
    Service, StopSignal, addr,
    conn::Conn,
    feed::{Fed, Feed, HandOver, Intake},
    retry::{self, Link, Retrying},
    tls::{self, ClientTls},
    tokio::{
        self,
        net::TcpStream,
        sync::{mpsc, oneshot},
        time::MissedTickBehavior,
    },
    tokio_rustls::TlsConnector,
};
use temblor_shim::{
    Frames, Object, PluginError, Setup, SourceBatch, Value, meta_of, serde::Deserialize, tracing,
};
use tokio_tungstenite::tungstenite::{
    Bytes, Message, client::IntoClientRequest, protocol::frame::coding::CloseCode,
};

#[allow(dead_code)] // shared with ws_server, which uses other parts of it
#[path = "../../ws_server/src/wsio.rs"]
mod wsio;

use wsio::{Event, WsConn};

/// How the source takes in what its task reads: 256 messages (stream starts, messages, ends)
/// queued ahead of `pull`, at most 1024 of them or about 1 MiB per pull, a 100 ms wait for input
/// when the engine gave no wake-up.
const INTAKE: Intake = Intake::new("ws client task", 256, GRACE);

/// Messages are written out (and counted as sent) in chunks of about this size.
const CHUNK: usize = 64 * 1024;

/// How long a connection gets to close when its instance is dropped.
const GRACE: Duration = Duration::from_secs(1);

/// The largest `max_message` accepted.
pub const MAX_MESSAGE_LIMIT: usize = 256 * 1024 * 1024;

/// Declares a config of this connector: the fields written in it, then what the sink and the
/// source share (`url`, `ping_interval_s`, `max_message`, `tls`, the retry settings but
/// `max_retries`), and `target()`, which checks them into a [`Target`].
macro_rules! ws_config {
    ($(#[$attr:meta])* pub struct $name:ident { $($body:tt)* } $($with:tt)*) => {
        temblor_net::client_config! {
            $(#[$attr])*
            pub struct $name {
                $($body)*
                /// `ws://host:port/path` or `wss://...`.
                pub url: String,
                /// Seconds between pings (0: none).
                #[serde(default = "default_ping_interval_s")]
                pub ping_interval_s: u64,
                /// The largest message accepted from the server.
                #[serde(default = "default_max_message")]
                pub max_message: usize,
                /// TLS for `wss://`.
                #[serde(default)]
                pub tls: Option<ClientTls>,
            }
            $($with)*
        }

        impl $name {
            /// What connecting needs, checked.
            fn target(&self, id: &str) -> Result<Target, PluginError> {
                Target::new(
                    id,
                    &self.url,
                    self.tls.as_ref(),
                    self.ping_interval_s,
                    self.max_message,
                    self.backoff_ms,
                    self.max_backoff_ms,
                    self.timeout_ms,
                )
            }
        }
    };
}

ws_config! {
    /// The sink's `config`.
    #[derive(Deserialize, Debug, Clone)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    pub struct Config {
        /// UTF-8 frames as text messages.
        #[serde(default = "default_text")]
        pub text: bool,
    }
    with max_retries
}

ws_config! {
    /// The source's `config`: the sink's but `text` and `max_retries`.
    #[derive(Deserialize, Debug, Clone)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    pub struct SourceConfig {}
}

fn default_text() -> bool {
    true
}

fn default_ping_interval_s() -> u64 {
    30
}

fn default_max_message() -> usize {
    1024 * 1024
}

/// What connecting needs, checked once: shared by the sink and the source.
#[derive(Clone)]
struct Target {
    id: String,
    url: String,
    /// `host:port`, resolved again at each connection.
    host_port: String,
    tls: Option<(
        TlsConnector,
        temblor_net::rustls::pki_types::ServerName<'static>,
    )>,
    ws_config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
    timeout: Duration,
    ping: Option<Duration>,
    backoff: Duration,
    max_backoff: Duration,
}

impl Target {
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: &str,
        url: &str,
        tls: Option<&ClientTls>,
        ping_interval_s: u64,
        max_message: usize,
        backoff_ms: u64,
        max_backoff_ms: u64,
        timeout_ms: u64,
    ) -> Result<Self, PluginError> {
        let bad = |what: &dyn std::fmt::Display| {
            PluginError::config(format_args!("`url` {url:?}: {what}"))
        };
        retry::check(backoff_ms, max_backoff_ms, timeout_ms)?;
        if !(1..=MAX_MESSAGE_LIMIT).contains(&max_message) {
            return Err(PluginError::config(format_args!(
                "`max_message` must be between 1 and {MAX_MESSAGE_LIMIT}, found {max_message}"
            )));
        }
        let request = url.into_client_request().map_err(|e| bad(&e))?;
        let uri = request.uri();
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(bad(&"the scheme must be ws:// or wss://")),
        };
        let host = uri.host().ok_or_else(|| bad(&"no host"))?;
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let host_port = format!("{host}:{port}");
        addr::resolve("url", &host_port)?;
        let tls = match (secure, tls) {
            (true, tls) => Some(
                tls.cloned()
                    .unwrap_or_default()
                    .connector(tls::host_of(&host_port), &[b"http/1.1"])?,
            ),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(bad(&"`tls` is given but the url says ws://: use wss://"));
            }
        };
        Ok(Self {
            id: id.to_owned(),
            url: url.to_owned(),
            host_port,
            tls,
            ws_config: wsio::config(max_message),
            timeout: Duration::from_millis(timeout_ms),
            ping: (ping_interval_s > 0).then(|| Duration::from_secs(ping_interval_s)),
            backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_backoff_ms),
        })
    }

    /// Connects, with TLS for `wss://`, and does the WebSocket handshake; the connection and
    /// the server's address.
    async fn open(&self) -> Result<(WsConn, SocketAddr), String> {
        let work = async {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&self.host_port)
                .await
                .map_err(|e| format!("resolving {}: {e}", self.host_port))?
                .collect();
            let mut last = format!("{} resolves to no address", self.host_port);
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(tcp) => {
                        let _ = tcp.set_nodelay(true);
                        return Ok((tcp, addr));
                    }
                    Err(e) => last = format!("connecting to {addr}: {e}"),
                }
            }
            Err(last)
        };
        let (tcp, peer) = match tokio::time::timeout(self.timeout, work).await {
            Ok(connected) => connected?,
            Err(_) => {
                return Err(format!(
                    "connecting to {} took longer than {} ms",
                    self.host_port,
                    self.timeout.as_millis()
                ));
            }
        };
        let conn = match &self.tls {
            Some((connector, name)) => tls::connect(connector, name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS with {peer}: {e}"))?,
            None => Conn::Tcp(tcp),
        };
        let request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let ws = wsio::connect(conn, request, self.ws_config, self.timeout)
            .await
            .map_err(|e| format!("WebSocket handshake with {peer}: {e}"))?;
        Ok((ws, peer))
    }
}

/// What the sink asks of its connection's task.
#[derive(Debug)]
struct Outgoing {
    messages: Vec<Message>,
    /// `Ok` when all went out; else how many did, and why the rest did not.
    done: oneshot::Sender<Result<(), (usize, String)>>,
}

/// Where a connection's incoming messages go: nowhere (the sink), or the source's queue.
struct Incoming<'a> {
    feed: Option<&'a Feed<Msg>>,
    stream: u64,
}

/// Why [`drive`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The instance stops (or the sink is gone): nothing more is wanted.
    Stopped,
    /// The connection closed or broke.
    Lost(String),
}

/// Runs one connection: answers pings, sends pings every `ping`, writes what `sends` asks
/// for, and hands incoming messages to `incoming`, until it closes or the instance stops.
async fn drive(
    ws: &mut WsConn,
    mut sends: Option<&mut mpsc::Receiver<Outgoing>>,
    incoming: Incoming<'_>,
    stop: &mut StopSignal,
    ping: Option<Duration>,
) -> Ended {
    let period = ping.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Whether anything came in since the last ping went out.
    let mut heard = true;
    let mut ignored = 0_u64;
    loop {
        match ws.next() {
            Event::Data(m) => {
                heard = true;
                let Some(feed) = incoming.feed else {
                    ignored += 1;
                    if ignored == 1 {
                        tracing::debug!("the server sent a message to a sink: ignored");
                    }
                    continue;
                };
                let binary = m.is_binary();
                let data = Msg::Data {
                    stream: incoming.stream,
                    bytes: m.into_data(),
                    binary,
                };
                if !feed.send(data, stop).await {
                    ws.close(CloseCode::Normal, "client stopping").await;
                    return Ended::Stopped;
                }
            }
            Event::Pong => heard = true,
            Event::NeedInput => {
                if let Err(e) = ws.flush().await {
                    return Ended::Lost(format!("writing failed: {e}"));
                }
                let next_send = async {
                    match sends.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                // Input first: a close that came before a batch is seen before the batch
                // would be written into a connection that is going away.
                tokio::select! {
                    biased;
                    () = stop.stopped() => {
                        ws.close(CloseCode::Normal, "client stopping").await;
                        return Ended::Stopped;
                    }
                    read = ws.fill() => match read {
                        Ok(true) => heard = true,
                        // The end shows in the next `next`.
                        Ok(false) => {}
                        Err(e) => return Ended::Lost(format!("reading failed: {e}")),
                    },
                    send = next_send => {
                        let Some(send) = send else {
                            ws.close(CloseCode::Normal, "client stopping").await;
                            return Ended::Stopped;
                        };
                        let (result, lost) = write_all(ws, send.messages).await;
                        let _ = send.done.send(result);
                        if let Some(why) = lost {
                            return Ended::Lost(why);
                        }
                    }
                    _ = ticker.tick(), if ping.is_some() => {
                        if !heard {
                            ws.close(CloseCode::Away, "no answer to ping").await;
                            return Ended::Lost(format!("no answer to a ping within {} s", period.as_secs()));
                        }
                        heard = false;
                        if let Err(e) = ws.queue(Message::Ping(Bytes::from_static(b"temblor"))) {
                            return Ended::Lost(format!("cannot ping: {e}"));
                        }
                    }
                }
            }
            Event::Closed => {
                ws.finish().await;
                return Ended::Lost("the server closed the connection".to_owned());
            }
            Event::Failed(e) => {
                ws.fail(&e).await;
                return Ended::Lost(e.to_string());
            }
        }
    }
}

/// Writes `messages`, flushing about every [`CHUNK`]: the result for the sink, and why the
/// connection is lost if it is.
async fn write_all(
    ws: &mut WsConn,
    messages: Vec<Message>,
) -> (Result<(), (usize, String)>, Option<String>) {
    let total = messages.len();
    let mut sent = 0;
    for (i, message) in messages.into_iter().enumerate() {
        if let Err(e) = ws.queue(message) {
            let why = format!("cannot send: {e}");
            return (Err((sent, why.clone())), Some(why));
        }
        if ws.queued() >= CHUNK || i + 1 == total {
            if let Err(e) = ws.flush().await {
                let why = format!("writing failed: {e}");
                return (Err((sent, why.clone())), Some(why));
            }
            sent = i + 1;
        }
    }
    (Ok(()), None)
}

/// The `ws_client` sink's connection (the sink is a [`Retrying`] on it).
pub struct WsClient {
    target: Target,
    text: bool,
    /// The open connection's task, when there is one.
    conn: Option<mpsc::Sender<Outgoing>>,
    connects: u64,
    messages: u64,
    service: Service,
}

impl WsClient {
    /// Checks the config and tries to connect once.
    ///
    /// # Errors
    /// A `Config` error for a bad config (`url`, `tls` files); an `Io` error when the runtime
    /// cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Retrying<Self>, PluginError> {
        let c: Config = setup.config()?;
        let target = c.target(setup.id)?;
        let policy = c.policy()?;
        let handle = temblor_net::runtime::handle()?;
        let client = Self {
            target,
            text: c.text,
            conn: None,
            connects: 0,
            messages: 0,
            service: Service::new(handle, GRACE),
        };
        Ok(Retrying::new(client, policy))
    }
}

impl Link for WsClient {
    type Error = String;

    fn target(&self) -> String {
        self.target.url.clone()
    }

    /// Opens a connection and starts its task.
    fn connect(&mut self) -> Result<(), String> {
        self.conn = None;
        let (mut ws, peer) = self.service.block_on(self.target.open())?;
        self.connects += 1;
        tracing::info!(url = %self.target.url, peer = %peer, connects = self.connects, "connected to the ws server");
        let (tx, mut rx) = mpsc::channel(1);
        let mut stop = self.service.signal();
        let ping = self.target.ping;
        let id = self.target.id.clone();
        self.service.spawn(async move {
            let incoming = Incoming {
                feed: None,
                stream: 0,
            };
            let ended = drive(&mut ws, Some(&mut rx), incoming, &mut stop, ping).await;
            if let Ended::Lost(why) = ended {
                tracing::info!(connector = %id, peer = %peer, why = %why, "ws connection lost; the next batch connects again");
            }
        });
        self.conn = Some(tx);
        Ok(())
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Sends the frames from `*next` on, connecting first when needed; `*next` follows what
    /// was sent.
    fn attempt(&mut self, frames: &Frames, meta: &[Value], next: &mut usize) -> Result<(), String> {
        if self.conn.as_ref().is_none_or(mpsc::Sender::is_closed) {
            self.connect()?;
        }
        let Some(conn) = self.conn.clone() else {
            return Err("not connected".to_owned());
        };
        let messages: Vec<Message> = frames
            .iter()
            .enumerate()
            .skip(*next)
            .map(|(i, frame)| {
                let binary = matches!(meta_of(meta, i).get("binary"), Some(Value::Bool(true)));
                wsio::message_of(frame, self.text && !binary)
            })
            .collect();
        let count = messages.len();
        let (done, result) = oneshot::channel();
        let outcome = self.service.block_on(async {
            conn.send(Outgoing { messages, done })
                .await
                .map_err(|_| (0, "the connection closed".to_owned()))?;
            result
                .await
                .unwrap_or_else(|_| Err((0, "the connection closed".to_owned())))
        });
        match outcome {
            Ok(()) => {
                *next += count;
                self.messages += count as u64;
                Ok(())
            }
            Err((sent, why)) => {
                *next += sent;
                self.messages += sent as u64;
                Err(why)
            }
        }
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        // The task closes the connection (code 1000) and is joined.
        self.conn = None;
        self.service.stop();
        tracing::debug!(url = %self.target.url, messages = self.messages, connects = self.connects, "ws client closed");
    }
}

/// What the source's task tells `pull`.
#[derive(Debug)]
enum Msg {
    /// A connection is open.
    Start { stream: u64, peer: String },
    /// A message on it.
    Data {
        stream: u64,
        bytes: Bytes,
        binary: bool,
    },
    /// It closed or broke.
    End { stream: u64 },
}

/// The `ws_client` source.
pub struct WsClientSource {
    streams: Streams,
    fed: Fed<Msg>,
}

/// What `pull` keeps of the streams: the url (for the metadata), the open stream (its id, peer
/// and kind of its last message), and a count for the log.
struct Streams {
    url: String,
    open: Option<(u64, String, bool)>,
    messages: u64,
}

impl WsClientSource {
    /// Checks the config and starts connecting.
    ///
    /// # Errors
    /// A `Config` error for a bad config (`url`, `tls` files); an `Io` error when the runtime
    /// cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let c: SourceConfig = setup.config()?;
        let target = c.target(setup.id)?;
        let (mut fed, feed) = Fed::new(INTAKE)?;
        let stop = fed.service().signal();
        fed.service().spawn(subscribe(target, feed, stop));
        Ok(Self {
            streams: Streams {
                url: c.url,
                open: None,
                messages: 0,
            },
            fed,
        })
    }
}

impl Streams {
    fn meta(&self, peer: &str, binary: bool) -> Value {
        let mut meta = Object::with_capacity(3);
        meta.insert("url", Value::from(self.url.as_str()));
        meta.insert("peer", Value::from(peer));
        meta.insert("binary", Value::from(binary));
        Value::Object(meta)
    }
}

impl HandOver<Msg> for Streams {
    fn hand_over(&mut self, msg: Msg, out: &mut SourceBatch) {
        match msg {
            Msg::Start { stream, peer } => {
                out.start_stream(stream, self.meta(&peer, false));
                self.open = Some((stream, peer, false));
            }
            Msg::Data {
                stream,
                bytes,
                binary,
            } => {
                let restart = match &mut self.open {
                    Some((open, peer, kind)) if *open == stream && *kind != binary => {
                        *kind = binary;
                        Some(peer.clone())
                    }
                    _ => None,
                };
                if let Some(peer) = restart {
                    out.start_stream(stream, self.meta(&peer, binary));
                }
                self.messages += 1;
                out.push_stream(stream, &bytes);
            }
            Msg::End { stream } => {
                self.open = None;
                out.end_stream(stream);
            }
        }
    }
}

temblor_net::fed_source!(WsClientSource);

impl Drop for WsClientSource {
    fn drop(&mut self) {
        // The task stops (and the connection closes) when `fed` is dropped, after this.
        tracing::debug!(url = %self.streams.url, messages = self.streams.messages, "ws client source closed");
    }
}

/// The source's task: connect, hand over what comes, and connect again after a backoff,
/// until the source stops.
async fn subscribe(target: Target, feed: Feed<Msg>, mut stop: StopSignal) {
    let mut backoff = target.backoff;
    let mut stream = 0_u64;
    loop {
        let opened = tokio::select! {
            opened = target.open() => opened,
            () = stop.stopped() => return,
        };
        match opened {
            Ok((mut ws, peer)) => {
                stream += 1;
                tracing::info!(connector = %target.id, url = %target.url, peer = %peer, stream, "connected to the ws server");
                let start = Msg::Start {
                    stream,
                    peer: peer.to_string(),
                };
                if !feed.send(start, &mut stop).await {
                    ws.close(CloseCode::Normal, "client stopping").await;
                    return;
                }
                let since = Instant::now();
                let incoming = Incoming {
                    feed: Some(&feed),
                    stream,
                };
                let ended = drive(&mut ws, None, incoming, &mut stop, target.ping).await;
                let Ended::Lost(why) = ended else { return };
                tracing::info!(connector = %target.id, url = %target.url, why = %why, "ws connection lost; connecting again");
                if !feed.send(Msg::End { stream }, &mut stop).await {
                    return;
                }
                // A connection that lasted resets the backoff.
                if since.elapsed() > target.max_backoff {
                    backoff = target.backoff;
                }
            }
            Err(e) => {
                tracing::warn!(connector = %target.id, url = %target.url, backoff_ms = backoff.as_millis() as u64, error = %e, "cannot connect to the ws server; trying again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.stopped() => return,
        }
        backoff = (backoff * 2).min(target.max_backoff);
    }
}

temblor_shim::export_plugin! {
    name: "ws_client",
    kind: Connector,
    source: WsClientSource::new,
    sink: WsClient::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::config;
    use temblor_net::testing::{self, refused};

    #[test]
    fn defaults() {
        let c: Config =
            temblor_shim::from_value(&config(&[("url", Value::from("ws://h:1/"))])).expect("c");
        assert!(c.text);
        assert_eq!(
            (
                c.ping_interval_s,
                c.max_message,
                c.backoff_ms,
                c.max_backoff_ms,
                c.max_retries,
                c.timeout_ms
            ),
            (30, 1024 * 1024, 100, 5000, 10, 5000)
        );
        assert!(c.tls.is_none());
    }

    #[test]
    fn bad_values_are_config_errors() {
        let url = ("url", Value::from("ws://127.0.0.1:9/x"));
        for (fields, needle) in [
            (vec![], "missing field `url`"),
            (
                vec![("url", Value::from("http://127.0.0.1:9/"))],
                "ws:// or wss://",
            ),
            (vec![("url", Value::from("ws://"))], "`url`"),
            (
                vec![url.clone(), ("max_message", Value::from(0_u64))],
                "max_message",
            ),
            (
                vec![url.clone(), ("tls", Value::Object(Object::new()))],
                "use wss://",
            ),
        ] {
            refused(WsClient::new, &fields, needle);
        }
        testing::refuses_bad_retry_settings(WsClient::new, std::slice::from_ref(&url));
        testing::refuses_bad_retry_settings(WsClientSource::new, std::slice::from_ref(&url));
        let fields = [url, ("text", Value::from(true))];
        refused(WsClientSource::new, &fields, "unknown field `text`");
    }

    #[test]
    fn the_default_ports_follow_the_scheme() {
        let t = |url: &str| {
            Target::new("t", url, None, 0, 10, 1, 1, 1)
                .map(|t| t.host_port)
                .expect("target")
        };
        assert_eq!(t("ws://127.0.0.1/a"), "127.0.0.1:80");
        assert_eq!(t("ws://127.0.0.1:8080/a?b=c"), "127.0.0.1:8080");
        assert_eq!(t("ws://[::1]:81/"), "[::1]:81");
    }
}
