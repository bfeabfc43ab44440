//! Drives the http_server connector through its ABI objects, as the engine does, with `curl` as
//! the client.

use std::{
    io::Read,
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use connector_http_server::HttpServer;
use temblor_harness::connector;
use temblor_shim::{Frames, Setup, SourceBatch, Value, abi::SourceBox, source_object};

/// A running `curl`, killed and reaped when dropped.
struct Curl(Child);

impl Curl {
    /// `curl` with `args`, printing `<status> <new connections>` per URL.
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
                    "%{http_code} %{num_connects}\\n",
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

fn config(fields: &[(&str, Value)]) -> Value {
    Value::Object(fields.iter().cloned().collect())
}

/// A server on a free loopback port, through the ABI object; and its URL.
fn server(fields: &[(&str, Value)]) -> (SourceBox, String) {
    let mut fields = fields.to_vec();
    fields.push(("url", Value::from("127.0.0.1:0")));
    let cfg = config(&fields);
    let server = HttpServer::new(&Setup {
        id: "it",
        config: &cfg,
    })
    .expect("server");
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
    connector::manifest(module);
    let cfg = config(&[("url", Value::from("127.0.0.1:0"))]);
    connector::refuses_the_other_direction(module, &cfg, false);
    connector::rejects_unknown_key(module, &cfg, true);
    assert_eq!((module.manifest())().name.as_str(), "http_server");
}

#[test]
fn harness_source_delivers_a_body_posted_by_curl() {
    let module = connector_http_server::plugin_module();
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let cfg = config(&[("url", Value::from(addr.to_string()))]);
    let poster = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the server never listened");
            thread::sleep(Duration::from_millis(20));
        }
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
    assert_eq!(out, ["202 1", "202 0", "202 0"], "one connection for three");
    assert_eq!(frames, vec![b"same".to_vec(); 3]);
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
