//! Drives the tcp_server connector through its ABI objects, as the engine does, with `nc`
//! (netcat-openbsd) and `socat` as the clients. Each connection is a stream of raw chunks; the
//! tests split each stream into lines themselves, as the engine's `separate` preprocessor does
//! per stream.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use connector_tcp_server::TcpServer;
use temblor_harness::{
    TempDir, config,
    connector::{self, Streams},
    net::{Peer, free_port, wait_listening},
    process::{Spawned, netcat},
    texts,
    tls::files as tls_files,
};
use temblor_shim::{Setup, Value, abi::SourceBox, source_object};

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

/// `nc` sending a file and closing when done.
fn nc(addr: SocketAddr, file: &Path) -> Spawned {
    Spawned::spawn(
        Command::new(netcat())
            .args(["-N", &addr.ip().to_string(), &addr.port().to_string()])
            .stdin(std::fs::File::open(file).expect("open"))
            .stdout(Stdio::null()),
    )
}

/// `socat` sending a file and closing when done.
fn socat(addr: SocketAddr, file: &Path) -> Spawned {
    Spawned::spawn(Command::new("socat").args([
        "-u".to_owned(),
        format!("OPEN:{}", file.display()),
        format!("TCP:{addr}"),
    ]))
}

/// Client `k`'s line `n`: its numbers and a padding that depends on both.
fn line(k: usize, n: usize) -> String {
    let pad = char::from(b'a' + u8::try_from((k * 7 + n) % 26).expect("small"));
    format!("c{k}-n{n:05}-{}", pad.to_string().repeat(n % 97))
}

#[test]
fn compliance_source_only_and_strict_config() {
    let module = connector_tcp_server::plugin_module();
    let cfg = config(&[("url", Value::from("127.0.0.1:0"))]);
    connector::compliance(module, "tcp_server", &cfg, connector::Offers::Source);
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
    let mut client = Peer::tcp(addr);
    let me = client.local_addr().expect("addr").to_string();
    client.send(b"one\ntw");
    let mut got = Streams::default();
    got.pull_for(&mut source, Duration::from_secs(10), |s| s.lines.len() == 1);
    assert_eq!(got.starts.len(), 1);
    assert!(got.ended.is_empty(), "the client is still connected");
    client.send(b"o\nthree");
    drop(client);
    got.pull_for(&mut source, Duration::from_secs(10), |s| {
        !s.ended.is_empty()
    });
    let stream = got.starts[0].0;
    assert_ne!(stream, temblor_shim::DEFAULT_STREAM);
    assert_eq!(got.ended, [stream]);
    assert_eq!(got.peer(stream), me);
    let lines: Vec<Vec<u8>> = got.lines.iter().map(|(_, l)| l.clone()).collect();
    assert_eq!(
        texts(&lines),
        ["one", "two", "three"],
        "the last line ends with the stream"
    );
}

#[test]
fn interleaved_partial_lines_of_two_clients_stay_in_their_streams() {
    let (mut source, addr) = server(&[]);
    let mut a = Peer::tcp(addr);
    let mut b = Peer::tcp(addr);
    let a_addr = a.local_addr().expect("a's address").to_string();
    let mut got = Streams::default();
    got.pull_for(&mut source, Duration::from_secs(10), |s| {
        s.starts.len() == 2
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
            client.send(part.as_bytes());
            let chunks = got.frames.len();
            got.pull_for(&mut source, Duration::from_secs(10), |s| {
                s.frames.len() > chunks
            });
        }
    }
    drop((a, b));
    got.pull_for(&mut source, Duration::from_secs(10), |s| s.ended.len() == 2);
    // The two connections' streams may start in either order: A's is the one with its address.
    let (mut sa, mut sb) = (got.starts[0].0, got.starts[1].0);
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
        texts(&lines)
    };
    let alpha: Vec<String> = (0..20).map(|n| format!("alpha-{n}-end")).collect();
    let beta: Vec<String> = (0..20).map(|n| format!("beta-{n}-end")).collect();
    assert_eq!(of(sa), alpha);
    assert_eq!(of(sb), beta);
    assert!(
        got.frames.windows(2).filter(|w| w[0].0 != w[1].0).count() >= 40,
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
    got.pull_for(&mut source, Duration::from_secs(60), |s| {
        s.ended.len() == CLIENTS
    });
    assert_eq!(got.ended.len(), CLIENTS, "every client's stream ended");
    assert_eq!(got.lines.len(), CLIENTS * LINES);
    // Each stream is one client's lines, whole and in order.
    let mut clients = Vec::new();
    let mut peers_seen = Vec::new();
    for (stream, _) in &got.starts {
        let lines: Vec<Vec<u8>> = got
            .lines
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, l)| l.clone())
            .collect();
        let lines = texts(&lines);
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
    got.pull_for(&mut source, Duration::from_secs(60), |s| {
        s.ended.len() == CLIENTS
    });
    assert_eq!(got.ended.len(), CLIENTS);
    let mut owners: BTreeMap<u64, usize> = BTreeMap::new();
    let mut bytes = vec![Vec::new(); CLIENTS];
    for (stream, _, chunk) in &got.frames {
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
    let mut first = Peer::tcp(addr);
    let mut second = Peer::tcp(addr);
    first.send_line("first");
    second.send_line("second");
    let mut lines = got.lines_until(&mut source, 2, Duration::from_secs(10));
    lines.sort();
    assert_eq!(lines, ["first", "second"]);
    assert_eq!(got.starts.len(), 2);

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
    assert_eq!(got.starts.len(), 2, "the refused client has no stream");

    // The first two still work.
    first.send_line("again");
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
    got.pull_for(&mut source, Duration::from_secs(10), |s| {
        !s.ended.is_empty()
    });
    let bytes: Vec<u8> = got.frames.iter().flat_map(|(_, _, c)| c.clone()).collect();
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
    assert!(got.starts.is_empty(), "{got:?}");

    // Two TLS clients, one after the other: a stream each, decrypted, with their peers.
    let first = send_over_tls(addr, &ca, b"secret one\nsecret two\n");
    let second = send_over_tls(addr, &ca, b"secret three");
    got.pull_for(&mut source, Duration::from_secs(10), |s| s.ended.len() == 2);
    assert_eq!(got.ended.len(), 2, "{got:?}");
    let (a, b) = (got.starts[0].0, got.starts[1].0);
    assert_eq!([got.peer(a), got.peer(b)], [first, second]);
    // Each stream's lines (the server may hand over the two connections' data in any order).
    assert_eq!(got.lines_of(a), ["secret one", "secret two"]);
    assert_eq!(got.lines_of(b), ["secret three"]);
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
    got.pull_for(&mut source, Duration::from_millis(300), |s| {
        !s.starts.is_empty()
    });
    assert!(got.starts.is_empty(), "{got:?}");
}
