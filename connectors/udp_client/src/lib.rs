//! The `udp_client` connector: sends each frame as one UDP datagram to an address.
//!
//! Sink only (asking for a source is an `Unsupported` error). The constructor resolves `url`
//! and binds an ephemeral local port (`bind` chooses the local address). The socket lives on
//! the plugin's tokio runtime (`temblor-net`): `push` sends the batch's datagrams there and
//! waits for them on the engine's thread (one hand-over per batch, not per frame); the connector
//! starts no task of its own. UDP gives no delivery guarantee: a datagram is handed to the
//! kernel and that is all `push` knows; `flush` has nothing to do.
//!
//! A frame larger than `max_frame` cannot be one datagram: it is not sent, and is counted and
//! logged; the other frames of the batch are still sent, and `push` then returns a `Data` error
//! saying how many frames it dropped (the engine counts the batch as failed). A send that fails
//! (no route, a buffer that stays full for 5 s) is tried once more, then counted the same way,
//! with an `Io` error. The socket is not connected, so nobody listening at `url` is no error:
//! UDP cannot tell.
//!
//! ## Config
//! - `url` (string, required): the `host:port` to send to, e.g. `"127.0.0.1:4243"`.
//! - `bind` (string, default `"127.0.0.1:0"` for a loopback `url`, else `"0.0.0.0:0"` or
//!   `"[::]:0"`): the local address to send from.
//! - `max_frame` (integer, default 65507, the most an IPv4 datagram carries; 1 to 65507): the
//!   largest frame sent.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "metrics-out"
//! plugin = "udp_client"
//! codec = "json"
//! config = { url = "127.0.0.1:4243" }
//! ```

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use temblor_net::{
    Service, addr,
    tokio::{self, net::UdpSocket},
};
use temblor_shim::{Frames, PluginError, Setup, Sink, serde::Deserialize, tracing};

/// The largest payload of an IPv4 UDP datagram.
pub const MAX_DATAGRAM: usize = 65507;

/// How long one send may wait for room in the socket's buffer before it counts as failed.
const SEND_WAIT: Duration = Duration::from_secs(5);

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The `host:port` to send to.
    pub url: String,
    /// The local address to send from.
    #[serde(default)]
    pub bind: Option<String>,
    /// The largest frame sent.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
}

fn default_max_frame() -> usize {
    MAX_DATAGRAM
}

fn resolve(key: &str, host_port: &str) -> Result<SocketAddr, PluginError> {
    Ok(addr::resolve(key, host_port)?[0])
}

/// The `udp_client` sink.
pub struct UdpClient {
    socket: UdpSocket,
    peer: SocketAddr,
    max_frame: usize,
    sent: u64,
    dropped: u64,
    /// The runtime the socket lives on (the sink runs no task of its own).
    service: Service,
}

impl UdpClient {
    /// Binds a local socket for the configured peer.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Io` error when the socket cannot be bound or the
    /// network runtime cannot start.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        if !(1..=MAX_DATAGRAM).contains(&config.max_frame) {
            return Err(PluginError::config(format_args!(
                "`max_frame` must be between 1 and {MAX_DATAGRAM}, found {}",
                config.max_frame
            )));
        }
        let peer = resolve("url", &config.url)?;
        let local = match &config.bind {
            Some(bind) => resolve("bind", bind)?,
            None => {
                let ip = match peer.ip() {
                    ip if ip.is_loopback() => ip,
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                };
                SocketAddr::new(ip, 0)
            }
        };
        let socket = std::net::UdpSocket::bind(local)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| PluginError::io(format_args!("cannot bind {local}"), &e))?;
        let socket = temblor_net::runtime::register(format_args!("cannot bind {local}"), || {
            UdpSocket::from_std(socket)
        })?;
        let handle = temblor_net::runtime::handle()?;
        tracing::debug!(peer = %peer, local = %local, "udp client ready");
        Ok(Self {
            socket,
            peer,
            max_frame: config.max_frame,
            sent: 0,
            dropped: 0,
            service: Service::new(handle, Duration::from_secs(1)),
        })
    }

    /// How many frames were not sent, so far.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Sends one datagram, trying again once after an error.
async fn send(socket: &UdpSocket, frame: &[u8], peer: SocketAddr) -> io::Result<()> {
    let mut last = None;
    for _ in 0..2 {
        match tokio::time::timeout(SEND_WAIT, socket.send_to(frame, peer)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no room in the socket's buffer for {} s",
                        SEND_WAIT.as_secs()
                    ),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("not sent")))
}

impl Sink for UdpClient {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        let (socket, peer, max_frame) = (&self.socket, self.peer, self.max_frame);
        // Every datagram of the batch in one run on the runtime.
        let (sent, too_large, failures, failed) = self.service.block_on(async {
            let (mut sent, mut too_large, mut failures, mut failed) = (0_u64, 0_u64, 0_u64, None);
            for frame in frames.iter() {
                if frame.len() > max_frame {
                    too_large += 1;
                    continue;
                }
                match send(socket, frame, peer).await {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        failures += 1;
                        failed = Some(e);
                    }
                }
            }
            (sent, too_large, failures, failed)
        });
        self.sent += sent;
        self.dropped += too_large + failures;
        if let Some(e) = failed {
            tracing::warn!(
                peer = %self.peer,
                failed = failures,
                too_large,
                dropped = self.dropped,
                error = %e,
                "datagrams not sent"
            );
            return Err(PluginError::io(
                format_args!(
                    "{failures} of {} datagrams could not be sent to {} \
                     ({too_large} more were larger than max_frame)",
                    frames.len(),
                    self.peer
                ),
                &e,
            ));
        }
        if too_large > 0 {
            tracing::warn!(
                peer = %self.peer,
                too_large,
                max_frame = self.max_frame,
                dropped = self.dropped,
                "frames larger than a datagram were dropped"
            );
            return Err(PluginError::data(format_args!(
                "{too_large} of {} frames were larger than max_frame ({} bytes) and were \
                 not sent; the others were",
                frames.len(),
                self.max_frame
            )));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Drop for UdpClient {
    fn drop(&mut self) {
        tracing::debug!(
            peer = %self.peer,
            sent = self.sent,
            dropped = self.dropped,
            "udp client closed"
        );
    }
}

temblor_shim::export_plugin! {
    name: "udp_client",
    kind: Connector,
    sink: UdpClient::new,
    shutdown: temblor_net::shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use temblor_harness::config;
    use temblor_net::testing::refused;
    use temblor_shim::{ErrorKind, Value};

    fn client(fields: &[(&str, Value)]) -> Result<UdpClient, PluginError> {
        let cfg = config(fields);
        UdpClient::new(&Setup {
            id: "t",
            config: &cfg,
        })
    }

    #[test]
    fn url_is_required_and_checked() {
        for (fields, needle) in [
            (vec![], "url"),
            (vec![("url", Value::from("nowhere"))], "url"),
            (
                vec![
                    ("url", Value::from("127.0.0.1:9")),
                    ("max_frame", Value::from(65508_u64)),
                ],
                "max_frame",
            ),
            (
                vec![
                    ("url", Value::from("127.0.0.1:9")),
                    ("bind", Value::from("here")),
                ],
                "bind",
            ),
        ] {
            refused(UdpClient::new, &fields, needle);
        }
    }

    #[test]
    fn frames_are_datagrams_and_too_large_ones_are_counted() {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let addr = receiver.local_addr().expect("addr").to_string();
        let mut client = client(&[
            ("url", Value::from(addr)),
            ("max_frame", Value::from(4_u64)),
        ])
        .expect("client");
        let frames: Frames = [&b"ab"[..], b"too long", b"", b"abcd"]
            .into_iter()
            .collect();
        let err = client.push(&frames).expect_err("one was too large");
        assert_eq!(err.kind, ErrorKind::Data, "{err}");
        assert!(err.message.contains("1 of 4"), "{err}");
        assert_eq!(client.dropped(), 1);
        let mut buf = [0; 100];
        let mut got = Vec::new();
        for _ in 0..3 {
            let (n, from) = receiver.recv_from(&mut buf).expect("datagram");
            assert!(from.ip().is_loopback());
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, [b"ab".to_vec(), vec![], b"abcd".to_vec()]);
        client.flush().expect("flush");
    }
}
