//! The `unix_client` connector: writes frames to a Unix stream socket, reconnecting when the
//! connection breaks.
//!
//! Sink only (asking for a source is an `Unsupported` error): what the server sends back is
//! read and thrown away. The constructor tries to connect once; a server that is not up yet is
//! no error (the first batch connects). Every frame is written as it is (the postprocessors
//! add separators: `separate` makes one line per event), gathered into writes of about 64 KiB.
//!
//! **Broken connections.** Before each batch the sink looks whether the server has closed the
//! connection (a server that went away between batches loses nothing); if it has, or there is
//! no connection, it connects first. When a write fails, the sink connects again and goes on
//! from the first frame that was not written, waiting `backoff_ms` before each new attempt,
//! doubling up to `max_backoff_ms`. After `max_retries` attempts more the batch fails with an
//! `Io` error, and the indices of the frames that were written go back to the engine in
//! `delivered` (see `docs/delivery.md`): the engine's retries resend only the others. A write
//! that broke half-way may have sent part of its frames: those are sent again (the server may
//! see them twice, the first time perhaps cut short). `push` blocks while it retries, which
//! holds the pipeline back (backpressure), for at most about `max_retries × max_backoff_ms`
//! plus the timeouts.
//!
//! The socket work runs on the plugin's tokio runtime (`push` waits for it, bounded by
//! `timeout_ms`); the connection is closed when the sink is dropped.
//!
//! ## Config
//! - `path` (string, required): the server's socket file, relative to the engine's working
//!   directory or absolute.
//! - `backoff_ms` (integer, default 100, at least 1): the wait before the first retry.
//! - `max_backoff_ms` (integer, default 5000, at least `backoff_ms`): the longest wait.
//! - `max_retries` (integer, default 10): attempts after the first before a batch fails.
//! - `timeout_ms` (integer, default 5000, at least 1): for connecting and for each write; a
//!   server that stops reading for that long counts as a broken connection.
//!
//! ## Metadata
//! None is read: every frame goes to the one socket.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "forward"
//! plugin = "unix_client"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "/run/collector.sock", backoff_ms = 100, max_backoff_ms = 5000 }
//! ```

use std::{io, path::PathBuf, time::Duration};

use temblor_net::{
    Service,
    retry::{Link, Policy, Retrying},
    tokio::{self, io::AsyncWriteExt, net::UnixStream},
};
use temblor_shim::{Frames, PluginError, Setup, Value, serde::Deserialize, tracing};

/// Frames are gathered into writes of about this size.
const CHUNK: usize = 64 * 1024;

temblor_net::client_config! {
    /// The connector's `config`.
    #[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
    #[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
    pub struct Config {
        /// The server's socket file.
        pub path: PathBuf,
    }
    with max_retries
}

impl Config {
    /// Checks the values serde cannot: the retry settings for the sink.
    fn validate(&self) -> Result<Policy, PluginError> {
        if self.path.as_os_str().is_empty() {
            return Err(PluginError::config(format_args!(
                "`path` must name the server's socket file"
            )));
        }
        self.policy()
    }
}

/// Runs `f` within `limit`, a timeout being an error saying `what`.
async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} took longer than {} ms", limit.as_millis()),
        )),
    }
}

/// Whether the server has not closed the connection; reads and drops what it sent.
fn is_open(stream: &UnixStream) -> bool {
    let mut scratch = [0; 4096];
    // A server that keeps talking is open: stop reading after 64 KiB.
    for _ in 0..16 {
        match stream.try_read(&mut scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// The `unix_client` sink's connection (the sink is a [`Retrying`] on it).
pub struct UnixClient {
    config: Config,
    stream: Option<UnixStream>,
    buf: Vec<u8>,
    connects: u64,
    bytes: u64,
    service: Service,
}

impl UnixClient {
    /// Checks the config and tries to connect once.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Retrying<Self>, PluginError> {
        let config: Config = setup.config()?;
        let policy = config.validate()?;
        let handle = temblor_net::runtime::handle()?;
        let client = Self {
            config,
            stream: None,
            buf: Vec::with_capacity(CHUNK),
            connects: 0,
            bytes: 0,
            service: Service::new(handle, Duration::from_secs(1)),
        };
        Ok(Retrying::new(client, policy))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    async fn open(&mut self) -> io::Result<()> {
        self.stream = None;
        let stream = within(
            self.timeout(),
            "connecting",
            UnixStream::connect(&self.config.path),
        )
        .await?;
        self.connects += 1;
        tracing::info!(
            path = %self.config.path.display(),
            connects = self.connects,
            "connected to the unix server"
        );
        self.stream = Some(stream);
        Ok(())
    }

    /// Writes the frames from `*next` on, connecting first when there is no connection or the
    /// server has closed it; `*next` follows what was written.
    async fn write(&mut self, frames: &Frames, next: &mut usize) -> io::Result<()> {
        if !self.stream.as_ref().is_some_and(is_open) {
            self.open().await?;
        }
        let limit = self.timeout();
        let Some(stream) = self.stream.as_mut() else {
            return Err(io::Error::other("not connected"));
        };
        self.buf.clear();
        for (i, frame) in frames.iter().enumerate().skip(*next) {
            self.buf.extend_from_slice(frame);
            let last = i + 1 == frames.len();
            if self.buf.len() >= CHUNK || last {
                within(limit, "writing", stream.write_all(&self.buf)).await?;
                self.bytes += self.buf.len() as u64;
                self.buf.clear();
                *next = i + 1;
            }
        }
        within(limit, "flushing", stream.flush()).await
    }
}

impl Link for UnixClient {
    type Error = io::Error;

    fn target(&self) -> String {
        self.config.path.display().to_string()
    }

    fn connect(&mut self) -> io::Result<()> {
        let handle = self.service.handle().clone();
        handle.block_on(self.open())
    }

    fn attempt(&mut self, frames: &Frames, _meta: &[Value], next: &mut usize) -> io::Result<()> {
        let handle = self.service.handle().clone();
        handle.block_on(self.write(frames, next))
    }

    fn disconnect(&mut self) {
        self.stream = None;
    }
}

impl Drop for UnixClient {
    fn drop(&mut self) {
        // Deregistered from the runtime while it surely runs.
        let _entered = self.service.handle().enter();
        drop(self.stream.take());
        tracing::debug!(
            path = %self.config.path.display(),
            bytes = self.bytes,
            connects = self.connects,
            "unix client closed"
        );
    }
}

temblor_shim::export_plugin! {
    name: "unix_client",
    kind: Connector,
    sink: UnixClient::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::config;
    use temblor_net::testing::{self, refused};

    #[test]
    fn defaults_and_bad_values() {
        let c: Config =
            temblor_shim::from_value(&config(&[("path", Value::from("x.sock"))])).expect("config");
        assert_eq!(
            (c.backoff_ms, c.max_backoff_ms, c.max_retries, c.timeout_ms),
            (100, 5000, 10, 5000)
        );
        let p = ("path", Value::from("/nonexistent/x.sock"));
        for (fields, needle) in [
            (vec![], "missing field `path`"),
            (vec![("path", Value::from(""))], "`path`"),
        ] {
            refused(UnixClient::new, &fields, needle);
        }
        testing::refuses_bad_retry_settings(UnixClient::new, &[p]);
    }
}
