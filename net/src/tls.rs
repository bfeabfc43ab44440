//! TLS from a connector's config, on rustls with the ring provider:
//! `tls = { cert = "server.pem", key = "server.key" }` on servers, `tls = { ca = "ca.pem" }`
//! (or `tls = {}` for the system's roots) on clients. A missing file, a file with no
//! certificate or key in it, or a key that does not match its certificate is an error at
//! start-up naming the connector, the field and the file.

use std::{path::PathBuf, sync::Arc, time::Duration};

use rustls::{ClientConfig, RootCertStore, ServerConfig, crypto::CryptoProvider};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use temblor_shim::{PluginError, serde::Deserialize};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::conn::Conn;

/// How long a TLS handshake may take before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server's `tls` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct ServerTls {
    /// PEM file with the certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A client's `tls` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct ClientTls {
    /// PEM file with the certificates to trust; without it, the system's roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The name to check the server's certificate against; default: the host of `url`.
    #[serde(default)]
    pub server_name: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(field: &str, path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, PluginError> {
    let read = std::fs::read(path)
        .map_err(|e| PluginError::io(format_args!("`{field}` {}", path.display()), &e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read)
        .collect::<Result<_, _>>()
        .map_err(|e| PluginError::config(format_args!("`{field}` {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(PluginError::config(format_args!(
            "`{field}` {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

impl ServerTls {
    /// The server's rustls config, offering `alpn` (say `[b"h2", b"http/1.1"]`).
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or key, or the key does not fit.
    pub fn config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, PluginError> {
        let chain = certs("tls.cert", &self.cert)?;
        let key_pem = std::fs::read(&self.key)
            .map_err(|e| PluginError::io(format_args!("`tls.key` {}", self.key.display()), &e))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            PluginError::config(format_args!(
                "`tls.key` {}: no usable PEM private key in it ({e})",
                self.key.display()
            ))
        })?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PluginError::config(format_args!("TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                PluginError::config(format_args!(
                    "`tls.cert` {} and `tls.key` {} do not make a usable pair: {e}",
                    self.cert.display(),
                    self.key.display()
                ))
            })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// An acceptor for [`handshake`].
    ///
    /// # Errors
    /// As for [`ServerTls::config`].
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Result<TlsAcceptor, PluginError> {
        self.config(alpn).map(TlsAcceptor::from)
    }
}

impl ClientTls {
    /// The client's rustls config, offering `alpn`.
    ///
    /// # Errors
    /// The `ca` file cannot be read or holds no certificate; no system roots were found.
    pub fn config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, PluginError> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for cert in certs("tls.ca", ca)? {
                    roots.add(cert).map_err(|e| {
                        PluginError::config(format_args!("`tls.ca` {}: {e}", ca.display()))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(PluginError::config(format_args!(
                        "no `tls.ca` given and no system root certificates found"
                    )));
                }
            }
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| PluginError::config(format_args!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The name to check the server against: `server_name`, or `host`.
    ///
    /// # Errors
    /// Not a DNS name or IP address.
    pub fn name(&self, host: &str) -> Result<ServerName<'static>, PluginError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned())
            .map_err(|e| PluginError::config(format_args!("TLS server name {name:?}: {e}")))
    }

    /// A connector and the server name, for [`connect`].
    ///
    /// # Errors
    /// As for [`ClientTls::config`] and [`ClientTls::name`].
    pub fn connector(
        &self,
        host: &str,
        alpn: &[&[u8]],
    ) -> Result<(TlsConnector, ServerName<'static>), PluginError> {
        Ok((TlsConnector::from(self.config(alpn)?), self.name(host)?))
    }
}

/// The host part of `host:port` (`[::1]:80` gives `::1`).
#[must_use]
pub fn host_of(host_port: &str) -> &str {
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The server side of a TLS handshake on an accepted connection, bounded in time.
///
/// # Errors
/// The handshake failed or took longer than [`HANDSHAKE_TIMEOUT`].
pub async fn handshake(acceptor: &TlsAcceptor, tcp: TcpStream) -> std::io::Result<Conn> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(s) => Ok(Conn::Tls(Box::new(s?.into()))),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// The client side: TLS over `tcp` to `name`, bounded in time.
///
/// # Errors
/// As for [`handshake`] (a certificate the `ca` does not vouch for among them).
pub async fn connect(
    connector: &TlsConnector,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> std::io::Result<Conn> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(s) => Ok(Conn::Tls(Box::new(s?.into()))),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "temblor-net-tls-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_generated_pair_loads_and_a_mismatched_key_is_refused() {
        let dir = temp();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(&dir, "a.pem", &a.cert.pem());
        let key = write(&dir, "a.key", &a.signing_key.serialize_pem());
        let other = write(&dir, "b.key", &b.signing_key.serialize_pem());
        let ok = ServerTls {
            cert: cert.clone(),
            key,
        };
        assert!(ok.config(&[b"h2"]).is_ok());
        let bad = ServerTls {
            cert: cert.clone(),
            key: other,
        };
        let e = bad.config(&[]).unwrap_err();
        assert!(e.message.contains("do not make a usable pair"), "{e}");
        let client = ClientTls {
            ca: Some(cert),
            server_name: None,
        };
        assert!(client.config(&[]).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_and_empty_files_name_the_field_and_file() {
        let dir = temp();
        let empty = write(&dir, "empty.pem", "not pem\n");
        let missing = ServerTls {
            cert: dir.join("nope.pem"),
            key: empty.clone(),
        };
        let e = missing.config(&[]).unwrap_err();
        assert!(
            e.message.contains("`tls.cert`") && e.message.contains("nope.pem"),
            "{e}"
        );
        let client = ClientTls {
            ca: Some(empty),
            server_name: None,
        };
        let e = client.config(&[]).unwrap_err();
        assert!(e.message.contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hosts_are_taken_from_host_port() {
        assert_eq!(host_of("localhost:443"), "localhost");
        assert_eq!(host_of("[::1]:443"), "::1");
    }
}
