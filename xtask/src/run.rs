//! `cargo xtask run [DEPLOYMENT]`: builds the release engine and plugins, then runs a
//! deployment (default: `examples/passthrough.toml`, the shipped data set replayed through
//! json decode, a passthrough pipeline and json encode into a blackhole). temblor logs each
//! source's throughput; the full counts are printed from its `--stats-json`.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    build_plugins::{self, Profile},
    util::{project_root, target_dir},
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The deployment to run (default: examples/passthrough.toml).
    pub deployment: Option<PathBuf>,
    /// Which profile to build and run.
    #[arg(long, value_enum, default_value_t = Profile::Release)]
    pub profile: Profile,
}

pub fn run(args: &Args) -> Result<()> {
    build_plugins::run(&build_plugins::Args::all(args.profile, false))?;
    let root = project_root();
    let deployment = args
        .deployment
        .clone()
        .unwrap_or_else(|| root.join("examples/passthrough.toml"));
    let target = target_dir();
    let stats = target.join("run-stats.json");
    let temblor = target
        .join(args.profile.dir())
        .join(format!("temblor{}", std::env::consts::EXE_SUFFIX));
    eprintln!("$ {} run {}", temblor.display(), deployment.display());
    let status = Command::new(&temblor)
        .current_dir(&root)
        .arg("--plugin-dir")
        .arg(target.join("plugins"))
        .arg("run")
        .arg(&deployment)
        .arg("--stats-json")
        .arg(&stats)
        .status()
        .with_context(|| format!("cannot start {}", temblor.display()))?;
    if !status.success() {
        bail!("temblor run {} failed ({status})", deployment.display());
    }
    let json = std::fs::read_to_string(&stats)
        .with_context(|| format!("cannot read {}", stats.display()))?;
    println!("stats ({}):\n{}", stats.display(), json.trim());
    Ok(())
}
