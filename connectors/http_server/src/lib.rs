//! The `http_server` connector: an HTTP/1.1 server that turns each request into a stream of
//! the engine (its body, with the request's method, path, headers and peer as metadata), and
//! answers it when the body was handed over (`response = "accepted"`) or only once its events
//! were delivered (`response = "delivered"`).
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor binds the address,
//! so a port in use is reported when the engine starts. An acceptor thread takes in
//! connections, up to `max_connections` at once (one more is answered `503 Service Unavailable`
//! and closed); each connection gets a thread of its own, which reads its requests one after
//! the other (keep-alive and pipelining work; HTTP/1.0 too). `pull` waits at most 100 ms for a
//! request, then says `Idle`; the source never ends by itself. When it is dropped (the engine
//! stops), requests still waiting are answered `503`, the threads stop within about 100 ms and
//! the listening socket is closed. Plain HTTP only: no TLS.
//!
//! **Requests.** `POST` and `PUT`, to any path, are accepted. Any other method is answered
//! `405 Method Not Allowed`. A body larger than `max_body` is answered `413 Content Too Large`
//! and not forwarded: with a `Content-Length` before any of it is read (and `Expect:
//! 100-continue` is answered only when the body fits). A malformed request (a header value that
//! is not UTF-8 too) gets `400`, a head larger than 16 KiB or with more than 64 headers `431`,
//! a transfer coding other than `chunked` `501`. After an error the connection is closed. A
//! connection idle for 30 s is closed.
//!
//! **Each request is a stream.** The body (sized by `Content-Length` or sent
//! `Transfer-Encoding: chunked`; none is an empty body) is read whole, then handed over by
//! `pull` as a stream of its own, with a fresh id: `start_stream(id, meta)`, the body as one
//! chunk (`push_stream`, exactly as sent, an empty body too), `end_stream(id)`. So the
//! connector's preprocessors run per request: with `preprocessors = ["separate"]` an NDJSON
//! body becomes one event per line (a last line without a newline included), and no request's
//! partial line is ever glued to another's. Without preprocessors the body is one frame.
//!
//! ## Meta
//! Every event of a request gets (besides `connector` and `stream`, which the engine adds):
//! - `meta.peer` (string): the client's address, `"ip:port"`.
//! - `meta.method` (string): `"POST"` or `"PUT"`.
//! - `meta.path` (string): the request target as sent, query included, e.g. `"/ingest?x=1"`.
//! - `meta.headers` (object): every header, by its name in lower case, to its value (trimmed);
//!   a header sent more than once has its values joined with `", "` in the order sent.
//!
//! ## Answers
//! - **`response = "accepted"`** (the default): a request is answered `202 Accepted` once its
//!   body has been appended to a batch by `pull`, i.e. handed to the engine: the engine has it,
//!   but it has not been decoded, processed or written anywhere yet.
//! - **`response = "delivered"`**: the source asks the engine for acknowledgements
//!   (docs/delivery.md). Every request handed over by one pull belongs to that pull's batch
//!   token; the request is answered `200 OK` when the engine acks the token (every sink its
//!   events reached wrote and flushed them, or wrote them to its dead letter file, or a filter
//!   dropped them), and `503 Service Unavailable` with the engine's reason in the body when it
//!   fails the token (a sink gave up on them with no dead letter file, or they could not be
//!   decoded and nothing takes the error port). When neither happened within `timeout_ms` of
//!   the body being read, the request is answered `503` all the same: the body says whether
//!   the engine had taken it (then it may still be delivered) or not (then it never will be,
//!   it is not forwarded after that). An engine that tracks no acknowledgements (it gives the
//!   token 0, as an interface 1 host does) gets `202` answers, with a warning in the log.
//!
//! Until its answer the client waits: when the engine is slower than the clients (or a sink's
//! circuit breaker paused this source), requests queue (at most 64 bodies in memory, then the
//! connection threads stop reading) and clients see slower answers. A request the engine never
//! took (it stopped first) is answered `503`. Every `503` carries `Retry-After: 1`.
//!
//! **What a crash loses.** With `"accepted"`: every request answered `202` whose events were
//! not written yet (in the engine's queues and batches, or in a sink's buffer). With
//! `"delivered"`: nothing answered `200` is lost; a request that got `503`, or no answer at all
//! (the client timed out, the process died), may or may not have been delivered, and a client
//! that sends it again may so deliver it twice. To make such repeats harmless, give each
//! request an idempotency key header: it travels in `meta.headers` (and with
//! `http_client`'s `headers_from_meta` on to the next server).
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:8139"`): the `host:port` to listen on (a leading
//!   `http://` is allowed). The default listens on loopback only; `"0.0.0.0:8139"` listens on
//!   every interface. Port 0 picks a free port (the log says which).
//! - `max_body` (integer, default 1048576, 1 to 268435456): the largest body accepted, in bytes.
//! - `max_connections` (integer, default 64, at least 1): connections served at once.
//! - `response` (string, default `"accepted"`): `"accepted"` (answer `202` when the body is
//!   handed over) or `"delivered"` (answer `200` when its events were delivered, `503` when
//!   not), as above.
//! - `timeout_ms` (integer, default 10000, at least 1): with `"delivered"`, the longest a
//!   request waits for its outcome, from the end of its body, before it is answered `503`.
//!   Ignored with `"accepted"`.
//!
//! ## Example
//! NDJSON posted to `/ingest`, each line an event, answered once it is in the file:
//! ```toml
//! [[connector]]
//! id = "ingest"
//! plugin = "http_server"
//! codec = "json"
//! preprocessors = ["separate"]
//! config = { url = "127.0.0.1:8139", max_body = 65536, response = "delivered", timeout_ms = 5000 }
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "events.json", mode = "write" }
//!
//! [[pipeline]]
//! id = "main"
//!
//! [[connect]]
//! from = "ingest"
//! to = "main"
//!
//! [[connect]]
//! from = "main"
//! to = "out"
//! ```
//! `curl --data-binary @events.ndjson http://127.0.0.1:8139/ingest` then prints nothing and
//! exits 0 once every line is in `events.json` (`-w '%{http_code}'` shows the `200`).

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use temblor_shim::{
    ErrorKind, Object, PluginError, Pull, Setup, Source, SourceBatch, Value,
    serde::{Deserialize, Deserializer},
    tracing,
};

/// How long `pull` waits for a request before it says `Idle`; also how often the threads look
/// whether they should stop.
const WAIT: Duration = Duration::from_millis(100);

/// How long the acceptor sleeps when no client is waiting.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// How many request bodies may wait for `pull`.
const QUEUE: usize = 64;

/// How long a connection waits before it tries again to queue a body when the queue is full.
const QUEUE_POLL: Duration = Duration::from_millis(5);

/// The most requests one `pull` takes.
const PULL_REQUESTS: usize = 256;

/// The most bytes one `pull` appends (it stops after the body that crosses this).
const PULL_BYTES: usize = 4 * 1024 * 1024;

/// The largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

/// The most headers in a request.
pub const MAX_HEADERS: usize = 64;

/// A connection without a byte for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long writing a response may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// After an error response, how long the rest of the request is read and thrown away before the
/// connection closes (closing with unread data would reset it, and the client could miss the
/// response).
const LINGER: Duration = Duration::from_secs(1);

/// The same, for connections refused by the acceptor (which must get back to accepting).
const LINGER_REFUSED: Duration = Duration::from_millis(50);

/// The largest `max_body` accepted.
pub const MAX_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// When a request is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Response {
    /// `202` once `pull` handed the body to the engine.
    #[default]
    Accepted,
    /// `200` once the engine acked the batch that carried it, `503` when it failed it or
    /// `timeout_ms` passed first.
    Delivered,
}

impl<'de> Deserialize<'de> for Response {
    /// From `"accepted"` or `"delivered"`; anything else is an error naming `response`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer).map_err(|e| {
            temblor_shim::serde::de::Error::custom(format_args!(
                "`response` must be \"accepted\" or \"delivered\": {e}"
            ))
        })?;
        match text.as_str() {
            "accepted" => Ok(Self::Accepted),
            "delivered" => Ok(Self::Delivered),
            other => Err(temblor_shim::serde::de::Error::custom(format_args!(
                "`response` must be \"accepted\" or \"delivered\", found {other:?}"
            ))),
        }
    }
}

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to listen on.
    #[serde(default = "default_url")]
    pub url: String,
    /// The largest body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Connections served at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// When requests are answered.
    #[serde(default)]
    pub response: Response,
    /// With `Response::Delivered`: the longest a request waits for its outcome, in
    /// milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_url() -> String {
    "127.0.0.1:8139".to_owned()
}

fn default_max_body() -> usize {
    1024 * 1024
}

fn default_max_connections() -> usize {
    64
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Config {
    /// Checks the values serde cannot; returns the addresses to listen on.
    fn validate(&self, id: &str) -> Result<Vec<SocketAddr>, PluginError> {
        if self.max_connections == 0 {
            return Err(PluginError::config(format_args!(
                "'{id}': `max_connections` must be at least 1"
            )));
        }
        if !(1..=MAX_BODY_LIMIT).contains(&self.max_body) {
            return Err(PluginError::config(format_args!(
                "'{id}': `max_body` must be between 1 and {MAX_BODY_LIMIT}, found {}",
                self.max_body
            )));
        }
        if self.timeout_ms == 0 {
            return Err(PluginError::config(format_args!(
                "'{id}': `timeout_ms` must be at least 1"
            )));
        }
        if self.url.starts_with("https://") {
            return Err(PluginError::config(format_args!(
                "'{id}': `url` {:?}: this server has no TLS, use host:port",
                self.url
            )));
        }
        let host_port = self.url.strip_prefix("http://").unwrap_or(&self.url);
        let host_port = host_port.strip_suffix('/').unwrap_or(host_port);
        let addrs: Vec<SocketAddr> = host_port
            .to_socket_addrs()
            .map_err(|e| {
                PluginError::config(format_args!(
                    "'{id}': `url` must be host:port, found {:?}: {e}",
                    self.url
                ))
            })?
            .collect();
        if addrs.is_empty() {
            return Err(PluginError::config(format_args!(
                "'{id}': `url` {:?} resolves to no address",
                self.url
            )));
        }
        Ok(addrs)
    }
}

/// [`Request::state`]: waiting in the queue.
const QUEUED: u8 = 0;
/// [`Request::state`]: handed to the engine by `pull`.
const TAKEN: u8 = 1;
/// [`Request::state`]: its connection stopped waiting before `pull` took it; not forwarded.
const GAVE_UP: u8 = 2;

/// A request on its way to `pull`, with the way to answer it.
struct Request {
    /// The stream's metadata (`peer`, `method`, `path`, `headers`).
    meta: Value,
    body: Vec<u8>,
    /// `QUEUED`, then `TAKEN` (by `pull`) or `GAVE_UP` (by its connection), whichever comes
    /// first.
    state: Arc<AtomicU8>,
    /// The answer, sent once; dropping it unsent answers `503` (shutting down).
    answer: SyncSender<Reply>,
}

/// What the threads share with the source.
struct Shared {
    id: String,
    stop: AtomicBool,
    max_body: usize,
    max_connections: usize,
    /// With `Response::Delivered`, how long a request waits for its outcome.
    timeout: Option<Duration>,
}

/// The `http_server` source.
pub struct HttpServer {
    id: String,
    local: SocketAddr,
    shared: Arc<Shared>,
    response: Response,
    /// Taken out first when dropped, so that waiting connections answer `503` and stop.
    requests: Option<Receiver<Request>>,
    acceptor: Option<JoinHandle<()>>,
    /// With `Response::Delivered`: the answers owed, by the token of the batch that carried
    /// their requests.
    waiting: HashMap<u64, Vec<SyncSender<Reply>>>,
    /// The id of the next request's stream (0 is the engine's default stream).
    next_stream: u64,
    /// Whether the "no acknowledgements" warning was logged.
    warned_no_acks: bool,
    taken: u64,
    delivered: u64,
    failed: u64,
}

impl HttpServer {
    /// Binds the configured address and starts accepting connections.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the address cannot be bound or the
    /// acceptor thread cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        let addrs = config.validate(id)?;
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| {
            PluginError::io(format_args!("'{id}': cannot listen on {}", config.url), &e)
        })?;
        let setup_listener = |listener: &TcpListener| {
            listener.set_nonblocking(true)?;
            listener.local_addr()
        };
        let local = setup_listener(&listener)
            .map_err(|e| PluginError::io(format_args!("'{id}': listening socket"), &e))?;
        let shared = Arc::new(Shared {
            id: id.to_owned(),
            stop: AtomicBool::new(false),
            max_body: config.max_body,
            max_connections: config.max_connections,
            timeout: (config.response == Response::Delivered)
                .then(|| Duration::from_millis(config.timeout_ms)),
        });
        let (to_source, requests) = mpsc::sync_channel(QUEUE);
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("http-accept-{id}"))
                .spawn(move || accept_loop(&listener, &shared, &to_source))
                .map_err(|e| {
                    PluginError::io(format_args!("'{id}': cannot start the acceptor"), &e)
                })?
        };
        tracing::info!(
            id = %id,
            addr = %local,
            max_body = config.max_body,
            max_connections = config.max_connections,
            response = ?config.response,
            "http server listening"
        );
        Ok(Self {
            id: id.to_owned(),
            local,
            shared,
            response: config.response,
            requests: Some(requests),
            acceptor: Some(acceptor),
            waiting: HashMap::new(),
            next_stream: 1,
            warned_no_acks: false,
            taken: 0,
            delivered: 0,
            failed: 0,
        })
    }

    /// The address the server listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn acceptor_lost(&self) -> PluginError {
        PluginError::new(
            ErrorKind::Other,
            format_args!("'{}': the http acceptor stopped unexpectedly", self.id),
        )
    }

    /// Hands `request` over as a stream of its own, unless its connection gave up on it; then
    /// answers it `202` or files its answer under `token`.
    fn take(&mut self, request: Request, out: &mut SourceBatch) {
        let Request {
            meta,
            body,
            state,
            answer,
        } = request;
        if state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Its connection answered 503 already: the client will send it again, if at all.
            return;
        }
        let stream = self.next_stream;
        self.next_stream += 1;
        out.start_stream(stream, meta);
        out.push_stream(stream, &body);
        out.end_stream(stream);
        self.taken += 1;
        let token = out.token();
        if self.response == Response::Delivered && token != 0 {
            self.waiting.entry(token).or_default().push(answer);
            return;
        }
        if self.response == Response::Delivered && !self.warned_no_acks {
            self.warned_no_acks = true;
            tracing::warn!(
                id = %self.id,
                "response = \"delivered\", but the engine tracks no acknowledgements \
                 (token 0): requests are answered 202 when handed over"
            );
        }
        // The connection may be gone already; the body is the engine's all the same.
        let _ = answer.try_send(Reply::new(202, "Accepted", ""));
    }

    /// Answers the requests carried by the batch `token`, if any.
    fn answer(&mut self, token: u64, reply: &Reply) -> usize {
        let Some(answers) = self.waiting.remove(&token) else {
            return 0;
        };
        for answer in &answers {
            // A connection that timed out or closed is not listening any more.
            let _ = answer.try_send(reply.clone());
        }
        answers.len()
    }
}

impl Source for HttpServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        let Some(requests) = &self.requests else {
            return Err(self.acceptor_lost());
        };
        let mut request = match requests.recv_timeout(WAIT) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => return Ok(Pull::Idle),
            Err(RecvTimeoutError::Disconnected) => return Err(self.acceptor_lost()),
        };
        for _ in 0..PULL_REQUESTS {
            self.take(request, out);
            if out.byte_len() >= PULL_BYTES {
                break;
            }
            let Some(requests) = &self.requests else {
                break;
            };
            request = match requests.try_recv() {
                Ok(request) => request,
                // A lost acceptor shows in the next pull.
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            };
        }
        Ok(if out.is_empty() {
            Pull::Idle
        } else {
            Pull::Ready
        })
    }

    fn wants_acks(&self) -> bool {
        self.response == Response::Delivered
    }

    fn ack(&mut self, token: u64) -> Result<(), PluginError> {
        let n = self.answer(token, &Reply::new(200, "OK", ""));
        self.delivered += n as u64;
        Ok(())
    }

    fn fail(&mut self, token: u64, reason: &str) -> Result<(), PluginError> {
        let reply = Reply::new(
            503,
            "Service Unavailable",
            format!("not delivered: {reason}\n"),
        )
        .header("Retry-After: 1");
        let n = self.answer(token, &reply);
        if n > 0 {
            tracing::warn!(id = %self.id, requests = n, reason = %reason, "requests not delivered: answered 503");
        }
        self.failed += n as u64;
        Ok(())
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Requests not taken lose their `answer` sender, and so do those still waiting for
        // their outcome: their connections answer 503.
        drop(self.requests.take());
        let unanswered: usize = self.waiting.drain().map(|(_, answers)| answers.len()).sum();
        if let Some(acceptor) = self.acceptor.take()
            && acceptor.join().is_err()
        {
            tracing::error!(id = %self.id, "the http acceptor panicked");
        }
        tracing::info!(
            id = %self.id,
            addr = %self.local,
            requests = self.taken,
            delivered = self.delivered,
            failed = self.failed,
            unanswered,
            "http server closed"
        );
    }
}

/// Accepts connections until told to stop, then closes the listener and waits for the
/// connection threads.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, to_source: &SyncSender<Request>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                connections.retain(|c| !c.is_finished());
                if connections.len() >= shared.max_connections {
                    tracing::warn!(
                        id = %shared.id,
                        peer = %peer,
                        max_connections = shared.max_connections,
                        "too many connections: answered 503"
                    );
                    refuse(stream);
                    continue;
                }
                let spawned = {
                    let shared = Arc::clone(shared);
                    let to_source = to_source.clone();
                    thread::Builder::new()
                        .name(format!("http-conn-{}", shared.id))
                        .spawn(move || Connection::new(stream, peer, &shared, &to_source).serve())
                };
                match spawned {
                    Ok(handle) => connections.push(handle),
                    Err(e) => tracing::error!(
                        id = %shared.id,
                        peer = %peer,
                        error = %e,
                        "cannot start a connection thread: connection closed"
                    ),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                connections.retain(|c| !c.is_finished());
                thread::sleep(ACCEPT_POLL);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(id = %shared.id, error = %e, "accepting a connection failed");
                thread::sleep(WAIT);
            }
        }
    }
    for connection in connections {
        // A thread that panicked has nothing left to clean up.
        let _ = connection.join();
    }
}

/// Answers a connection over the limit with `503` and closes it.
fn refuse(mut stream: TcpStream) {
    let reply =
        Reply::new(503, "Service Unavailable", "too many connections\n").header("Retry-After: 1");
    let written = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(LINGER_REFUSED)))
        .and_then(|()| stream.write_all(&reply.to_bytes(false, true)));
    if written.is_ok() {
        linger(&mut stream, LINGER_REFUSED);
    }
}

/// Closes our side for writing, then reads and drops what the client still sends, for at most
/// `time`, so that the close does not reset the connection before the client read our answer.
fn linger(stream: &mut TcpStream, time: Duration) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + time;
    let mut scratch = [0; 8192];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: u16,
    reason: &'static str,
    headers: Vec<&'static str>,
    body: String,
}

impl Reply {
    fn new(status: u16, reason: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn header(mut self, header: &'static str) -> Self {
        self.headers.push(header);
        self
    }

    fn bad_request(why: impl std::fmt::Display) -> Self {
        Self::new(400, "Bad Request", format!("bad request: {why}\n"))
    }

    fn to_bytes(&self, keep_alive: bool, http11: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
            self.status,
            self.reason,
            self.body.len()
        );
        if !keep_alive {
            out.push_str("Connection: close\r\n");
        } else if !http11 {
            out.push_str("Connection: keep-alive\r\n");
        }
        for header in &self.headers {
            out.push_str(header);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&self.body);
        out.into_bytes()
    }
}

/// How the body of a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLength {
    /// No body.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What matters of a request head.
#[derive(Debug, Clone, PartialEq)]
struct Head {
    method: String,
    /// The request target as sent (path and query).
    path: String,
    /// Every header by its lower-case name; repeated ones joined with ", ".
    headers: Object,
    http11: bool,
    keep_alive: bool,
    body: BodyLength,
    expect_continue: bool,
}

impl Head {
    fn parse(request: &httparse::Request<'_, '_>) -> Result<Self, Reply> {
        let method = request.method.unwrap_or_default().to_owned();
        let path = request.path.unwrap_or_default().to_owned();
        let http11 = request.version == Some(1);
        let mut headers = Object::with_capacity(request.headers.len());
        let mut length: Option<u64> = None;
        let mut chunked = None;
        let mut close = false;
        let mut keep_alive = false;
        let mut expect_continue = false;
        for header in request.headers.iter() {
            let value = std::str::from_utf8(header.value)
                .map_err(|_| Reply::bad_request("a header value is not UTF-8"))?
                .trim();
            let name = header.name;
            let lower = name.to_ascii_lowercase();
            match headers.get_mut(&lower) {
                Some(Value::String(joined)) => {
                    joined.push_str(", ");
                    joined.push_str(value);
                }
                _ => {
                    headers.insert(lower, Value::from(value));
                }
            }
            if name.eq_ignore_ascii_case("content-length") {
                let n: u64 = value
                    .parse()
                    .map_err(|_| Reply::bad_request("bad Content-Length"))?;
                if length.is_some_and(|old| old != n) {
                    return Err(Reply::bad_request("conflicting Content-Length headers"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if chunked.is_some() || !value.eq_ignore_ascii_case("chunked") {
                    return Err(Reply::new(
                        501,
                        "Not Implemented",
                        "only Transfer-Encoding: chunked is supported\n",
                    ));
                }
                chunked = Some(());
            } else if name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                if !value.eq_ignore_ascii_case("100-continue") {
                    return Err(Reply::new(
                        417,
                        "Expectation Failed",
                        "only Expect: 100-continue is supported\n",
                    ));
                }
                expect_continue = http11;
            }
        }
        let body = match (length, chunked) {
            (Some(_), Some(())) => {
                return Err(Reply::bad_request(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
            (Some(n), None) => BodyLength::Length(n),
            (None, Some(())) => BodyLength::Chunked,
            (None, None) => BodyLength::None,
        };
        Ok(Self {
            method,
            path,
            headers,
            http11,
            keep_alive: if http11 { !close } else { keep_alive && !close },
            body,
            expect_continue,
        })
    }
}

/// Why reading stopped short.
enum Stopped {
    /// The client closed, went quiet for too long, or the server stops: close without a word.
    Quietly,
    /// Answer this, then close.
    Reply(Reply),
}

impl From<Reply> for Stopped {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

/// One client connection.
struct Connection<'a> {
    stream: TcpStream,
    peer: SocketAddr,
    shared: &'a Shared,
    to_source: &'a SyncSender<Request>,
    /// Bytes read and not used yet.
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl<'a> Connection<'a> {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        shared: &'a Shared,
        to_source: &'a SyncSender<Request>,
    ) -> Self {
        Self {
            stream,
            peer,
            shared,
            to_source,
            buf: Vec::new(),
            scratch: vec![0; 16 * 1024],
        }
    }

    /// Serves requests until the connection closes.
    fn serve(mut self) {
        let setup = self
            .stream
            .set_nonblocking(false)
            .and_then(|()| self.stream.set_read_timeout(Some(WAIT)))
            .and_then(|()| self.stream.set_write_timeout(Some(WRITE_TIMEOUT)));
        if let Err(e) = setup {
            tracing::warn!(id = %self.shared.id, peer = %self.peer, error = %e, "cannot set up a connection");
            return;
        }
        let mut served = 0_u64;
        loop {
            match self.one_request() {
                Ok(true) => served += 1,
                Ok(false) => {
                    served += 1;
                    break;
                }
                Err(Stopped::Quietly) => break,
                Err(Stopped::Reply(reply)) => {
                    tracing::debug!(
                        id = %self.shared.id,
                        peer = %self.peer,
                        status = reply.status,
                        "request refused"
                    );
                    if self.send(&reply, false, true) {
                        linger(&mut self.stream, LINGER);
                    }
                    break;
                }
            }
        }
        tracing::debug!(id = %self.shared.id, peer = %self.peer, requests = served, "connection closed");
    }

    /// Reads, hands over and answers one request; true to go on with the next.
    fn one_request(&mut self) -> Result<bool, Stopped> {
        let head = self.read_head()?;
        if !matches!(head.method.as_str(), "POST" | "PUT") {
            // The answer to HEAD has no body.
            let body = if head.method == "HEAD" {
                String::new()
            } else {
                format!("method {} not allowed: use POST or PUT\n", head.method)
            };
            return Err(Reply::new(405, "Method Not Allowed", body)
                .header("Allow: POST, PUT")
                .into());
        }
        let too_large = || {
            Reply::new(
                413,
                "Content Too Large",
                format!(
                    "the body is larger than the limit of {} bytes\n",
                    self.shared.max_body
                ),
            )
        };
        if let BodyLength::Length(n) = head.body
            && n > self.shared.max_body as u64
        {
            return Err(too_large().into());
        }
        if head.expect_continue && head.body != BodyLength::None {
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = match head.body {
            BodyLength::None => Vec::new(),
            BodyLength::Length(n) => {
                // Checked against `max_body` above.
                let n = usize::try_from(n).map_err(|_| too_large())?;
                self.fill_to(n)?;
                let body = self.buf[..n].to_vec();
                self.buf.drain(..n);
                body
            }
            BodyLength::Chunked => self.read_chunked().map_err(|e| match e {
                ChunkError::TooLarge => too_large().into(),
                ChunkError::Stopped(stopped) => stopped,
            })?,
        };
        let mut meta = Object::with_capacity(4);
        meta.push("peer".into(), Value::from(self.peer.to_string()));
        meta.push("method".into(), Value::from(head.method.as_str()));
        meta.push("path".into(), Value::from(head.path.as_str()));
        meta.push("headers".into(), Value::Object(head.headers));
        let reply = self.hand_over(Value::Object(meta), body)?;
        let keep_alive = head.keep_alive && !self.shared.stop.load(Ordering::Relaxed);
        if !self.send(&reply, keep_alive, head.http11) {
            return Err(Stopped::Quietly);
        }
        Ok(keep_alive)
    }

    /// Gives the request to the source and waits for its answer: until `pull` took it
    /// (`"accepted"`), or until its batch is acked or failed, or the timeout passes
    /// (`"delivered"`).
    fn hand_over(&mut self, meta: Value, body: Vec<u8>) -> Result<Reply, Stopped> {
        let shutting_down = || {
            Stopped::from(
                Reply::new(503, "Service Unavailable", "the server is shutting down\n")
                    .header("Retry-After: 1"),
            )
        };
        let stopping = || self.shared.stop.load(Ordering::Relaxed);
        let deadline = self.shared.timeout.map(|t| Instant::now() + t);
        let past = |deadline: Option<Instant>| deadline.is_some_and(|d| Instant::now() >= d);
        let (answer, answered) = mpsc::sync_channel(1);
        let state = Arc::new(AtomicU8::new(QUEUED));
        let mut request = Request {
            meta,
            body,
            state: Arc::clone(&state),
            answer,
        };
        // Not a blocking send: a full queue (the engine does not pull) must not outlast the
        // timeout.
        loop {
            match self.to_source.try_send(request) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Err(shutting_down()),
                Err(TrySendError::Full(back)) => {
                    if stopping() {
                        return Err(shutting_down());
                    }
                    if past(deadline) {
                        return Ok(self.timed_out(false));
                    }
                    request = back;
                    thread::sleep(QUEUE_POLL);
                }
            }
        }
        loop {
            let wait = deadline.map_or(WAIT, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT)
            });
            match answered.recv_timeout(wait) {
                Ok(reply) => return Ok(reply),
                Err(RecvTimeoutError::Disconnected) => return Err(shutting_down()),
                Err(RecvTimeoutError::Timeout) if stopping() => return Err(shutting_down()),
                Err(RecvTimeoutError::Timeout) if past(deadline) => {
                    let taken = state
                        .compare_exchange(QUEUED, GAVE_UP, Ordering::AcqRel, Ordering::Acquire)
                        .is_err();
                    // Answered in the meantime after all?
                    if let Ok(reply) = answered.try_recv() {
                        return Ok(reply);
                    }
                    return Ok(self.timed_out(taken));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The answer to a request whose outcome did not come within `timeout_ms`.
    fn timed_out(&self, taken: bool) -> Reply {
        let ms = self.shared.timeout.unwrap_or_default().as_millis();
        let body = if taken {
            format!(
                "not confirmed as delivered within timeout_ms = {ms}: the engine has the request \
                 and may still deliver it\n"
            )
        } else {
            format!(
                "the engine did not take the request within timeout_ms = {ms}: it was not \
                 forwarded\n"
            )
        };
        tracing::warn!(id = %self.shared.id, peer = %self.peer, taken, "request timed out: answered 503");
        Reply::new(503, "Service Unavailable", body).header("Retry-After: 1")
    }

    /// Writes a response; false when the client is gone.
    fn send(&mut self, reply: &Reply, keep_alive: bool, http11: bool) -> bool {
        self.stream
            .write_all(&reply.to_bytes(keep_alive, http11))
            .is_ok()
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Stopped> {
        self.stream.write_all(bytes).map_err(|_| Stopped::Quietly)
    }

    /// Reads more into `buf`; fails quietly on the end of the stream, an error, the idle
    /// timeout or the server stopping.
    fn fill(&mut self) -> Result<(), Stopped> {
        let started = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Err(Stopped::Quietly);
            }
            match self.stream.read(&mut self.scratch) {
                Ok(0) => return Err(Stopped::Quietly),
                Ok(n) => {
                    self.buf.extend_from_slice(&self.scratch[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if started.elapsed() >= IDLE_TIMEOUT {
                        return Err(Stopped::Quietly);
                    }
                }
                Err(_) => return Err(Stopped::Quietly),
            }
        }
    }

    /// Reads until `buf` holds at least `n` bytes.
    fn fill_to(&mut self, n: usize) -> Result<(), Stopped> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(())
    }

    /// Reads a request head.
    fn read_head(&mut self) -> Result<Head, Stopped> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                let parsed = match request.parse(&self.buf) {
                    Ok(httparse::Status::Complete(len)) => Some((Head::parse(&request)?, len)),
                    Ok(httparse::Status::Partial) => None,
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(too_large_head().into());
                    }
                    Err(e) => return Err(Reply::bad_request(e).into()),
                };
                if let Some((head, len)) = parsed {
                    self.buf.drain(..len);
                    return Ok(head);
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(too_large_head().into());
                }
            }
            self.fill()?;
        }
    }

    /// Reads a line ending in CRLF (at most `max` bytes); returns it without the CRLF, and
    /// removes it from `buf`.
    fn read_line(&mut self, max: usize) -> Result<Vec<u8>, Stopped> {
        let mut searched = 0;
        loop {
            if let Some(at) = self.buf[searched..].windows(2).position(|w| w == b"\r\n") {
                let end = searched + at;
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > max {
                return Err(Reply::bad_request("a chunk line is too long").into());
            }
            searched = self.buf.len().saturating_sub(1);
            self.fill()?;
        }
    }

    /// Reads a chunked body, up to `max_body`.
    fn read_chunked(&mut self) -> Result<Vec<u8>, ChunkError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(1024)?;
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| Stopped::from(Reply::bad_request("bad chunk size")))?;
            if size == 0 {
                // Trailers, which are dropped, up to an empty line.
                let mut trailers = 0;
                loop {
                    let line = self.read_line(MAX_HEAD)?;
                    if line.is_empty() {
                        return Ok(body);
                    }
                    trailers += line.len();
                    if trailers > MAX_HEAD {
                        return Err(Stopped::from(too_large_head()).into());
                    }
                }
            }
            if body.len().saturating_add(size) > self.shared.max_body {
                return Err(ChunkError::TooLarge);
            }
            self.fill_to(size + 2)?;
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(
                    Stopped::from(Reply::bad_request("a chunk does not end in CRLF")).into(),
                );
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

/// Why a chunked body could not be read.
enum ChunkError {
    TooLarge,
    Stopped(Stopped),
}

impl From<Stopped> for ChunkError {
    fn from(stopped: Stopped) -> Self {
        Self::Stopped(stopped)
    }
}

fn too_large_head() -> Reply {
    Reply::new(
        431,
        "Request Header Fields Too Large",
        format!(
            "the request head is larger than {MAX_HEAD} bytes or has more than {MAX_HEADERS} headers\n"
        ),
    )
}

temblor_shim::export_plugin! {
    name: "http_server",
    kind: Connector,
    source: HttpServer::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_shim::Value;

    fn config(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().cloned().collect())
    }

    fn server(fields: &[(&str, Value)]) -> HttpServer {
        let mut fields = fields.to_vec();
        fields.push(("url", Value::from("127.0.0.1:0")));
        let cfg = config(&fields);
        HttpServer::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("server")
    }

    /// Sends raw bytes on a new connection, pulling meanwhile; returns the whole answer (the
    /// server closes) and the frames pulled.
    fn exchange(server: &mut HttpServer, request: &[u8]) -> (String, Vec<Vec<u8>>) {
        let mut client = TcpStream::connect(server.local_addr()).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        client.write_all(request).expect("write");
        let mut answer = Vec::new();
        let mut frames = SourceBatch::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0; 4096];
        while Instant::now() < deadline {
            server.pull(&mut frames).expect("pull");
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        (
            String::from_utf8(answer).expect("utf-8"),
            frames.iter().map(<[u8]>::to_vec).collect(),
        )
    }

    fn statuses(answer: &str) -> Vec<&str> {
        answer
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &answer[i + 9..i + 12])
            .collect()
    }

    #[test]
    fn defaults_and_bad_values() {
        let c: Config = temblor_shim::from_value(&config(&[])).expect("config");
        assert_eq!(c.url, "127.0.0.1:8139");
        assert_eq!(c.max_body, 1024 * 1024);
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.response, Response::Accepted);
        assert_eq!(c.timeout_ms, 10_000);
        let c: Config =
            temblor_shim::from_value(&config(&[("response", Value::from("delivered"))]))
                .expect("config");
        assert_eq!(c.response, Response::Delivered);
        for (fields, needle) in [
            (
                vec![("response", Value::from("maybe"))],
                "`response` must be \"accepted\" or \"delivered\", found \"maybe\"",
            ),
            (vec![("response", Value::from(1_u64))], "`response`"),
            (vec![("timeout_ms", Value::from(0_u64))], "timeout_ms"),
            (
                vec![("max_connections", Value::from(0_u64))],
                "max_connections",
            ),
            (vec![("max_body", Value::from(0_u64))], "max_body"),
            (vec![("url", Value::from("https://127.0.0.1:0"))], "TLS"),
            (vec![("url", Value::from("localhost"))], "url"),
        ] {
            let cfg = config(&fields);
            let err = HttpServer::new(&Setup {
                id: "bad",
                config: &cfg,
            })
            .err()
            .expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{err}");
        }
        let cfg = config(&[("url", Value::from("http://127.0.0.1:0/"))]);
        let server = HttpServer::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("http:// is allowed");
        assert!(server.local_addr().ip().is_loopback());
    }

    #[test]
    fn pipelined_requests_on_one_connection_are_frames_in_order() {
        let mut server = server(&[]);
        let (answer, frames) = exchange(
            &mut server,
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst\
              PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nsec\r\n3\r\nond\r\n0\r\nTrailer: x\r\n\r\n\
              POST / HTTP/1.1\r\n\r\n\
              POST /c HTTP/1.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast",
        );
        assert_eq!(statuses(&answer), ["202", "202", "202", "202"], "{answer}");
        assert!(answer.ends_with("Connection: close\r\n\r\n"), "{answer}");
        assert_eq!(
            frames,
            [
                b"first".to_vec(),
                b"second".to_vec(),
                vec![],
                b"last".to_vec()
            ]
        );
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        let mut server = server(&[]);
        let (answer, frames) = exchange(
            &mut server,
            b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na\
              POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nb\
              POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nc",
        );
        assert_eq!(statuses(&answer), ["202", "202"], "{answer}");
        assert!(answer.contains("Connection: keep-alive"), "{answer}");
        assert_eq!(frames, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn bad_requests_are_answered_and_forward_nothing() {
        let mut server = server(&[("max_body", Value::from(8_u64))]);
        for (request, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "405"),
            (b"DELETE / HTTP/1.1\r\n\r\n", "405"),
            (b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789", "413"),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n",
                "413",
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "400",
            ),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "501"),
            (b"POST / HTTP/1.1\r\nExpect: magic\r\n\r\n", "417"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"),
            (b"NOT HTTP\r\n\r\n", "400"),
        ] {
            let (answer, frames) = exchange(&mut server, request);
            assert_eq!(statuses(&answer), [status], "{answer}");
            assert!(answer.contains("Connection: close"), "{answer}");
            assert!(frames.is_empty());
        }
        let mut long = b"POST / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_HEAD + 10));
        let (answer, _) = exchange(&mut server, &long);
        assert_eq!(statuses(&answer), ["431"], "{answer}");
        let (answer, frames) = exchange(
            &mut server,
            b"POST / HTTP/1.1\r\nContent-Length: 8\r\nConnection: close\r\n\r\n12345678",
        );
        assert_eq!(
            statuses(&answer),
            ["202"],
            "a body of exactly max_body fits"
        );
        assert_eq!(frames, [b"12345678".to_vec()]);
    }

    #[test]
    fn expect_continue_is_answered_only_when_the_body_fits() {
        let mut server = server(&[("max_body", Value::from(8_u64))]);
        let (answer, frames) = exchange(
            &mut server,
            b"POST / HTTP/1.1\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(statuses(&answer), ["413"], "{answer}");
        assert!(frames.is_empty());
        let (answer, frames) = exchange(
            &mut server,
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nok",
        );
        assert!(
            answer.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202"),
            "{answer}"
        );
        assert_eq!(frames, [b"ok".to_vec()]);
    }

    #[test]
    fn dropping_the_source_answers_waiting_requests_503_and_frees_the_port() {
        let server = server(&[]);
        let addr = server.local_addr();
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            .expect("write");
        // Never pulled: the body waits in the queue.
        thread::sleep(Duration::from_millis(200));
        let begin = Instant::now();
        drop(server);
        assert!(
            begin.elapsed() < Duration::from_secs(3),
            "{:?}",
            begin.elapsed()
        );
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = client.read_to_string(&mut answer);
        assert_eq!(statuses(&answer), ["503"], "{answer}");
        assert!(TcpStream::connect(addr).is_err());
        TcpListener::bind(addr).expect("the port is free again");
    }

    /// A server answering once the engine says so.
    fn delivering(timeout_ms: u64) -> HttpServer {
        server(&[
            ("response", Value::from("delivered")),
            ("timeout_ms", Value::from(timeout_ms)),
        ])
    }

    /// Sends `request` on a new connection (it should say `Connection: close`).
    fn post(server: &HttpServer, request: &[u8]) -> TcpStream {
        let mut client = TcpStream::connect(server.local_addr()).expect("connect");
        client.write_all(request).expect("write");
        client
    }

    fn close(body: &str) -> Vec<u8> {
        format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Pulls under `token` until the batch holds `n` frames.
    fn pull_until(server: &mut HttpServer, token: u64, n: usize) -> SourceBatch {
        let mut out = SourceBatch::new();
        out.reset(token);
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.frames().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} frames",
                out.frames().len()
            );
            server.pull(&mut out).expect("pull");
        }
        out
    }

    /// The whole answer (the server closes after it).
    fn read_answer(client: &mut TcpStream) -> String {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = String::new();
        client.read_to_string(&mut answer).expect("read");
        answer
    }

    /// Whether no byte of an answer comes within 200 ms.
    fn unanswered(client: &mut TcpStream) -> bool {
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        matches!(
            client.read(&mut [0; 64]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
        )
    }

    #[test]
    fn delivered_answers_200_only_after_the_ack() {
        let mut server = delivering(10_000);
        assert!(server.wants_acks());
        let mut client = post(&server, &close("hi"));
        let out = pull_until(&mut server, 7, 1);
        assert_eq!(out.frames().get(0), Some(&b"hi"[..]));
        assert!(unanswered(&mut client), "answered before the ack");
        // Another token's outcome is not this request's.
        server.ack(8).expect("ack");
        server.fail(9, "not mine").expect("fail");
        assert!(unanswered(&mut client), "answered by another token");
        server.ack(7).expect("ack");
        let answer = read_answer(&mut client);
        assert_eq!(statuses(&answer), ["200"], "{answer}");
        // Acked twice: nothing left to answer, nothing happens.
        server.ack(7).expect("ack again");
    }

    #[test]
    fn delivered_answers_503_with_the_reason_after_a_fail() {
        let mut server = delivering(10_000);
        let mut client = post(&server, &close("{\"a\":1}"));
        pull_until(&mut server, 3, 1);
        assert!(unanswered(&mut client));
        server
            .fail(3, "'out': writing failed after 0 retries")
            .expect("fail");
        let answer = read_answer(&mut client);
        assert_eq!(statuses(&answer), ["503"], "{answer}");
        assert!(answer.contains("Retry-After: 1\r\n"), "{answer}");
        assert!(
            answer.ends_with("not delivered: 'out': writing failed after 0 retries\n"),
            "{answer}"
        );
    }

    #[test]
    fn requests_of_one_batch_share_its_token() {
        let mut server = delivering(10_000);
        let mut first = post(&server, &close("one"));
        let mut second = post(&server, &close("two"));
        // Both queued before the pull takes them.
        thread::sleep(Duration::from_millis(300));
        let out = pull_until(&mut server, 11, 2);
        assert_eq!(out.runs().len(), 2, "two streams");
        assert!(unanswered(&mut first) && unanswered(&mut second));
        server.ack(11).expect("ack");
        for client in [&mut first, &mut second] {
            let answer = read_answer(client);
            assert_eq!(statuses(&answer), ["200"], "{answer}");
        }
    }

    #[test]
    fn delivered_answers_503_when_no_outcome_comes_in_time() {
        let mut server = delivering(300);
        // Taken by the engine, never acked: it may still be delivered.
        let begin = Instant::now();
        let mut client = post(&server, &close("late"));
        pull_until(&mut server, 5, 1);
        let answer = read_answer(&mut client);
        assert!(begin.elapsed() >= Duration::from_millis(300), "{answer}");
        assert_eq!(statuses(&answer), ["503"], "{answer}");
        assert!(answer.contains("may still deliver it"), "{answer}");
        // The ack coming too late does no harm.
        server.ack(5).expect("ack");

        // Never taken (nothing pulls): not forwarded afterwards either.
        let mut client = post(&server, &close("never"));
        let answer = read_answer(&mut client);
        assert_eq!(statuses(&answer), ["503"], "{answer}");
        assert!(answer.contains("it was not forwarded"), "{answer}");
        let mut out = SourceBatch::new();
        out.reset(6);
        assert_eq!(server.pull(&mut out).expect("pull"), Pull::Idle);
        assert!(out.is_empty(), "a request answered 503 is not handed over");
    }

    #[test]
    fn accepted_answers_202_when_handed_over_and_asks_no_acks() {
        let mut server = server(&[]);
        assert!(!server.wants_acks());
        let mut client = post(&server, &close("now"));
        pull_until(&mut server, 0, 1);
        let answer = read_answer(&mut client);
        assert_eq!(statuses(&answer), ["202"], "{answer}");
    }

    #[test]
    fn delivered_without_acknowledgements_answers_202() {
        let mut server = delivering(10_000);
        let mut client = post(&server, &close("x"));
        // Token 0: the engine tracks nothing, no ack will come.
        pull_until(&mut server, 0, 1);
        let answer = read_answer(&mut client);
        assert_eq!(statuses(&answer), ["202"], "{answer}");
    }

    #[test]
    fn each_request_is_a_stream_with_its_meta_and_lower_case_headers() {
        let mut server = server(&[]);
        let mut client = post(
            &server,
            b"PUT /in/x?y=1&z HTTP/1.1\r\nHost: here\r\nX-Key:  a \r\nX-KEY: b\r\n\
              Content-Length: 5\r\nConnection: close\r\n\r\n1\n2\n3",
        );
        let peer = client.local_addr().expect("addr").to_string();
        let out = pull_until(&mut server, 0, 1);
        assert_eq!(statuses(&read_answer(&mut client)), ["202"]);
        let runs: Vec<_> = out.all_runs().collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        let (range, run) = &runs[0];
        assert_eq!(range.clone(), 0..1);
        assert!(run.starts() && run.ends(), "{run:?}");
        assert!(run.stream != temblor_shim::DEFAULT_STREAM);
        assert_eq!(
            out.frames().get(0),
            Some(&b"1\n2\n3"[..]),
            "the body, whole"
        );
        let headers: Object = [
            ("host", Value::from("here")),
            ("x-key", Value::from("a, b")),
            ("content-length", Value::from("5")),
            ("connection", Value::from("close")),
        ]
        .into_iter()
        .collect();
        let expected: Object = [
            ("peer", Value::from(peer)),
            ("method", Value::from("PUT")),
            ("path", Value::from("/in/x?y=1&z")),
            ("headers", Value::Object(headers)),
        ]
        .into_iter()
        .collect();
        assert_eq!(run.meta, Value::Object(expected));

        // The next request is a stream of its own, with a new id.
        let mut client = post(&server, &close(""));
        let next = pull_until(&mut server, 0, 1);
        assert_eq!(statuses(&read_answer(&mut client)), ["202"]);
        let next_run = &next.runs()[0];
        assert!(next_run.starts() && next_run.ends());
        assert_ne!(next_run.stream, run.stream);
        assert_eq!(
            next.frames().get(0),
            Some(&b""[..]),
            "an empty body is a chunk too"
        );
        assert_eq!(next_run.meta.get("method"), Some(&Value::from("POST")));
    }

    #[test]
    fn dropping_the_source_answers_requests_waiting_for_their_outcome_503() {
        let mut server = delivering(10_000);
        let mut client = post(&server, &close("pending"));
        pull_until(&mut server, 4, 1);
        assert!(unanswered(&mut client));
        let begin = Instant::now();
        drop(server);
        assert!(
            begin.elapsed() < Duration::from_secs(3),
            "{:?}",
            begin.elapsed()
        );
        let answer = read_answer(&mut client);
        assert_eq!(statuses(&answer), ["503"], "{answer}");
        assert!(answer.contains("shutting down"), "{answer}");
    }
}
