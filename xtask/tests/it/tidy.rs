//! The architecture's invariants (ARCHITECTURE.md), checked on the tree as it is:
//!
//! - a plugin crate depends on `temblor-shim`, the helper crates (`temblor-net`,
//!   `temblor-compress`) and third-party crates only: never on `temblor-core`, the app or another
//!   plugin;
//! - `core` opens no library: no `libloading`, no abi_stable loading call;
//! - no library declares a `#[global_allocator]` outside its tests: only executables do;
//! - every plugin's `//!` doc has a Config and an Example section;
//! - `shim`, which every plugin compiles, depends on nothing outside its short list;
//! - `processors` (`temblor-processors`) needs no runtime: neither `temblor-core` nor an async
//!   runtime is among its dependencies, direct or not (so the fuzz targets and benchmarks that
//!   use it build none).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use super::project_root;

/// The workspace crates a plugin may depend on.
const PLUGIN_MAY_USE: [&str; 4] = [
    "temblor-shim",
    "temblor-net",
    "temblor-compress",
    "workspace-hack",
];

/// What `shim` may depend on (ARCHITECTURE.md: abi_stable, serde, tracing, itoa and ryu).
const SHIM_MAY_USE: [&str; 6] = [
    "abi_stable",
    "serde",
    "tracing",
    "itoa",
    "ryu",
    "workspace-hack",
];

struct Package {
    name: String,
    dir: PathBuf,
    /// Normal (not dev, not build) dependencies: (name, whether it is a path dependency).
    deps: Vec<(String, bool)>,
}

/// `cargo metadata` of the workspace, with `extra` arguments (`--no-deps`).
fn metadata(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(extra)
        .current_dir(project_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

fn packages() -> Vec<Package> {
    let meta = metadata(&["--no-deps"]);
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().expect("name").to_owned(),
            dir: Path::new(p["manifest_path"].as_str().expect("manifest path"))
                .parent()
                .expect("a folder")
                .to_path_buf(),
            deps: p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| {
                    (
                        d["name"].as_str().expect("dependency name").to_owned(),
                        d["path"].is_string(),
                    )
                })
                .collect(),
        })
        .collect()
}

fn is_plugin(p: &Package) -> bool {
    let rel = p.dir.strip_prefix(project_root()).unwrap_or(&p.dir);
    rel.starts_with("connectors") || rel.starts_with("codecs")
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    todo.push(path);
                }
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `text` that are code, not comments.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_start()))
        .filter(|(_, l)| !l.starts_with("//"))
}

#[test]
fn plugins_depend_on_the_shim_and_the_helper_crates_only() {
    let all = packages();
    let workspace: BTreeSet<&str> = all.iter().map(|p| p.name.as_str()).collect();
    let plugins: Vec<&Package> = all.iter().filter(|p| is_plugin(p)).collect();
    assert!(
        plugins.len() >= 20,
        "found only {} plugin crates",
        plugins.len()
    );
    let mut wrong = Vec::new();
    for p in &plugins {
        assert!(
            p.deps.iter().any(|(d, _)| d == "temblor-shim"),
            "{} does not depend on temblor-shim",
            p.name
        );
        for (dep, path) in &p.deps {
            let internal = *path || workspace.contains(dep.as_str());
            if internal && !PLUGIN_MAY_USE.contains(&dep.as_str()) {
                wrong.push(format!("{} depends on {dep}", p.name));
            }
        }
    }
    assert!(wrong.is_empty(), "plugins reach past the shim: {wrong:?}");
}

#[test]
fn the_shim_keeps_its_short_dependency_list() {
    let all = packages();
    let shim = all
        .iter()
        .find(|p| p.name == "temblor-shim")
        .expect("temblor-shim is a member");
    let extra: Vec<&str> = shim
        .deps
        .iter()
        .map(|(d, _)| d.as_str())
        .filter(|d| !SHIM_MAY_USE.contains(d))
        .collect();
    assert!(
        extra.is_empty(),
        "temblor-shim, which every plugin compiles, gained dependencies: {extra:?}"
    );
}

/// What the processors must never pull in: the engine, and any async runtime.
const NO_RUNTIME: [&str; 7] = [
    "temblor-core",
    "temblor-net",
    "tokio",
    "mio",
    "hyper",
    "async-std",
    "futures-executor",
];

#[test]
fn the_processors_need_no_runtime() {
    let meta = metadata(&[]);
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["id"] == id)
            .and_then(|p| p["name"].as_str())
            .expect("every resolved id is a package")
            .to_owned()
    };
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve nodes");
    // Normal dependencies (not dev, not build) of a node, by id.
    let normal_deps = |id: &str| -> Vec<String> {
        nodes
            .iter()
            .find(|n| n["id"] == id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
            })
            .map(|d| d["pkg"].as_str().expect("pkg id").to_owned())
            .collect()
    };
    let root = nodes
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .find(|id| name_of(id) == "temblor-processors")
        .expect("temblor-processors is a member")
        .to_owned();
    // Every crate the processors build, through anything but workspace-hack (which unifies
    // features for the whole workspace and is checked by hakari, not here).
    let mut seen = BTreeSet::new();
    let mut todo = vec![(root, vec!["temblor-processors".to_owned()])];
    let mut found = Vec::new();
    while let Some((id, path)) = todo.pop() {
        for dep in normal_deps(&id) {
            let name = name_of(&dep);
            if name == "workspace-hack" || !seen.insert(dep.clone()) {
                continue;
            }
            let mut via = path.clone();
            via.push(name.clone());
            if NO_RUNTIME.contains(&name.as_str()) {
                found.push(via.join(" -> "));
            }
            todo.push((dep, via));
        }
    }
    assert!(
        found.is_empty(),
        "the processors pull in a runtime: {found:?}"
    );
    assert!(
        seen.iter().any(|id| name_of(id) == "flate2"),
        "the walk reached the processors' dependencies"
    );
}

#[test]
fn core_opens_no_library() {
    let all = packages();
    let core = all
        .iter()
        .find(|p| p.name == "temblor-core")
        .expect("temblor-core is a member");
    for forbidden in ["libloading", "libc", "abi_stable"] {
        assert!(
            !core.deps.iter().any(|(d, _)| d == forbidden),
            "temblor-core depends on {forbidden}"
        );
    }
    let mut found = Vec::new();
    for file in rust_files(&core.dir.join("src")) {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (n, line) in code_lines(&text) {
            for word in [
                "dlopen",
                "libloading",
                "lib_header_from_path",
                "load_from_file",
                "load_from_directory",
                "RootModule",
            ] {
                if line.contains(word) {
                    found.push(format!("{}:{n}: {word}", file.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "core loads libraries: {found:?}");
}

#[test]
fn no_library_declares_a_global_allocator() {
    let root = project_root();
    let mut found = Vec::new();
    let mut libraries = 0;
    for p in packages() {
        let src = p.dir.join("src");
        // Executables choose the allocator: `app` (the engine) and the measuring binaries.
        let files: Vec<PathBuf> = rust_files(&src)
            .into_iter()
            .filter(|f| !f.starts_with(src.join("bin")) && !f.ends_with("main.rs"))
            .collect();
        libraries += 1;
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            // A test binary may count allocations with its own allocator.
            let tests_from = text
                .lines()
                .position(|l| l.trim() == "#[cfg(test)]")
                .map_or(usize::MAX, |i| i + 1);
            for (n, line) in code_lines(&text) {
                if line.starts_with("#[global_allocator]") && n < tests_from {
                    let rel = file.strip_prefix(&root).unwrap_or(&file).to_path_buf();
                    found.push(format!("{}:{n}", rel.display()));
                }
            }
        }
    }
    assert!(libraries > 20);
    assert!(
        found.is_empty(),
        "a library declares the allocator (only executables may): {found:?}"
    );
}

#[test]
fn every_plugin_documents_its_config_and_an_example() {
    let mut missing = Vec::new();
    for p in packages().iter().filter(|p| is_plugin(p)) {
        let lib = p.dir.join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).expect("a plugin has src/lib.rs");
        let heading = |name: &str| {
            text.lines().any(|l| {
                l.strip_prefix("//!")
                    .map(str::trim_start)
                    .is_some_and(|h| h.starts_with('#') && h.trim_start_matches('#').trim() == name)
            })
        };
        for section in ["Config", "Example"] {
            if !heading(section) {
                missing.push(format!("{}: no `# {section}` section", lib.display()));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:?}");
}
