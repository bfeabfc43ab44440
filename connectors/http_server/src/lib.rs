//! The `http_server` connector: an HTTP server (HTTP/1.1 and HTTP/2, plain or over TLS) that
//! turns each request into a stream of the engine (its body, with the request's method, path,
//! headers and peer as metadata), and answers it when the body was handed over
//! (`response = "accepted"`) or only once its events were delivered (`response = "delivered"`).
//!
//! Source only (asking for a sink is an `Unsupported` error). Built on hyper, on the plugin's
//! tokio runtime (`temblor-net`): one task per connection, no thread of its own, so ten thousand
//! idle keep-alive connections cost little. The constructor binds the address, so a port in use
//! (or a bad certificate) is reported when the engine starts. Up to `max_connections`
//! connections are served at once; one more is answered `503 Service Unavailable` and closed
//! (over TLS: closed). HTTP/1.1 keep-alive and pipelining, HTTP/1.0, chunked bodies and
//! `Expect: 100-continue` work; HTTP/2 is spoken with prior knowledge (h2c) on plain TCP and
//! through ALPN (`h2`, `http/1.1`) over TLS. `pull` hands over what the connections queued and
//! never waits when the engine takes its wake-up handle. When the source is dropped (the engine
//! stops), requests still waiting are answered `503`, the listener closes, connections get 2 s
//! to finish and are closed; when the drop returns the port is free.
//!
//! **Requests.** `POST` and `PUT`, to any path, are accepted. Any other method is answered
//! `405 Method Not Allowed`. A body larger than `max_body` is answered `413 Content Too Large`
//! and not forwarded: with a `Content-Length`, before any of it is read (`Expect:
//! 100-continue` is then answered `413`, not `100`). A malformed request (a header value that
//! is not UTF-8 too) gets `400`, a head larger than 16 KiB or with more than 64 headers `431`,
//! an `Expect` other than `100-continue` `417`, a transfer coding other than `chunked` `501`
//! (`400` when `chunked` is not the last one; with both `Content-Length` and `chunked` the body
//! is read as chunked). After an error an HTTP/1 connection is closed. A connection with no
//! request in flight for 30 s is closed, and so is one whose body stalls for 30 s. An HTTP/2
//! connection serves at most 32 requests at once.
//!
//! **Each request is a stream.** The body is read whole, then handed over by `pull` as a
//! stream of its own, with a fresh id: `start_stream(id, meta)`, the body as one chunk
//! (`push_stream`, exactly as sent, an empty body too), `end_stream(id)`. So the connector's
//! preprocessors run per request: with `preprocessors = ["separate"]` an NDJSON body becomes
//! one event per line (a last line without a newline included), and no request's partial line
//! is ever glued to another's. Without preprocessors the body is one frame.
//!
//! **Answers.**
//! - `response = "accepted"` (the default): `202 Accepted` once `pull` appended the body to a
//!   batch, i.e. handed it to the engine (not yet decoded, processed or written anywhere).
//! - `response = "delivered"`: the source asks for acknowledgements (docs/delivery.md). Every
//!   request handed over by one pull belongs to that pull's batch token; it is answered `200 OK`
//!   when the engine acks the token (every sink its events reached wrote and flushed them, or
//!   dead-lettered them, or a filter dropped them), `503` with the engine's reason in the body
//!   when it fails the token. When neither happened within `timeout_ms` of the body being read,
//!   it is answered `503` all the same: the body says whether the engine had taken it (it may
//!   still be delivered) or not (it never will be: it is not forwarded after that). An engine
//!   that tracks no acknowledgements (token 0) gets `202` answers, with a warning in the log.
//!
//! Until its answer the client waits: when the engine is slower than the clients (or a sink's
//! circuit breaker paused this source) at most 64 bodies queue for `pull`, later ones wait for
//! room.
//! A request the engine never took (it stopped first) is answered `503`. Every `503` carries
//! `Retry-After: 1`. What a crash loses: with `"accepted"`, every request answered `202` whose
//! events were not written yet; with `"delivered"`, nothing answered `200` (a request answered
//! `503` or not at all may still have been delivered: give requests an idempotency key header,
//! it travels in `meta.headers`).
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:8139"`): the `host:port` to listen on, with an optional
//!   `http://` or `https://` (which needs `tls`). `"0.0.0.0:8139"` listens on every interface;
//!   port 0 picks a free port (the log line "http server listening" says which).
//! - `max_body` (integer, default 1048576, 1 to 268435456): the largest body accepted, in bytes.
//! - `max_connections` (integer, default 64, at least 1): connections served at once.
//! - `response` (string, default `"accepted"`): `"accepted"` or `"delivered"`, as above.
//! - `timeout_ms` (integer, default 10000, at least 1): with `"delivered"`, the longest a
//!   request waits for its outcome, from the end of its body, before it is answered `503`.
//!   Ignored with `"accepted"`.
//! - `tls` (table, default none): `{ cert = "server.pem", key = "server.key" }`, PEM files of the
//!   certificate chain and its private key; every connection is then TLS (ALPN `h2`,
//!   `http/1.1`). A file that cannot be read or used is an error at start-up naming the field.
//!
//! ## Metadata
//! Every event of a request gets (besides `connector` and `stream`, which the engine adds):
//! - `meta.peer` (string): the client's address, `"ip:port"`.
//! - `meta.method` (string): `"POST"` or `"PUT"`.
//! - `meta.path` (string): the request target's path and query, e.g. `"/ingest?x=1"`.
//! - `meta.headers` (object): every header, by its name in lower case, to its value (trimmed);
//!   a header sent more than once has its values joined with `", "` in the order sent. Over
//!   HTTP/2 the `:authority` is given as `host` when no `host` header was sent.
//!
//! ## Example
//! NDJSON posted to `/ingest` over HTTPS, each line an event, answered once it is in the file:
//! ```toml
//! [[connector]]
//! id = "ingest"
//! plugin = "http_server"
//! codec = "json"
//! preprocessors = ["separate"]
//! config = { url = "https://127.0.0.1:8443", response = "delivered", timeout_ms = 5000, tls = { cert = "server.pem", key = "server.key" } }
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
//! `curl --cacert ca.pem --data-binary @events.ndjson https://127.0.0.1:8443/ingest` then exits
//! 0 once every line is in `events.json` (`-w '%{http_code}'` shows the `200`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use temblor_net::{
    Service, StopSignal,
    acceptor::{self, Counts, Listener, Options, Refuse},
    addr,
    conn::Conn,
    http_body_util::{BodyExt, Full},
    hyper::{
        HeaderMap, Method, Request as HttpRequest, Response as HttpResponse, StatusCode, Version,
        body::{Body as _, Bytes, Incoming},
        header::{self, HeaderValue},
        http::request::Parts,
        service::service_fn,
    },
    hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::conn::auto,
    },
    inbox::{self, Closed, Drain, Inbox, Outbox},
    tls::ServerTls,
    tokio::{
        self,
        sync::{Notify as Changed, oneshot},
        time::{Instant, timeout, timeout_at},
    },
};
use temblor_shim::{
    ErrorKind, Notify, Object, PluginError, Pull, Setup, Source, SourceBatch, Value,
    serde::{Deserialize, Deserializer},
    tracing,
};

/// How long `pull` waits for a request when the engine gave no wake-up handle.
const WAIT: Duration = Duration::from_millis(100);

/// How many request bodies may wait for `pull`.
const QUEUE: usize = 64;

/// The most requests one `pull` takes.
const PULL_REQUESTS: usize = 256;

/// The most bytes one `pull` appends (it stops after the body that crosses this).
const PULL_BYTES: usize = 4 * 1024 * 1024;

/// The largest request head (request line and headers; HTTP/2: the header list).
pub const MAX_HEAD: usize = 16 * 1024;

/// Requests served at once on one HTTP/2 connection (each may hold a body of `max_body`).
pub const H2_STREAMS: u32 = 32;

/// The most headers in a request.
pub const MAX_HEADERS: usize = 64;

/// A connection with no request in flight for this long is closed; so is a body that stalls.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection closing after its idle time may take to finish writing.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// After an error answer on HTTP/1, how long the rest of the body is read and dropped before
/// the connection closes (closing with unread data would reset it, and the client could miss
/// the answer).
const LINGER: Duration = Duration::from_secs(1);

/// The most connections waiting to be accepted (`max_connections`, at least 128).
const BACKLOG: u32 = 4096;

/// After a stop: how long open connections get to finish.
const GRACE: Duration = Duration::from_secs(2);

/// The largest `max_body` accepted.
pub const MAX_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// What a connection over `max_connections` gets.
const TOO_MANY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n";

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
        use temblor_shim::serde::de::Error;
        let text = String::deserialize(deserializer).map_err(|e| {
            D::Error::custom(format_args!(
                "`response` must be \"accepted\" or \"delivered\": {e}"
            ))
        })?;
        match text.as_str() {
            "accepted" => Ok(Self::Accepted),
            "delivered" => Ok(Self::Delivered),
            other => Err(D::Error::custom(format_args!(
                "`response` must be \"accepted\" or \"delivered\", found {other:?}"
            ))),
        }
    }
}

/// The connector's `config` (every key has a default).
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", default, deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to listen on.
    pub url: String,
    /// The largest body accepted, in bytes.
    pub max_body: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// When requests are answered.
    pub response: Response,
    /// With `Response::Delivered`: the longest a request waits for its outcome, in ms.
    pub timeout_ms: u64,
    /// TLS on every connection.
    pub tls: Option<ServerTls>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            url: "127.0.0.1:8139".to_owned(),
            max_body: 1024 * 1024,
            max_connections: 64,
            response: Response::default(),
            timeout_ms: 10_000,
            tls: None,
        }
    }
}

impl Config {
    /// Checks the values serde cannot; returns the addresses to listen on.
    fn validate(&self) -> Result<Vec<SocketAddr>, PluginError> {
        let fail = |what: std::fmt::Arguments<'_>| Err(PluginError::config(format_args!("{what}")));
        if self.max_connections == 0 {
            return fail(format_args!("`max_connections` must be at least 1"));
        }
        if !(1..=MAX_BODY_LIMIT).contains(&self.max_body) {
            return fail(format_args!(
                "`max_body` must be between 1 and {MAX_BODY_LIMIT}, found {}",
                self.max_body
            ));
        }
        if self.timeout_ms == 0 {
            return fail(format_args!("`timeout_ms` must be at least 1"));
        }
        let (scheme, host_port) = addr::split_scheme(&self.url, &["http://", "https://"]);
        match (scheme, &self.tls) {
            ("https://", None) => fail(format_args!(
                "`url` {:?} is https:// but there is no `tls` table (tls = {{ cert = \"...\", key = \"...\" }})",
                self.url
            )),
            ("http://", Some(_)) => fail(format_args!(
                "`url` {:?} is http:// but `tls` is set: use https:// or host:port",
                self.url
            )),
            _ => addr::resolve("url", host_port),
        }
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
    /// `QUEUED`, then `TAKEN` (by `pull`) or `GAVE_UP` (by its connection), whichever first.
    state: Arc<AtomicU8>,
    /// The answer; dropping it unsent answers `503` (shutting down).
    answer: oneshot::Sender<Reply>,
}

/// An answer.
#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    body: String,
    /// Close an HTTP/1 connection after it.
    close: bool,
}

impl Reply {
    fn new(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            close: false,
        }
    }

    /// An error answer, after which an HTTP/1 connection closes.
    fn error(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            close: true,
            ..Self::new(status, body)
        }
    }

    fn shutting_down() -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down\n",
        )
    }

    fn bad_request(why: impl std::fmt::Display) -> Self {
        Self::error(StatusCode::BAD_REQUEST, format!("bad request: {why}\n"))
    }

    fn into_response(self, http1: bool) -> HttpResponse<Full<Bytes>> {
        let mut response = HttpResponse::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        let text = HeaderValue::from_static("text/plain; charset=utf-8");
        headers.insert(header::CONTENT_TYPE, text);
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST, PUT"));
            }
            _ => {}
        }
        if self.close && http1 {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// What the connections share.
struct Shared {
    id: String,
    max_body: usize,
    /// With `Response::Delivered`, how long a request waits for its outcome.
    timeout: Option<Duration>,
    outbox: Outbox<Request>,
    /// HTTP/1 only, HTTP/2 only, and either (told apart by the client's first bytes).
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    auto: auto::Builder<TokioExecutor>,
}

/// How every connection speaks HTTP (keep-alive is hyper's default).
fn builder() -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS)
        .max_header_list_size(u32::try_from(MAX_HEAD).unwrap_or(u32::MAX));
    http
}

/// How an HTTP/2 connection with prior knowledge starts.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Shared {
    /// The protocol of a connection: ALPN's choice over TLS, else the client's first bytes
    /// (peeked, not read: hyper reads them; waits for them). `None` when it closed first.
    ///
    /// (The auto builder would read those bytes itself and hand them back in front of the
    /// rest, which makes hyper's read buffer grow to 16 KiB on every connection.)
    async fn protocol(&self, conn: &Conn) -> Option<&auto::Builder<TokioExecutor>> {
        let Conn::Tcp(tcp) = conn else {
            return Some(match conn.alpn() {
                Some(b"h2") => &self.http2,
                Some(_) => &self.http1,
                None => &self.auto,
            });
        };
        let mut first = [0; 4];
        let n = tcp.peek(&mut first).await.ok()?;
        let seen = first.get(..n).filter(|s| !s.is_empty())?;
        Some(if !H2_PREFACE.starts_with(seen) {
            &self.http1
        } else if n == first.len() {
            &self.http2
        } else {
            // "P", "PR" or "PRI" so far: hyper waits for the rest.
            &self.auto
        })
    }
}

/// The `http_server` source.
pub struct HttpServer {
    local: SocketAddr,
    response: Response,
    counts: Arc<Counts>,
    /// With `Response::Delivered`: the answers owed, by the token of the batch that carried
    /// their requests.
    waiting: HashMap<u64, Vec<oneshot::Sender<Reply>>>,
    /// The id of the next request's stream (0 is the engine's default stream).
    next_stream: u64,
    warned_no_acks: bool,
    taken: u64,
    delivered: u64,
    failed: u64,
    /// Dropped before `_service` (fields drop in order): requests still queued lose their
    /// answer's sender, so their connections answer `503` while the service stops.
    inbox: Inbox<Request>,
    _service: Service,
}

impl HttpServer {
    /// Binds the configured address and starts accepting connections.
    ///
    /// # Errors
    /// A `Config` error for a bad config (a certificate too); an `Io` error when the address
    /// cannot be bound, a TLS file cannot be read or the runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        let addrs = config.validate()?;
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.acceptor(&[b"h2", b"http/1.1"]))
            .transpose()?;
        let handle = temblor_net::runtime::handle()?;
        let listener = {
            let _runtime = handle.enter();
            // A burst of clients waits in the kernel until accepted.
            let backlog =
                u32::try_from(config.max_connections).map_or(BACKLOG, |n| n.clamp(128, BACKLOG));
            addr::listen_tcp(&addrs, backlog)?
        };
        let local = listener
            .local_addr()
            .map_err(|e| PluginError::io(format_args!("listening socket"), &e))?;
        let (outbox, inbox) = inbox::channel(QUEUE, handle.clone());
        let shared = Arc::new(Shared {
            id: id.to_owned(),
            max_body: config.max_body,
            timeout: (config.response == Response::Delivered)
                .then(|| Duration::from_millis(config.timeout_ms)),
            outbox,
            http1: builder().http1_only(),
            http2: builder().http2_only(),
            auto: builder(),
        });
        let options = Options {
            id: id.to_owned(),
            max_connections: config.max_connections,
            refuse: Refuse::Reply(TOO_MANY),
            tls,
            grace: GRACE,
        };
        let counts = Arc::new(Counts::default());
        let mut service = Service::new(handle, GRACE + Duration::from_secs(1));
        let serve = acceptor::serve(
            Listener::Tcp(listener),
            options,
            Arc::clone(&counts),
            service.signal(),
            move |conn, peer, stop| connection(Arc::clone(&shared), conn, peer, stop),
        );
        service.spawn(serve);
        tracing::info!(
            addr = %local,
            tls = config.tls.is_some(),
            max_body = config.max_body,
            max_connections = config.max_connections,
            response = ?config.response,
            "http server listening"
        );
        Ok(Self {
            local,
            response: config.response,
            counts,
            waiting: HashMap::new(),
            next_stream: 1,
            warned_no_acks: false,
            taken: 0,
            delivered: 0,
            failed: 0,
            inbox,
            _service: service,
        })
    }

    /// The address the server listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Hands `request` over as a stream of its own, unless its connection gave up on it; then
    /// answers it `202` or files its answer under the batch's token.
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
        if self.response == Response::Delivered {
            if token != 0 {
                self.waiting.entry(token).or_default().push(answer);
                return;
            }
            if !self.warned_no_acks {
                self.warned_no_acks = true;
                tracing::warn!(
                    "response = \"delivered\", but the engine tracks no acknowledgements \
                     (token 0): requests are answered 202 when handed over"
                );
            }
        }
        // The connection may be gone already; the body is the engine's all the same.
        let _ = answer.send(Reply::new(StatusCode::ACCEPTED, ""));
    }

    /// Answers the requests carried by the batch `token`, if any; how many.
    fn answer(&mut self, token: u64, reply: &Reply) -> u64 {
        let Some(answers) = self.waiting.remove(&token) else {
            return 0;
        };
        let n = answers.len() as u64;
        for answer in answers {
            // A connection that timed out or closed is not listening any more.
            let _ = answer.send(reply.clone());
        }
        n
    }
}

impl Source for HttpServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        // Waits only when the engine gave no wake-up handle.
        let mut drain = Drain::new(PULL_REQUESTS, WAIT);
        while let Some(request) = drain.next(&mut self.inbox).map_err(|Closed| {
            PluginError::new(ErrorKind::Other, "the http acceptor stopped unexpectedly")
        })? {
            self.take(request, out);
            if out.byte_len() >= PULL_BYTES {
                break;
            }
        }
        // A request answered while it waited hands nothing over. Else more may wait: the
        // engine pulls again at once.
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
        self.delivered += self.answer(token, &Reply::new(StatusCode::OK, ""));
        Ok(())
    }

    fn fail(&mut self, token: u64, reason: &str) -> Result<(), PluginError> {
        let body = format!("not delivered: {reason}\n");
        let n = self.answer(token, &Reply::new(StatusCode::SERVICE_UNAVAILABLE, body));
        if n > 0 {
            tracing::warn!(requests = n, reason = %reason, "requests not delivered: answered 503");
        }
        self.failed += n;
        Ok(())
    }

    fn set_notify(&mut self, notify: Notify) -> bool {
        self.inbox.set_notify(notify)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Their senders dropped, requests waiting for their outcome are answered 503; the
        // queued ones follow when `inbox` is dropped, then `_service` stops and joins.
        let unanswered: usize = self.waiting.drain().map(|(_, a)| a.len()).sum();
        tracing::info!(
            addr = %self.local,
            connections = self.counts.accepted.load(Ordering::Relaxed),
            refused = self.counts.refused.load(Ordering::Relaxed),
            requests = self.taken,
            delivered = self.delivered,
            failed = self.failed,
            unanswered,
            "http server closing"
        );
    }
}

/// One connection's state, shared with the service of each of its requests.
struct Ctx {
    shared: Arc<Shared>,
    peer: String,
    /// Requests being served.
    active: AtomicUsize,
    /// Notified when `active` changes.
    changed: Changed,
}

/// A request being served: counted in [`Ctx::active`] while it lives.
struct Busy<'a>(&'a Ctx);

impl<'a> Busy<'a> {
    fn new(ctx: &'a Ctx) -> Self {
        ctx.active.fetch_add(1, Ordering::Relaxed);
        ctx.changed.notify_one();
        Self(ctx)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.changed.notify_one();
    }
}

/// Serves one connection (HTTP/1 or HTTP/2, as the client speaks) until it closes, it has no
/// request in flight for [`IDLE_TIMEOUT`], or the server stops (then in-flight requests finish).
async fn connection(shared: Arc<Shared>, conn: Conn, peer: String, mut stop: StopSignal) {
    let ctx = Arc::new(Ctx {
        shared: Arc::clone(&shared),
        peer,
        active: AtomicUsize::new(0),
        changed: Changed::new(),
    });
    let service = {
        let ctx = Arc::clone(&ctx);
        // Boxed: hyper keeps room for one request's future per connection, idle or not.
        service_fn(move |request| Box::pin(Arc::clone(&ctx).serve(request)))
    };
    let http = tokio::select! {
        http = timeout(IDLE_TIMEOUT, shared.protocol(&conn)) => http,
        () = stop.stopped() => return,
    };
    let Ok(Some(http)) = http else {
        return;
    };
    let served = http.serve_connection(TokioIo::new(conn), service);
    tokio::pin!(served);
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(connector = %shared.id, peer = %ctx.peer, error = %e, "connection ended");
                }
                return;
            }
            () = stop.stopped(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            () = ctx.changed.notified() => idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT),
            () = idle.as_mut(), if ctx.active.load(Ordering::Relaxed) == 0 => {
                if closing {
                    return;
                }
                closing = true;
                served.as_mut().graceful_shutdown();
                idle.as_mut().reset(Instant::now() + CLOSE_WAIT);
            }
        }
    }
}

/// Why a body was not read whole.
enum BodyError {
    TooLarge,
    Broken(temblor_net::hyper::Error),
    Stalled,
}

impl Ctx {
    /// Answers one request.
    async fn serve(
        self: Arc<Self>,
        request: HttpRequest<Incoming>,
    ) -> Result<HttpResponse<Full<Bytes>>, std::io::Error> {
        let _busy = Busy::new(&self);
        let (parts, mut body) = request.into_parts();
        let http1 = parts.version < Version::HTTP_2;
        let expect_continue = http1
            && parts
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let checked = self.check(&parts, &body);
        // The head's bytes are slices of the connection's read buffer: dropped now, hyper
        // reuses the buffer instead of allocating another while the request is served.
        drop(parts);
        let polled = checked.is_ok();
        let reply = match checked {
            Err(reply) => reply,
            Ok(meta) => match read_body(&mut body, self.shared.max_body).await {
                Ok(bytes) => self.hand_over(meta, bytes).await,
                Err(BodyError::Stalled) => {
                    tracing::debug!(connector = %self.shared.id, peer = %self.peer, "request body stalled: connection closed");
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                Err(BodyError::TooLarge) => self.too_large(),
                Err(BodyError::Broken(e)) => Reply::bad_request(e),
            },
        };
        if reply.close {
            tracing::debug!(connector = %self.shared.id, peer = %self.peer, status = %reply.status, "request refused");
            // Read the rest (the client sends it anyway), unless it waits for a 100 Continue.
            // Over HTTP/2 too: a stream whose body is dropped unread is reset, and a client
            // may see the reset before the answer (curl then reports no status at all).
            if !body.is_end_stream() && (polled || !expect_continue) {
                tokio::spawn(timeout(LINGER, async move {
                    while let Some(Ok(_)) = body.frame().await {}
                }));
            }
        }
        Ok(reply.into_response(http1))
    }

    /// Checks a request's head: its stream's metadata, or the answer that refuses it.
    fn check(&self, parts: &Parts, body: &Incoming) -> Result<Value, Reply> {
        if !matches!(parts.method, Method::POST | Method::PUT) {
            // The answer to HEAD has no body (hyper leaves it out).
            let why = format!("method {} not allowed: use POST or PUT\n", parts.method);
            return Err(Reply::error(StatusCode::METHOD_NOT_ALLOWED, why));
        }
        let headers = &parts.headers;
        if let Some(expect) = headers.get(header::EXPECT)
            && !expect.as_bytes().eq_ignore_ascii_case(b"100-continue")
        {
            let why = "only Expect: 100-continue is supported\n";
            return Err(Reply::error(StatusCode::EXPECTATION_FAILED, why));
        }
        if headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .any(|te| !te.as_bytes().eq_ignore_ascii_case(b"chunked"))
        {
            let why = "only Transfer-Encoding: chunked is supported\n";
            return Err(Reply::error(StatusCode::NOT_IMPLEMENTED, why));
        }
        if body.size_hint().lower() > self.shared.max_body as u64 {
            return Err(self.too_large());
        }
        meta(parts, &self.peer)
    }

    fn too_large(&self) -> Reply {
        let why = format!(
            "the body is larger than the limit of {} bytes\n",
            self.shared.max_body
        );
        Reply::error(StatusCode::PAYLOAD_TOO_LARGE, why)
    }

    /// Gives the request to `pull` and waits for its answer: until `pull` took it
    /// (`"accepted"`), or until its batch is acked or failed, or the timeout passes
    /// (`"delivered"`).
    async fn hand_over(&self, meta: Value, body: Vec<u8>) -> Reply {
        let shared = &*self.shared;
        let (answer, mut answered) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let request = Request {
            meta,
            body,
            state: Arc::clone(&state),
            answer,
        };
        let Some(limit) = shared.timeout else {
            if shared.outbox.send(request).await.is_err() {
                return Reply::shutting_down();
            }
            return answered.await.unwrap_or_else(|_| Reply::shutting_down());
        };
        let deadline = Instant::now() + limit;
        match timeout_at(deadline, shared.outbox.send(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Reply::shutting_down(),
            // Never queued: never forwarded.
            Err(_) => return self.timed_out(false),
        }
        match timeout_at(deadline, &mut answered).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Reply::shutting_down(),
            Err(_) => {
                let taken = state
                    .compare_exchange(QUEUED, GAVE_UP, Ordering::AcqRel, Ordering::Acquire)
                    .is_err();
                // Answered in the meantime after all?
                answered
                    .try_recv()
                    .unwrap_or_else(|_| self.timed_out(taken))
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
        tracing::warn!(connector = %self.shared.id, peer = %self.peer, taken, "request timed out: answered 503");
        Reply::new(StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// The stream's metadata: `peer`, `method`, `path`, `headers`.
fn meta(parts: &Parts, peer: &str) -> Result<Value, Reply> {
    let headers = headers(&parts.headers, parts.version, parts.uri.authority())?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut meta = Object::with_capacity(4);
    meta.push("peer".into(), Value::from(peer));
    meta.push("method".into(), Value::from(parts.method.as_str()));
    meta.push("path".into(), Value::from(path));
    meta.push("headers".into(), Value::Object(headers));
    Ok(Value::Object(meta))
}

/// Every header by its lower-case name, repeated ones joined with ", ".
fn headers(
    map: &HeaderMap,
    version: Version,
    authority: Option<&temblor_net::hyper::http::uri::Authority>,
) -> Result<Object, Reply> {
    let mut headers = Object::with_capacity(map.keys_len() + 1);
    for name in map.keys() {
        let mut joined = String::new();
        for (i, value) in map.get_all(name).iter().enumerate() {
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| Reply::bad_request("a header value is not UTF-8"))?;
            if i > 0 {
                joined.push_str(", ");
            }
            joined.push_str(value.trim());
        }
        headers.push(name.as_str().into(), Value::from(joined));
    }
    if version >= Version::HTTP_2
        && let Some(authority) = authority
        && !map.contains_key(header::HOST)
    {
        headers.push("host".into(), Value::from(authority.as_str()));
    }
    Ok(headers)
}

/// Reads a whole body of at most `max` bytes, each piece within [`IDLE_TIMEOUT`].
async fn read_body(body: &mut Incoming, max: usize) -> Result<Vec<u8>, BodyError> {
    // A `Content-Length` is a promise, not bytes: grow as they come past the first 64 KiB.
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(max);
    let mut out = Vec::with_capacity(hint.min(max).min(64 * 1024));
    loop {
        match timeout(IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > max {
                        return Err(BodyError::TooLarge);
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

temblor_shim::export_plugin! {
    name: "http_server",
    kind: Connector,
    source: HttpServer::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::config;

    fn refused(fields: &[(&str, Value)]) -> PluginError {
        HttpServer::new(&Setup {
            id: "bad",
            config: &config(fields),
        })
        .err()
        .expect("refused")
    }

    #[test]
    fn defaults_and_bad_values() {
        let c: Config = temblor_shim::from_value(&config(&[])).expect("config");
        assert_eq!(c.url, "127.0.0.1:8139");
        assert_eq!(c.max_body, 1024 * 1024);
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.response, Response::Accepted);
        assert_eq!(c.timeout_ms, 10_000);
        assert!(c.tls.is_none());
        let c: Config =
            temblor_shim::from_value(&config(&[("response", Value::from("delivered"))]))
                .expect("config");
        assert_eq!(c.response, Response::Delivered);
        let tls = Value::Object([("cert", Value::from("c.pem"))].into_iter().collect());
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
            (
                vec![("url", Value::from("https://127.0.0.1:0"))],
                "`url` \"https://127.0.0.1:0\" is https:// but there is no `tls` table",
            ),
            (
                vec![("url", Value::from("localhost"))],
                "`url` must be host:port",
            ),
            (vec![("tls", tls)], "key"),
        ] {
            let err = refused(&fields);
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn answers_carry_their_headers() {
        let r = Reply::error(StatusCode::METHOD_NOT_ALLOWED, "no\n").into_response(true);
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "POST, PUT");
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let r = Reply::shutting_down().into_response(false);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert!(
            !r.headers().contains_key(header::CONNECTION),
            "none in HTTP/2"
        );
        let r = Reply::new(StatusCode::ACCEPTED, "").into_response(true);
        assert!(!r.headers().contains_key(header::CONNECTION));
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn headers_are_lower_case_joined_and_must_be_utf8() {
        let mut map = HeaderMap::new();
        map.append("X-Key", HeaderValue::from_static(" a "));
        map.append("content-length", HeaderValue::from_static("1"));
        map.append("x-key", HeaderValue::from_static("b"));
        let authority = "here:1".parse().expect("authority");
        let h = headers(&map, Version::HTTP_11, Some(&authority)).expect("headers");
        let keys: Vec<_> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["x-key", "content-length"], "in the order first sent");
        assert_eq!(h.get("x-key"), Some(&Value::from("a, b")));
        let h2 = headers(&map, Version::HTTP_2, Some(&authority)).expect("headers");
        assert_eq!(
            h2.get("host"),
            Some(&Value::from("here:1")),
            "from :authority"
        );
        map.insert(
            "x-bad",
            HeaderValue::from_bytes(b"caf\xe9").expect("opaque bytes"),
        );
        let e = headers(&map, Version::HTTP_11, None).expect_err("not UTF-8");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
