//! Streams end to end: every `tcp_server` connection is a stream of its own, with its own
//! `separate` preprocessor in the engine, so partial lines that two clients send at the same
//! time never mix; and every event carries its stream's metadata (`meta.peer` from the
//! connector, `meta.connector` and `meta.stream` from the engine).
//!
//! The clients are `socat` processes (installed by `cargo xtask test`), fed through their stdin
//! a piece at a time. The engine is stopped with SIGTERM once the output holds every line.
//! (Unix only: it signals the engine.)

use std::{collections::HashMap, path::Path, process::Command, thread, time::Duration};

use temblor_harness::{config, process::Fed};
use temblor_shim::Value;

use crate::support::{
    Connector, Deployment, Engine, Pipeline, free_port, meta_into_event, temp_dir, two_clients,
    wait_lines,
};

/// How many lines each client sends.
const LINES: usize = 8;

/// The pause between two writes, so that the clients' pieces really arrive interleaved.
const PAUSE: Duration = Duration::from_millis(25);

/// `in` (tcp_server on a free port, `codec`, split per connection by `separate`) → `main` →
/// `out` (a file, `codec`, one event per line), run in a folder `test` while two clients send
/// `pieces` (see [`send_interleaved`]). The port, what each client sent, and the lines written
/// once they all arrived.
fn interleaved(
    test: &str,
    codec: &str,
    main: Pipeline,
    pieces: impl Fn(usize, usize) -> Vec<String>,
) -> (u16, [Vec<String>; 2], Vec<String>) {
    let dir = temp_dir(test);
    let out = dir.join("out.txt");
    let port = free_port();
    let deploy = Deployment::pipe(
        Connector::new("in", "tcp_server")
            .codec(codec)
            .pre(config(&[
                ("name", "separate".into()),
                ("separator", "\n".into()),
            ]))
            .set("url", format!("127.0.0.1:{port}")),
        main,
        Connector::file_write("out", &out).codec(codec),
    )
    .write(&dir);
    let engine = Engine::start(&deploy);
    engine.wait_for("tcp server listening");
    let sent = send_interleaved(port, pieces);
    let want = sent.iter().map(Vec::len).sum();
    let got = stop_when_written(engine, &out, want);
    (port, sent, got)
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
    let (_, sent, got) = interleaved(
        "streams-interleave",
        "string",
        Pipeline::new("main"),
        |k, n| {
            let name = ["alpha", "beta"][k];
            vec![
                format!("{name}-{n}-"),
                format!("mid-{n}-"),
                "end\n".to_owned(),
            ]
        },
    );
    let want: usize = sent.iter().map(Vec::len).sum();

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
    let main = Pipeline::new("main").op(&meta_into_event(&["peer", "stream", "connector"]));
    let (port, sent, got) = interleaved("streams-meta", "json", main, |k, n| {
        vec![
            format!("{{\"client\":{k},"),
            format!("\"n\":{n}"),
            "}\n".to_owned(),
        ]
    });
    let want: usize = sent.iter().map(Vec::len).sum();
    assert_eq!(got.len(), want, "{got:?}");

    let [a, b] = two_clients(&got, LINES, |e, _, _| {
        assert_eq!(e.get("connector"), Some(&Value::from("in")), "{e}");
        let peer_port = e
            .get("peer")
            .and_then(Value::as_str)
            .and_then(|p| p.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("`peer` is not 127.0.0.1:PORT: {e}"));
        assert!(peer_port > 0 && peer_port != port, "{e}");
    });
    assert_ne!(a.0, b.0, "the two clients have different peers");
    assert_ne!(a.1, b.1, "the two clients have different streams");
}
