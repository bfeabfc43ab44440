//! The `unix_server` connector: listens on a Unix stream socket; each client connection is a
//! stream of its own.
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor creates the
//! socket file at `path` with the permissions `mode` (it is bound under a temporary name,
//! given its mode, then renamed into place, so no client can connect before the mode is set),
//! so a problem is reported when the engine starts:
//! - a socket file left by a process that is gone (nothing accepts on it: connecting is
//!   refused) is **stale**: it is removed and replaced;
//! - a socket that something accepts on is **live**: an `Io` error naming the path (two
//!   servers never share a path);
//! - anything else at `path` (a regular file, a folder) is left alone: a `Config` error.
//!
//! When the source is dropped (the engine stops, restarts or reloads it) every client is
//! closed and the socket file is removed (unless it was replaced by someone else meanwhile).
//!
//! Up to `max_connections` clients are served at once; one more is closed at once, with a
//! warning in the log. Each accepted connection is a stream (see `docs/delivery.md`):
//! `start_stream` with its metadata when it is accepted, every read from it (a raw chunk of at
//! most `max_frame` bytes, cut wherever the read fell) as a chunk of that stream, and
//! `end_stream` when the client closes or reading it fails. The server does not split
//! anything: framing is the connector's `preprocessors`, which the engine runs per connection,
//! so with `separate` lines of clients writing at the same time never mix, and a client's last
//! line without a separator is one last frame when it closes.
//!
//! Network tasks run on the plugin's tokio runtime and hand what they read to `pull` through
//! a bounded queue that wakes the engine: `pull` never waits when the engine takes its wake-up
//! (it returns `Idle` at once when nothing is there), and waits at most 100 ms otherwise. When
//! the engine is slower than the clients the queue fills, the tasks stop reading, and the
//! clients' writes block. The source never ends by itself.
//!
//! ## Config
//! - `path` (string, required): the socket file, relative to the engine's working directory
//!   or absolute; its folder must exist. Unix limits the path to 107 bytes.
//! - `mode` (string, default `"0600"`): the socket file's permissions, in octal (`"0660"` lets
//!   the file's group connect too). At most `"0777"`.
//! - `max_connections` (integer, default 64, at least 1): clients served at once.
//! - `max_frame` (integer, default 65536, 1 to 16777216): the most bytes read from a client at
//!   once, so the largest chunk handed over.
//!
//! ## Metadata
//! Every event from a connection has:
//! - `meta.peer` (string): `"PATH#N"`, the socket's path and the number of the connection
//!   (1, 2, ... in the order accepted: Unix clients have no address of their own);
//! - `meta.connector` and `meta.stream` (the connection's stream id: the same for all of one
//!   client's events, different for each client), set by the engine.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "local"
//! plugin = "unix_server"
//! codec = "json"
//! preprocessors = [{ name = "separate", separator = "\n" }]
//! config = { path = "/run/temblor/ingest.sock", mode = "0660", max_connections = 16 }
//!
//! [[pipeline]]
//! id = "main"
//! operators = [{ set = { "event.client" = 'meta.peer' } }]
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "events.json", mode = "write" }
//!
//! [[connect]]
//! from = "local"
//! to = "main"
//!
//! [[connect]]
//! from = "main"
//! to = "out"
//! ```

use std::{
    io,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use temblor_net::{
    acceptor::{self, Listener, Options, Refuse},
    check,
    feed::{ChunkServer, Intake},
};
use temblor_shim::{
    ErrorKind, Notify, PluginError, Pull, Setup, Source, SourceBatch, serde::Deserialize, tracing,
};

/// How long open connections get to end when the source stops.
const GRACE: Duration = Duration::from_millis(500);

/// How the source takes in what the connection tasks read: 64 messages (stream starts, chunks,
/// ends) queued ahead of `pull`, at most 1024 of them or about 1 MiB per pull, a 100 ms wait
/// for input when the engine gave no wake-up.
const INTAKE: Intake = Intake::new("unix acceptor", 64, GRACE);

/// The largest `max_frame` accepted.
pub const MAX_FRAME_LIMIT: usize = 16 * 1024 * 1024;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The socket file.
    pub path: PathBuf,
    /// Its permissions, in octal.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Clients served at once.
    #[serde(default = "acceptor::default_max_connections")]
    pub max_connections: usize,
    /// The largest chunk read.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
}

fn default_mode() -> String {
    "0600".to_owned()
}

fn default_max_frame() -> usize {
    64 * 1024
}

impl Config {
    /// Checks the values serde cannot; returns the mode.
    fn validate(&self) -> Result<u32, PluginError> {
        if self.path.as_os_str().is_empty() {
            return Err(PluginError::config(format_args!(
                "`path` must name the socket file"
            )));
        }
        check::at_least_one("max_connections", self.max_connections)?;
        check::in_range("max_frame", self.max_frame, MAX_FRAME_LIMIT)?;
        parse_mode(&self.mode).ok_or_else(|| {
            PluginError::config(format_args!(
                "`mode` must be octal permissions from \"0000\" to \"0777\" (e.g. \"0660\"), found {:?}",
                self.mode
            ))
        })
    }
}

/// `"0660"` (or `"660"`, `"0o660"`) as permission bits.
fn parse_mode(mode: &str) -> Option<u32> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
}

/// Makes way for a socket at `path`: removes a stale one, refuses a live one or anything
/// that is not a socket.
fn clear_stale(path: &Path) -> Result<(), PluginError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(PluginError::io(
                format_args!("`path` {}", path.display()),
                &e,
            ));
        }
    };
    if !meta.file_type().is_socket() {
        return Err(PluginError::config(format_args!(
            "`path` {} exists and is not a socket: it is left alone; remove it or choose another path",
            path.display()
        )));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(PluginError::new(
            ErrorKind::Io,
            format_args!(
                "`path` {} is in use: another server accepts connections on it",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale socket file (nothing accepts on it)");
            std::fs::remove_file(path).map_err(|e| {
                PluginError::io(
                    format_args!("cannot remove the stale socket {}", path.display()),
                    &e,
                )
            })
        }
        Err(e) => Err(PluginError::io(
            format_args!(
                "`path` {}: cannot tell whether it is in use",
                path.display()
            ),
            &e,
        )),
    }
}

/// Binds the socket at `path` with `mode`: under a temporary name in the same folder, given
/// its mode, then renamed into place. Returns the listener and the file's identity.
fn bind(
    path: &Path,
    mode: u32,
) -> Result<(std::os::unix::net::UnixListener, (u64, u64)), PluginError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let io_err = |what: &str, p: &Path, e: &io::Error| {
        PluginError::io(format_args!("{what} {}", p.display()), e)
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let temp = dir.join(format!(
        ".temblor-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let listener = match std::os::unix::net::UnixListener::bind(&temp) {
        Ok(l) => {
            let placed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
                .and_then(|()| std::fs::rename(&temp, path));
            if let Err(e) = placed {
                let _ = std::fs::remove_file(&temp);
                return Err(io_err("cannot create the socket", path, &e));
            }
            l
        }
        // The temporary name may be too long where `path` is not: bind in place, then set
        // the mode.
        Err(_) => {
            let l = std::os::unix::net::UnixListener::bind(path)
                .map_err(|e| io_err("cannot listen on", path, &e))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("cannot set the mode of", path, &e))?;
            l
        }
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| io_err("listening socket", path, &e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_err("socket", path, &e))?;
    Ok((listener, (meta.dev(), meta.ino())))
}

/// The `unix_server` source.
pub struct UnixServer {
    path: PathBuf,
    /// The socket file's device and inode: removed on drop only if it is still this one.
    file: (u64, u64),
    /// The accepting task and the connection tasks, and what they read.
    server: ChunkServer,
}

impl UnixServer {
    /// Creates the socket file and starts accepting clients.
    ///
    /// # Errors
    /// A `Config` error for a bad config or something else at `path`; an `Io` error when a
    /// server is live on `path`, the socket cannot be created, or the runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let mode = config.validate()?;
        clear_stale(&config.path)?;
        let (std_listener, file) = bind(&config.path, mode)?;
        let listener = temblor_net::runtime::register(config.path.display(), || {
            Listener::unix(std_listener, &config.path)
        })?;
        let options = Options {
            id: setup.id.to_owned(),
            max_connections: config.max_connections,
            refuse: Refuse::Close,
            tls: None,
            grace: GRACE,
        };
        let server = ChunkServer::start(listener, options, config.max_frame, INTAKE)?;
        tracing::info!(
            path = %config.path.display(),
            mode = %format_args!("{mode:04o}"),
            max_connections = config.max_connections,
            "unix server listening"
        );
        Ok(Self {
            path: config.path,
            file,
            server,
        })
    }

    /// The socket file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Source for UnixServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        self.server.pull(out)
    }

    fn set_notify(&mut self, notify: Notify) -> bool {
        self.server.set_notify(notify)
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        // The listener and every connection are closed when this returns.
        self.server.stop();
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the socket file");
        }
    }
}

temblor_shim::export_plugin! {
    name: "unix_server",
    kind: Connector,
    source: UnixServer::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::config;
    use temblor_net::testing::refused;
    use temblor_shim::Value;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("us-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn modes_are_octal_strings() {
        assert_eq!(parse_mode("0600"), Some(0o600));
        assert_eq!(parse_mode("660"), Some(0o660));
        assert_eq!(parse_mode("0o777"), Some(0o777));
        for bad in ["", "0800", "1777", "rw-", "00600", "-1"] {
            assert_eq!(parse_mode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_bad_values() {
        let c: Config =
            temblor_shim::from_value(&config(&[("path", Value::from("s"))])).expect("config");
        assert_eq!(
            (c.mode.as_str(), c.max_connections, c.max_frame),
            ("0600", 64, 65536)
        );
        for (fields, needle) in [
            (vec![], "missing field `path`"),
            (vec![("path", Value::from(""))], "`path`"),
            (
                vec![("path", Value::from("s")), ("mode", Value::from("0999"))],
                "`mode`",
            ),
            (
                vec![
                    ("path", Value::from("s")),
                    ("max_frame", Value::from(0_u64)),
                ],
                "max_frame",
            ),
            (
                vec![
                    ("path", Value::from("s")),
                    ("max_connections", Value::from(0_u64)),
                ],
                "max_connections",
            ),
        ] {
            refused(UnixServer::new, &fields, needle);
        }
    }

    #[test]
    fn a_regular_file_at_path_is_left_alone() {
        let dir = temp_dir("regular");
        let path = dir.join("not-a-socket");
        std::fs::write(&path, b"keep me").expect("write");
        let fields = [("path", Value::from(path.display().to_string()))];
        refused(UnixServer::new, &fields, "is not a socket");
        assert_eq!(std::fs::read(&path).expect("still there"), b"keep me");
        std::fs::remove_dir_all(dir).expect("clean up");
    }
}
