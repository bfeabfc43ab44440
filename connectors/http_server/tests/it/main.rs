//! Drives the http_server connector through its ABI objects, as the engine does, with `curl` as
//! the client (HTTP/1.1, HTTP/2 with prior knowledge, TLS with ALPN); `raw` speaks raw bytes.

mod raw;

use std::{
    io::Read,
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use connector_http_server::HttpServer;
use temblor_harness::{config, connector, net::wait_listening};
use temblor_net::{
    http_body_util::Full,
    hyper::{self, Version, body::Bytes},
    hyper_util::rt::{TokioExecutor, TokioIo},
    tokio,
};
use temblor_shim::{Frames, PluginError, Setup, SourceBatch, Value, abi::SourceBox, source_object};

/// A running `curl`, killed and reaped when dropped.
struct Curl(Child);

impl Curl {
    /// `curl` with `args`, printing `<status> <new connections> <HTTP version>` per URL.
    fn start(args: &[&str]) -> Self {
        Self(
            Command::new("curl")
                .args([
                    "-s",
                    "-S",
                    "--max-time",
                    "20",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{num_connects} %{http_version}\\n",
                ])
                .args(args)
                .stdout(Stdio::piped())
                .spawn()
                .expect("start curl"),
        )
    }

    /// Whether it has exited.
    fn done(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_some()
    }

    /// Waits for it to exit; its output lines.
    fn finish(mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.done() {
            assert!(Instant::now() < deadline, "curl did not finish");
            thread::sleep(Duration::from_millis(10));
        }
        let mut out = String::new();
        self.0
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read");
        out.lines().map(str::to_owned).collect()
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A file for one test, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "temblor-connector-http_server-it-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, data).expect("write");
        Self(path)
    }

    fn arg(&self) -> String {
        format!("@{}", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The server `id` with the config `fields`, or why not.
fn http_server(id: &str, fields: &[(&str, Value)]) -> Result<HttpServer, PluginError> {
    HttpServer::new(&Setup {
        id,
        config: &config(fields),
    })
}

/// A server with the config `fields` on a free loopback port.
fn on_free_port(fields: &[(&str, Value)]) -> HttpServer {
    let mut fields = fields.to_vec();
    fields.push(("url", Value::from("127.0.0.1:0")));
    http_server("it", &fields).expect("server")
}

/// A server on a free loopback port, through the ABI object; and its URL.
fn server(fields: &[(&str, Value)]) -> (SourceBox, String) {
    let server = on_free_port(fields);
    let url = format!("http://{}/ingest", server.local_addr());
    (source_object(server), url)
}

/// Runs curl with `args` while pulling; its output lines and the frames pulled.
fn curl(source: &mut SourceBox, args: &[&str]) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut curl = Curl::start(args);
    let mut got = Vec::new();
    let mut frames = Frames::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !curl.done() {
        assert!(Instant::now() < deadline, "curl did not finish");
        frames.clear();
        source.pull(&mut frames).into_result().expect("pull");
        got.extend(frames.iter().map(<[u8]>::to_vec));
    }
    (curl.finish(), got)
}

fn statuses(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| &l[..3]).collect()
}

#[test]
fn compliance_source_only_and_strict_config() {
    let module = connector_http_server::plugin_module();
    let cfg = config(&[("url", Value::from("127.0.0.1:0"))]);
    connector::compliance(module, "http_server", &cfg, connector::Offers::Source);
}

#[test]
fn harness_source_delivers_a_body_posted_by_curl() {
    let module = connector_http_server::plugin_module();
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let cfg = config(&[("url", Value::from(addr.to_string()))]);
    let poster = thread::spawn(move || {
        wait_listening(addr);
        Curl::start(&[
            "--data-binary",
            "{\"hello\":\"world\"}",
            &format!("http://{addr}/"),
        ])
        .finish()
    });
    let frames = connector::source_delivers(module, &cfg, 1, Duration::from_secs(20));
    assert_eq!(frames, [b"{\"hello\":\"world\"}".to_vec()]);
    assert_eq!(statuses(&poster.join().expect("poster")), ["202"]);
}

#[test]
fn post_and_put_bodies_arrive_whole_and_are_answered_202() {
    let (mut source, url) = server(&[]);
    let (out, frames) = curl(&mut source, &["-d", "{\"n\":1}", &url]);
    assert_eq!(statuses(&out), ["202"]);
    assert_eq!(frames, [b"{\"n\":1}".to_vec()]);

    let (out, frames) = curl(
        &mut source,
        &["-X", "PUT", "--data-binary", "put body", &url],
    );
    assert_eq!(statuses(&out), ["202"]);
    assert_eq!(frames, [b"put body".to_vec()]);

    // Binary, large (curl sends Expect: 100-continue), and then chunked.
    let data: Vec<u8> = (0..900_000_u32)
        .map(|i| u8::try_from(i % 256).expect("byte"))
        .collect();
    let file = TempFile::new("binary.bin", &data);
    let (out, frames) = curl(&mut source, &["--data-binary", &file.arg(), &url]);
    assert_eq!(statuses(&out), ["202"]);
    assert_eq!(frames.len(), 1);
    assert!(frames[0] == data, "the body arrives byte for byte");
    let (out, frames) = curl(
        &mut source,
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &file.arg(),
            &url,
        ],
    );
    assert_eq!(statuses(&out), ["202"]);
    assert!(
        frames.len() == 1 && frames[0] == data,
        "chunked: byte for byte"
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (mut source, url) = server(&[]);
    let (out, frames) = curl(&mut source, &["--data-binary", "same", &url, &url, &url]);
    assert_eq!(
        out,
        ["202 1 1.1", "202 0 1.1", "202 0 1.1"],
        "one connection for three"
    );
    assert_eq!(frames, vec![b"same".to_vec(); 3]);
}

#[test]
fn curl_with_http2_prior_knowledge_gets_202_413_and_405() {
    let (mut source, url) = server(&[("max_body", Value::from(1024_u64))]);
    // (curl 7.88 cannot reuse an h2c connection, curl/curl#10634: one request per run.)
    let (out, frames) = curl(
        &mut source,
        &["--http2-prior-knowledge", "--data-binary", "h2", &url],
    );
    assert_eq!(out, ["202 1 2"], "HTTP/2");
    assert_eq!(frames, [b"h2".to_vec()]);
    let big = TempFile::new("h2-big.txt", &[b'x'; 2048]);
    let (out, frames) = curl(
        &mut source,
        &["--http2-prior-knowledge", "--data-binary", &big.arg(), &url],
    );
    assert_eq!(out, ["413 1 2"]);
    assert!(frames.is_empty());
    let (out, _) = curl(&mut source, &["--http2-prior-knowledge", &url]);
    assert_eq!(out, ["405 1 2"]);
}

/// POSTs `bodies` at once as streams of one HTTP/2 connection (prior knowledge, hyper's
/// client): each answer's status and version.
fn h2_posts(addr: &str, bodies: &[&'static str]) -> Vec<(u16, Version)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let tasks: Vec<_> = bodies
            .iter()
            .map(|body| {
                let mut send = send.clone();
                let request = hyper::Request::post(format!("http://{addr}/h2"))
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .expect("request");
                tokio::spawn(async move {
                    let answer = send.send_request(request).await.expect("answer");
                    (answer.status().as_u16(), answer.version())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("task"));
        }
        answers
    })
}

#[test]
fn http2_prior_knowledge_multiplexes_requests_on_one_connection() {
    let (mut source, url) = server(&[]);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/ingest")
        .to_owned();
    let client = thread::spawn(move || h2_posts(&addr, &["a", "b", "c"]));
    let (mut bodies, mut peers) = (Vec::new(), Vec::new());
    let mut batch = SourceBatch::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while bodies.len() < 3 {
        assert!(Instant::now() < deadline, "only {bodies:?}");
        batch.reset(0);
        source.pull_batch(&mut batch).into_result().expect("pull");
        for (range, run) in batch.all_runs() {
            bodies.extend(range.map(|i| batch.frames().get(i).expect("frame").to_vec()));
            peers.push(run.meta.get("peer").cloned());
            assert_eq!(run.meta.get("path"), Some(&Value::from("/h2")));
        }
    }
    assert_eq!(
        client.join().expect("client"),
        vec![(202, Version::HTTP_2); 3]
    );
    bodies.sort();
    assert_eq!(bodies, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    peers.dedup();
    assert_eq!(peers.len(), 1, "one connection: {peers:?}");
}

#[test]
fn too_large_bodies_get_413_and_other_methods_405() {
    let (mut source, url) = server(&[("max_body", Value::from(1024_u64))]);
    let big = TempFile::new("big.txt", &[b'x'; 2048]);
    let big_arg = big.arg();
    for extra in [None, Some("Expect:"), Some("Expect: 100-continue")] {
        let mut args = vec!["--data-binary", &big_arg[..]];
        if let Some(header) = extra {
            args.extend(["-H", header]);
        }
        args.push(&url);
        let (out, frames) = curl(&mut source, &args);
        assert_eq!(statuses(&out), ["413"], "{extra:?}");
        assert!(frames.is_empty(), "a too-large body is not forwarded");
    }
    let (out, frames) = curl(
        &mut source,
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &big_arg,
            &url,
        ],
    );
    assert_eq!(statuses(&out), ["413"], "chunked");
    assert!(frames.is_empty());

    for args in [vec![&url[..]], vec!["-X", "DELETE", &url], vec!["-I", &url]] {
        let (out, frames) = curl(&mut source, &args);
        assert_eq!(statuses(&out), ["405"], "{args:?}");
        assert!(frames.is_empty());
    }
    // A body of exactly max_body is fine.
    let fits = TempFile::new("fits.txt", &[b'y'; 1024]);
    let (out, frames) = curl(&mut source, &["--data-binary", &fits.arg(), &url]);
    assert_eq!(statuses(&out), ["202"]);
    assert_eq!(frames, [vec![b'y'; 1024]]);
}

#[test]
fn concurrent_clients_are_all_served() {
    let (mut source, url) = server(&[]);
    let bodies: Vec<String> = (0..8).map(|i| format!("{{\"client\":{i}}}")).collect();
    let mut curls: Vec<Curl> = bodies
        .iter()
        .map(|body| Curl::start(&["--data-binary", body, &url]))
        .collect();
    let mut got = Vec::new();
    let mut frames = Frames::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !curls.iter_mut().all(Curl::done) {
        assert!(Instant::now() < deadline, "the clients did not finish");
        frames.clear();
        source.pull(&mut frames).into_result().expect("pull");
        got.extend(
            frames
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).expect("utf-8")),
        );
    }
    for curl in curls {
        assert_eq!(statuses(&curl.finish()), ["202"]);
    }
    got.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn connections_beyond_max_connections_get_503() {
    let (mut source, url) = server(&[("max_connections", Value::from(2_u64))]);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/ingest")
        .to_owned();
    let holders: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    // Let the acceptor take both.
    thread::sleep(Duration::from_millis(200));
    let (out, frames) = curl(&mut source, &["-d", "x", &url]);
    assert_eq!(statuses(&out), ["503"]);
    assert!(frames.is_empty());
    drop(holders);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (out, frames) = curl(&mut source, &["-d", "back", &url]);
        if statuses(&out) == ["202"] {
            assert_eq!(frames, [b"back".to_vec()]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slots never came back: {out:?}"
        );
    }
}

#[test]
fn dropping_the_source_closes_the_port() {
    let (source, url) = server(&[]);
    drop(source);
    let status = Command::new("curl")
        .args(["-s", "--max-time", "5", "-d", "x", &url])
        .status()
        .expect("curl");
    assert_eq!(status.code(), Some(7), "curl could not connect");
}

/// Runs curl with `args` while pulling batches under tokens 1, 2, ...; when a batch brings a
/// request, calls `outcome` with its token (to ack or fail it through the ABI). Returns curl's
/// output lines and the meta of each stream handed over.
fn curl_delivered(
    source: &mut SourceBox,
    args: &[&str],
    mut outcome: impl FnMut(&mut SourceBox, u64),
) -> (Vec<String>, Vec<Value>) {
    assert!(source.wants_acks());
    let mut curl = Curl::start(args);
    let mut meta = Vec::new();
    let mut batch = SourceBatch::new();
    let mut token = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !curl.done() {
        assert!(Instant::now() < deadline, "curl did not finish");
        token += 1;
        batch.reset(token);
        source.pull_batch(&mut batch).into_result().expect("pull");
        if !batch.frames().is_empty() {
            meta.extend(batch.runs().iter().map(|r| r.meta.clone()));
            outcome(source, token);
        }
    }
    (curl.finish(), meta)
}

#[test]
fn delivered_curl_gets_200_after_the_ack_and_503_after_a_fail() {
    let (mut source, url) = server(&[("response", Value::from("delivered"))]);
    let (out, meta) = curl_delivered(
        &mut source,
        &[
            "-H",
            "Idempotency-Key: k1",
            "--data-binary",
            "{\"n\":1}",
            &url,
        ],
        |source, token| source.ack(token).into_result().expect("ack"),
    );
    assert_eq!(statuses(&out), ["200"]);
    assert_eq!(meta.len(), 1);
    assert_eq!(meta[0].get("method"), Some(&Value::from("POST")));
    assert_eq!(meta[0].get("path"), Some(&Value::from("/ingest")));
    let headers = meta[0].get("headers").expect("headers");
    assert_eq!(headers.get("idempotency-key"), Some(&Value::from("k1")));
    assert!(
        headers
            .get("user-agent")
            .and_then(Value::as_str)
            .is_some_and(|ua| ua.starts_with("curl/")),
        "{headers}"
    );

    let (out, _) = curl_delivered(
        &mut source,
        &["--data-binary", "{\"n\":2}", &url],
        |source, token| {
            source
                .fail(token, "the sink gave up".into())
                .into_result()
                .expect("fail");
        },
    );
    assert_eq!(statuses(&out), ["503"]);
}

#[test]
fn delivered_curl_gets_503_when_nothing_is_acked_in_time() {
    let (mut source, url) = server(&[
        ("response", Value::from("delivered")),
        ("timeout_ms", Value::from(300_u64)),
    ]);
    let begin = Instant::now();
    let (out, meta) = curl_delivered(&mut source, &["-d", "x", &url], |_, _| {});
    assert_eq!(statuses(&out), ["503"]);
    assert_eq!(meta.len(), 1, "handed over, never acked");
    assert!(begin.elapsed() >= Duration::from_millis(300));
}

/// A self-signed certificate for `localhost` and 127.0.0.1 made by `openssl`: (cert, key).
fn self_signed(name: &str) -> (TempFile, TempFile) {
    let cert = TempFile::new(&format!("{name}.pem"), b"");
    let key = TempFile::new(&format!("{name}.key"), b"");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key.0)
        .arg("-out")
        .arg(&cert.0)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert, key)
}

/// A server `id` on `url` with TLS from the files `cert` and `key`, or why not.
fn tls_server(
    id: &str,
    url: &str,
    cert: &TempFile,
    key: &TempFile,
) -> Result<HttpServer, PluginError> {
    let tls = config(&[
        ("cert", Value::from(cert.0.display().to_string())),
        ("key", Value::from(key.0.display().to_string())),
    ]);
    http_server(id, &[("url", Value::from(url)), ("tls", tls)])
}

#[test]
fn tls_serves_http2_and_http1_through_alpn() {
    let (cert, key) = self_signed("tls");
    let server = tls_server("it", "https://127.0.0.1:0", &cert, &key).expect("server");
    let url = format!("https://localhost:{}/in", server.local_addr().port());
    let resolve = format!("localhost:{}:127.0.0.1", server.local_addr().port());
    let mut source = source_object(server);
    let ca = cert.0.display().to_string();
    let (out, frames) = curl(
        &mut source,
        &[
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "-d",
            "secret",
            &url,
            &url,
        ],
    );
    assert_eq!(
        out,
        ["202 1 2", "202 0 2"],
        "HTTP/2 by ALPN, one connection"
    );
    assert_eq!(frames, vec![b"secret".to_vec(); 2]);
    let (out, frames) = curl(
        &mut source,
        &[
            "--http1.1",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "-d",
            "one",
            &url,
        ],
    );
    assert_eq!(out, ["202 1 1.1"]);
    assert_eq!(frames, [b"one".to_vec()]);
    // Not TLS: no HTTP answer.
    let (out, frames) = curl(&mut source, &["-d", "plain", &url.replace("https", "http")]);
    assert_eq!(statuses(&out), ["000"]);
    assert!(frames.is_empty());
}

#[test]
fn a_bad_certificate_is_a_config_error_naming_the_field() {
    let (_, key) = self_signed("bad");
    let garbage = TempFile::new(
        "garbage.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    // A certificate with another's key.
    let (other, _) = self_signed("other");
    for (cert, names) in [
        (&garbage, &["`tls.cert`"][..]),
        (&other, &["`tls.cert`", "`tls.key`"]),
    ] {
        let e = tls_server("secure", "127.0.0.1:0", cert, &key)
            .err()
            .expect("refused");
        assert_eq!(e.kind, temblor_shim::ErrorKind::Config, "{e}");
        for name in names {
            assert!(e.message.contains(name), "{name}: {e}");
        }
    }
}
