//! The HTTP API of `temblor run --api ADDR`: `GET /metrics` (Prometheus text), `GET /health`
//! (200, or 503 naming each connector that does not run and its state) and `GET /status` (the
//! `--stats-json` document), and the small client `temblor top` polls it with.
//!
//! A blocking server on `std::net`, not hyper on tokio: three GET endpoints that a scraper
//! calls every few seconds need no async runtime, and the host binary stays free of tokio and
//! hyper (the network plugins carry their own copies), which keeps `temblor`'s build and link
//! as they were. One accept thread; each connection is answered on a short-lived thread (at
//! most [`MAX_CONNECTIONS`] at once, each with read and write timeouts) and closed. The engine
//! is never touched: a request reads the atomics the engine's threads write.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use tracing::{debug, info, warn};

use crate::{metrics, status::Report};

/// Connections answered at once; more are refused with 503.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request, or to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// A bound, not yet serving, API socket: bound before the engine starts, so a bad `--api`
/// fails the start-up before any connector runs.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Resolves and binds `--api ADDR`.
///
/// # Errors
/// The address does not parse or resolve, or cannot be bound; the message names the flag.
pub fn bind(addr: &str) -> Result<Bound> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            anyhow!("--api '{addr}': not an address to listen on (expected HOST:PORT, e.g. 127.0.0.1:9898): {e}")
        })?
        .collect();
    let Some(first) = addrs.first() else {
        bail!("--api '{addr}': resolves to no address");
    };
    let listener = TcpListener::bind(&addrs[..])
        .with_context(|| format!("--api '{addr}': cannot listen on {first}"))?;
    let addr = listener.local_addr().context("--api: no local address")?;
    Ok(Bound { listener, addr })
}

impl Bound {
    /// Serves `report` on a thread until the process ends.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn serve(self, report: Report) -> Result<SocketAddr> {
        let addr = self.addr;
        let report = Arc::new(report);
        let busy = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                for stream in self.listener.incoming() {
                    let stream = match stream {
                        Ok(s) => s,
                        Err(e) => {
                            warn!(error = %e, "api: accept failed");
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    };
                    if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                        busy.fetch_sub(1, Ordering::AcqRel);
                        let _ =
                            respond(&stream, 503, "text/plain", b"too many connections\n", false);
                        continue;
                    }
                    let report = Arc::clone(&report);
                    let busy_conn = Arc::clone(&busy);
                    let spawned =
                        std::thread::Builder::new()
                            .name("api-conn".into())
                            .spawn(move || {
                                handle(&stream, &report);
                                busy_conn.fetch_sub(1, Ordering::AcqRel);
                            });
                    if spawned.is_err() {
                        busy.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })
            .context("cannot start the api thread")?;
        info!(address = %addr, "api ready: GET /metrics, /health, /status");
        Ok(addr)
    }
}

/// Reads one request and answers it; the connection is then closed.
fn handle(stream: &TcpStream, report: &Report) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0_u8; 2048];
    let mut reader = stream;
    let (method, path) = loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("").to_owned(),
                    req.path.unwrap_or("").to_owned(),
                );
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) | Err(_) => {
                let _ = respond(stream, 400, "text/plain", b"bad request\n", false);
                return;
            }
        }
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        let _ = respond(stream, 405, "text/plain", b"only GET and HEAD\n", head_only);
        return;
    }
    let route = path.split('?').next().unwrap_or("");
    debug!(path = route, "api request");
    let (code, kind, body): (u16, &str, Vec<u8>) = match route {
        "/metrics" => (
            200,
            metrics::CONTENT_TYPE,
            metrics::render(report).into_bytes(),
        ),
        "/status" => {
            let mut json = report.to_value().to_json();
            json.push('\n');
            (200, "application/json", json.into_bytes())
        }
        "/health" => {
            let problems = report.problems();
            let (code, status) = if problems.is_empty() {
                (200, "ok")
            } else {
                (503, "unhealthy")
            };
            let doc = temblor_shim::Value::Object(
                [
                    ("status", temblor_shim::Value::from(status)),
                    (
                        "problems",
                        problems
                            .into_iter()
                            .map(temblor_shim::Value::from)
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                ]
                .into_iter()
                .collect(),
            );
            let mut json = doc.to_json();
            json.push('\n');
            (code, "application/json", json.into_bytes())
        }
        "/" => (
            200,
            "text/plain",
            b"temblor: GET /metrics (Prometheus), /health, /status (JSON)\n".to_vec(),
        ),
        _ => (
            404,
            "text/plain",
            b"not found: try /metrics, /health or /status\n".to_vec(),
        ),
    };
    let _ = respond(stream, code, kind, &body, head_only);
}

fn respond(
    mut stream: &TcpStream,
    code: u16,
    kind: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

/// `GET path` from a temblor API at `addr`: the status code and the body (`temblor top`).
///
/// # Errors
/// No connection, a timeout, or an answer that is not HTTP.
pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("--api '{addr}': not an address (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("--api '{addr}': resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .with_context(|| format!("cannot connect to the temblor api at {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer of {addr}{path}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{addr}{path}: not an HTTP answer"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{addr}{path}: no status code in '{head}'"))?;
    Ok((code, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_names_the_flag() {
        let e = bind("not an address").expect_err("refused");
        assert!(format!("{e:#}").contains("--api 'not an address'"), "{e:#}");
        let e = bind("127.0.0.1:99999").expect_err("port out of range");
        assert!(format!("{e:#}").contains("--api"), "{e:#}");
    }

    #[test]
    fn a_taken_port_is_an_error_at_bind() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let e = bind(&addr).expect_err("taken");
        assert!(format!("{e:#}").contains("cannot listen"), "{e:#}");
    }
}
