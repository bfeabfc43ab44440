//! The `http_client` connector: sends each frame as the body of one HTTP request.
//!
//! Sink only (asking for a source is an `Unsupported` error). Requests go one at a time, in
//! order, over kept-alive connections (through `ureq`, built without TLS: plain `http://` only).
//! Proxies from the environment are not used and redirects are not followed.
//!
//! **Answers and retries.** A `2xx` answer delivers the frame. A `5xx` answer, or a connection
//! that fails (refused, reset, timed out, a malformed answer), is retried after `backoff_ms`,
//! doubling up to `max_backoff_ms`, at most `max_retries` times. A frame that still fails does
//! not stop the batch at once: each frame after it is sent once more, with no retries of the
//! connector's own (the engine's retry comes next), so that one bad moment of the server
//! does not hold back the rest; the next frame that fails too ends the batch, and the frames
//! after it are not sent. Any other answer (`4xx`, `3xx`) is not retried: the frame is
//! refused, with a warning, and the rest of the batch is still sent.
//!
//! **Partial delivery.** When some frame of a batch was not delivered (it failed, was refused,
//! or was not sent), the batch returns an `Io` error (saying how many and why) and lists in
//! `delivered` the frames that got a `2xx` answer. The engine then retries only the others (the
//! connector's `retries` in the deployment), and finally writes them to the connector's
//! `dead_letter` file, or counts their events as `lost` (docs/reliability.md, docs/delivery.md).
//! A frame answered `2xx` is never sent again; a refused one is sent again by each of the
//! engine's retries, and so ends in the dead letter file. A frame retried after a timeout or a
//! lost connection may reach the server twice (the first attempt may have arrived): to let the
//! server recognize a repeat, send an idempotency key with it (`headers_from_meta`). `push`
//! blocks while it retries (backpressure); `flush` has nothing to do. Through an engine of
//! interface 1 (plain `push`) the same happens, but the engine learns nothing of the frames
//! delivered and retries them all.
//!
//! ## Meta
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
//! - `url` (string, required): where to send, e.g. `"http://127.0.0.1:8139/ingest"`.
//! - `method` (string, default `"POST"`): `"POST"`, `"PUT"` or `"PATCH"`.
//! - `headers` (table of string to string, default none): added to every request, e.g.
//!   `{ "content-type" = "application/json" }` (no content type is sent otherwise).
//!   `Content-Length`, `Transfer-Encoding` and `Host` are set by the client and refused here.
//! - `headers_from_meta` (boolean, default false): also send each frame's `meta.headers`, as
//!   above.
//! - `timeout_ms` (integer, default 5000, at least 1): the most one request may take, from
//!   connecting to the end of the answer.
//! - `max_retries` (integer, default 3): retries of a frame after its first attempt.
//! - `backoff_ms` (integer, default 100, at least 1): the wait before the first retry.
//! - `max_backoff_ms` (integer, default 5000, at least `backoff_ms`): the longest wait.
//!
//! ## Example
//! Events relayed from an `http_server` with their idempotency key, each request sent again
//! until the next server answers `2xx` (then dead-lettered):
//! ```toml
//! [[connector]]
//! id = "webhook"
//! plugin = "http_client"
//! codec = "json"
//! retries = 5
//! dead_letter = "webhook.dead.json"
//! config = { url = "http://127.0.0.1:8139/ingest", headers = { "content-type" = "application/json" }, headers_from_meta = true }
//! ```

use std::{collections::BTreeMap, io, thread, time::Duration};

use temblor_shim::{
    ErrorKind, Frames, PluginError, RVec, Setup, Sink, Value, meta_of, serde::Deserialize, tracing,
};
use ureq::{
    Agent,
    http::{HeaderName, HeaderValue, Method, Request, Uri},
};

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
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
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries of a frame after its first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The wait before the first retry, in milliseconds.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest wait between retries, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_timeout_ms() -> u64 {
    5000
}

fn default_max_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    100
}

fn default_max_backoff_ms() -> u64 {
    5000
}

/// What came of sending one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A `2xx` answer.
    Delivered,
    /// An answer or error not worth retrying.
    Refused(String),
    /// Still failing after every retry.
    Failed(String),
}

/// The `http_client` sink.
pub struct HttpClient {
    id: String,
    url: String,
    uri: Uri,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    headers_from_meta: bool,
    agent: Agent,
    max_retries: u32,
    backoff_ms: u64,
    max_backoff_ms: u64,
    sent: u64,
}

impl HttpClient {
    /// Checks the config and builds the client (which connects on the first request).
    ///
    /// # Errors
    /// A `Config` error for a bad config.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        let bad =
            |what: std::fmt::Arguments<'_>| PluginError::config(format_args!("'{id}': {what}"));
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| bad(format_args!("`url` {:?} is not a URL: {e}", config.url)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(format_args!(
                    "`url` {:?}: this client has no TLS, use http://",
                    config.url
                )));
            }
            _ => {
                return Err(bad(format_args!(
                    "`url` {:?} must start with http://",
                    config.url
                )));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad(format_args!("`url` {:?} has no host", config.url)));
        }
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
            if [
                http_name("content-length"),
                http_name("transfer-encoding"),
                http_name("host"),
            ]
            .contains(&name)
            {
                return Err(bad(format_args!(
                    "header {name} is set by the client, not in `headers`"
                )));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|e| bad(format_args!("header {name} value {value:?}: {e}")))?;
            headers.push((name, value));
        }
        if config.timeout_ms == 0 {
            return Err(bad(format_args!("`timeout_ms` must be at least 1")));
        }
        if config.backoff_ms == 0 {
            return Err(bad(format_args!("`backoff_ms` must be at least 1")));
        }
        if config.max_backoff_ms < config.backoff_ms {
            return Err(bad(format_args!(
                "`max_backoff_ms` ({}) must be at least `backoff_ms` ({})",
                config.max_backoff_ms, config.backoff_ms
            )));
        }
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build()
            .into();
        tracing::debug!(id = %id, url = %config.url, method = %method, "http client ready");
        Ok(Self {
            id: id.to_owned(),
            url: config.url,
            uri,
            method,
            headers,
            headers_from_meta: config.headers_from_meta,
            agent,
            max_retries: config.max_retries,
            backoff_ms: config.backoff_ms,
            max_backoff_ms: config.max_backoff_ms,
            sent: 0,
        })
    }

    /// One request with the configured headers and then `extra` (which replace those of the
    /// same name); the answer's status.
    fn request(
        &self,
        frame: &[u8],
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<u16, ureq::Error> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone());
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let mut request = builder.body(frame)?;
        for (name, value) in extra {
            request.headers_mut().insert(name, value.clone());
        }
        let mut response = self.agent.run(request)?;
        // Read the answer to its end, so that the connection can be used again.
        let _ = io::copy(&mut response.body_mut().as_reader(), &mut io::sink());
        Ok(response.status().as_u16())
    }

    /// Sends one frame, retrying what is worth it at most `max_retries` times.
    fn deliver(
        &self,
        frame: &[u8],
        extra: &[(HeaderName, HeaderValue)],
        max_retries: u32,
    ) -> Outcome {
        let mut backoff = self.backoff_ms;
        let mut retry = 0;
        loop {
            let why = match self.request(frame, extra) {
                Ok(200..=299) => return Outcome::Delivered,
                Ok(status @ 500..=599) => format!("the server answered {status}"),
                Ok(status) => return Outcome::Refused(format!("the server answered {status}")),
                Err(e) if worth_retrying(&e) => e.to_string(),
                Err(e) => return Outcome::Refused(e.to_string()),
            };
            if retry == max_retries {
                let attempts = retry + 1;
                let plural = if attempts == 1 { "" } else { "s" };
                return Outcome::Failed(format!("{why} (after {attempts} attempt{plural})"));
            }
            retry += 1;
            tracing::warn!(
                id = %self.id,
                url = %self.url,
                retry,
                backoff_ms = backoff,
                why = %why,
                "http request failed; retrying"
            );
            thread::sleep(Duration::from_millis(backoff));
            backoff = backoff.saturating_mul(2).min(self.max_backoff_ms);
        }
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
                    id = %self.id,
                    found = other.type_name(),
                    "meta.headers is not an object: no headers taken from meta"
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(headers.len());
        for (name, value) in headers.iter() {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                tracing::warn!(id = %self.id, header = %name, "meta.headers: not a valid header name; skipped");
                continue;
            };
            if NOT_FROM_META.contains(&header.as_str()) {
                continue;
            }
            let valid = value.as_str().map(HeaderValue::from_str);
            let Some(Ok(value)) = valid else {
                tracing::warn!(
                    id = %self.id,
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

fn http_name(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// Whether an error may go away by itself: the connection, not the request, is at fault.
fn worth_retrying(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
    )
}

impl Sink for HttpClient {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        self.push_batch(frames, &[], &mut RVec::new())
    }

    fn push_batch(
        &mut self,
        frames: &Frames,
        meta: &[Value],
        delivered: &mut RVec<u32>,
    ) -> Result<(), PluginError> {
        let mut sent = Vec::with_capacity(frames.len());
        let mut refused = 0_usize;
        let mut last_refusal = String::new();
        // The first failure after the retries: the frames after it get one attempt each.
        let mut failure: Option<String> = None;
        let mut failed = 0_usize;
        let mut unsent = 0_usize;
        for (i, frame) in frames.iter().enumerate() {
            let extra = self.meta_headers(meta, i);
            let retries = if failure.is_some() {
                0
            } else {
                self.max_retries
            };
            match self.deliver(frame, &extra, retries) {
                Outcome::Delivered => {
                    self.sent += 1;
                    sent.push(u32::try_from(i).unwrap_or(u32::MAX));
                }
                Outcome::Refused(why) => {
                    refused += 1;
                    tracing::warn!(id = %self.id, url = %self.url, why = %why, "frame refused; not retried");
                    last_refusal = why;
                }
                Outcome::Failed(why) => {
                    failed += 1;
                    if failure.is_some() {
                        unsent = frames.len() - i - 1;
                        tracing::error!(
                            id = %self.id,
                            url = %self.url,
                            unsent = unsent + failed,
                            refused,
                            why = %why,
                            "a second frame failed: giving up on the rest of the batch"
                        );
                        break;
                    }
                    tracing::warn!(
                        id = %self.id,
                        url = %self.url,
                        why = %why,
                        "a frame failed after its retries; trying the rest of the batch once"
                    );
                    failure = Some(why);
                }
            }
        }
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
                    "'{}': {undelivered} of {n} frames not delivered to {}: {why}{also}",
                    self.id, self.url
                )
            }
            None => format!(
                "'{}': {refused} of {n} frames refused by {} (not retried): {last_refusal}",
                self.id, self.url
            ),
        };
        delivered.extend(sent);
        Err(PluginError::new(ErrorKind::Io, format_args!("{message}")))
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        tracing::debug!(id = %self.id, url = %self.url, sent = self.sent, "http client closed");
    }
}

temblor_shim::export_plugin! {
    name: "http_client",
    kind: Connector,
    sink: HttpClient::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::{BufRead, BufReader, Read, Write},
        net::TcpListener,
        sync::mpsc,
        time::Instant,
    };
    use temblor_shim::Value;

    fn config(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().cloned().collect())
    }

    fn client(fields: &[(&str, Value)]) -> Result<HttpClient, PluginError> {
        let cfg = config(fields);
        HttpClient::new(&Setup {
            id: "t",
            config: &cfg,
        })
    }

    /// A one-thread server answering each request with the next status of `answers`; sends
    /// each request's head and body back through the channel.
    fn scripted(answers: Vec<u16>) -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/in", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut answers = answers.into_iter();
            while let Some(status) = answers.next() {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut status = Some(status);
                // Serve this connection for as long as it lasts and answers remain.
                while let Some(code) = status.take() {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
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
                    let _ = tx.send((head, body));
                    let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok");
                    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                    status = answers.next();
                }
            }
        });
        (url, rx)
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
        let url = ("url", Value::from("http://127.0.0.1:9/"));
        let headers = |k: &str, v: &str| {
            (
                "headers",
                Value::Object([(k, Value::from(v))].into_iter().collect()),
            )
        };
        for (fields, needle) in [
            (vec![], "url"),
            (vec![("url", Value::from("https://127.0.0.1/"))], "TLS"),
            (vec![("url", Value::from("ftp://127.0.0.1/"))], "http://"),
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

    fn five() -> Frames {
        [&b"a"[..], b"b", b"c", b"d", b"e"].into_iter().collect()
    }

    #[test]
    fn a_failed_frame_leaves_the_others_delivered_and_listed() {
        let (url, requests) = scripted(vec![200, 200, 500, 200, 200]);
        let mut client = client(&[
            ("url", Value::from(url)),
            ("max_retries", Value::from(0_u64)),
        ])
        .expect("client");
        let mut delivered = RVec::new();
        let err = client
            .push_batch(&five(), &[], &mut delivered)
            .expect_err("the third failed");
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(err.message.contains("1 of 5 frames not delivered"), "{err}");
        assert!(err.message.contains("500 (after 1 attempt)"), "{err}");
        assert_eq!(delivered.as_slice(), [0, 1, 3, 4]);
        assert_eq!(bodies(&requests), ["a", "b", "c", "d", "e"], "each once");
    }

    #[test]
    fn with_retries_left_a_500_is_retried_and_the_batch_delivered() {
        let (url, requests) = scripted(vec![200, 200, 500, 200, 200, 200]);
        let mut client = client(&[
            ("url", Value::from(url)),
            ("backoff_ms", Value::from(1_u64)),
        ])
        .expect("client");
        let mut delivered = RVec::new();
        client
            .push_batch(&five(), &[], &mut delivered)
            .expect("delivered");
        assert!(delivered.is_empty(), "nothing to list when all went");
        assert_eq!(bodies(&requests), ["a", "b", "c", "c", "d", "e"]);
    }

    #[test]
    fn a_second_failure_ends_the_batch() {
        let (url, requests) = scripted(vec![200, 500, 500, 500, 200]);
        let mut client = client(&[
            ("url", Value::from(url)),
            ("max_retries", Value::from(1_u64)),
            ("backoff_ms", Value::from(1_u64)),
        ])
        .expect("client");
        let mut delivered = RVec::new();
        let err = client
            .push_batch(&five(), &[], &mut delivered)
            .expect_err("b and c failed");
        assert!(err.message.contains("4 of 5 frames not delivered"), "{err}");
        assert!(err.message.contains("after 2 attempts"), "{err}");
        assert_eq!(delivered.as_slice(), [0]);
        // b with its retry, c once (no retries after a failure), d and e never.
        assert_eq!(bodies(&requests), ["a", "b", "b", "c"]);
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
        assert!(
            heads[0].contains("idempotency-key: k-1\r\n"),
            "{}",
            heads[0]
        );
        assert!(heads[0].contains("x-source: meta\r\n"), "{}", heads[0]);
        assert!(!heads[0].contains("x-source: config"), "{}", heads[0]);
        assert!(heads[0].contains("content-length: 3\r\n"), "{}", heads[0]);
        assert!(!heads[0].contains("elsewhere"), "{}", heads[0]);
        assert!(!heads[0].contains("x-number"), "{}", heads[0]);
        assert!(
            heads[0].contains("content-type: text/plain"),
            "{}",
            heads[0]
        );
        assert!(
            heads[1].contains("idempotency-key: k-2\r\n"),
            "{}",
            heads[1]
        );
        assert!(heads[1].contains("x-source: config\r\n"), "{}", heads[1]);
        assert!(!heads[2].contains("idempotency-key"), "{}", heads[2]);

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
}
