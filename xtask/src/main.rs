//! `cargo xtask`: the project's automation, in Rust. One module per command.

mod bench;
mod bench_net;
mod build_plugins;
mod chart;
mod compare_compile_times;
mod deploy;
mod dev;
mod fuzz;
mod hakari;
mod new_plugin;
mod progress;
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
    /// Measures build times of the monolith and the plugin layouts: clean, no-op, and after
    /// editing one connector, one codec, the shim or core; dev and release profiles.
    CompareCompileTimes(compare_compile_times::Args),
    /// Regenerates the workspace-hack crate (cargo-hakari) and makes every member use it.
    Hakari(hakari::Args),
    /// Measures throughput: the plugin layout against the monolith and a raw simd-json loop.
    Bench(bench::Args),
    /// Builds the release engine and plugins and runs a deployment (by default the shipped
    /// example: data.json replayed through json, a passthrough pipeline and back to json).
    Run(run::Args),
    /// Builds the fuzz targets (fuzz/, cargo-fuzz on nightly) and runs each for a while.
    Fuzz(fuzz::Args),
    /// Creates a connector or codec plugin crate (a small working one, with tests), wires it
    /// into the workspace and the monolith, and builds it into target/plugins.
    NewPlugin(new_plugin::Args),
    /// The plugin developer's loop: runs a deployment, watches one plugin's crate, and on
    /// every save rebuilds that plugin and hot-reloads it into the running engine (prints the
    /// time from save to running). `--edits N` benchmarks it and checks no event is lost.
    Dev(dev::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    toolchain::check()?;
    match cli.command {
        Command::BuildPlugins(args) => build_plugins::run(&args).map(drop),
        Command::Test(args) => test::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::NewPlugin(args) => new_plugin::run(&args),
        Command::Dev(args) => dev::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Hakari(args) => hakari::run(&args),
        Command::CompareCompileTimes(args) => compare_compile_times::run(&args),
    }
}
