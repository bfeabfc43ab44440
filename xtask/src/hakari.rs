//! `cargo xtask hakari`: keeps the `workspace-hack` crate current.
//!
//! The workspace-hack crate depends on every third-party crate the workspace uses, with the
//! union of the features any member asks for, and every member depends on it. So building one
//! plugin alone (`cargo xtask build-plugins --only file`) compiles shared dependencies with the
//! same features as the full build, and reuses them instead of rebuilding them.
//!
//! Its reach is limited on purpose (`.config/hakari.toml`): the binaries are not traversed and
//! a few crates are left out, so the smallest plugin does not compile what only the binaries or
//! the network plugins need. Those crates may then build with other features in a one-package
//! build than in the full one, which is what `cargo hakari verify` reports: it is not run.
//!
//! Needs `cargo-hakari` (`cargo install cargo-hakari --locked`); `ci/test.sh` installs it.

use anyhow::{Result, bail};

use crate::util::{cargo, run as run_cmd};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Only check that the workspace-hack crate is current (what CI does); change nothing.
    #[arg(long)]
    pub check: bool,
}

/// Whether `cargo hakari` can be run here.
pub fn available() -> bool {
    cargo()
        .args(["hakari", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: &Args) -> Result<()> {
    if !available() {
        bail!("cargo-hakari is not installed: `cargo install cargo-hakari --locked`");
    }
    if args.check {
        check()
    } else {
        run_cmd(cargo().args(["hakari", "generate"]))?;
        run_cmd(cargo().args(["hakari", "manage-deps", "--yes"]))
    }
}

/// Fails when `cargo xtask hakari` would change anything.
pub fn check() -> Result<()> {
    run_cmd(cargo().args(["hakari", "generate", "--diff"])).map_err(|e| {
        e.context("the workspace-hack crate is out of date: run `cargo xtask hakari`")
    })?;
    run_cmd(cargo().args(["hakari", "manage-deps", "--dry-run"])).map_err(|e| {
        e.context("a member does not depend on workspace-hack: run `cargo xtask hakari`")
    })
}
