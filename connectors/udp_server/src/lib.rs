//! The `udp_server` connector: receives UDP datagrams on an address; each datagram is a stream
//! of its own.
//!
//! Source only (asking for a sink is an `Unsupported` error). The constructor binds the address,
//! so a port in use is reported when the engine starts. `pull` waits at most 100 ms for a first
//! datagram (then says `Idle`), then takes whatever else has arrived, up to 1024 datagrams or
//! 1 MiB: the source needs no thread, and the kernel's socket buffer holds what arrives between
//! pulls. UDP does not slow senders down: when the engine falls behind and that buffer fills,
//! the kernel drops datagrams (as for any UDP receiver). A datagram larger than `max_frame` is
//! dropped, counted and logged, never cut short. The source never ends by itself; dropping it
//! closes the socket.
//!
//! **Streams.** Each datagram is handed over as a stream of its own (see `docs/delivery.md`),
//! with a fresh stream id (1, 2, 3, ... for the life of the source): `start_stream` with its
//! metadata, the datagram as the stream's one chunk, and `end_stream`. So the connector's
//! `preprocessors` run on each datagram alone (with `separate`, a datagram of several lines
//! gives one frame per line, and a last line without a separator is one frame too; nothing is
//! carried over to the next datagram), and every event knows the datagram's sender. Without
//! preprocessors, each datagram is one frame; an empty datagram is an empty frame.
//!
//! ## Config
//! - `url` (string, default `"127.0.0.1:4243"`): the `host:port` to listen on. The default
//!   listens on loopback only; `"0.0.0.0:4243"` listens on every interface. Port 0 picks a free
//!   port (the log says which).
//! - `max_frame` (integer, default 65535, 1 to 65535): the largest datagram kept.
//!
//! ## Metadata
//! Every event from a datagram has:
//! - `meta.peer` (string): the sender's address, `"ip:port"` (e.g. `"127.0.0.1:50312"`,
//!   `"[::1]:50312"`), set by this connector;
//! - `meta.connector` (this connector's id) and `meta.stream` (the datagram's stream id, an
//!   integer: the same for the events of one datagram, different for each datagram), set by
//!   the engine.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "metrics"
//! plugin = "udp_server"
//! codec = "json"
//! preprocessors = ["separate"] # several JSON lines in one datagram
//! config = { url = "127.0.0.1:4243", max_frame = 8192 }
//!
//! [[pipeline]]
//! id = "main"
//! operators = [{ set = { "event.sender" = 'meta.peer' } }]
//! ```

use std::{
    io,
    net::{SocketAddr, ToSocketAddrs, UdpSocket},
    time::Duration,
};

use temblor_shim::{
    Object, PluginError, Pull, Setup, Source, SourceBatch, Value, serde::Deserialize, tracing,
};

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
    /// The id of the next datagram's stream.
    next_stream: u64,
    /// The last sender and its `meta`, reused while datagrams come from it.
    last_peer: Option<(SocketAddr, Value)>,
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
            // Stream 0 is the stream of frames pushed without one: datagrams count from 1.
            next_stream: 1,
            last_peer: None,
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

    /// The metadata of a datagram from `peer`: `{"peer": "ip:port"}`.
    fn meta(&mut self, peer: SocketAddr) -> Value {
        match &self.last_peer {
            Some((last, meta)) if *last == peer => meta.clone(),
            _ => {
                let mut meta = Object::with_capacity(1);
                meta.insert("peer", Value::from(peer.to_string()));
                let meta = Value::Object(meta);
                self.last_peer = Some((peer, meta.clone()));
                meta
            }
        }
    }

    /// Receives one datagram into `out`, as a stream of its own; false when none is waiting
    /// (or a read timed out).
    fn receive(&mut self, out: &mut SourceBatch) -> Result<bool, PluginError> {
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
                Ok((n, peer)) => {
                    let stream = self.next_stream;
                    self.next_stream += 1;
                    let meta = self.meta(peer);
                    out.start_stream(stream, meta);
                    out.push_stream(stream, &self.buf[..n]);
                    out.end_stream(stream);
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

    /// (stream, meta.peer, datagram) for each stream in `batch`, checking that each is one
    /// run that starts and ends it.
    fn datagrams(batch: &SourceBatch) -> Vec<(u64, String, Vec<u8>)> {
        assert_eq!(batch.runs().len(), batch.len(), "one run per datagram");
        batch
            .all_runs()
            .map(|(range, run)| {
                assert!(run.starts() && run.ends(), "{run:?}");
                assert_eq!(range.len(), 1, "one chunk per datagram");
                let peer = run
                    .meta
                    .get("peer")
                    .and_then(Value::as_str)
                    .expect("meta.peer")
                    .to_owned();
                assert_eq!(run.meta.as_object().map(Object::len), Some(1));
                let bytes = batch.frames().get(range.start).expect("frame").to_vec();
                (run.stream, peer, bytes)
            })
            .collect()
    }

    #[test]
    fn each_datagram_is_a_stream_with_its_peer() {
        let mut server = server(100);
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        a.send_to(b"from a", server.local_addr()).expect("send");
        b.send_to(b"from b\nand more", server.local_addr())
            .expect("send");
        a.send_to(b"a again", server.local_addr()).expect("send");
        let mut batch = SourceBatch::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while batch.len() < 3 && Instant::now() < deadline {
            server.pull(&mut batch).expect("pull");
        }
        let (pa, pb) = (
            a.local_addr().expect("addr").to_string(),
            b.local_addr().expect("addr").to_string(),
        );
        assert_eq!(
            datagrams(&batch),
            [
                (1, pa.clone(), b"from a".to_vec()),
                (2, pb, b"from b\nand more".to_vec()),
                (3, pa, b"a again".to_vec()),
            ]
        );
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
        // The dropped datagram took no stream id.
        let streams: Vec<u64> = datagrams(&frames).iter().map(|d| d.0).collect();
        assert_eq!(streams, [1, 2, 3]);
    }
}
