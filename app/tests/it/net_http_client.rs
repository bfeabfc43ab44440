//! End to end: the http_client connector against real servers: pooling, HTTP/2, TLS.

#[allow(unused_imports)]
use crate::support;
