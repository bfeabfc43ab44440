//! The shared compliance harness: the same checks drive every codec and every connector,
//! through the ABI objects the engine uses (`plugin_module().new_codec()` and friends), so what
//! passes here behaves the same loaded from a file.
//!
//! A plugin crate adds `temblor-harness` as a dev-dependency and calls, from its
//! `tests/it/main.rs`, [`codec::compliance`] or the [`connector`] checks.

pub mod codec;
pub mod connector;

use temblor_shim::{Object, Value};

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
