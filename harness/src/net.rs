//! Loopback ports, and a socket peer that talks to what a test started.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use crate::process::wait_until;

/// A loopback port nobody listens on now.
///
/// # Panics
/// When no port can be had.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something accepts TCP connections on `addr` (10 s at most).
///
/// # Panics
/// When nothing does.
pub fn wait_listening(addr: SocketAddr) {
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
        "nothing listens on {addr}"
    );
}

enum Socket {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Unix(UnixStream),
}

/// The other end of a TCP connection, a UDP socket or a Unix stream: sends bytes or lines and
/// receives with a timeout, so a test never hangs on a server that stays silent.
pub struct Peer {
    socket: Socket,
    /// Received bytes not handed out yet (past the last line given by [`Peer::read_line`]).
    pending: Vec<u8>,
}

impl Peer {
    /// Connects to a TCP server.
    ///
    /// # Panics
    /// When it cannot connect.
    #[must_use]
    pub fn tcp(addr: impl std::net::ToSocketAddrs + std::fmt::Debug) -> Self {
        let stream = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr:?}: {e}"));
        Self::new(Socket::Tcp(stream))
    }

    /// A UDP socket on a free loopback port that sends to `addr`.
    ///
    /// # Panics
    /// When it cannot bind or connect.
    #[must_use]
    pub fn udp(addr: impl std::net::ToSocketAddrs + std::fmt::Debug) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        socket
            .connect(&addr)
            .unwrap_or_else(|e| panic!("connect {addr:?}: {e}"));
        Self::new(Socket::Udp(socket))
    }

    /// Connects to a Unix socket server.
    ///
    /// # Panics
    /// When it cannot connect.
    #[must_use]
    pub fn unix(path: &Path) -> Self {
        let stream =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        Self::new(Socket::Unix(stream))
    }

    fn new(socket: Socket) -> Self {
        Self {
            socket,
            pending: Vec::new(),
        }
    }

    /// This end's address (TCP and UDP).
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(s) => s.local_addr().ok(),
            Socket::Udp(s) => s.local_addr().ok(),
            Socket::Unix(_) => None,
        }
    }

    /// Sends `bytes` (one datagram over UDP).
    ///
    /// # Panics
    /// When sending fails.
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        let sent = match &mut self.socket {
            Socket::Tcp(s) => s.write_all(bytes),
            Socket::Udp(s) => s.send(bytes).map(drop),
            Socket::Unix(s) => s.write_all(bytes),
        };
        sent.unwrap_or_else(|e| panic!("send {} bytes: {e}", bytes.len()));
        self
    }

    /// Sends `line` and a newline.
    pub fn send_line(&mut self, line: &str) -> &mut Self {
        self.send(format!("{line}\n").as_bytes())
    }

    /// Says it will send no more (a half close; nothing over UDP).
    pub fn close_write(&mut self) -> &mut Self {
        let _ = match &self.socket {
            Socket::Tcp(s) => s.shutdown(Shutdown::Write),
            Socket::Unix(s) => s.shutdown(Shutdown::Write),
            Socket::Udp(_) => Ok(()),
        };
        self
    }

    /// Receives what comes within `timeout` (one datagram over UDP); empty when nothing came or
    /// the other end closed.
    ///
    /// # Panics
    /// On a receive error other than a timeout.
    pub fn recv(&mut self, timeout: Duration) -> Vec<u8> {
        if !self.pending.is_empty() {
            return std::mem::take(&mut self.pending);
        }
        let mut buf = vec![0_u8; 65_536];
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        let got = match &mut self.socket {
            Socket::Tcp(s) => s.set_read_timeout(timeout).and_then(|()| s.read(&mut buf)),
            Socket::Udp(s) => s.set_read_timeout(timeout).and_then(|()| s.recv(&mut buf)),
            Socket::Unix(s) => s.set_read_timeout(timeout).and_then(|()| s.read(&mut buf)),
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                buf
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Vec::new(),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Vec::new(),
            Err(e) => panic!("receive: {e}"),
        }
    }

    /// The next line (without its newline) within `timeout`, `None` when none came whole.
    pub fn read_line(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut have = std::mem::take(&mut self.pending);
        loop {
            if let Some(at) = have.iter().position(|&b| b == b'\n') {
                self.pending = have.split_off(at + 1);
                have.truncate(at);
                return Some(String::from_utf8_lossy(&have).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let more = if left.is_zero() {
                Vec::new()
            } else {
                self.recv(left)
            };
            if more.is_empty() {
                self.pending = have;
                return None;
            }
            have.extend_from_slice(&more);
        }
    }

    /// Everything received until the other end closes or `timeout` passes.
    pub fn read_to_end(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut all = std::mem::take(&mut self.pending);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return all;
            }
            let more = self.recv(left);
            if more.is_empty() {
                return all;
            }
            all.extend_from_slice(&more);
        }
    }
}
