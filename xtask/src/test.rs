//! `cargo xtask test`: everything CI checks, in the order that fails fastest.
//!
//! 0. the system tools the tests call (xz, curl, nc, socat, python3, promtool, tmux) and the C pieces some
//!    crates build with (a C compiler, make, pkg-config, liblzma's headers), installed with apt-get
//!    when missing (as root, or through sudo), so that this command works on a fresh machine;
//!    and tansu, the Kafka-protocol broker of the `kafka` connector's tests, built from
//!    crates.io (with its in-memory storage) into `~/.cargo/bin` unless it is already there;
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

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

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

/// What the tests and the build need from the system: (how to tell it is there, Debian package).
const SYSTEM_NEEDS: [(&str, &str); 15] = [
    ("command -v xz", "xz-utils"),
    ("command -v cc", "gcc"),
    // librdkafka (the kafka connector) is built from its bundled sources: ./configure, make.
    ("command -v make", "make"),
    ("command -v pkg-config", "pkg-config"),
    ("test -e /usr/include/lzma.h", "liblzma-dev"),
    // The network connectors' tests use real peers.
    ("command -v curl", "curl"),
    ("command -v nc.openbsd", "netcat-openbsd"),
    ("command -v socat", "socat"),
    ("command -v python3", "python3"),
    ("command -v openssl", "openssl"),
    ("command -v wrk", "wrk"),
    // The nats connector's tests run JetStream servers (and clusters) of their own.
    ("command -v nats-server", "nats-server"),
    // `temblor run --api`: its /metrics is checked by Prometheus's own linter, and
    // `temblor top` runs in a tmux pane.
    ("command -v promtool", "prometheus"),
    ("command -v tmux", "tmux"),
    // Debian's python3 (not another one first on PATH) with its websockets module.
    (
        "/usr/bin/python3 -c 'import websockets' 2>/dev/null",
        "python3-websockets",
    ),
];

/// Installs the missing [`SYSTEM_NEEDS`] with apt-get.
fn ensure_system_tools() -> Result<()> {
    let missing: Vec<&str> = SYSTEM_NEEDS
        .iter()
        .filter(|(check, _)| {
            !std::process::Command::new("sh")
                .args(["-c", check])
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing what the tests need: {}", missing.join(" "));
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            std::process::Command::new("apt-get")
        } else {
            let mut sudo = std::process::Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_cmd(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend(&missing);
    apt(&install)
}

/// The tansu release the `kafka` connector's tests run against ("Kafka protocol, against
/// tansu"; `connectors/kafka/tests/it/tansu.rs` finds it on `PATH` or in `~/.cargo/bin`).
pub const TANSU_VERSION: &str = "0.6.0";

/// The feature that gives tansu its in-memory storage (`memory://`), which the tests use: a
/// default build has only the `null` engine, which keeps nothing.
pub const TANSU_FEATURE: &str = "dynostore";

/// Whether cargo's record of installed crates (`CARGO_HOME/.crates2.json`) has tansu
/// [`TANSU_VERSION`] with [`TANSU_FEATURE`], and its binary is there.
fn tansu_installed(cargo_home: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(cargo_home.join(".crates2.json")) else {
        return false;
    };
    let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let prefix = format!("tansu {TANSU_VERSION} ");
    let installed = record
        .get("installs")
        .and_then(serde_json::Value::as_object)
        .is_some_and(|installs| {
            installs.iter().any(|(key, info)| {
                key.starts_with(&prefix)
                    && info
                        .get("features")
                        .and_then(serde_json::Value::as_array)
                        .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(TANSU_FEATURE)))
            })
        });
    installed && cargo_home.join("bin").join("tansu").is_file()
}

/// Installs tansu with `cargo install` into `~/.cargo/bin` (kept on the machine between runs)
/// unless [`TANSU_VERSION`] with [`TANSU_FEATURE`] is already there. It builds from source,
/// unoptimized (`--debug`: fast enough for the tests' 20,000 messages): 4 min 33 s wall,
/// 422 s of CPU from an empty target directory on the 2-core machine, against 58 minutes for
/// a release build on the same machine while other builds ran; once per machine.
fn ensure_tansu() -> Result<()> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if cargo_home.as_deref().is_some_and(tansu_installed) {
        return Ok(());
    }
    eprintln!(
        "installing tansu {TANSU_VERSION}, the Kafka-protocol broker of the kafka tests (once per machine)"
    );
    let started = Instant::now();
    run_cmd(cargo().args([
        "install",
        "tansu",
        "--locked",
        "--debug",
        "--version",
        TANSU_VERSION,
        "--features",
        TANSU_FEATURE,
    ]))?;
    eprintln!("tansu installed in {} s", started.elapsed().as_secs());
    Ok(())
}

pub fn run(args: &Args) -> Result<()> {
    ensure_system_tools()?;
    ensure_tansu()?;
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
        build_plugins::run(&build_plugins::Args::all(Profile::Dev, test_plugins))?;
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
