//! Stopping on SIGTERM or SIGINT while a `tcp_server` source is receiving: nothing the server
//! acknowledged is lost or written twice.
//!
//! "Acknowledged" (see the `tcp_server` crate docs): a line the server read from its socket and
//! handed to the engine, which the connector's `events_out` in `--stats-json` counts. The
//! output must be exactly the lines `1..=k`, in order, with `k` that count.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpStream,
    path::Path,
    process::{Child, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use codec_json::decode_slice;

use crate::support::{deployment, temblor, temp_dir};

/// How many numbered lines the client sends.
const LINES: u64 = 100_000;

/// The lines written before the signal: the rest follow it, as fast as the client can.
const BEFORE_SIGNAL: u64 = 30_000;

fn tcp_to_file(out: &Path) -> String {
    format!(
        r#"
[[connector]]
id = "in"
plugin = "tcp_server"
codec = "binary"
preprocessors = ["separate"]
config = {{ url = "127.0.0.1:0" }}

[[connector]]
id = "out"
plugin = "file"
codec = "binary"
postprocessors = ["separate"]
config = {{ path = "{}", mode = "write" }}

[[pipeline]]
id = "main"

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

/// Collects the child's stderr on a thread; sends each line on as it comes.
fn watch_stderr(child: &mut Child) -> (Arc<Mutex<String>>, mpsc::Receiver<String>) {
    let stderr = child.stderr.take().unwrap();
    let all = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let keep = Arc::clone(&all);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            keep.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    (all, rx)
}

/// The address the server logs when it listens (`addr=127.0.0.1:PORT`).
fn listening_addr(lines: &mpsc::Receiver<String>, log: &Mutex<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no 'tcp server listening' line within 30 s: {}",
                log.lock().unwrap()
            )
        });
        if line.contains("tcp server listening")
            && let Some(addr) = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("addr="))
        {
            return addr.trim_matches('"').to_owned();
        }
    }
}

/// Waits for the child to exit, at most `limit`; kills it and fails after that.
fn wait_at_most(
    child: &mut Child,
    limit: Duration,
    log: &Mutex<String>,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "temblor still running {limit:?} after the signal: {}",
                log.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Streams numbered lines into `tcp_server`, sends `signal` mid-stream, and checks the output.
fn stop_mid_stream(signal: &str) {
    let dir = temp_dir(&format!("shutdown-{signal}"));
    let (out, stats) = (dir.join("out.txt"), dir.join("stats.json"));
    let deploy = deployment(&dir, &tcp_to_file(&out));
    let mut child = temblor()
        .arg("run")
        .arg(&deploy)
        .arg("--stats-json")
        .arg(&stats)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log, lines) = watch_stderr(&mut child);
    let addr = listening_addr(&lines, &log);

    let data: Vec<u8> = (1..=LINES)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let split = (1..=BEFORE_SIGNAL)
        .map(|i| i.to_string().len() + 1)
        .sum::<usize>();
    let mut client = TcpStream::connect(&addr).unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client.write_all(&data[..split]).unwrap();
    // Mid-stream: once some output exists, signal, and go on sending as fast as possible.
    let started = Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no output after 30 s: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let written_before = std::fs::read_to_string(&out).unwrap().lines().count();
    let sender = std::thread::spawn(move || {
        // The server closes the connection when it stops: the rest may fail, that is expected.
        let _ = client.write_all(&data[split..]);
    });
    let kill = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_at_most(&mut child, Duration::from_secs(30), &log);
    sender.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIG{signal}: {status}: {log}"
    );

    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.ends_with('\n'), "the last line was written whole");
    let got: Vec<u64> = written
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect();
    let k = got.len() as u64;
    assert!(
        k >= written_before as u64 && k > 0,
        "{k} lines, {written_before} before the signal"
    );
    assert!(
        got.iter().copied().eq(1..=k),
        "not exactly 1..={k} in order (first gap or duplicate at index {:?})",
        got.iter()
            .zip(1..)
            .position(|(&line, expected)| line != expected)
    );
    let stats = decode_slice(std::fs::read_to_string(&stats).unwrap().as_bytes()).unwrap();
    let count = |connector: &str, field: &str| {
        stats
            .get("connectors")
            .and_then(|c| c.get(connector))
            .and_then(|c| c.get(field))
            .and_then(|v| v.as_u64())
            .unwrap_or_else(|| panic!("stats lack {connector}.{field}: {stats}"))
    };
    assert_eq!(
        count("in", "events_out"),
        k,
        "every line tcp_server acknowledged was written, and nothing else"
    );
    assert_eq!(count("out", "events_in"), k);
    eprintln!(
        "SIG{signal}: {k} of {LINES} lines acknowledged and written ({written_before} before the signal)"
    );
}

#[test]
fn sigterm_while_tcp_server_receives_loses_and_repeats_nothing_acknowledged() {
    stop_mid_stream("TERM");
}

#[test]
fn sigint_while_tcp_server_receives_loses_and_repeats_nothing_acknowledged() {
    stop_mid_stream("INT");
}

/// metronome → tcp_client → (socket) → tcp_server → file: one deployment that writes to itself.
fn tcp_loop(port: u16, out: &Path) -> String {
    format!(
        r#"
[[connector]]
id = "tick"
plugin = "metronome"
config = {{ interval_ms = 1 }}

[[connector]]
id = "send"
plugin = "tcp_client"
codec = "json"
postprocessors = ["separate"]
config = {{ url = "127.0.0.1:{port}" }}

[[connector]]
id = "receive"
plugin = "tcp_server"
codec = "json"
preprocessors = ["separate"]
config = {{ url = "127.0.0.1:{port}" }}

[[connector]]
id = "out"
plugin = "file"
codec = "json"
postprocessors = ["separate"]
config = {{ path = "{}", mode = "write" }}

[[pipeline]]
id = "ticks"

[[pipeline]]
id = "received"

[[connect]]
from = "tick"
to = "ticks"

[[connect]]
from = "ticks"
to = "send"

[[connect]]
from = "receive"
to = "received"

[[connect]]
from = "received"
to = "out"
"#,
        out.display()
    )
}

#[test]
fn sigterm_on_a_deployment_that_sends_to_itself_stops_at_once_and_loses_nothing() {
    let dir = temp_dir("shutdown-loop");
    let (out, stats) = (dir.join("out.json"), dir.join("stats.json"));
    let port = crate::support::free_port();
    let deploy = deployment(&dir, &tcp_loop(port, &out));
    let mut child = temblor()
        .arg("run")
        .arg(&deploy)
        .arg("--stats-json")
        .arg(&stats)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log, lines) = watch_stderr(&mut child);
    listening_addr(&lines, &log);
    let started = Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 1_000 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no output after 30 s: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = log.lock().unwrap().len();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let signalled = Instant::now();
    // The sink to the engine's own server finishes before the server closes: no retries to a
    // closed port on the way out (they back off for about 30 s).
    let status = wait_at_most(&mut child, Duration::from_secs(20), &log);
    let took = signalled.elapsed();
    let log = log.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{status}: {log}");
    let after = &log[before..];
    assert!(
        !after.contains("reconnecting") && !after.contains("giving up"),
        "the client lost its server on the way out: {after}"
    );
    let stats = std::fs::read_to_string(&stats).unwrap();
    let stat = |id: &str, field: &str| crate::support::connector_stat(&stats, id, field);
    assert_eq!(stat("send", "lost"), 0, "{stats}");
    assert_eq!(stat("send", "events_in"), stat("tick", "events_out"));
    // The ticks written are 0..k in order, each once.
    let ids: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            decode_slice(l.as_bytes())
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_u64()))
                .unwrap_or_else(|| panic!("not a tick: {l:?}"))
        })
        .collect();
    assert!(!ids.is_empty());
    assert!(ids.iter().copied().eq(0..ids.len() as u64), "{ids:?}");
    eprintln!(
        "loop: {} ticks written, stopped {took:?} after SIGTERM",
        ids.len()
    );
}
