//! Accepting connections up to a limit, handing each to its own task, and stopping them all.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, UnixListener},
    sync::Semaphore,
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;

use crate::{StopSignal, conn::Conn, tls};

/// Where connections come from.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix stream socket listener, and its path (the peer name of its connections).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Takes over a bound, non-blocking std listener. Call it inside the runtime
    /// (`handle.enter()`).
    ///
    /// # Errors
    /// The runtime cannot register it.
    pub fn tcp(l: std::net::TcpListener) -> std::io::Result<Self> {
        TcpListener::from_std(l).map(Self::Tcp)
    }

    /// Takes over a bound, non-blocking std Unix listener at `path`. Call it inside the
    /// runtime.
    ///
    /// # Errors
    /// The runtime cannot register it.
    pub fn unix(l: std::os::unix::net::UnixListener, path: &Path) -> std::io::Result<Self> {
        UnixListener::from_std(l).map(|l| Self::Unix(l, path.to_owned()))
    }

    /// Where it listens, for logs (`127.0.0.1:4242`, or the socket's path).
    #[must_use]
    pub fn local(&self) -> String {
        match self {
            Self::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string()),
            Self::Unix(_, path) => path.display().to_string(),
        }
    }

    async fn accept(&self, n: u64) -> std::io::Result<(Conn, String)> {
        match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                // Small writes (a reply, an event) go out at once.
                let _ = s.set_nodelay(true);
                Ok((Conn::Tcp(s), peer.to_string()))
            }
            Self::Unix(l, path) => {
                let (s, _) = l.accept().await?;
                Ok((Conn::Unix(s), format!("{}#{n}", path.display())))
            }
        }
    }
}

/// `max_connections`: clients a server serves at once, by default.
#[must_use]
pub fn default_max_connections() -> usize {
    64
}

/// What a connection over the limit gets.
#[derive(Debug, Clone, Copy)]
pub enum Refuse {
    /// Closed at once.
    Close,
    /// These bytes (say, an HTTP 503), then closed. Over TLS: closed at once.
    Reply(&'static [u8]),
}

/// How [`serve`] runs.
#[derive(Clone)]
pub struct Options {
    /// The connector's id, for logs.
    pub id: String,
    /// Connections served at once; one more is refused.
    pub max_connections: usize,
    /// What a refused connection gets.
    pub refuse: Refuse,
    /// TLS on every accepted connection (the handshake runs in the connection's task).
    pub tls: Option<TlsAcceptor>,
    /// After a stop: how long open connections get to finish before they are closed.
    pub grace: Duration,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("id", &self.id)
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls.is_some())
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Counters of one acceptor, readable while it runs.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections accepted and handed to the handler.
    pub accepted: AtomicU64,
    /// Connections refused over the limit.
    pub refused: AtomicU64,
}

/// Accepts connections until `stop`, each handled by `handler(conn, peer, stop)` in a task of
/// its own, at most `max_connections` at once. On the stop the listener is closed first, then
/// open connections get `grace` to end (their handlers see the stop), then the rest are
/// aborted (their sockets closed). Returns once every connection task has ended.
pub async fn serve<H, F>(
    listener: Listener,
    options: Options,
    counts: Arc<Counts>,
    mut stop: StopSignal,
    handler: H,
) where
    H: Fn(Conn, String, StopSignal) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(options.max_connections));
    let handler = Arc::new(handler);
    let mut conns = JoinSet::new();
    let mut n = 0_u64;
    loop {
        tokio::select! {
            () = stop.stopped() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept(n + 1) => {
                let (conn, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little instead of spinning.
                        temblor_shim::tracing::warn!(connector = %options.id, error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                n += 1;
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                    counts.refused.fetch_add(1, Ordering::Relaxed);
                    temblor_shim::tracing::warn!(connector = %options.id, peer = %peer, max_connections = options.max_connections, "connection refused: too many open");
                    if let (Refuse::Reply(bytes), None) = (options.refuse, &options.tls) {
                        conns.spawn(async move {
                            let mut conn = conn;
                            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                                let _ = conn.write_all(bytes).await;
                                let _ = conn.shutdown().await;
                            })
                            .await;
                        });
                    }
                    continue;
                };
                counts.accepted.fetch_add(1, Ordering::Relaxed);
                let handler = Arc::clone(&handler);
                let tls = options.tls.clone();
                let signal = stop.clone();
                let id = options.id.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    let conn = match (tls, conn) {
                        (Some(tls), Conn::Tcp(tcp)) => match tls::handshake(&tls, tcp).await {
                            Ok(c) => c,
                            Err(e) => {
                                temblor_shim::tracing::warn!(connector = %id, peer = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                        },
                        (_, conn) => conn,
                    };
                    handler(conn, peer, signal).await;
                });
            }
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(options.grace, drain).await.is_err() {
        temblor_shim::tracing::debug!(connector = %options.id, open = conns.len(), "closing connections still open after the grace period");
        conns.shutdown().await;
    }
}
