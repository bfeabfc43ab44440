//! `cargo xtask`: the project's automation, in Rust. One module per command.

mod build_plugins;
mod run;
mod test;
mod toolchain;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "temblor's automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Builds the connector and codec plugins, copies them to target/plugins and checks that
    /// each loads.
    BuildPlugins(build_plugins::Args),
    /// Builds everything and runs every test: lints, unit and integration tests, the plugin
    /// and the monolith builds end to end.
    Test(test::Args),
    /// Builds the release engine and plugins and runs a deployment (by default the shipped
    /// example: data.json replayed through json, a passthrough pipeline and back to json).
    Run(run::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    toolchain::check()?;
    match cli.command {
        Command::BuildPlugins(args) => build_plugins::run(&args).map(drop),
        Command::Test(args) => test::run(&args),
        Command::Run(args) => run::run(&args),
    }
}
