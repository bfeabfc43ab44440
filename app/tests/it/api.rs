//! `temblor run --api ADDR` against a running engine: `/metrics` (checked with `promtool check
//! metrics`), `/health` (200, and 503 naming a connector that gave up), `/status`,
//! `--stats-every`, a bad `--api`, `--log-format json` with the connector's span, and
//! `temblor top` driven in tmux.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value as Json;

use crate::support::{
    Connector, Deployment, Signal, free_port, output, signal, temblor, temp_dir, wait_exit,
};

/// metronome `tick` (every 5 ms) → `main` → blackhole `sink`.
fn ticks() -> Deployment {
    Deployment::passthrough(
        Connector::new("tick", "metronome").set("interval_ms", 5),
        Connector::new("sink", "blackhole").codec("json"),
    )
}

/// The engine, stopped with SIGTERM (and reaped) when dropped.
struct Running {
    child: Child,
    addr: String,
}

impl Running {
    fn start(mut cmd: Command, file: &Path, extra: &[&str]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = cmd
            .arg("run")
            .arg(file)
            .args(["--api", &addr])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = Self { child, addr };
        running.wait_for(|code, _| code != 0, "the api answers");
        running
    }

    /// `curl -s -w '%{http_code}'`: (status, body).
    fn curl(&self, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// Polls `path` until `ok(status, body)`, for at most 30 s.
    fn wait_for(&self, ok: impl Fn(u16, &str) -> bool, what: &str) -> (u16, String) {
        self.wait_for_path("/health", ok, what)
    }

    fn wait_for_path(
        &self,
        path: &str,
        ok: impl Fn(u16, &str) -> bool,
        what: &str,
    ) -> (u16, String) {
        let since = Instant::now();
        loop {
            let (code, body) = self.curl(path);
            if ok(code, &body) {
                return (code, body);
            }
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "{what}: still {code} {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> bool {
        signal(self.child.id(), Signal::SIGTERM);
        wait_exit(&mut self.child, Duration::from_secs(20))
            .expect("no exit after SIGTERM")
            .success()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(text: &str) -> Json {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn at<'a>(v: &'a Json, path: &[&str]) -> &'a Json {
    path.iter().fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("no {} in {v}", path.join(".")))
    })
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn metrics_health_and_status_of_a_running_engine() {
    let dir = temp_dir("api-running");
    let file = ticks().write(&dir);
    let stats = dir.join("stats.json");
    let engine = Running::start(
        temblor(),
        &file,
        &[
            "--stats-json",
            stats.to_str().unwrap(),
            "--stats-every",
            "0.1",
        ],
    );
    // Running and delivering: some batches written, so the histogram has observations.
    engine.wait_for_path(
        "/metrics",
        |code, body| {
            code == 200
                && body.lines().any(|l| {
                    l.starts_with("temblor_batch_latency_seconds_count{connector=\"sink\"} ")
                        && !l.ends_with(" 0")
                })
        },
        "latency observed at the sink",
    );
    let (code, metrics) = engine.curl("/metrics");
    assert_eq!(code, 200);
    let path = dir.join("metrics.txt");
    std::fs::write(&path, &metrics).unwrap();
    let check = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < '{}'", path.display()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        sample(
            &metrics,
            "temblor_connector_events_out_total{connector=\"tick\"}"
        ) > 0.0
    );
    assert!(
        sample(
            &metrics,
            "temblor_connector_events_in_total{connector=\"sink\"}"
        ) > 0.0
    );
    assert!(
        sample(
            &metrics,
            "temblor_pipeline_events_in_total{pipeline=\"main\"}"
        ) > 0.0
    );
    assert_eq!(
        sample(
            &metrics,
            "temblor_connector_state{connector=\"tick\",role=\"source\",state=\"running\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "temblor_batch_latency_seconds_bucket{connector=\"sink\",le=\"+Inf\"}"
        ),
        sample(
            &metrics,
            "temblor_batch_latency_seconds_count{connector=\"sink\"}"
        )
    );
    assert!(sample(&metrics, "process_resident_memory_bytes") > 1e6);
    assert!(sample(&metrics, "process_threads") >= 4.0);
    assert!(sample(&metrics, "process_open_fds") >= 3.0);
    assert_eq!(sample(&metrics, "temblor_healthy"), 1.0);
    assert!(
        metrics.contains("temblor_plugin_info{plugin=\"metronome\",kind=\"connector\""),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "temblor_plugin_generation{plugin=\"blackhole\"}"),
        0.0
    );

    let (code, health) = engine.curl("/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(at(&json(&health), &["status"]).as_str(), Some("ok"));

    let (code, status) = engine.curl("/status");
    assert_eq!(code, 200);
    let status = json(&status);
    assert_eq!(
        at(&status, &["connectors", "tick", "state"]).as_str(),
        Some("running")
    );
    assert_eq!(
        at(&status, &["connectors", "sink", "sink"]).as_str(),
        Some("running")
    );
    assert!(
        at(&status, &["connectors", "sink", "latency", "count"])
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert_eq!(
        at(&status, &["pipelines", "main", "state"]).as_str(),
        Some("running")
    );
    assert_eq!(at(&status, &["healthy"]), &Json::Bool(true));
    let json_plugin = at(&status, &["plugins", "json"]);
    assert_eq!(at(json_plugin, &["generation"]).as_u64(), Some(0));
    assert_eq!(at(json_plugin, &["kind"]).as_str(), Some("codec"));
    assert!(at(json_plugin, &["shim_interface"]).as_u64().is_some());
    if cfg!(feature = "monolith") {
        assert_eq!(at(json_plugin, &["file"]).as_str(), Some("built-in"));
    } else {
        let sha = at(json_plugin, &["sha256"]).as_str().unwrap_or_default();
        assert_eq!(sha.len(), 64, "{json_plugin}");
    }
    assert!(
        at(&status, &["process", "threads"])
            .as_u64()
            .is_some_and(|n| n >= 4)
    );

    let (code, _) = engine.curl("/nope");
    assert_eq!(code, 404);

    // --stats-every: the file is there while running, whole, and written again.
    let since = Instant::now();
    let first = loop {
        // Written at start-up, then every 0.1 s.
        if let Ok(text) = std::fs::read_to_string(&stats) {
            break text;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "--stats-every wrote no file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let first = at(&json(&first), &["elapsed_s"]).as_f64().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let second = std::fs::read_to_string(&stats).unwrap();
    let second = json(&second);
    assert!(at(&second, &["elapsed_s"]).as_f64().unwrap() > first);
    assert!(
        at(&second, &["plugins", "metronome"])
            .get("version")
            .is_some()
    );

    assert!(engine.stop(), "exit status after SIGTERM");
    // The final write, after the drain: every task finished.
    let last = json(&std::fs::read_to_string(&stats).unwrap());
    assert_eq!(
        at(&last, &["connectors", "tick", "state"]).as_str(),
        Some("finished")
    );
}

#[test]
fn a_bad_api_address_stops_the_start_with_the_flag_named() {
    let dir = temp_dir("api-bad-address");
    let file = ticks().write(&dir);
    let (out, _, err) = output(temblor().arg("run").arg(&file).args(["--api", "nonsense"]));
    assert!(!out.status.success());
    assert!(err.contains("--api 'nonsense'"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (out, _, err) = output(temblor().arg("run").arg(&file).args(["--api", &addr]));
    assert!(!out.status.success());
    assert!(err.contains("cannot listen"), "{err}");
    // Nothing ran: no connector was started.
    assert!(!err.contains("deployment started"), "{err}");
}

#[cfg(not(feature = "monolith"))]
#[test]
fn health_is_503_naming_a_connector_that_gave_up() {
    let dir = temp_dir("api-health-503");
    // `src` fails every pull and gives up after one restart; the ticks keep the engine up.
    let file = ticks()
        .connector(
            Connector::new("src", "faulty")
                .codec("string")
                .set("lines", 1000)
                .set("fail_pull_at", 1)
                .set("fail_pull_times", 1000)
                .line("restart = { backoff_ms = 1, max_backoff_ms = 2, max_restarts = 1 }"),
        )
        .connect("src", "main")
        .write(&dir);
    let mut cmd = temblor();
    cmd.arg("--plugin-dir")
        .arg(crate::support::plugin_dir("test-plugins"));
    let engine = Running::start(cmd, &file, &[]);
    let (_, body) = engine.wait_for(|code, _| code == 503, "unhealthy");
    let health = json(&body);
    assert_eq!(at(&health, &["status"]).as_str(), Some("unhealthy"));
    let problems = at(&health, &["problems"]).to_string();
    assert!(
        problems.contains("connector 'src' (source) is failed"),
        "{problems}"
    );
    let (_, metrics) = engine.curl("/metrics");
    assert_eq!(
        sample(
            &metrics,
            "temblor_connector_state{connector=\"src\",role=\"source\",state=\"failed\"}"
        ),
        1.0
    );
    assert_eq!(sample(&metrics, "temblor_healthy"), 0.0);
    assert!(
        sample(
            &metrics,
            "temblor_connector_restarts_total{connector=\"src\"}"
        ) >= 1.0
    );
    let (_, status) = engine.curl("/status");
    let status = json(&status);
    assert_eq!(
        at(&status, &["connectors", "src", "state"]).as_str(),
        Some("failed")
    );
    assert_eq!(
        at(&status, &["connectors", "tick", "state"]).as_str(),
        Some("running")
    );
    assert!(engine.stop());
}

#[test]
fn json_logs_carry_the_connector_and_pipeline_ids() {
    let dir = temp_dir("api-json-logs");
    let input = dir.join("in.json");
    std::fs::write(&input, "{\"a\":1}\n{\"a\":2}\n").unwrap();
    let text =
        crate::support::file_to_file("json", &input, &dir.join("out.json"), &dir.join("err.json"));
    let file = text.write(&dir);
    let (out, _, err) = output(
        temblor()
            .args(["--log-format", "json", "--log-level", "debug"])
            .arg("run")
            .arg(&file),
    );
    assert!(out.status.success(), "{err}");
    let lines: Vec<Json> = err
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))
        })
        .collect();
    assert!(!lines.is_empty());
    let in_span = |name: &str, id: &str| {
        lines.iter().any(|l| {
            l.get("span").is_some_and(|s| {
                s.get("name").and_then(|n| n.as_str()) == Some(name)
                    && s.get("id").and_then(|n| n.as_str()) == Some(id)
            }) && l.get("fields").and_then(|f| f.get("message")).is_some()
        })
    };
    assert!(in_span("connector", "in"), "{err}");
    assert!(in_span("connector", "out"), "{err}");
    assert!(in_span("pipeline", "main"), "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l.get("level").is_some() && l.get("timestamp").is_some()),
        "{err}"
    );
}

/// A tmux server of this test's own (`-L`), killed when dropped.
struct Tmux(String);

impl Tmux {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.0]);
        cmd
    }

    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "top"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn alive(&self) -> bool {
        self.cmd()
            .args(["has-session", "-t", "top"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

#[test]
fn top_shows_the_connectors_and_quits_on_q() {
    let dir = temp_dir("api-top");
    let file = ticks().write(&dir);
    let engine = Running::start(temblor(), &file, &[]);
    let tmux = Tmux(format!("temblor-it-{}", std::process::id()));
    let top = format!(
        "'{}' top --api {} --interval-ms 300",
        env!("CARGO_BIN_EXE_temblor"),
        engine.addr
    );
    let started = tmux
        .cmd()
        .args(["new-session", "-d", "-s", "top", "-x", "120", "-y", "40"])
        .arg(&top)
        .status()
        .unwrap();
    assert!(started.success(), "tmux new-session");
    // Two polls at least, so the rates are figures.
    let since = Instant::now();
    let screen = loop {
        let screen = tmux.capture();
        let tick_row = screen.lines().find(|l| l.contains("tick"));
        let shown = tick_row.is_some_and(|l| l.contains("running"))
            && screen.contains("sink")
            && screen.contains("main")
            && screen.contains("healthy");
        if shown && since.elapsed() > Duration::from_secs(1) {
            break screen;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "top did not show the deployment:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::fs::write(dir.join("top.txt"), &screen).unwrap();
    if let Ok(path) = std::env::var("TEMBLOR_TOP_CAPTURE") {
        std::fs::write(path, &screen).unwrap();
    }
    // The tick row: id, state, then events/s in and out: out/s is a figure above 0.
    let row: Vec<&str> = screen
        .lines()
        .find(|l| l.contains("tick") && l.contains("running"))
        .unwrap()
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect();
    let out_s: f64 = row
        .iter()
        .position(|w| *w == "running")
        .and_then(|i| row.get(i + 2))
        .and_then(|w| w.trim_end_matches('k').parse().ok())
        .unwrap_or_else(|| panic!("no events/s in {row:?}:\n{screen}"));
    assert!(out_s > 0.0, "{screen}");
    assert!(
        screen.contains("IN/s") && screen.contains("ERRORS"),
        "{screen}"
    );
    let sent = tmux
        .cmd()
        .args(["send-keys", "-t", "top", "q"])
        .status()
        .unwrap();
    assert!(sent.success());
    let since = Instant::now();
    while tmux.alive() {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "top still runs after q:\n{}",
            tmux.capture()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(engine.stop());
}
