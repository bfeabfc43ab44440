//! End to end: ws_server and ws_client, with a real WebSocket client (Debian's python3-websockets).

#[allow(unused_imports)]
use crate::support;
