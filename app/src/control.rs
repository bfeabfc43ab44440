//! The control socket of a running engine (`temblor run --control PATH`), and its client
//! (`temblor plugins reload NAME --control PATH`).
//!
//! The protocol is one line each way over a Unix socket: the client sends `reload NAME`, the
//! engine answers `ok ...` or `error ...`. A reload loads the plugin's file again from a fresh
//! copy (a library opened twice under one path would be the same mapping), checks it like any
//! plugin file (permissions, shim interface, layout, name and kind), and swaps every instance
//! built from the old version at its next batch boundary. Nothing else is stopped.
//!
//! Libraries are never unloaded: every reload leaves the previous copy mapped (a few MiB per
//! reload in a long dev session). The copies live in a private temporary directory that is
//! removed when `temblor run` ends.
//!
//! The socket is created with the user's umask and removed at exit; whoever can connect to it
//! can make the engine load the plugin files it already trusts, nothing else.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use temblor_core::{Plugin, engine::Reloader};
use tracing::{info, warn};

use crate::{
    loader::{self, Permissions},
    pinning::{self, Pins},
};

/// How long a reload waits for the running instances to swap before it answers.
const SWAP_WAIT: Duration = Duration::from_secs(5);

/// The running engine's side: accepts connections on a thread until the process ends.
pub struct Server {
    path: PathBuf,
    copies: PathBuf,
}

impl Server {
    /// Binds `path` (an existing socket file there is replaced, anything else is an error) and
    /// serves reload requests for the plugins `reloader` knows.
    ///
    /// # Errors
    /// The path exists and is not a socket, or it cannot be bound.
    pub fn start(
        path: &Path,
        reloader: Reloader,
        permissions: Permissions,
        pins: Pins,
        hashes: crate::status::Hashes,
    ) -> Result<Self> {
        use std::os::unix::fs::FileTypeExt as _;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                bail!(
                    "control socket {}: the path exists and is not a socket",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot replace the old socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("cannot bind the control socket {}", path.display()))?;
        let copies = std::env::temp_dir().join(format!("temblor-{}-reload", std::process::id()));
        // The files the plugins were first loaded from: what a reload reads again.
        let files: BTreeMap<String, PathBuf> = reloader
            .names()
            .filter_map(|name| {
                let origin = reloader.origin(name)?;
                (origin != "built-in").then(|| (name.to_owned(), PathBuf::from(origin)))
            })
            .collect();
        let state = State {
            reloader,
            files,
            copies: copies.clone(),
            permissions,
            pins,
            hashes,
            serial: AtomicU64::new(0),
        };
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(stream) => state.serve(stream),
                        Err(e) => warn!(error = %e, "control socket: accept failed"),
                    }
                }
            })
            .context("cannot start the control thread")?;
        info!(socket = %path.display(), "control socket ready (temblor plugins reload NAME --control ...)");
        Ok(Self {
            path: path.to_owned(),
            copies,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        // The copies stay mapped until the process ends; removing the files is fine.
        let _ = std::fs::remove_dir_all(&self.copies);
    }
}

struct State {
    reloader: Reloader,
    files: BTreeMap<String, PathBuf>,
    copies: PathBuf,
    permissions: Permissions,
    /// The deployment's `[[plugin]]` pins: a reload is held to them like the start was.
    pins: Pins,
    /// The hashes `/status` reports: each reloaded copy's is added.
    hashes: crate::status::Hashes,
    serial: AtomicU64,
}

impl State {
    fn serve(&self, stream: UnixStream) {
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let answer = match line.trim().split_once(' ') {
            Some(("reload", name)) => match self.reload(name.trim()) {
                Ok(done) => format!("ok {done}"),
                Err(e) => {
                    warn!(plugin = name.trim(), error = %format!("{e:#}"), "reload refused; the running version goes on");
                    format!("error {e:#}")
                }
            },
            _ => format!(
                "error unknown request '{}' (expected: reload NAME)",
                line.trim()
            ),
        };
        let mut stream = &stream;
        let _ = writeln!(stream, "{}", answer.replace('\n', " "));
    }

    fn reload(&self, name: &str) -> Result<String> {
        let started = Instant::now();
        let Some(file) = self.files.get(name) else {
            if self.reloader.names().any(|n| n == name) {
                bail!("plugin '{name}' is built into this binary; reloading needs plugin files");
            }
            bail!(
                "the running deployment uses no plugin named '{name}' (it uses: {})",
                self.reloader.names().collect::<Vec<_>>().join(", ")
            );
        };
        // The file is checked where it is: a copy in a private directory would pass any check.
        if self.permissions == Permissions::Enforce {
            loader::check_permissions(file).map_err(|reason| {
                anyhow::anyhow!(
                    "{reason}; refusing to load it (--allow-insecure-plugins overrides)"
                )
            })?;
        }
        let copy = self.fresh_copy(name, file)?;
        // The copy is what gets loaded, so the copy is what is hashed.
        let sha256 = pinning::sha256_file(&copy)
            .with_context(|| format!("cannot read {}", copy.display()))?;
        self.pins
            .check_loaded(name, &sha256)
            .map_err(|reason| anyhow::anyhow!("{}: {reason}", file.display()))?;
        let loaded = loader::load_file(&copy, self.permissions)
            .map_err(|reason| anyhow::anyhow!("{}: {reason}", file.display()))?;
        let plugin = Plugin::new(loaded.module, copy.display().to_string());
        if plugin.name != name {
            bail!(
                "{} now holds plugin '{}', not '{name}'",
                file.display(),
                plugin.name
            );
        }
        loader::init_logging(loaded.module);
        self.hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(plugin.origin.clone(), sha256);
        let done = self.reloader.reload(plugin, SWAP_WAIT)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        info!(
            plugin = name,
            file = %file.display(),
            instances = done.instances,
            swapped = done.swapped,
            ms = format_args!("{ms:.0}"),
            "plugin reloaded"
        );
        Ok(if done.swapped == done.instances {
            format!(
                "reloaded '{name}' from {}: {} instance(s) swapped in {ms:.0} ms",
                file.display(),
                done.instances
            )
        } else {
            format!(
                "reloaded '{name}' from {}: {} of {} instance(s) swapped in {ms:.0} ms; the others swap at their next batch",
                file.display(),
                done.swapped,
                done.instances
            )
        })
    }

    /// Copies `file` to a path never opened before in this process.
    fn fresh_copy(&self, name: &str, file: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt as _;
        if !self.copies.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.copies)
                .with_context(|| format!("cannot create {}", self.copies.display()))?;
        }
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        let ext = std::env::consts::DLL_EXTENSION;
        let copy = self.copies.join(format!("{name}-{n}.{ext}"));
        std::fs::copy(file, &copy)
            .with_context(|| format!("cannot copy {} to {}", file.display(), copy.display()))?;
        Ok(copy)
    }
}

/// The client: sends one request and returns the engine's answer (`ok ...`).
///
/// # Errors
/// No engine listens there, or it answered `error ...`.
pub fn request(socket: &Path, request: &str) -> Result<String> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot connect to {} (is `temblor run --control {}` running?)",
            socket.display(),
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(SWAP_WAIT + Duration::from_secs(30)))?;
    writeln!(stream, "{request}")?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .context("no answer from the engine")?;
    let answer = answer.trim_end();
    match answer.split_once(' ') {
        Some(("ok", rest)) => Ok(rest.to_owned()),
        Some(("error", rest)) => bail!("{rest}"),
        _ => bail!("unexpected answer from the engine: '{answer}'"),
    }
}
