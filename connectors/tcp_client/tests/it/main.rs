//! Drives the tcp_client connector through its ABI objects, as the engine does, against `socat`
//! and a Python line server that comes and goes.

use std::{
    io::{BufRead, BufReader, Lines},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use temblor_harness::connector;
use temblor_shim::{ErrorKind, Frames, PluginError, Value, abi::SinkBox};

/// A child process, killed and reaped when dropped.
struct Peer(Child);

impl Peer {
    /// Waits for the peer to exit on its own; true when it exited with success.
    fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status.success();
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python server on 127.0.0.1 (`port` 0: a free one): prints its port once it listens, then
/// takes one connection and prints every line it receives, until the line `stop`, when it
/// closes the connection and exits (or after 20 s of silence).
struct LineServer {
    peer: Peer,
    lines: Lines<BufReader<ChildStdout>>,
    port: u16,
}

impl LineServer {
    fn start(port: u16) -> Self {
        let script = "import socket, sys\n\
            s = socket.socket()\n\
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
            s.bind(('127.0.0.1', int(sys.argv[1])))\n\
            s.listen(8)\n\
            s.settimeout(20)\n\
            print(s.getsockname()[1], flush=True)\n\
            c, _ = s.accept()\n\
            c.settimeout(20)\n\
            for line in c.makefile('rb'):\n    \
                print(line.decode().rstrip('\\n'), flush=True)\n    \
                if line == b'stop\\n':\n        break\n\
            c.close()\n\
            s.close()\n";
        let mut child = Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines
            .next()
            .expect("a port")
            .expect("read")
            .parse()
            .expect("a port number");
        Self {
            peer: Peer(child),
            lines,
            port,
        }
    }

    /// The next `n` lines received.
    fn take(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map_while(|_| self.lines.next())
            .map(|line| line.expect("read"))
            .collect()
    }
}

fn config(fields: &[(&str, Value)]) -> Value {
    Value::Object(fields.iter().cloned().collect())
}

fn sink(cfg: &Value) -> Result<SinkBox, PluginError> {
    connector::sink(connector_tcp_client::plugin_module(), cfg)
}

fn batch(frames: &[&str]) -> Frames {
    frames.iter().map(|f| f.as_bytes()).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn compliance_sink_only_and_strict_config() {
    let module = connector_tcp_client::plugin_module();
    connector::manifest(module);
    let cfg = config(&[("url", Value::from(format!("127.0.0.1:{}", free_port())))]);
    connector::refuses_the_other_direction(module, &cfg, true);
    connector::rejects_unknown_key(module, &cfg, false);
    assert_eq!((module.manifest())().name.as_str(), "tcp_client");
}

#[test]
fn harness_sink_accepts_and_socat_receives_everything() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let out = std::env::temp_dir().join(format!(
        "temblor-connector-tcp_client-it-{}-socat.txt",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&out);
    let _socat = Peer(
        Command::new("socat")
            .args([
                "-u".to_owned(),
                format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                format!("OPEN:{},creat,append", out.display()),
            ])
            .spawn()
            .expect("start socat"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "socat never listened");
        thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<String> = (0..500).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let frames: Vec<&[u8]> = lines.iter().map(String::as_bytes).collect();
    connector::sink_accepts(
        connector_tcp_client::plugin_module(),
        &config(&[("url", Value::from(addr.to_string()))]),
        &frames,
    );
    let expected = lines.concat();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = String::new();
    while got != expected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        got = std::fs::read_to_string(&out).unwrap_or_default();
    }
    let _ = std::fs::remove_file(PathBuf::from(&out));
    assert!(
        got == expected,
        "socat got {} of {} bytes",
        got.len(),
        expected.len()
    );
}

#[test]
fn reconnects_when_the_server_comes_back_and_delivers_later_frames() {
    let mut first = LineServer::start(0);
    let port = first.port;
    let mut sink = sink(&config(&[
        ("url", Value::from(format!("127.0.0.1:{port}"))),
        ("backoff_ms", Value::from(20_u64)),
        ("max_backoff_ms", Value::from(200_u64)),
        ("max_retries", Value::from(50_u64)),
    ]))
    .expect("sink");
    sink.push(&batch(&["a\n", "b\n"]))
        .into_result()
        .expect("push");
    assert_eq!(first.take(2), ["a", "b"]);
    sink.push(&batch(&["stop\n"])).into_result().expect("push");
    assert_eq!(first.take(1), ["stop"]);
    assert!(first.peer.wait(Duration::from_secs(10)), "server 1 closed");

    // Between batches: the closed connection is noticed, the new server gets everything.
    let mut second = LineServer::start(port);
    sink.push(&batch(&["c\n", "d\n"]))
        .into_result()
        .expect("push after the restart");
    sink.flush().into_result().expect("flush");
    assert_eq!(second.take(2), ["c", "d"]);
    sink.push(&batch(&["stop\n"])).into_result().expect("push");
    assert_eq!(second.take(1), ["stop"]);
    assert!(second.peer.wait(Duration::from_secs(10)), "server 2 closed");

    // During a batch: nobody listens when it starts; it backs off until the server is back.
    let pusher = thread::spawn(move || {
        let result = sink.push(&batch(&["e\n", "f\n"])).into_result();
        (sink, result)
    });
    thread::sleep(Duration::from_millis(300));
    let mut third = LineServer::start(port);
    let (_sink, result) = pusher.join().expect("pusher");
    assert_eq!(result, Ok(()));
    assert_eq!(third.take(2), ["e", "f"]);
}

#[test]
fn a_server_that_never_comes_is_an_io_error_not_a_panic() {
    let port = free_port();
    let mut sink = sink(&config(&[
        ("url", Value::from(format!("127.0.0.1:{port}"))),
        ("backoff_ms", Value::from(10_u64)),
        ("max_retries", Value::from(2_u64)),
    ]))
    .expect("a server that is not up yet is no error");
    for _ in 0..2 {
        let err = sink
            .push(&batch(&["x\n"]))
            .into_result()
            .expect_err("nobody listens");
        assert_eq!(err.kind, ErrorKind::Io, "{err}");
        assert!(err.message.contains("after 3 attempts"), "{err}");
    }
}
