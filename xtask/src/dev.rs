//! `cargo xtask dev NAME [DEPLOYMENT]`: the plugin developer's loop. Builds the engine and every
//! plugin, runs the deployment with a control socket, watches the plugin's crate, and on every
//! save rebuilds only that plugin and hot-reloads it into the running engine (see
//! `app/src/control.rs`), printing the time from the save to the new version running.
//!
//! A build error or a library that does not load leaves the running version in place and
//! prints the compiler's or the loader's message. Each reload maps a fresh copy of the library
//! and never unmaps the old one: a long dev session grows by one library per reload.
//!
//! The default deployment: for a codec, metronome ticks go through the codec both ways over a
//! loopback TCP connection (encode in `tcp_client`, decode in `tcp_server`) into
//! `target/dev/NAME.out`; for a connector, the crate's own `dev.toml` if it has one, else the
//! first file under `examples/` that uses it.
//!
//! `--edits N` is the benchmark and the end-to-end check: instead of waiting for you, it makes N
//! real code changes to the crate (reverted at the end), measures save → running for each, stops
//! the engine, checks that no event was lost or repeated, and writes
//! `target/dev-loop/report.json`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};

use crate::{
    build_plugins::{self, PluginCrate, Profile, discover, groups, library_file},
    compare_compile_times::{Edit, median},
    deploy,
    util::{cargo, project_root, target_dir},
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The plugin to work on: a folder under connectors/ or codecs/ (or its package name).
    pub name: String,
    /// The deployment to run (default: one that exercises the plugin; see `cargo xtask dev
    /// --help`).
    pub deployment: Option<PathBuf>,
    /// Which profile to build the engine and the plugin with.
    #[arg(long, value_enum, default_value_t = Profile::Dev)]
    pub profile: Profile,
    /// Benchmark and check: make N code changes to the plugin by itself, measure save →
    /// running for each, then stop, check that no event was lost and write
    /// target/dev-loop/report.json.
    #[arg(long, value_name = "N")]
    pub edits: Option<usize>,
}

/// How often the crate's files are looked at.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: &Args) -> Result<()> {
    let all = discover(groups(false))?;
    let Some(plugin) = all
        .iter()
        .find(|p| p.name == args.name || p.package == args.name)
        .cloned()
    else {
        let names: Vec<_> = all.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "no plugin crate named '{}' (plugins: {}); `cargo xtask new-plugin` makes one",
            args.name,
            names.join(", ")
        );
    };
    if args.edits == Some(0) {
        bail!("--edits must be at least 1");
    }
    let root = project_root();
    let crate_dir = plugin.dir.clone();
    let dev_dir = target_dir().join("dev");
    std::fs::create_dir_all(&dev_dir)?;
    let (deployment, generated) = match &args.deployment {
        Some(d) => (d.clone(), false),
        None => (
            default_deployment(&plugin, &crate_dir, &dev_dir)?,
            plugin.package.starts_with("codec-"),
        ),
    };
    eprintln!(
        "dev: {} ({}), deployment {}{}",
        plugin.name,
        crate_dir.display(),
        deployment.display(),
        if generated { " (generated)" } else { "" }
    );

    build_plugins::run(&build_plugins::Args::all(args.profile, false))?;

    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&interrupted))?;

    let socket = dev_dir.join("control.sock");
    let stats = dev_dir.join("stats.json");
    let _ = std::fs::remove_file(&stats);
    let mut engine = Engine::start(args.profile, &root, &deployment, &socket, &stats)?;
    let mut session = Session {
        plugin,
        profile: args.profile,
        socket: socket.clone(),
        watched: Fingerprint::of(&crate_dir),
        crate_dir,
        reloads: Vec::new(),
    };

    match args.edits {
        None => {
            eprintln!(
                "dev: watching {} (Ctrl-C stops); save a file to rebuild and reload",
                session.crate_dir.display()
            );
            while !interrupted.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                if let Some(code) = engine.exited()? {
                    eprintln!("dev: temblor exited ({code}); it starts again after the next build");
                }
                if let Some(saved) = session.changed()
                    && session.rebuild(saved)?
                    && engine.is_stopped()
                {
                    engine = Engine::start(args.profile, &root, &deployment, &socket, &stats)?;
                }
            }
            engine.stop()?;
            Ok(())
        }
        Some(n) => {
            let result = bench(&mut session, &mut engine, n, &interrupted);
            let stopped = engine.stop();
            let (times, lib) = result?;
            stopped?;
            let check = check_stats(&stats)?;
            let ids = if generated && session.plugin_is_codec() {
                Some(check_ids(
                    &dev_dir.join(format!("{}.out", session.plugin.name)),
                )?)
            } else {
                None
            };
            // Leave target/plugins built from the reverted source.
            session.build()?;
            drop(lib);
            report(&session, &times, &check, ids)
        }
    }
}

/// A deployment that exercises the plugin (see the module doc).
fn default_deployment(p: &PluginCrate, crate_dir: &Path, dev_dir: &Path) -> Result<PathBuf> {
    if p.package.starts_with("codec-") {
        let port = crate::util::free_port()?;
        let path = dev_dir.join(format!("{}.toml", p.name));
        std::fs::write(&path, codec_deployment(&p.name, port))?;
        return Ok(path);
    }
    let own = crate_dir.join("dev.toml");
    if own.is_file() {
        return Ok(own);
    }
    let mut examples: Vec<PathBuf> = std::fs::read_dir(project_root().join("examples"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    let wanted = format!("plugin = \"{}\"", p.name);
    examples
        .into_iter()
        .find(|e| std::fs::read_to_string(e).is_ok_and(|t| t.contains(&wanted)))
        .with_context(|| {
            format!(
                "connector '{}' has no {} and no example uses it: give a deployment",
                p.name,
                own.display()
            )
        })
}

/// Ticks through codec `name` both ways (over loopback TCP, length-prefixed) into a file.
fn codec_deployment(name: &str, port: u16) -> String {
    let codec = format!("codec = \"{name}\"");
    let url = format!("config = {{ url = \"127.0.0.1:{port}\" }}");
    let out = format!("config = {{ path = \"target/dev/{name}.out\", mode = \"write\" }}");
    format!(
        "# Written by `cargo xtask dev {name}`: metronome ticks are encoded with `{name}` \
         (tcp_client),\n# decoded with `{name}` (tcp_server) and written as JSON lines to \
         target/dev/{name}.out.\n"
    ) + &[
        deploy::connector("tick", "metronome", &["config = { interval_ms = 5 }"]),
        deploy::pipeline("to-codec", "[]"),
        deploy::connector(
            "encode",
            "tcp_client",
            &[&codec, r#"postprocessors = ["length-prefixed"]"#, &url],
        ),
        deploy::connector(
            "decode",
            "tcp_server",
            &[&codec, r#"preprocessors = ["length-prefixed"]"#, &url],
        ),
        deploy::pipeline("from-codec", "[]"),
        deploy::connector(
            "out",
            "file",
            &[
                r#"codec = "json""#,
                r#"postprocessors = ["separate"]"#,
                &out,
            ],
        ),
        deploy::connect(&[
            ("tick", "to-codec"),
            ("to-codec", "encode"),
            ("decode", "from-codec"),
            ("from-codec", "out"),
            ("from-codec/err", "out"),
        ]),
    ]
    .concat()
}

/// The `temblor` binary built in `profile`.
fn temblor_exe(profile: Profile) -> PathBuf {
    target_dir()
        .join(profile.dir())
        .join(format!("temblor{}", std::env::consts::EXE_SUFFIX))
}

/// The running `temblor run`.
struct Engine {
    child: Option<Child>,
}

impl Engine {
    fn start(
        profile: Profile,
        root: &Path,
        deployment: &Path,
        socket: &Path,
        stats: &Path,
    ) -> Result<Self> {
        let temblor = temblor_exe(profile);
        let _ = std::fs::remove_file(socket);
        let child = Command::new(&temblor)
            .current_dir(root)
            .arg("--plugin-dir")
            .arg(target_dir().join("plugins"))
            .arg("run")
            .arg(deployment)
            .arg("--control")
            .arg(socket)
            .arg("--stats-json")
            .arg(stats)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", temblor.display()))?;
        let mut engine = Self { child: Some(child) };
        let started = Instant::now();
        while !socket.exists() {
            if let Some(code) = engine.exited()? {
                bail!(
                    "temblor run {} exited at start ({code})",
                    deployment.display()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("temblor did not open its control socket within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(engine)
    }

    fn is_stopped(&self) -> bool {
        self.child.is_none()
    }

    /// The exit status when the process has ended since the last look.
    fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait()?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// SIGTERM, then waits: temblor drains and flushes before it exits.
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if crate::util::terminate(child.id()).is_err() {
            child.kill()?;
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("temblor exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What identifies the state of a crate's sources: every file's path, length and mtime.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    files: Vec<(PathBuf, u64, SystemTime)>,
}

impl Fingerprint {
    fn of(dir: &Path) -> Self {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let path = e.path();
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    if path.file_name().is_some_and(|n| n != "target") {
                        stack.push(path);
                    }
                } else if let Ok(mtime) = meta.modified() {
                    files.push((path, meta.len(), mtime));
                }
            }
        }
        files.sort();
        Self { files }
    }

    /// The newest modification time: when the last save happened.
    fn newest(&self) -> SystemTime {
        self.files
            .iter()
            .map(|f| f.2)
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// One rebuild and reload.
#[derive(Debug, Clone, Copy)]
struct Reload {
    /// From the save to the engine's answer that the new version runs.
    save_to_running_s: f64,
    build_s: f64,
    reload_s: f64,
}

struct Session {
    plugin: PluginCrate,
    profile: Profile,
    crate_dir: PathBuf,
    socket: PathBuf,
    watched: Fingerprint,
    reloads: Vec<Reload>,
}

impl Session {
    fn plugin_is_codec(&self) -> bool {
        self.plugin.package.starts_with("codec-")
    }

    /// The time of the save, when the crate's files changed since the last look.
    fn changed(&mut self) -> Option<SystemTime> {
        let now = Fingerprint::of(&self.crate_dir);
        if now == self.watched {
            return None;
        }
        let saved = now.newest();
        self.watched = now;
        Some(saved)
    }

    /// `cargo build -p PLUGIN` and copies the library to target/plugins. Prints the
    /// compiler's output when it fails; true when it built.
    fn build(&self) -> Result<bool> {
        if let Some(build) =
            build_plugins::plugin_build_args(self.profile, false, &[&self.plugin.package])
        {
            let output = cargo()
                .args(&build)
                .env("CARGO_TERM_COLOR", "always")
                .output()
                .context("cannot start cargo")?;
            if !output.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&output.stderr).trim_end());
                eprintln!(
                    "dev: the build failed; {} keeps running the previous version",
                    self.plugin.name
                );
                return Ok(false);
            }
        }
        build_plugins::install(
            &build_plugins::built_library(&target_dir(), self.profile, &self.plugin.lib),
            &target_dir()
                .join("plugins")
                .join(library_file(&self.plugin.lib)),
        )?;
        Ok(true)
    }

    /// Rebuilds and reloads after a save at `saved`. True when the new version was built
    /// (whether or not the engine took it).
    fn rebuild(&mut self, saved: SystemTime) -> Result<bool> {
        eprintln!("dev: change seen; building {}", self.plugin.package);
        let build_started = Instant::now();
        if !self.build()? {
            return Ok(false);
        }
        let build_s = build_started.elapsed().as_secs_f64();
        let reload_started = Instant::now();
        match reload(self.profile, &self.socket, &self.plugin.name) {
            Ok(answer) => {
                let reload_s = reload_started.elapsed().as_secs_f64();
                let save_to_running_s = SystemTime::now()
                    .duration_since(saved)
                    .unwrap_or_default()
                    .as_secs_f64();
                eprintln!(
                    "dev: {answer}\ndev: save → running {save_to_running_s:.2} s (build {build_s:.2} s, reload {reload_s:.2} s)"
                );
                self.reloads.push(Reload {
                    save_to_running_s,
                    build_s,
                    reload_s,
                });
            }
            Err(e) => eprintln!("dev: reload refused, the previous version goes on: {e:#}"),
        }
        Ok(true)
    }
}

/// Asks the running engine to reload `name`, through `temblor plugins reload` (the client of
/// its control socket); returns the engine's answer.
fn reload(profile: Profile, socket: &Path, name: &str) -> Result<String> {
    let output = Command::new(temblor_exe(profile))
        .args(["plugins", "reload", name, "--control"])
        .arg(socket)
        .env("TEMBLOR_LOG", "error")
        .output()
        .context("cannot run temblor plugins reload")?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Makes `n` edits, each picked up by the same watch loop as a save by hand would be.
fn bench(
    session: &mut Session,
    engine: &mut Engine,
    n: usize,
    interrupted: &AtomicBool,
) -> Result<(Vec<Reload>, Edit)> {
    let lib = Edit::new(session.crate_dir.join("src/lib.rs"))?;
    // Let events flow before the first reload.
    std::thread::sleep(Duration::from_secs(1));
    for i in 1..=n {
        if interrupted.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let before = session.reloads.len();
        lib.apply(1000 + i)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while session.reloads.len() == before {
            if Instant::now() > deadline {
                bail!("edit {i}: no reload within 120 s");
            }
            if let Some(code) = engine.exited()? {
                bail!("temblor exited during the benchmark ({code})");
            }
            std::thread::sleep(POLL);
            if let Some(saved) = session.changed()
                && !session.rebuild(saved)?
            {
                bail!("edit {i}: the plugin did not build");
            }
        }
        // Events flow through the new version for a while.
        std::thread::sleep(Duration::from_millis(700));
    }
    lib.restore()?;
    Ok((session.reloads.clone(), lib))
}

/// What the engine's counters say about events lost.
#[derive(Debug)]
struct StatsCheck {
    events_out: u64,
    events_in: u64,
}

/// Every event the sources emitted was received by a sink: the sum of `events_out` over the
/// connectors equals the sum of `events_in`, and nothing was counted lost or dropped.
fn check_stats(path: &Path) -> Result<StatsCheck> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let stats: serde_json::Value = serde_json::from_str(&text)?;
    let sum = |section: &str, field: &str| -> u64 {
        stats[section]
            .as_object()
            .map(|o| o.values().filter_map(|c| c[field].as_u64()).sum())
            .unwrap_or(0)
    };
    let check = StatsCheck {
        events_out: sum("connectors", "events_out"),
        events_in: sum("connectors", "events_in"),
    };
    let lost = sum("connectors", "lost");
    let dropped = sum("pipelines", "dropped");
    if check.events_out == 0 {
        bail!("no events went through the deployment ({})", path.display());
    }
    if check.events_out != check.events_in || lost != 0 || dropped != 0 {
        bail!(
            "events lost: sources emitted {}, sinks received {}, lost {lost}, dropped {dropped} ({})",
            check.events_out,
            check.events_in,
            path.display()
        );
    }
    Ok(check)
}

/// The metronome ids in the output are 0..=k, each once: nothing lost or repeated in the
/// middle (the last ticks in flight when the engine stopped may be missing at the end).
fn check_ids(path: &Path) -> Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut ids: Vec<u64> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        ids.push(
            tick_id(line)
                .with_context(|| format!("{}:{}: no tick id in '{line}'", path.display(), n + 1))?,
        );
    }
    ids.sort_unstable();
    for (i, id) in ids.iter().enumerate() {
        if *id != i as u64 {
            bail!(
                "{}: tick ids are not 0..{} without gaps or repeats (at position {i}: {id})",
                path.display(),
                ids.len()
            );
        }
    }
    Ok(ids.len())
}

/// The value of the `id` field in a line that holds a tick, as JSON or as a JSON string.
fn tick_id(line: &str) -> Option<u64> {
    let at = line.rfind("id")?;
    let rest = line[at + 2..].trim_start_matches(['"', '\\']);
    let digits: String = rest
        .strip_prefix(':')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn report(
    session: &Session,
    times: &[Reload],
    check: &StatsCheck,
    ids: Option<usize>,
) -> Result<()> {
    let runs: Vec<f64> = times.iter().map(|r| r.save_to_running_s).collect();
    let builds: Vec<f64> = times.iter().map(|r| r.build_s).collect();
    let reloads: Vec<f64> = times.iter().map(|r| r.reload_s).collect();
    let median_s = median(&runs);
    let max_s = runs.iter().copied().fold(0.0, f64::max);
    let out = target_dir().join("dev-loop");
    std::fs::create_dir_all(&out)?;
    let path = out.join(format!("{}.json", session.plugin.name));
    let json = serde_json::json!({
        "rustc": rustc_version::version()?.to_string(),
        "cores": crate::util::cores(),
        "date": crate::util::utc_now(),
        "plugin": session.plugin.name,
        "profile": format!("{:?}", session.profile).to_lowercase(),
        "runs_s": runs,
        "median_s": median_s,
        "max_s": max_s,
        "build_s": builds,
        "reload_s": reloads,
        "events_emitted": check.events_out,
        "events_received": check.events_in,
        "tick_ids_checked": ids,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!(
        "dev-loop {}: save → running median {median_s:.2} s, max {max_s:.2} s over {} edits (build median {:.2} s, reload median {:.3} s); events: {} emitted = {} received{}; wrote {}",
        session.plugin.name,
        runs.len(),
        median(&builds),
        median(&reloads),
        check.events_out,
        check.events_in,
        ids.map(|n| format!(", {n} tick ids gapless"))
            .unwrap_or_default(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_ids_are_found_in_json_and_in_json_strings() {
        assert_eq!(
            tick_id(r#"{"onramp":"metronome","ingest_ns":17,"id":42}"#),
            Some(42)
        );
        assert_eq!(
            tick_id(r#""{\"onramp\":\"metronome\",\"ingest_ns\":17,\"id\":7}""#),
            Some(7)
        );
        assert_eq!(tick_id(r#"{"error":"bad"}"#), None);
    }

    #[test]
    fn ids_must_be_gapless_and_unique() {
        let dir = std::env::temp_dir().join(format!("xtask-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("out");
        std::fs::write(&file, "{\"id\":1}\n{\"id\":0}\n{\"id\":2}\n").unwrap();
        assert_eq!(check_ids(&file).unwrap(), 3);
        std::fs::write(&file, "{\"id\":0}\n{\"id\":2}\n").unwrap();
        assert!(check_ids(&file).is_err());
        std::fs::write(&file, "{\"id\":0}\n{\"id\":0}\n{\"id\":1}\n").unwrap();
        assert!(check_ids(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stats_check_sees_a_loss() {
        let dir = std::env::temp_dir().join(format!("xtask-dev-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("stats.json");
        let stats = |sink_in: u64| {
            format!(
                r#"{{"connectors":{{"tick":{{"events_out":10,"events_in":0,"lost":0}},"out":{{"events_out":0,"events_in":{sink_in},"lost":0}}}},"pipelines":{{"main":{{"dropped":0}}}}}}"#
            )
        };
        std::fs::write(&file, stats(10)).unwrap();
        assert_eq!(check_stats(&file).unwrap().events_in, 10);
        std::fs::write(&file, stats(9)).unwrap();
        let e = check_stats(&file).unwrap_err().to_string();
        assert!(e.contains("emitted 10, sinks received 9"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_codec_deployment_uses_the_codec_both_ways() {
        let d = codec_deployment("yaml", 4321);
        assert_eq!(d.matches("codec = \"yaml\"").count(), 2);
        assert_eq!(d.matches("127.0.0.1:4321").count(), 2);
        assert!(d.contains("target/dev/yaml.out"));
    }

    #[test]
    fn a_save_changes_the_fingerprint() {
        let dir = std::env::temp_dir().join(format!("xtask-dev-fp-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "a").unwrap();
        let before = Fingerprint::of(&dir);
        assert_eq!(before, Fingerprint::of(&dir));
        std::fs::write(dir.join("src/lib.rs"), "ab").unwrap();
        assert_ne!(before, Fingerprint::of(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
