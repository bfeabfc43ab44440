//! End to end: tcp and udp connectors on tokio, with TLS checked by `openssl s_client`.

#[allow(unused_imports)]
use crate::support;
