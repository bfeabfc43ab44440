//! Drives the http_client connector through its ABI objects, as the engine does, against a
//! Python `http.server` that records every request (and every connection) to a file, and
//! (`hyper_server.rs`) against a hyper server on `temblor-net`: pooling, HTTP/2, TLS.

mod hyper_server;

use std::{path::PathBuf, process::Command};

use temblor_harness::{TempDir, config, connector, process::Spawned};
use temblor_shim::{ErrorKind, Frames, PluginError, RVec, Value, abi::SinkBox};

/// The Python server (a thread per connection): `mode` is `ok`, `fail:N` (the first N requests
/// get 500), `nth:N` (request N, counted from 1, gets 500), `status:C` (every request gets C) or
/// `slow:MS` (answers after MS milliseconds). Each request is appended to the record file as
/// `METHOD PATH content-type=.. x-token=.. BODY-IN-HEX` before it is answered; each connection
/// accepted appends a line to the record file + `.conns`.
const SERVER: &str = r#"
import http.server, sys, threading, time
mode, record = sys.argv[1], sys.argv[2]
seen = [0]
lock = threading.Lock()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def setup(self):
        super().setup()
        with lock, open(record + '.conns', 'a') as f:
            f.write('%s:%s\n' % self.client_address)
    def answer(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        with lock:
            seen[0] += 1
            n = seen[0]
            with open(record, 'a') as f:
                f.write('%s %s content-type=%s x-token=%s %s\n' % (self.command, self.path,
                    self.headers.get('Content-Type'), self.headers.get('X-Token'), body.hex()))
        code = 200
        if mode.startswith('fail:') and n <= int(mode[5:]):
            code = 500
        elif mode.startswith('nth:') and n == int(mode[4:]):
            code = 500
        elif mode.startswith('status:'):
            code = int(mode[7:])
        elif mode.startswith('slow:'):
            time.sleep(int(mode[5:]) / 1000)
        self.send_response(code)
        self.send_header('Content-Length', '0')
        self.end_headers()
    do_POST = do_PUT = do_PATCH = answer
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The Python server, killed and reaped (and its record removed) when dropped.
struct Server {
    _child: Spawned,
    record: PathBuf,
    url: String,
    _dir: TempDir,
}

impl Server {
    fn start(test: &str, mode: &str) -> Self {
        let dir = TempDir::new(test);
        let record = dir.join("record.txt");
        // The port is printed once the server listens.
        let (child, port, _) = Spawned::reporting::<u16>(Command::new("python3").args([
            "-c",
            SERVER,
            mode,
            record.to_str().expect("utf-8 path"),
        ]));
        let url = format!("http://127.0.0.1:{port}/in?q=1");
        Self {
            _child: child,
            record,
            url,
            _dir: dir,
        }
    }

    /// The connections accepted so far.
    fn connections(&self) -> usize {
        std::fs::read_to_string(conns(&self.record))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// The requests recorded so far, one line each.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Where the server records its connections.
fn conns(record: &std::path::Path) -> PathBuf {
    let mut name = record.as_os_str().to_owned();
    name.push(".conns");
    PathBuf::from(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sink(cfg: &Value) -> Result<SinkBox, PluginError> {
    connector::sink(connector_http_client::plugin_module(), cfg)
}

/// A sink to `server`, with the `settings` beside its url.
fn sink_to(server: &Server, settings: &[(&str, Value)]) -> SinkBox {
    let mut fields = vec![("url", Value::from(server.url.clone()))];
    fields.extend_from_slice(settings);
    sink(&config(&fields)).expect("sink")
}

fn batch(frames: &[&str]) -> Frames {
    frames.iter().map(|f| f.as_bytes()).collect()
}

#[test]
fn compliance_sink_only_and_strict_config() {
    let module = connector_http_client::plugin_module();
    let cfg = config(&[("url", Value::from("http://127.0.0.1:9/"))]);
    connector::compliance(module, "http_client", &cfg, connector::Offers::Sink);
}

#[test]
fn harness_sink_accepts_and_python_records_one_request_per_frame() {
    let server = Server::start("accepts", "ok");
    let cfg = config(&[
        ("url", Value::from(server.url.clone())),
        (
            "headers",
            Value::Object(
                [
                    ("content-type", Value::from("application/json")),
                    ("x-token", Value::from("secret")),
                ]
                .into_iter()
                .collect(),
            ),
        ),
    ]);
    let frames: [&[u8]; 3] = [b"{\"n\":1}", b"{\"n\":2}", b"\x00\xffbinary"];
    connector::sink_accepts(connector_http_client::plugin_module(), &cfg, &frames);
    let expected: Vec<String> = frames
        .iter()
        .map(|f| {
            format!(
                "POST /in?q=1 content-type=application/json x-token=secret {}",
                hex(f)
            )
        })
        .collect();
    assert_eq!(server.requests(), expected);
}

#[test]
fn put_with_no_headers() {
    let server = Server::start("put", "ok");
    let mut sink = sink_to(&server, &[("method", Value::from("PUT"))]);
    assert_eq!(sink.push(&batch(&["a", ""])).into_result(), Ok(()));
    assert_eq!(sink.flush().into_result(), Ok(()));
    assert_eq!(
        server.requests(),
        [
            "PUT /in?q=1 content-type=None x-token=None 61",
            "PUT /in?q=1 content-type=None x-token=None "
        ]
    );
}

#[test]
fn answers_500_are_retried_until_delivered() {
    let server = Server::start("retry", "fail:2");
    let mut sink = sink_to(&server, &[("backoff_ms", Value::from(10_u64))]);
    assert_eq!(
        sink.push(&batch(&["first", "second"])).into_result(),
        Ok(())
    );
    let bodies: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.rsplit(' ').next().expect("body").to_owned())
        .collect();
    assert_eq!(
        bodies,
        [hex(b"first"), hex(b"first"), hex(b"first"), hex(b"second")]
    );
}

/// Batches that fail: the server's script (none: no server, port 9), the settings, the
/// frames, what the `Io` error says, and how many requests the server got.
#[test]
fn failed_batches_are_io_errors_that_say_why() {
    for (script, settings, frames, says, requests) in [
        // After max_retries: x gets one attempt and two retries, y one attempt, then the
        // batch is given up.
        (
            Some(("give-up", "fail:1000")),
            &[("max_retries", 2_u64), ("backoff_ms", 10)][..],
            &["x", "y"][..],
            &["2 of 2 frames not delivered", "500"][..],
            Some(4),
        ),
        // 4xx answers are not retried: each frame once.
        (
            Some(("4xx", "status:400")),
            &[],
            &["bad", "worse"],
            &["2 of 2 frames refused"],
            Some(2),
        ),
        // No server: an error after the retries, not a panic. Port 9 (discard) is below the
        // ephemeral range: no other test's server binds it, as one may a port freed here.
        (
            None,
            &[("max_retries", 1), ("backoff_ms", 10)],
            &["lost"],
            &["after 2 attempts"],
            None,
        ),
        // A slow server times out.
        (
            Some(("slow", "slow:3000")),
            &[("timeout_ms", 300), ("max_retries", 0)],
            &["patience"],
            &["no complete answer within 300 ms (timed out) (after 1 attempt)"],
            None,
        ),
    ] {
        let server = script.map(|(name, script)| Server::start(name, script));
        let url = server
            .as_ref()
            .map_or_else(|| "http://127.0.0.1:9/".to_owned(), |s| s.url.clone());
        let mut fields = vec![("url", Value::from(url))];
        fields.extend(settings.iter().map(|(k, v)| (*k, Value::from(*v))));
        let mut sink = sink(&config(&fields)).expect("nothing is connected yet");
        let err = sink
            .push(&batch(frames))
            .into_result()
            .expect_err("the batch fails");
        assert_eq!(err.kind, ErrorKind::Io, "{err}");
        for needle in says {
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
        if let (Some(server), Some(requests)) = (&server, requests) {
            assert_eq!(server.requests().len(), requests, "{err}");
        }
    }
}

/// The body of each recorded request, as text.
fn bodies(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| {
            let hex = r.rsplit(' ').next().expect("body");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            String::from_utf8(bytes).expect("utf-8")
        })
        .collect()
}

#[test]
fn push_batch_lists_the_frames_delivered_before_and_after_a_failed_one() {
    let server = Server::start("partial", "nth:3");
    let mut sink = sink_to(&server, &[("max_retries", Value::from(0_u64))]);
    let frames = batch(&["f0", "f1", "f2", "f3", "f4"]);
    let mut delivered = RVec::new();
    let err = sink
        .push_batch(&frames, [].as_slice().into(), &mut delivered)
        .into_result()
        .expect_err("the third request got 500");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("1 of 5 frames not delivered"), "{err}");
    assert_eq!(delivered.as_slice(), [0, 1, 3, 4]);
    // What the engine's retry sends: only the frame not delivered, which now goes through.
    let mut again = RVec::new();
    assert_eq!(
        sink.push_batch(&batch(&["f2"]), [].as_slice().into(), &mut again)
            .into_result(),
        Ok(())
    );
    assert_eq!(bodies(&server), ["f0", "f1", "f2", "f3", "f4", "f2"]);
}

/// Meta with `headers = { x-token = token }`.
fn token_meta(token: &str) -> Value {
    Value::Object(
        [(
            "headers",
            Value::Object([("x-token", Value::from(token))].into_iter().collect()),
        )]
        .into_iter()
        .collect(),
    )
}

#[test]
fn headers_from_meta_reach_python_and_are_off_by_default() {
    let server = Server::start("meta-headers", "ok");
    let meta = [token_meta("t-1"), token_meta("t-2")];
    // On, then off (the default).
    for (settings, frames) in [
        (&[("headers_from_meta", Value::from(true))][..], ["a", "b"]),
        (&[], ["c", "d"]),
    ] {
        let mut sink = sink_to(&server, settings);
        assert_eq!(
            sink.push_batch(&batch(&frames), meta.as_slice().into(), &mut RVec::new())
                .into_result(),
            Ok(())
        );
    }
    assert_eq!(
        server.requests(),
        [
            "POST /in?q=1 content-type=None x-token=t-1 61",
            "POST /in?q=1 content-type=None x-token=t-2 62",
            "POST /in?q=1 content-type=None x-token=None 63",
            "POST /in?q=1 content-type=None x-token=None 64",
        ]
    );
}

#[test]
fn one_kept_alive_connection_carries_many_requests_and_batches() {
    let server = Server::start("pooled", "ok");
    let mut sink = sink_to(&server, &[]);
    for b in 0..5 {
        let frames: Vec<String> = (0..10).map(|i| format!("{b}-{i}")).collect();
        let frames: Vec<&str> = frames.iter().map(String::as_str).collect();
        assert_eq!(sink.push(&batch(&frames)).into_result(), Ok(()));
    }
    assert_eq!(server.requests().len(), 50);
    let connections = server.connections();
    // Usually one; the pool may open a spare when a request starts before the previous
    // answer's connection is back in it.
    assert!(
        (1..=5).contains(&connections),
        "{connections} connections for 50 requests"
    );
}
