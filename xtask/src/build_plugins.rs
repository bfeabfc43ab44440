//! `cargo xtask build-plugins`: builds plugin crates as cdylibs, copies them to the plugin
//! directory and checks that each loads.
//!
//! Plugin crates are found by convention: `connectors/<name>/` is package `connector-<name>`
//! with library `connector_<name>`, `codecs/<name>/` is `codec-<name>` / `codec_<name>`,
//! `test-plugins/<name>/` is `test-plugin-<name>` (only with `--test-plugins`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::util::{cargo, project_root, run as run_cmd, target_dir};

/// Build profile.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo build`: fast to build.
    Dev,
    /// `cargo build --release`: fast to run.
    Release,
}

impl Profile {
    /// The folder under target/ that cargo builds into.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Dev => "debug",
            Self::Release => "release",
        }
    }

    /// The cargo flag for this profile.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Dev => "--profile=dev",
            Self::Release => "--release",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Which profile to build.
    #[arg(long, value_enum, default_value_t = Profile::Release)]
    pub profile: Profile,
    /// Build only this plugin (a folder name under connectors/ or codecs/; repeatable).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Where to copy the libraries (default: target/plugins).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Build the test fixture plugins under test-plugins/ instead (default out: target/test-plugins).
    #[arg(long)]
    pub test_plugins: bool,
}

impl Args {
    /// Every plugin of the repository (or, with `test_plugins`, every test fixture plugin)
    /// built in `profile` into its default folder.
    pub fn all(profile: Profile, test_plugins: bool) -> Self {
        Self {
            profile,
            only: Vec::new(),
            out: None,
            test_plugins,
        }
    }
}

/// One plugin crate.
#[derive(Debug, Clone)]
pub struct PluginCrate {
    /// The folder name (`file`).
    pub name: String,
    /// The package (`connector-file`).
    pub package: String,
    /// The library (`connector_file`).
    pub lib: String,
    /// The crate's folder.
    pub dir: PathBuf,
}

/// Every plugin crate in `groups` (folder, package prefix) pairs.
pub fn discover(groups: &[(&str, &str)]) -> Result<Vec<PluginCrate>> {
    let mut found = Vec::new();
    for (folder, prefix) in groups {
        let dir = project_root().join(folder);
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if !path.join("Cargo.toml").is_file() {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} is not a UTF-8 name", path.display()))?
                .to_owned();
            let package = format!("{prefix}-{name}");
            let lib = package.replace('-', "_");
            found.push(PluginCrate {
                name,
                package,
                lib,
                dir: path,
            });
        }
    }
    found.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(found)
}

/// The plugin groups: shipped ones, or the test fixtures.
pub fn groups(test_plugins: bool) -> &'static [(&'static str, &'static str)] {
    if test_plugins {
        &[("test-plugins", "test-plugin")]
    } else {
        &[("connectors", "connector"), ("codecs", "codec")]
    }
}

/// The cargo invocation (arguments after `cargo`) that builds the host `temblor` (when `host`)
/// and the plugin `packages` as loadable libraries in `profile`; `None` when there is nothing
/// to build.
///
/// A plugin crate is `crate-type = ["cdylib", "rlib"]` (the rlib is what the monolith links),
/// and cargo applies no LTO at all to a crate that also builds an rlib: its own cdylib would
/// ship without the release profile's thin LTO (measured: 450 against 545 MB/s on
/// passthrough-json, docs/performance.md). So in release the library comes from the crate's
/// `<lib>_lto` example, a cdylib that only links the crate, which cargo does give LTO; one
/// `cargo build --examples` builds them all. In dev there is no LTO: the crate's own cdylib.
pub fn plugin_build_args(profile: Profile, host: bool, packages: &[&str]) -> Option<Vec<String>> {
    if !host && packages.is_empty() {
        return None;
    }
    let mut args = vec!["build".to_owned(), profile.flag().to_owned()];
    if host {
        args.extend(["-p".to_owned(), "temblor".to_owned()]);
    }
    for p in packages {
        args.extend(["-p".to_owned(), (*p).to_owned()]);
    }
    if profile == Profile::Release && !packages.is_empty() {
        if host {
            // A target filter builds only what it names: the host's binary too.
            args.push("--bins".to_owned());
        }
        args.push("--examples".to_owned());
    }
    Some(args)
}

/// Where cargo puts plugin library `lib` built by [`plugin_build_args`] under the target
/// directory `target`.
pub fn built_library(target: &Path, profile: Profile, lib: &str) -> PathBuf {
    match profile {
        Profile::Dev => target.join(profile.dir()).join(library_file(lib)),
        Profile::Release => target
            .join(profile.dir())
            .join("examples")
            .join(library_file(&format!("{lib}_lto"))),
    }
}

/// The file name cargo gives a cdylib on this platform.
pub fn library_file(lib: &str) -> String {
    format!(
        "{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds, copies and checks; returns the copied files.
pub fn run(args: &Args) -> Result<Vec<PathBuf>> {
    let all = discover(groups(args.test_plugins))?;
    let selected: Vec<&PluginCrate> = if args.only.is_empty() {
        all.iter().collect()
    } else {
        let mut selected = Vec::new();
        for name in &args.only {
            let matches: Vec<_> = all
                .iter()
                .filter(|p| &p.name == name || &p.package == name)
                .collect();
            if matches.is_empty() {
                let names: Vec<_> = all.iter().map(|p| p.name.as_str()).collect();
                bail!(
                    "no plugin crate named '{name}' (plugins: {})",
                    names.join(", ")
                );
            }
            selected.extend(matches);
        }
        selected
    };
    let packages: Vec<&str> = selected.iter().map(|p| p.package.as_str()).collect();
    if let Some(build) = plugin_build_args(args.profile, true, &packages) {
        run_cmd(cargo().args(&build))?;
    }

    let target = target_dir();
    let built = target.join(args.profile.dir());
    let default_out = if args.test_plugins {
        "test-plugins"
    } else {
        "plugins"
    };
    let out = args.out.clone().unwrap_or_else(|| target.join(default_out));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    remove_group_other_write(&out)?;
    let mut copied = Vec::new();
    for p in &selected {
        let to = out.join(library_file(&p.lib));
        install(&built_library(&target, args.profile, &p.lib), &to)?;
        copied.push(to);
    }
    eprintln!("copied {} plugin(s) to {}", copied.len(), out.display());

    if args.test_plugins {
        // Fixtures are broken on purpose; the tests check how each one loads.
        return Ok(copied);
    }
    let temblor = built.join(format!("temblor{}", std::env::consts::EXE_SUFFIX));
    for file in &copied {
        let output = Command::new(&temblor)
            .args(["plugins", "check"])
            .arg(file)
            .output()
            .with_context(|| format!("cannot run {}", temblor.display()))?;
        let said = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("{} does not load: {}", file.display(), said.trim());
        }
        eprintln!("{}", said.trim());
    }
    Ok(copied)
}

/// Copies to a temporary name and renames: a process that has the old file mapped keeps it
/// intact, and nobody sees a half-written library.
pub(crate) fn install(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
    // temblor refuses plugin files writable by group or others (a umask of 002 makes them so).
    remove_group_other_write(&tmp)?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), to.display()))
}

/// Clears the group and other write bits of `path` (temblor refuses plugin files and
/// directories that others can write).
fn remove_group_other_write(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o022))
                .with_context(|| format!("cannot change the mode of {}", path.display()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_shipped_plugins_by_convention() {
        let found = discover(groups(false)).unwrap();
        let file = found
            .iter()
            .find(|p| p.name == "file")
            .expect("connectors/file");
        assert_eq!(file.package, "connector-file");
        assert_eq!(file.lib, "connector_file");
        assert!(found.iter().any(|p| p.package == "codec-json"));
        assert!(!found.iter().any(|p| p.package.starts_with("test-plugin")));
    }

    #[cfg(unix)]
    #[test]
    fn installed_files_are_not_writable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let from = dir.join("from.so");
        std::fs::write(&from, b"x").unwrap();
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o666)).unwrap();
        let to = dir.join("to.so");
        install(&from, &to).unwrap();
        let mode = std::fs::metadata(&to).unwrap().permissions().mode();
        assert_eq!(mode & 0o022, 0, "mode {mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn release_plugins_are_built_as_lto_examples_in_one_invocation() {
        let release =
            plugin_build_args(Profile::Release, true, &["codec-json", "connector-file"]).unwrap();
        assert_eq!(
            release,
            [
                "build",
                "--release",
                "-p",
                "temblor",
                "-p",
                "codec-json",
                "-p",
                "connector-file",
                "--bins",
                "--examples"
            ]
        );
        let one = plugin_build_args(Profile::Release, false, &["codec-json"]).unwrap();
        assert_eq!(
            one,
            ["build", "--release", "-p", "codec-json", "--examples"]
        );
        let host = plugin_build_args(Profile::Release, true, &[]).unwrap();
        assert_eq!(host, ["build", "--release", "-p", "temblor"]);
        let dev = plugin_build_args(Profile::Dev, true, &["codec-json"]).unwrap();
        assert_eq!(
            dev,
            [
                "build",
                "--profile=dev",
                "-p",
                "temblor",
                "-p",
                "codec-json"
            ]
        );
        assert!(plugin_build_args(Profile::Dev, false, &[]).is_none());
        let target = Path::new("t");
        assert_eq!(
            built_library(target, Profile::Release, "codec_json"),
            target
                .join("release/examples")
                .join(library_file("codec_json_lto"))
        );
        assert_eq!(
            built_library(target, Profile::Dev, "codec_json"),
            target.join("debug").join(library_file("codec_json"))
        );
    }

    /// Every plugin crate declares the `<lib>_lto` cdylib example release builds ship, from the
    /// shared `shim/lto.rs` (only `wrong-layout`, which is no shim plugin, has its own).
    #[test]
    fn every_plugin_crate_declares_its_lto_example() {
        for group in [groups(false), groups(true)] {
            for p in discover(group).unwrap() {
                let manifest = std::fs::read_to_string(p.dir.join("Cargo.toml")).unwrap();
                let path = if p.name == "wrong-layout" {
                    "examples/lto.rs"
                } else {
                    "../../shim/lto.rs"
                };
                let block = format!(
                    "[[example]]\nname = \"{}_lto\"\npath = \"{path}\"\ncrate-type = [\"cdylib\"]\n",
                    p.lib
                );
                assert!(manifest.contains(&block), "{}: no {block}", p.package);
                assert!(p.dir.join(path).is_file(), "{}: no {path}", p.package);
            }
        }
        let shared = std::fs::read_to_string(project_root().join("shim/lto.rs")).unwrap();
        assert!(shared.contains("temblor_shim::link_plugin!();"), "{shared}");
    }

    #[test]
    fn library_file_names_follow_the_platform() {
        assert_eq!(
            library_file("codec_json"),
            format!(
                "{}codec_json{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )
        );
    }
}
