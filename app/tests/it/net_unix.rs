//! End to end: unix_server and unix_client, with socat.

#[allow(unused_imports)]
use crate::support;
