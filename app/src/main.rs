//! `temblor`: runs event-processing deployments built from connector and codec plugins.
//!
//! Plugins are loaded from plugin directories at start-up, or, in the monolith build
//! (`--features monolith`), linked into this binary. Everything after loading is the same code.

mod api;
mod control;
mod loader;
mod metrics;
mod pinning;
mod status;
mod top;

use std::{
    io::{IsTerminal, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use temblor_core::{Deployment, Engine, Plugin, Registry};
use temblor_shim::{Object, Value, abi::PluginModRef};
use tracing::{error, info, level_filters::LevelFilter, warn};

use loader::LoadReport;
use pinning::Pins;

/// The allocator of the whole process. mimalloc is built with `override`: it defines `malloc`,
/// `free` and the rest, and `build.rs` exports them from the executable, so the plugins (which
/// allocate with the system allocator, i.e. `malloc`) resolve to this one allocator too. One
/// heap for all: the values a codec plugin allocates while decoding are freed by the engine's
/// threads into the same allocator. glibc's malloc spent a third of the decode thread's time on
/// that pattern (docs/performance.md); a copy of mimalloc in every plugin instead would need
/// dynamic TLS in each library, which costs more than it saves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad input: an invalid deployment, a refused plugin under `--strict`.
const EXIT_INVALID: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "temblor",
    version,
    about = "An event-processing engine: sources and sinks move bytes, codecs turn bytes into \
             events and back, pipelines transform events in between.",
    after_help = "Plugins are loaded from every --plugin-dir, then the colon-separated \
                  TEMBLOR_PLUGIN_PATH, then ./target/plugins (build them with \
                  `cargo xtask build-plugins`).\nLog level: --log-level or TEMBLOR_LOG \
                  (error, warn, info, debug, trace)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    load: LoadArgs,
    /// How much to log (to stderr).
    #[arg(
        long,
        global = true,
        env = "TEMBLOR_LOG",
        default_value = "info",
        value_name = "LEVEL"
    )]
    log_level: LevelFilter,
    /// How log lines are written (to stderr): `text` for people, `json` (one object a line,
    /// with the connector or pipeline span) for log shippers.
    #[arg(
        long,
        global = true,
        env = "TEMBLOR_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// A directory of plugin libraries to load (repeatable; searched before TEMBLOR_PLUGIN_PATH).
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Fail (exit code 2) when any plugin file is refused or built by another rustc.
    #[arg(long, global = true)]
    strict: bool,
    /// Load plugin files even when they or their directory are writable by group or others or
    /// owned by another user than this one or root (for development only: whoever can write
    /// such a file can run code as you; see docs/security.md).
    #[arg(long, global = true)]
    allow_insecure_plugins: bool,
}

impl LoadArgs {
    /// Whether insecure plugin files are refused.
    fn permissions(&self) -> loader::Permissions {
        if self.allow_insecure_plugins {
            loader::Permissions::AllowInsecure
        } else {
            loader::Permissions::Enforce
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a deployment until every source is exhausted (or SIGINT/SIGTERM), then drains and
    /// flushes every sink.
    Run {
        /// The deployment file (TOML).
        file: PathBuf,
        /// Writes per-connector and per-pipeline counts and states, the plugins and the
        /// process figures here, as JSON (the document of `GET /status`), at the end.
        #[arg(long, value_name = "PATH")]
        stats_json: Option<PathBuf>,
        /// Also writes the `--stats-json` file every S seconds while running (atomically: a
        /// temporary file, then a rename).
        #[arg(long, value_name = "S", requires = "stats_json")]
        stats_every: Option<f64>,
        /// Serves GET /metrics (Prometheus), /health and /status (JSON) on this address while
        /// running, e.g. 127.0.0.1:9898 (loopback: only this machine can ask).
        #[arg(long, value_name = "ADDR", env = "TEMBLOR_API")]
        api: Option<String>,
        /// Listens on this Unix socket for `temblor plugins reload NAME` (hot reload of a
        /// plugin file without a restart).
        #[arg(long, value_name = "SOCKET", env = "TEMBLOR_CONTROL")]
        control: Option<PathBuf>,
    },
    /// Checks a deployment: syntax, ids, plugins, processors, links and ports.
    Validate {
        /// The deployment file (TOML).
        file: PathBuf,
    },
    /// Lists and checks plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// A live view of a running `temblor run --api ADDR`: per connector events/s in and out,
    /// totals, errors, state; per pipeline. `q` quits.
    Top {
        /// The running engine's API address.
        #[arg(
            long,
            value_name = "ADDR",
            env = "TEMBLOR_API",
            default_value = "127.0.0.1:9898"
        )]
        api: String,
        /// How often to poll, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        interval_ms: u64,
    },
}

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// Every loadable plugin (name, kind, version, rustc, sha256 of its file, path) and every
    /// refused file.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Says whether one file loads as a plugin, and why not (exit code 0 or 2).
    Check {
        /// The library file.
        path: PathBuf,
    },
    /// Tells a running `temblor run --control SOCKET` to load a plugin's file again and swap
    /// its instances at their next batch (the rest of the deployment keeps running). A file
    /// that fails to load leaves the running version in place (exit code 1).
    Reload {
        /// The plugin's name (as `temblor plugins list` shows it).
        name: String,
        /// The running engine's control socket.
        #[arg(long, value_name = "SOCKET", env = "TEMBLOR_CONTROL")]
        control: PathBuf,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_max_level(cli.log_level)
            .with_target(false)
            .init(),
        // One JSON object a line: `timestamp`, `level`, `fields` (with `message`), `span` (the
        // innermost, e.g. `{"id":"in","name":"connector"}`) and `spans`.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_max_level(cli.log_level)
            .with_target(false)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            file,
            stats_json,
            stats_every,
            api,
            control,
        } => run(
            &cli.load,
            &file,
            &RunOptions {
                stats_json,
                stats_every,
                api,
                control,
            },
        ),
        Command::Top { api, interval_ms } => {
            top::run(&api, std::time::Duration::from_millis(interval_ms.max(100)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file } => validate(&cli.load, &file),
        Command::Plugins(PluginsCommand::List { format }) => list(&cli.load, format),
        Command::Plugins(PluginsCommand::Check { path }) => Ok(check(&cli.load, &path)),
        Command::Plugins(PluginsCommand::Reload { name, control }) => {
            let answer = control::request(&control, &format!("reload {name}"))?;
            println!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The plugins linked into this binary (the monolith build), registered like loaded ones.
fn builtin_modules() -> Vec<PluginModRef> {
    #[cfg(feature = "monolith")]
    {
        vec![
            connector_bench::plugin_module(),
            connector_blackhole::plugin_module(),
            connector_exit::plugin_module(),
            connector_file::plugin_module(),
            connector_http_client::plugin_module(),
            connector_http_server::plugin_module(),
            connector_metronome::plugin_module(),
            connector_nats::plugin_module(),
            connector_stdio::plugin_module(),
            connector_tcp_client::plugin_module(),
            connector_tcp_server::plugin_module(),
            connector_udp_client::plugin_module(),
            connector_udp_server::plugin_module(),
            connector_unix_client::plugin_module(),
            connector_unix_server::plugin_module(),
            connector_ws_client::plugin_module(),
            connector_ws_server::plugin_module(),
            codec_binary::plugin_module(),
            codec_binflux::plugin_module(),
            codec_cbor::plugin_module(),
            codec_csv::plugin_module(),
            codec_dogstatsd::plugin_module(),
            codec_influx::plugin_module(),
            codec_json::plugin_module(),
            codec_msgpack::plugin_module(),
            codec_statsd::plugin_module(),
            codec_string::plugin_module(),
            codec_syslog::plugin_module(),
            codec_yaml::plugin_module(),
        ]
    }
    #[cfg(not(feature = "monolith"))]
    {
        Vec::new()
    }
}

/// Registers the built-in plugins, then loads the plugin directories, enforcing `pins`.
fn load(args: &LoadArgs, pins: &Pins) -> (Registry, LoadReport) {
    let mut registry = Registry::new();
    for module in builtin_modules() {
        // Built-in names are distinct by construction.
        let _ = registry.add(Plugin::new(module, "built-in"));
    }
    for pin in pins.iter() {
        if registry.get(&pin.name).is_some() {
            warn!(
                plugin = %pin.name,
                pinned_at = %pins.place(pin),
                "this plugin is built into this binary: its pin applies to plugin files and is not checked"
            );
        }
    }
    let env = std::env::var(loader::PLUGIN_PATH_VAR).ok();
    // The monolith needs no plugin directory: it only searches the ones it is given.
    let default_dir = !cfg!(feature = "monolith");
    let dirs = loader::plugin_dirs(&args.plugin_dirs, env.as_deref(), default_dir);
    let report = loader::load_dirs(&dirs, &mut registry, args.permissions(), pins);
    (registry, report)
}

/// Loads plugins and reports refused files; under `--strict` any refusal is fatal. The
/// registry, and the SHA-256 of each loaded file by path.
fn load_checked(
    args: &LoadArgs,
    pins: &Pins,
) -> Result<(Registry, std::collections::BTreeMap<String, String>), ExitCode> {
    let (registry, report) = load(args, pins);
    for r in &report.refused {
        warn!(path = %r.path.display(), reason = %r.reason, "plugin file refused");
    }
    for w in &report.warnings {
        warn!(path = %w.path.display(), reason = %w.reason, "plugin built by another compiler");
    }
    if args.strict && !(report.refused.is_empty() && report.warnings.is_empty()) {
        error!(
            refused = report.refused.len() + report.warnings.len(),
            "--strict: refusing to start with refused plugin files"
        );
        return Err(ExitCode::from(EXIT_INVALID));
    }
    Ok((registry, report.sha256))
}

/// Reads and parses a deployment file (its shape and its `[[plugin]]` pins), before any plugin
/// is loaded: the pins decide which plugin files may be. Errors are printed.
fn parse_deployment(file: &Path) -> Result<Result<(Deployment, Pins), ExitCode>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read deployment file {}", file.display()))?;
    let name = file.display().to_string();
    Ok(match Deployment::parse(&text, &name) {
        Ok(d) => {
            let pins = Pins::new(&name, d.pins());
            Ok((d, pins))
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            Err(ExitCode::from(EXIT_INVALID))
        }
    })
}

/// What `run` needs of a deployment file.
struct Loaded {
    registry: Registry,
    deployment: Deployment,
    plan: temblor_core::Plan,
    pins: Pins,
    hashes: std::collections::BTreeMap<String, String>,
}

/// Parses a deployment, loads the plugins it allows, and checks it against them.
fn read_deployment(args: &LoadArgs, file: &Path) -> Result<Result<Loaded, ExitCode>> {
    let (deployment, pins) = match parse_deployment(file)? {
        Ok(d) => d,
        Err(code) => return Ok(Err(code)),
    };
    let (registry, hashes) = match load_checked(args, &pins) {
        Ok(r) => r,
        Err(code) => return Ok(Err(code)),
    };
    let name = file.display().to_string();
    Ok(match deployment.validate(&registry, &name) {
        Ok(plan) => Ok(Loaded {
            registry,
            deployment,
            plan,
            pins,
            hashes,
        }),
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            Err(ExitCode::from(EXIT_INVALID))
        }
    })
}

/// The flags of `temblor run` besides the deployment.
struct RunOptions {
    stats_json: Option<PathBuf>,
    stats_every: Option<f64>,
    api: Option<String>,
    control: Option<PathBuf>,
}

fn run(args: &LoadArgs, file: &Path, opts: &RunOptions) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    // Checked and bound first: a bad --api or --stats-every fails before anything runs.
    let every = match opts.stats_every {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            anyhow::bail!("--stats-every {s}: expected a number of seconds above 0")
        }
        Some(s) => Some(std::time::Duration::from_secs_f64(s)),
        None => None,
    };
    let api = opts.api.as_deref().map(api::bind).transpose()?;
    let Loaded {
        registry,
        deployment,
        plan,
        pins,
        hashes,
    } = match read_deployment(args, file)? {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    // The handlers above set the flag; this thread also wakes the sources that wait for data
    // (without it they would notice the stop only when data came).
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("cannot install signal handlers")?;
    let engine = match Engine::start(&deployment, &plan, &registry, stop) {
        Ok(engine) => engine,
        Err(e) => {
            for line in e.problems {
                eprintln!("error: {line}");
            }
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let stopper = engine.stopper();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                info!(signal, "stopping on a signal");
                stopper.request();
            }
        })
        .context("cannot start the signal thread")?;
    let report = status::Report {
        stats: Arc::clone(engine.stats()),
        reloader: engine.reloader(),
        hashes: Arc::new(std::sync::Mutex::new(hashes)),
        started,
    };
    // Removed (socket file and reload copies) when `run` returns.
    let _control = opts
        .control
        .as_deref()
        .map(|path| {
            control::Server::start(
                path,
                engine.reloader(),
                args.permissions(),
                pins,
                Arc::clone(&report.hashes),
            )
        })
        .transpose()?;
    if let Some(api) = api {
        api.serve(report.clone())?;
    }
    // Stopped (and joined) before the final write below.
    let periodic = match (&opts.stats_json, every) {
        (Some(path), Some(every)) => Some(status::Periodic::start(
            report.clone(),
            path.clone(),
            every,
        )?),
        _ => None,
    };
    let stats = engine.wait();
    drop(periodic);
    let elapsed = stats.elapsed_s();
    info!(
        elapsed_s = format_args!("{elapsed:.3}"),
        "deployment finished"
    );
    for (id, c) in stats.connectors() {
        let bytes = c.bytes_in.load(Ordering::Relaxed);
        let events = c.events_out.load(Ordering::Relaxed);
        if bytes > 0 && elapsed > 0.0 {
            #[allow(clippy::cast_precision_loss)]
            let (mb, n) = (bytes as f64 / 1e6, events as f64);
            info!(
                connector = id,
                events,
                mb = format_args!("{mb:.1}"),
                mb_s = format_args!("{:.1}", mb / elapsed),
                events_s = format_args!("{:.0}", n / elapsed),
                "source throughput"
            );
        }
    }
    if let Some(path) = &opts.stats_json {
        report
            .write(path)
            .with_context(|| format!("--stats-json: cannot write stats to {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(args: &LoadArgs, file: &Path) -> Result<ExitCode> {
    let (d, pins) = match parse_deployment(file)? {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let registry = match load_checked(args, &pins) {
        Ok((r, _)) => r,
        Err(code) => return Ok(code),
    };
    let name = file.display().to_string();
    let checked = d.validate(&registry, &name).map(|plan| (d, plan));
    // Errors, then warnings (valid, but likely mistakes: a pipeline nothing feeds, or whose
    // events go nowhere), each with its place in the file.
    Ok(match checked {
        Ok((d, plan)) => {
            for w in &plan.warnings {
                eprintln!("warning: {name}:{w}");
            }
            println!(
                "{}: ok ({} connectors, {} pipelines, {} links)",
                file.display(),
                d.connectors.len(),
                d.pipelines.len(),
                plan.links.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            for line in e.warning_lines() {
                eprintln!("warning: {line}");
            }
            ExitCode::from(EXIT_INVALID)
        }
    })
}

fn list(args: &LoadArgs, format: Format) -> Result<ExitCode> {
    let (registry, report) = load(args, &Pins::default());
    // Built-in plugins have no file, so no hash.
    let sha256 = |p: &Plugin| report.sha256.get(&p.origin).map(String::as_str);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let plugins: Vec<Value> = registry
                .iter()
                .map(|p| {
                    Value::Object(
                        [
                            ("name", Value::from(p.name.as_str())),
                            ("kind", p.kind.as_str().into()),
                            ("version", p.version.as_str().into()),
                            ("rustc", p.rustc.as_str().into()),
                            ("path", p.origin.as_str().into()),
                            ("sha256", sha256(p).map_or(Value::Null, Value::from)),
                        ]
                        .into_iter()
                        .collect(),
                    )
                })
                .collect();
            let files = |list: &[loader::Refused]| -> Value {
                list.iter()
                    .map(|r| {
                        Value::Object(
                            [
                                ("path", Value::from(r.path.display().to_string())),
                                ("reason", r.reason.as_str().into()),
                            ]
                            .into_iter()
                            .collect::<Object>(),
                        )
                    })
                    .collect::<Vec<_>>()
                    .into()
            };
            let doc: Object = [
                ("plugins", Value::from(plugins)),
                ("refused", files(&report.refused)),
                ("warnings", files(&report.warnings)),
            ]
            .into_iter()
            .collect();
            writeln!(out, "{}", Value::Object(doc))?;
        }
        Format::Text => {
            writeln!(
                out,
                "{:<12} {:<10} {:<8} {:<8} {:<64} PATH",
                "NAME", "KIND", "VERSION", "RUSTC", "SHA256"
            )?;
            for p in registry.iter() {
                writeln!(
                    out,
                    "{:<12} {:<10} {:<8} {:<8} {:<64} {}",
                    p.name,
                    p.kind.as_str(),
                    p.version,
                    p.rustc,
                    sha256(p).unwrap_or("-"),
                    p.origin
                )?;
            }
            for w in &report.warnings {
                writeln!(out, "warning: {w}")?;
            }
            for r in &report.refused {
                writeln!(out, "refused: {r}")?;
            }
        }
    }
    let failed = args.strict && !(report.refused.is_empty() && report.warnings.is_empty());
    Ok(if failed {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(args: &LoadArgs, path: &Path) -> ExitCode {
    // Hashed before it is opened, as when a directory is loaded (a file that cannot be read
    // is left to the loader to report).
    let sha256 = pinning::sha256_file(path).unwrap_or_default();
    match loader::load_file(path, args.permissions()) {
        Ok(loaded) => {
            let p = Plugin::new(loaded.module, path.display().to_string());
            println!(
                "{}: ok: {} plugin '{}' version {}, built by rustc {}, sha256 {sha256}",
                path.display(),
                p.kind.as_str(),
                p.name,
                p.version,
                p.rustc
            );
            let warned = loaded.warning.is_some();
            if let Some(w) = loaded.warning {
                println!("{}: warning: {w}", path.display());
            }
            if let Some(insecure) = loaded.insecure {
                println!(
                    "{}: warning: {insecure} (loaded because of --allow-insecure-plugins)",
                    path.display()
                );
            }
            if warned && args.strict {
                println!("{}: refused under --strict", path.display());
                return ExitCode::from(EXIT_INVALID);
            }
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("{}: refused: {reason}", path.display());
            ExitCode::from(EXIT_INVALID)
        }
    }
}
