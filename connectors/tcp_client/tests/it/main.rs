//! Drives the tcp_client connector through its ABI objects, as the engine does, against `socat`
//! and a Python line server that comes and goes.

use std::{
    io::{BufReader, Lines},
    net::SocketAddr,
    process::{ChildStdout, Command},
    thread,
    time::Duration,
};

use temblor_harness::{
    TempDir, config, connector,
    net::{free_port, wait_listening},
    process::{Spawned, wait_until},
    tls::files as tls_files,
};
use temblor_shim::{ErrorKind, Frames, PluginError, Value, abi::SinkBox};

/// A Python server on 127.0.0.1 (`port` 0: a free one): prints its port once it listens, then
/// takes one connection and prints every line it receives, until the line `stop`, when it
/// closes the connection and exits (or after 20 s of silence).
struct LineServer {
    peer: Spawned,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl LineServer {
    fn start(port: u16) -> Self {
        let script = "import socket, sys\n\
            s = socket.socket()\n\
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
            s.bind(('127.0.0.1', int(sys.argv[1])))\n\
            s.listen(8)\n\
            s.settimeout(20)\n\
            print(s.getsockname()[1], flush=True)\n\
            c, _ = s.accept()\n\
            c.settimeout(20)\n\
            for line in c.makefile('rb'):\n    \
                print(line.decode().rstrip('\\n'), flush=True)\n    \
                if line == b'stop\\n':\n        break\n\
            c.close()\n\
            s.close()\n";
        let (peer, port, lines) =
            Spawned::reporting(Command::new("python3").args(["-c", script, &port.to_string()]));
        Self { peer, lines, port }
    }

    /// The next `n` lines received.
    fn take(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map_while(|_| self.lines.next())
            .map(|line| line.expect("read"))
            .collect()
    }
}

fn sink(cfg: &Value) -> Result<SinkBox, PluginError> {
    connector::sink(connector_tcp_client::plugin_module(), cfg)
}

fn batch(frames: &[&str]) -> Frames {
    frames.iter().map(|f| f.as_bytes()).collect()
}

#[test]
fn compliance_sink_only_and_strict_config() {
    let module = connector_tcp_client::plugin_module();
    let cfg = config(&[("url", Value::from(format!("127.0.0.1:{}", free_port())))]);
    connector::compliance(module, "tcp_client", &cfg, connector::Offers::Sink);
}

#[test]
fn harness_sink_accepts_and_socat_receives_everything() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let dir = TempDir::new("socat");
    let out = dir.join("socat.txt");
    let _socat = Spawned::spawn(Command::new("socat").args([
        "-u".to_owned(),
        format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
        format!("OPEN:{},creat,append", out.display()),
    ]));
    wait_listening(addr);
    let lines: Vec<String> = (0..500).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let frames: Vec<&[u8]> = lines.iter().map(String::as_bytes).collect();
    connector::sink_accepts(
        connector_tcp_client::plugin_module(),
        &config(&[("url", Value::from(addr.to_string()))]),
        &frames,
    );
    let expected = lines.concat();
    let mut got = String::new();
    wait_until(Duration::from_secs(10), || {
        got = std::fs::read_to_string(&out).unwrap_or_default();
        got == expected
    });
    assert!(
        got == expected,
        "socat got {} of {} bytes",
        got.len(),
        expected.len()
    );
}

#[test]
fn reconnects_when_the_server_comes_back_and_delivers_later_frames() {
    let mut first = LineServer::start(0);
    let port = first.port;
    let mut sink = sink(&config(&[
        ("url", Value::from(format!("127.0.0.1:{port}"))),
        ("backoff_ms", Value::from(20_u64)),
        ("max_backoff_ms", Value::from(200_u64)),
        ("max_retries", Value::from(50_u64)),
    ]))
    .expect("sink");
    sink.push(&batch(&["a\n", "b\n"]))
        .into_result()
        .expect("push");
    assert_eq!(first.take(2), ["a", "b"]);
    sink.push(&batch(&["stop\n"])).into_result().expect("push");
    assert_eq!(first.take(1), ["stop"]);
    assert!(first.peer.wait(Duration::from_secs(10)), "server 1 closed");

    // Between batches: the closed connection is noticed, the new server gets everything.
    let mut second = LineServer::start(port);
    sink.push(&batch(&["c\n", "d\n"]))
        .into_result()
        .expect("push after the restart");
    sink.flush().into_result().expect("flush");
    assert_eq!(second.take(2), ["c", "d"]);
    sink.push(&batch(&["stop\n"])).into_result().expect("push");
    assert_eq!(second.take(1), ["stop"]);
    assert!(second.peer.wait(Duration::from_secs(10)), "server 2 closed");

    // During a batch: nobody listens when it starts; it backs off until the server is back.
    let pusher = thread::spawn(move || {
        let result = sink.push(&batch(&["e\n", "f\n"])).into_result();
        (sink, result)
    });
    thread::sleep(Duration::from_millis(300));
    let mut third = LineServer::start(port);
    let (_sink, result) = pusher.join().expect("pusher");
    assert_eq!(result, Ok(()));
    assert_eq!(third.take(2), ["e", "f"]);
}

#[test]
fn a_server_that_never_comes_is_an_io_error_not_a_panic() {
    let port = free_port();
    let mut sink = sink(&config(&[
        ("url", Value::from(format!("127.0.0.1:{port}"))),
        ("backoff_ms", Value::from(10_u64)),
        ("max_retries", Value::from(2_u64)),
    ]))
    .expect("a server that is not up yet is no error");
    for _ in 0..2 {
        let err = sink
            .push(&batch(&["x\n"]))
            .into_result()
            .expect_err("nobody listens");
        assert_eq!(err.kind, ErrorKind::Io, "{err}");
        assert!(err.message.contains("after 3 attempts"), "{err}");
    }
}

/// A TLS server (rustls) on a free loopback port that reads each connection to its end and
/// sends what it read on `received`.
struct TlsServer {
    port: u16,
    received: std::sync::mpsc::Receiver<Vec<u8>>,
    _task: temblor_net::Service,
}

impl TlsServer {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> Self {
        use temblor_net::tokio::{self, io::AsyncReadExt};
        let tls = temblor_net::tls::ServerTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
        };
        let acceptor = tls.acceptor(&[]).expect("server tls");
        let handle = temblor_net::runtime::handle().expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let listener = {
            let _rt = handle.enter();
            tokio::net::TcpListener::from_std(listener).expect("listener")
        };
        let (tx, received) = std::sync::mpsc::channel();
        let mut service = temblor_net::Service::new(handle, Duration::from_secs(1));
        let mut stop = service.signal();
        service.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = stop.stopped() => return,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    if let Ok(mut conn) = temblor_net::tls::handshake(&acceptor, tcp).await {
                        let _ = conn.read_to_end(&mut data).await;
                    }
                    let _ = tx.send(data);
                });
            }
        });
        Self {
            port,
            received,
            _task: service,
        }
    }

    /// What the next connection sent, up to its end.
    fn next(&self) -> Vec<u8> {
        self.received
            .recv_timeout(Duration::from_secs(20))
            .expect("a connection ended")
    }
}

fn tls_config(port: u16, ca: &std::path::Path, server_name: Option<&str>) -> Value {
    let mut tls = temblor_shim::Object::new();
    tls.insert("ca", Value::from(ca.display().to_string()));
    if let Some(name) = server_name {
        tls.insert("server_name", Value::from(name));
    }
    config(&[
        ("url", Value::from(format!("127.0.0.1:{port}"))),
        ("tls", Value::Object(tls)),
        ("backoff_ms", Value::from(10_u64)),
        ("max_retries", Value::from(1_u64)),
    ])
}

#[test]
fn tls_to_a_server_the_ca_vouches_for_delivers_everything() {
    let dir = TempDir::new("tls");
    let (ca, cert, key) = tls_files(&dir);
    let server = TlsServer::start(&cert, &key);
    let mut sink = sink(&tls_config(server.port, &ca, None)).expect("sink");
    let lines: Vec<String> = (0..2000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    for chunk in lines.chunks(100) {
        let frames: Vec<&str> = chunk.iter().map(String::as_str).collect();
        sink.push(&batch(&frames)).into_result().expect("push");
    }
    sink.flush().into_result().expect("flush");
    // Dropping the sink closes the connection cleanly: the server reads to its end.
    drop(sink);
    assert!(
        server.next() == lines.concat().into_bytes(),
        "every byte, in order"
    );
}

#[test]
fn tls_with_a_name_the_certificate_is_for_works_and_another_name_fails() {
    let dir = TempDir::new("tls-name");
    let (ca, cert, key) = tls_files(&dir);
    let server = TlsServer::start(&cert, &key);
    let mut named = sink(&tls_config(server.port, &ca, Some("localhost"))).expect("sink");
    named
        .push(&batch(&["by name\n"]))
        .into_result()
        .expect("push");
    drop(named);
    assert_eq!(server.next(), b"by name\n");

    let mut sink = sink(&tls_config(server.port, &ca, Some("elsewhere.example"))).expect("sink");
    let err = sink
        .push(&batch(&["never\n"]))
        .into_result()
        .expect_err("the certificate is not for that name");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("after 2 attempts"), "{err}");
    assert!(err.message.contains("certificate"), "{err}");
}

#[test]
fn tls_to_a_server_of_another_ca_is_an_io_error_naming_the_certificate() {
    let dir = TempDir::new("tls-other-ca");
    let (_, cert, key) = tls_files(&dir);
    let other = TempDir::new("tls-other-ca-2");
    let (other_ca, _, _) = tls_files(&other);
    let server = TlsServer::start(&cert, &key);
    let mut sink = sink(&tls_config(server.port, &other_ca, None)).expect("not checked yet");
    let err = sink
        .push(&batch(&["secret\n"]))
        .into_result()
        .expect_err("untrusted");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("certificate"), "{err}");
    // Nothing was sent in the clear: every connection the server saw ended empty.
    drop(sink);
    while let Ok(data) = server.received.recv_timeout(Duration::from_millis(500)) {
        assert!(data.is_empty(), "{data:?}");
    }
}
