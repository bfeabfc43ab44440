//! What a running engine reports about itself: the document of `GET /status`, of
//! `--stats-json` and of `--stats-every` (one and the same), the answer of `GET /health`, and
//! what `GET /metrics` is made from.
//!
//! Everything is read from the engine's atomics when asked; nothing here runs on the engine's
//! threads.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use temblor_core::{Plugin, Stats, engine::Reloader};
use temblor_shim::{Object, Value};

/// SHA-256 of plugin files by their path (the registry's `origin`), shared with the control
/// socket, which adds the copy each hot reload loads.
pub type Hashes = Arc<Mutex<BTreeMap<String, String>>>;

/// One plugin the deployment uses, as it runs now.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub name: String,
    pub kind: &'static str,
    pub version: String,
    pub rustc: String,
    /// The shim interface it was built against.
    pub shim_interface: u32,
    /// The file it was loaded from (after a reload: the private copy), or `built-in`.
    pub file: String,
    pub sha256: Option<String>,
    /// 0 at start-up, one more per hot reload.
    pub generation: u64,
}

/// What the process reports about itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Process {
    pub rss_kb: Option<u64>,
    pub peak_rss_kb: Option<u64>,
    pub open_fds: Option<u64>,
    pub threads: Option<u64>,
    /// Seconds since `temblor run` started (plugins loading included).
    pub uptime_s: f64,
}

/// Everything the API and the stats file report, for one running engine.
#[derive(Debug, Clone)]
pub struct Report {
    pub stats: Arc<Stats>,
    pub reloader: Reloader,
    pub hashes: Hashes,
    /// When the process started.
    pub started: Instant,
}

impl Report {
    /// The plugins the deployment uses, by name.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let hashes = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        self.reloader
            .plugins()
            .into_iter()
            .map(|(p, generation): (Plugin, u64)| PluginInfo {
                kind: p.kind.as_str(),
                shim_interface: p.module.manifest()().shim_interface,
                sha256: hashes.get(&p.origin).cloned(),
                name: p.name,
                version: p.version,
                rustc: p.rustc,
                file: p.origin,
                generation,
            })
            .collect()
    }

    /// RSS, open files, threads and uptime, read now.
    pub fn process(&self) -> Process {
        Process {
            rss_kb: temblor_core::sys::rss_kb(),
            peak_rss_kb: temblor_core::sys::peak_rss_kb(),
            open_fds: temblor_core::sys::open_fds(),
            threads: temblor_core::sys::threads(),
            uptime_s: self.started.elapsed().as_secs_f64(),
        }
    }

    /// Why the deployment is unhealthy: empty while every connector runs.
    pub fn problems(&self) -> Vec<String> {
        self.stats.unhealthy()
    }

    /// The whole document: the engine's counters and states (`elapsed_s`, `connectors`,
    /// `pipelines`), then `healthy`, `problems`, `plugins`, `process`, `peak_rss_kb`,
    /// `version`.
    pub fn to_value(&self) -> Value {
        let mut doc = match self.stats.to_value() {
            Value::Object(o) => o,
            other => [("stats", other)].into_iter().collect(),
        };
        let problems = self.problems();
        doc.insert("healthy", problems.is_empty().into());
        doc.insert(
            "problems",
            problems
                .into_iter()
                .map(Value::from)
                .collect::<Vec<_>>()
                .into(),
        );
        let plugins: Object = self
            .plugins()
            .into_iter()
            .map(|p| {
                let fields: Object = [
                    ("kind", Value::from(p.kind)),
                    ("version", p.version.into()),
                    ("rustc", p.rustc.into()),
                    ("shim_interface", p.shim_interface.into()),
                    ("file", p.file.into()),
                    ("sha256", p.sha256.map_or(Value::Null, Value::from)),
                    ("generation", p.generation.into()),
                ]
                .into_iter()
                .collect();
                (p.name, Value::Object(fields))
            })
            .collect();
        doc.insert("plugins", Value::Object(plugins));
        let p = self.process();
        let opt = |v: Option<u64>| v.map_or(Value::Null, Value::from);
        let process: Object = [
            ("uptime_s", Value::F64(p.uptime_s)),
            ("rss_kb", opt(p.rss_kb)),
            ("open_fds", opt(p.open_fds)),
            ("threads", opt(p.threads)),
        ]
        .into_iter()
        .collect();
        doc.insert("process", Value::Object(process));
        doc.insert("peak_rss_kb", opt(p.peak_rss_kb));
        doc.insert("version", env!("CARGO_PKG_VERSION").into());
        Value::Object(doc)
    }

    /// Writes the document to `path` atomically: a temporary file beside it, then a rename,
    /// so a reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut json = self.to_value().to_json();
        json.push('\n');
        write_atomically(path, json.as_bytes())
    }
}

/// Writes `bytes` to a temporary file in `path`'s directory, then renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot rename {} to {}", tmp.display(), path.display())
    })
}

/// Writes the report to `path` at once, then every `every` until dropped (`--stats-every`).
pub struct Periodic {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Periodic {
    /// Starts the writer thread.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(report: Report, path: PathBuf, every: Duration) -> Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stats-every".into())
            .spawn(move || {
                let mut warned = false;
                // At once (a reader finds the file from the start), then every `every`.
                loop {
                    if let Err(e) = report.write(&path)
                        && !warned
                    {
                        warned = true;
                        tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "--stats-every: cannot write the stats file (only the first failure is logged)");
                    }
                    if !matches!(
                        stopped.recv_timeout(every),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    ) {
                        break;
                    }
                }
            })
            .context("cannot start the --stats-every thread")?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("temblor-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("stats.json")]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
