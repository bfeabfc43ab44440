//! The architecture's invariants (ARCHITECTURE.md), checked on the tree as it is:
//!
//! - a plugin crate depends on `temblor-shim`, the helper crates (`temblor-net`,
//!   `temblor-compress`) and third-party crates only: never on `temblor-core`, the app or another
//!   plugin;
//! - `core` opens no library: no `libloading`, no abi_stable loading call;
//! - no library declares a `#[global_allocator]` outside its tests: only executables do;
//! - every plugin's `//!` doc has a Config and an Example section;
//! - `shim`, which every plugin compiles, depends on nothing outside its short list, and its
//!   whole dependency tree has none of the binaries' heavy crates (workspace-hack's reach);
//! - `processors` (`temblor-processors`) needs no runtime: neither `temblor-core` nor an async
//!   runtime is among its dependencies, direct or not (so the fuzz targets and benchmarks that
//!   use it build none);
//! - every plugin folder is wired in where a list must name it: the app's optional dependency
//!   and `monolith` feature, a codec's fuzz target; and nothing is listed without its folder.

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

/// What `shim` may depend on (ARCHITECTURE.md: abi_stable, serde, tracing, itoa and ryu, and
/// its own proc-macro crate, which has no dependencies).
const SHIM_MAY_USE: [&str; 7] = [
    "abi_stable",
    "serde",
    "tracing",
    "itoa",
    "ryu",
    "temblor-shim-macros",
    "workspace-hack",
];

struct Package {
    name: String,
    dir: PathBuf,
    /// Normal (not dev, not build) dependencies: (name, whether it is a path dependency).
    deps: Vec<(String, bool)>,
}

/// The standard output of `cargo ARGS` in the workspace; fails the test when it fails.
fn cargo_output(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(project_root())
        .output()
        .unwrap_or_else(|e| panic!("cargo {args:?}: {e}"));
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `cargo metadata` of the workspace, with `extra` arguments (`--no-deps`).
fn metadata(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["metadata", "--format-version", "1", "--offline"];
    args.extend_from_slice(extra);
    serde_json::from_slice(&cargo_output(&args)).expect("metadata is JSON")
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

/// The crates of the binaries (the CLI, the API server, `temblor top`, hashing) that the
/// smallest codec must not compile: through workspace-hack they once reached every plugin.
const NOT_IN_THE_SHIM_TREE: [&str; 9] = [
    "clap",
    "clap_builder",
    "httparse",
    "serde_json",
    "sha2",
    "ratatui",
    "indicatif",
    "tokio",
    "zerocopy",
];

/// What the shim needs `syn` for: abi_stable's derives (`StableAbi`, `sabi_trait`), serde's
/// (abi_stable derives `Deserialize` too), and workspace-hack, which builds it with the features
/// of the full build so that a plugin built alone reuses the full build's proc macros.
const SYN_ONLY_UNDER: [&str; 4] = [
    "abi_stable_derive",
    "as_derive_utils",
    "serde_derive",
    "workspace-hack",
];

/// `cargo tree -p PACKAGE -e normal,build` as (crate, the crate that depends on it) pairs.
fn dependency_edges(package: &str) -> Vec<(String, String)> {
    let out = cargo_output(&[
        "tree",
        "--offline",
        "-e",
        "normal,build",
        "--prefix",
        "depth",
        "-p",
        package,
    ]);
    let mut path: Vec<String> = Vec::new();
    let mut edges = Vec::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let digits = line.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        let (Ok(depth), Some(name)) = (
            line[..digits].parse::<usize>(),
            line[digits..].split(' ').next(),
        ) else {
            continue;
        };
        path.truncate(depth);
        if let Some(parent) = path.last() {
            edges.push((name.to_owned(), parent.clone()));
        }
        path.push(name.to_owned());
    }
    edges
}

#[test]
fn the_shims_dependency_tree_has_none_of_the_binaries_crates() {
    let edges = dependency_edges("temblor-shim");
    assert!(
        edges.iter().any(|(d, _)| d == "abi_stable"),
        "cargo tree shows the shim's dependencies: {edges:?}"
    );
    let found: BTreeSet<&str> = edges
        .iter()
        .map(|(d, _)| d.as_str())
        .filter(|d| NOT_IN_THE_SHIM_TREE.contains(d))
        .collect();
    assert!(
        found.is_empty(),
        "every plugin compiles temblor-shim, whose tree now has {found:?}: keep them out of \
         workspace-hack (.config/hakari.toml) and out of the shim"
    );
    let syn_for: BTreeSet<&str> = edges
        .iter()
        .filter(|(d, _)| d == "syn")
        .map(|(_, by)| by.as_str())
        .filter(|by| !SYN_ONLY_UNDER.contains(by))
        .collect();
    assert!(
        syn_for.is_empty(),
        "temblor-shim compiles syn for {syn_for:?} too (only {SYN_ONLY_UNDER:?} need it)"
    );
}

/// `rel` (from the root) as a TOML document.
fn manifest(rel: &str) -> toml_edit::DocumentMut {
    let path = project_root().join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The entries of table `name` of `doc` whose keys start with `prefix`: key, and its `path`.
fn path_deps<'a>(
    doc: &'a toml_edit::DocumentMut,
    name: &str,
    prefix: &str,
) -> Vec<(&'a str, Option<&'a str>)> {
    doc[name]
        .as_table_like()
        .unwrap_or_else(|| panic!("no [{name}]"))
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k, v.get("path").and_then(|p| p.as_str())))
        .collect()
}

#[test]
fn every_plugin_folder_is_wired_in_and_nothing_else_is() {
    let root = project_root();
    let app = manifest("app/Cargo.toml");
    let fuzz = manifest("fuzz/Cargo.toml");
    let monolith: BTreeSet<&str> = app["features"]["monolith"]
        .as_array()
        .expect("app/Cargo.toml: a `monolith` feature")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let fuzz_bins: BTreeSet<&str> = fuzz["bin"]
        .as_array_of_tables()
        .expect("fuzz/Cargo.toml: [[bin]] targets")
        .iter()
        .filter_map(|t| t.get("name").and_then(|n| n.as_str()))
        .collect();
    let mut wrong = Vec::new();
    let mut packages = BTreeSet::new();
    for (folder, kind) in [("connectors", "connector"), ("codecs", "codec")] {
        let mut names: Vec<String> = std::fs::read_dir(root.join(folder))
            .expect("the plugin folder")
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let package = format!("{kind}-{name}");
            let lib = package.replace('-', "_");
            let dir = format!("{folder}/{name}");
            // The names app/build.rs and build-plugins derive from the folder.
            let own = manifest(&format!("{dir}/Cargo.toml"));
            if own["package"]["name"].as_str() != Some(package.as_str())
                || own["lib"]["name"].as_str() != Some(lib.as_str())
            {
                wrong.push(format!(
                    "{dir}: the package must be `{package}`, its [lib] `{lib}`"
                ));
            }
            let dep = &app["dependencies"][package.as_str()];
            let wanted = format!("../{dir}");
            if dep.get("path").and_then(|p| p.as_str()) != Some(wanted.as_str())
                || dep.get("optional").and_then(|o| o.as_bool()) != Some(true)
                || dep.get("default-features").and_then(|o| o.as_bool()) != Some(false)
            {
                wrong.push(format!(
                    "app/Cargo.toml: [dependencies] needs `{package} = {{ path = \"{wanted}\", \
                     default-features = false, optional = true }}`"
                ));
            }
            if !monolith.contains(package.as_str()) {
                wrong.push(format!(
                    "app/Cargo.toml: the `monolith` feature lacks \"{package}\""
                ));
            }
            if kind == "codec" {
                let path = fuzz["dependencies"][package.as_str()]
                    .get("path")
                    .and_then(|p| p.as_str());
                if path != Some(format!("../{dir}").as_str()) {
                    wrong.push(format!(
                        "fuzz/Cargo.toml: no dependency {package} on ../{dir}"
                    ));
                }
                let target = root.join(format!("fuzz/fuzz_targets/{lib}.rs"));
                if !fuzz_bins.contains(lib.as_str()) || !target.is_file() {
                    wrong.push(format!(
                        "fuzz: no target `{lib}` ([[bin]] in fuzz/Cargo.toml, {})",
                        target.display()
                    ));
                }
            }
            packages.insert(package);
        }
    }
    assert!(packages.len() >= 20, "found only {packages:?}");
    // Nothing listed without its folder (a removed plugin leaves no line behind).
    let listed = path_deps(&app, "dependencies", "connector-")
        .into_iter()
        .chain(path_deps(&app, "dependencies", "codec-"))
        .chain(path_deps(&fuzz, "dependencies", "codec-"))
        .map(|(k, _)| k)
        .chain(monolith.iter().copied());
    for name in listed {
        if !packages.contains(name) {
            wrong.push(format!(
                "{name} is listed in app/ or fuzz/, but has no plugin folder"
            ));
        }
    }
    assert!(wrong.is_empty(), "plugins not wired in: {wrong:#?}");
}
