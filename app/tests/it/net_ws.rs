//! End to end: ws_server and ws_client, with a real WebSocket client (Debian's python3-websockets).
//!
//! The Python side runs on `/usr/bin/python3` (Debian's, which has the `websockets` module; the
//! `python3` first on PATH may be another one without it). Scripts are written into the test's
//! temp dir; they print what they saw, and exit non-zero when something is not as expected.
//!
//! - Two clients send text and binary messages (and one pings): every message is an event in a
//!   file sink, each client's in order, with its `meta.peer`, `meta.path`, `meta.binary` and a
//!   stream of its own; the ping gets its pong.
//! - A `ws_server` sink replies to the client each event came from (text to text, binary to
//!   binary), and over `wss://` with the deployment's certificate.
//! - `ws_client` delivers every event of a file, in order, one text message each, to a Python
//!   websockets server.
//!
//! Servers listen on port 0; the test reads the port from the log (`ws server listening ...
//! addr=`).

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use temblor_harness::process::Spawned;
use temblor_shim::Value;

use crate::support::{
    Connector, Deployment, Engine, Pipeline, meta_into_event, server_tls, temp_dir, tls_files,
    two_clients,
};

/// Debian's Python, with `python3-websockets`.
const PYTHON: &str = "/usr/bin/python3";

/// Messages each client sends.
const MESSAGES: usize = 10;

/// Runs a Python script (written to `dir`) with `args`; its output, which must be a success.
fn python(dir: &Path, name: &str, script: &str, args: &[&str]) -> Output {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    let out = Command::new(PYTHON)
        .arg(&path)
        .args(args)
        .output()
        .expect("run /usr/bin/python3 (is python3-websockets installed?)");
    assert!(
        out.status.success(),
        "{name} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two clients at once, on `/client-K`: each sends MESSAGES JSON messages, text and binary in
/// turn, with a pause between so that the two interleave; client 0 pings half-way and waits
/// for the pong. Prints `pong` when it came.
const TWO_CLIENTS: &str = r#"
import asyncio, json, sys
import websockets

async def client(url, k, n):
    async with websockets.connect(f"{url}/client-{k}") as ws:
        for i in range(n):
            doc = json.dumps({"client": k, "n": i})
            await ws.send(doc if i % 2 == 0 else doc.encode())
            await asyncio.sleep(0.02)
            if k == 0 and i == n // 2:
                waiter = await ws.ping(b"hello")
                await asyncio.wait_for(waiter, 10)
                print("pong", flush=True)

async def main():
    url, n = sys.argv[1], int(sys.argv[2])
    await asyncio.gather(client(url, 0, n), client(url, 1, n))

asyncio.run(main())
"#;

#[test]
fn text_and_binary_messages_of_two_clients_arrive_in_order_and_a_ping_gets_a_pong() {
    let dir = temp_dir("ws-two-clients");
    let out = dir.join("out.json");
    let deploy = Deployment::pipe(
        Connector::new("in", "ws_server")
            .codec("json")
            .set("url", "127.0.0.1:0")
            .set("max_message", 4096),
        Pipeline::new("main").op(&meta_into_event(&[
            "peer",
            "path",
            "binary",
            "stream",
            "connector",
        ])),
        Connector::file_write("out", &out),
    )
    .write(&dir);
    let engine = Engine::start(&deploy);
    let addr = engine.listening("ws server listening");
    let said = python(
        &dir,
        "two.py",
        TWO_CLIENTS,
        &[&format!("ws://{addr}"), &MESSAGES.to_string()],
    );
    assert_eq!(String::from_utf8_lossy(&said.stdout).trim(), "pong");
    let got = engine.wait_lines(&out, 2 * MESSAGES);
    engine.stop();
    assert_eq!(got.len(), 2 * MESSAGES, "{got:?}");

    two_clients(&got, MESSAGES, |e, k, n| {
        let field = |name: &str| e.get(name).unwrap_or_else(|| panic!("no {name}: {e}"));
        assert_eq!(field("path"), &Value::from(format!("/client-{k}")), "{e}");
        assert_eq!(
            field("binary"),
            &Value::from(n % 2 == 1),
            "text and binary in turn: {e}"
        );
        assert_eq!(field("connector"), &Value::from("in"), "{e}");
        let peer = field("peer").as_str().unwrap();
        assert!(peer.starts_with("127.0.0.1:"), "{e}");
    });
}

/// Sends `n` messages, text and binary in turn, and checks that each reply is the same
/// message of the same kind, on this client's own connection. Prints `ok K`.
const ECHO_CLIENTS: &str = r#"
import asyncio, ssl, sys
import websockets

async def client(url, k, n, ctx):
    async with websockets.connect(f"{url}/echo", ssl=ctx) as ws:
        for i in range(n):
            text = f"client {k} message {i}"
            sent = text if i % 2 == 0 else text.encode()
            await ws.send(sent)
            reply = await asyncio.wait_for(ws.recv(), 10)
            if reply != sent:
                sys.exit(f"client {k}: sent {sent!r}, got {reply!r}")
    print(f"ok {k}", flush=True)

async def main():
    url, n = sys.argv[1], int(sys.argv[2])
    ctx = ssl.create_default_context(cafile=sys.argv[3]) if len(sys.argv) > 3 else None
    await asyncio.gather(client(url, 0, n, ctx), client(url, 1, n, ctx))

asyncio.run(main())
"#;

/// `in` (ws_server, string codec, `tls` when given) → `main` → `reply` (ws_server sink to `in`).
fn echo_deployment(tls: Option<Value>) -> Deployment {
    let mut server = Connector::new("in", "ws_server")
        .codec("string")
        .set("url", "127.0.0.1:0");
    if let Some(tls) = tls {
        server = server.set("tls", tls);
    }
    Deployment::passthrough(
        server,
        Connector::new("reply", "ws_server")
            .codec("string")
            .set("server", "in"),
    )
}

#[test]
fn a_ws_server_sink_replies_to_the_client_each_event_came_from() {
    let dir = temp_dir("ws-echo");
    let deploy = echo_deployment(None).write(&dir);
    let engine = Engine::start(&deploy);
    let addr = engine.listening("ws server listening");
    let said = python(
        &dir,
        "echo.py",
        ECHO_CLIENTS,
        &[&format!("ws://{addr}"), &MESSAGES.to_string()],
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&said.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["ok 0", "ok 1"]);
    let log = engine.stop();
    assert!(log.contains("ws server sink done"), "{log}");
}

#[test]
fn wss_with_the_configured_certificate() {
    let dir = temp_dir("ws-tls");
    let (ca, cert, key) = tls_files(&dir);
    let deploy = echo_deployment(Some(server_tls(&cert, &key))).write(&dir);
    let engine = Engine::start(&deploy);
    let addr = engine.listening("ws server listening");
    let url = format!("wss://localhost:{}", addr.port());
    let said = python(
        &dir,
        "echo.py",
        ECHO_CLIENTS,
        &[&url, "3", &ca.display().to_string()],
    );
    assert_eq!(String::from_utf8_lossy(&said.stdout).lines().count(), 2);
    engine.stop();
}

/// A websockets server on a free port: prints the port, then writes each message it gets as a
/// line `text <message>` (or `binary <hex>`) to the file given, flushed at once.
const SERVER: &str = r#"
import asyncio, sys
import websockets

async def main():
    out = open(sys.argv[1], "w")
    async def handler(ws, path):
        async for message in ws:
            if isinstance(message, str):
                out.write(f"text {message}\n")
            else:
                out.write(f"binary {message.hex()}\n")
            out.flush()
    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

#[test]
fn ws_client_delivers_every_event_to_a_python_websockets_server() {
    let dir = temp_dir("ws-client");
    let script = dir.join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    let received = dir.join("received.txt");
    let (server, port, _) = Spawned::reporting::<u16>(
        Command::new(PYTHON)
            .arg(&script)
            .arg(&received)
            .stderr(Stdio::inherit()),
    );

    let input = dir.join("in.txt");
    let lines: Vec<String> = (0..200).map(|n| format!("event {n}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let deploy = Deployment::passthrough(
        Connector::file_read("in", "string", &input),
        Connector::new("out", "ws_client")
            .codec("string")
            .set("url", format!("ws://127.0.0.1:{port}/ingest"))
            .set("ping_interval_s", 5),
    )
    .write(&dir);
    // The file ends, so the engine drains, closes and exits by itself.
    let mut engine = Engine::start(&deploy);
    let status = engine.wait();
    assert_eq!(status.code(), Some(0), "{status}: {}", engine.log());
    let want: Vec<String> = lines.iter().map(|l| format!("text {l}")).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<String> = std::fs::read_to_string(&received)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if got == want {
            break;
        }
        assert!(
            got.len() <= want.len() && want.starts_with(&got),
            "every event once, in order, as a text message: {got:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{} of {} arrived",
            got.len(),
            want.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
    drop(server);
}
