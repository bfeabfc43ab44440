//! A plugin as release builds ship it: the source of every plugin crate's `<lib>_lto` example,
//! a cdylib of its own, so that cargo applies the release profile's LTO (it applies none to the
//! crate's own cdylib, which is also an rlib). Linking the crate is all it takes: the cdylib
//! exports the crate's library header. One file for all plugins (`path = "../../shim/lto.rs"`
//! in each plugin's Cargo.toml): `link_plugin!` finds the library from the example's name.

temblor_shim::link_plugin!();
