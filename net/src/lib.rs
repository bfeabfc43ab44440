//! What the network plugins share, beside the shim: the tokio runtime a plugin owns, the
//! acceptor with its connection limit, address parsing, TLS, stop and join, and the inbox
//! through which network tasks hand data to `pull` and wake the engine.
//!
//! A plugin depends on this crate as it does on `temblor-compress`; it never depends on
//! `core`. Nothing of tokio crosses the plugin boundary: each `cdylib` linking this crate has
//! its own copy of its statics, so its own runtime ([`runtime`]), which it stops in the root
//! module's `shutdown` (`export_plugin! { ..., shutdown: temblor_net::shutdown }`). The
//! monolith links one copy, so every network connector there shares one runtime.
//!
//! - [`runtime::handle`]: the plugin's runtime (built on first use).
//! - [`addr`]: `host:port` parsing and binding, with messages naming the connector and field.
//! - [`acceptor::serve`]: accepts connections up to a limit; stops and joins them.
//! - [`feed`]: what a source's tasks hand to `pull`; the raw-chunk stream server.
//! - [`check`]: config values serde cannot check.
//! - [`Service`]: the tasks of one source or sink instance: stopped and joined when dropped.
//! - [`inbox`]: a bounded queue from network tasks to `pull` that wakes the engine.
//! - [`tls`]: rustls configs from `tls = { cert, key }` (servers) and `tls = { ca }` (clients).
//! - [`conn::Conn`]: a TCP, TLS or Unix connection as one type.
//!
//! **Architecture Invariant:** no runtime handle, future or waker crosses the plugin boundary;
//! the engine learns of data only through the shim's `Notify`.

pub mod acceptor;
pub mod addr;
pub mod backoff;
pub mod check;
pub mod conn;
pub mod feed;
pub mod inbox;
pub mod retry;
pub mod runtime;
mod service;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use runtime::shutdown;
pub use service::{Service, StopSignal};

/// Re-exported so that every network plugin builds the same tokio, hyper and rustls (one
/// feature set for the workspace, one build). `tower_service` is the trait a connector of
/// `hyper_util::client::legacy::Client` implements.
pub use {http_body_util, hyper, hyper_util, rustls, tokio, tokio_rustls, tower_service};
