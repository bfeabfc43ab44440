//! `cargo xtask bench`: engine throughput, plugins against monolith, against a raw loop.
//!
//! Builds the release engine in both layouts (`target/layouts/plugins`: `temblor` plus every
//! plugin cdylib; `target/layouts/monolith`: `temblor --features monolith`), then runs each
//! scenario on both, alternating plugins and monolith, `--runs` times each. Every scenario is
//! the `bench` source replaying a data set for `--seconds`, a codec, a pipeline, a codec and
//! the `blackhole` sink. In the same run, `raw-simdjson` (crate `perf`) decodes and re-encodes
//! the same lines on one thread with no engine around it: the baseline.
//!
//! The network scenarios (`http-ingest`, `http-connections`, `tcp-ingest`, `tcp-latency`,
//! `nats-ingest`, module `bench_net`) run real clients (wrk, `net-load`, `nats-bench` and a
//! `nats-server`) against the plugins layout; asked for alone, they build no monolith and only
//! the plugins they load.
//!
//! Prints a table and writes `target/bench/report.json` and `chart.svg` (MB/s per scenario and layout).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::{
    build_plugins::{Profile, built_library, discover, groups, library_file, plugin_build_args},
    deploy,
    util::{cargo, cores, project_root, run as run_cmd, target_dir, utc_now},
};

/// The classification of Tremor's throughput-logging-json benchmark, then its bucketing.
const LOGGING_SHAPE: &str = r#"[
  { set = {
      "meta.class" = 'match event { {application: "app1"} | {application: "app2"} => "applog_app1", {index_type: "applog_app6"} => "applog_app6", {index_type: "syslog_app1"} => "syslog_app1", _ when "tag1" in event.tags => "applog_app1", {index_type: "edilog"} => "edilog", {index_type: "sqlserverlog"} => "sqlserverlog", _ => "default" }',
      "meta.rate" = 'match meta.class { "applog_app1" => 1250, "applog_app6" => 4500, "syslog_app1" => 2500, "edilog" => 3750, "sqlserverlog" => 3125, _ => 9000 }',
      "meta.dimension" = 'match meta.class { "applog_app1" => event.application, "applog_app6" => event.logger_name, "syslog_app1" => event.syslog_hostname, _ => null }',
  } },
  { bucket = { class = 'meta.class', rate = 'meta.rate', dimension = 'meta.dimension', time_range_s = 1, windows = 100 } },
]"#;

/// A workload.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// data.json: json decode, empty pipeline, json encode (Tremor's passthrough-json).
    PassthroughJson,
    /// data.json with the binary codec: no parsing, the engine and the boundary alone.
    PassthroughBinary,
    /// match.json (28,900 larger records): json both ways.
    LargeJson,
    /// data.json: json, a filter and a field set in the pipeline, json.
    FilterJson,
    /// passthrough-json with acknowledgements on: every batch's token is followed to the
    /// blackhole's flush and acked back to the source.
    PassthroughJsonAcks,
    /// data.json: the classification of Tremor's throughput-logging-json (`match` setting
    /// meta class, rate and dimension), then `bucket`; both ports to the blackhole.
    LoggingShape,
    /// data.json: `aggregate` by application in 10 s tumbling windows (count, mean, p99, max).
    #[value(name = "aggregate-10s")]
    Aggregate10s,
    /// wrk POSTs data.json's lines to http_server → blackhole, against a bare hyper server.
    HttpIngest,
    /// 10,000 concurrent keep-alive connections to http_server: all answered, RSS ≤ 150 MB.
    HttpConnections,
    /// 4 socket clients send NDJSON to tcp_server → blackhole, against the same lines read
    /// from a file (file passthrough), alternating.
    TcpIngest,
    /// 1,000 events/s through tcp_server → tcp_client: the p99 of the round trip.
    TcpLatency,
    /// JetStream → nats source → blackhole in messages/s, against a raw consume-and-ack loop
    /// on the connector's own client, alternating.
    NatsIngest,
}

impl Scenario {
    const ALL: [Self; 7] = [
        Self::PassthroughJson,
        Self::PassthroughJsonAcks,
        Self::PassthroughBinary,
        Self::LargeJson,
        Self::FilterJson,
        Self::LoggingShape,
        Self::Aggregate10s,
    ];

    /// The network scenarios, run after the others.
    const NET: [Self; 5] = [
        Self::HttpIngest,
        Self::HttpConnections,
        Self::TcpIngest,
        Self::TcpLatency,
        Self::NatsIngest,
    ];

    /// The plugins a network scenario's deployments load (folder names).
    fn plugins(self) -> &'static [&'static str] {
        match self {
            Self::HttpIngest | Self::HttpConnections => &["http_server", "blackhole", "json"],
            Self::TcpIngest => &["tcp_server", "file", "blackhole", "json"],
            Self::TcpLatency => &["tcp_server", "tcp_client", "json"],
            Self::NatsIngest => &["nats", "blackhole", "json"],
            _ => &[],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::HttpIngest => "http-ingest",
            Self::HttpConnections => "http-connections",
            Self::TcpIngest => "tcp-ingest",
            Self::TcpLatency => "tcp-latency",
            Self::NatsIngest => "nats-ingest",
            Self::PassthroughJson => "passthrough-json",
            Self::PassthroughBinary => "passthrough-binary",
            Self::LargeJson => "large-json",
            Self::FilterJson => "filter-json",
            Self::PassthroughJsonAcks => "passthrough-json-acks",
            Self::LoggingShape => "logging-shape",
            Self::Aggregate10s => "aggregate-10s",
        }
    }

    fn data(self) -> &'static str {
        match self {
            Self::LargeJson => "examples/data/match.json.xz",
            _ => "examples/data/data.json.xz",
        }
    }

    fn codec(self) -> &'static str {
        match self {
            Self::PassthroughBinary => "binary",
            _ => "json",
        }
    }

    fn operators(self) -> &'static str {
        match self {
            Self::FilterJson => {
                r#"[
  { filter = 'event.aint > 10 and event.short_message != "critical"' },
  { set = { "meta.seen" = true, "event.checked" = true } },
]"#
            }
            Self::LoggingShape => LOGGING_SHAPE,
            Self::Aggregate10s => {
                r#"[
  { aggregate = { window = { tumbling_s = 10 }, group_by = ['event.application'],
                  emit = { "count" = 'count()', "mean" = 'mean(event.aint)',
                           "p99" = 'percentile(event.aint, 0.99)', "max" = 'max(event.aint)' } } },
]"#
            }
            _ => "[]",
        }
    }

    /// Extra links: the ports other than `out` that also go to the blackhole.
    fn extra_ports(self) -> &'static [&'static str] {
        match self {
            Self::LoggingShape => &["overflow"],
            _ => &[],
        }
    }

    /// Whether the raw simd-json loop is a fair baseline (it parses JSON).
    fn has_raw_baseline(self) -> bool {
        self.codec() == "json"
    }

    fn acks(self) -> bool {
        self == Self::PassthroughJsonAcks
    }

    fn deployment(self, seconds: f64) -> String {
        let codec = format!("codec = \"{}\"", self.codec());
        let config = format!(
            "config = {{ path = \"{}\", duration_s = {seconds}, acks = {} }}",
            project_root().join(self.data()).display(),
            self.acks()
        );
        let extra: Vec<(String, &str)> = self
            .extra_ports()
            .iter()
            .map(|p| (format!("main/{p}"), "out"))
            .collect();
        deploy::passthrough(
            &format!(
                "# Written by `cargo xtask bench` for the {} scenario.",
                self.name()
            ),
            &deploy::connector("in", "bench", &[&codec, &config]),
            &deploy::connector(
                "out",
                "blackhole",
                &[&codec, r#"postprocessors = ["separate"]"#],
            ),
            self.operators(),
        ) + &deploy::connect(&extra)
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Which scenario(s) to run (repeatable; default: all).
    #[arg(long, value_enum)]
    pub scenario: Vec<Scenario>,
    /// How long each run replays its data set.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Runs per scenario and layout (at least 3 for a median worth quoting).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Run {
    mb_s: f64,
    events_s: f64,
    peak_rss_kb: Option<u64>,
    /// Batches the engine acked to the source (acks scenarios).
    acked: u64,
}

/// The runs of one scenario in one layout.
#[derive(Debug, Clone)]
pub struct Cell {
    scenario: &'static str,
    layout: &'static str,
    runs: Vec<Run>,
}

impl Cell {
    fn median_mb_s(&self) -> f64 {
        crate::compare_compile_times::median(&self.runs.iter().map(|r| r.mb_s).collect::<Vec<_>>())
    }

    fn median_events_s(&self) -> f64 {
        crate::compare_compile_times::median(
            &self.runs.iter().map(|r| r.events_s).collect::<Vec<_>>(),
        )
    }

    fn peak_rss_kb(&self) -> Option<u64> {
        self.runs.iter().filter_map(|r| r.peak_rss_kb).max()
    }
}

/// The ratio of each run of `a` to the run of `b` made right after it (runs alternate), and
/// their median. The machine has slow spells of a few seconds (both layouts drop to 200-300
/// MB/s together, docs/performance.md) that a ratio of medians over few runs mistakes for a
/// difference between layouts; a pair shares its spell.
fn paired_ratios(a: &Cell, b: &Cell) -> (Vec<f64>, f64) {
    let ratios: Vec<f64> = a
        .runs
        .iter()
        .zip(&b.runs)
        .map(|(x, y)| x.mb_s / y.mb_s)
        .collect();
    let median = crate::compare_compile_times::median(&ratios);
    (ratios, median)
}

#[derive(Deserialize)]
struct EngineStats {
    elapsed_s: f64,
    connectors: std::collections::BTreeMap<String, ConnectorStats>,
    peak_rss_kb: Option<u64>,
}

#[derive(Deserialize)]
struct ConnectorStats {
    bytes_in: u64,
    events_out: u64,
    #[serde(default)]
    acked: u64,
}

#[derive(Deserialize)]
struct RawStats {
    bytes: u64,
    events: u64,
    elapsed_s: f64,
    peak_rss_kb: Option<u64>,
}

/// What [`build`] made.
struct Built {
    plugins_bin: PathBuf,
    plugin_dir: PathBuf,
    monolith_bin: PathBuf,
    raw_bin: PathBuf,
    bare_hyper: PathBuf,
    net_load: PathBuf,
    nats_bench: PathBuf,
}

/// Builds both layouts (release) and the perf binaries. `only`: the network scenarios
/// alone, which run the plugins layout only: no monolith, and only the plugins they load.
fn build(only: Option<&[Scenario]>) -> Result<Built> {
    let layouts = target_dir().join("layouts");
    let exe = |layout: &str, name: &str| {
        layouts
            .join(layout)
            .join("release")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    };
    if only.is_none() {
        run_cmd(
            cargo()
                .env("CARGO_TARGET_DIR", layouts.join("monolith"))
                .args([
                    "build",
                    "--release",
                    "-p",
                    "temblor",
                    "--features",
                    "monolith",
                ]),
        )?;
    }
    let mut plugins = discover(groups(false))?;
    if let Some(net) = only {
        plugins.retain(|p| net.iter().any(|s| s.plugins().contains(&p.name.as_str())));
    }
    run_cmd(
        cargo()
            .env("CARGO_TARGET_DIR", layouts.join("plugins"))
            .args(["build", "--release", "-p", "temblor-perf"]),
    )?;
    let packages: Vec<&str> = plugins.iter().map(|p| p.package.as_str()).collect();
    if let Some(build) = plugin_build_args(Profile::Release, true, &packages) {
        run_cmd(
            cargo()
                .env("CARGO_TARGET_DIR", layouts.join("plugins"))
                .args(&build),
        )?;
    }
    let target = layouts.join("plugins");
    let plugin_dir = target.join("release").join("plugin-dir");
    std::fs::create_dir_all(&plugin_dir)?;
    for p in &plugins {
        let from = built_library(&target, Profile::Release, &p.lib);
        std::fs::copy(&from, plugin_dir.join(library_file(&p.lib)))
            .with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(Built {
        plugins_bin: exe("plugins", "temblor"),
        plugin_dir,
        monolith_bin: exe("monolith", "temblor"),
        raw_bin: exe("plugins", "raw-simdjson"),
        bare_hyper: exe("plugins", "bare-hyper"),
        net_load: exe("plugins", "net-load"),
        nats_bench: exe("plugins", "nats-bench"),
    })
}

fn engine_run(
    temblor: &Path,
    plugin_dir: Option<&Path>,
    deployment: &Path,
    stats: &Path,
) -> Result<Run> {
    let mut cmd = Command::new(temblor);
    // Run outside the repository so that its ./target/plugins is not loaded as well.
    cmd.current_dir(target_dir().join("bench"))
        .args(["--log-level", "warn"]);
    if let Some(dir) = plugin_dir {
        cmd.arg("--plugin-dir").arg(dir);
    }
    cmd.arg("run")
        .arg(deployment)
        .arg("--stats-json")
        .arg(stats);
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", temblor.display()))?;
    if !status.success() {
        bail!(
            "{} run {} failed ({status})",
            temblor.display(),
            deployment.display()
        );
    }
    let text = std::fs::read_to_string(stats)?;
    let s: EngineStats =
        serde_json::from_str(&text).with_context(|| format!("bad stats: {text}"))?;
    let source = s
        .connectors
        .get("in")
        .context("no 'in' connector in the stats")?;
    Ok(Run {
        mb_s: source.bytes_in as f64 / 1e6 / s.elapsed_s,
        events_s: source.events_out as f64 / s.elapsed_s,
        peak_rss_kb: s.peak_rss_kb,
        acked: source.acked,
    })
}

fn raw_run(raw: &Path, data: &str, seconds: f64) -> Result<Run> {
    let out = Command::new(raw)
        .current_dir(project_root())
        .arg(data)
        .args(["--seconds", &seconds.to_string()])
        .output()
        .with_context(|| format!("cannot start {}", raw.display()))?;
    if !out.status.success() {
        bail!(
            "raw-simdjson failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s: RawStats = serde_json::from_slice(&out.stdout)?;
    Ok(Run {
        mb_s: s.bytes as f64 / 1e6 / s.elapsed_s,
        events_s: s.events as f64 / s.elapsed_s,
        peak_rss_kb: s.peak_rss_kb,
        acked: 0,
    })
}

pub fn run(args: &Args) -> Result<()> {
    if args.runs == 0 || args.seconds <= 0.0 {
        bail!("--runs and --seconds must be positive");
    }
    let chosen = |list: &[Scenario]| -> Vec<Scenario> {
        list.iter()
            .copied()
            .filter(|s| args.scenario.is_empty() || args.scenario.contains(s))
            .collect()
    };
    let scenarios = chosen(&Scenario::ALL);
    let net = chosen(&Scenario::NET);
    let built = build(scenarios.is_empty().then_some(net.as_slice()))?;
    let Built {
        plugins_bin,
        plugin_dir,
        monolith_bin,
        raw_bin,
        ..
    } = &built;
    let (plugins_bin, plugin_dir, monolith_bin, raw_bin) = (
        plugins_bin.clone(),
        plugin_dir.clone(),
        monolith_bin.clone(),
        raw_bin.clone(),
    );
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let stats = out_dir.join("stats.json");
    let mut cells = Vec::new();
    let progress = crate::progress::Progress::new(scenarios.len() * args.runs);
    for scenario in scenarios {
        let deployment = out_dir.join(format!("{}.toml", scenario.name()));
        std::fs::write(&deployment, scenario.deployment(args.seconds))?;
        // One short untimed run of each layout first: files in the page cache, the CPU busy.
        let warm_up = out_dir.join(format!("{}-warm-up.toml", scenario.name()));
        std::fs::write(&warm_up, scenario.deployment(0.5))?;
        engine_run(&plugins_bin, Some(&plugin_dir), &warm_up, &stats)?;
        engine_run(&monolith_bin, None, &warm_up, &stats)?;
        let mut plugins = Cell {
            scenario: scenario.name(),
            layout: "plugins",
            runs: Vec::new(),
        };
        let mut monolith = Cell {
            scenario: scenario.name(),
            layout: "monolith",
            runs: Vec::new(),
        };
        let mut raw = Cell {
            scenario: scenario.name(),
            layout: "raw-simdjson",
            runs: Vec::new(),
        };
        for i in 0..args.runs {
            progress.step(&format!("{} run {}/{}", scenario.name(), i + 1, args.runs));
            plugins.runs.push(engine_run(
                &plugins_bin,
                Some(&plugin_dir),
                &deployment,
                &stats,
            )?);
            monolith
                .runs
                .push(engine_run(&monolith_bin, None, &deployment, &stats)?);
            if scenario.acks()
                && let Some(r) = plugins
                    .runs
                    .iter()
                    .chain(&monolith.runs)
                    .find(|r| r.acked == 0)
            {
                bail!(
                    "{}: a run acked no batch ({:.1} MB/s): acknowledgements are not working",
                    scenario.name(),
                    r.mb_s
                );
            }
            if scenario.has_raw_baseline() {
                raw.runs
                    .push(raw_run(&raw_bin, scenario.data(), args.seconds)?);
            }
            progress.done();
        }
        cells.push(plugins);
        cells.push(monolith);
        if !raw.runs.is_empty() {
            cells.push(raw);
        }
    }
    let bins = crate::bench_net::Bins {
        temblor: &built.plugins_bin,
        plugin_dir: &built.plugin_dir,
        bare_hyper: &built.bare_hyper,
        net_load: &built.net_load,
        nats_bench: &built.nats_bench,
    };
    let mut net_results = Vec::new();
    let data = Scenario::PassthroughJson.data();
    for scenario in net {
        let result = match scenario {
            Scenario::HttpIngest => {
                crate::bench_net::http_ingest(&bins, data, args.seconds, args.runs)?
            }
            Scenario::HttpConnections => {
                crate::bench_net::http_connections(&bins, data, args.seconds)?
            }
            Scenario::TcpIngest => {
                let passthrough = cells
                    .iter()
                    .find(|c| {
                        c.scenario == Scenario::PassthroughJson.name() && c.layout == "plugins"
                    })
                    .map(Cell::median_mb_s);
                crate::bench_net::tcp_ingest(&bins, data, args.seconds, args.runs, passthrough)?
            }
            Scenario::NatsIngest => {
                crate::bench_net::nats_ingest(&bins, data, args.seconds, args.runs)?
            }
            _ => crate::bench_net::tcp_latency(&bins, args.seconds.max(5.0))?,
        };
        net_results.push(result);
    }
    let report = report(&cells, &net_results, args)?;
    std::fs::write(out_dir.join("report.json"), report)?;
    drop(progress);
    let mb_s = |c: &Cell| -> Vec<f64> { c.runs.iter().map(|r| r.mb_s).collect() };
    let bars: Vec<_> = cells
        .iter()
        .map(|c| (c.scenario, c.layout, mb_s(c)))
        .collect();
    std::fs::write(out_dir.join("chart.svg"), crate::chart::throughput(&bars))?;
    print!("{}", table(&cells));
    if !net_results.is_empty() {
        print!("\n{}", crate::bench_net::table(&net_results));
    }
    for (layout, on, off) in acks_cost(&cells) {
        println!(
            "acks on / acks off, {layout}: {on:.1} / {off:.1} MB/s = {:.3}",
            on / off
        );
    }
    eprintln!(
        "wrote {} and chart.svg",
        out_dir.join("report.json").display()
    );
    Ok(())
}

fn report(cells: &[Cell], net: &[crate::bench_net::NetResult], args: &Args) -> Result<String> {
    let results: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| {
            let mut result = serde_json::json!({
                "scenario": c.scenario,
                "layout": c.layout,
                "runs_mb_s": c.runs.iter().map(|r| r.mb_s).collect::<Vec<_>>(),
                "runs_events_s": c.runs.iter().map(|r| r.events_s).collect::<Vec<_>>(),
                "median_mb_s": c.median_mb_s(),
                "median_events_s": c.median_events_s(),
                "peak_rss_kb": c.peak_rss_kb(),
            });
            let monolith = cells
                .iter()
                .find(|o| o.scenario == c.scenario && o.layout == "monolith");
            if let (Some(m), "plugins") = (monolith, c.layout) {
                let (pairs, paired) = paired_ratios(c, m);
                result["ratio_of_medians_to_monolith"] = (c.median_mb_s() / m.median_mb_s()).into();
                result["paired_ratios_to_monolith"] = pairs.into();
                result["paired_ratio_to_monolith"] = paired.into();
            }
            result
        })
        .collect();
    let acks: Vec<serde_json::Value> = acks_cost(cells)
        .into_iter()
        .map(|(layout, on, off)| {
            serde_json::json!({"layout": layout, "acks_on_mb_s": on, "acks_off_mb_s": off, "ratio": on / off})
        })
        .collect();
    let network: Vec<serde_json::Value> = net
        .iter()
        .map(|r| {
            serde_json::json!({
                "scenario": r.scenario, "figure": r.figure, "value": r.value,
                "baseline": r.baseline, "checked": r.checked, "target": r.target,
                "holds": r.pass, "detail": r.detail,
            })
        })
        .collect();
    let report = serde_json::json!({
        "network": network,
        "acks_on_over_off": acks,
        "rustc": rustc_version::version().context("rustc version")?.to_string(),
        "cores": cores(),
        "date": utc_now(),
        "seconds_per_run": args.seconds,
        "runs": args.runs,
        "results": results,
    });
    Ok(serde_json::to_string_pretty(&report)?)
}

/// Per layout: the median MB/s of passthrough-json with acks on, and with them off.
fn acks_cost(cells: &[Cell]) -> Vec<(&'static str, f64, f64)> {
    let median = |scenario: Scenario, layout: &str| {
        cells
            .iter()
            .find(|c| c.scenario == scenario.name() && c.layout == layout)
            .map(Cell::median_mb_s)
    };
    ["plugins", "monolith"]
        .into_iter()
        .filter_map(|layout| {
            let on = median(Scenario::PassthroughJsonAcks, layout)?;
            let off = median(Scenario::PassthroughJson, layout)?;
            Some((layout, on, off))
        })
        .collect()
}

fn table(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| scenario | layout | MB/s median (min-max) | events/s median | peak RSS MiB | plugins / monolith: medians, paired | / raw-simdjson |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for c in cells {
        let find = |layout: &str| {
            cells
                .iter()
                .find(|o| o.scenario == c.scenario && o.layout == layout)
        };
        let (lo, hi) = c.runs.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
            (lo.min(r.mb_s), hi.max(r.mb_s))
        });
        let ratio = match (c.layout, find("monolith")) {
            ("plugins", Some(m)) => format!(
                "{:.3}, {:.3}",
                c.median_mb_s() / m.median_mb_s(),
                paired_ratios(c, m).1
            ),
            _ => String::new(),
        };
        let vs_raw = match (c.layout, find("raw-simdjson")) {
            ("raw-simdjson", _) | (_, None) => String::new(),
            (_, Some(r)) => format!("{:.2}", c.median_mb_s() / r.median_mb_s()),
        };
        out.push_str(&format!(
            "| {} | {} | {:.1} ({lo:.1}-{hi:.1}) | {:.0} | {} | {ratio} | {vs_raw} |\n",
            c.scenario,
            c.layout,
            c.median_mb_s(),
            c.median_events_s(),
            c.peak_rss_kb()
                .map_or_else(|| "?".to_owned(), |kb| format!("{:.1}", kb as f64 / 1024.0)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_spell_shared_by_a_pair_does_not_move_the_paired_ratio() {
        let cell = |layout, runs: &[f64]| Cell {
            scenario: "passthrough-json",
            layout,
            runs: runs
                .iter()
                .map(|&mb_s| Run {
                    mb_s,
                    events_s: mb_s,
                    peak_rss_kb: None,
                    acked: 0,
                })
                .collect(),
        };
        // Two spells: runs 2 and 3 of plugins, run 2 of the monolith.
        let plugins = cell("plugins", &[540.0, 200.0, 210.0, 545.0, 550.0]);
        let monolith = cell("monolith", &[550.0, 205.0, 560.0, 556.0, 561.0]);
        let (pairs, paired) = paired_ratios(&plugins, &monolith);
        assert_eq!(pairs.len(), 5);
        assert!((pairs[1] - 200.0 / 205.0).abs() < 1e-9);
        assert!((paired - 545.0 / 556.0).abs() < 1e-9, "{paired}");
        // The ratio of medians reads the spells as a 3% loss.
        assert!(plugins.median_mb_s() / monolith.median_mb_s() < 0.975);
    }

    #[test]
    fn deployments_name_the_data_and_codec() {
        let d = Scenario::PassthroughBinary.deployment(2.0);
        assert!(d.contains(r#"codec = "binary""#));
        assert!(d.contains("duration_s = 2"));
        let d = Scenario::FilterJson.deployment(1.0);
        assert!(d.contains("filter = "));
        let d = Scenario::LoggingShape.deployment(1.0);
        assert!(d.contains("bucket = ") && d.contains(r#"from = "main/overflow""#));
        assert!(
            Scenario::Aggregate10s
                .deployment(1.0)
                .contains("aggregate = ")
        );
        assert!(
            Scenario::LargeJson
                .deployment(1.0)
                .contains("match.json.xz")
        );
    }

    #[test]
    fn table_gives_ratios() {
        let cell = |layout, mb_s| Cell {
            scenario: "passthrough-json",
            layout,
            runs: vec![Run {
                mb_s,
                events_s: mb_s * 1000.0,
                peak_rss_kb: Some(2048),
                acked: 0,
            }],
        };
        let t = table(&[
            cell("plugins", 99.0),
            cell("monolith", 100.0),
            cell("raw-simdjson", 90.0),
        ]);
        assert!(
            t.contains(
                "| passthrough-json | plugins | 99.0 (99.0-99.0) | 99000 | 2.0 | 0.990, 0.990 | 1.10 |"
            ),
            "{t}"
        );
    }
}
