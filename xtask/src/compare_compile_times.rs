//! `cargo xtask compare-compile-times`: what the plugin split saves a developer, measured.
//!
//! Two layouts, each in its own target directory so they never share artefacts:
//! - **monolith**: `temblor` with `--features monolith` (every plugin crate linked in);
//! - **plugins**: `temblor` plus every plugin cdylib.
//!
//! For each profile and layout, scenarios are timed by the wall clock of the cargo invocation
//! a developer would run: `clean` (empty target directory), `noop` (nothing changed), and
//! `edit-connector`, `edit-codec`, `edit-shim`, `edit-core`: a real code change (a function
//! returning a new constant is written into the crate's `lib.rs`) followed by the build that
//! layout needs to run it: the monolith binary, or only the edited plugin (everything, for the
//! shim; the host binary, for core). Edits are reverted afterwards, always: on success, on
//! failure and on Ctrl-C.
//!
//! Builds into `target/layouts/<layout>` (shared with `cargo xtask bench`); writes
//! `target/compile-times/report.json`, `chart.svg` and `build.log` (cargo's output).

use std::{
    io::{BufRead, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::{
    build_plugins::{self, PluginCrate, discover, groups, plugin_build_args},
    chart,
    util::{cargo, project_root, target_dir},
};

/// Which profiles to measure.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileChoice {
    /// The dev profile only.
    Dev,
    /// The release profile only.
    Release,
    /// Both.
    All,
}

/// A scenario.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// From an empty target directory.
    Clean,
    /// Nothing changed.
    Noop,
    /// One connector's code changed.
    EditConnector,
    /// One codec's code changed.
    EditCodec,
    /// The shared interface changed.
    EditShim,
    /// The runtime changed.
    EditCore,
}

impl Scenario {
    const ALL: [Self; 6] = [
        Self::Clean,
        Self::Noop,
        Self::EditConnector,
        Self::EditCodec,
        Self::EditShim,
        Self::EditCore,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Noop => "noop",
            Self::EditConnector => "edit-connector",
            Self::EditCodec => "edit-codec",
            Self::EditShim => "edit-shim",
            Self::EditCore => "edit-core",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Which profile(s) to measure.
    #[arg(long, value_enum, default_value_t = ProfileChoice::All)]
    pub profile: ProfileChoice,
    /// Which scenario(s) to run (repeatable; default: all, in order).
    #[arg(long, value_enum)]
    pub scenario: Vec<Scenario>,
    /// How often to repeat the incremental scenarios (median and min-max are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// How often to repeat `edit-shim`, which rebuilds nearly everything (default: 1, it takes
    /// as long as a clean build).
    #[arg(long, default_value_t = 1)]
    pub shim_runs: usize,
    /// The connector edited by `edit-connector` (a folder under connectors/).
    #[arg(long, default_value = "file")]
    pub connector: String,
    /// The codec edited by `edit-codec` (a folder under codecs/).
    #[arg(long, default_value = "json")]
    pub codec: String,
    /// Measure a variant of the build settings: its layouts build in
    /// `target/layouts/<VARIANT>-<layout>` and its report goes to
    /// `target/compile-times/<VARIANT>/`, so the main figures are left alone.
    #[arg(long, value_name = "VARIANT")]
    pub variant: Option<String>,
    /// A cargo `--config KEY=VALUE` for every build of this run (repeatable), e.g.
    /// `profile.dev.codegen-units=1` or `build.rustflags=["-Clink-arg=-fuse-ld=mold"]`.
    /// Needs `--variant`, so its artefacts and figures never mix with the default ones.
    #[arg(long = "config", value_name = "KEY=VALUE", requires = "variant")]
    pub configs: Vec<String>,
    /// Keep the cells of the existing report that this run does not measure (re-measure a
    /// few cells without losing the rest of the table).
    #[arg(long)]
    pub merge: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Monolith,
    Plugins,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Self::Monolith => "monolith",
            Self::Plugins => "plugins",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Dev,
    Release,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Release => "release",
        }
    }
}

/// One measured cell: a scenario in a profile and layout.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub scenario: String,
    pub profile: String,
    pub layout: String,
    pub runs_s: Vec<f64>,
    /// What was built, as the cargo arguments.
    pub command: String,
}

impl Measurement {
    pub fn median(&self) -> f64 {
        median(&self.runs_s)
    }
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// A source file with a probe function appended; restores the original when dropped.
pub(crate) struct Edit {
    path: PathBuf,
    original: String,
}

impl Edit {
    pub(crate) fn new(path: PathBuf) -> Result<Self> {
        let original = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self { path, original })
    }

    /// Writes the file with a function whose result is `value`: a real change of code.
    pub(crate) fn apply(&self, value: usize) -> Result<()> {
        let text = format!(
            "{}\n/// Written by `cargo xtask compare-compile-times`; removed when it ends.\n\
             #[doc(hidden)]\npub fn compile_time_probe() -> usize {{\n    {value}\n}}\n",
            self.original
        );
        std::fs::write(&self.path, text)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub(crate) fn restore(&self) -> Result<()> {
        std::fs::write(&self.path, &self.original)
            .with_context(|| format!("cannot restore {}", self.path.display()))
    }
}

impl Drop for Edit {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!(
                "\nwarning: {e:#}: restore it with `git checkout {}`",
                self.path.display()
            );
        }
    }
}

struct Runner {
    /// `--config` values passed to every cargo build.
    configs: Vec<String>,
    interrupted: Arc<AtomicBool>,
    step: usize,
    steps: usize,
    log: std::fs::File,
    sccache: Option<String>,
    /// The bar over every step (plain lines without a terminal).
    progress: crate::progress::Progress,
}

impl Runner {
    /// Runs the cargo `invocations` one after the other in `target`; returns their total
    /// wall-clock seconds.
    fn build(&mut self, what: &str, target: &Path, invocations: &[Vec<String>]) -> Result<f64> {
        self.step += 1;
        self.progress.step(what);
        let mut total = 0.0;
        for (i, args) in invocations.iter().enumerate() {
            let label = if invocations.len() > 1 {
                format!("{what} ({}/{})", i + 1, invocations.len())
            } else {
                what.to_owned()
            };
            total += self.build_one(&label, target, args)?;
        }
        if invocations.len() > 1 {
            self.progress.println(&format!(
                "[{}/{}] {what}: {total:.2} s",
                self.step, self.steps
            ));
        }
        self.progress.done();
        Ok(total)
    }

    /// Runs cargo with `args` in `target`, showing a status line; returns the wall-clock seconds.
    fn build_one(&mut self, what: &str, target: &Path, args: &[String]) -> Result<f64> {
        if self.interrupted.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let label = format!("[{}/{}] {what}", self.step, self.steps);
        let mut cmd = cargo();
        for c in &self.configs {
            cmd.arg("--config").arg(c);
        }
        cmd.args(args)
            .env("CARGO_TARGET_DIR", target)
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_TERM_PROGRESS_WHEN", "never")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(wrapper) = &self.sccache {
            cmd.env("RUSTC_WRAPPER", wrapper);
        }
        writeln!(self.log, "== {label}: cargo {}", args.join(" "))?;
        let started = Instant::now();
        let mut child = cmd.spawn().context("cannot start cargo")?;
        let stderr = child.stderr.take().context("cargo's stderr")?;
        for line in BufReader::new(stderr).lines() {
            let line = line?;
            writeln!(self.log, "{line}")?;
            let shown: String = line.trim().chars().take(60).collect();
            self.progress.message(&format!("{what}: {shown}"));
        }
        let status = child.wait()?;
        let seconds = started.elapsed().as_secs_f64();
        self.progress.println(&format!("{label}: {seconds:.2} s"));
        if self.interrupted.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if !status.success() {
            bail!(
                "cargo {} failed ({status}); see target/compile-times/build.log",
                args.join(" ")
            );
        }
        Ok(seconds)
    }
}

/// The cargo invocations that build what `layout` needs after `scenario` (the plugin layout
/// builds release plugins as their LTO examples; see `build_plugins::plugin_build_args`).
fn build_args(
    layout: Layout,
    profile: Profile,
    scenario: Scenario,
    plugins: &[PluginCrate],
    connector: &str,
    codec: &str,
) -> Vec<Vec<String>> {
    match layout {
        Layout::Monolith => {
            let mut args = vec!["build".to_owned()];
            if profile == Profile::Release {
                args.push("--release".into());
            }
            args.extend(["-p", "temblor", "--features", "monolith"].map(str::to_owned));
            vec![args]
        }
        Layout::Plugins => {
            let profile = match profile {
                Profile::Dev => build_plugins::Profile::Dev,
                Profile::Release => build_plugins::Profile::Release,
            };
            let connector = format!("connector-{connector}");
            let codec = format!("codec-{codec}");
            let all: Vec<&str> = plugins.iter().map(|p| p.package.as_str()).collect();
            let build = match scenario {
                Scenario::Clean | Scenario::Noop | Scenario::EditShim => {
                    plugin_build_args(profile, true, &all)
                }
                Scenario::EditConnector => plugin_build_args(profile, false, &[&connector]),
                Scenario::EditCodec => plugin_build_args(profile, false, &[&codec]),
                Scenario::EditCore => plugin_build_args(profile, true, &[]),
            };
            build.into_iter().collect()
        }
    }
}

/// How a measured build is shown in the report.
fn describe(invocations: &[Vec<String>]) -> String {
    invocations
        .iter()
        .map(|args| format!("cargo {}", args.join(" ")))
        .collect::<Vec<_>>()
        .join(" && ")
}

fn edited_file(scenario: Scenario, connector: &str, codec: &str) -> Option<PathBuf> {
    let root = project_root();
    match scenario {
        Scenario::Clean | Scenario::Noop => None,
        Scenario::EditConnector => Some(root.join("connectors").join(connector).join("src/lib.rs")),
        Scenario::EditCodec => Some(root.join("codecs").join(codec).join("src/lib.rs")),
        Scenario::EditShim => Some(root.join("shim/src/lib.rs")),
        Scenario::EditCore => Some(root.join("core/src/lib.rs")),
    }
}

/// Whether sccache will wrap rustc: `RUSTC_WRAPPER` if set, else `sccache` if on the PATH.
fn sccache() -> Option<String> {
    if let Some(wrapper) = std::env::var_os("RUSTC_WRAPPER").filter(|w| !w.is_empty()) {
        return Some(wrapper.to_string_lossy().into_owned());
    }
    Command::new("sccache")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "sccache".to_owned())
}

pub fn run(args: &Args) -> Result<()> {
    let plugins = discover(groups(false))?;
    for (folder, name) in [("connectors", &args.connector), ("codecs", &args.codec)] {
        if !project_root()
            .join(folder)
            .join(name)
            .join("src/lib.rs")
            .is_file()
        {
            bail!("there is no {folder}/{name}/src/lib.rs to edit");
        }
    }
    if args.runs == 0 || args.shim_runs == 0 {
        bail!("--runs and --shim-runs must be at least 1");
    }
    let runs_of = |s: Scenario| {
        if s == Scenario::EditShim {
            args.shim_runs
        } else {
            args.runs
        }
    };
    let profiles: Vec<Profile> = match args.profile {
        ProfileChoice::Dev => vec![Profile::Dev],
        ProfileChoice::Release => vec![Profile::Release],
        ProfileChoice::All => vec![Profile::Dev, Profile::Release],
    };
    let scenarios: Vec<Scenario> = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        Scenario::ALL
            .into_iter()
            .filter(|s| args.scenario.contains(s))
            .collect()
    };
    let (out_dir, layout_prefix) = match &args.variant {
        Some(v) => {
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("--variant '{v}': use letters, digits, '-' and '_' only (it names folders)");
            }
            (target_dir().join("compile-times").join(v), format!("{v}-"))
        }
        None => (target_dir().join("compile-times"), String::new()),
    };
    let layouts = target_dir().join("layouts");
    std::fs::create_dir_all(&out_dir)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&interrupted))?;

    // Steps: a warm-up build when the scenarios start without `clean`, then per scenario its
    // runs; each edit scenario also has an untimed build of its own command before its runs
    // and one after them that restores the warm state.
    let per_layout: usize = usize::from(!scenarios.contains(&Scenario::Clean))
        + scenarios
            .iter()
            .map(|&s| match s {
                Scenario::Clean => 1,
                Scenario::Noop => args.runs,
                _ => runs_of(s) + 2,
            })
            .sum::<usize>();
    let mut runner = Runner {
        configs: args.configs.clone(),
        interrupted,
        step: 0,
        steps: per_layout * 2 * profiles.len(),
        progress: crate::progress::Progress::new(per_layout * 2 * profiles.len()),
        log: std::fs::File::create(out_dir.join("build.log"))?,
        sccache: sccache(),
    };
    eprintln!(
        "measuring {} scenario(s) x {} profile(s) x 2 layouts; cargo's output goes to {}",
        scenarios.len(),
        profiles.len(),
        out_dir.join("build.log").display()
    );

    let mut results = Vec::new();
    for &profile in &profiles {
        for layout in [Layout::Monolith, Layout::Plugins] {
            let target = layouts.join(format!("{layout_prefix}{}", layout.name()));
            let what = |s: &str| format!("{} {} {s}", profile.name(), layout.name());
            let cargo_args_of = |scenario| {
                build_args(
                    layout,
                    profile,
                    scenario,
                    &plugins,
                    &args.connector,
                    &args.codec,
                )
            };
            if !scenarios.contains(&Scenario::Clean) {
                runner.build(&what("warm-up"), &target, &cargo_args_of(Scenario::Noop))?;
            }
            for &scenario in &scenarios {
                let cargo_args = cargo_args_of(scenario);
                let mut runs_s = Vec::new();
                match edited_file(scenario, &args.connector, &args.codec) {
                    None => {
                        if scenario == Scenario::Clean && target.exists() {
                            std::fs::remove_dir_all(&target)
                                .with_context(|| format!("cannot empty {}", target.display()))?;
                        }
                        let runs = if scenario == Scenario::Noop {
                            args.runs
                        } else {
                            1
                        };
                        for run in 0..runs {
                            let label =
                                what(&format!("{} (run {}/{runs})", scenario.name(), run + 1));
                            runs_s.push(runner.build(&label, &target, &cargo_args)?);
                        }
                    }
                    Some(file) => {
                        // The developer's steady state: this exact build has run before. (A
                        // release `-p temblor` alone compiles the dependencies again once, for
                        // bitcode only instead of object code and bitcode, so its first run
                        // would be an outlier.)
                        runner.build(&what("prime"), &target, &cargo_args)?;
                        let edit = Edit::new(file)?;
                        let runs = runs_of(scenario);
                        for run in 0..runs {
                            edit.apply(run + 1)?;
                            let label =
                                what(&format!("{} (run {}/{})", scenario.name(), run + 1, runs));
                            runs_s.push(runner.build(&label, &target, &cargo_args)?);
                        }
                        edit.restore()?;
                        drop(edit);
                        // Back to the unedited, fully built state for the next scenario.
                        let everything = cargo_args_of(Scenario::Noop);
                        runner.build(&what("restore"), &target, &everything)?;
                    }
                }
                results.push(Measurement {
                    scenario: scenario.name().to_owned(),
                    profile: profile.name().to_owned(),
                    layout: layout.name().to_owned(),
                    runs_s,
                    command: describe(&cargo_args),
                });
            }
        }
    }

    if args.merge {
        results = merged(&out_dir.join("report.json"), results)?;
    }
    let report = report_json(&results, runner.sccache.as_deref(), &args.configs)?;
    std::fs::write(out_dir.join("report.json"), report)?;
    std::fs::write(out_dir.join("chart.svg"), chart::svg(&results))?;
    print!("{}", table(&results));
    eprintln!(
        "wrote {} and {}",
        out_dir.join("report.json").display(),
        out_dir.join("chart.svg").display()
    );
    Ok(())
}

/// The table: scenario x profile, monolith and plugins seconds, and their ratio.
pub fn table(results: &[Measurement]) -> String {
    let mut out = String::from(
        "| scenario | profile | monolith s (min-max) | plugins s (min-max) | plugins / monolith |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for m in results.iter().filter(|m| m.layout == "monolith") {
        let Some(p) = results
            .iter()
            .find(|p| p.layout == "plugins" && p.scenario == m.scenario && p.profile == m.profile)
        else {
            continue;
        };
        let cell = |x: &Measurement| {
            let (lo, hi) = x
                .runs_s
                .iter()
                .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            if x.runs_s.len() > 1 {
                format!("{:.2} ({lo:.2}-{hi:.2})", x.median())
            } else {
                format!("{:.2}", x.median())
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} |\n",
            m.scenario,
            m.profile,
            cell(m),
            cell(p),
            p.median() / m.median()
        ));
    }
    out
}

/// The cells of the report at `path` that `new` does not measure again, followed by `new`
/// (in the order scenario x profile of the old report where a cell replaces an old one).
fn merged(path: &Path, new: Vec<Measurement>) -> Result<Vec<Measurement>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(new),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let old: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let cells = old["results"]
        .as_array()
        .with_context(|| format!("{}: no \"results\" list", path.display()))?;
    let mut out = Vec::new();
    let mut new = new;
    for cell in cells {
        let field = |k: &str| {
            cell[k]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: a result without \"{k}\"", path.display()))
        };
        let (scenario, profile, layout) = (field("scenario")?, field("profile")?, field("layout")?);
        if let Some(i) = new
            .iter()
            .position(|m| m.scenario == scenario && m.profile == profile && m.layout == layout)
        {
            out.push(new.remove(i));
            continue;
        }
        let runs_s = cell["runs_s"]
            .as_array()
            .map(|r| r.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        out.push(Measurement {
            scenario,
            profile,
            layout,
            runs_s,
            command: cell["command"].as_str().unwrap_or_default().to_owned(),
        });
    }
    out.extend(new);
    Ok(out)
}

fn report_json(
    results: &[Measurement],
    sccache: Option<&str>,
    configs: &[String],
) -> Result<String> {
    let rustc = rustc_version::version()
        .context("rustc version")?
        .to_string();
    let results: Vec<serde_json::Value> = results
        .iter()
        .map(|m| {
            serde_json::json!({
                "scenario": m.scenario,
                "profile": m.profile,
                "layout": m.layout,
                "runs_s": m.runs_s,
                "median_s": m.median(),
                "command": m.command,
            })
        })
        .collect();
    let report = serde_json::json!({
        "rustc": rustc,
        "cores": crate::util::cores(),
        "date": crate::util::utc_now(),
        "sccache": sccache.is_some(),
        "rustc_wrapper": sccache,
        "cargo_config": configs,
        "results": results,
    });
    Ok(serde_json::to_string_pretty(&report)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn plugin_layout_rebuilds_only_what_changed() {
        let plugins = discover(groups(false)).unwrap();
        let args = build_args(
            Layout::Plugins,
            Profile::Release,
            Scenario::EditConnector,
            &plugins,
            "file",
            "json",
        );
        assert_eq!(
            args,
            [["build", "--release", "-p", "connector-file", "--examples"]]
        );
        let args = build_args(
            Layout::Plugins,
            Profile::Dev,
            Scenario::EditShim,
            &plugins,
            "file",
            "json",
        );
        assert_eq!(args.len(), 1);
        assert!(
            args[0].contains(&"temblor".to_owned()) && args[0].contains(&"codec-json".to_owned())
        );
        let args = build_args(
            Layout::Monolith,
            Profile::Dev,
            Scenario::EditCodec,
            &plugins,
            "file",
            "json",
        );
        assert_eq!(args, [["build", "-p", "temblor", "--features", "monolith"]]);
        let args = build_args(
            Layout::Plugins,
            Profile::Release,
            Scenario::EditShim,
            &plugins,
            "file",
            "json",
        );
        assert_eq!(args.len(), 1, "one cargo invocation: {args:?}");
        assert!(args[0].ends_with(&["--bins".to_owned(), "--examples".to_owned()]));
        for p in &plugins {
            assert!(args[0].contains(&p.package), "{} missing", p.package);
        }
    }

    #[test]
    fn an_edit_is_real_and_is_undone() {
        let dir = std::env::temp_dir().join(format!("xtask-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lib.rs");
        std::fs::write(&file, "pub fn a() {}\n").unwrap();
        {
            let edit = Edit::new(file.clone()).unwrap();
            edit.apply(7).unwrap();
            let edited = std::fs::read_to_string(&file).unwrap();
            assert!(edited.starts_with("pub fn a() {}\n"));
            assert!(edited.contains("pub fn compile_time_probe() -> usize {\n    7\n}"));
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "pub fn a() {}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn merge_replaces_remeasured_cells_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("xtask-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.json");
        let cell = |scenario: &str, layout: &str, s: f64| Measurement {
            scenario: scenario.into(),
            profile: "release".into(),
            layout: layout.into(),
            runs_s: vec![s],
            command: String::new(),
        };
        let old = [
            cell("edit-connector", "monolith", 30.0),
            cell("edit-shim", "monolith", 90.0),
        ];
        std::fs::write(&path, report_json(&old, None, &[]).unwrap()).unwrap();
        let out = merged(
            &path,
            vec![
                cell("edit-shim", "monolith", 60.0),
                cell("edit-core", "monolith", 40.0),
            ],
        )
        .unwrap();
        let got: Vec<(&str, f64)> = out
            .iter()
            .map(|m| (m.scenario.as_str(), m.median()))
            .collect();
        assert_eq!(
            got,
            [
                ("edit-connector", 30.0),
                ("edit-shim", 60.0),
                ("edit-core", 40.0)
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_pairs_layouts_and_gives_the_ratio() {
        let m = |layout: &str, runs: Vec<f64>| Measurement {
            scenario: "edit-connector".into(),
            profile: "release".into(),
            layout: layout.into(),
            runs_s: runs,
            command: String::new(),
        };
        let t = table(&[
            m("monolith", vec![10.0, 12.0, 11.0]),
            m("plugins", vec![2.0, 1.0, 3.0]),
        ]);
        assert!(
            t.contains(
                "| edit-connector | release | 11.00 (10.00-12.00) | 2.00 (1.00-3.00) | 0.18 |"
            ),
            "{t}"
        );
    }
}
