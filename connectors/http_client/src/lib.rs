//! The `http_client` connector: sends each frame as the body of one HTTP request.
//!
//! Sink only (asking for a source is an `Unsupported` error). Built on hyper's pooling client
//! (`hyper_util::client::legacy::Client`) over `temblor-net`'s TCP and TLS, on the plugin's
//! network runtime; `push` runs a batch's requests there and returns when they are done
//! (backpressure). Proxies from the environment are not used and redirects are not followed.
//!
//! **Connections.** They are kept alive and reused across requests and batches (the pool keeps
//! idle ones for 90 s, or until the server closes them); dropping the sink (the engine stops,
//! restarts or reloads it) closes every one of them before the drop returns (an HTTP/2
//! connection gets a `GOAWAY` first, anything still open after a second is cut). `http://`
//! speaks HTTP/1.1, or HTTP/2 with prior knowledge (h2c) when `http2 = true`. `https://` speaks
//! TLS (rustls) and lets ALPN choose: `h2` and `http/1.1` are offered, the server picks (only
//! `h2` with `http2 = true`). The server's certificate is checked against `tls.ca`, or the
//! system's roots, for `tls.server_name` or the url's host: a certificate they do not vouch
//! for fails the connection, so the frame fails (as below), never silently.
//!
//! **Answers and retries.** A `2xx` answer delivers the frame. A `5xx` answer, or a connection
//! that fails (refused, reset, timed out, a TLS handshake that fails, a malformed answer), is
//! retried after `backoff_ms`, doubling up to `max_backoff_ms`, at most `max_retries` times. A
//! frame that still fails does not stop the batch at once: each frame after it is sent once
//! more, with no retries of the connector's own (the engine's retry comes next), so that one
//! bad moment of the server does not hold back the rest; the next frame that fails too ends the
//! batch, and the frames after it are not sent. Any other answer (`4xx`, `3xx`), or a request
//! the client itself cannot send, is not retried: the frame is refused, with a warning, and the
//! rest of the batch is still sent.
//!
//! **Partial delivery.** When some frame of a batch was not delivered (it failed, was refused,
//! or was not sent), the batch returns an `Io` error (saying how many and why) and lists in
//! `delivered` the frames that got a `2xx` answer. The engine then retries only the others (the
//! connector's `retries` in the deployment), and finally writes them to the connector's
//! `dead_letter` file, or counts their events as `lost` (docs/reliability.md, docs/delivery.md).
//! A frame answered `2xx` is never sent again; a refused one is sent again by each of the
//! engine's retries, and so ends in the dead letter file. A frame retried after a timeout or a
//! lost connection may reach the server twice (the first attempt may have arrived): to let the
//! server recognize a repeat, send an idempotency key with it (`headers_from_meta`). `flush` has
//! nothing to do. Through an engine of interface 1 (plain `push`) the same happens, but the
//! engine learns nothing of the frames delivered and retries them all.
//!
//! **Concurrency.** By default (`concurrency = 1`) a batch's requests go one at a time, in the
//! order of its frames, exactly as the rules above say: a server sees the events in order.
//! With `concurrency = n` up to `n` requests of a batch are in flight at once (on as many
//! HTTP/1.1 connections, or as streams of one HTTP/2 connection); they are started in frame
//! order but may arrive and be answered in any order, so choose it only when the server does
//! not care about order. Every frame's outcome is still its own: `delivered` lists exactly the
//! frames answered `2xx`, whatever order they finished in. The rules above then read in time
//! rather than in frame order: once a frame has failed after its retries, frames started later
//! get one attempt each and frames in flight retry no more; once two have failed, no further
//! frame is started (those in flight finish their attempt, and count).
//!
//! ## Metadata
//! - `meta.headers` (object of header name to string, read only with `headers_from_meta =
//!   true`): added to the frame's request, replacing a `headers` entry of the same name. A
//!   value that is not a string, or a name or value that is not valid in HTTP, is skipped
//!   with a warning naming the header. The headers the client sets itself or that belong to one
//!   connection are skipped silently (`content-length`, `transfer-encoding`, `host`,
//!   `connection`, `keep-alive`, `expect`, `te`, `trailer`, `upgrade`, `proxy-connection`), so
//!   that the `meta.headers` of an `http_server` request can be passed on as they are. With
//!   one metadata object per frame each request gets its own event's headers.
//!
//! ## Config
//! - `url` (string, required): where to send, `http://` or `https://`, e.g.
//!   `"http://127.0.0.1:8139/ingest"`.
//! - `method` (string, default `"POST"`): `"POST"`, `"PUT"` or `"PATCH"`.
//! - `headers` (table of string to string, default none): added to every request, e.g.
//!   `{ "content-type" = "application/json" }` (no content type is sent otherwise).
//!   `Content-Length`, `Transfer-Encoding` and `Host` are set by the client and refused here.
//! - `headers_from_meta` (boolean, default false): also send each frame's `meta.headers`, as
//!   above.
//! - `timeout_ms` (integer, default 5000, at least 1): the most one request may take, from
//!   connecting (when no pooled connection is free) to the end of the answer.
//! - `max_retries` (integer, default 3): retries of a frame after its first attempt.
//! - `backoff_ms` (integer, default 100, at least 1): the wait before the first retry.
//! - `max_backoff_ms` (integer, default 5000, at least `backoff_ms`): the longest wait.
//! - `http2` (boolean, default false): HTTP/2 only. Over `http://` with prior knowledge (h2c:
//!   the client opens with the HTTP/2 preface, no `Upgrade`; the server must expect it), over
//!   `https://` by offering only `h2` in ALPN. Without it: HTTP/1.1 over `http://`; over
//!   `https://` whatever ALPN agrees on (`h2` or `http/1.1`; HTTP/1.1 when the server takes
//!   neither).
//! - `tls` (table, default none; only with `https://`, which without it means `tls = {}`):
//!   - `ca` (path, default the system's root certificates): PEM file of the certificates that
//!     vouch for the server.
//!   - `server_name` (string, default the url's host): the name the server's certificate must
//!     be valid for.
//!
//!   A `ca` that cannot be read or holds no certificate, or no system roots without `ca`, is a
//!   config error when the sink is built (at start-up), naming the connector and `tls.ca`.
//! - `concurrency` (integer, default 1, 1 to 256): requests of one batch in flight at once
//!   (see Concurrency).
//!
//! ## Example
//! Events relayed from an `http_server` with their idempotency key, over HTTPS to a server
//! whose certificate a private CA signed, each request sent again until the server answers
//! `2xx` (then dead-lettered):
//! ```toml
//! [[connector]]
//! id = "webhook"
//! plugin = "http_client"
//! codec = "json"
//! retries = 5
//! dead_letter = "webhook.dead.json"
//! config = { url = "https://hooks.internal:8443/ingest", headers = { "content-type" = "application/json" }, headers_from_meta = true, tls = { ca = "/etc/temblor/ca.pem" } }
//! ```
//! To an HTTP/2 server without TLS, four requests at a time:
//! `config = { url = "http://127.0.0.1:8080/in", http2 = true, concurrency = 4 }`.

use std::{
    cell::Cell,
    collections::BTreeMap,
    error::Error as StdError,
    future::{Future, poll_fn},
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use temblor_net::{
    backoff::Backoff,
    conn::Conn,
    http_body_util::{BodyExt, Full},
    hyper::{
        self,
        body::Bytes,
        http::{HeaderName, HeaderValue, Method, Request, Uri},
    },
    hyper_util::{
        client::legacy::{
            Client,
            connect::{Connected, Connection},
        },
        rt::{TokioIo, TokioTimer},
    },
    retry,
    rustls::pki_types::ServerName,
    tls::ClientTls,
    tokio::{self, net::TcpStream, runtime::Handle, task::JoinSet},
    tokio_rustls::TlsConnector,
    tower_service::Service,
};
use temblor_shim::{
    ErrorKind, Frames, PluginError, RVec, Setup, Value, meta_of,
    serde::Deserialize,
    sink::{Batch, BatchSink},
    tracing,
};

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// Where to send.
    pub url: String,
    /// The request method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Headers added to every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whether each frame's `meta.headers` are sent too.
    #[serde(default)]
    pub headers_from_meta: bool,
    /// The most one request may take, in milliseconds.
    #[serde(default = "retry::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries of a frame after its first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The wait before the first retry, in milliseconds.
    #[serde(default = "retry::default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest wait between retries, in milliseconds.
    #[serde(default = "retry::default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// HTTP/2 only: h2c with prior knowledge over `http://`, ALPN `h2` alone over `https://`.
    #[serde(default)]
    pub http2: bool,
    /// TLS for `https://` (the system's roots when absent).
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// Requests of one batch in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_max_retries() -> u32 {
    3
}

fn default_concurrency() -> u32 {
    1
}

/// The most requests of one batch in flight at once.
const MAX_CONCURRENCY: u32 = 256;

/// How long the pool keeps an idle connection.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// How long a dropped sink's connections get to close by themselves before they are cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What came of sending one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A `2xx` answer.
    Delivered,
    /// An answer or error not worth retrying.
    Refused(String),
    /// Still failing after every retry it was allowed.
    Failed(String),
}

/// Why one attempt did not deliver.
#[derive(Debug)]
enum Miss {
    /// Worth another attempt: a `5xx`, a connection that failed, a timeout.
    Retry(String),
    /// Not worth one: a `4xx` or `3xx`, a request the client refused to send.
    Refuse(String),
}

/// Where connections go, and how: the url's host and port, and TLS for `https://`.
struct Target {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Connections opened so far (for the log).
    opened: AtomicU64,
}

impl Target {
    async fn connect(&self) -> io::Result<Stream> {
        let (host, port) = (self.host.as_str(), self.port);
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot connect to {host}:{port}: {e}"))
        })?;
        // A request goes out at once, not after Nagle's delay.
        let _ = tcp.set_nodelay(true);
        let conn = match &self.tls {
            None => Conn::Tcp(tcp),
            Some((connector, name)) => temblor_net::tls::connect(connector, name.clone(), tcp)
                .await
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("TLS handshake with {host}:{port} failed: {e}"),
                    )
                })?,
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        let h2 = conn.alpn() == Some(b"h2");
        tracing::debug!(host = %host, port, tls = self.tls.is_some(), alpn_h2 = h2, "http client connected");
        Ok(Stream {
            io: TokioIo::new(conn),
            h2,
        })
    }
}

/// The client's connector: every connection goes to the configured target (the pool keys
/// them by the url's scheme and authority, which never change).
#[derive(Clone)]
struct Connector(Arc<Target>);

type Connecting = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

/// One frame's request in flight, borrowing the sink.
type Delivery<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let target = Arc::clone(&self.0);
        Box::pin(async move { target.connect().await })
    }
}

/// One connection, as the client reads and writes it, and whether ALPN chose HTTP/2.
struct Stream {
    io: TokioIo<Conn>,
    h2: bool,
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// The executor the client spawns its connection tasks with: on the plugin's runtime, kept
/// in one set so that dropping the sink can wait for them (and cut what does not end).
#[derive(Clone)]
struct Tasks {
    handle: Handle,
    set: Arc<Mutex<JoinSet<()>>>,
}

impl<F> hyper::rt::Executor<F> for Tasks
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget the tasks that ended (connections closed), so the set does not grow.
        while set.try_join_next().is_some() {}
        set.spawn_on(task, &self.handle);
    }
}

/// The `http_client` sink.
pub struct HttpClient {
    url: String,
    uri: Uri,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    headers_from_meta: bool,
    timeout: Duration,
    max_retries: u32,
    backoff: Backoff,
    concurrency: usize,
    /// Taken in `drop`, so that the pool closes before the tasks are joined.
    client: Option<Client<Connector, Full<Bytes>>>,
    target: Arc<Target>,
    tasks: Tasks,
    sent: u64,
}

impl HttpClient {
    /// Checks the config and builds the client (which connects on the first request).
    ///
    /// # Errors
    /// A `Config` error for a bad config (a `tls.ca` that cannot be used among them), an `Io`
    /// error when the network runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let bad = |what: std::fmt::Arguments<'_>| PluginError::config(format_args!("{what}"));
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| bad(format_args!("`url` {:?} is not a URL: {e}", config.url)))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(bad(format_args!(
                    "`url` {:?} must start with http:// or https://",
                    config.url
                )));
            }
        };
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            return Err(bad(format_args!("`url` {:?} has no host", config.url)));
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let method = match config.method.to_ascii_uppercase().as_str() {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            _ => {
                return Err(bad(format_args!(
                    "`method` must be POST, PUT or PATCH, found {:?}",
                    config.method
                )));
            }
        };
        let mut headers = Vec::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| bad(format_args!("header name {name:?}: {e}")))?;
            if ["content-length", "transfer-encoding", "host"].contains(&name.as_str()) {
                return Err(bad(format_args!(
                    "header {name} is set by the client, not in `headers`"
                )));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|e| bad(format_args!("header {name} value {value:?}: {e}")))?;
            headers.push((name, value));
        }
        retry::check(config.backoff_ms, config.max_backoff_ms, config.timeout_ms)?;
        if !(1..=MAX_CONCURRENCY).contains(&config.concurrency) {
            return Err(bad(format_args!(
                "`concurrency` must be 1 to {MAX_CONCURRENCY}, found {}",
                config.concurrency
            )));
        }
        let tls = match (https, config.tls) {
            (false, Some(_)) => {
                return Err(bad(format_args!(
                    "`tls` is given but `url` {:?} is http://: use https://",
                    config.url
                )));
            }
            (false, None) => None,
            (true, tls) => {
                let alpn: &[&[u8]] = if config.http2 {
                    &[b"h2"]
                } else {
                    &[b"h2", b"http/1.1"]
                };
                // A `ca` that cannot be read is a mistake of the config as much as one that
                // holds no certificate.
                let connector = tls
                    .unwrap_or_default()
                    .connector(&host, alpn)
                    .map_err(|e| PluginError::config(e.message))?;
                Some(connector)
            }
        };
        let handle = temblor_net::runtime::handle()?;
        let tasks = Tasks {
            handle,
            set: Arc::new(Mutex::new(JoinSet::new())),
        };
        let target = Arc::new(Target {
            host,
            port,
            tls,
            opened: AtomicU64::new(0),
        });
        let client = Client::builder(tasks.clone())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .http2_only(config.http2)
            .build(Connector(Arc::clone(&target)));
        tracing::debug!(
            url = %config.url,
            method = %method,
            http2 = config.http2,
            concurrency = config.concurrency,
            "http client ready"
        );
        Ok(Self {
            url: config.url,
            uri,
            method,
            headers,
            headers_from_meta: config.headers_from_meta,
            timeout: Duration::from_millis(config.timeout_ms),
            max_retries: config.max_retries,
            backoff: Backoff::from_ms(config.backoff_ms, config.max_backoff_ms),
            concurrency: config.concurrency as usize,
            client: Some(client),
            target,
            tasks,
            sent: 0,
        })
    }

    /// One request with the configured headers and then `extra` (which replace those of the
    /// same name), read to the end of its answer, within `timeout_ms`: the answer's status.
    async fn request(&self, body: Bytes, extra: &[(HeaderName, HeaderValue)]) -> Result<u16, Miss> {
        let Some(client) = &self.client else {
            return Err(Miss::Refuse("the client is closed".to_owned()));
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        for (name, value) in extra {
            headers.insert(name, value.clone());
        }
        let exchange = async {
            let response = client.request(request).await.map_err(|e| {
                let why = chain(&e);
                if is_user_error(&e) {
                    Miss::Refuse(why)
                } else {
                    Miss::Retry(why)
                }
            })?;
            let status = response.status().as_u16();
            // Read the answer to its end, so that the connection can be used again.
            let mut answer = response.into_body();
            while let Some(frame) = answer.frame().await {
                frame.map_err(|e| Miss::Retry(format!("reading the answer: {}", chain(&e))))?;
            }
            Ok(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Miss::Retry(format!(
                "no complete answer within {} ms (timed out)",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Sends one frame, retrying what is worth it at most `max_retries` times while no other
    /// frame of the batch has failed (`failures`, which this frame adds to when it fails).
    async fn deliver(
        &self,
        frame: Bytes,
        extra: Vec<(HeaderName, HeaderValue)>,
        failures: &Cell<usize>,
    ) -> Outcome {
        let mut backoff = self.backoff;
        let mut retry = 0;
        loop {
            let why = match self.request(frame.clone(), &extra).await {
                Ok(200..=299) => return Outcome::Delivered,
                Ok(status @ 500..=599) => format!("the server answered {status}"),
                Ok(status) => return Outcome::Refused(format!("the server answered {status}")),
                Err(Miss::Retry(why)) => why,
                Err(Miss::Refuse(why)) => return Outcome::Refused(why),
            };
            if retry == self.max_retries || failures.get() > 0 {
                failures.set(failures.get() + 1);
                let attempts = retry + 1;
                let plural = if attempts == 1 { "" } else { "s" };
                return Outcome::Failed(format!("{why} (after {attempts} attempt{plural})"));
            }
            retry += 1;
            let wait = backoff.next_wait();
            tracing::warn!(
                url = %self.url,
                retry,
                backoff_ms = wait.as_millis() as u64,
                why = %why,
                "http request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends a batch: up to `concurrency` frames in flight, started in order, until every frame
    /// went or two failed. What came of each frame sent, by index, and how many were not sent.
    async fn send(&self, frames: &Frames, meta: &[Value]) -> (Vec<(usize, Outcome)>, usize) {
        let failures = Cell::new(0_usize);
        let mut outcomes = Vec::with_capacity(frames.len());
        let mut in_flight: Vec<(usize, Delivery<'_>)> = Vec::with_capacity(self.concurrency);
        let mut next = frames.iter().enumerate();
        let mut started = 0;
        loop {
            while in_flight.len() < self.concurrency && failures.get() < 2 {
                let Some((i, frame)) = next.next() else {
                    break;
                };
                started += 1;
                let extra = self.meta_headers(meta, i);
                let body = Bytes::copy_from_slice(frame);
                in_flight.push((i, Box::pin(self.deliver(body, extra, &failures))));
            }
            if in_flight.is_empty() {
                break;
            }
            let (k, outcome) = poll_fn(|cx| {
                for (k, (_, request)) in in_flight.iter_mut().enumerate() {
                    if let Poll::Ready(outcome) = request.as_mut().poll(cx) {
                        return Poll::Ready((k, outcome));
                    }
                }
                Poll::Pending
            })
            .await;
            let (i, _) = in_flight.swap_remove(k);
            outcomes.push((i, outcome));
        }
        (outcomes, frames.len() - started)
    }

    /// The headers of frame `index` from its `meta.headers` (none unless `headers_from_meta`).
    fn meta_headers(&self, meta: &[Value], index: usize) -> Vec<(HeaderName, HeaderValue)> {
        if !self.headers_from_meta {
            return Vec::new();
        }
        let headers = match meta_of(meta, index).get("headers") {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Object(headers)) => headers,
            Some(other) => {
                tracing::warn!(
                    found = other.type_name(),
                    "meta.headers is not an object: no headers taken from meta"
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(headers.len());
        for (name, value) in headers.iter() {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                tracing::warn!(header = %name, "meta.headers: not a valid header name; skipped");
                continue;
            };
            if NOT_FROM_META.contains(&header.as_str()) {
                continue;
            }
            let valid = value.as_str().map(HeaderValue::from_str);
            let Some(Ok(value)) = valid else {
                tracing::warn!(
                    header = %name,
                    "meta.headers: the value is not a string valid in a header; skipped"
                );
                continue;
            };
            out.push((header, value));
        }
        out
    }
}

/// Headers never taken from meta: the client sets them, or they belong to one connection.
const NOT_FROM_META: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "expect",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// An error and its causes, `: `-separated.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Whether hyper refused the request itself (not the connection or the server at fault).
fn is_user_error(e: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

impl BatchSink for HttpClient {
    fn write(&mut self, batch: Batch<'_>, delivered: &mut RVec<u32>) -> Result<(), PluginError> {
        let Batch { frames, meta } = batch;
        if Handle::try_current().is_ok() {
            // `block_on` would panic: the engine never calls a sink from a runtime thread.
            return Err(PluginError::new(
                ErrorKind::Io,
                format_args!("push called from inside an async runtime"),
            ));
        }
        let (outcomes, unsent) = self.tasks.handle.block_on(self.send(frames, meta));
        let mut sent = Vec::with_capacity(outcomes.len());
        let mut refused = 0_usize;
        let mut last_refusal = String::new();
        // The first failure after the retries: the frames after it got one attempt each.
        let mut failure: Option<String> = None;
        let mut failed = 0_usize;
        for (i, outcome) in outcomes {
            match outcome {
                Outcome::Delivered => sent.push(u32::try_from(i).unwrap_or(u32::MAX)),
                Outcome::Refused(why) => {
                    refused += 1;
                    tracing::warn!(url = %self.url, why = %why, "frame refused; not retried");
                    last_refusal = why;
                }
                Outcome::Failed(why) => {
                    failed += 1;
                    if failure.is_none() {
                        tracing::warn!(
                            url = %self.url,
                            why = %why,
                            "a frame failed after its retries; trying the rest of the batch once"
                        );
                        failure = Some(why);
                    } else {
                        tracing::error!(
                            url = %self.url,
                            unsent = unsent + failed,
                            refused,
                            why = %why,
                            "a second frame failed: giving up on the rest of the batch"
                        );
                    }
                }
            }
        }
        self.sent += sent.len() as u64;
        if sent.len() == frames.len() {
            return Ok(());
        }
        let n = frames.len();
        let message = match failure {
            Some(why) => {
                let undelivered = failed + unsent;
                let also = if refused > 0 {
                    format!("; {refused} refused (not retried): {last_refusal}")
                } else {
                    String::new()
                };
                format!(
                    "{undelivered} of {n} frames not delivered to {}: {why}{also}",
                    self.url
                )
            }
            None => format!(
                "{refused} of {n} frames refused by {} (not retried): {last_refusal}",
                self.url
            ),
        };
        sent.sort_unstable();
        delivered.extend(sent);
        Err(PluginError::new(ErrorKind::Io, format_args!("{message}")))
    }
}

temblor_shim::batch_sink!(HttpClient);

impl Drop for HttpClient {
    fn drop(&mut self) {
        // Without the pool the connection tasks end by themselves (HTTP/1.1 closes, HTTP/2
        // says GOAWAY first); what is still open after the grace period is cut.
        drop(self.client.take());
        let mut tasks = std::mem::take(
            &mut *self
                .tasks
                .set
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let join = async move {
            let all = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(CLOSE_GRACE, all).await.is_err() {
                tasks.shutdown().await;
            }
        };
        if Handle::try_current().is_ok() {
            // On a runtime thread blocking could stall the runtime: let the join run there.
            drop(self.tasks.handle.spawn(join));
        } else {
            self.tasks.handle.block_on(join);
        }
        tracing::debug!(
            url = %self.url,
            sent = self.sent,
            connections = self.target.opened.load(Ordering::Relaxed),
            "http client closed"
        );
    }
}

temblor_shim::export_plugin! {
    name: "http_client",
    kind: Connector,
    sink: HttpClient::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::{BufRead, BufReader, Read, Write},
        net::TcpListener,
        sync::mpsc,
        thread,
        time::Instant,
    };
    use temblor_harness::config;
    use temblor_shim::{Sink, Value};

    fn client(fields: &[(&str, Value)]) -> Result<HttpClient, PluginError> {
        let cfg = config(fields);
        HttpClient::new(&Setup {
            id: "t",
            config: &cfg,
        })
    }

    /// A server answering each request with the next status of `answers`, in the order the
    /// requests arrive (each connection is served by a thread of its own, so a connection the
    /// pool opened in advance never holds up another); sends each request's head and body back
    /// through the channel.
    fn scripted(answers: Vec<u16>) -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
        let (tx, rx) = mpsc::channel();
        let answers = Mutex::new(answers.into_iter());
        let url = server(move |stream| serve_scripted(stream, &tx, &answers));
        (url, rx)
    }

    /// A test server on a free port of loopback, serving each connection with `serve` on a
    /// thread of its own: its url (path `/in`).
    fn server(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/in", listener.local_addr().expect("addr"));
        let serve = Arc::new(serve);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else {
                    return;
                };
                let serve = Arc::clone(&serve);
                thread::spawn(move || serve(stream));
            }
        });
        url
    }

    /// Serves one connection of [`scripted`] for as long as it lasts and answers remain.
    fn serve_scripted(
        stream: std::net::TcpStream,
        tx: &mpsc::Sender<(String, Vec<u8>)>,
        answers: &Mutex<std::vec::IntoIter<u16>>,
    ) {
        let mut reader = BufReader::new(stream);
        while let Some((head, body)) = read_request(&mut reader) {
            let Some(code) = answers.lock().expect("answers").next() else {
                return;
            };
            let _ = tx.send((head, body));
            let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok");
            if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// The next request on a test server's connection: its head (without the blank line) and
    /// body (of its `content-length`); none when the client closed the connection.
    fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<(String, Vec<u8>)> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().expect("length"))
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).expect("body");
        Some((head, body))
    }

    #[test]
    fn defaults_and_bad_values() {
        let c: Config = temblor_shim::from_value(&config(&[("url", Value::from("http://x/"))]))
            .expect("config");
        assert_eq!(c.method, "POST");
        assert!(c.headers.is_empty());
        assert_eq!(
            (c.timeout_ms, c.max_retries, c.backoff_ms, c.max_backoff_ms),
            (5000, 3, 100, 5000)
        );
        assert!(!c.headers_from_meta);
        assert!(!c.http2 && c.tls.is_none());
        assert_eq!(c.concurrency, 1);
        let url = ("url", Value::from("http://127.0.0.1:9/"));
        let headers = |k: &str, v: &str| {
            (
                "headers",
                Value::Object([(k, Value::from(v))].into_iter().collect()),
            )
        };
        for (fields, needle) in [
            (vec![], "url"),
            (
                vec![("url", Value::from("ftp://127.0.0.1/"))],
                "http:// or https://",
            ),
            (vec![("url", Value::from("http:///path"))], "url"),
            (vec![url.clone(), ("tls", config(&[]))], "use https://"),
            (
                vec![
                    ("url", Value::from("https://127.0.0.1:9/")),
                    (
                        "tls",
                        config(&[("ca", Value::from("/nonexistent/temblor-ca.pem"))]),
                    ),
                ],
                "`tls.ca` /nonexistent/temblor-ca.pem",
            ),
            (
                vec![url.clone(), ("concurrency", Value::from(0_u64))],
                "concurrency",
            ),
            (
                vec![url.clone(), ("concurrency", Value::from(257_u64))],
                "concurrency",
            ),
            (vec![("url", Value::from("not a url"))], "url"),
            (vec![url.clone(), ("method", Value::from("GET"))], "method"),
            (vec![url.clone(), headers("bad name", "x")], "bad name"),
            (vec![url.clone(), headers("x-ok", "bad\nvalue")], "x-ok"),
            (
                vec![url.clone(), headers("Content-Length", "3")],
                "content-length",
            ),
            (
                vec![url.clone(), ("timeout_ms", Value::from(0_u64))],
                "timeout_ms",
            ),
            (
                vec![url.clone(), ("backoff_ms", Value::from(0_u64))],
                "backoff_ms",
            ),
            (
                vec![url.clone(), ("max_backoff_ms", Value::from(1_u64))],
                "max_backoff_ms",
            ),
        ] {
            let err = client(&fields).err().expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
        let c = client(&[url, ("method", Value::from("patch"))]).expect("lower case is fine");
        assert_eq!(c.method, Method::PATCH);
        assert_eq!((c.target.host.as_str(), c.target.port), ("127.0.0.1", 9));
        // `https://` without `tls` trusts the system's roots (or says there are none).
        match client(&[("url", Value::from("https://[::1]/x"))]) {
            Ok(c) => {
                assert!(c.target.tls.is_some());
                assert_eq!((c.target.host.as_str(), c.target.port), ("::1", 443));
            }
            Err(e) => assert!(e.message.contains("no system root certificates"), "{e}"),
        }
    }

    #[test]
    fn retries_5xx_then_delivers_and_does_not_retry_4xx() {
        let (url, requests) = scripted(vec![503, 500, 201, 404, 200]);
        let mut client = client(&[
            ("url", Value::from(url)),
            ("method", Value::from("PUT")),
            ("backoff_ms", Value::from(10_u64)),
            (
                "headers",
                Value::Object([("x-test", Value::from("yes"))].into_iter().collect()),
            ),
        ])
        .expect("client");
        let frames: Frames = [&b"one"[..]].into_iter().collect();
        client
            .push(&frames)
            .expect("delivered on the third attempt");
        let frames: Frames = [&b"two"[..], b"three"].into_iter().collect();
        let err = client.push(&frames).expect_err("404");
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(err.message.contains("1 of 2 frames refused"), "{err}");
        assert!(err.message.contains("404"), "{err}");
        let got: Vec<(String, Vec<u8>)> = requests.try_iter().collect();
        let bodies: Vec<&[u8]> = got.iter().map(|(_, b)| &b[..]).collect();
        assert_eq!(bodies, [&b"one"[..], b"one", b"one", b"two", b"three"]);
        for (head, _) in &got {
            assert!(head.starts_with("PUT /in HTTP/1.1\r\n"), "{head}");
            assert!(head.to_ascii_lowercase().contains("x-test: yes"), "{head}");
        }
    }

    #[test]
    fn gives_up_after_max_retries_and_fails_the_rest_of_the_batch() {
        let (url, requests) = scripted(vec![200, 500, 500, 500]);
        let mut client = client(&[
            ("url", Value::from(url)),
            ("max_retries", Value::from(2_u64)),
            ("backoff_ms", Value::from(20_u64)),
        ])
        .expect("client");
        let frames: Frames = [&b"a"[..], b"b", b"c"].into_iter().collect();
        let begin = Instant::now();
        let err = client.push(&frames).expect_err("500s");
        assert!(
            begin.elapsed() >= Duration::from_millis(60),
            "20 + 40 ms of backoff"
        );
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(err.message.contains("2 of 3 frames not delivered"), "{err}");
        assert!(err.message.contains("after 3 attempts"), "{err}");
        let bodies: Vec<Vec<u8>> = requests.try_iter().map(|(_, b)| b).collect();
        assert_eq!(
            bodies,
            [b"a".to_vec(), b"b".to_vec(), b"b".to_vec(), b"b".to_vec()]
        );
    }

    /// The bodies of the requests received so far, in order.
    fn bodies(requests: &mpsc::Receiver<(String, Vec<u8>)>) -> Vec<String> {
        requests
            .try_iter()
            .map(|(_, b)| String::from_utf8(b).expect("utf-8"))
            .collect()
    }

    /// Batches of five frames (`a` to `e`) against the server's `answers`, with `settings`:
    /// what the error says (nothing: delivered), the frames listed as delivered, and the
    /// bodies the server got, in order.
    #[test]
    fn five_frame_batches_list_the_frames_delivered() {
        let five: Frames = [&b"a"[..], b"b", b"c", b"d", b"e"].into_iter().collect();
        for (answers, settings, says, listed, got) in [
            // A failed frame leaves the others delivered and listed; each is sent once.
            (
                vec![200, 200, 500, 200, 200],
                vec![("max_retries", 0_u64)],
                &["1 of 5 frames not delivered", "500 (after 1 attempt)"][..],
                &[0, 1, 3, 4][..],
                &["a", "b", "c", "d", "e"][..],
            ),
            // With retries left a 500 is retried, and nothing to list when all went.
            (
                vec![200, 200, 500, 200, 200, 200],
                vec![("backoff_ms", 1)],
                &[],
                &[],
                &["a", "b", "c", "c", "d", "e"],
            ),
            // A second failure ends the batch: b with its retry, c once (no retries after a
            // failure), d and e never.
            (
                vec![200, 500, 500, 500, 200],
                vec![("max_retries", 1), ("backoff_ms", 1)],
                &["4 of 5 frames not delivered", "after 2 attempts"],
                &[0],
                &["a", "b", "b", "c"],
            ),
        ] {
            let (url, requests) = scripted(answers);
            let mut fields = vec![("url", Value::from(url))];
            fields.extend(settings.into_iter().map(|(k, v)| (k, Value::from(v))));
            let mut client = client(&fields).expect("client");
            let mut delivered = RVec::new();
            let result = client.push_batch(&five, &[], &mut delivered);
            match result {
                Ok(()) => assert!(says.is_empty(), "delivered, but {says:?} expected"),
                Err(err) => {
                    assert_eq!(err.kind, ErrorKind::Io);
                    assert!(!says.is_empty(), "{err}");
                    for needle in says {
                        assert!(err.message.contains(needle), "{needle}: {err}");
                    }
                }
            }
            assert_eq!(delivered.as_slice(), listed);
            assert_eq!(bodies(&requests), got);
        }
    }

    #[test]
    fn refused_frames_are_not_listed_as_delivered() {
        let (url, requests) = scripted(vec![200, 404, 200]);
        let mut client = client(&[("url", Value::from(url))]).expect("client");
        let frames: Frames = [&b"a"[..], b"b", b"c"].into_iter().collect();
        let mut delivered = RVec::new();
        let err = client
            .push_batch(&frames, &[], &mut delivered)
            .expect_err("404");
        assert!(err.message.contains("1 of 3 frames refused"), "{err}");
        assert_eq!(delivered.as_slice(), [0, 2]);
        assert_eq!(bodies(&requests), ["a", "b", "c"]);
    }

    fn meta_with_headers(fields: &[(&str, Value)]) -> Value {
        Value::Object(
            [("headers", config(fields)), ("other", Value::from("x"))]
                .into_iter()
                .collect(),
        )
    }

    #[test]
    fn headers_from_meta_reach_the_server() {
        let (url, requests) = scripted(vec![200, 200, 200]);
        let mut sink = client(&[
            ("url", Value::from(url)),
            ("headers_from_meta", Value::from(true)),
            (
                "headers",
                config(&[
                    ("x-source", Value::from("config")),
                    ("content-type", Value::from("text/plain")),
                ]),
            ),
        ])
        .expect("client");
        let frames: Frames = [&b"one"[..], b"two", b"three"].into_iter().collect();
        let meta = [
            meta_with_headers(&[
                ("idempotency-key", Value::from("k-1")),
                ("x-source", Value::from("meta")),
                // Set by the client, or not valid: skipped.
                ("content-length", Value::from("999")),
                ("host", Value::from("elsewhere")),
                ("x-number", Value::from(3_u64)),
                ("bad name", Value::from("x")),
            ]),
            meta_with_headers(&[("idempotency-key", Value::from("k-2"))]),
            // No metadata at all.
            Value::Null,
        ];
        sink.push_batch(&frames, &meta, &mut RVec::new())
            .expect("delivered");
        let got: Vec<(String, Vec<u8>)> = requests.try_iter().collect();
        assert_eq!(got.len(), 3);
        let heads: Vec<String> = got.iter().map(|(h, _)| h.to_ascii_lowercase()).collect();
        // Whether each request's head has each line (or text): meta's headers replace the
        // config's, the ones the client sets or that are not valid are skipped.
        for (i, needle, sent) in [
            (0, "idempotency-key: k-1\r\n", true),
            (0, "x-source: meta\r\n", true),
            (0, "x-source: config", false),
            (0, "content-length: 3\r\n", true),
            (0, "elsewhere", false),
            (0, "x-number", false),
            (0, "content-type: text/plain", true),
            (1, "idempotency-key: k-2\r\n", true),
            (1, "x-source: config\r\n", true),
            (2, "idempotency-key", false),
        ] {
            assert_eq!(heads[i].contains(needle), sent, "{needle}: {}", heads[i]);
        }

        // One metadata value shared by every frame.
        let (url, requests) = scripted(vec![200, 200]);
        let mut sink = client(&[
            ("url", Value::from(url)),
            ("headers_from_meta", Value::from(true)),
        ])
        .expect("client");
        let frames: Frames = [&b"x"[..], b"y"].into_iter().collect();
        let shared = [meta_with_headers(&[("x-batch", Value::from("b7"))])];
        sink.push_batch(&frames, &shared, &mut RVec::new())
            .expect("delivered");
        for (head, _) in requests.try_iter() {
            assert!(
                head.to_ascii_lowercase().contains("x-batch: b7\r\n"),
                "{head}"
            );
        }
    }

    #[test]
    fn without_headers_from_meta_no_meta_header_is_sent() {
        let (url, requests) = scripted(vec![200]);
        let mut client = client(&[("url", Value::from(url))]).expect("client");
        let frames: Frames = [&b"one"[..]].into_iter().collect();
        let meta = [meta_with_headers(&[(
            "idempotency-key",
            Value::from("k-1"),
        )])];
        client
            .push_batch(&frames, &meta, &mut RVec::new())
            .expect("delivered");
        let (head, body) = requests.try_iter().next().expect("a request");
        assert_eq!(body, b"one");
        assert!(
            !head.to_ascii_lowercase().contains("idempotency-key"),
            "{head}"
        );
    }

    /// The bodies a test server got, and the most requests it held at once.
    type Seen = Arc<Mutex<(Vec<String>, usize)>>;

    /// A server answering `500` to bodies that start with `bad` and `200` to the others, each
    /// connection on a thread of its own; the first `gather` requests are answered only once
    /// they are all in (or after 5 s). The bodies, and the most requests it held at once.
    fn gathering(gather: usize) -> (String, Seen) {
        let seen = Arc::new(Mutex::new((Vec::new(), 0_usize)));
        let held = (Mutex::new((0_usize, 0_usize)), std::sync::Condvar::new());
        let record = Arc::clone(&seen);
        let url = server(move |stream| {
            let mut reader = BufReader::new(stream);
            while let Some((_, body)) = read_request(&mut reader) {
                let body = String::from_utf8(body).expect("utf-8");
                let (lock, wake) = &held;
                let mut counts = lock.lock().expect("held");
                // (arrived, in progress)
                counts.0 += 1;
                counts.1 += 1;
                {
                    let mut record = record.lock().expect("record");
                    record.0.push(body.clone());
                    record.1 = record.1.max(counts.1);
                }
                wake.notify_all();
                let (mut counts, _) = wake
                    .wait_timeout_while(counts, Duration::from_secs(5), |c| c.0 < gather)
                    .expect("held");
                counts.1 -= 1;
                drop(counts);
                let code = if body.starts_with("bad") { 500 } else { 200 };
                let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
        });
        (url, seen)
    }

    /// `frames` sent `concurrency` at a time (no retries) to a [`gathering`] server holding
    /// as many: the error, the frames listed as delivered, the bodies the server got (sorted)
    /// and the most requests it held at once.
    fn concurrently(
        concurrency: u32,
        frames: &[&str],
    ) -> (PluginError, Vec<u32>, Vec<String>, usize) {
        let (url, seen) = gathering(concurrency as usize);
        let mut sink = client(&[
            ("url", Value::from(url)),
            ("concurrency", Value::from(u64::from(concurrency))),
            ("max_retries", Value::from(0_u64)),
        ])
        .expect("client");
        let frames: Frames = frames.iter().map(|f| f.as_bytes()).collect();
        let mut delivered = RVec::new();
        let err = sink
            .push_batch(&frames, &[], &mut delivered)
            .expect_err("a frame got 500");
        let (mut bodies, most) = seen.lock().expect("seen").clone();
        bodies.sort();
        (err, delivered.to_vec(), bodies, most)
    }

    #[test]
    fn concurrent_requests_list_exactly_the_frames_delivered() {
        let frames = ["f0", "f1", "bad2", "f3", "f4", "f5", "f6", "f7"];
        let (err, delivered, bodies, most) = concurrently(4, &frames);
        assert!(err.message.contains("1 of 8 frames not delivered"), "{err}");
        assert_eq!(delivered, [0, 1, 3, 4, 5, 6, 7], "in index order");
        assert_eq!(most, 4, "four requests were in flight at once");
        assert_eq!(
            bodies,
            ["bad2", "f0", "f1", "f3", "f4", "f5", "f6", "f7"],
            "each frame once"
        );
    }

    #[test]
    fn concurrent_requests_stop_starting_frames_after_two_failures() {
        let frames = ["bad0", "bad1", "bad2", "bad3", "bad4", "bad5"];
        let (err, delivered, bodies, _) = concurrently(2, &frames);
        assert!(err.message.contains("6 of 6 frames not delivered"), "{err}");
        assert!(delivered.is_empty());
        // bad0 and bad1 in flight together; bad2 may start between their two failures.
        assert!(
            bodies == ["bad0", "bad1"] || bodies == ["bad0", "bad1", "bad2"],
            "{bodies:?}"
        );
    }
}
