//! Paths, temp dirs and running the binary.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

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

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A fresh, empty directory for one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("temblor-it-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

/// The lines of an xz file, decompressed by the `xz` tool (not by the code under test).
pub fn xz_lines(path: &Path) -> Vec<String> {
    let out = Command::new("xz").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "xz -dc {}", path.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
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
pub fn file_to_file(codec: &str, input: &Path, out: &Path, errors: &Path) -> String {
    format!(
        r#"
[[connector]]
id = "in"
plugin = "file"
codec = "{codec}"
preprocessors = ["separate"]
config = {{ path = "{}", mode = "read" }}

[[connector]]
id = "out"
plugin = "file"
codec = "json"
postprocessors = ["separate"]
config = {{ path = "{}", mode = "write" }}

[[connector]]
id = "errors"
plugin = "file"
codec = "json"
postprocessors = ["separate"]
config = {{ path = "{}", mode = "write" }}

[[pipeline]]
id = "main"
operators = []

[[connect]]
from = "in"
to = "main"

[[connect]]
from = "main"
to = "out"

[[connect]]
from = "main/err"
to = "errors"
"#,
        input.display(),
        out.display(),
        errors.display()
    )
}

/// A certificate authority and a server certificate it signed, for `localhost` and
/// `127.0.0.1`, written to `dir` as PEM: `(ca.pem, server.pem, server.key)`. A client that
/// trusts `ca.pem` (`curl --cacert`, `openssl s_client -CAfile`, a connector's `tls.ca`)
/// accepts the server.
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "temblor test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// Waits for `child` to exit, at most `limit`.
#[cfg(unix)]
pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
        let mut child = temblor()
            .arg("run")
            .arg(deploy)
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = self.wait_for(what);
            if let Some(addr) = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("addr="))
            {
                return addr.trim_matches('"').parse().unwrap();
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

    /// SIGTERM, then waits for the exit, which must be 0; the whole log.
    pub fn stop(mut self) -> String {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
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
