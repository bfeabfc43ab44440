//! Plugins built against older shim interfaces load into this temblor and work: interface 1
//! (the last commit before interface 2) without streams, metadata, acknowledgements or
//! wake-ups, interface 2 (the last commit before interface 3) without wake-ups.
//!
//! The test checks out each commit with `git worktree` into `target/abi-vN/src` and builds its
//! `file` connector and `json` codec there (dev profile, own target directory: about a minute
//! the first time, nothing after).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::support::{file_to_file, output, root, target_dir, temp_dir};

/// The last commit whose shim speaks each older interface, and what its plugins go without.
const OLDER: [(u32, &str, &str); 2] = [
    (
        1,
        "2347668270e86177f94b04248a16ab30289a1cd7",
        "without streams, metadata, acknowledgements or wake-ups",
    ),
    (
        2,
        "736096c4cbfa8e04cc66c5625f6927e85346c07e",
        "without wake-ups (its sources poll)",
    ),
];

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The directory holding the `file` and `json` plugins of interface `version` (built once).
fn old_plugins(version: u32) -> &'static Path {
    static DIRS: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    let (_, commit, _) = OLDER[version as usize - 1];
    DIRS[version as usize - 1].get_or_init(|| {
        let base = target_dir().join(format!("abi-v{version}"));
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
                .arg(commit));
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

fn loads_with_a_warning_naming_both_versions(version: u32) {
    let file = old_plugins(version).join("libconnector_file.so");
    let (status, stdout, stderr) = output(
        Command::new(env!("CARGO_BIN_EXE_temblor"))
            .args(["plugins", "check"])
            .arg(&file),
    );
    assert_eq!(status.status.code(), Some(0), "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    let speaks = format!(
        "built against shim interface version {version}, this temblor speaks version {}",
        temblor_shim::abi::SHIM_INTERFACE_VERSION
    );
    assert!(all.contains(&speaks), "{all}");
    assert!(all.contains(OLDER[version as usize - 1].2), "{all}");
    // `--strict` refuses what works only in part.
    let (status, _, _) = output(
        Command::new(env!("CARGO_BIN_EXE_temblor"))
            .args(["--strict", "plugins", "check"])
            .arg(&file),
    );
    assert_eq!(status.status.code(), Some(2));
}

fn file_and_json_plugins_move_every_line(version: u32) {
    let dir = temp_dir(&format!("abi-v{version}-run"));
    let input = dir.join("in.json");
    let lines: Vec<String> = (0..5000)
        .map(|n| format!(r#"{{"n":{n},"text":"line {n}"}}"#))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (out, errors) = (dir.join("out.json"), dir.join("errors.json"));
    let plan = file_to_file("json", &input, &out, &errors).write(&dir);
    let (status, stdout, stderr) = output(
        Command::new(env!("CARGO_BIN_EXE_temblor"))
            .current_dir(&dir)
            .env_remove("TEMBLOR_PLUGIN_PATH")
            .arg("--plugin-dir")
            .arg(old_plugins(version))
            .arg("run")
            .arg(&plan),
    );
    assert!(status.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("shim interface version {version}")),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    let got: Vec<&str> = written.lines().collect();
    assert_eq!(got.len(), lines.len());
    assert_eq!(got, lines, "every line, once, in order");
    assert_eq!(std::fs::read_to_string(&errors).unwrap_or_default(), "");
}

#[test]
fn an_interface_1_plugin_loads_with_a_warning_naming_both_versions() {
    loads_with_a_warning_naming_both_versions(1);
}

#[test]
fn interface_1_file_and_json_plugins_move_every_line() {
    file_and_json_plugins_move_every_line(1);
}

#[test]
fn an_interface_2_plugin_loads_with_a_warning_naming_both_versions() {
    loads_with_a_warning_naming_both_versions(2);
}

#[test]
fn interface_2_file_and_json_plugins_move_every_line() {
    file_and_json_plugins_move_every_line(2);
}
