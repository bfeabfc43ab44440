//! The `temblor` binary end to end: real plugin files (or, built with `--features monolith`,
//! the same crates linked in), real deployments, real files.
//!
//! The plugin-mode tests load `target/plugins` and `target/test-plugins`, which
//! `cargo xtask test` builds first.

mod support;

#[cfg(not(feature = "monolith"))]
mod loading;
mod pipeline;
mod running;
#[cfg(all(unix, not(feature = "monolith")))]
mod security;
