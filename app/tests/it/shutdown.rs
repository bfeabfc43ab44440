//! Stopping on SIGTERM or SIGINT while a `tcp_server` source is receiving: nothing the server
//! acknowledged is lost or written twice.
//!
//! "Acknowledged" (see the `tcp_server` crate docs): a line the server read from its socket and
//! handed to the engine, which the connector's `events_out` in `--stats-json` counts. The
//! output must be exactly the lines `1..=k`, in order, with `k` that count.

use std::{
    io::Write as _,
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use codec_json::decode_slice;

use crate::support::{Connector, Deployment, Engine, Pipeline, Signal, temp_dir, wait_until};

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// How many numbered lines the client sends.
const LINES: u64 = 100_000;

/// The lines written before the signal: the rest follow it, as fast as the client can.
const BEFORE_SIGNAL: u64 = 30_000;

fn tcp_to_file(out: &Path) -> Deployment {
    Deployment::passthrough(
        Connector::new("in", "tcp_server")
            .codec("binary")
            .pre("separate")
            .set("url", "127.0.0.1:0"),
        Connector::file_write("out", out).codec("binary"),
    )
}

/// Streams numbered lines into `tcp_server`, sends `signal` mid-stream, and checks the output.
fn stop_mid_stream(signal: Signal) {
    let dir = temp_dir(&format!("shutdown-{signal}"));
    let (out, stats) = (dir.join("out.txt"), dir.join("stats.json"));
    let deploy = tcp_to_file(&out).write(&dir);
    let mut engine = Engine::start_with_stats(&deploy, &stats);
    let addr = engine.listening("tcp server listening");

    let data: Vec<u8> = (1..=LINES)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let split = (1..=BEFORE_SIGNAL)
        .map(|i| i.to_string().len() + 1)
        .sum::<usize>();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client.write_all(&data[..split]).unwrap();
    // Mid-stream: once some output exists, signal, and go on sending as fast as possible.
    assert!(
        wait_until(Duration::from_secs(30), || size(&out) > 0),
        "no output after 30 s: {}",
        engine.log()
    );
    let written_before = std::fs::read_to_string(&out).unwrap().lines().count();
    let sender = std::thread::spawn(move || {
        // The server closes the connection when it stops: the rest may fail, that is expected.
        let _ = client.write_all(&data[split..]);
    });
    engine.signal(signal);
    let status = engine.wait();
    sender.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after {signal}: {status}: {}",
        engine.log()
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
        "{signal}: {k} of {LINES} lines acknowledged and written ({written_before} before the signal)"
    );
}

#[test]
fn sigterm_while_tcp_server_receives_loses_and_repeats_nothing_acknowledged() {
    stop_mid_stream(Signal::SIGTERM);
}

#[test]
fn sigint_while_tcp_server_receives_loses_and_repeats_nothing_acknowledged() {
    stop_mid_stream(Signal::SIGINT);
}

/// metronome → tcp_client → (socket) → tcp_server → file: one deployment that writes to itself.
fn tcp_loop(port: u16, out: &Path) -> Deployment {
    let url = format!("127.0.0.1:{port}");
    Deployment::new()
        .flow(
            Connector::new("tick", "metronome").set("interval_ms", 1),
            Pipeline::new("ticks"),
            Connector::new("send", "tcp_client")
                .codec("json")
                .post("separate")
                .set("url", url.as_str()),
        )
        .flow(
            Connector::new("receive", "tcp_server")
                .codec("json")
                .pre("separate")
                .set("url", url.as_str()),
            Pipeline::new("received"),
            Connector::file_write("out", out),
        )
}

#[test]
fn sigterm_on_a_deployment_that_sends_to_itself_stops_at_once_and_loses_nothing() {
    let dir = temp_dir("shutdown-loop");
    let (out, stats) = (dir.join("out.json"), dir.join("stats.json"));
    let port = crate::support::free_port();
    let deploy = tcp_loop(port, &out).write(&dir);
    let mut engine = Engine::start_with_stats(&deploy, &stats);
    engine.listening("tcp server listening");
    assert!(
        wait_until(Duration::from_secs(30), || size(&out) >= 1_000),
        "no output after 30 s: {}",
        engine.log()
    );
    let before = engine.log().len();
    engine.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    // The sink to the engine's own server finishes before the server closes: no retries to a
    // closed port on the way out (they back off for about 30 s).
    let status = engine.wait();
    let took = signalled.elapsed();
    let log = engine.log();
    assert_eq!(status.code(), Some(0), "{status}: {log}");
    assert!(
        took < Duration::from_secs(20),
        "stopped {took:?} after SIGTERM: {log}"
    );
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
