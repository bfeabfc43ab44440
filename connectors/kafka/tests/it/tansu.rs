//! Test support shared by the connector's tests and the app's scale-out test (included there
//! by path): a tansu broker (a Kafka-protocol broker in Rust, `cargo install tansu --locked
//! --version 0.6.0 --features dynostore`: the feature gives it the in-memory storage these tests
//! use; `cargo xtask test` installs it) on a free loopback port, killed by its PID when
//! dropped, and topic creation with tansu's own CLI.
#![allow(dead_code)]

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The tansu version the tests are written against (and `cargo xtask test` installs).
pub const TANSU_VERSION: &str = "0.6.0";

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// The `tansu` binary: `$TANSU`, else on `PATH`, else in `~/.cargo/bin`.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        return p;
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let cargo_bin = home.map(|h| h.join("bin").join("tansu"));
    match cargo_bin {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "tansu is not installed: `cargo install tansu --locked --version {TANSU_VERSION} \
             --features dynostore` (`cargo xtask test` does it), or set TANSU to its path"
        ),
    }
}

/// A tansu broker on 127.0.0.1 with in-memory storage, killed (by its PID) when dropped.
pub struct Tansu {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Tansu {
    /// Starts a broker logging into `dir/tansu.log` and waits until it accepts connections.
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("tansu.log")).unwrap();
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu (cargo install tansu --locked --version 0.6.0 --features dynostore)");
        let mut broker = Self {
            port,
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                let log = broker.log();
                let hint = if log.contains("FeatureNotEnabled") {
                    "this tansu has no in-memory storage: reinstall it with `cargo install tansu \
                     --locked --version 0.6.0 --features dynostore` (`cargo xtask test` does)"
                } else {
                    "see its log"
                };
                panic!("tansu exited ({status}) before listening: {hint}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {port} within 20 s: {}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    /// `127.0.0.1:PORT`, for `brokers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }

    /// Creates `topic` with `partitions` partitions (`tansu topic create`, 30 s at most).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let mut child = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                &partitions.to_string(),
                topic,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tansu topic create");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("`tansu topic create {topic}` did not finish in 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        assert!(
            status.success(),
            "`tansu topic create {topic}` failed ({status}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
