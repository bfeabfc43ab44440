//! End to end: the http_server connector (hyper) with real clients: curl over HTTP/1.1
//! (keep-alive, chunked, `Expect: 100-continue`), HTTP/2 (h2c prior knowledge, and over TLS by
//! ALPN), the limits (`max_body` → 413, `max_connections` → 503), wrk, and ten thousand
//! keep-alive connections at once. Every event lands in a file sink; each must be there once.

use std::{
    collections::{HashMap, HashSet},
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use crate::support::{
    Connector, Deployment, Engine as Running, Pipeline, TempDir, lines, server_tls, temblor,
    temp_dir, tls_files,
};

/// An `http_server` connector `id` (JSON, one event per line of a body) on a free loopback
/// port.
fn server(id: &str) -> Connector {
    Connector::new(id, "http_server")
        .codec("json")
        .pre("separate")
        .set("url", "127.0.0.1:0")
}

/// The servers, into a pipeline and a file sink writing JSON lines to `out`.
fn servers_to_file(servers: Vec<Connector>, out: &Path) -> Deployment {
    servers
        .into_iter()
        .fold(Deployment::new(), |deploy, server| {
            deploy.source(server, "main")
        })
        .pipeline(Pipeline::new("main"))
        .connector(Connector::file_write("out", out))
        .connect("main", "out")
}

/// A test's folder `test`, its output file and an engine running `servers` into it.
fn start(test: &str, servers: Vec<Connector>) -> (TempDir, PathBuf, Engine) {
    let dir = temp_dir(test);
    let out = dir.join("out.json");
    let n = servers.len();
    let engine = Engine::start(&dir, &servers_to_file(servers, &out), n);
    (dir, out, engine)
}

/// A running engine: stopped with SIGTERM by `stop`, killed when dropped otherwise.
struct Engine {
    running: Running,
    /// Each server's `host:port`, by connector id, from its "http server listening" line.
    addrs: HashMap<String, String>,
}

impl Engine {
    /// Runs `deploy` and waits until `servers` servers listen.
    fn start(dir: &Path, deploy: &Deployment, servers: usize) -> Self {
        let running = Running::spawn(temblor().arg("run").arg(deploy.write(dir)));
        let addrs = (0..servers)
            .map(|_| running.listening_id("http server listening"))
            .collect();
        Self { running, addrs }
    }

    fn log(&self) -> String {
        self.running.log()
    }

    fn pid(&self) -> u32 {
        self.running.pid()
    }

    fn url(&self, id: &str, scheme: &str) -> String {
        format!("{scheme}://{}/ingest", self.addrs[id])
    }

    fn port(&self, id: &str) -> &str {
        self.addrs[id].rsplit(':').next().unwrap()
    }

    /// SIGTERM; waits at most 30 s for the exit, which must be a success.
    fn stop(self) {
        self.running.stop();
    }
}

/// What curl printed per request: `<status> <new connections> <HTTP version>`.
const FORMAT: &str = "%{http_code} %{num_connects} %{http_version}\\n";

/// What starts another request of the same curl: `--next` and the options of [`curl`]'s
/// first (curl forgets them at a `--next`).
const NEXT: [&str; 6] = ["--next", "-sS", "-o", "/dev/null", "-w", FORMAT];

/// `curl -s -o /dev/null -w FORMAT <args>` (add requests with [`NEXT`]).
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(&NEXT[2..])
        .args(args)
        .output()
        .unwrap()
}

/// curl's `-w` lines.
fn printed(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of `path`, sorted, after checking that none is there twice.
fn once_each(path: &Path) -> Vec<String> {
    let mut got = lines(path);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "an event written twice: {got:?}");
    got.sort();
    got
}

#[test]
fn curl_http1_keep_alive_chunked_expect_continue_and_max_body() {
    let (_dir, out, engine) = start("net-http-h1", vec![server("in").set("max_body", 1024)]);
    let url = engine.url("in", "http");

    // Three requests, one connection: `--next` starts each with its own body.
    let mut args = vec!["-d", "{\"n\":1}", &url];
    for body in ["{\"n\":2}", "{\"n\":3}"] {
        args.extend(NEXT);
        args.extend(["-d", body, &url]);
    }
    let keep_alive = curl(&args);
    assert_eq!(
        printed(&keep_alive),
        ["202 1 1.1", "202 0 1.1", "202 0 1.1"],
        "{}{}",
        stderr(&keep_alive),
        engine.log()
    );

    // A chunked NDJSON body: two events, its last line without a newline.
    let chunked = curl(&[
        "-v",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "{\"n\":4}\n{\"n\":5}",
        &url,
    ]);
    assert_eq!(printed(&chunked), ["202 1 1.1"], "{}", stderr(&chunked));
    assert!(
        stderr(&chunked).contains("> Transfer-Encoding: chunked"),
        "{}",
        stderr(&chunked)
    );

    // Expect: 100-continue, answered 100 then 202.
    let expect = curl(&["-v", "-H", "Expect: 100-continue", "-d", "{\"n\":6}", &url]);
    assert_eq!(printed(&expect), ["202 1 1.1"], "{}", stderr(&expect));
    assert!(
        stderr(&expect).contains("< HTTP/1.1 100 Continue"),
        "{}",
        stderr(&expect)
    );

    // Over max_body: 413, and with Expect: 100-continue no 100 first (the body is not sent).
    let big = format!("{{\"big\":\"{}\"}}", "x".repeat(2048));
    // (curl asks for a 100 Continue itself for a body over 1 KiB: `Expect:` turns that off.)
    let too_large = curl(&["-H", "Expect:", "-d", &big, &url]);
    assert_eq!(printed(&too_large), ["413 1 1.1"], "{}", stderr(&too_large));
    let too_large = curl(&["-v", "-H", "Expect: 100-continue", "-d", &big, &url]);
    assert_eq!(printed(&too_large), ["413 1 1.1"], "{}", stderr(&too_large));
    assert!(
        !stderr(&too_large).contains("100 Continue"),
        "{}",
        stderr(&too_large)
    );
    let chunked_big = curl(&["-H", "Transfer-Encoding: chunked", "-d", &big, &url]);
    assert_eq!(
        printed(&chunked_big),
        ["413 1 1.1"],
        "{}",
        stderr(&chunked_big)
    );

    engine.stop();
    let expected: Vec<String> = (1..=6).map(|n| format!("{{\"n\":{n}}}")).collect();
    assert_eq!(once_each(&out), expected);
}

#[test]
fn curl_http2_with_prior_knowledge_and_over_tls_with_alpn() {
    let dir = temp_dir("net-http-h2-tls");
    let out = dir.join("out.json");
    let (ca, cert, key) = tls_files(&dir);
    let deploy = servers_to_file(
        vec![
            server("plain"),
            server("secure").set("tls", server_tls(&cert, &key)),
        ],
        &out,
    );
    let engine = Engine::start(&dir, &deploy, 2);
    assert!(
        engine
            .log()
            .lines()
            .any(|l| l.contains("http server listening")
                && l.contains("connector{id=secure}")
                && l.contains("tls=true")),
        "{}",
        engine.log()
    );

    let h2c = curl(&[
        "--http2-prior-knowledge",
        "-d",
        "{\"h2c\":1}",
        &engine.url("plain", "http"),
    ]);
    assert_eq!(printed(&h2c), ["202 1 2"], "{}", stderr(&h2c));

    // TLS: localhost (the certificate's name) on the server's port.
    let port = engine.port("secure");
    let url = format!("https://localhost:{port}/ingest");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = ca.display().to_string();
    let tls_args = ["--cacert", &ca, "--resolve", &resolve];
    let mut args = tls_args.to_vec();
    args.extend(["-d", "{\"h2\":1}", &url]);
    args.extend(NEXT);
    args.extend(tls_args);
    args.extend(["-d", "{\"h2\":2}", &url]);
    let h2 = curl(&args);
    assert_eq!(
        printed(&h2),
        ["202 1 2", "202 0 2"],
        "HTTP/2 by ALPN, one connection: {}",
        stderr(&h2)
    );
    let mut args = tls_args.to_vec();
    args.extend(["--http1.1", "-d", "{\"h1\":1}", &url]);
    let h1 = curl(&args);
    assert_eq!(printed(&h1), ["202 1 1.1"], "{}", stderr(&h1));
    // Not trusted: no answer, nothing forwarded.
    let untrusted = curl(&["--resolve", &resolve, "-d", "{\"no\":1}", &url]);
    assert_eq!(untrusted.status.code(), Some(60), "{}", stderr(&untrusted));
    assert!(printed(&untrusted)[0].starts_with("000 "));

    engine.stop();
    assert_eq!(
        once_each(&out),
        ["{\"h1\":1}", "{\"h2\":1}", "{\"h2\":2}", "{\"h2c\":1}"]
    );
}

#[test]
fn one_connection_over_max_connections_is_answered_503() {
    let (dir, out, engine) = start(
        "net-http-max-connections",
        vec![server("in").set("max_connections", 2)],
    );
    let url = engine.url("in", "http");
    // Two idle connections hold both slots (accepted in the order they connected).
    let holders: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&engine.addrs["in"]).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let answer = dir.join("answer.txt");
    let refused = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "%{http_code}", "-o"])
        .arg(&answer)
        .args(["-d", "{\"refused\":1}", &url])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "503",
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(&answer).unwrap(),
        "too many connections\n"
    );
    drop(holders);
    // The slots come back once the server saw them close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let back = curl(&["-d", "{\"back\":1}", &url]);
        if printed(&back) == ["202 1 1.1"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slot came back: {}",
            stderr(&back)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    engine.stop();
    assert_eq!(once_each(&out), ["{\"back\":1}"]);
}

/// Each request a line of its own (`{"n":<k>}`, k = 1, 2, ...); counts answers other than 202.
const WRK_SCRIPT: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) n = 0; bad = 0 end
function request()
  n = n + 1
  return wrk.format("POST", "/ingest", { ["Content-Type"] = "application/x-ndjson" }, '{"n":' .. n .. '}\n')
end
function response(status, headers, body)
  if status ~= 202 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors
  for _, t in ipairs(threads) do
    io.write(string.format("RESULT completed=%d sent=%d bad=%d errors=%d\n",
      summary.requests, t:get("n"), t:get("bad"), e.connect + e.read + e.write + e.status + e.timeout))
  end
end
"#;

#[test]
fn wrk_posts_lines_every_request_is_answered_202_and_every_event_arrives_once() {
    let (dir, out, engine) = start("net-http-wrk", vec![server("in")]);
    let script = dir.join("post.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let wrk = Command::new("wrk")
        .args(["-t1", "-c50", "-d2s", "-s"])
        .arg(&script)
        .arg(engine.url("in", "http"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&wrk.stdout).into_owned();
    assert!(wrk.status.success(), "{report}{}", stderr(&wrk));
    let field = |name: &str| -> u64 {
        report
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    let (completed, sent) = (field("completed="), field("sent="));
    assert!(completed > 0, "{report}");
    assert_eq!(field("bad="), 0, "every answer a 202: {report}");
    assert_eq!(field("errors="), 0, "no socket error: {report}");
    engine.stop();
    // Every request answered is written, once; requests still in flight when wrk stopped
    // (at most one per connection) may be written too.
    let got = once_each(&out);
    let count = got.len() as u64;
    assert!(
        count >= completed && count <= sent,
        "{count} events for {completed} answered, {sent} sent: {report}"
    );
    for line in &got {
        let n: u64 = line
            .strip_prefix("{\"n\":")
            .and_then(|l| l.strip_suffix('}'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a line wrk sent: {line}"));
        assert!((1..=sent).contains(&n), "{line}");
    }
}

/// Resident KiB and threads of `pid`.
fn rss_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("Threads:"))
}

/// Reads one answer (head only: our answers to a 202 have no body) off `stream`.
fn read_head(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0_u8; 512];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn ten_thousand_keep_alive_connections_at_once_with_small_memory_and_no_thread_each() {
    const N: usize = 10_000;
    let (_dir, out, engine) = start(
        "net-http-10k",
        vec![server("in").set("max_connections", 20000)],
    );
    let addr = engine.addrs["in"].clone();
    let post = |stream: &mut TcpStream, body: &str| {
        let request = format!(
            "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
    };
    // Warmed up: the runtime, the engine's buffers.
    let mut first = TcpStream::connect(&addr).unwrap();
    post(&mut first, "{\"warm\":1}");
    assert!(read_head(&mut first).starts_with("HTTP/1.1 202 "));
    let (rss_before, threads_before) = rss_threads(engine.pid());

    let mut clients: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Connected, silent: a task each, no thread, no buffer yet.
    // (Accepted within moments: the listener's backlog is what they waited in.)
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_threads(engine.pid()).0.saturating_sub(rss_before) * 1024 / N as u64;
    for round in 0..2 {
        for (i, c) in clients.iter_mut().enumerate() {
            post(c, &format!("{{\"round\":{round},\"i\":{i}}}"));
        }
        for c in &mut clients {
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let head = read_head(c);
            assert!(head.starts_with("HTTP/1.1 202 "), "{head}");
        }
    }
    // Every connection still open, each served twice.
    let (rss, threads) = rss_threads(engine.pid());
    let served = rss.saturating_sub(rss_before) * 1024 / N as u64;
    eprintln!(
        "{N} connections: {rss} KiB resident (from {rss_before}): {idle} B each idle, {served} B each served, {threads} threads"
    );
    assert!(
        threads <= threads_before + 2,
        "{threads} threads with {N} connections, {threads_before} before"
    );
    assert!(idle < 8 * 1024, "{idle} bytes resident per idle connection");
    // hyper's two 8 KiB buffers of an HTTP/1 connection, and the rest.
    assert!(
        served < 32 * 1024,
        "{served} bytes resident per connection ({rss} KiB, {rss_before} before)"
    );
    drop(clients);
    engine.stop();
    assert_eq!(once_each(&out).len(), 2 * N + 1);
}

#[test]
fn https_without_tls_and_a_bad_certificate_stop_the_start_naming_connector_and_field() {
    let dir = temp_dir("net-http-bad-tls");
    let out = dir.join("out.json");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for (connector, needle) in [
        (
            server("in").set("url", "https://127.0.0.1:0"),
            "'in' (plugin 'http_server'): invalid config: `url` \"https://127.0.0.1:0\" is https:// but there is no `tls` table",
        ),
        (
            server("in").set("tls", server_tls(&garbage, &garbage)),
            "'in' (plugin 'http_server'): invalid config: `tls.cert`",
        ),
    ] {
        let deploy = servers_to_file(vec![connector], &out).write(&dir);
        let run = temblor().arg("run").arg(deploy).output().unwrap();
        let log = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{log}");
        assert!(log.contains(needle), "{needle}: {log}");
        let line = log.lines().find(|l| l.contains(needle)).unwrap_or_default();
        assert_eq!(line.matches("'in'").count(), 1, "the id said once: {line}");
    }
}
