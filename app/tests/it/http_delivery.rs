//! `http_server` with `response = "delivered"` end to end, with `curl` as the client: a request
//! is answered `200` only once its events are in the sink's file (or in the dead letter file),
//! and `503` when the sink gave up on them (docs/delivery.md).
//!
//! Two tests use the `faulty` test plugin (test-plugins/faulty) for a sink that always fails,
//! which the monolith does not have: declare this module as `restart` is
//! (`#[cfg(not(feature = "monolith"))] mod http_delivery;`).

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use crate::support::{deployment, plugin_dir, temp_dir};

/// The binary with the shipped plugins and the test plugins.
fn temblor() -> Command {
    let mut cmd = crate::support::temblor();
    cmd.arg("--plugin-dir").arg(plugin_dir("test-plugins"));
    cmd
}

/// `in` (`http_server`, `response = "delivered"`, JSON, on a free loopback port, with
/// `preprocessors`) → `main` → `out` (`sink`: the connector's table lines after `id`).
fn http_to(preprocessors: &str, sink: &str) -> String {
    format!(
        r#"
[[connector]]
id = "in"
plugin = "http_server"
codec = "json"
preprocessors = [{preprocessors}]
config = {{ url = "127.0.0.1:0", response = "delivered", timeout_ms = 20000 }}

[[pipeline]]
id = "main"
operators = []

[[connector]]
id = "out"
{sink}

[[connect]]
from = "in"
to = "main"

[[connect]]
from = "main"
to = "out"
"#
    )
}

/// A file sink writing JSON lines to `path`.
fn file_sink(path: &Path) -> String {
    format!(
        "plugin = \"file\"\ncodec = \"json\"\npostprocessors = [\"separate\"]\nconfig = {{ path = \"{}\", mode = \"write\" }}",
        path.display()
    )
}

/// A sink whose every push fails (the `faulty` plugin), not retried by the engine, with
/// `extra` connector keys.
fn failing_sink(extra: &str) -> String {
    format!(
        "plugin = \"faulty\"\ncodec = \"json\"\nconfig = {{ fail_push_times = 1000000 }}\nretries = 0\n{extra}"
    )
}

/// A running engine: stopped with SIGTERM by `stop`, killed when dropped otherwise (a failed
/// test leaves no engine behind).
struct Engine {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    /// The server's `host:port`, from its "http server listening" log line.
    addr: String,
}

impl Engine {
    fn start(dir: &Path, text: &str) -> Self {
        let file = deployment(dir, text);
        let mut child = temblor()
            .arg("run")
            .arg(&file)
            .arg("--stats-json")
            .arg(dir.join("stats.json"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let keep = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut engine = Self {
            child: Some(child),
            log,
            addr: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while engine.addr.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no 'http server listening' line within 30 s: {}",
                    engine.log()
                )
            });
            if line.contains("http server listening")
                && let Some(addr) = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("addr="))
            {
                engine.addr = addr.trim_matches('"').to_owned();
            }
        }
        engine
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `curl --data-binary body` to the server, the answer's body into `answer`: the status
    /// curl prints.
    fn post(&self, body: &str, answer: &Path) -> String {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "30", "-o"])
            .arg(answer)
            .args(["-w", "%{http_code}", "--data-binary", body])
            .arg(format!("http://{}/", self.addr))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGTERM; waits at most 30 s for the exit, which must be a success.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("temblor still running 30 s after SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "exit after SIGTERM: {status}: {}",
            self.log()
        );
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn delivered_curl_gets_200_once_the_event_is_in_the_file() {
    let dir = temp_dir("http-delivered");
    let out = dir.join("out.json");
    let engine = Engine::start(&dir, &http_to("", &file_sink(&out)));
    // The real client, as a user would call it.
    let curl = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data",
            "{\"a\":1}",
        ])
        .arg(format!("http://{}/", engine.addr))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "200",
        "{}",
        engine.log()
    );
    // When curl returns, the event is written and flushed.
    assert_eq!(lines(&out), ["{\"a\":1}"], "{}", engine.log());
    engine.stop();
    assert_eq!(lines(&out), ["{\"a\":1}"]);
}

#[test]
fn delivered_ndjson_bodies_are_split_per_request_and_answered_when_all_are_written() {
    let dir = temp_dir("http-delivered-ndjson");
    let (out, answer) = (dir.join("out.json"), dir.join("answer.txt"));
    let engine = Engine::start(&dir, &http_to("\"separate\"", &file_sink(&out)));
    // The last line without a newline: it ends with its request (its stream), not later.
    let status = engine.post("{\"n\":1}\n{\"n\":2}\n{\"n\":3}", &answer);
    assert_eq!(status, "200", "{}", engine.log());
    assert_eq!(
        lines(&out),
        ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"],
        "{}",
        engine.log()
    );
    let status = engine.post("{\"n\":4}\n", &answer);
    assert_eq!(status, "200", "{}", engine.log());
    assert_eq!(lines(&out).len(), 4, "{}", engine.log());
    engine.stop();
}

#[test]
fn delivered_curl_gets_503_when_the_sink_gives_up() {
    let dir = temp_dir("http-delivered-lost");
    let answer = dir.join("answer.txt");
    let engine = Engine::start(&dir, &http_to("", &failing_sink("")));
    let begin = Instant::now();
    let status = engine.post("{\"a\":1}", &answer);
    assert_eq!(status, "503", "{}", engine.log());
    // Failed by the engine, not timed out (timeout_ms is 20 s).
    assert!(
        begin.elapsed() < Duration::from_secs(15),
        "{:?}",
        begin.elapsed()
    );
    let body = std::fs::read_to_string(&answer).unwrap();
    assert!(body.starts_with("not delivered: "), "{body}");
    engine.stop();
}

#[test]
fn delivered_curl_gets_200_when_the_event_is_dead_lettered() {
    let dir = temp_dir("http-delivered-dead-letter");
    let (answer, dead) = (dir.join("answer.txt"), dir.join("dead.json"));
    let extra = format!("dead_letter = \"{}\"", dead.display());
    let engine = Engine::start(&dir, &http_to("", &failing_sink(&extra)));
    let status = engine.post("{\"a\":1}", &answer);
    assert_eq!(
        status,
        "200",
        "dead-lettered counts as delivered: {}",
        engine.log()
    );
    assert_eq!(lines(&dead), ["{\"a\":1}"], "{}", engine.log());
    engine.stop();
}
