//! Finds and loads plugin libraries, and reports every file it cannot use.
//!
//! Each library is opened with abi_stable's per-file path
//! (`lib_header_from_path(..).init_root_module()`), never `RootModule::load_from*`, which caches
//! one module per root-module type and would hand back the first plugin for every file.
//! Libraries are never unloaded (abi_stable leaks them on purpose).

use std::{
    fmt,
    path::{Path, PathBuf},
};

use temblor_core::{Plugin, Registry};
use temblor_shim::{
    abi::{HostLog, LogLevel, PluginModRef, RUSTC_VERSION, SHIM_INTERFACE_VERSION},
    abi_stable::{
        library::{LibraryError, lib_header_from_path},
        std_types::RStr,
    },
};
use tracing::{debug, level_filters::LevelFilter};

/// The environment variable with more plugin directories, colon-separated.
pub const PLUGIN_PATH_VAR: &str = "TEMBLOR_PLUGIN_PATH";

/// The directory searched last, relative to the working directory.
pub const DEFAULT_PLUGIN_DIR: &str = "target/plugins";

/// A file that was not loaded, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The file (or directory).
    pub path: PathBuf,
    /// Why, in one line.
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// What loading the plugin directories found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Files not loaded.
    pub refused: Vec<Refused>,
    /// Loaded files with something to look at (another rustc).
    pub warnings: Vec<Refused>,
}

/// The directories to search, in order: `--plugin-dir`s, then `TEMBLOR_PLUGIN_PATH`, then
/// `./target/plugins` (when `default_dir`). Each with whether it was asked for explicitly.
#[must_use]
pub fn plugin_dirs(cli: &[PathBuf], env: Option<&str>, default_dir: bool) -> Vec<(PathBuf, bool)> {
    let mut dirs: Vec<(PathBuf, bool)> = cli.iter().map(|d| (d.clone(), true)).collect();
    if let Some(env) = env {
        dirs.extend(
            env.split(':')
                .filter(|s| !s.is_empty())
                .map(|s| (PathBuf::from(s), true)),
        );
    }
    if default_dir {
        dirs.push((PathBuf::from(DEFAULT_PLUGIN_DIR), false));
    }
    dirs
}

/// Whether the file name has the platform's shared-library extension.
fn is_library(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == std::env::consts::DLL_EXTENSION)
}

/// Loads every library in `dirs` into `registry`. The first plugin with a name keeps it.
pub fn load_dirs(dirs: &[(PathBuf, bool)], registry: &mut Registry) -> LoadReport {
    let mut report = LoadReport::default();
    for (dir, explicit) in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if *explicit => {
                report.refused.push(Refused {
                    path: dir.clone(),
                    reason: format!("cannot read plugin directory: {e}"),
                });
                continue;
            }
            Err(e) => {
                debug!(dir = %dir.display(), error = %e, "default plugin directory not read");
                continue;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_library(p))
            .collect();
        files.sort();
        for path in files {
            match load_file(&path) {
                Err(reason) => report.refused.push(Refused { path, reason }),
                Ok(loaded) => {
                    let module = loaded.module;
                    match registry.add(Plugin::new(module, path.display().to_string())) {
                        Err(dup) => report.refused.push(Refused {
                            path,
                            reason: dup.to_string(),
                        }),
                        Ok(()) => {
                            init_logging(module);
                            if let Some(warning) = loaded.warning {
                                report.warnings.push(Refused {
                                    path,
                                    reason: warning,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    report
}

/// A library that loaded, with a warning if it deserves one.
pub struct Loaded {
    /// Its root module.
    pub module: PluginModRef,
    /// Why it may misbehave (built by another rustc).
    pub warning: Option<String>,
}

/// Loads one library and checks it is a temblor plugin this binary can use.
///
/// # Errors
/// One line saying why not: not a shared library, no temblor root module, an incompatible
/// abi_stable or layout, another shim interface version.
pub fn load_file(path: &Path) -> Result<Loaded, String> {
    let header = lib_header_from_path(path).map_err(|e| describe(&e))?;
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| describe(&e))?;
    let manifest = module.manifest()();
    if manifest.shim_interface != SHIM_INTERFACE_VERSION {
        return Err(format!(
            "plugin '{}' was built against shim interface version {}, this temblor speaks version {}: rebuild it",
            manifest.name, manifest.shim_interface, SHIM_INTERFACE_VERSION
        ));
    }
    let warning = (manifest.rustc.as_str() != RUSTC_VERSION).then(|| {
        format!(
            "plugin '{}' was built by rustc {}, this temblor by rustc {}",
            manifest.name, manifest.rustc, RUSTC_VERSION
        )
    });
    Ok(Loaded { module, warning })
}

/// Says in one line why a library is not a usable plugin.
fn describe(e: &LibraryError) -> String {
    match e {
        LibraryError::OpenError { err, .. } => {
            format!(
                "not a loadable shared library: {}",
                one_line(&err.to_string())
            )
        }
        LibraryError::GetSymbolError { .. } => {
            "a shared library, but not a temblor plugin: it exports no abi_stable root module"
                .to_owned()
        }
        LibraryError::InvalidAbiHeader(header) => format!(
            "built with an incompatible abi_stable ({header:?}); rebuild it against this temblor's shim"
        ),
        LibraryError::AbiInstability(_) | LibraryError::IncompatibleVersionNumber { .. } => {
            format!(
                "its plugin interface does not match this temblor's (built against another temblor-shim): {}",
                one_line(&e.to_string())
            )
        }
        _ => one_line(&e.to_string()),
    }
}

/// abi_stable's messages span several lines; a report line is one.
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for part in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// Gives a dynamically loaded plugin the host's log callback.
fn init_logging(module: PluginModRef) {
    let max = match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    module.init_logging()(HostLog { func: host_log }, max);
}

/// Where plugins' log lines arrive: re-emitted through the host's subscriber, tagged with the
/// plugin's name.
extern "C" fn host_log(level: LogLevel, plugin: RStr<'_>, target: RStr<'_>, message: RStr<'_>) {
    let (plugin, target, message) = (plugin.as_str(), target.as_str(), message.as_str());
    match level {
        LogLevel::Trace => tracing::trace!(plugin, target, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, target, "{message}"),
        LogLevel::Info => tracing::info!(plugin, target, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, target, "{message}"),
        LogLevel::Error => tracing::error!(plugin, target, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_come_in_order_cli_env_default() {
        let dirs = plugin_dirs(&[PathBuf::from("a")], Some("b::c"), true);
        let names: Vec<_> = dirs
            .iter()
            .map(|(d, e)| (d.to_str().unwrap(), *e))
            .collect();
        assert_eq!(
            names,
            [
                ("a", true),
                ("b", true),
                ("c", true),
                (DEFAULT_PLUGIN_DIR, false)
            ]
        );
        assert_eq!(plugin_dirs(&[], None, false), []);
    }

    #[test]
    fn only_shared_libraries_are_candidates() {
        assert!(is_library(Path::new("x/libcodec_json.so")));
        assert!(!is_library(Path::new("x/README.md")));
        assert!(!is_library(Path::new("x/so")));
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a\n  b\n\nc"), "a b c");
    }
}
