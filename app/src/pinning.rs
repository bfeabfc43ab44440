//! Plugin pinning: a deployment's `[[plugin]]` tables (`name`, `sha256`) say from which file
//! content each named plugin may be loaded. See `docs/security.md`.
//!
//! The loader hashes every plugin file before it opens it, then:
//! 1. a file whose name says it is a pinned plugin, by the naming convention of
//!    `cargo xtask build-plugins` (`libconnector_file.so` is `file`, `libcodec_json.so` is
//!    `json`, `libtest_plugin_faulty.so` is `faulty`), and whose hash is not the pinned one is
//!    refused **before it is opened**: none of its code runs;
//! 2. a file that loaded and whose plugin declares a pinned name but whose hash is not the
//!    pinned one (a renamed file) is refused and not registered. Its library was opened, so its
//!    initializers did run: the first check is the one that keeps code from running, this one
//!    keeps it from being used.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::File,
    io::{self, Read as _},
    path::Path,
};

use sha2::{Digest as _, Sha256};
use temblor_core::deploy::Pin;

/// The file prefixes (after the platform's `lib`) of the plugin groups, in the naming
/// convention of `cargo xtask build-plugins`.
const GROUP_PREFIXES: [&str; 3] = ["connector_", "codec_", "test_plugin_"];

/// The pins of one deployment, by plugin name.
#[derive(Debug, Default, Clone)]
pub struct Pins {
    /// The deployment file, for messages.
    file: String,
    /// By name with `-` written `_` (file names cannot tell them apart).
    by_name: BTreeMap<String, Pin>,
}

/// How names are compared: file names have `_` where plugin names may have `-`.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

impl Pins {
    /// The pins of the deployment `file` (its name is used in messages).
    #[must_use]
    pub fn new(file: &str, pins: Vec<Pin>) -> Self {
        Self {
            file: file.to_owned(),
            by_name: pins.into_iter().map(|p| (normalize(&p.name), p)).collect(),
        }
    }

    /// Every pin.
    pub fn iter(&self) -> impl Iterator<Item = &Pin> {
        self.by_name.values()
    }

    /// The pin of the plugin named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.by_name.get(&normalize(name))
    }

    /// Where a pin is written: `deploy.toml:12:8`.
    #[must_use]
    pub fn place(&self, pin: &Pin) -> String {
        format!("{}:{}:{}", self.file, pin.line, pin.column)
    }

    /// Before a file is opened: refuses it when its name says it is a pinned plugin and its
    /// content has another hash.
    ///
    /// # Errors
    /// One line naming the plugin, where it is pinned, the expected and the actual hash.
    pub fn check_file(&self, path: &Path, sha256: &str) -> Result<(), String> {
        let Some(pin) = plugin_name_of_file(path).and_then(|name| self.get(&name)) else {
            return Ok(());
        };
        if pin.sha256 == sha256 {
            return Ok(());
        }
        Err(format!(
            "its name says it is plugin '{}', pinned at {} to sha256 {}, but the file's sha256 is {}; refusing to load it",
            pin.name,
            self.place(pin),
            pin.sha256,
            sha256
        ))
    }

    /// After a file was loaded: refuses a plugin whose declared name is pinned when the file
    /// has another hash.
    ///
    /// # Errors
    /// One line naming the plugin, where it is pinned, the expected and the actual hash.
    pub fn check_loaded(&self, name: &str, sha256: &str) -> Result<(), String> {
        let Some(pin) = self.get(name) else {
            return Ok(());
        };
        if pin.sha256 == sha256 {
            return Ok(());
        }
        Err(format!(
            "plugin '{name}' is pinned at {} to sha256 {}, but this file's sha256 is {}; not registered (the library was already opened: name plugin files as `cargo xtask build-plugins` does to refuse them before)",
            self.place(pin),
            pin.sha256,
            sha256
        ))
    }
}

/// The plugin a file is named after, by the convention of `cargo xtask build-plugins`:
/// `libconnector_file.so` → `file`, `libcodec_json.so` → `json`,
/// `libtest_plugin_old_shim.so` → `old_shim` (compared with `-` written `_`). None for a file
/// named otherwise.
#[must_use]
pub fn plugin_name_of_file(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file
        .strip_prefix(std::env::consts::DLL_PREFIX)?
        .strip_suffix(std::env::consts::DLL_SUFFIX)?;
    GROUP_PREFIXES
        .iter()
        .find_map(|prefix| stem.strip_prefix(prefix))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// The SHA-256 of a file's content, as 64 lower-case hexadecimal digits.
///
/// # Errors
/// When the file cannot be read.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, sha256: &str) -> Pin {
        Pin {
            name: name.to_owned(),
            sha256: sha256.to_owned(),
            line: 3,
            column: 8,
        }
    }

    fn lib(name: &str) -> String {
        format!(
            "dir/{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    }

    #[test]
    fn file_names_map_to_plugin_names_by_the_build_convention() {
        let name = |f: &str| plugin_name_of_file(Path::new(&lib(f)));
        assert_eq!(name("connector_file").as_deref(), Some("file"));
        assert_eq!(name("connector_tcp_server").as_deref(), Some("tcp_server"));
        assert_eq!(name("codec_json").as_deref(), Some("json"));
        assert_eq!(name("test_plugin_old_shim").as_deref(), Some("old_shim"));
        assert_eq!(name("zz_json_again"), None);
        assert_eq!(name("codec_"), None);
        assert_eq!(plugin_name_of_file(Path::new("dir/random.so.1")), None);
    }

    #[test]
    fn sha256_of_known_contents() {
        let dir = std::env::temp_dir().join(format!("temblor-pinning-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("abc");
        std::fs::write(&file, b"abc").unwrap();
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_file(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            sha256_file(&file).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // More than one read buffer.
        std::fs::write(&file, vec![b'a'; 1_000_000]).unwrap();
        assert_eq!(
            sha256_file(&file).unwrap(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        assert!(sha256_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_named_after_a_pinned_plugin_must_have_its_hash() {
        let good = "a".repeat(64);
        let bad = "b".repeat(64);
        let pins = Pins::new("d.toml", vec![pin("file", &good), pin("old-shim", &good)]);
        let file = lib("connector_file");
        assert_eq!(pins.check_file(Path::new(&file), &good), Ok(()));
        let reason = pins.check_file(Path::new(&file), &bad).unwrap_err();
        assert_eq!(
            reason,
            format!(
                "its name says it is plugin 'file', pinned at d.toml:3:8 to sha256 {good}, but the file's sha256 is {bad}; refusing to load it"
            )
        );
        assert!(
            pins.check_file(Path::new(&lib("test_plugin_old_shim")), &bad)
                .is_err(),
            "'-' in a plugin name is '_' in its file name"
        );
        assert_eq!(pins.check_file(Path::new(&lib("codec_json")), &bad), Ok(()));
        assert_eq!(pins.check_file(Path::new(&lib("other")), &bad), Ok(()));
    }

    #[test]
    fn a_loaded_plugin_with_a_pinned_name_must_have_its_hash() {
        let good = "a".repeat(64);
        let bad = "b".repeat(64);
        let pins = Pins::new("d.toml", vec![pin("file", &good)]);
        assert_eq!(pins.check_loaded("file", &good), Ok(()));
        assert_eq!(pins.check_loaded("json", &bad), Ok(()));
        let reason = pins.check_loaded("file", &bad).unwrap_err();
        assert!(
            reason.starts_with(&format!(
                "plugin 'file' is pinned at d.toml:3:8 to sha256 {good}, but this file's sha256 is {bad}; not registered"
            )),
            "{reason}"
        );
        assert_eq!(Pins::default().iter().count(), 0);
        assert_eq!(pins.iter().count(), 1);
    }
}
