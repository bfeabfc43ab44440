//! The `temblor` binary end to end: real plugin files (or, built with `--features monolith`,
//! the same crates linked in), real deployments, real files.
//!
//! The plugin-mode tests load `target/plugins` and `target/test-plugins`, which
//! `cargo xtask test` builds first.

mod support;

#[cfg(all(unix, not(feature = "monolith")))]
mod abi_older;
#[cfg(unix)]
mod api;
#[cfg(unix)]
mod checkpoint;
#[cfg(all(unix, not(feature = "monolith")))]
mod faults;
#[cfg(not(feature = "monolith"))]
mod http_delivery;
#[cfg(not(feature = "monolith"))]
mod loading;
#[cfg(unix)]
mod net_http_client;
#[cfg(unix)]
mod net_http_server;
#[cfg(unix)]
mod net_runtime;
#[cfg(unix)]
mod net_tcp_udp;
#[cfg(unix)]
mod net_unix;
#[cfg(unix)]
mod net_ws;
#[cfg(all(unix, not(feature = "monolith")))]
mod pinning;
mod pipeline;
#[cfg(all(unix, not(feature = "monolith")))]
mod reload;
#[cfg(not(feature = "monolith"))]
mod restart;
mod running;
#[cfg(unix)]
mod scale_kafka;
#[cfg(unix)]
mod scale_nats;
#[cfg(all(unix, not(feature = "monolith")))]
mod security;
#[cfg(unix)]
mod shutdown;
mod stateful;
#[cfg(unix)]
mod streams;
#[cfg(unix)]
mod syslog;
