//! The tokio runtime of this copy of the crate: one per plugin library (each `cdylib` has its
//! own statics), one for the whole monolith.
//!
//! Built on first use, with `TEMBLOR_NET_THREADS` worker threads (default 2, at most 64) named
//! `temblor-net`. [`shutdown`] stops it and joins its threads; the next [`handle`] would build
//! a new one (a reloaded library is never asked again, the monolith never shuts it down).

use std::{sync::Mutex, time::Duration};

use temblor_shim::PluginError;
use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// How long [`shutdown`] waits for tasks that do not stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// The worker threads a runtime gets: `TEMBLOR_NET_THREADS`, or 2.
#[must_use]
pub fn worker_threads() -> usize {
    std::env::var("TEMBLOR_NET_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(2, |n| n.clamp(1, 64))
}

/// The runtime's handle, building the runtime first if there is none.
///
/// # Errors
/// The runtime cannot be built (no threads can be started).
pub fn handle() -> Result<Handle, PluginError> {
    let mut rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = rt.as_ref() {
        return Ok(rt.handle().clone());
    }
    let built = Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .thread_name("temblor-net")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| PluginError::io("cannot start the network runtime", &e))?;
    let handle = built.handle().clone();
    *rt = Some(built);
    Ok(handle)
}

/// Runs `register` inside the runtime (building it first if there is none): for taking over a
/// bound std socket (`UdpSocket::from_std`, [`Listener::tcp`](crate::acceptor::Listener::tcp),
/// ...), which registers it with the runtime.
///
/// # Errors
/// The runtime cannot be built, or `register` fails: an `Io` error saying `what`.
pub fn register<T>(
    what: impl std::fmt::Display,
    register: impl FnOnce() -> std::io::Result<T>,
) -> Result<T, PluginError> {
    let handle = handle()?;
    let _inside = handle.enter();
    register().map_err(|e| PluginError::io(what, &e))
}

/// Stops the runtime (if one runs) and joins its threads, waiting up to 2 s for tasks that
/// do not stop. For the root module's `shutdown`: the host builds nothing more from this
/// library.
pub fn shutdown() {
    let rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(rt) = rt {
        rt.shutdown_timeout(SHUTDOWN_WAIT);
        temblor_shim::tracing::debug!("network runtime stopped");
    }
}

/// Whether a runtime runs now (for tests).
#[must_use]
pub fn running() -> bool {
    RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}
