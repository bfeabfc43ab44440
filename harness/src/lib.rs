//! The shared compliance harness: the same checks drive every codec and every connector,
//! through the ABI objects the engine uses (`plugin_module().new_codec()` and friends), so what
//! passes here behaves the same loaded from a file.
//!
//! A plugin crate adds `temblor-harness` as a dev-dependency and calls, from its
//! `tests/it/main.rs`, [`codec::compliance`] or the [`connector`] checks.

pub mod codec;
pub mod connector;

use temblor_shim::{Object, Value};

/// The non-empty lines of a data set shipped in `examples/data/` (e.g. `data.json.xz`),
/// decompressed by the `xz` tool rather than by code under test.
///
/// # Panics
/// When the file is missing or `xz` fails.
#[must_use]
pub fn data_lines(file: &str) -> Vec<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/data")
        .join(file);
    let output = std::process::Command::new("xz")
        .arg("-dc")
        .arg(&path)
        .output()
        .expect("the xz tool runs");
    assert!(
        output.status.success(),
        "xz -dc {} failed: {output:?}",
        path.display()
    );
    output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
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
