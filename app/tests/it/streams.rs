//! Streams end to end: every `tcp_server` connection is a stream of its own, with its own
//! `separate` preprocessor in the engine, so partial lines that two clients send at the same
//! time never mix; and every event carries its stream's metadata (`meta.peer` from the
//! connector, `meta.connector` and `meta.stream` from the engine).
//!
//! The clients are `socat` processes (installed by `cargo xtask test`), fed through their stdin
//! a piece at a time. The engine is stopped with SIGTERM once the output holds every line.
//! (Unix only: it signals the engine.)

use std::{collections::HashMap, path::Path, process::Command, thread, time::Duration};

use codec_json::decode_slice;
use temblor_harness::{config, process::Fed};
use temblor_shim::Value;

use crate::support::{Connector, Deployment, Engine, Pipeline, free_port, temp_dir, wait_lines};

/// How many lines each client sends.
const LINES: usize = 8;

/// The pause between two writes, so that the clients' pieces really arrive interleaved.
const PAUSE: Duration = Duration::from_millis(25);

/// `in` (tcp_server on `port`, `codec`, split per connection by `separate`) → `main`
/// (`operators`) → `out` (a file, `out_codec`, one event per line).
fn tcp_to_file(
    port: u16,
    codec: &str,
    operators: &[&str],
    out_codec: &str,
    out: &Path,
) -> Deployment {
    let mut main = Pipeline::new("main");
    for op in operators {
        main = main.op(op);
    }
    Deployment::pipe(
        Connector::new("in", "tcp_server")
            .codec(codec)
            .pre(config(&[
                ("name", "separate".into()),
                ("separator", "\n".into()),
            ]))
            .set("url", format!("127.0.0.1:{port}")),
        main,
        Connector::file_write("out", out).codec(out_codec),
    )
}

/// Runs `deploy` and waits until the tcp server listens.
fn start(deploy: &Path) -> Engine {
    let engine = Engine::start(deploy);
    engine.wait_for("tcp server listening");
    engine
}

/// Waits until `out` holds `lines` lines (the engine writes as it goes), then stops the engine
/// with SIGTERM; the file's lines once it exited with status 0.
fn stop_when_written(engine: Engine, out: &Path, lines: usize) -> Vec<String> {
    wait_lines(out, lines);
    engine.stop();
    let written = std::fs::read_to_string(out).unwrap();
    assert!(written.ends_with('\n'), "the last line was written whole");
    written.lines().map(str::to_owned).collect()
}

/// A `socat - TCP:127.0.0.1:PORT` client, written to through its stdin.
fn socat(port: u16) -> Fed {
    Fed::spawn(Command::new("socat").args(["-", &format!("TCP:127.0.0.1:{port}")]))
}

/// Two clients send `pieces(client, n)` for lines `0..LINES`, one piece each in turn with a
/// pause between: the lines of both are always half-sent at the same time. Then both close.
/// Returns what each client sent, line by line (without the newline).
fn send_interleaved(port: u16, pieces: impl Fn(usize, usize) -> Vec<String>) -> [Vec<String>; 2] {
    let mut clients = [socat(port), socat(port)];
    // Let both connect, so that the first pieces interleave too.
    thread::sleep(Duration::from_millis(300));
    let mut sent: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for n in 0..LINES {
        let parts = [pieces(0, n), pieces(1, n)];
        assert_eq!(parts[0].len(), parts[1].len());
        assert!(parts.iter().all(|p| p.last().unwrap().ends_with('\n')));
        for (a, b) in parts[0].iter().zip(&parts[1]) {
            for (client, piece) in clients.iter_mut().zip([a, b]) {
                client.write(piece.as_bytes());
                thread::sleep(PAUSE);
            }
        }
        for (k, part) in parts.iter().enumerate() {
            let line = part.concat();
            sent[k].push(line.strip_suffix('\n').unwrap().to_owned());
        }
    }
    for client in &mut clients {
        client.close();
    }
    sent
}

#[test]
fn partial_lines_of_two_clients_never_mix() {
    let dir = temp_dir("streams-interleave");
    let out = dir.join("out.txt");
    let port = free_port();
    let deploy = tcp_to_file(port, "string", &[], "string", &out).write(&dir);
    let engine = start(&deploy);
    let sent = send_interleaved(port, |k, n| {
        let name = ["alpha", "beta"][k];
        vec![
            format!("{name}-{n}-"),
            format!("mid-{n}-"),
            "end\n".to_owned(),
        ]
    });
    let want: usize = sent.iter().map(Vec::len).sum();
    let got = stop_when_written(engine, &out, want);

    let owner: HashMap<&str, usize> = sent
        .iter()
        .enumerate()
        .flat_map(|(k, lines)| lines.iter().map(move |l| (l.as_str(), k)))
        .collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in &got {
        assert!(
            owner.contains_key(line.as_str()),
            "{line:?} is not a line a client sent (lines mixed?): {got:?}"
        );
        *seen.entry(line).or_default() += 1;
    }
    for line in owner.keys() {
        assert_eq!(
            seen.get(line),
            Some(&1),
            "{line:?} arrives exactly once: {got:?}"
        );
    }
    assert_eq!(got.len(), want);
    // And each client's lines in the order it sent them.
    for (k, lines) in sent.iter().enumerate() {
        let order: Vec<&String> = got.iter().filter(|l| owner[l.as_str()] == k).collect();
        assert!(
            order.iter().copied().eq(lines.iter()),
            "client {k}: {got:?}"
        );
    }
}

#[test]
fn events_carry_their_connection_s_peer_stream_and_connector() {
    let dir = temp_dir("streams-meta");
    let out = dir.join("out.json");
    let port = free_port();
    let operators = [
        r#"{ set = { "event.peer" = 'meta.peer', "event.stream" = 'meta.stream', "event.connector" = 'meta.connector' } }"#,
    ];
    let deploy = tcp_to_file(port, "json", &operators, "json", &out).write(&dir);
    let engine = start(&deploy);
    let sent = send_interleaved(port, |k, n| {
        vec![
            format!("{{\"client\":{k},"),
            format!("\"n\":{n}"),
            "}\n".to_owned(),
        ]
    });
    let want: usize = sent.iter().map(Vec::len).sum();
    let got = stop_when_written(engine, &out, want);
    assert_eq!(got.len(), want, "{got:?}");

    // Per client: the (peer, stream) of its events, and the numbers it sent.
    let mut of_client: [Vec<(String, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut numbers: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    for line in &got {
        let event = decode_slice(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        let field = |name: &str| {
            event
                .get(name)
                .unwrap_or_else(|| panic!("no `{name}` in {line}"))
        };
        let client = usize::try_from(field("client").as_u64().unwrap()).unwrap();
        numbers[client].push(field("n").as_u64().unwrap());
        assert_eq!(field("connector"), &Value::from("in"), "{line}");
        let stream = field("stream")
            .as_u64()
            .unwrap_or_else(|| panic!("`stream` is not a number: {line}"));
        let peer = field("peer")
            .as_str()
            .unwrap_or_else(|| panic!("`peer` is not a string: {line}"))
            .to_owned();
        let peer_port = peer
            .strip_prefix("127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("`peer` is not 127.0.0.1:PORT: {line}"));
        assert!(peer_port > 0 && peer_port != port, "{line}");
        of_client[client].push((peer, stream));
    }
    for (k, seen) in of_client.iter().enumerate() {
        assert_eq!(
            numbers[k],
            (0..LINES as u64).collect::<Vec<_>>(),
            "client {k}'s events, in order"
        );
        assert!(
            seen.iter().all(|s| *s == seen[0]),
            "one peer and one stream for all of client {k}'s events: {seen:?}"
        );
    }
    let (a, b) = (&of_client[0][0], &of_client[1][0]);
    assert_ne!(a.0, b.0, "the two clients have different peers");
    assert_ne!(a.1, b.1, "the two clients have different streams");
}
