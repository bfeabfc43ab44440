//! Checks that the active compiler is the one `rust-toolchain.toml` pins.
//!
//! Plugins and the engine must be built by the same rustc: abi_stable checks layouts, but
//! only one compiler gives the timings and the plugin manifests this project reports.

use anyhow::{Context, Result, bail};

use crate::util::project_root;

/// The `channel = "..."` of `rust-toolchain.toml`.
pub fn pinned() -> Result<String> {
    let path = project_root().join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .next()
        .with_context(|| format!("{} has no `channel = \"...\"`", path.display()))
}

/// Fails with what differs and how to fix it when the active rustc is not the pinned one.
pub fn check() -> Result<()> {
    let pinned = pinned()?;
    let active = rustc_version::version_meta().context("cannot ask rustc for its version")?;
    let active_version = active.semver.to_string();
    if active_version != pinned {
        bail!(
            "rustc {active_version} is active, but rust-toolchain.toml pins {pinned}.\n\
             Fix: `rustup toolchain install {pinned}` and run cargo from the project root \
             (rustup then picks the pin), or unset RUSTUP_TOOLCHAIN / remove a `+toolchain` \
             override."
        );
    }
    Ok(())
}
