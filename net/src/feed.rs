//! The source side of the network connectors: the tasks of a source queue what they read for
//! `pull` through a [`Feed`], and the source takes it from its [`Fed`] end, which owns the
//! tasks (an acceptor and its connections, or a subscription). [`ChunkServer`] is the whole
//! source of `tcp_server` and `unix_server`: each connection a stream of raw chunks.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use temblor_shim::{ErrorKind, Notify, Object, PluginError, Pull, SourceBatch, Value, tracing};
use tokio::io::AsyncReadExt;

use crate::{
    Service, StopSignal,
    acceptor::{self, Counts, Listener, Options},
    conn::Conn,
    inbox::{self, Closed, Drain, Inbox, Outbox},
};

/// How a [`Fed`] source takes in what its tasks read.
#[derive(Debug, Clone, Copy)]
pub struct Intake {
    /// What the tasks, together, may queue ahead of `pull`.
    pub read_ahead: usize,
    /// The most items one `pull` takes.
    pub pull_items: usize,
    /// The most bytes one `pull` appends (it stops after the item that crosses this).
    pub pull_bytes: usize,
    /// Without a wake-up from the engine: how long `pull` waits for input.
    pub wait: Duration,
    /// After a stop: how long the tasks get to end before they are aborted.
    pub grace: Duration,
    /// The task whose end closes the queue, for the error (`"tcp acceptor"`).
    pub task: &'static str,
}

impl Intake {
    /// The intake of the `task` whose end closes the queue: `read_ahead` items queued ahead of
    /// `pull`, `grace` for the tasks to end after a stop; at most 1024 items or about 1 MiB per
    /// pull, and a 100 ms wait for input when the engine gave no wake-up.
    #[must_use]
    pub const fn new(task: &'static str, read_ahead: usize, grace: Duration) -> Self {
        Self {
            read_ahead,
            pull_items: 1024,
            pull_bytes: 1024 * 1024,
            wait: Duration::from_millis(100),
            grace,
            task,
        }
    }

    /// The same, taking at most `pull_items` per pull.
    #[must_use]
    pub const fn pull_items(self, pull_items: usize) -> Self {
        Self { pull_items, ..self }
    }
}

/// Implements the shim's `Source` for a struct whose field `fed` is a [`Fed`] and whose field
/// `streams` hands its items over ([`HandOver`]).
#[macro_export]
macro_rules! fed_source {
    ($source:ty) => {
        impl ::temblor_shim::Source for $source {
            fn pull(
                &mut self,
                out: &mut ::temblor_shim::SourceBatch,
            ) -> Result<::temblor_shim::Pull, ::temblor_shim::PluginError> {
                self.fed.pull_to(out, &mut self.streams)
            }

            fn set_notify(&mut self, notify: ::temblor_shim::Notify) -> bool {
                self.fed.set_notify(notify)
            }
        }
    };
}

/// What a source's tasks hand to `pull`, and the stream ids of their connections. The tasks
/// share it (in an `Arc`).
#[derive(Debug)]
pub struct Feed<M> {
    outbox: Outbox<M>,
    next_stream: AtomicU64,
}

impl<M> Feed<M> {
    /// A fresh stream id: 1, 2, 3, ... (stream 0 is the stream of frames pushed without one).
    pub fn next_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `msg` for `pull`, waiting while the queue is full; `false` when the source stops
    /// first or is gone.
    pub async fn send(&self, msg: M, stop: &mut StopSignal) -> bool {
        tokio::select! {
            sent = self.outbox.send(msg) => sent.is_ok(),
            () = stop.stopped() => false,
        }
    }
}

/// What a source keeps of its streams, which puts each item its tasks queued into the batch.
pub trait HandOver<M> {
    /// Puts `msg` into `out`.
    fn hand_over(&mut self, msg: M, out: &mut SourceBatch);
}

/// The source's end of a [`Feed`], and the service running the tasks that send into it:
/// dropping it stops and joins them.
#[derive(Debug)]
pub struct Fed<M> {
    inbox: Inbox<M>,
    intake: Intake,
    service: Service,
}

impl<M: Send + 'static> Fed<M> {
    /// A queue and a service on the plugin's runtime.
    ///
    /// # Errors
    /// The runtime cannot start.
    pub fn new(intake: Intake) -> Result<(Self, Feed<M>), PluginError> {
        let handle = crate::runtime::handle()?;
        let (outbox, inbox) = inbox::channel(intake.read_ahead, handle.clone());
        let fed = Self {
            inbox,
            intake,
            service: Service::new(handle, intake.grace),
        };
        let feed = Feed {
            outbox,
            next_stream: AtomicU64::new(1),
        };
        Ok((fed, feed))
    }

    /// The service the tasks run on.
    pub fn service(&mut self) -> &mut Service {
        &mut self.service
    }

    /// Accepts connections on `listener` until the source stops (see [`acceptor::serve`]),
    /// each handled by `handler(conn, peer, stop, feed)`. An acceptor that ends by itself
    /// wakes `pull`, which then finds the queue closed. The counters of the acceptor.
    pub fn accept<H, F>(
        &mut self,
        listener: Listener,
        options: Options,
        feed: Feed<M>,
        handler: H,
    ) -> Arc<Counts>
    where
        H: Fn(Conn, String, StopSignal, Arc<Feed<M>>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let counts = Arc::new(Counts::default());
        let signal = self.service.signal();
        let task_counts = Arc::clone(&counts);
        let waker = feed.outbox.clone();
        let feed = Arc::new(feed);
        self.service.spawn(async move {
            let watch = signal.clone();
            acceptor::serve(
                listener,
                options,
                task_counts,
                signal,
                move |conn, peer, stop| handler(conn, peer, stop, Arc::clone(&feed)),
            )
            .await;
            if !watch.is_stopped() {
                // `pull` sees the queue closed once every sender is gone: wake it to look.
                waker.wake();
            }
        });
        counts
    }

    /// One `pull`: hands each item queued to `hand_over` (without waiting when the engine gave
    /// its wake-up), up to the intake's limits or until `hand_over` says `false`.
    ///
    /// # Errors
    /// Every task is gone (the intake's `task` stopped unexpectedly), or what `hand_over`
    /// returns.
    pub fn pull(
        &mut self,
        out: &mut SourceBatch,
        mut hand_over: impl FnMut(M, &mut SourceBatch) -> Result<bool, PluginError>,
    ) -> Result<Pull, PluginError> {
        let mut drain = Drain::new(self.intake.pull_items, self.intake.wait);
        let task = self.intake.task;
        while let Some(msg) = drain.next(&mut self.inbox).map_err(|Closed| {
            PluginError::new(
                ErrorKind::Other,
                format_args!("the {task} stopped unexpectedly"),
            )
        })? {
            if !hand_over(msg, out)? || out.byte_len() >= self.intake.pull_bytes {
                break;
            }
        }
        Ok(drain.pull())
    }

    /// A `pull` that hands every item to `streams` (see [`Fed::pull`]).
    ///
    /// # Errors
    /// Every task is gone.
    pub fn pull_to(
        &mut self,
        out: &mut SourceBatch,
        streams: &mut impl HandOver<M>,
    ) -> Result<Pull, PluginError> {
        self.pull(out, |msg, out| {
            streams.hand_over(msg, out);
            Ok(true)
        })
    }

    /// The source's `set_notify`: from now on every item queued wakes the engine.
    pub fn set_notify(&mut self, notify: Notify) -> bool {
        self.inbox.set_notify(notify)
    }
}

/// What a connection's task of a [`ChunkServer`] tells `pull`, in the order of its connection.
#[derive(Debug)]
pub enum Chunk {
    /// A connection was accepted (and its TLS handshake done).
    Start {
        /// Its stream.
        stream: u64,
        /// Its `meta.peer`.
        peer: String,
    },
    /// Bytes read from it.
    Bytes {
        /// Its stream.
        stream: u64,
        /// What one read gave.
        bytes: Vec<u8>,
    },
    /// It closed (or reading it failed).
    End {
        /// Its stream.
        stream: u64,
    },
}

/// A source whose every connection is a stream of the raw chunks read from it, with
/// `meta.peer`: started with the connection, ended when the client closes or reading fails.
#[derive(Debug)]
pub struct ChunkServer {
    /// Where it listens, for the log.
    at: String,
    fed: Fed<Chunk>,
    counts: Arc<Counts>,
    /// Streams started and not ended, and bytes handed over, for the log.
    open: u64,
    bytes: u64,
}

impl ChunkServer {
    /// Starts accepting on `listener`: each client's reads, of at most `max_frame` bytes, are
    /// the chunks of its stream.
    ///
    /// # Errors
    /// The runtime cannot start.
    pub fn start(
        listener: Listener,
        options: Options,
        max_frame: usize,
        intake: Intake,
    ) -> Result<Self, PluginError> {
        let at = listener.local();
        let id: Arc<str> = Arc::from(options.id.as_str());
        let (mut fed, feed) = Fed::new(intake)?;
        let counts = fed.accept(listener, options, feed, move |conn, peer, stop, feed| {
            read_chunks(conn, peer, stop, feed, Arc::clone(&id), max_frame)
        });
        Ok(Self {
            at,
            fed,
            counts,
            open: 0,
            bytes: 0,
        })
    }

    /// Stops the acceptor and every client's task and waits for them: every socket is closed
    /// when this returns. Idempotent.
    pub fn stop(&mut self) {
        self.fed.service().stop();
    }

    /// The source's `pull`.
    ///
    /// # Errors
    /// The acceptor stopped unexpectedly.
    pub fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        let (open, bytes) = (&mut self.open, &mut self.bytes);
        self.fed.pull(out, |chunk, out| {
            match chunk {
                Chunk::Start { stream, peer } => {
                    let mut meta = Object::with_capacity(1);
                    meta.insert("peer", Value::from(peer));
                    *open += 1;
                    out.start_stream(stream, Value::Object(meta));
                }
                Chunk::Bytes {
                    stream,
                    bytes: chunk,
                } => {
                    *bytes += chunk.len() as u64;
                    out.push_stream(stream, &chunk);
                }
                Chunk::End { stream } => {
                    *open = open.saturating_sub(1);
                    out.end_stream(stream);
                }
            }
            Ok(true)
        })
    }

    /// The source's `set_notify`.
    pub fn set_notify(&mut self, notify: Notify) -> bool {
        self.fed.set_notify(notify)
    }
}

impl Drop for ChunkServer {
    fn drop(&mut self) {
        self.stop();
        tracing::info!(
            at = %self.at,
            accepted = self.counts.accepted.load(Ordering::Relaxed),
            refused = self.counts.refused.load(Ordering::Relaxed),
            open = self.open,
            bytes = self.bytes,
            "server closed"
        );
    }
}

/// Reads one client until it closes, an error, or the source stops: its stream's start, its
/// chunks and (unless the source stopped) its end.
async fn read_chunks(
    mut conn: Conn,
    peer: String,
    mut stop: StopSignal,
    feed: Arc<Feed<Chunk>>,
    id: Arc<str>,
    max_frame: usize,
) {
    let stream = feed.next_stream();
    let start = Chunk::Start {
        stream,
        peer: peer.clone(),
    };
    if !feed.send(start, &mut stop).await {
        return;
    }
    tracing::debug!(connector = %id, peer = %peer, stream, "client connected");
    let mut buf = vec![0; max_frame];
    let mut bytes = 0_u64;
    // Why it ended (`None`: the source stopped, and the stream needs no end).
    let why = loop {
        let read = tokio::select! {
            read = conn.read(&mut buf) => read,
            () = stop.stopped() => break None,
        };
        match read {
            Ok(0) => break Some("the client closed".to_owned()),
            Ok(n) => {
                bytes += n as u64;
                let chunk = Chunk::Bytes {
                    stream,
                    bytes: buf[..n].to_vec(),
                };
                if !feed.send(chunk, &mut stop).await {
                    break None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Some(format!("reading failed: {e}")),
        }
    };
    tracing::debug!(connector = %id, peer = %peer, stream, bytes, why = why.as_deref().unwrap_or("the server stopped"), "client disconnected");
    if why.is_some() {
        // The source may be stopping meanwhile: then nobody needs the end.
        let _ = feed.send(Chunk::End { stream }, &mut stop).await;
    }
}
