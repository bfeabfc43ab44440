//! `cargo xtask test`: everything CI checks, in the order that fails fastest.
//!
//! 1. `cargo fmt --check`, the workspace-hack check (when cargo-hakari is installed) and
//!    `cargo clippy -D warnings` (skipped with `--quick`);
//! 2. the plugins (dev profile) into `target/plugins`, the test fixture plugins into
//!    `target/test-plugins`: the integration tests load them from there;
//! 3. `cargo test --workspace`: unit tests and every crate's integration tests, including the
//!    `temblor` binary end to end with loaded plugins;
//! 4. `cargo test -p temblor --features monolith`: the same end-to-end tests on the monolith;
//! 5. the developer's loop end to end: `cargo xtask dev json --edits 2` and
//!    `cargo xtask dev metronome --edits 2` (real edits, rebuilds and hot reloads into a running
//!    engine, checked for lost events).

use anyhow::Result;

use crate::{
    build_plugins::{self, Profile},
    hakari,
    util::{cargo, run as run_cmd},
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Skip formatting and lint checks.
    #[arg(long)]
    pub quick: bool,
}

pub fn run(args: &Args) -> Result<()> {
    if !args.quick {
        run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))?;
        if hakari::available() {
            hakari::check()?;
        } else {
            eprintln!(
                "skipped: the workspace-hack check (`cargo install cargo-hakari --locked`; CI installs it)"
            );
        }
        run_cmd(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    for test_plugins in [false, true] {
        build_plugins::run(&build_plugins::Args {
            profile: Profile::Dev,
            only: Vec::new(),
            out: None,
            test_plugins,
        })?;
    }
    run_cmd(cargo().args(["test", "--workspace"]))?;
    run_cmd(cargo().args(["test", "-p", "temblor", "--features", "monolith"]))?;
    for plugin in ["json", "metronome"] {
        crate::dev::run(&crate::dev::Args {
            name: plugin.to_owned(),
            deployment: None,
            profile: Profile::Dev,
            edits: Some(2),
        })?;
    }
    Ok(())
}
