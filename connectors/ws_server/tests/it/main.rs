//! Drives the `ws_server` connector through its ABI objects, as the engine does, with real
//! WebSocket clients (tungstenite's blocking client on std sockets, not the code under test's
//! async path) and the compliance harness.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use connector_ws_server::{WsServer, WsServerSink};
use temblor_harness::{
    config,
    connector::{self, Streams, Wakes},
};
use temblor_shim::{
    Object, Pull, RVec, Setup, SourceBatch, Value,
    abi::{SinkBox, SourceBox},
    abi_stable::std_types::RSlice,
    sink_object, source_object,
};
use tokio_tungstenite::tungstenite::{
    self, Message, WebSocket, protocol::frame::coding::CloseCode,
};

fn module() -> temblor_shim::abi::PluginModRef {
    connector_ws_server::plugin_module()
}

/// A server on a free loopback port, as the engine's object, and its address.
fn server(id: &str, fields: &[(&str, Value)]) -> (SourceBox, SocketAddr) {
    let mut fields = fields.to_vec();
    fields.push(("url", Value::from("127.0.0.1:0")));
    let cfg = config(&fields);
    let server = WsServer::new(&Setup { id, config: &cfg }).expect("server");
    let addr = server.local_addr();
    (source_object(server), addr)
}

/// A blocking client on `path`.
fn client(addr: SocketAddr, path: &str) -> (WebSocket<TcpStream>, String) {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let me = tcp.local_addr().expect("addr").to_string();
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), tcp).expect("handshake");
    assert_eq!(response.status(), 101);
    (ws, me)
}

#[test]
fn compliance() {
    connector::compliance(
        module(),
        "ws_server",
        &config(&[("url", Value::from("127.0.0.1:0"))]),
        connector::Offers::Source,
    );
    connector::compliance(
        module(),
        "ws_server",
        &config(&[("server", Value::from("x"))]),
        connector::Offers::Sink,
    );
}

#[test]
fn text_and_binary_messages_of_two_clients_are_frames_of_their_streams() {
    let (mut source, addr) = server("two", &[]);
    let (mut a, a_peer) = client(addr, "/alpha?x=1");
    let (mut b, b_peer) = client(addr, "/beta");
    for n in 0..5 {
        a.send(Message::text(format!("a-text-{n}"))).expect("send");
        b.send(Message::binary(vec![n, 0xff])).expect("send");
        a.send(Message::binary(format!("a-bin-{n}").into_bytes()))
            .expect("send");
    }
    b.send(Message::text("")).expect("an empty message");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.frame_count() == 16);
    let (sa, sb) = (got.stream_of(&a_peer), got.stream_of(&b_peer));
    assert_ne!(sa, sb);
    assert_eq!(got.meta(sa).get("path"), Some(&Value::from("/alpha?x=1")));
    assert_eq!(got.meta(sb).get("path"), Some(&Value::from("/beta")));
    let want_a: Vec<(Vec<u8>, bool)> = (0..5)
        .flat_map(|n| {
            [
                (format!("a-text-{n}").into_bytes(), false),
                (format!("a-bin-{n}").into_bytes(), true),
            ]
        })
        .collect();
    assert_eq!(
        got.frames_flagged(sa, "binary"),
        want_a,
        "a's messages in order, each with its kind"
    );
    let mut want_b: Vec<(Vec<u8>, bool)> = (0..5).map(|n| (vec![n, 0xff], true)).collect();
    want_b.push((Vec::new(), false));
    assert_eq!(got.frames_flagged(sb, "binary"), want_b);
    a.close(None).expect("close");
    drop(b);
    got.pull_until(&mut source, |s| s.ended.len() == 2);
    // The client's close got its reply: reading now ends the connection cleanly.
    loop {
        match a.read() {
            Ok(Message::Close(_)) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("no clean close: {e}"),
        }
    }
}

#[test]
fn a_ping_gets_its_pong() {
    let (mut source, addr) = server("ping", &[]);
    let (mut ws, _) = client(addr, "/");
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .expect("ping");
    // The source is not even pulled: the pong comes from the connection's task.
    match ws.read().expect("an answer") {
        Message::Pong(payload) => assert_eq!(payload.as_ref(), b"are you there"),
        other => panic!("not a pong: {other:?}"),
    }
    ws.send(Message::text("after")).expect("send");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.frame_count() == 1);
    assert_eq!(got.frames[0].2, b"after");
}

#[test]
fn a_message_over_max_message_closes_its_connection_with_1009() {
    let (mut source, addr) = server("big", &[("max_message", Value::from(16_u64))]);
    let (mut ws, _) = client(addr, "/");
    ws.send(Message::binary(vec![1; 16])).expect("at the limit");
    ws.send(Message::binary(vec![2; 17])).expect("over it");
    let close = close_frame(&mut ws);
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Size));
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| !s.ended.is_empty());
    let frames: Vec<&Vec<u8>> = got.frames.iter().map(|(_, _, f)| f).collect();
    assert_eq!(frames, [&vec![1; 16]], "the message at the limit is kept");
}

#[test]
fn a_client_over_max_connections_gets_503_and_other_requests_400() {
    let (mut source, addr) = server("limit", &[("max_connections", Value::from(1_u64))]);
    let (mut first, _) = client(addr, "/");
    first.send(Message::text("in")).expect("send");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.frame_count() == 1);
    let refused = tungstenite::client(
        format!("ws://{addr}/"),
        TcpStream::connect(addr).expect("connect"),
    );
    match refused {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("not refused with 503: {:?}", other.map(|_| ())),
    }
    drop(first);
    got.pull_until(&mut source, |s| s.ended.len() == 1);
    // A plain HTTP request is no WebSocket handshake.
    let mut plain = TcpStream::connect(addr).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
}

/// The close frame the server sends next.
fn close_frame(ws: &mut WebSocket<TcpStream>) -> Option<tungstenite::protocol::CloseFrame> {
    match ws.read() {
        Ok(Message::Close(frame)) => frame,
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => panic!("no close frame: {e}"),
    }
}

#[test]
fn with_a_notify_pull_never_waits_and_messages_wake_the_engine() {
    let (mut source, addr) = server("notify", &[]);
    let wakes = Wakes::install(&mut source).expect("takes a notify");
    let mut batch = SourceBatch::new();
    assert_eq!(
        source.pull_batch(&mut batch).into_result().expect("pull"),
        Pull::Idle
    );
    assert!(batch.is_empty());
    let (mut ws, _) = client(addr, "/");
    ws.send(Message::text("wake")).expect("send");
    // Woken for the stream's start and for the message.
    wakes.wait_for(2);
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.frame_count() == 1);
    assert_eq!(got.frames[0].2, b"wake");
}

#[test]
fn the_sink_replies_to_the_client_an_event_came_from() {
    // The sink finds the source by its id (the harness builds objects as "compliance").
    let id = "reply-src";
    let (mut source, addr) = server(id, &[]);
    let cfg = config(&[("server", Value::from(id))]);
    let mut sink: SinkBox = sink_object(
        WsServerSink::new(&Setup {
            id: "reply",
            config: &cfg,
        })
        .expect("sink"),
    );
    let (mut a, a_peer) = client(addr, "/");
    let (mut b, b_peer) = client(addr, "/");
    a.send(Message::text("from a")).expect("send");
    b.send(Message::binary(b"from b".to_vec())).expect("send");
    let mut got = Streams::default();
    got.pull_until(&mut source, |s| s.frame_count() == 2);
    let meta = |stream: u64, binary: bool| {
        let mut m = Object::new();
        m.insert("connector", Value::from(id));
        m.insert("stream", Value::from(stream));
        m.insert("binary", Value::from(binary));
        Value::Object(m)
    };
    let frames: temblor_shim::Frames = [&b"to b"[..], b"to a"].into_iter().collect();
    let metas = [
        meta(got.stream_of(&b_peer), true),
        meta(got.stream_of(&a_peer), false),
    ];
    sink.push_batch(&frames, RSlice::from_slice(&metas), &mut RVec::new())
        .into_result()
        .expect("push");
    sink.flush().into_result().expect("flush");
    assert_eq!(a.read().expect("reply"), Message::text("to a"));
    assert_eq!(b.read().expect("reply"), Message::binary(b"to b".to_vec()));
}

#[test]
fn dropping_the_source_closes_the_clients_and_frees_the_port() {
    let (source, addr) = server("drop", &[]);
    let (mut ws, _) = client(addr, "/");
    drop(source);
    let close = close_frame(&mut ws);
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    assert!(TcpStream::connect(addr).is_err(), "nobody listens any more");
    TcpListener::bind(addr).expect("the port is free again");
}
