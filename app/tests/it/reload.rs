//! Hot reload through the control socket: `temblor run --control SOCKET` and
//! `temblor plugins reload NAME --control SOCKET`, with real plugin files.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{
    Connector, Deployment, Signal, connector_stat, output, plugin_dir, signal, temp_dir,
};

/// A private copy of the shipped plugins (so a test can replace a file) in `dir/plugins`.
pub(crate) fn private_plugins(dir: &Path) -> PathBuf {
    let out = dir.join("plugins");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(plugin_dir("plugins")).unwrap() {
        let path = e.unwrap().path();
        std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
    }
    out
}

pub(crate) fn temblor_in(dir: &Path, plugins: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_temblor"));
    // Run in the test's folder: no ./target/plugins there, only the private copies load.
    cmd.current_dir(dir)
        .env_remove("TEMBLOR_PLUGIN_PATH")
        .env_remove("TEMBLOR_CONTROL")
        .env("TEMBLOR_LOG", "info")
        .arg("--plugin-dir")
        .arg(plugins);
    cmd
}

/// Ticks every 2 ms, encoded by `codec` into out.txt, one a line.
fn ticks_to_file(codec: &str) -> String {
    Deployment::passthrough(
        Connector::new("tick", "metronome")
            .codec("json")
            .set("interval_ms", 2),
        Connector::file_write("out", Path::new("out.txt")).codec(codec),
    )
    .to_toml()
}

struct Running {
    /// Taken by `stop`; killed on drop otherwise (a failed test leaves no engine behind).
    child: Option<Child>,
    socket: PathBuf,
    dir: PathBuf,
}

impl Running {
    fn start(dir: &Path, plugins: &Path, deployment: &str) -> Self {
        std::fs::write(dir.join("deploy.toml"), deployment).unwrap();
        let socket = dir.join("control.sock");
        let child = temblor_in(dir, plugins)
            .args([
                "run",
                "deploy.toml",
                "--stats-json",
                "stats.json",
                "--control",
            ])
            .arg(&socket)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no control socket"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child: Some(child),
            socket,
            dir: dir.to_owned(),
        }
    }

    fn lines(&self) -> usize {
        std::fs::read_to_string(self.dir.join("out.txt"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Waits until the output has grown by at least `n` lines.
    fn wait_for_more(&self, n: usize) {
        let start = self.lines();
        let started = Instant::now();
        while self.lines() < start + n {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the output stopped growing at {} lines",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn reload(&self, plugins: &Path, name: &str) -> (bool, String, String) {
        let (out, stdout, stderr) = output(
            temblor_in(&self.dir, plugins)
                .args(["plugins", "reload", name, "--control"])
                .arg(&self.socket),
        );
        (out.status.success(), stdout, stderr)
    }

    /// SIGTERM, then, after an exit with success, the log, the stats and the ticks written:
    /// each tick the source emitted is in the output file and counted in by the sink.
    fn finish(self) -> (String, String, Vec<u64>) {
        let dir = self.dir.clone();
        let (status, log, stats) = self.stop();
        assert!(status.success(), "{log}");
        let ids = tick_ids(&dir);
        for (id, count) in [("tick", "events_out"), ("out", "events_in")] {
            assert_eq!(
                connector_stat(&stats, id, count),
                ids.len() as u64,
                "{stats}"
            );
        }
        (log, stats, ids)
    }

    /// SIGTERM, then the exit status, the log and the stats.
    fn stop(mut self) -> (std::process::ExitStatus, String, String) {
        let child = self.child.take().unwrap();
        signal(child.id(), Signal::SIGTERM);
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let stats = std::fs::read_to_string(self.dir.join("stats.json")).unwrap_or_default();
        (out.status, log, stats)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The tick ids in out.txt, in file order.
fn tick_ids(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("out.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let at = line.rfind("\"id\":").unwrap() + 5;
            line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        })
        .collect()
}

fn assert_gapless(ids: &[u64]) {
    assert!(!ids.is_empty());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            *id, i as u64,
            "tick ids lost or repeated around position {i}"
        );
    }
}

#[test]
fn a_codec_is_reloaded_twice_without_losing_or_repeating_events() {
    let dir = temp_dir("reload-codec");
    let plugins = private_plugins(&dir);
    let engine = Running::start(&dir, &plugins, &ticks_to_file("json"));
    engine.wait_for_more(20);
    for _ in 0..2 {
        let (ok, stdout, stderr) = engine.reload(&plugins, "json");
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("reloaded 'json'") && stdout.contains("instance(s) swapped"),
            "{stdout}"
        );
        engine.wait_for_more(20);
    }
    let (log, stats, ids) = engine.finish();
    // json decodes the ticks and encodes them: two instances (source side and sink side).
    assert_eq!(
        log.matches("codec rebuilt from the reloaded plugin")
            .count(),
        4,
        "{log}"
    );
    assert!(log.contains("plugin reloaded"), "{log}");
    assert_gapless(&ids);
    // The stats (the `/status` document) show the reloads: generation 2, and the hash of the
    // copy that runs now.
    let doc = codec_json::decode_slice(stats.trim().as_bytes()).unwrap();
    let json = doc.get("plugins").and_then(|p| p.get("json")).unwrap();
    let field = |k: &str| json.get(k).cloned().unwrap_or_default();
    assert_eq!(field("generation").as_u64(), Some(2), "{stats}");
    assert_eq!(field("sha256").as_str().map(str::len), Some(64), "{stats}");
    assert!(
        field("file").as_str().is_some_and(|f| f.contains("reload")),
        "{stats}"
    );
    // The copies made for the reloads are removed at exit.
    assert!(!dir.join("control.sock").exists());
}

#[test]
fn a_source_is_reloaded_as_a_fresh_instance_and_nothing_in_flight_is_lost() {
    let dir = temp_dir("reload-source");
    let plugins = private_plugins(&dir);
    let engine = Running::start(&dir, &plugins, &ticks_to_file("json"));
    engine.wait_for_more(20);
    let (ok, stdout, stderr) = engine.reload(&plugins, "metronome");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 instance(s) swapped"), "{stdout}");
    engine.wait_for_more(20);
    let (log, _, ids) = engine.finish();
    assert!(
        log.contains("source rebuilt from the reloaded plugin"),
        "{log}"
    );
    // The new metronome counts from 0 again: two gapless runs, one after the other.
    let restart = ids.iter().skip(1).position(|&id| id == 0).unwrap() + 1;
    assert_gapless(&ids[..restart]);
    assert_gapless(&ids[restart..]);
}

#[test]
fn a_file_that_does_not_load_leaves_the_running_version() {
    let dir = temp_dir("reload-bad");
    let plugins = private_plugins(&dir);
    let engine = Running::start(&dir, &plugins, &ticks_to_file("string"));
    engine.wait_for_more(10);
    // Replaced the way builds install files (a new file renamed over the old one): writing
    // into a library that a process has mapped would change its code under it.
    let file = plugins.join("libcodec_string.so");
    std::fs::write(dir.join("garbage.so"), b"not a library").unwrap();
    std::fs::rename(dir.join("garbage.so"), &file).unwrap();
    let (ok, _, stderr) = engine.reload(&plugins, "string");
    assert!(!ok);
    assert!(stderr.contains("libcodec_string.so"), "{stderr}");
    // Still running the old version.
    engine.wait_for_more(10);
    let (ok, _, stderr) = engine.reload(&plugins, "yaml");
    assert!(!ok);
    assert!(
        stderr.contains("uses no plugin named 'yaml'") && stderr.contains("string"),
        "{stderr}"
    );
    let (status, log, _) = engine.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("reload refused"), "{log}");
    assert!(!log.contains("rebuilt from the reloaded plugin"), "{log}");
}

#[test]
fn reload_without_a_running_engine_says_so() {
    let dir = temp_dir("reload-none");
    let (out, _, stderr) = output(
        temblor_in(&dir, &dir)
            .args(["plugins", "reload", "json", "--control"])
            .arg(dir.join("nothing.sock")),
    );
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot connect") && stderr.contains("nothing.sock"),
        "{stderr}"
    );
}
