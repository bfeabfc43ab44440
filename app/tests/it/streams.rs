//! Streams end to end: every `tcp_server` connection is a stream of its own, with its own
//! `separate` preprocessor in the engine, so partial lines that two clients send at the same
//! time never mix; and every event carries its stream's metadata (`meta.peer` from the
//! connector, `meta.connector` and `meta.stream` from the engine).
//!
//! The clients are `socat` processes (installed by `cargo xtask test`), fed through their stdin
//! a piece at a time. The engine is stopped with SIGTERM once the output holds every line.
//! (Unix only: it signals with `kill`.)

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use codec_json::decode_slice;
use temblor_shim::Value;

use crate::support::{deployment, free_port, temblor, temp_dir};

/// How many lines each client sends.
const LINES: usize = 8;

/// The pause between two writes, so that the clients' pieces really arrive interleaved.
const PAUSE: Duration = Duration::from_millis(25);

/// `in` (tcp_server on `port`, `codec`, split per connection by `separate`) → `main`
/// (`operators`) → `out` (a file, `out_codec`, one event per line).
fn tcp_to_file(port: u16, codec: &str, operators: &str, out_codec: &str, out: &Path) -> String {
    format!(
        r#"
[[connector]]
id = "in"
plugin = "tcp_server"
codec = "{codec}"
preprocessors = [{{ name = "separate", separator = "\n" }}]
config = {{ url = "127.0.0.1:{port}" }}

[[connector]]
id = "out"
plugin = "file"
codec = "{out_codec}"
postprocessors = ["separate"]
config = {{ path = "{}", mode = "write" }}

[[pipeline]]
id = "main"
operators = {operators}

[[connect]]
from = "in"
to = "main"

[[connect]]
from = "main"
to = "out"
"#,
        out.display()
    )
}

/// The engine under test: killed when dropped (a failed test leaves nothing behind).
struct Engine {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Engine {
    /// Runs `deploy` and waits until the tcp server listens.
    fn start(deploy: &Path) -> Self {
        let mut child = temblor()
            .arg("run")
            .arg(deploy)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let keep = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let engine = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("tcp server listening") => break,
                Ok(_) => {}
                Err(_) => panic!(
                    "no 'tcp server listening' line within 30 s: {}",
                    engine.log()
                ),
            }
        }
        engine
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `out` holds `lines` lines (the engine writes as it goes), then stops the
    /// engine with SIGTERM; the file's lines once it exited with status 0.
    fn stop_when_written(mut self, out: &Path, lines: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(out).map_or(0, |t| t.lines().count()) < lines {
            if Instant::now() > deadline {
                panic!(
                    "{out:?} holds {:?} after 30 s, want {lines} lines: {}",
                    std::fs::read_to_string(out),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "temblor still running 30 s after SIGTERM: {}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            status.code(),
            Some(0),
            "exit after SIGTERM: {status}: {}",
            self.log()
        );
        let written = std::fs::read_to_string(out).unwrap();
        assert!(written.ends_with('\n'), "the last line was written whole");
        written.lines().map(str::to_owned).collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `socat - TCP:127.0.0.1:PORT` client, written to through its stdin.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Client {
    fn connect(port: u16) -> Self {
        let mut child = Command::new("socat")
            .args(["-", &format!("TCP:127.0.0.1:{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start socat (is it installed?)");
        let stdin = child.stdin.take();
        Self { child, stdin }
    }

    fn write(&mut self, piece: &str) {
        let stdin = self.stdin.as_mut().expect("still open");
        stdin.write_all(piece.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin: socat closes the connection and exits.
    fn close(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "socat failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "socat did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two clients send `pieces(client, n)` for lines `0..LINES`, one piece each in turn with a
/// pause between: the lines of both are always half-sent at the same time. Then both close.
/// Returns what each client sent, line by line (without the newline).
fn send_interleaved(port: u16, pieces: impl Fn(usize, usize) -> Vec<String>) -> [Vec<String>; 2] {
    let mut clients = [Client::connect(port), Client::connect(port)];
    // Let both connect, so that the first pieces interleave too.
    thread::sleep(Duration::from_millis(300));
    let mut sent: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for n in 0..LINES {
        let parts = [pieces(0, n), pieces(1, n)];
        assert_eq!(parts[0].len(), parts[1].len());
        assert!(parts.iter().all(|p| p.last().unwrap().ends_with('\n')));
        for (a, b) in parts[0].iter().zip(&parts[1]) {
            for (client, piece) in clients.iter_mut().zip([a, b]) {
                client.write(piece);
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
    let deploy = deployment(&dir, &tcp_to_file(port, "string", "[]", "string", &out));
    let engine = Engine::start(&deploy);
    let sent = send_interleaved(port, |k, n| {
        let name = ["alpha", "beta"][k];
        vec![
            format!("{name}-{n}-"),
            format!("mid-{n}-"),
            "end\n".to_owned(),
        ]
    });
    let want: usize = sent.iter().map(Vec::len).sum();
    let got = engine.stop_when_written(&out, want);

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
    let operators = r#"[{ set = { "event.peer" = 'meta.peer', "event.stream" = 'meta.stream', "event.connector" = 'meta.connector' } }]"#;
    let deploy = deployment(&dir, &tcp_to_file(port, "json", operators, "json", &out));
    let engine = Engine::start(&deploy);
    let sent = send_interleaved(port, |k, n| {
        vec![
            format!("{{\"client\":{k},"),
            format!("\"n\":{n}"),
            "}\n".to_owned(),
        ]
    });
    let want: usize = sent.iter().map(Vec::len).sum();
    let got = engine.stop_when_written(&out, want);
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
