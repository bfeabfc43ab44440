//! The `udp_server` connector: receives UDP datagrams on an address, one frame per datagram.
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor binds the address,
//! so a port in use is reported when the engine starts. `pull` waits at most 100 ms for a first
//! datagram (then says `Idle`), then takes whatever else has arrived, up to 1024 datagrams or
//! 1 MiB: the source needs no thread, and the kernel's socket buffer holds what arrives between
//! pulls. UDP does not slow senders down: when the engine falls behind and that buffer fills,
//! the kernel drops datagrams (as for any UDP receiver). A datagram larger than `max_frame` is
//! dropped, counted and logged, never cut short. Empty datagrams are empty frames. The source
//! never ends by itself; dropping it closes the socket.
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:4243"`): the `host:port` to listen on. The default
//!   listens on loopback only; `"0.0.0.0:4243"` listens on every interface. Port 0 picks a free
//!   port (the log says which).
//! - `max_frame` (integer, default 65535, 1 to 65535): the largest datagram kept.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "metrics"
//! plugin = "udp_server"
//! codec = "json"
//! config = { url = "127.0.0.1:4243", max_frame = 8192 }
//! ```

use std::{
    io,
    net::{SocketAddr, ToSocketAddrs, UdpSocket},
    time::Duration,
};

use temblor_shim::{Frames, PluginError, Pull, SourceBatch, Setup, Source, serde::Deserialize, tracing};

/// How long `pull` waits for a first datagram before it says `Idle`.
const WAIT: Duration = Duration::from_millis(100);

/// The most datagrams one `pull` appends.
const PULL_DATAGRAMS: usize = 1024;

/// The most bytes one `pull` appends (it stops after the datagram that crosses this).
const PULL_BYTES: usize = 1024 * 1024;

/// The largest datagram UDP carries.
pub const MAX_DATAGRAM: usize = 65535;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to listen on.
    #[serde(default = "default_url")]
    pub url: String,
    /// The largest datagram kept.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
}

fn default_url() -> String {
    "127.0.0.1:4243".to_owned()
}

fn default_max_frame() -> usize {
    MAX_DATAGRAM
}

/// The `udp_server` source.
pub struct UdpServer {
    id: String,
    socket: UdpSocket,
    local: SocketAddr,
    max_frame: usize,
    /// One byte more than `max_frame`, so that a larger datagram shows.
    buf: Vec<u8>,
    /// Whether the socket is in non-blocking mode now.
    nonblocking: bool,
    received: u64,
    dropped: u64,
}

impl UdpServer {
    /// Binds the configured address.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the address cannot be bound.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let id = setup.id;
        if !(1..=MAX_DATAGRAM).contains(&config.max_frame) {
            return Err(PluginError::config(format_args!(
                "'{id}': `max_frame` must be between 1 and {MAX_DATAGRAM}, found {}",
                config.max_frame
            )));
        }
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
        let socket = UdpSocket::bind(&addrs[..]).map_err(|e| {
            PluginError::io(format_args!("'{id}': cannot listen on {}", config.url), &e)
        })?;
        let setup_socket = |socket: &UdpSocket| {
            socket.set_read_timeout(Some(WAIT))?;
            socket.local_addr()
        };
        let local = setup_socket(&socket)
            .map_err(|e| PluginError::io(format_args!("'{id}': udp socket"), &e))?;
        tracing::info!(id = %id, addr = %local, "udp server listening");
        Ok(Self {
            id: id.to_owned(),
            socket,
            local,
            max_frame: config.max_frame,
            buf: vec![0; config.max_frame + 1],
            nonblocking: false,
            received: 0,
            dropped: 0,
        })
    }

    /// The address the server listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many datagrams were dropped for being larger than `max_frame`.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<(), PluginError> {
        if self.nonblocking != nonblocking {
            self.socket
                .set_nonblocking(nonblocking)
                .map_err(|e| PluginError::io(format_args!("'{}': udp socket", self.id), &e))?;
            self.nonblocking = nonblocking;
        }
        Ok(())
    }

    /// Receives one datagram into `out`; false when none is waiting (or a read timed out).
    fn receive(&mut self, out: &mut Frames) -> Result<bool, PluginError> {
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, peer)) if n > self.max_frame => {
                    self.dropped += 1;
                    tracing::warn!(
                        id = %self.id,
                        peer = %peer,
                        max_frame = self.max_frame,
                        dropped = self.dropped,
                        "dropped a datagram larger than max_frame"
                    );
                    return Ok(true);
                }
                Ok((n, _)) => {
                    out.push(&self.buf[..n]);
                    self.received += 1;
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(false);
                }
                // An ICMP error for something this socket sent (it sends nothing) or a signal.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => {
                    return Err(PluginError::io(
                        format_args!("'{}': receiving on {}", self.id, self.local),
                        &e,
                    ));
                }
            }
        }
    }
}

impl Source for UdpServer {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        self.set_nonblocking(false)?;
        if !self.receive(out)? {
            return Ok(Pull::Idle);
        }
        self.set_nonblocking(true)?;
        for _ in 1..PULL_DATAGRAMS {
            if out.byte_len() >= PULL_BYTES || !self.receive(out)? {
                break;
            }
        }
        Ok(Pull::Ready)
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        tracing::info!(
            id = %self.id,
            addr = %self.local,
            received = self.received,
            dropped = self.dropped,
            "udp server closed"
        );
    }
}

temblor_shim::export_plugin! {
    name: "udp_server",
    kind: Connector,
    source: UdpServer::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use temblor_shim::{ErrorKind, Value};

    fn config(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().cloned().collect())
    }

    fn server(max_frame: u64) -> UdpServer {
        let cfg = config(&[
            ("url", Value::from("127.0.0.1:0")),
            ("max_frame", Value::from(max_frame)),
        ]);
        UdpServer::new(&Setup {
            id: "t",
            config: &cfg,
        })
        .expect("server")
    }

    #[test]
    fn defaults() {
        let c: Config = temblor_shim::from_value(&config(&[])).expect("config");
        assert_eq!(c.url, "127.0.0.1:4243");
        assert_eq!(c.max_frame, 65535);
    }

    #[test]
    fn bad_values_are_config_errors() {
        for (fields, needle) in [
            (vec![("max_frame", Value::from(0_u64))], "max_frame"),
            (vec![("max_frame", Value::from(65536_u64))], "max_frame"),
            (vec![("url", Value::from("nowhere"))], "url"),
        ] {
            let cfg = config(&fields);
            let err = UdpServer::new(&Setup {
                id: "bad",
                config: &cfg,
            })
            .err()
            .expect("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{err}");
        }
    }

    #[test]
    fn idle_pull_returns_within_about_100_ms() {
        let mut server = server(100);
        let mut frames = SourceBatch::new();
        let begin = Instant::now();
        assert_eq!(server.pull(&mut frames).expect("pull"), Pull::Idle);
        assert!(begin.elapsed() >= Duration::from_millis(90));
        assert!(begin.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn datagrams_become_frames_and_larger_ones_are_dropped() {
        let mut server = server(8);
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for datagram in [&b"one"[..], b"", b"too large!", b"12345678"] {
            client.send_to(datagram, server.local_addr()).expect("send");
        }
        let mut frames = SourceBatch::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while frames.len() < 3 && Instant::now() < deadline {
            server.pull(&mut frames).expect("pull");
        }
        let got: Vec<&[u8]> = frames.iter().collect();
        assert_eq!(got, [&b"one"[..], b"", b"12345678"]);
        assert_eq!(server.dropped(), 1);
    }
}
