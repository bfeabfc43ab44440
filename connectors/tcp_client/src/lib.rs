//! The `tcp_client` connector: writes frames to a TCP server, reconnecting when the connection
//! breaks.
//!
//! Sink only (asking for a source is an `Unsupported` error): what the server sends back is read
//! and thrown away. The constructor checks that `url` resolves and tries to connect once; a
//! server that is not up yet is no error (the first batch connects). Every frame is written as it
//! is (the postprocessors add separators), a batch at a time.
//!
//! **Broken connections.** Before each batch the sink looks whether the server has closed the
//! connection (a server that went away between batches loses nothing); if it has, or writing the
//! batch fails, or there is no connection, it connects again and writes the whole batch again.
//! Between attempts it waits `backoff_ms`, doubling up to `max_backoff_ms`; after `max_retries`
//! more attempts the batch fails with an `Io` error (the engine counts it) and the next batch
//! starts over. A batch that broke half-way is sent again whole, so the server may see its first
//! frames twice; and bytes that the kernel had accepted just before a server vanished without
//! closing (a crash, a cut cable) are lost: TCP does not tell the sender. `push` blocks while it
//! retries, which holds the pipeline back (backpressure), for at most about
//! `max_retries × max_backoff_ms` plus the timeouts.
//!
//! ## Config
//! - `url` (string, required): the server's `host:port`, e.g. `"127.0.0.1:4242"`.
//! - `backoff_ms` (integer, default 100, at least 1): the wait before the first retry.
//! - `max_backoff_ms` (integer, default 5000, at least `backoff_ms`): the longest wait.
//! - `max_retries` (integer, default 10): attempts after the first before a batch fails.
//! - `timeout_ms` (integer, default 5000, at least 1): for connecting and for each write; a
//!   server that stops reading for that long counts as a broken connection.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "forward"
//! plugin = "tcp_client"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { url = "127.0.0.1:4242", backoff_ms = 100, max_backoff_ms = 5000 }
//! ```

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    thread,
    time::Duration,
};

use temblor_shim::{ErrorKind, Frames, PluginError, Setup, Sink, serde::Deserialize, tracing};

/// Frames are gathered into writes of about this size.
const CHUNK: usize = 64 * 1024;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The server's `host:port`.
    pub url: String,
    /// The wait before the first retry, in milliseconds.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest wait between retries, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Attempts after the first before a batch fails.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The timeout for connecting and for each write, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_backoff_ms() -> u64 {
    100
}

fn default_max_backoff_ms() -> u64 {
    5000
}

fn default_max_retries() -> u32 {
    10
}

fn default_timeout_ms() -> u64 {
    5000
}

impl Config {
    fn validate(&self, id: &str) -> Result<(), PluginError> {
        if self.backoff_ms == 0 {
            return Err(PluginError::config(format_args!(
                "'{id}': `backoff_ms` must be at least 1"
            )));
        }
        if self.max_backoff_ms < self.backoff_ms {
            return Err(PluginError::config(format_args!(
                "'{id}': `max_backoff_ms` ({}) must be at least `backoff_ms` ({})",
                self.max_backoff_ms, self.backoff_ms
            )));
        }
        if self.timeout_ms == 0 {
            return Err(PluginError::config(format_args!(
                "'{id}': `timeout_ms` must be at least 1"
            )));
        }
        Ok(())
    }
}

/// The `tcp_client` sink.
pub struct TcpClient {
    id: String,
    config: Config,
    /// The addresses `url` resolved to last.
    addrs: Vec<SocketAddr>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    connects: u64,
    bytes: u64,
}

impl TcpClient {
    /// Checks the config and tries to connect once.
    ///
    /// # Errors
    /// A `Config` error for a bad config or a `url` that does not resolve.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        config.validate(id)?;
        let addrs: Vec<SocketAddr> = config
            .url
            .to_socket_addrs()
            .map_err(|e| {
                PluginError::config(format_args!(
                    "'{id}': `url` must be host:port, found {:?}: {e}",
                    config.url
                ))
            })?
            .collect();
        if addrs.is_empty() {
            return Err(PluginError::config(format_args!(
                "'{id}': `url` {:?} resolves to no address",
                config.url
            )));
        }
        let mut client = Self {
            id: id.to_owned(),
            config,
            addrs,
            stream: None,
            buf: Vec::with_capacity(CHUNK),
            connects: 0,
            bytes: 0,
        };
        if let Err(e) = client.connect() {
            tracing::warn!(
                id = %client.id,
                url = %client.config.url,
                error = %e,
                "tcp server not reachable yet; the first batch tries again"
            );
        }
        Ok(client)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// Connects to the first address of `url` that answers (resolving it again first).
    fn connect(&mut self) -> io::Result<()> {
        self.stream = None;
        if let Ok(addrs) = self.config.url.to_socket_addrs() {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if !addrs.is_empty() {
                self.addrs = addrs;
            }
        }
        let mut last = None;
        for addr in &self.addrs {
            match TcpStream::connect_timeout(addr, self.timeout()) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(self.timeout()))?;
                    stream.set_nodelay(true)?;
                    self.connects += 1;
                    tracing::info!(
                        id = %self.id,
                        peer = %addr,
                        connects = self.connects,
                        "connected to the tcp server"
                    );
                    self.stream = Some(stream);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no address to connect to")))
    }

    /// Writes the whole batch on the current connection (connecting first when there is none
    /// or the server has closed it).
    fn attempt(&mut self, frames: &Frames) -> io::Result<()> {
        if !self.stream.as_ref().is_some_and(is_open) {
            self.connect()?;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(io::Error::other("not connected"));
        };
        self.buf.clear();
        for frame in frames.iter() {
            self.buf.extend_from_slice(frame);
            if self.buf.len() >= CHUNK {
                stream.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        stream.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Whether the server has not closed the connection; reads and drops what it sent.
fn is_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut scratch = [0; 4096];
    let mut reader = stream;
    // A server that keeps talking is open: stop reading after 64 KiB.
    let mut reads = 0;
    let open = loop {
        match reader.read(&mut scratch) {
            Ok(0) => break false,
            Ok(_) if reads == 16 => break true,
            Ok(_) => reads += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    open && stream.set_nonblocking(false).is_ok()
}

impl Sink for TcpClient {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        if frames.is_empty() {
            return Ok(());
        }
        let mut backoff = self.config.backoff_ms;
        let mut retry = 0;
        loop {
            match self.attempt(frames) {
                Ok(()) => {
                    self.bytes += frames.byte_len() as u64;
                    return Ok(());
                }
                Err(e) => {
                    self.stream = None;
                    if retry == self.config.max_retries {
                        tracing::error!(
                            id = %self.id,
                            url = %self.config.url,
                            attempts = retry + 1,
                            frames = frames.len(),
                            error = %e,
                            "giving up on a batch"
                        );
                        return Err(PluginError::io(
                            format_args!(
                                "'{}': cannot write to {} after {} attempts",
                                self.id,
                                self.config.url,
                                retry + 1
                            ),
                            &e,
                        ));
                    }
                    retry += 1;
                    tracing::warn!(
                        id = %self.id,
                        url = %self.config.url,
                        retry,
                        backoff_ms = backoff,
                        error = %e,
                        "writing to the tcp server failed; reconnecting"
                    );
                    thread::sleep(Duration::from_millis(backoff));
                    backoff = backoff.saturating_mul(2).min(self.config.max_backoff_ms);
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        // Writes go straight to the socket; there is nothing buffered here.
        match self.stream.as_mut().map(Write::flush) {
            Some(Err(e)) => Err(PluginError::new(
                ErrorKind::Io,
                format_args!("'{}': flushing {}: {e}", self.id, self.config.url),
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        tracing::debug!(
            id = %self.id,
            url = %self.config.url,
            bytes = self.bytes,
            connects = self.connects,
            "tcp client closed"
        );
    }
}

temblor_shim::export_plugin! {
    name: "tcp_client",
    kind: Connector,
    sink: TcpClient::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{net::TcpListener, time::Instant};
    use temblor_shim::Value;

    fn config(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().cloned().collect())
    }

    fn client(fields: &[(&str, Value)]) -> Result<TcpClient, PluginError> {
        let cfg = config(fields);
        TcpClient::new(&Setup {
            id: "t",
            config: &cfg,
        })
    }

    fn batch(frames: &[&[u8]]) -> Frames {
        frames.iter().copied().collect()
    }

    fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = vec![0; n];
        stream.read_exact(&mut buf).expect("read");
        buf
    }

    #[test]
    fn defaults_and_bad_values() {
        let c: Config =
            temblor_shim::from_value(&config(&[("url", Value::from("x:1"))])).expect("config");
        assert_eq!(
            (c.backoff_ms, c.max_backoff_ms, c.max_retries, c.timeout_ms),
            (100, 5000, 10, 5000)
        );
        for (fields, needle) in [
            (vec![], "url"),
            (vec![("url", Value::from("no port"))], "url"),
            (
                vec![
                    ("url", Value::from("127.0.0.1:9")),
                    ("backoff_ms", Value::from(0_u64)),
                ],
                "backoff_ms",
            ),
            (
                vec![
                    ("url", Value::from("127.0.0.1:9")),
                    ("backoff_ms", Value::from(10_u64)),
                    ("max_backoff_ms", Value::from(5_u64)),
                ],
                "max_backoff_ms",
            ),
            (
                vec![
                    ("url", Value::from("127.0.0.1:9")),
                    ("timeout_ms", Value::from(0_u64)),
                ],
                "timeout_ms",
            ),
        ] {
            let err = client(&fields).err().expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{err}");
        }
    }

    #[test]
    fn a_server_that_closed_between_batches_loses_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let mut client = client(&[("url", Value::from(addr))]).expect("client");
        let (mut first, _) = listener.accept().expect("the constructor connected");
        client.push(&batch(&[b"one\n"])).expect("push");
        assert_eq!(read_exactly(&mut first, 4), b"one\n");
        // The server closes; the next batch goes to a new connection, whole.
        first.write_all(b"ignored reply").expect("write");
        drop(first);
        thread::sleep(Duration::from_millis(50));
        client.push(&batch(&[b"two\n", b"three\n"])).expect("push");
        let (mut second, _) = listener.accept().expect("reconnected");
        assert_eq!(read_exactly(&mut second, 10), b"two\nthree\n");
        assert_eq!(client.connects, 2);
    }

    #[test]
    fn retries_back_off_exponentially_then_fail() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut client = client(&[
            ("url", Value::from(format!("127.0.0.1:{port}"))),
            ("backoff_ms", Value::from(40_u64)),
            ("max_backoff_ms", Value::from(100_u64)),
            ("max_retries", Value::from(3_u64)),
        ])
        .expect("a server that is not up is no error yet");
        let begin = Instant::now();
        let err = client
            .push(&batch(&[b"lost\n"]))
            .expect_err("nobody listens");
        let waited = begin.elapsed();
        // 40 + 80 + 100 ms of backoff.
        assert!(waited >= Duration::from_millis(220), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        assert_eq!(err.kind, ErrorKind::Io, "{err}");
        assert!(err.message.contains("after 4 attempts"), "{err}");
        assert!(err.message.contains(&port.to_string()), "{err}");
        // An empty batch needs no connection.
        client.push(&Frames::new()).expect("nothing to write");
        client.flush().expect("flush");
    }
}
