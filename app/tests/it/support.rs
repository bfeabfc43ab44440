//! Paths, running the binary, and the engine as a child process. What the tests of several
//! crates share (temp dirs, ports, signals, deployments) is in the test kit, `temblor-harness`.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

pub use temblor_harness::process::{Signal, signal, wait_exit};
pub use temblor_harness::{
    TempDir, config,
    deploy::{Connector, Deployment, Pipeline},
    net::free_port,
    process::wait_until,
    root,
    tls::files as tls_files,
};

/// The target directory this test binary was built into (`target/debug/deps/it-*` → `target`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// A plugin directory built by `cargo xtask build-plugins` (`plugins` or `test-plugins`).
pub fn plugin_dir(which: &str) -> PathBuf {
    let dir = target_dir().join(which);
    let has_libraries = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "so"))
        })
        .unwrap_or(false);
    assert!(
        has_libraries,
        "{} holds no plugin libraries: run the tests with `cargo xtask test` (it builds them first)",
        dir.display()
    );
    dir
}

/// A fresh, empty directory for one test, removed when dropped.
pub fn temp_dir(test: &str) -> TempDir {
    TempDir::new(test)
}

/// The binary under test, run from the repository root, with the shipped plugins when it
/// loads plugins (the monolith needs none).
pub fn temblor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_temblor"));
    cmd.current_dir(root())
        .env_remove("TEMBLOR_PLUGIN_PATH")
        .env("TEMBLOR_LOG", "info");
    if !cfg!(feature = "monolith") {
        cmd.arg("--plugin-dir").arg(plugin_dir("plugins"));
    }
    cmd
}

/// Runs to the end and returns the output, with stdout and stderr as text.
pub fn output(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// The lines of an xz file, decompressed with xz2 (not by the code under test).
pub fn xz_lines(path: &Path) -> Vec<String> {
    temblor_harness::xz_text(path)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The lines of a text file; none when it does not exist (yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` holds at least `n` lines (30 s at most); its lines.
pub fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    wait_lines_or(path, n, String::new)
}

/// [`wait_lines`], saying `context()` (a log) when they do not come.
fn wait_lines_or(path: &Path, n: usize, context: impl Fn() -> String) -> Vec<String> {
    let mut got = Vec::new();
    let done = wait_until(Duration::from_secs(30), || {
        got = lines(path);
        got.len() >= n
    });
    assert!(
        done,
        "{} holds {} lines after 30 s, want {n}: {got:?}\n{}",
        path.display(),
        got.len(),
        context()
    );
    got
}

/// One JSON line, parsed by codec-json.
pub fn event(line: &str) -> temblor_shim::Value {
    codec_json::decode_slice(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Two clients' events (JSON lines with `client` 0 or 1, `n`, and `peer` and `stream` from
/// their meta), checked: each client's `n` are `0..lines` in order, and all of a client's
/// events have one `(peer, stream)`, not the other's. `check` sees each event with its client
/// and `n` first. The two clients' `(peer, stream)`.
pub fn two_clients(
    got: &[String],
    lines: usize,
    check: impl Fn(&temblor_shim::Value, usize, u64),
) -> [(String, u64); 2] {
    let mut numbers: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let mut streams: [Vec<(String, u64)>; 2] = [Vec::new(), Vec::new()];
    for line in got {
        // A line whose pieces mixed is no JSON.
        let e = event(line);
        let field = |name: &str| e.get(name).unwrap_or_else(|| panic!("no {name}: {line}"));
        let k = usize::try_from(field("client").as_u64().unwrap()).unwrap();
        let n = field("n").as_u64().unwrap();
        check(&e, k, n);
        numbers[k].push(n);
        let peer = field("peer")
            .as_str()
            .unwrap_or_else(|| panic!("`peer` is not a string: {line}"));
        let stream = field("stream")
            .as_u64()
            .unwrap_or_else(|| panic!("`stream` is not a number: {line}"));
        streams[k].push((peer.to_owned(), stream));
    }
    for k in 0..2 {
        assert_eq!(
            numbers[k],
            (0..lines as u64).collect::<Vec<_>>(),
            "client {k}'s events, in order: {got:?}"
        );
        assert!(
            streams[k].iter().all(|s| *s == streams[k][0]),
            "one peer and one stream for all of client {k}'s events: {:?}",
            streams[k]
        );
    }
    let [a, b] = streams.map(|s| s[0].clone());
    assert_ne!(a, b, "two clients, two streams");
    [a, b]
}

/// A `set` operator copying each of `fields` from the event's meta into the event
/// (`"event.peer" = 'meta.peer'`).
pub fn meta_into_event(fields: &[&str]) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .map(|f| format!("\"event.{f}\" = 'meta.{f}'"))
        .collect();
    format!("{{ set = {{ {} }} }}", pairs.join(", "))
}

/// A server's `tls` table: its certificate and key files.
pub fn server_tls(cert: &Path, key: &Path) -> temblor_shim::Value {
    config(&[
        ("cert", temblor_harness::path_value(cert)),
        ("key", temblor_harness::path_value(key)),
    ])
}

/// The JSON values of a file, one a line (parsed by codec-json, not by the code under test's
/// writer).
pub fn read_values(path: &Path) -> Vec<temblor_shim::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(event)
        .collect()
}

/// The JSON values of an xz file of JSON lines (the shipped data set).
pub fn xz_values(path: &Path) -> Vec<temblor_shim::Value> {
    xz_lines(path).iter().map(|l| event(l)).collect()
}

/// `temblor run DEPLOY --stats-json STATS`, which must succeed; its log.
pub fn run_with_stats(deploy: &Path, stats: &Path) -> String {
    let (status, _, stderr) = output(
        temblor()
            .arg("run")
            .arg(deploy)
            .arg("--stats-json")
            .arg(stats),
    );
    assert!(status.status.success(), "{stderr}");
    stderr
}

/// The count at `path` (`["connectors", "in", "events_out"]`) in the `--stats-json` file
/// `stats`.
pub fn stat_at(stats: &Path, path: &[&str]) -> u64 {
    let text =
        std::fs::read_to_string(stats).unwrap_or_else(|e| panic!("{}: {e}", stats.display()));
    let value = codec_json::decode_slice(text.trim().as_bytes())
        .unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"));
    path.iter()
        .try_fold(&value, |v, key| v.get(key))
        .and_then(temblor_shim::Value::as_u64)
        .unwrap_or_else(|| panic!("stats lack the count {path:?}: {text}"))
}

/// Writes a deployment file into `dir` and returns its path.
pub fn deployment(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("deploy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `connectors.<id>.<field>` of a `--stats-json` text (parsed by codec-json, not by the code
/// under test's own writer).
#[cfg_attr(feature = "monolith", allow(dead_code))]
pub fn connector_stat(stats: &str, id: &str, field: &str) -> u64 {
    let value = codec_json::decode_slice(stats.trim().as_bytes())
        .unwrap_or_else(|e| panic!("stats are not JSON ({e}): {stats}"));
    value
        .get("connectors")
        .and_then(|c| c.get(id))
        .and_then(|c| c.get(field))
        .and_then(temblor_shim::Value::as_u64)
        .unwrap_or_else(|| panic!("stats lack connectors.{id}.{field}: {stats}"))
}

/// `in` (a file read with `codec`, newline-separated) → `main` (no operators) → `out` (a JSON
/// file), and `main/err` → `errors` (a JSON file).
pub fn file_to_file(codec: &str, input: &Path, out: &Path, errors: &Path) -> Deployment {
    Deployment::passthrough(
        Connector::file_read("in", codec, input),
        Connector::file_write("out", out),
    )
    .connector(Connector::file_write("errors", errors))
    .connect("main/err", "errors")
}

/// `in` (a file of JSON lines) → `pipeline` → `out` (a JSON file), and the pipeline's port
/// `port` → a JSON file `side` (a connector named after the port).
pub fn file_pipe(
    input: &Path,
    pipeline: Pipeline,
    out: &Path,
    (port, side): (&str, &Path),
) -> Deployment {
    let from = format!("{}/{port}", pipeline.id());
    Deployment::pipe(
        Connector::file_read("in", "json", input),
        pipeline,
        Connector::file_write("out", out),
    )
    .connector(Connector::file_write(port, side))
    .connect(&from, port)
}

/// `temblor run DEPLOYMENT` with its log collected as it comes: killed when dropped (a failed
/// test leaves nothing behind).
#[cfg(unix)]
pub struct Engine {
    child: std::process::Child,
    log: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
    /// Reads the log; ends at the end of stderr, after the engine exited.
    reader: Option<std::thread::JoinHandle<()>>,
}

#[cfg(unix)]
impl Engine {
    pub fn start(deploy: &Path) -> Self {
        Self::spawn(temblor().arg("run").arg(deploy))
    }

    /// `temblor run DEPLOY --stats-json STATS`.
    pub fn start_with_stats(deploy: &Path, stats: &Path) -> Self {
        Self::spawn(
            temblor()
                .arg("run")
                .arg(deploy)
                .arg("--stats-json")
                .arg(stats),
        )
    }

    /// Runs `cmd` (a `temblor run ...` with its arguments), its log collected.
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let keep = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            log,
            lines,
            reader: Some(reader),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `path` holds at least `n` lines (30 s at most); its lines. When they do not
    /// come, the failure shows the log.
    pub fn wait_lines(&self, path: &Path, n: usize) -> Vec<String> {
        wait_lines_or(path, n, || self.log())
    }

    /// The next log line that says `what` (30 s at most).
    pub fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!("no '{what}' line within 30 s: {}", self.log()),
            }
        }
    }

    /// The `addr=` of the next log line that says `what` (`tcp server listening`).
    pub fn listening(&self, what: &str) -> SocketAddr {
        self.listening_id(what).1.parse().unwrap()
    }

    /// The `id=` and `addr=` of the next log line that says `what` and has both.
    pub fn listening_id(&self, what: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = self.wait_for(what);
            // The id is the host's span's, `connector{id=in}` (no plugin writes it itself).
            let id = line
                .split("connector{id=")
                .nth(1)
                .and_then(|rest| rest.split('}').next())
                .map(|id| id.trim_matches('"').to_owned());
            if let (Some(id), Some(addr)) = (id, field(&line, "addr")) {
                return (id, addr);
            }
            if let Some(addr) = field(&line, "addr") {
                return (String::new(), addr);
            }
            assert!(Instant::now() < deadline, "no address in '{what}' lines");
        }
    }

    /// Waits for the engine to exit on its own (30 s at most), and for the last of its log.
    pub fn wait(&mut self) -> ExitStatus {
        let status = wait_exit(&mut self.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("temblor still running after 30 s: {}", self.log()));
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `signal`.
    pub fn signal(&self, what: Signal) {
        signal(self.child.id(), what);
    }

    /// SIGTERM, then waits for the exit, which must be 0; the whole log.
    pub fn stop(mut self) -> String {
        signal(self.child.id(), Signal::SIGTERM);
        let status = self.wait();
        let log = self.log();
        assert_eq!(
            status.code(),
            Some(0),
            "exit after SIGTERM: {status}: {log}"
        );
        log
    }
}

#[cfg(unix)]
impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=` in a log line, without quotes.
pub fn field(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_owned())
}

/// The ids of the `{"id":N}` lines of an output file (a line cut short by a kill is skipped):
/// what the scale-out tests' instances wrote.
pub fn written_ids(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("{\"id\":")?;
            rest.strip_suffix('}')?.parse().ok()
        })
        .collect()
}

/// The complete lines of a file so far (0 when it does not exist yet).
pub fn line_count(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
        .unwrap_or(0)
}
