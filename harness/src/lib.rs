//! The test kit of the workspace: the compliance checks every codec and connector runs (through
//! the ABI objects the engine uses, `plugin_module().new_codec()` and friends, so what passes
//! here behaves the same loaded from a file), and the pieces the tests of several crates share.
//!
//! - [`codec::compliance`] and [`connector::compliance`]: one call per plugin crate, from its
//!   `tests/it/main.rs`; [`connector::Streams`] records what a source hands over, by stream.
//! - [`TempDir`], [`net::free_port`], [`net::Peer`] (a TCP, UDP or Unix socket peer with
//!   timeouts), [`process::Spawned`] (a child process killed when dropped), [`process::signal`]
//!   (SIGTERM and SIGINT without a `kill` process), [`process::wait_until`].
//! - [`alloc::Counting`], the allocator the allocation-counting unit tests install.
//! - [`deploy::Deployment`], the deployment file (`temblor run`'s TOML) built from types.
//!
//! A crate adds `temblor-harness` as a dev-dependency; nothing here is shipped.

pub mod alloc;
pub mod codec;
pub mod connector;
pub mod deploy;
pub mod net;
pub mod process;
mod temp;

use std::{io::Read as _, path::Path};

use temblor_shim::{Object, Value};
pub use temp::TempDir;

/// The repository root.
#[must_use]
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The text of an xz file, decompressed with xz2 (liblzma), not by the code under test.
///
/// # Panics
/// When the file is missing or is not xz.
#[must_use]
pub fn xz_text(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    xz2::read::XzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("xz -d {}: {e}", path.display()));
    text
}

/// The non-empty lines of a data set shipped in `examples/data/` (e.g. `data.json.xz`).
///
/// # Panics
/// When the file is missing or is not xz.
#[must_use]
pub fn data_lines(file: &str) -> Vec<Vec<u8>> {
    xz_text(&root().join("examples/data").join(file))
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.as_bytes().to_vec())
        .collect()
}

/// A config table from key/value pairs.
#[must_use]
pub fn config(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().cloned().collect::<Object>())
}

/// `config` with one more key that no plugin knows.
#[must_use]
pub fn with_unknown_key(config: &Value) -> Value {
    let mut object = config.as_object().cloned().unwrap_or_default();
    object.insert("no_such_key_anywhere", Value::Bool(true));
    Value::Object(object)
}

/// A path as a config value.
#[must_use]
pub fn path_value(path: &Path) -> Value {
    Value::from(path.display().to_string())
}

/// Each frame as UTF-8 text.
///
/// # Panics
/// When a frame is not UTF-8.
#[must_use]
pub fn texts<B: AsRef<[u8]>>(frames: &[B]) -> Vec<String> {
    frames
        .iter()
        .map(|f| String::from_utf8(f.as_ref().to_vec()).expect("utf-8"))
        .collect()
}

/// Certificates for TLS tests (feature `tls`).
#[cfg(feature = "tls")]
pub mod tls {
    use std::path::{Path, PathBuf};

    /// A certificate authority and a server certificate it signed, for `localhost` and
    /// `127.0.0.1`, written to `dir` as PEM: `(ca.pem, server.pem, server.key)`. A client that
    /// trusts `ca.pem` (`curl --cacert`, `openssl s_client -CAfile`, a connector's `tls.ca`)
    /// accepts the server. `dir` is created when missing.
    ///
    /// # Panics
    /// When a certificate cannot be made or written.
    #[must_use]
    pub fn files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let ca_key = KeyPair::generate().expect("a key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "temblor test CA");
        let ca = ca_params.self_signed(&ca_key).expect("the CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&key, &issuer)
            .expect("the server certificate");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };
        (
            write("ca.pem", ca.pem()),
            write("server.pem", cert.pem()),
            write("server.key", key.serialize_pem()),
        )
    }
}
