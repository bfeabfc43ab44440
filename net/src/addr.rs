//! `host:port` addresses from a connector's config, and listening on them, with messages that
//! name the connector and the field.

use std::net::{SocketAddr, ToSocketAddrs};

use temblor_shim::PluginError;

/// Strips one of `schemes` (`"http://"`, ...) and a trailing `/` from `url`: the `host:port`
/// left, and the scheme found (`""` for none).
#[must_use]
pub fn split_scheme<'a>(url: &'a str, schemes: &[&'static str]) -> (&'static str, &'a str) {
    for scheme in schemes {
        if let Some(rest) = url.strip_prefix(scheme) {
            return (scheme, rest.strip_suffix('/').unwrap_or(rest));
        }
    }
    ("", url.strip_suffix('/').unwrap_or(url))
}

/// The addresses `host_port` resolves to (a name is looked up, `localhost` included).
///
/// # Errors
/// A config error naming `field`: not `host:port`, or no address.
pub fn resolve(field: &str, host_port: &str) -> Result<Vec<SocketAddr>, PluginError> {
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| {
            PluginError::config(format_args!(
                "`{field}` must be host:port, found {host_port:?}: {e}"
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(PluginError::config(format_args!(
            "`{field}` {host_port:?} resolves to no address"
        )));
    }
    Ok(addrs)
}

/// Binds a TCP listener on the first of `addrs` that works (so that a port in use is
/// reported when the engine starts, not later), non-blocking for tokio.
///
/// # Errors
/// An I/O error naming the address of the last failure.
pub fn bind_tcp(addrs: &[SocketAddr]) -> Result<std::net::TcpListener, PluginError> {
    let mut last = None;
    for addr in addrs {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)
                    .map_err(|e| PluginError::io(format_args!("{addr}"), &e))?;
                return Ok(l);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => PluginError::io(format_args!("cannot listen on {addr}"), &e),
        None => PluginError::config(format_args!("no address to listen on")),
    })
}

/// Like [`bind_tcp`], with room for `backlog` connections waiting to be accepted (the kernel
/// caps it at `net.core.somaxconn`). A std listener has 128: a burst of thousands of clients
/// overflows that, and the kernel drops their handshakes, which they retry a second (then
/// two, four...) later. Call it inside the runtime (`handle.enter()`).
///
/// # Errors
/// As for [`bind_tcp`].
pub fn listen_tcp(
    addrs: &[SocketAddr],
    backlog: u32,
) -> Result<tokio::net::TcpListener, PluginError> {
    let mut last = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        // As std's `TcpListener::bind` does on Unix: SO_REUSEADDR.
        let listening = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(*addr)?;
            s.listen(backlog)
        });
        match listening {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => PluginError::io(format_args!("cannot listen on {addr}"), &e),
        None => PluginError::config(format_args!("no address to listen on")),
    })
}

/// Binds a UDP socket on the first of `addrs` that works, non-blocking for tokio.
///
/// # Errors
/// As for [`bind_tcp`].
pub fn bind_udp(addrs: &[SocketAddr]) -> Result<std::net::UdpSocket, PluginError> {
    let mut last = None;
    for addr in addrs {
        match std::net::UdpSocket::bind(addr) {
            Ok(s) => {
                s.set_nonblocking(true)
                    .map_err(|e| PluginError::io(format_args!("{addr}"), &e))?;
                return Ok(s);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => PluginError::io(format_args!("cannot bind {addr}"), &e),
        None => PluginError::config(format_args!("no address to bind")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_trailing_slashes_are_stripped() {
        assert_eq!(
            split_scheme("http://127.0.0.1:80/", &["http://", "https://"]),
            ("http://", "127.0.0.1:80")
        );
        assert_eq!(split_scheme("h:1", &["http://"]), ("", "h:1"));
    }

    #[test]
    fn bad_addresses_name_the_connector_and_field() {
        let e = resolve("url", "no-port").unwrap_err();
        assert!(e.message.contains("`url` must be host:port"), "{e}");
        assert_eq!(resolve("url", "localhost:1").unwrap()[0].port(), 1);
    }

    #[test]
    fn a_listener_with_a_long_backlog_accepts_a_burst_and_refuses_a_taken_port() {
        let rt = crate::runtime::handle().unwrap();
        let _inside = rt.enter();
        let addrs = resolve("url", "127.0.0.1:0").unwrap();
        let l = listen_tcp(&addrs, 1024).unwrap();
        let at = l.local_addr().unwrap();
        // More than std's 128 connect before anything accepts.
        let clients: Vec<_> = (0..300)
            .map(|_| std::net::TcpStream::connect(at).unwrap())
            .collect();
        let accepted = rt.block_on(async {
            let mut n = 0;
            while n < clients.len() {
                let _ = l.accept().await.unwrap();
                n += 1;
            }
            n
        });
        assert_eq!(accepted, 300);
        let e = listen_tcp(&[at], 16).unwrap_err().message;
        assert!(e.contains(&format!("cannot listen on {at}")), "{e}");
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_it() {
        let l = bind_tcp(&resolve("url", "127.0.0.1:0").unwrap()).unwrap();
        let taken = l.local_addr().unwrap();
        let e = bind_tcp(&[taken]).unwrap_err();
        assert!(
            e.message.contains(&format!("cannot listen on {taken}")),
            "{e}"
        );
    }
}
