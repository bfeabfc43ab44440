//! End to end: tcp and udp connectors on tokio, with TLS checked by `openssl s_client`.
//!
//! - `tcp_server` with `tls`: `openssl s_client -CAfile ca.pem -verify_return_error` sends lines
//!   that arrive, with their `meta.peer`, in a file; a client that does not trust the
//!   certificate, and one speaking plain TCP, deliver nothing.
//! - `tcp_client` with `tls.ca`: to `openssl s_server`, and to the same engine's `tcp_server`
//!   with TLS.
//! - A TLS file that is missing or holds no certificate or key stops the engine at start-up,
//!   with a message naming the connector, the field and the file, and a non-zero exit.
//! - `udp_server` and `udp_client` still carry datagrams (one event each, with `meta.peer`).
//!
//! Every port is a free loopback one: the servers listen on port 0 and the test reads the port
//! from the log (`tcp server listening ... addr=`), or takes one that is free now.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream, UdpSocket},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use temblor_harness::process::Spawned;
use temblor_shim::Value;

use crate::support::{
    Connector, Deployment, Engine, Pipeline, config, event, free_port, lines, meta_into_event,
    server_tls, temp_dir, tls_files, wait_exit, wait_until,
};

/// `in` (tcp_server on `url` with `tls`, JSON lines) → `main` (each event gets `peer` and
/// `stream` from its meta) → `out` (a JSON file).
fn tls_server_to_file(url: &str, tls: Value, out: &Path) -> Deployment {
    Deployment::pipe(
        Connector::new("in", "tcp_server")
            .codec("json")
            .pre("separate")
            .set("url", url)
            .set("tls", tls),
        Pipeline::new("main").op(&meta_into_event(&["peer", "stream"])),
        Connector::file_write("out", out),
    )
}

/// `openssl s_client` to `addr` trusting `ca`, refusing a certificate it cannot verify, reading
/// what to send from its stdin and closing (with `close_notify`) at its end.
fn s_client(addr: SocketAddr, ca: &Path) -> Child {
    Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-CAfile"])
        .arg(ca)
        .args(["-verify_return_error", "-quiet", "-no_ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl (is it installed?)")
}

/// Waits (30 s at most) for `s_client` to exit: its status and what it said on stderr.
fn exit_and_stderr(mut s_client: Child) -> (ExitStatus, String) {
    let status = wait_exit(&mut s_client, Duration::from_secs(30)).expect("s_client exits");
    let mut said = String::new();
    s_client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    (status, said)
}

#[test]
fn tcp_server_with_tls_takes_lines_from_openssl_s_client() {
    const LINES: u64 = 200;
    let dir = temp_dir("net-tcp-tls-server");
    let (ca, cert, key) = tls_files(&dir);
    let out = dir.join("out.json");
    let deploy = tls_server_to_file("127.0.0.1:0", server_tls(&cert, &key), &out).write(&dir);
    let engine = Engine::start(&deploy);
    let addr = engine.listening("tcp server listening");

    // A client that does not trust the certificate gives up in the handshake: nothing is sent.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (other_ca, _, _) = tls_files(&other);
    let mut untrusting = s_client(addr, &other_ca);
    // It may have given up (and closed its stdin) before the line is written: a broken pipe
    // then is the refusal this part expects, and the status below says so.
    let _ = untrusting.stdin.take().unwrap().write_all(b"{\"n\":-1}\n");
    let (status, complaint) = exit_and_stderr(untrusting);
    assert!(!status.success(), "an unknown CA is refused: {complaint}");
    assert!(complaint.contains("verify"), "{complaint}");

    // A client speaking plain TCP to the TLS port: the handshake fails, the server closes.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    plain.write_all(b"{\"n\":-2}\n").unwrap();
    let mut buf = [0; 256];
    while matches!(plain.read(&mut buf), Ok(n) if n > 0) {}

    // The client that trusts the CA: every line arrives, decrypted, with its peer.
    let mut client = s_client(addr, &ca);
    let mut stdin = client.stdin.take().unwrap();
    for n in 0..LINES {
        stdin
            .write_all(format!("{{\"n\":{n},\"text\":\"line {n} over tls\"}}\n").as_bytes())
            .unwrap();
    }
    drop(stdin);
    let (status, said) = exit_and_stderr(client);
    assert!(
        status.success(),
        "s_client verified the server and sent: {said}"
    );
    engine.wait_lines(&out, LINES as usize);
    let log = engine.stop();

    let got = lines(&out);
    assert_eq!(
        got.len(),
        LINES as usize,
        "nothing else arrived: {got:?}\n{log}"
    );
    let mut peers = Vec::new();
    for (line, n) in got.iter().zip(0..) {
        let e = event(line);
        assert_eq!(e.get("n").and_then(Value::as_u64), Some(n), "{line}");
        assert_eq!(
            e.get("text").and_then(Value::as_str),
            Some(format!("line {n} over tls").as_str())
        );
        let peer = e.get("peer").and_then(Value::as_str).expect("meta.peer");
        let port: u16 = peer
            .strip_prefix("127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("peer is not 127.0.0.1:PORT: {line}"));
        assert!(port > 0 && port != addr.port(), "{line}");
        peers.push((peer.to_owned(), e.get("stream").and_then(Value::as_u64)));
    }
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "one connection: one peer, one stream"
    );
    assert!(log.contains("TLS handshake failed"), "{log}");
}

/// A `tcp_client` `id` to `url` with `tls`, sending lines, retrying its connection.
fn tls_client(id: &str, url: &str, tls: Value) -> Connector {
    Connector::new(id, "tcp_client")
        .codec("string")
        .post("separate")
        .set("url", url)
        .set("backoff_ms", 50)
        .set("max_backoff_ms", 500)
        .set("max_retries", 40)
        .set("tls", tls)
}

/// `in` (a file of lines) → `main` → `out` (tcp_client to `url` with `tls`).
fn file_to_tls_client(input: &Path, url: &str, tls: Value) -> Deployment {
    Deployment::passthrough(
        Connector::file_read("in", "string", input),
        tls_client("out", url, tls),
    )
}

/// `tls = { ca }`.
fn client_tls(ca: &Path) -> Value {
    config(&[("ca", temblor_harness::path_value(ca))])
}

#[test]
fn tcp_client_with_tls_ca_writes_to_openssl_s_server() {
    let dir = temp_dir("net-tcp-tls-client");
    let (ca, cert, key) = tls_files(&dir);
    let port = free_port();
    let received = dir.join("received.txt");
    // stdin stays open (and unread: `-quiet` ignores its end); what clients send goes to
    // stdout, one connection after the other.
    let mut server = Spawned::spawn(
        Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .arg("-quiet")
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&received).unwrap())
            .stderr(Stdio::null()),
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "nothing listens on {port}"
    );
    let input = dir.join("in.txt");
    let sent: Vec<String> = (0..500).map(|n| format!("line {n} to s_server")).collect();
    std::fs::write(
        &input,
        sent.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    // The server's certificate is for 127.0.0.1, the host of `url`.
    let deploy =
        file_to_tls_client(&input, &format!("127.0.0.1:{port}"), client_tls(&ca)).write(&dir);
    let mut engine = Engine::start(&deploy);
    // The file source ends: the engine drains, the client closes, and it exits.
    let status = engine.wait();
    assert!(status.success(), "{status}: {}", engine.log());
    wait_until(Duration::from_secs(30), || {
        lines(&received).len() >= sent.len()
    });
    assert_eq!(lines(&received), sent, "{}", engine.log());
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "s_server is still up"
    );
    let log = engine.log();
    assert!(log.contains("connected to the tcp server"), "{log}");
}

#[test]
fn tcp_client_with_tls_to_the_engine_s_own_tls_server() {
    let dir = temp_dir("net-tcp-tls-loop");
    let (ca, cert, key) = tls_files(&dir);
    let port = free_port();
    let (input, out) = (dir.join("in.txt"), dir.join("out.txt"));
    let sent: Vec<String> = (0..1000).map(|n| format!("loop {n}")).collect();
    std::fs::write(
        &input,
        sent.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    // file → tcp_client (TLS, checking the name `localhost`) → tcp_server (TLS) → file.
    let url = format!("127.0.0.1:{port}");
    let deploy = Deployment::new()
        .flow(
            Connector::file_read("in", "string", &input),
            Pipeline::new("outbound"),
            tls_client(
                "send",
                &url,
                config(&[
                    ("ca", temblor_harness::path_value(&ca)),
                    ("server_name", "localhost".into()),
                ]),
            ),
        )
        .flow(
            Connector::new("receive", "tcp_server")
                .codec("string")
                .pre("separate")
                .set("url", url.as_str())
                .set("tls", server_tls(&cert, &key)),
            Pipeline::new("inbound"),
            Connector::file_write("out", &out).codec("string"),
        )
        .write(&dir);
    let engine = Engine::start(&deploy);
    assert_eq!(engine.listening("tcp server listening").port(), port);
    engine.wait_lines(&out, sent.len());
    let log = engine.stop();
    assert_eq!(lines(&out), sent, "{log}");
}

/// Runs `deploy`, which must fail at start-up: the exit status and the log.
fn start_up_failure(deploy: &Path) -> (ExitStatus, String) {
    let mut engine = Engine::start(deploy);
    let status = engine.wait();
    (status, engine.log())
}

#[test]
fn a_bad_tls_file_stops_the_engine_at_start_up_naming_it() {
    let dir = temp_dir("net-tcp-tls-bad");
    let (ca, cert, key) = tls_files(&dir);
    let out = dir.join("out.json");
    let missing = dir.join("missing.pem");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a PEM file\n").unwrap();
    // tcp_server: a certificate that is not there, a key file with no key in it.
    for (tls, field, file) in [
        (server_tls(&missing, &key), "`tls.cert`", &missing),
        (server_tls(&cert, &junk), "`tls.key`", &junk),
        // The CA's certificate with the server's key: not a pair.
        (server_tls(&ca, &key), "`tls.key`", &key),
    ] {
        let deploy = tls_server_to_file("127.0.0.1:0", tls, &out).write(&dir);
        let (status, log) = start_up_failure(&deploy);
        assert!(!status.success(), "{status}: {log}");
        assert!(!log.contains("tcp server listening"), "{log}");
        let error = log
            .lines()
            .find(|l| l.contains("error") && l.contains(field))
            .unwrap_or_else(|| panic!("no error naming {field}: {log}"));
        for needle in ["'in'", "tcp_server", &file.display().to_string()] {
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }
    // tcp_client: a CA file that is not there, one with no certificate in it.
    let input = dir.join("in.txt");
    std::fs::write(&input, "x\n").unwrap();
    for ca in [&missing, &junk] {
        let deploy = file_to_tls_client(&input, "127.0.0.1:9", client_tls(ca)).write(&dir);
        let (status, log) = start_up_failure(&deploy);
        assert!(!status.success(), "{status}: {log}");
        let error = log
            .lines()
            .find(|l| l.contains("error") && l.contains("`tls.ca`"))
            .unwrap_or_else(|| panic!("no error naming `tls.ca`: {log}"));
        for needle in ["'out'", "tcp_client", &ca.display().to_string()] {
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }
}

#[test]
fn udp_server_and_udp_client_carry_datagrams_with_their_sender() {
    const DATAGRAMS: u64 = 50;
    let dir = temp_dir("net-udp");
    let out = dir.join("out.json");
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    relay
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // udp_server → main (each event gets its sender) → a JSON file, and → udp_client to `relay`.
    let deploy = Deployment::pipe(
        Connector::new("in", "udp_server")
            .codec("json")
            .pre("separate")
            .set("url", "127.0.0.1:0"),
        Pipeline::new("main").op(&meta_into_event(&["peer"])),
        Connector::file_write("out", &out),
    )
    .connector(
        Connector::new("relay", "udp_client")
            .codec("json")
            .set("url", relay.local_addr().unwrap().to_string()),
    )
    .connect("main", "relay")
    .write(&dir);
    let engine = Engine::start(&deploy);
    let addr = engine.listening("udp server listening");
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sender.local_addr().unwrap().to_string();
    for n in 0..DATAGRAMS {
        // Two events in each datagram: `separate` cuts it, nothing carries over.
        sender
            .send_to(
                format!("{{\"n\":{n},\"half\":0}}\n{{\"n\":{n},\"half\":1}}").as_bytes(),
                addr,
            )
            .unwrap();
    }
    let want = 2 * DATAGRAMS as usize;
    engine.wait_lines(&out, want);
    let mut relayed = Vec::new();
    let mut buf = [0; 2048];
    while relayed.len() < want {
        let (n, from) = relay
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{} of {want} datagrams relayed: {e}", relayed.len()));
        assert!(from.ip().is_loopback());
        relayed.push(event(std::str::from_utf8(&buf[..n]).unwrap()));
    }
    let log = engine.stop();
    let got: Vec<Value> = lines(&out).iter().map(|l| event(l)).collect();
    assert_eq!(got.len(), want, "{log}");
    for (i, e) in got.iter().enumerate() {
        let i = i as u64;
        assert_eq!(e.get("n").and_then(Value::as_u64), Some(i / 2), "{e}");
        assert_eq!(e.get("half").and_then(Value::as_u64), Some(i % 2), "{e}");
        assert_eq!(e.get("peer").and_then(Value::as_str), Some(me.as_str()));
    }
    // One datagram per event out of udp_client, each with its sender.
    assert_eq!(relayed, got);
}
