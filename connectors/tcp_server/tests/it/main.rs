//! Drives the tcp_server connector through its ABI objects, as the engine does, with `nc`
//! (netcat-openbsd) and `socat` as the clients.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use connector_tcp_server::TcpServer;
use temblor_harness::connector;
use temblor_shim::{Frames, Setup, Value, abi::SourceBox, source_object};

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

/// Pulls until `want` frames arrived or `timeout` passed.
fn pull_until(source: &mut SourceBox, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut frames = Frames::new();
    while got.len() < want && Instant::now() < deadline {
        frames.clear();
        let pull_started = Instant::now();
        source.pull(&mut frames).into_result().expect("pull");
        assert!(pull_started.elapsed() < Duration::from_secs(1));
        got.extend(frames.iter().map(<[u8]>::to_vec));
    }
    got
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
fn harness_source_delivers_lines_sent_by_socat() {
    let module = connector_tcp_server::plugin_module();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let cfg = config(&[
        ("url", Value::from(addr.to_string())),
        ("separator", Value::from("\n")),
    ]);
    let dir = TempDir::new("harness");
    let file = dir.write("lines.txt", b"one\ntwo\nthree\n");
    let sender = thread::spawn(move || {
        wait_listening(addr);
        let mut peer = socat(addr, &file);
        assert!(peer.wait(Duration::from_secs(10)), "socat failed");
    });
    let frames = connector::source_delivers(module, &cfg, 3, Duration::from_secs(20));
    sender.join().expect("sender");
    assert_eq!(text(&frames), ["one", "two", "three"]);
    // Dropped: the port is free again.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn many_clients_at_once_deliver_whole_lines_in_order_per_client() {
    const CLIENTS: usize = 6;
    const LINES: usize = 2000;
    let (mut source, addr) = server(&[("separator", Value::from("\n"))]);
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
    let frames = pull_until(&mut source, CLIENTS * LINES, Duration::from_secs(60));
    assert_eq!(frames.len(), CLIENTS * LINES);
    let mut next = [0_usize; CLIENTS];
    for frame in text(&frames) {
        let k: usize = frame[1..frame.find('-').expect("client")]
            .parse()
            .expect("client number");
        let n = next[k];
        assert_eq!(
            frame,
            line(k, n),
            "client {k}'s line {n} arrives whole, in order"
        );
        next[k] += 1;
    }
    assert_eq!(next, [LINES; CLIENTS]);
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = vec![Vec::new(); CLIENTS];
    let mut frames = Frames::new();
    while got.iter().map(Vec::len).sum::<usize>() < CLIENTS * BYTES && Instant::now() < deadline {
        frames.clear();
        source.pull(&mut frames).into_result().expect("pull");
        for frame in frames.iter() {
            assert!(!frame.is_empty() && frame.len() <= 512, "{}", frame.len());
            let owner = usize::from(frame[0] / 64);
            assert!(
                frame.iter().all(|&b| usize::from(b / 64) == owner),
                "a frame mixes clients"
            );
            got[owner].extend_from_slice(frame);
        }
    }
    for (k, payload) in expected.iter().enumerate() {
        assert!(got[k] == *payload, "client {k} arrived whole and in order");
    }
    for mut peer in peers {
        assert!(peer.wait(Duration::from_secs(10)), "a client failed");
    }
}

#[test]
fn clients_beyond_max_connections_are_closed_and_slots_come_back() {
    let (mut source, addr) = server(&[
        ("max_connections", Value::from(2_u64)),
        ("separator", Value::from("\n")),
    ]);
    let mut first = TcpStream::connect(addr).expect("connect");
    let mut second = TcpStream::connect(addr).expect("connect");
    first.write_all(b"first\n").expect("write");
    second.write_all(b"second\n").expect("write");
    let mut got = text(&pull_until(&mut source, 2, Duration::from_secs(10)));
    got.sort();
    assert_eq!(got, ["first", "second"]);

    // The third is closed by the server without being read.
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
        pull_until(&mut source, 1, Duration::from_millis(500)).is_empty(),
        "nothing of the refused client arrives"
    );

    // The first two still work.
    first.write_all(b"again\n").expect("write");
    assert_eq!(
        text(&pull_until(&mut source, 1, Duration::from_secs(10))),
        ["again"]
    );

    // A freed slot takes a new client.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the freed slot never came back");
        let mut fourth = TcpStream::connect(addr).expect("connect");
        let _ = fourth.write_all(b"fourth\n");
        let got = text(&pull_until(&mut source, 1, Duration::from_millis(500)));
        if got == ["fourth"] {
            break;
        }
        assert!(got.is_empty(), "{got:?}");
    }
}

#[test]
fn over_long_lines_are_dropped_and_the_next_ones_arrive() {
    let (mut source, addr) = server(&[
        ("separator", Value::from("\r\n")),
        ("max_frame", Value::from(16_u64)),
    ]);
    let dir = TempDir::new("long");
    let long = "x".repeat(100_000);
    let file = dir.write(
        "long.txt",
        format!("short\r\n{long}\r\nafter\r\nthe end").as_bytes(),
    );
    let mut peer = socat(addr, &file);
    let got = text(&pull_until(&mut source, 3, Duration::from_secs(20)));
    assert_eq!(got, ["short", "after", "the end"]);
    assert!(peer.wait(Duration::from_secs(10)));
}

#[test]
fn dropping_the_source_frees_the_port() {
    let (mut source, addr) = server(&[]);
    let dir = TempDir::new("drop");
    let file = dir.write("x.txt", b"hello");
    let mut peer = nc(addr, &file);
    assert_eq!(
        pull_until(&mut source, 1, Duration::from_secs(10))
            .concat()
            .as_slice(),
        b"hello"
    );
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
