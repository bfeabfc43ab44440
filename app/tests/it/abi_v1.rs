//! Plugins built against shim interface 1 — the last commit before interface 2 — load into
//! this temblor and work, without streams, metadata, acknowledgements or wake-ups.
//!
//! The test checks out that commit with `git worktree` into `target/abi-v1/src` and builds its
//! `file` connector and `json` codec there (dev profile, own target directory: about a minute
//! the first time, nothing after).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::support::{deployment, file_to_file, output, root, target_dir, temp_dir};

/// The last commit whose shim speaks interface 1.
const INTERFACE_1_COMMIT: &str = "2347668270e86177f94b04248a16ab30289a1cd7";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory holding the interface 1 `file` and `json` plugins (built once).
fn v1_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = target_dir().join("abi-v1");
        let src = base.join("src");
        let out = base.join("plugins");
        let libs = ["libconnector_file.so", "libcodec_json.so"];
        if libs.iter().all(|l| out.join(l).is_file()) {
            return out;
        }
        if !src.join("Cargo.toml").is_file() {
            let _ = std::fs::remove_dir_all(&src);
            run(Command::new("git")
                .current_dir(root())
                .args(["worktree", "prune"]));
            run(Command::new("git")
                .current_dir(root())
                .args(["worktree", "add", "--detach", "--force"])
                .arg(&src)
                .arg(INTERFACE_1_COMMIT));
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run(Command::new(cargo)
            .current_dir(&src)
            .env_remove("RUSTFLAGS")
            .env("CARGO_TARGET_DIR", base.join("target"))
            .args(["build", "-p", "connector-file", "-p", "codec-json"]));
        std::fs::create_dir_all(&out).unwrap();
        for lib in libs {
            // Installed by rename, as build tools do: a loaded library is never overwritten.
            let tmp = out.join(format!("{lib}.tmp"));
            std::fs::copy(base.join("target/debug").join(lib), &tmp).unwrap();
            std::fs::rename(&tmp, out.join(lib)).unwrap();
        }
        out
    })
}

#[test]
fn an_interface_1_plugin_loads_with_a_warning_naming_both_versions() {
    let file = v1_plugins().join("libconnector_file.so");
    let (status, stdout, stderr) = output(
        Command::new(env!("CARGO_BIN_EXE_temblor"))
            .args(["plugins", "check"])
            .arg(&file),
    );
    assert_eq!(status.status.code(), Some(0), "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("built against shim interface version 1, this temblor speaks version 2"),
        "{all}"
    );
    assert!(
        all.contains("without streams, metadata, acknowledgements or wake-ups"),
        "{all}"
    );
    // `--strict` refuses what works only in part.
    let (status, _, _) = output(
        Command::new(env!("CARGO_BIN_EXE_temblor"))
            .args(["--strict", "plugins", "check"])
            .arg(&file),
    );
    assert_eq!(status.status.code(), Some(2));
}

#[test]
fn interface_1_file_and_json_plugins_move_every_line() {
    let dir = temp_dir("abi-v1-run");
    let input = dir.join("in.json");
    let lines: Vec<String> = (0..5000)
        .map(|n| format!(r#"{{"n":{n},"text":"line {n}"}}"#))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (out, errors) = (dir.join("out.json"), dir.join("errors.json"));
    let plan = deployment(&dir, &file_to_file("json", &input, &out, &errors));
    let (status, stdout, stderr) = output(
        Command::new(env!("CARGO_BIN_EXE_temblor"))
            .current_dir(&dir)
            .env_remove("TEMBLOR_PLUGIN_PATH")
            .arg("--plugin-dir")
            .arg(v1_plugins())
            .arg("run")
            .arg(&plan),
    );
    assert!(status.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("shim interface version 1"), "{stderr}");
    let written = std::fs::read_to_string(&out).unwrap();
    let got: Vec<&str> = written.lines().collect();
    assert_eq!(got.len(), lines.len());
    assert_eq!(got, lines, "every line, once, in order");
    assert_eq!(std::fs::read_to_string(&errors).unwrap_or_default(), "");
}
