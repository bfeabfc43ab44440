//! Drives the tcp_server connector through its ABI objects, as the engine does, with `nc`
//! (netcat-openbsd) and `socat` as the clients. Each connection is a stream of raw chunks; the
//! tests split each stream into lines themselves, as the engine's `separate` preprocessor does
//! per stream.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use connector_tcp_server::TcpServer;
use temblor_harness::connector;
use temblor_shim::{Setup, SourceBatch, Value, abi::SourceBox, source_object};

/// A child process, killed and reaped when dropped.
struct Peer(Child);

impl Peer {
    fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("start the peer (is it installed?)"))
    }

    /// Waits for the peer to exit on its own; true when it exited with success.
    fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status.success();
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh folder for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "temblor-connector-tcp_server-it-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, data).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(fields: &[(&str, Value)]) -> Value {
    Value::Object(fields.iter().cloned().collect())
}

/// A server on a free loopback port, through the ABI object; and its address.
fn server(fields: &[(&str, Value)]) -> (SourceBox, SocketAddr) {
    let mut fields = fields.to_vec();
    fields.push(("url", Value::from("127.0.0.1:0")));
    let cfg = config(&fields);
    let server = TcpServer::new(&Setup {
        id: "it",
        config: &cfg,
    })
    .expect("server");
    let addr = server.local_addr();
    (source_object(server), addr)
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// `nc` sending a file and closing when done.
fn nc(addr: SocketAddr, file: &Path) -> Peer {
    Peer::spawn(
        Command::new(netcat())
            .args(["-N", &addr.ip().to_string(), &addr.port().to_string()])
            .stdin(std::fs::File::open(file).expect("open"))
            .stdout(Stdio::null()),
    )
}

/// `socat` sending a file and closing when done.
fn socat(addr: SocketAddr, file: &Path) -> Peer {
    Peer::spawn(Command::new("socat").args([
        "-u".to_owned(),
        format!("OPEN:{}", file.display()),
        format!("TCP:{addr}"),
    ]))
}

/// What a source handed over, by stream, as the engine sees it.
#[derive(Default, Debug)]
struct Streams {
    /// Each stream started, with its meta, in the order started.
    started: Vec<(u64, Value)>,
    /// The bytes of each stream not split into lines yet.
    partial: BTreeMap<u64, Vec<u8>>,
    /// Every chunk, with its stream.
    chunks: Vec<(u64, Vec<u8>)>,
    /// Every complete line (split at `\n`, empty ones skipped), with its stream, in order.
    lines: Vec<(u64, Vec<u8>)>,
    ended: Vec<u64>,
}

impl Streams {
    fn take(&mut self, batch: &SourceBatch) {
        for (range, run) in batch.all_runs() {
            let stream = run.stream;
            if run.starts() {
                assert!(
                    !self.started.iter().any(|(s, _)| *s == stream),
                    "stream {stream} started twice"
                );
                self.started.push((stream, run.meta.clone()));
            }
            for i in range {
                let chunk = batch.frames().get(i).expect("a frame");
                assert!(
                    self.started.iter().any(|(s, _)| *s == stream),
                    "bytes of stream {stream} before its start"
                );
                assert!(!self.ended.contains(&stream), "bytes after the end");
                self.chunks.push((stream, chunk.to_vec()));
                let partial = self.partial.entry(stream).or_default();
                partial.extend_from_slice(chunk);
                while let Some(at) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=at).take(at).collect();
                    if !line.is_empty() {
                        self.lines.push((stream, line));
                    }
                }
            }
            if run.ends() {
                assert!(!self.ended.contains(&stream), "stream {stream} ended twice");
                self.ended.push(stream);
                if let Some(rest) = self.partial.remove(&stream)
                    && !rest.is_empty()
                {
                    self.lines.push((stream, rest));
                }
            }
        }
    }

    /// Pulls until `done` or `timeout`; every pull comes back within a second.
    fn pull_until(
        &mut self,
        source: &mut SourceBox,
        timeout: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> &mut Self {
        let deadline = Instant::now() + timeout;
        let mut batch = SourceBatch::new();
        while !done(self) && Instant::now() < deadline {
            batch.reset(0);
            let pull_started = Instant::now();
            source.pull_batch(&mut batch).into_result().expect("pull");
            assert!(pull_started.elapsed() < Duration::from_secs(1));
            self.take(&batch);
        }
        self
    }

    /// Pulls until `want` lines arrived or `timeout` passed; the lines that arrived.
    fn lines_until(
        &mut self,
        source: &mut SourceBox,
        want: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let before = self.lines.len();
        self.pull_until(source, timeout, |s| s.lines.len() >= before + want);
        text(
            &self.lines[before..]
                .iter()
                .map(|(_, l)| l.clone())
                .collect::<Vec<_>>(),
        )
    }

    /// `meta.peer` of a stream.
    fn peer(&self, stream: u64) -> String {
        let meta = &self
            .started
            .iter()
            .find(|(s, _)| *s == stream)
            .expect("started")
            .1;
        meta.get("peer")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("stream {stream} has no meta.peer: {meta}"))
            .to_owned()
    }
}

fn text(frames: &[Vec<u8>]) -> Vec<String> {
    frames
        .iter()
        .map(|f| String::from_utf8(f.clone()).expect("utf-8"))
        .collect()
}

/// Client `k`'s line `n`: its numbers and a padding that depends on both.
fn line(k: usize, n: usize) -> String {
    let pad = char::from(b'a' + u8::try_from((k * 7 + n) % 26).expect("small"));
    format!("c{k}-n{n:05}-{}", pad.to_string().repeat(n % 97))
}

#[test]
fn compliance_source_only_and_strict_config() {
    let module = connector_tcp_server::plugin_module();
    connector::manifest(module);
    let cfg = config(&[("url", Value::from("127.0.0.1:0"))]);
    connector::refuses_the_other_direction(module, &cfg, false);
    connector::rejects_unknown_key(module, &cfg, true);
    assert_eq!((module.manifest())().name.as_str(), "tcp_server");
}

#[test]
fn harness_source_delivers_what_socat_sends() {
    let module = connector_tcp_server::plugin_module();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let cfg = config(&[("url", Value::from(addr.to_string()))]);
    let dir = TempDir::new("harness");
    let sent = b"one\ntwo\nthree\n";
    let file = dir.write("lines.txt", sent);
    let sender = thread::spawn(move || {
        wait_listening(addr);
        let mut peer = socat(addr, &file);
        assert!(peer.wait(Duration::from_secs(10)), "socat failed");
    });
    let frames = connector::source_delivers(module, &cfg, 1, Duration::from_secs(20));
    sender.join().expect("sender");
    let got = frames.concat();
    assert!(!got.is_empty() && sent.starts_with(&got), "{got:?}");
    // Dropped: the port is free again.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn a_connection_is_one_stream_from_start_to_end_with_its_peer() {
    let (mut source, addr) = server(&[]);
    let mut client = TcpStream::connect(addr).expect("connect");
    let me = client.local_addr().expect("addr").to_string();
    client.write_all(b"one\ntw").expect("write");
    let mut got = Streams::default();
    got.pull_until(&mut source, Duration::from_secs(10), |s| s.lines.len() == 1);
    assert_eq!(got.started.len(), 1);
    assert!(got.ended.is_empty(), "the client is still connected");
    client.write_all(b"o\nthree").expect("write");
    drop(client);
    got.pull_until(&mut source, Duration::from_secs(10), |s| {
        !s.ended.is_empty()
    });
    let stream = got.started[0].0;
    assert_ne!(stream, temblor_shim::DEFAULT_STREAM);
    assert_eq!(got.ended, [stream]);
    assert_eq!(got.peer(stream), me);
    let lines: Vec<Vec<u8>> = got.lines.iter().map(|(_, l)| l.clone()).collect();
    assert_eq!(
        text(&lines),
        ["one", "two", "three"],
        "the last line ends with the stream"
    );
}

#[test]
fn interleaved_partial_lines_of_two_clients_stay_in_their_streams() {
    let (mut source, addr) = server(&[]);
    let mut a = TcpStream::connect(addr).expect("connect");
    let mut b = TcpStream::connect(addr).expect("connect");
    let a_addr = a.local_addr().expect("a's address").to_string();
    let mut got = Streams::default();
    got.pull_until(&mut source, Duration::from_secs(10), |s| {
        s.started.len() == 2
    });
    for n in 0..20 {
        // Each write is pulled before the next, so that chunks of the two really alternate.
        for (to_a, part) in [
            (true, format!("alpha-{n}-")),
            (false, format!("beta-{n}-")),
            (true, "end\n".to_owned()),
            (false, "end\n".to_owned()),
        ] {
            let client = if to_a { &mut a } else { &mut b };
            client.write_all(part.as_bytes()).expect("write");
            let chunks = got.chunks.len();
            got.pull_until(&mut source, Duration::from_secs(10), |s| {
                s.chunks.len() > chunks
            });
        }
    }
    drop((a, b));
    got.pull_until(&mut source, Duration::from_secs(10), |s| s.ended.len() == 2);
    // The two connections' streams may start in either order: A's is the one with its address.
    let (mut sa, mut sb) = (got.started[0].0, got.started[1].0);
    if got.peer(sa) != a_addr {
        std::mem::swap(&mut sa, &mut sb);
    }
    assert_ne!(sa, sb);
    assert_ne!(got.peer(sa), got.peer(sb));
    let of = |stream: u64| -> Vec<String> {
        let lines: Vec<Vec<u8>> = got
            .lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l.clone())
            .collect();
        text(&lines)
    };
    let alpha: Vec<String> = (0..20).map(|n| format!("alpha-{n}-end")).collect();
    let beta: Vec<String> = (0..20).map(|n| format!("beta-{n}-end")).collect();
    assert_eq!(of(sa), alpha);
    assert_eq!(of(sb), beta);
    assert!(
        got.chunks.windows(2).filter(|w| w[0].0 != w[1].0).count() >= 40,
        "the two streams' chunks alternate"
    );
}

#[test]
fn many_clients_at_once_deliver_whole_lines_in_order_per_client() {
    const CLIENTS: usize = 6;
    const LINES: usize = 2000;
    let (mut source, addr) = server(&[]);
    let dir = TempDir::new("many");
    let mut peers = Vec::new();
    for k in 0..CLIENTS {
        let payload: String = (0..LINES).map(|n| line(k, n) + "\n").collect();
        let file = dir.write(&format!("client{k}.txt"), payload.as_bytes());
        peers.push(if k % 2 == 0 {
            nc(addr, &file)
        } else {
            socat(addr, &file)
        });
    }
    let mut got = Streams::default();
    got.pull_until(&mut source, Duration::from_secs(60), |s| {
        s.ended.len() == CLIENTS
    });
    assert_eq!(got.ended.len(), CLIENTS, "every client's stream ended");
    assert_eq!(got.lines.len(), CLIENTS * LINES);
    // Each stream is one client's lines, whole and in order.
    let mut clients = Vec::new();
    let mut peers_seen = Vec::new();
    for (stream, _) in &got.started {
        let lines: Vec<Vec<u8>> = got
            .lines
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, l)| l.clone())
            .collect();
        let lines = text(&lines);
        let k: usize = lines[0][1..lines[0].find('-').expect("client")]
            .parse()
            .expect("client number");
        let want: Vec<String> = (0..LINES).map(|n| line(k, n)).collect();
        assert!(
            lines == want,
            "stream {stream} holds client {k}'s lines, in order"
        );
        clients.push(k);
        peers_seen.push(got.peer(*stream));
    }
    clients.sort_unstable();
    assert_eq!(clients, (0..CLIENTS).collect::<Vec<_>>());
    peers_seen.sort();
    peers_seen.dedup();
    assert_eq!(peers_seen.len(), CLIENTS, "each stream has its own peer");
    for mut peer in peers {
        assert!(peer.wait(Duration::from_secs(10)), "a client failed");
    }
}

#[test]
fn raw_chunks_never_mix_two_clients() {
    const CLIENTS: usize = 4;
    const BYTES: usize = 200_000;
    let (mut source, addr) = server(&[("max_frame", Value::from(512_u64))]);
    let dir = TempDir::new("raw");
    let mut expected = Vec::new();
    let mut peers = Vec::new();
    for k in 0..CLIENTS {
        // Client k sends only bytes from 64k to 64k + 60, in a pattern that shows their order.
        let payload: Vec<u8> = (0..BYTES)
            .map(|i| u8::try_from(k * 64 + i % 61).expect("a byte"))
            .collect();
        let file = dir.write(&format!("raw{k}.bin"), &payload);
        expected.push(payload);
        peers.push(if k % 2 == 0 {
            socat(addr, &file)
        } else {
            nc(addr, &file)
        });
    }
    let mut got = Streams::default();
    got.pull_until(&mut source, Duration::from_secs(60), |s| {
        s.ended.len() == CLIENTS
    });
    assert_eq!(got.ended.len(), CLIENTS);
    let mut owners: BTreeMap<u64, usize> = BTreeMap::new();
    let mut bytes = vec![Vec::new(); CLIENTS];
    for (stream, chunk) in &got.chunks {
        assert!(!chunk.is_empty() && chunk.len() <= 512, "{}", chunk.len());
        let owner = usize::from(chunk[0] / 64);
        assert!(
            chunk.iter().all(|&b| usize::from(b / 64) == owner),
            "a chunk mixes clients"
        );
        assert_eq!(
            *owners.entry(*stream).or_insert(owner),
            owner,
            "a stream mixes clients"
        );
        bytes[owner].extend_from_slice(chunk);
    }
    assert_eq!(owners.len(), CLIENTS, "one stream per client");
    for (k, payload) in expected.iter().enumerate() {
        assert!(
            bytes[k] == *payload,
            "client {k} arrived whole and in order"
        );
    }
    for mut peer in peers {
        assert!(peer.wait(Duration::from_secs(10)), "a client failed");
    }
}

#[test]
fn clients_beyond_max_connections_are_closed_and_slots_come_back() {
    let (mut source, addr) = server(&[("max_connections", Value::from(2_u64))]);
    let mut got = Streams::default();
    let mut first = TcpStream::connect(addr).expect("connect");
    let mut second = TcpStream::connect(addr).expect("connect");
    first.write_all(b"first\n").expect("write");
    second.write_all(b"second\n").expect("write");
    let mut lines = got.lines_until(&mut source, 2, Duration::from_secs(10));
    lines.sort();
    assert_eq!(lines, ["first", "second"]);
    assert_eq!(got.started.len(), 2);

    // The third is closed by the server without being read, and starts no stream.
    let mut third = TcpStream::connect(addr).expect("the kernel accepts the connection");
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = third.write_all(b"third\n");
    let mut buf = [0; 16];
    assert!(
        matches!(third.read(&mut buf), Ok(0) | Err(_)),
        "the server closes the extra client"
    );
    assert!(
        got.lines_until(&mut source, 1, Duration::from_millis(500))
            .is_empty(),
        "nothing of the refused client arrives"
    );
    assert_eq!(got.started.len(), 2, "the refused client has no stream");

    // The first two still work.
    first.write_all(b"again\n").expect("write");
    assert_eq!(
        got.lines_until(&mut source, 1, Duration::from_secs(10)),
        ["again"]
    );

    // A freed slot takes a new client.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the freed slot never came back");
        let mut fourth = TcpStream::connect(addr).expect("connect");
        let _ = fourth.write_all(b"fourth\n");
        let lines = got.lines_until(&mut source, 1, Duration::from_millis(500));
        if lines == ["fourth"] {
            break;
        }
        assert!(lines.is_empty(), "{lines:?}");
    }
}

#[test]
fn the_removed_separator_is_a_config_error_that_names_the_preprocessor() {
    let module = connector_tcp_server::plugin_module();
    let cfg = config(&[
        ("url", Value::from("127.0.0.1:0")),
        ("separator", Value::from("\n")),
    ]);
    let err = connector::source(module, &cfg).err().expect("refused");
    assert_eq!(err.kind, temblor_shim::ErrorKind::Config, "{err}");
    assert!(err.message.contains("`separator`"), "{err}");
    assert!(err.message.contains("`separate` preprocessor"), "{err}");
}

#[test]
fn dropping_the_source_frees_the_port() {
    let (mut source, addr) = server(&[]);
    let dir = TempDir::new("drop");
    let file = dir.write("x.txt", b"hello");
    let mut peer = nc(addr, &file);
    let mut got = Streams::default();
    got.pull_until(&mut source, Duration::from_secs(10), |s| {
        !s.ended.is_empty()
    });
    let bytes: Vec<u8> = got.chunks.iter().flat_map(|(_, c)| c.clone()).collect();
    assert_eq!(bytes, b"hello");
    assert!(peer.wait(Duration::from_secs(10)));
    let begin = Instant::now();
    drop(source);
    assert!(
        begin.elapsed() < Duration::from_secs(2),
        "{:?}",
        begin.elapsed()
    );
    assert!(TcpStream::connect(addr).is_err());
    TcpListener::bind(addr).expect("the port can be bound again");
}

#[test]
fn a_port_in_use_is_an_io_error_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let cfg = config(&[("url", Value::from(addr.to_string()))]);
    let err = connector::source(connector_tcp_server::plugin_module(), &cfg)
        .err()
        .expect("in use");
    assert_eq!(err.kind, temblor_shim::ErrorKind::Io, "{err}");
    assert!(err.message.contains(&addr.to_string()), "{err}");
}

/// netcat-openbsd (`nc.openbsd` on Debian, where `nc` may be another netcat).
fn netcat() -> &'static str {
    let openbsd = Command::new("nc.openbsd")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if openbsd.is_ok() { "nc.openbsd" } else { "nc" }
}

/// A certificate authority and a server certificate it signed for `localhost` and
/// `127.0.0.1`, written to `dir`: `(ca.pem, server.pem, server.key)`.
fn tls_files(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    (
        dir.write("ca.pem", ca.pem().as_bytes()),
        dir.write("server.pem", cert.pem().as_bytes()),
        dir.write("server.key", key.serialize_pem().as_bytes()),
    )
}

fn tls_table(cert: &Path, key: &Path) -> Value {
    let mut tls = temblor_shim::Object::new();
    tls.insert("cert", Value::from(cert.display().to_string()));
    tls.insert("key", Value::from(key.display().to_string()));
    Value::Object(tls)
}

/// A TLS client (rustls, trusting `ca`) that sends `data` to `addr` and closes cleanly; its
/// local address.
fn send_over_tls(addr: SocketAddr, ca: &Path, data: &[u8]) -> String {
    use temblor_net::tokio::io::AsyncWriteExt;
    let tls = temblor_net::tls::ClientTls {
        ca: Some(ca.to_owned()),
        server_name: Some("localhost".to_owned()),
    };
    let (connector, name) = tls.connector("localhost", &[]).expect("client tls");
    let runtime = temblor_net::runtime::handle().expect("runtime");
    runtime.block_on(async {
        let tcp = temblor_net::tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect");
        let me = tcp.local_addr().expect("addr").to_string();
        let mut conn = temblor_net::tls::connect(&connector, name, tcp)
            .await
            .expect("the handshake succeeds with the CA");
        conn.write_all(data).await.expect("write");
        conn.shutdown().await.expect("close_notify");
        me
    })
}

#[test]
fn tls_clients_are_streams_with_their_peer_and_plain_clients_start_none() {
    let dir = TempDir::new("tls");
    let (ca, cert, key) = tls_files(&dir);
    let (mut source, addr) = server(&[("tls", tls_table(&cert, &key))]);
    let mut got = Streams::default();

    // A client speaking plain TCP to the TLS server: its handshake fails, it starts no stream.
    let mut plain = TcpStream::connect(addr).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    plain.write_all(b"plain text\n").expect("write");
    let mut buf = [0; 64];
    // The server answers garbage with a TLS alert or nothing, then closes.
    while matches!(plain.read(&mut buf), Ok(n) if n > 0) {}
    assert!(
        got.lines_until(&mut source, 1, Duration::from_millis(300))
            .is_empty()
    );
    assert!(got.started.is_empty(), "{got:?}");

    // Two TLS clients, one after the other: a stream each, decrypted, with their peers.
    let first = send_over_tls(addr, &ca, b"secret one\nsecret two\n");
    let second = send_over_tls(addr, &ca, b"secret three");
    got.pull_until(&mut source, Duration::from_secs(10), |s| s.ended.len() == 2);
    assert_eq!(got.ended.len(), 2, "{got:?}");
    let (a, b) = (got.started[0].0, got.started[1].0);
    assert_eq!([got.peer(a), got.peer(b)], [first, second]);
    let lines: Vec<Vec<u8>> = got.lines.iter().map(|(_, l)| l.clone()).collect();
    assert_eq!(text(&lines), ["secret one", "secret two", "secret three"]);
}

#[test]
fn a_tls_client_that_does_not_trust_the_certificate_starts_no_stream() {
    let dir = TempDir::new("tls-untrusted");
    let (_, cert, key) = tls_files(&dir);
    let other = TempDir::new("tls-untrusted-other");
    let (other_ca, _, _) = tls_files(&other);
    let (mut source, addr) = server(&[("tls", tls_table(&cert, &key))]);
    let tls = temblor_net::tls::ClientTls {
        ca: Some(other_ca),
        server_name: None,
    };
    let (connector, name) = tls.connector("127.0.0.1", &[]).expect("client tls");
    let refused = temblor_net::runtime::handle()
        .expect("runtime")
        .block_on(async {
            let tcp = temblor_net::tokio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            temblor_net::tls::connect(&connector, name, tcp).await.err()
        });
    let e = refused.expect("the client refuses a certificate of another CA");
    assert!(e.to_string().contains("certificate"), "{e}");
    let mut got = Streams::default();
    got.pull_until(&mut source, Duration::from_millis(300), |s| {
        !s.started.is_empty()
    });
    assert!(got.started.is_empty(), "{got:?}");
}
