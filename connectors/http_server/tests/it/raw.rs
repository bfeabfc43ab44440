//! The server driven with raw bytes over std sockets and its `Source` methods called directly:
//! what exactly goes over the wire, pipelining, HTTP/1.0, errors, acks, tokens, the wake-up.

use std::{
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use connector_http_server::{HttpServer, MAX_HEAD};
use temblor_shim::{Notify, Object, Pull, Source, SourceBatch, Value, Wake};

use super::on_free_port as server;

/// Sends raw bytes on a new connection, pulling meanwhile; returns the whole answer (the
/// server closes) and the frames pulled.
fn exchange(server: &mut HttpServer, request: &[u8]) -> (String, Vec<Vec<u8>>) {
    let mut client = TcpStream::connect(server.local_addr()).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    client.write_all(request).expect("write");
    let mut answer = Vec::new();
    let mut frames = SourceBatch::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "the server did not close: {answer:?}"
        );
        server.pull(&mut frames).expect("pull");
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    (
        String::from_utf8(answer).expect("utf-8"),
        frames.iter().map(<[u8]>::to_vec).collect(),
    )
}

/// The status of every response in `answer`.
fn statuses(answer: &str) -> Vec<&str> {
    answer
        .match_indices("HTTP/1.")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect()
}

#[test]
fn pipelined_requests_on_one_connection_are_frames_in_order() {
    let mut server = server(&[]);
    let (answer, frames) = exchange(
        &mut server,
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst\
          PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nsec\r\n3\r\nond\r\n0\r\nTrailer: x\r\n\r\n\
          POST / HTTP/1.1\r\n\r\n\
          POST /c HTTP/1.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast",
    );
    assert_eq!(statuses(&answer), ["202", "202", "202", "202"], "{answer}");
    assert_eq!(
        frames,
        [
            b"first".to_vec(),
            b"second".to_vec(),
            vec![],
            b"last".to_vec()
        ]
    );
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let mut server = server(&[]);
    let (answer, frames) = exchange(
        &mut server,
        b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na\
          POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nb\
          POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nc",
    );
    assert_eq!(statuses(&answer), ["202", "202"], "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("connection: keep-alive"),
        "{answer}"
    );
    assert_eq!(frames, [b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn bad_requests_are_answered_close_the_connection_and_forward_nothing() {
    let mut server = server(&[("max_body", Value::from(8_u64))]);
    let mut long = b"POST / HTTP/1.1\r\nX: ".to_vec();
    long.extend(std::iter::repeat_n(b'x', MAX_HEAD + 10));
    long.extend(b"\r\n\r\n");
    let mut many = b"POST / HTTP/1.1\r\n".to_vec();
    for i in 0..70 {
        many.extend(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    for (request, status) in [
        (&b"GET / HTTP/1.1\r\n\r\n"[..], "405"),
        (b"DELETE / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", "405"),
        (b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789", "413"),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n",
            "413",
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "400",
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "400"),
        (b"POST / HTTP/1.1\r\nExpect: magic\r\n\r\n", "417"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"),
        (b"POST / HTTP/1.1\r\nX: caf\xe9\r\n\r\n", "400"),
        (b"NOT HTTP\r\n\r\n", "400"),
        (&long, "431"),
        (&many, "431"),
    ] {
        let (answer, frames) = exchange(&mut server, request);
        assert_eq!(
            statuses(&answer),
            [status],
            "{}: {answer}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
        assert!(frames.is_empty());
    }
    let (answer, frames) = exchange(
        &mut server,
        b"POST / HTTP/1.1\r\nContent-Length: 8\r\nConnection: close\r\n\r\n12345678",
    );
    assert_eq!(
        statuses(&answer),
        ["202"],
        "a body of exactly max_body fits"
    );
    assert_eq!(frames, [b"12345678".to_vec()]);
}

#[test]
fn a_405_says_what_is_allowed_and_a_head_gets_no_body() {
    let mut server = server(&[]);
    let (answer, _) = exchange(&mut server, b"GET /x HTTP/1.1\r\n\r\n");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("allow: post, put\r\n"), "{answer}");
    assert!(lower.contains("connection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("method GET not allowed: use POST or PUT\n"),
        "{answer}"
    );
    let (answer, _) = exchange(&mut server, b"HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(statuses(&answer), ["405"], "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer}");
}

#[test]
fn expect_continue_is_answered_only_when_the_body_fits() {
    let mut server = server(&[("max_body", Value::from(8_u64))]);
    let (answer, frames) = exchange(
        &mut server,
        b"POST / HTTP/1.1\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(statuses(&answer), ["413"], "{answer}");
    assert!(frames.is_empty());
    let (answer, frames) = exchange(
        &mut server,
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nok",
    );
    assert!(
        answer.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202"),
        "{answer}"
    );
    assert_eq!(frames, [b"ok".to_vec()]);
}

#[test]
fn dropping_the_source_answers_waiting_requests_503_and_frees_the_port() {
    let server = server(&[]);
    let addr = server.local_addr();
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        .expect("write");
    // An idle keep-alive connection too: it is closed.
    let mut idle = TcpStream::connect(addr).expect("connect");
    // Never pulled: the body waits in the queue.
    thread::sleep(Duration::from_millis(200));
    drop(server);
    let answer = read_answer(&mut client);
    assert_eq!(statuses(&answer), ["503"], "{answer}");
    assert!(answer.contains("shutting down"), "{answer}");
    assert_eq!(read_answer(&mut idle), "", "closed without a word");
    assert!(TcpStream::connect(addr).is_err());
    TcpListener::bind(addr).expect("the port is free again");
}

/// A server answering once the engine says so.
fn delivering(timeout_ms: u64) -> HttpServer {
    server(&[
        ("response", Value::from("delivered")),
        ("timeout_ms", Value::from(timeout_ms)),
    ])
}

/// Sends `request` on a new connection (it should say `Connection: close`).
fn post(server: &HttpServer, request: &[u8]) -> TcpStream {
    let mut client = TcpStream::connect(server.local_addr()).expect("connect");
    client.write_all(request).expect("write");
    client
}

fn close(body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Pulls under `token` until the batch holds `n` frames.
fn pull_until(server: &mut HttpServer, token: u64, n: usize) -> SourceBatch {
    let mut out = SourceBatch::new();
    out.reset(token);
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.frames().len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} frames",
            out.frames().len()
        );
        server.pull(&mut out).expect("pull");
    }
    out
}

/// A server answering once delivered, with a request of `body` pulled under `token` and not
/// answered while it waits for its outcome; and the request's connection.
fn waiting_for_its_outcome(body: &str, token: u64) -> (HttpServer, TcpStream) {
    let mut server = delivering(10_000);
    let mut client = post(&server, &close(body));
    pull_until(&mut server, token, 1);
    assert!(unanswered(&mut client));
    (server, client)
}

/// The whole answer (the server closes after it).
fn read_answer(client: &mut TcpStream) -> String {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    client.read_to_string(&mut answer).expect("read");
    answer
}

/// Whether no byte of an answer comes within 200 ms.
fn unanswered(client: &mut TcpStream) -> bool {
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    matches!(
        client.read(&mut [0; 64]),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
    )
}

#[test]
fn delivered_answers_200_only_after_the_ack() {
    let mut server = delivering(10_000);
    assert!(server.wants_acks());
    let mut client = post(&server, &close("hi"));
    let out = pull_until(&mut server, 7, 1);
    assert_eq!(out.frames().get(0), Some(&b"hi"[..]));
    assert!(unanswered(&mut client), "answered before the ack");
    // Another token's outcome is not this request's.
    server.ack(8).expect("ack");
    server.fail(9, "not mine").expect("fail");
    assert!(unanswered(&mut client), "answered by another token");
    server.ack(7).expect("ack");
    let answer = read_answer(&mut client);
    assert_eq!(statuses(&answer), ["200"], "{answer}");
    // Acked twice: nothing left to answer, nothing happens.
    server.ack(7).expect("ack again");
}

#[test]
fn delivered_answers_503_with_the_reason_after_a_fail() {
    let (mut server, mut client) = waiting_for_its_outcome("{\"a\":1}", 3);
    server
        .fail(3, "'out': writing failed after 0 retries")
        .expect("fail");
    let answer = read_answer(&mut client);
    assert_eq!(statuses(&answer), ["503"], "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("not delivered: 'out': writing failed after 0 retries\n"),
        "{answer}"
    );
}

#[test]
fn requests_of_one_batch_share_its_token() {
    let mut server = delivering(10_000);
    let mut first = post(&server, &close("one"));
    let mut second = post(&server, &close("two"));
    // Both queued before the pull takes them.
    thread::sleep(Duration::from_millis(300));
    let out = pull_until(&mut server, 11, 2);
    assert_eq!(out.runs().len(), 2, "two streams");
    assert!(unanswered(&mut first) && unanswered(&mut second));
    server.ack(11).expect("ack");
    for client in [&mut first, &mut second] {
        let answer = read_answer(client);
        assert_eq!(statuses(&answer), ["200"], "{answer}");
    }
}

#[test]
fn delivered_answers_503_when_no_outcome_comes_in_time() {
    let mut server = delivering(300);
    // Taken by the engine, never acked: it may still be delivered.
    let begin = Instant::now();
    let mut client = post(&server, &close("late"));
    pull_until(&mut server, 5, 1);
    let answer = read_answer(&mut client);
    assert!(begin.elapsed() >= Duration::from_millis(300), "{answer}");
    assert_eq!(statuses(&answer), ["503"], "{answer}");
    assert!(answer.contains("may still deliver it"), "{answer}");
    // The ack coming too late does no harm.
    server.ack(5).expect("ack");

    // Never taken (nothing pulls): not forwarded afterwards either.
    let mut client = post(&server, &close("never"));
    let answer = read_answer(&mut client);
    assert_eq!(statuses(&answer), ["503"], "{answer}");
    assert!(answer.contains("it was not forwarded"), "{answer}");
    let mut out = SourceBatch::new();
    out.reset(6);
    assert_eq!(server.pull(&mut out).expect("pull"), Pull::Idle);
    assert!(out.is_empty(), "a request answered 503 is not handed over");
}

#[test]
fn accepted_answers_202_when_handed_over_and_asks_no_acks() {
    let mut server = server(&[]);
    assert!(!server.wants_acks());
    let mut client = post(&server, &close("now"));
    assert!(unanswered(&mut client), "answered before the pull");
    pull_until(&mut server, 0, 1);
    let answer = read_answer(&mut client);
    assert_eq!(statuses(&answer), ["202"], "{answer}");
}

#[test]
fn delivered_without_acknowledgements_answers_202() {
    let mut server = delivering(10_000);
    let mut client = post(&server, &close("x"));
    // Token 0: the engine tracks nothing, no ack will come.
    pull_until(&mut server, 0, 1);
    let answer = read_answer(&mut client);
    assert_eq!(statuses(&answer), ["202"], "{answer}");
}

#[test]
fn each_request_is_a_stream_with_its_meta_and_lower_case_headers() {
    let mut server = server(&[]);
    let mut client = post(
        &server,
        b"PUT /in/x?y=1&z HTTP/1.1\r\nHost: here\r\nX-Key:  a \r\nX-KEY: b\r\n\
          Content-Length: 5\r\nConnection: close\r\n\r\n1\n2\n3",
    );
    let peer = client.local_addr().expect("addr").to_string();
    let out = pull_until(&mut server, 0, 1);
    assert_eq!(statuses(&read_answer(&mut client)), ["202"]);
    let runs: Vec<_> = out.all_runs().collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (range, run) = &runs[0];
    assert_eq!(range.clone(), 0..1);
    assert!(run.starts() && run.ends(), "{run:?}");
    assert!(run.stream != temblor_shim::DEFAULT_STREAM);
    assert_eq!(
        out.frames().get(0),
        Some(&b"1\n2\n3"[..]),
        "the body, whole"
    );
    let headers: Object = [
        ("host", Value::from("here")),
        ("x-key", Value::from("a, b")),
        ("content-length", Value::from("5")),
        ("connection", Value::from("close")),
    ]
    .into_iter()
    .collect();
    let expected: Object = [
        ("peer", Value::from(peer)),
        ("method", Value::from("PUT")),
        ("path", Value::from("/in/x?y=1&z")),
        ("headers", Value::Object(headers)),
    ]
    .into_iter()
    .collect();
    assert_eq!(run.meta, Value::Object(expected));

    // The next request is a stream of its own, with a new id.
    let mut client = post(&server, &close(""));
    let next = pull_until(&mut server, 0, 1);
    assert_eq!(statuses(&read_answer(&mut client)), ["202"]);
    let next_run = &next.runs()[0];
    assert!(next_run.starts() && next_run.ends());
    assert_ne!(next_run.stream, run.stream);
    assert_eq!(
        next.frames().get(0),
        Some(&b""[..]),
        "an empty body is a chunk too"
    );
    assert_eq!(next_run.meta.get("method"), Some(&Value::from("POST")));
}

#[test]
fn dropping_the_source_answers_requests_waiting_for_their_outcome_503() {
    let (server, mut client) = waiting_for_its_outcome("pending", 4);
    drop(server);
    let answer = read_answer(&mut client);
    assert_eq!(statuses(&answer), ["503"], "{answer}");
    assert!(answer.contains("shutting down"), "{answer}");
}

struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn with_a_wake_up_handle_a_request_wakes_the_engine_and_one_pull_takes_it() {
    let mut server = server(&[]);
    let wakes = Arc::new(Count(AtomicUsize::new(0)));
    assert!(server.set_notify(Notify::new(Arc::clone(&wakes))));
    let mut out = SourceBatch::new();
    assert_eq!(server.pull(&mut out).expect("pull"), Pull::Idle);
    assert!(out.is_empty());
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        0,
        "nothing came: no wake-up"
    );
    let mut client = post(&server, &close("woken"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while wakes.0.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the engine was never woken");
        thread::sleep(Duration::from_millis(5));
    }
    // Woken: the first pull finds the request.
    assert_eq!(server.pull(&mut out).expect("pull"), Pull::Ready);
    assert_eq!(out.frames().get(0), Some(&b"woken"[..]));
    assert_eq!(statuses(&read_answer(&mut client)), ["202"]);
    out.reset(0);
    assert_eq!(server.pull(&mut out).expect("pull"), Pull::Idle);
}

/// Threads of this process (from /proc).
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads:")
}

#[test]
fn two_thousand_keep_alive_connections_are_served_without_a_thread_each() {
    const N: usize = 2000;
    let mut server = server(&[("max_connections", Value::from(20_000_u64))]);
    let addr = server.local_addr();
    let before = threads();
    let mut clients: Vec<TcpStream> = (0..N)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let mut out = SourceBatch::new();
    for round in 0..2 {
        for (i, c) in clients.iter_mut().enumerate() {
            let body = format!("{round}-{i}");
            let request = format!(
                "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            c.write_all(request.as_bytes()).expect("write");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while out.frames().len() < (round + 1) * N {
            assert!(
                Instant::now() < deadline,
                "only {} frames",
                out.frames().len()
            );
            server.pull(&mut out).expect("pull");
        }
        for c in &mut clients {
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut buf = [0; 512];
            let n = c.read(&mut buf).expect("an answer");
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 202 "),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    }
    assert!(
        threads() < before + 16,
        "{} threads for {N} connections (from {before})",
        threads()
    );
    let mut bodies: Vec<&[u8]> = out.frames().iter().collect();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len(), 2 * N, "every request once");
}
