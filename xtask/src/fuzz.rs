//! `cargo xtask fuzz [--seconds S] [--target NAME]...`: builds the fuzz targets of `fuzz/`
//! (cargo-fuzz, libFuzzer, on the nightly toolchain) and runs each for S seconds, one after the
//! other; says per target OK (with how many inputs it ran) or where the crashing input is, and
//! fails if any target crashed.
//!
//! Each target starts from its committed seed corpus `fuzz/corpus/<target>/` plus what earlier
//! runs found (`fuzz/target/corpus/<target>/`, not committed: new inputs go there, so the seed
//! corpus stays small). Crashing inputs land in `fuzz/artifacts/<target>/`; libFuzzer's output
//! is kept in `fuzz/target/logs/<target>.log`. Reproduce a crash with
//! `cargo +nightly fuzz run <target> <artifact>` from the repository root.
//!
//! `fuzz/` is its own cargo workspace (excluded from the main one) and builds with
//! `cargo +nightly`: the `+nightly` override takes precedence over `rust-toolchain.toml`.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::util::{project_root, run as run_cmd};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// How long to run each target, in seconds.
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub seconds: u64,
    /// Run only this target (repeatable; default: every target, see `fuzz/Cargo.toml`).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
}

/// The most memory one allocation may take before libFuzzer calls it a crash: every
/// preprocessor and codec is bounded far below this.
const MALLOC_LIMIT_MB: u32 = 512;

/// The longest one input may run before libFuzzer calls it a crash (a hang).
const INPUT_TIMEOUT_S: u32 = 60;

/// `cargo +nightly ...` from the repository root, without what the pinned toolchain's cargo
/// put in the environment (it would pull the build back onto the pinned stable compiler).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(project_root())
        .arg("+nightly")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    cmd
}

/// Fails with how to install what is missing: the nightly toolchain or cargo-fuzz.
fn check_tools() -> Result<()> {
    let nightly = nightly_cargo()
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !nightly.is_ok_and(|s| s.success()) {
        bail!(
            "the nightly toolchain is not installed (fuzzing needs it): \
             `rustup toolchain install nightly --profile minimal`"
        );
    }
    let fuzz = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !fuzz.is_ok_and(|s| s.success()) {
        bail!("cargo-fuzz is not installed: `cargo install cargo-fuzz --locked`");
    }
    Ok(())
}

/// Every fuzz target, as cargo-fuzz lists them.
fn all_targets() -> Result<Vec<String>> {
    let out = nightly_cargo()
        .args(["fuzz", "list"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run `cargo +nightly fuzz list`")?;
    if !out.status.success() {
        bail!("`cargo +nightly fuzz list` failed ({})", out.status);
    }
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("`cargo +nightly fuzz list` found no fuzz targets in fuzz/");
    }
    Ok(targets)
}

/// How one target's run went.
#[derive(Debug)]
enum Outcome {
    /// No crash in the time given: how many inputs ran.
    Ok { runs: Option<u64> },
    /// A crash: the new files in the artifacts folder (usually one).
    Crashed {
        artifacts: Vec<PathBuf>,
        log: PathBuf,
    },
}

/// The files in `dir` (none if it does not exist), sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// libFuzzer's count of executed inputs (`-print_final_stats=1`).
fn executed_units(log: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .find_map(|n| n.trim().parse().ok())
}

fn run_target(target: &str, seconds: u64) -> Result<Outcome> {
    let fuzz = project_root().join("fuzz");
    let scratch = fuzz.join("target/corpus").join(target);
    let seeds = fuzz.join("corpus").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    let logs = fuzz.join("target/logs");
    for dir in [&scratch, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let before = files_in(&artifacts);
    let log_path = logs.join(format!("{target}.log"));
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;

    let mut cmd = nightly_cargo();
    cmd.args(["fuzz", "run", target]).arg(&scratch);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    } else {
        eprintln!("warning: {target} has no seed corpus ({})", seeds.display());
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let status = cmd
        .status()
        .with_context(|| format!("cannot start cargo fuzz run {target}"))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if status.success() {
        return Ok(Outcome::Ok {
            runs: executed_units(&text),
        });
    }
    let artifacts: Vec<PathBuf> = files_in(&artifacts)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if artifacts.is_empty() && !text.contains("==ERROR: libFuzzer") && !text.contains("panicked") {
        // Not a finding: the build or cargo-fuzz itself failed.
        eprintln!("{}", tail(&text, 40));
        bail!(
            "cargo fuzz run {target} failed ({status}) without a crash; see {}",
            log_path.display()
        );
    }
    Ok(Outcome::Crashed {
        artifacts,
        log: log_path,
    })
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The codec folders (`codecs/<name>/`) without a `codec_<name>` target.
fn unfuzzed_codecs(targets: &[String]) -> Vec<String> {
    let mut missing: Vec<String> = files_in(&project_root().join("codecs"))
        .into_iter()
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .filter_map(|dir| Some(dir.file_name()?.to_string_lossy().into_owned()))
        .filter(|name| !targets.contains(&format!("codec_{name}")))
        .collect();
    missing.sort();
    missing
}

pub fn run(args: &Args) -> Result<()> {
    check_tools()?;
    let all = all_targets()?;
    for codec in unfuzzed_codecs(&all) {
        eprintln!("warning: codecs/{codec} has no fuzz target (add codec_{codec} to fuzz/)");
    }
    let targets = if args.targets.is_empty() {
        all
    } else {
        for t in &args.targets {
            if !all.contains(t) {
                bail!("no fuzz target '{t}' (there are: {})", all.join(", "));
            }
        }
        args.targets.clone()
    };

    let started = Instant::now();
    if targets.len() == 1 {
        run_cmd(nightly_cargo().args(["fuzz", "build", &targets[0]]))?;
    } else {
        run_cmd(nightly_cargo().args(["fuzz", "build"]))?;
    }
    let built = started.elapsed();
    eprintln!("built the fuzz targets in {:.0} s", built.as_secs_f64());

    let mut results = Vec::new();
    for target in &targets {
        eprintln!("fuzzing {target} for {} s", args.seconds);
        let t = Instant::now();
        let outcome = run_target(target, args.seconds)?;
        match &outcome {
            Outcome::Ok { .. } => {}
            Outcome::Crashed { log, .. } => {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!("{}", tail(&text, 60));
            }
        }
        results.push((target, outcome, t.elapsed()));
    }

    eprintln!();
    let mut crashed = 0;
    for (target, outcome, took) in &results {
        match outcome {
            Outcome::Ok { runs } => {
                let runs = runs.map_or_else(|| "?".to_owned(), |n| n.to_string());
                eprintln!(
                    "{target:<22} OK       {runs:>10} inputs in {:.0} s",
                    took.as_secs_f64()
                );
            }
            Outcome::Crashed { artifacts, log } => {
                crashed += 1;
                let found = if artifacts.is_empty() {
                    "no artifact written".to_owned()
                } else {
                    artifacts
                        .iter()
                        .map(|a| a.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                eprintln!("{target:<22} CRASHED  {found} (log: {})", log.display());
            }
        }
    }
    eprintln!(
        "{} targets in {} (build {})",
        results.len(),
        minutes(started.elapsed()),
        minutes(built)
    );
    if crashed > 0 {
        bail!(
            "{crashed} fuzz target(s) crashed; reproduce with \
             `cargo +nightly fuzz run <target> <artifact>`"
        );
    }
    Ok(())
}

/// `1 min 05 s`.
fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{} min {:02} s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_give_the_executed_inputs() {
        let log = "INFO: seed\nDone 1234 runs in 2 second(s)\nstat::number_of_executed_units: 1234\nstat::peak_rss_mb: 40\n";
        assert_eq!(executed_units(log), Some(1234));
        assert_eq!(executed_units("no stats"), None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn codecs_without_a_target_are_found() {
        assert!(unfuzzed_codecs(&[]).contains(&"json".to_owned()));
        assert!(!unfuzzed_codecs(&["codec_json".to_owned()]).contains(&"json".to_owned()));
    }

    #[test]
    fn durations_read_as_minutes() {
        assert_eq!(minutes(Duration::from_secs(65)), "1 min 05 s");
    }
}
