//! End to end: the http_server connector (hyper) with real clients: curl over HTTP/1.1, HTTP/2 (h2c) and TLS, and wrk.

#[allow(unused_imports)]
use crate::support;
