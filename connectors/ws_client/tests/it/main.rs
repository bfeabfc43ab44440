//! Drives the `ws_client` connector through its ABI objects, as the engine does, against
//! WebSocket servers made of tungstenite's blocking server on std sockets (not the code under
//! test's async path), and the compliance harness.

use std::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::Duration,
};

use temblor_harness::{
    config,
    connector::{self, Streams, push},
};
use temblor_shim::{ErrorKind, Frames, Object, Value, abi::SinkBox};
use tokio_tungstenite::tungstenite::{
    self, Message, WebSocket, protocol::frame::coding::CloseCode,
};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_ws_client::plugin_module()
}

/// A listener on a free loopback port and its `ws://` url.
fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/in", listener.local_addr().expect("addr"));
    (listener, url)
}

/// Accepts one WebSocket client (blocking).
fn accept(listener: &TcpListener) -> WebSocket<TcpStream> {
    let (tcp, _) = listener.accept().expect("accept");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    tungstenite::accept(tcp).expect("handshake")
}

/// The data messages a server reads until the client closes (or the connection breaks).
fn read_messages(ws: &mut WebSocket<TcpStream>) -> Vec<Message> {
    let mut got = Vec::new();
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => got.push(m),
            Ok(_) => {}
            Err(_) => return got,
        }
    }
}

fn sink(url: &str, more: &[(&str, Value)]) -> SinkBox {
    let mut fields = vec![("url", Value::from(url))];
    fields.extend_from_slice(more);
    connector::sink(module(), &config(&fields)).expect("sink")
}

fn binary_meta(binary: bool) -> Value {
    let mut m = Object::new();
    m.insert("binary", Value::from(binary));
    Value::Object(m)
}

#[test]
fn compliance() {
    let cfg = config(&[("url", Value::from("ws://127.0.0.1:9/"))]);
    connector::compliance(module(), "ws_client", &cfg, connector::Offers::Both);
}

#[test]
fn each_frame_is_one_message_text_when_utf8_and_asked_binary_otherwise() {
    let (listener, url) = listen();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener);
        let first = read_messages(&mut ws);
        let mut ws = accept(&listener);
        (first, read_messages(&mut ws))
    });
    let frames: Frames = [&b"text"[..], &[0xff, 0x00], b"marked binary", b""]
        .into_iter()
        .collect();
    let meta = [
        binary_meta(false),
        binary_meta(false),
        binary_meta(true),
        Value::Null,
    ];
    let mut texts = sink(&url, &[]);
    let (result, delivered) = push(&mut texts, &frames, &meta);
    result.expect("push");
    assert!(delivered.is_empty());
    texts.flush().into_result().expect("flush");
    drop(texts);
    let mut binaries = sink(&url, &[("text", Value::from(false))]);
    push(&mut binaries, &frames, &[]).0.expect("push");
    drop(binaries);
    let (first, second) = server.join().expect("server");
    assert_eq!(
        first,
        [
            Message::text("text"),
            Message::binary(vec![0xff, 0x00]),
            Message::binary(b"marked binary".to_vec()),
            Message::text(""),
        ]
    );
    assert_eq!(
        second,
        [
            Message::binary(b"text".to_vec()),
            Message::binary(vec![0xff, 0x00]),
            Message::binary(b"marked binary".to_vec()),
            Message::binary(Vec::new()),
        ]
    );
}

#[test]
fn a_server_that_closed_between_batches_loses_nothing() {
    let (listener, url) = listen();
    let lines: Vec<String> = (0..500).map(|n| format!("message {n}")).collect();
    let (closed, on_closed) = mpsc::channel();
    let server = thread::spawn(move || {
        let mut first = accept(&listener);
        let mut got = Vec::new();
        while got.len() < 500 {
            got.push(first.read().expect("message"));
        }
        first.close(None).expect("close");
        while first.read().is_ok() {}
        drop(first);
        closed.send(()).expect("signal");
        let mut second = accept(&listener);
        got.push(second.read().expect("message"));
        got
    });
    let mut sink = sink(&url, &[]);
    let frames: Frames = lines.iter().map(String::as_bytes).collect();
    push(&mut sink, &frames, &[]).0.expect("push");
    on_closed.recv().expect("the server closed");
    push(&mut sink, &[&b"after"[..]].into_iter().collect(), &[])
        .0
        .expect("push after the server closed");
    let got = server.join().expect("server");
    let mut want: Vec<Message> = lines.iter().map(|l| Message::text(l.as_str())).collect();
    want.push(Message::text("after"));
    assert_eq!(got, want);
}

#[test]
fn with_nobody_listening_the_batch_fails_after_the_retries() {
    let (listener, url) = listen();
    drop(listener);
    let mut sink = sink(
        &url,
        &[
            ("backoff_ms", Value::from(5_u64)),
            ("max_backoff_ms", Value::from(10_u64)),
            ("max_retries", Value::from(2_u64)),
        ],
    );
    let (result, delivered) = push(&mut sink, &[&b"lost"[..]].into_iter().collect(), &[]);
    let err = result.expect_err("nobody listens");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    assert!(err.message.contains("after 3 attempts"), "{err}");
    assert!(delivered.is_empty());
    push(&mut sink, &Frames::new(), &[])
        .0
        .expect("an empty batch needs no server");
}

#[test]
fn a_stalled_server_gets_the_sent_frames_listed_in_delivered() {
    let (listener, url) = listen();
    let (go, on_go) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut ws = accept(&listener);
        // Reads nothing until the client gave up: its writes stall and time out.
        on_go.recv().expect("signal");
        read_messages(&mut ws)
    });
    let mut sink = sink(
        &url,
        &[
            ("timeout_ms", Value::from(300_u64)),
            ("max_retries", Value::from(0_u64)),
            ("text", Value::from(false)),
        ],
    );
    let owned: Vec<Vec<u8>> = (0..40_u8).map(|n| vec![n; 100 * 1024]).collect();
    let frames: Frames = owned.iter().map(Vec::as_slice).collect();
    let (result, delivered) = push(&mut sink, &frames, &[]);
    let err = result.expect_err("stalled");
    assert_eq!(err.kind, ErrorKind::Io, "{err}");
    let k = delivered.len();
    assert!(k < owned.len(), "{delivered:?}");
    assert_eq!(delivered, (0..k as u32).collect::<Vec<_>>(), "a prefix");
    drop(sink);
    go.send(()).expect("signal");
    let got = server.join().expect("server");
    assert!(got.len() >= k, "{} messages, {k} delivered", got.len());
    for (n, message) in got.iter().take(k).enumerate() {
        assert_eq!(message, &Message::binary(owned[n].clone()), "message {n}");
    }
}

#[test]
fn an_idle_connection_pings_and_one_that_never_answers_is_closed() {
    let (listener, url) = listen();
    let (news, on_news) = mpsc::channel();
    let server = thread::spawn(move || {
        // This server answers: tungstenite replies to the pings while it reads.
        let mut ws = accept(&listener);
        let mut pings = 0;
        while pings < 2 {
            if let Message::Ping(_) = ws.read().expect("read") {
                pings += 1;
            }
        }
        news.send("pinged").expect("signal");
        let text = loop {
            match ws.read().expect("read") {
                Message::Text(t) => break t.as_str().to_owned(),
                Message::Ping(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        };
        drop(ws);
        news.send("dropped").expect("signal");
        // The next connection's server never reads after the handshake, so never answers.
        let mut silent = accept(&listener);
        thread::sleep(Duration::from_secs(3));
        let close = loop {
            match silent.read() {
                Ok(Message::Close(frame)) => break frame,
                Ok(_) => {}
                Err(e) => panic!("no close frame: {e}"),
            }
        };
        (text, close.map(|f| f.code))
    });
    let mut sink = sink(&url, &[("ping_interval_s", Value::from(1_u64))]);
    assert_eq!(on_news.recv_timeout(Duration::from_secs(10)), Ok("pinged"));
    // Answered pings keep it open: a batch goes on the same connection.
    push(&mut sink, &[&b"still here"[..]].into_iter().collect(), &[])
        .0
        .expect("push");
    assert_eq!(on_news.recv_timeout(Duration::from_secs(10)), Ok("dropped"));
    thread::sleep(Duration::from_millis(100));
    push(&mut sink, &[&b"again"[..]].into_iter().collect(), &[])
        .0
        .expect("reconnected");
    let (text, code) = server.join().expect("server");
    assert_eq!(text, "still here");
    assert_eq!(code, Some(CloseCode::Away), "closed for want of a pong");
}

#[test]
fn the_source_hands_over_what_the_server_sends_and_reconnects() {
    let (listener, url) = listen();
    let server = thread::spawn(move || {
        for round in 0..2 {
            let mut ws = accept(&listener);
            ws.send(Message::text(format!("hello {round}")))
                .expect("send");
            ws.send(Message::binary(vec![round, 0xfe])).expect("send");
            ws.close(None).expect("close");
            while ws.read().is_ok() {}
        }
    });
    let cfg = config(&[
        ("url", Value::from(url.as_str())),
        ("backoff_ms", Value::from(10_u64)),
    ]);
    let mut source = connector::source(module(), &cfg).expect("source");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.ended.len() == 2);
    server.join().expect("server");
    let streams: Vec<u64> = got.ended.clone();
    assert_ne!(streams[0], streams[1], "each connection is a stream");
    for (round, stream) in streams.iter().enumerate() {
        assert_eq!(
            got.frames_flagged(*stream, "binary"),
            [
                (format!("hello {round}").into_bytes(), false),
                (vec![round as u8, 0xfe], true),
            ]
        );
        let meta = &got
            .starts
            .iter()
            .find(|(s, _)| s == stream)
            .expect("start")
            .1;
        assert_eq!(meta.get("url"), Some(&Value::from(url.as_str())));
        let peer = meta.get("peer").and_then(Value::as_str).expect("peer");
        assert!(url.contains(peer), "{peer} in {url}");
    }
}
