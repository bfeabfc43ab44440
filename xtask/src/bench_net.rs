//! The network scenarios of `cargo xtask bench`: real sockets, real clients, the release
//! engine with its plugins loaded from files.
//!
//! - `http-ingest`: wrk POSTs the data set's lines to `http_server` → `blackhole`, and to
//!   `bare-hyper` (crate `perf`: hyper alone, reading each body and answering 202) in the same
//!   run, alternating; the figure is the engine's requests/s over hyper's (target ≥ 0.8).
//! - `http-connections`: wrk holds 10,000 keep-alive connections to `http_server`
//!   (`max_connections = 20000`); every request must be answered 2xx with no socket error, and
//!   the engine's peak RSS stay ≤ 150 MB. `bare-hyper` under the same load is the baseline
//!   column: what hyper alone needs for those connections.
//! - `tcp-ingest`: `net-load blast` (4 socket clients) sends NDJSON to `tcp_server` →
//!   `separate` → json → `blackhole`; MB/s over a file passthrough's measured in the same run,
//!   alternating (`file` reading the same lines → `separate` → json → `blackhole`: the same work
//!   but the socket; target ≥ 0.9). The ratio to the `passthrough-json` scenario (the `bench`
//!   source, whose lines need no framing) is reported beside it.
//! - `nats-ingest`: JetStream → `nats` source → json → `blackhole`, in messages/s, against
//!   `nats-bench drain` (crate `perf`: a raw consume-and-ack loop on the connector's own
//!   client, the same batch size, every message acked) in the same run, alternating; both
//!   timed alike from the server's side (`nats-bench watch`: the consumer's ack floor from its
//!   first ack to the last message). The bench starts its own `nats-server` (free loopback
//!   port, a store under target/bench) and fills one stream; each run drains it through a
//!   fresh durable consumer (target ≥ 0.8).
//! - `tcp-latency`: `net-load latency` sends 1,000 events/s through `tcp_server` → pipeline →
//!   `tcp_client` and times each one's way back (target p99 ≤ 1 ms).

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::{
    deploy,
    util::{free_port, project_root, target_dir},
};

/// What one network scenario measured.
#[derive(Debug, Clone)]
pub struct NetResult {
    pub scenario: &'static str,
    /// What the figure is, with its unit.
    pub figure: String,
    pub value: f64,
    /// What the target is compared against (the baseline's value), if any.
    pub baseline: Option<f64>,
    /// The number the target is about (a ratio, MB, ms).
    pub checked: f64,
    pub target: &'static str,
    pub pass: bool,
    /// Per-run detail for the report.
    pub detail: serde_json::Value,
}

/// The runs of a scenario measured beside a baseline: the engine's figure, the baseline's,
/// and their ratio, per run.
#[derive(Debug, Default)]
struct Paired {
    engine: Vec<f64>,
    baseline: Vec<f64>,
    ratios: Vec<f64>,
}

impl Paired {
    fn push(&mut self, engine: f64, baseline: f64) {
        self.engine.push(engine);
        self.baseline.push(baseline);
        self.ratios.push(engine / baseline);
    }

    /// The result: the medians, passing when the median ratio is at least `floor` (`target`
    /// says so); `detail` gets `ratios`.
    fn result(
        &self,
        (scenario, figure): (&'static str, &str),
        (floor, target): (f64, &'static str),
        mut detail: serde_json::Value,
    ) -> NetResult {
        let ratio = median(&self.ratios);
        detail["ratios"] = serde_json::json!(self.ratios);
        NetResult {
            scenario,
            figure: figure.into(),
            value: median(&self.engine),
            baseline: Some(median(&self.baseline)),
            checked: ratio,
            target,
            pass: ratio >= floor,
            detail,
        }
    }
}

/// The binaries the scenarios run.
pub struct Bins<'a> {
    pub temblor: &'a Path,
    pub plugin_dir: &'a Path,
    pub bare_hyper: &'a Path,
    pub net_load: &'a Path,
    pub nats_bench: &'a Path,
}

/// Waits until something accepts on `addr` (the engine is up), for at most 20 s.
fn wait_listening(addr: SocketAddr, child: &mut Child) -> Result<()> {
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("the engine exited before it listened on {addr} ({status})");
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("nothing listens on {addr} after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The first line of every deployment written here.
const HEADER: &str = "# Written by `cargo xtask bench`.";

/// The codec of every connector here.
const JSON: &str = r#"codec = "json""#;

/// One event a line: the source's preprocessors, the sink's postprocessors.
const SEPARATE: (&str, &str) = (
    r#"preprocessors = ["separate"]"#,
    r#"postprocessors = ["separate"]"#,
);

/// A running engine with a deployment and a stats file.
struct Engine {
    child: Child,
    stats: PathBuf,
}

impl Engine {
    fn start(bins: &Bins<'_>, name: &str, deployment: &str) -> Result<Self> {
        let dir = target_dir().join("bench");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, deployment)?;
        let stats = dir.join(format!("{name}-stats.json"));
        let _ = std::fs::remove_file(&stats);
        let child = Command::new(bins.temblor)
            .current_dir(&dir)
            .args(["--log-level", "warn", "--plugin-dir"])
            .arg(bins.plugin_dir)
            .arg("run")
            .arg(&file)
            .arg("--stats-json")
            .arg(&stats)
            .spawn()
            .with_context(|| format!("cannot start {}", bins.temblor.display()))?;
        Ok(Self { child, stats })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, wait, and read the stats it wrote.
    fn stop(mut self) -> Result<Stats> {
        crate::util::terminate(self.child.id()).context("cannot signal the engine")?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the engine failed ({status})");
        }
        let text = std::fs::read_to_string(&self.stats)
            .with_context(|| format!("no stats in {}", self.stats.display()))?;
        serde_json::from_str(&text).with_context(|| format!("bad stats: {text}"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Deserialize)]
struct Stats {
    connectors: std::collections::BTreeMap<String, ConnectorStats>,
    peak_rss_kb: Option<u64>,
    elapsed_s: Option<f64>,
}

#[derive(Deserialize)]
struct ConnectorStats {
    bytes_in: u64,
    events_out: u64,
}

/// What wrk printed.
#[derive(Debug, Default, Clone, Copy)]
struct Wrk {
    requests_s: f64,
    requests: u64,
    socket_errors: u64,
    non_2xx: u64,
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            w.requests_s = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            w.socket_errors = v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        } else if line.contains("requests in") {
            w.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    w
}

/// The lines wrk POSTs, one per request, and the Lua script that cycles through them.
fn wrk_script(data: &str) -> Result<PathBuf> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let lines = temblor_lines(data)?;
    let bodies = dir.join("http-bodies.json");
    let mut text = String::new();
    for line in lines.iter().take(10_000) {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&bodies, text)?;
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            r#"-- Written by `cargo xtask bench`: POSTs the lines of {bodies}, one per request.
local bodies = {{}}
for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/", {{ ["Content-Type"] = "application/json" }}, bodies[i])
end
"#,
            bodies = bodies.display()
        ),
    )?;
    Ok(script)
}

/// The data set's lines (xz-compressed JSON lines).
fn temblor_lines(data: &str) -> Result<Vec<String>> {
    use std::io::Read as _;
    let file = std::fs::File::open(project_root().join(data))
        .with_context(|| format!("cannot open {data}"))?;
    let mut text = String::new();
    xz2::read::XzDecoder::new(file)
        .read_to_string(&mut text)
        .with_context(|| format!("{data} is not xz-compressed text"))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn wrk(args: &[String]) -> Result<Wrk> {
    let out = Command::new("wrk")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context(
            "cannot run wrk: install it (`apt-get install wrk`, or `cargo xtask test` installs it)",
        )?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    Ok(parse_wrk(&text))
}

fn http_deployment(port: u16, max_connections: usize) -> String {
    let config =
        format!("config = {{ url = \"127.0.0.1:{port}\", max_connections = {max_connections} }}");
    deploy::passthrough(
        HEADER,
        &deploy::connector("in", "http_server", &[JSON, &config]),
        &deploy::connector("out", "blackhole", &[JSON]),
        "[]",
    )
}

fn median(v: &[f64]) -> f64 {
    crate::compare_compile_times::median(v)
}

/// `http-ingest`: engine and bare hyper under the same wrk load, alternating.
pub fn http_ingest(bins: &Bins<'_>, data: &str, seconds: f64, runs: usize) -> Result<NetResult> {
    let script = wrk_script(data)?;
    let load = |port: u16| -> Vec<String> {
        vec![
            "-t1".into(),
            "-c64".into(),
            format!("-d{}s", seconds.ceil() as u64),
            "-s".into(),
            script.display().to_string(),
            format!("http://127.0.0.1:{port}/"),
        ]
    };
    let mut paired = Paired::default();
    for i in 0..runs {
        eprintln!("http-ingest run {}/{runs}", i + 1);
        let port = free_port()?;
        let mut engine = Engine::start(bins, "http-ingest", &http_deployment(port, 1024))?;
        wait_listening(([127, 0, 0, 1], port).into(), &mut engine.child)?;
        let e = wrk(&load(port))?;
        let stats = engine.stop()?;
        let events = stats.connectors.get("in").map_or(0, |c| c.events_out);
        if e.socket_errors > 0 || e.non_2xx > 0 || events == 0 {
            bail!("http-ingest: the engine answered badly: {e:?}, {events} events");
        }
        let (mut hyper, port) = bare_hyper(bins)?;
        let h = wrk(&load(port));
        let _ = hyper.kill();
        let _ = hyper.wait();
        let h = h?;
        paired.push(e.requests_s, h.requests_s);
    }
    Ok(paired.result(
        ("http-ingest", "requests/s"),
        (0.8, "≥ 0.8× bare hyper"),
        serde_json::json!({ "engine_requests_s": paired.engine, "bare_hyper_requests_s": paired.baseline }),
    ))
}

/// Starts `bare-hyper` on a free port: the child and its port.
fn bare_hyper(bins: &Bins<'_>) -> Result<(Child, u16)> {
    use std::io::BufRead;
    let mut hyper = Command::new(bins.bare_hyper)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start bare-hyper")?;
    let mut line = String::new();
    std::io::BufReader::new(hyper.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let port = line.trim().rsplit(':').next().unwrap_or("0").parse();
    match port {
        Ok(port) => Ok((hyper, port)),
        Err(e) => {
            let _ = hyper.kill();
            let _ = hyper.wait();
            bail!("bare-hyper printed no address ({line:?}): {e}")
        }
    }
}

/// The most resident memory (kB) and threads `pid` shows, sampled every 100 ms for `for_s`
/// seconds or until it is gone.
fn sample_peak(pid: u32, for_s: f64) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut rss, mut threads) = (0, 0);
        let until = Instant::now() + Duration::from_secs_f64(for_s);
        while Instant::now() < until {
            let (r, t) = rss_threads(pid);
            if r == 0 {
                break;
            }
            rss = rss.max(r);
            threads = threads.max(t);
            std::thread::sleep(Duration::from_millis(100));
        }
        (rss, threads)
    })
}

/// Resident memory and threads of `pid` now, from /proc.
fn rss_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

/// `http-connections`: 10,000 keep-alive connections at once.
pub fn http_connections(bins: &Bins<'_>, data: &str, seconds: f64) -> Result<NetResult> {
    const CONNECTIONS: usize = 10_000;
    let script = wrk_script(data)?;
    let port = free_port()?;
    let mut engine = Engine::start(bins, "http-connections", &http_deployment(port, 20_000))?;
    wait_listening(([127, 0, 0, 1], port).into(), &mut engine.child)?;
    let pid = engine.pid();
    let sampler = sample_peak(pid, seconds.max(5.0) + 10.0);
    eprintln!("http-connections: {CONNECTIONS} connections");
    let load = |port: u16| -> Vec<String> {
        vec![
            "-t2".into(),
            format!("-c{CONNECTIONS}"),
            format!("-d{}s", seconds.max(5.0).ceil() as u64),
            "--timeout".into(),
            "10s".into(),
            "-s".into(),
            script.display().to_string(),
            format!("http://127.0.0.1:{port}/"),
        ]
    };
    let w = wrk(&load(port))?;
    let stats = engine.stop()?;
    let (sampled_rss, threads) = sampler.join().unwrap_or((0, 0));
    // hyper alone, under the same load: what the connections cost without the engine.
    let (mut hyper, hyper_port) = bare_hyper(bins)?;
    let hyper_sampler = sample_peak(hyper.id(), seconds.max(5.0) + 10.0);
    let h = wrk(&load(hyper_port));
    let _ = hyper.kill();
    let _ = hyper.wait();
    let h = h?;
    let (hyper_kb, _) = hyper_sampler.join().unwrap_or((0, 0));
    let hyper_mb = hyper_kb as f64 / 1024.0;
    let peak_kb = stats.peak_rss_kb.unwrap_or(sampled_rss).max(sampled_rss);
    let peak_mb = peak_kb as f64 / 1024.0;
    let events = stats.connectors.get("in").map_or(0, |c| c.events_out);
    let pass = peak_mb <= 150.0 && w.socket_errors == 0 && w.non_2xx == 0 && w.requests > 0;
    Ok(NetResult {
        scenario: "http-connections",
        figure: format!("peak RSS MB with {CONNECTIONS} connections"),
        value: peak_mb,
        baseline: Some(hyper_mb),
        checked: peak_mb,
        target: "≤ 150 MB, every request answered 2xx, no socket error",
        pass,
        detail: serde_json::json!({
            "connections": CONNECTIONS, "requests": w.requests, "requests_s": w.requests_s,
            "socket_errors": w.socket_errors, "non_2xx": w.non_2xx, "events": events,
            "peak_rss_kb": peak_kb, "max_threads": threads,
            "bare_hyper_peak_rss_kb": hyper_kb, "bare_hyper_requests_s": h.requests_s,
        }),
    })
}

/// `tcp-ingest`: socket clients into tcp_server, against the passthrough-json MB/s.
pub fn tcp_ingest(
    bins: &Bins<'_>,
    data: &str,
    seconds: f64,
    runs: usize,
    passthrough_mb_s: Option<f64>,
) -> Result<NetResult> {
    let big = repeated_lines(data, 256 << 20)?;
    let mut paired = Paired::default();
    for i in 0..runs {
        eprintln!("tcp-ingest run {}/{runs}", i + 1);
        let port = free_port()?;
        let deployment = ndjson_to_blackhole(
            "tcp_server",
            &format!("config = {{ url = \"127.0.0.1:{port}\" }}"),
        );
        let mut engine = Engine::start(bins, "tcp-ingest", &deployment)?;
        wait_listening(([127, 0, 0, 1], port).into(), &mut engine.child)?;
        let out = Command::new(bins.net_load)
            .args(["blast", &format!("127.0.0.1:{port}")])
            .arg(project_root().join(data))
            .args(["--clients", "4", "--seconds", &seconds.to_string()])
            .output()
            .context("cannot run net-load")?;
        if !out.status.success() {
            bail!(
                "net-load blast failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let blast: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let elapsed = blast["elapsed_s"].as_f64().unwrap_or(seconds);
        let stats = engine.stop()?;
        let bytes = stats.connectors.get("in").map_or(0, |c| c.bytes_in);
        let tcp = bytes as f64 / 1e6 / elapsed;

        // The same lines from a file, framed and decoded the same way, until it is read.
        let deployment = ndjson_to_blackhole(
            "file",
            &format!(
                "config = {{ path = \"{}\", mode = \"read\" }}",
                big.display()
            ),
        );
        let mut engine = Engine::start(bins, "tcp-ingest-file", &deployment)?;
        let status = engine.child.wait()?;
        if !status.success() {
            bail!("the file passthrough failed ({status})");
        }
        let text = std::fs::read_to_string(&engine.stats)
            .with_context(|| format!("no stats in {}", engine.stats.display()))?;
        let stats: Stats =
            serde_json::from_str(&text).with_context(|| format!("bad stats: {text}"))?;
        let bytes = stats.connectors.get("in").map_or(0, |c| c.bytes_in);
        let file = bytes as f64 / 1e6 / stats.elapsed_s.context("no elapsed_s in the stats")?;
        paired.push(tcp, file);
    }
    let value = median(&paired.engine);
    Ok(paired.result(
        ("tcp-ingest", "MB/s"),
        (0.9, "≥ 0.9× file passthrough"),
        serde_json::json!({
            "mb_s": paired.engine, "clients": 4, "file_passthrough_mb_s": paired.baseline,
            "passthrough_json_mb_s": passthrough_mb_s,
            "over_passthrough_json": passthrough_mb_s.map(|p| value / p),
        }),
    ))
}

/// A deployment: the source `plugin` (with its `config` line) → `separate` → json → empty
/// pipeline → json → `separate` → `blackhole`.
fn ndjson_to_blackhole(plugin: &str, config: &str) -> String {
    deploy::passthrough(
        HEADER,
        &deploy::connector("in", plugin, &[JSON, SEPARATE.0, config]),
        &deploy::connector("out", "blackhole", &[JSON, SEPARATE.1]),
        "[]",
    )
}

/// `data`'s lines repeated into a file of at least `size` bytes (written once, reused).
fn repeated_lines(data: &str, size: usize) -> Result<PathBuf> {
    let path = target_dir().join("bench").join("tcp-ingest-lines.json");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= size as u64) {
        return Ok(path);
    }
    let mut one = String::new();
    for line in temblor_lines(data)? {
        one.push_str(&line);
        one.push('\n');
    }
    let copies = size.div_ceil(one.len().max(1));
    std::fs::write(&path, one.repeat(copies))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A `nats-server -js` of the bench's own: killed by its PID and its store removed when
/// dropped.
struct NatsServer {
    child: Child,
    store: PathBuf,
    addr: String,
}

impl NatsServer {
    fn start() -> Result<Self> {
        let port = free_port()?;
        let store = target_dir().join("bench").join("nats-ingest-store");
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store)?;
        let log = std::fs::File::create(target_dir().join("bench").join("nats-server.log"))?;
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context(
                "cannot start nats-server: install it (`apt-get install nats-server`, or `cargo xtask test` installs it)",
            )?;
        let mut server = Self {
            child,
            store,
            addr: format!("127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(&server.addr).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("nats-server exited at start ({status}): see target/bench/nats-server.log");
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("nats-server does not listen on {} after 20 s", server.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Runs `nats-bench` with `args` and reads the JSON it prints.
fn nats_bench(bins: &Bins<'_>, args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(bins.nats_bench)
        .args(args)
        .output()
        .context("cannot run nats-bench")?;
    if !out.status.success() {
        bail!(
            "nats-bench {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("nats-bench printed no JSON")
}

/// `nats-ingest`: a JetStream stream drained by the engine (nats → blackhole) and by the raw
/// consume-and-ack loop, alternating, each through its own fresh durable consumer.
pub fn nats_ingest(bins: &Bins<'_>, data: &str, seconds: f64, runs: usize) -> Result<NetResult> {
    /// The connector's defaults, given to both.
    const BATCH: usize = 256;
    const MAX_ACK_PENDING: u64 = 1024;
    // About `seconds` at ~100,000 messages/s.
    let n = ((seconds * 100_000.0) as u64).max(50_000);
    let server = NatsServer::start()?;
    let addr = server.addr.as_str();
    let data = project_root().join(data).display().to_string();
    eprintln!("nats-ingest: filling stream BENCH with {n} messages");
    let filled = nats_bench(
        bins,
        &["fill", addr, "BENCH", "bench.in", &data, &n.to_string()],
    )?;
    let n_s = n.to_string();
    let watch = |consumer: &str| -> Result<f64> {
        let w = nats_bench(
            bins,
            &["watch", addr, "BENCH", consumer, &n_s, "--timeout", "300"],
        )?;
        w["messages_s"]
            .as_f64()
            .context("nats-bench watch printed no messages_s")
    };
    let mut paired = Paired::default();
    for i in 0..runs {
        eprintln!("nats-ingest run {}/{runs}", i + 1);
        let consumer = format!("engine{i}");
        let config = format!(
            "config = {{ servers = [\"{addr}\"], stream = \"BENCH\", consumer = \"{consumer}\", \
             batch = {BATCH}, max_ack_pending = {MAX_ACK_PENDING} }}"
        );
        let deployment = deploy::passthrough(
            HEADER,
            &deploy::connector("in", "nats", &[JSON, &config]),
            &deploy::connector("out", "blackhole", &[JSON]),
            "[]",
        );
        let engine = Engine::start(bins, "nats-ingest", &deployment)?;
        let e = watch(&consumer)?;
        let stats = engine.stop()?;
        let events = stats.connectors.get("in").map_or(0, |c| c.events_out);
        if events < n {
            bail!("nats-ingest: the engine's source counted {events} events of {n}");
        }
        let consumer = format!("raw{i}");
        let mut drain = Command::new(bins.nats_bench)
            .args(["drain", addr, "BENCH", &consumer, &n_s])
            .args(["--batch", &BATCH.to_string()])
            .args(["--max-ack-pending", &MAX_ACK_PENDING.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .context("cannot run nats-bench drain")?;
        let r = watch(&consumer);
        let _ = drain.kill();
        let _ = drain.wait();
        let r = r?;
        paired.push(e, r);
    }
    drop(server);
    Ok(paired.result(
        ("nats-ingest", "messages/s"),
        (0.8, "≥ 0.8× raw consume-and-ack"),
        serde_json::json!({
            "messages": n, "batch": BATCH, "max_ack_pending": MAX_ACK_PENDING,
            "fill": filled, "engine_messages_s": paired.engine, "raw_messages_s": paired.baseline,
        }),
    ))
}

/// `tcp-latency`: 1,000 events/s through tcp_server → pipeline → tcp_client.
pub fn tcp_latency(bins: &Bins<'_>, seconds: f64) -> Result<NetResult> {
    let (p_in, p_out) = (free_port()?, free_port()?);
    let url = |port: u16| format!("config = {{ url = \"127.0.0.1:{port}\" }}");
    let deployment = deploy::passthrough(
        HEADER,
        &deploy::connector("in", "tcp_server", &[JSON, SEPARATE.0, &url(p_in)]),
        &deploy::connector("out", "tcp_client", &[JSON, SEPARATE.1, &url(p_out)]),
        "[]",
    );
    // The probe listens first, so the engine's client finds it.
    let probe = Command::new(bins.net_load)
        .args([
            "latency",
            &format!("127.0.0.1:{p_in}"),
            &format!("127.0.0.1:{p_out}"),
        ])
        .args(["--rate", "1000", "--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run net-load")?;
    std::thread::sleep(Duration::from_millis(200));
    let engine = Engine::start(bins, "tcp-latency", &deployment)?;
    let out = probe.wait_with_output()?;
    let _ = engine.stop();
    if !out.status.success() {
        bail!("net-load latency failed");
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let p99_ms = r["p99_us"].as_f64().unwrap_or(f64::MAX) / 1000.0;
    let counted = r["received"].as_u64().unwrap_or(0);
    let expected = r["sent"].as_u64().unwrap_or(0) - r["warmup"].as_u64().unwrap_or(0);
    Ok(NetResult {
        scenario: "tcp-latency",
        figure: "p99 ms at 1,000 events/s".into(),
        value: p99_ms,
        baseline: None,
        checked: p99_ms,
        target: "p99 ≤ 1 ms, none lost",
        pass: p99_ms <= 1.0 && counted == expected,
        detail: r,
    })
}

/// The table of the network scenarios.
pub fn table(results: &[NetResult]) -> String {
    let mut out = String::from(
        "| scenario | figure | value | baseline | checked | target | holds |\n| --- | --- | ---: | ---: | ---: | --- | --- |\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {} | {:.3} | {} | {} |\n",
            r.scenario,
            r.figure,
            r.value,
            r.baseline.map_or("-".to_owned(), |b| format!("{b:.2}")),
            r.checked,
            r.target,
            if r.pass { "yes" } else { "**no**" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\n  52000 requests in 2.00s, 3.1MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 5\nRequests/sec:  25990.10\n";
        let w = parse_wrk(out);
        assert_eq!(w.requests, 52_000);
        assert_eq!(w.socket_errors, 3);
        assert_eq!(w.non_2xx, 5);
        assert!((w.requests_s - 25_990.10).abs() < 1e-6);
    }
}
