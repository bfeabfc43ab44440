//! The plugins the engine can build components from, by name.
//!
//! **Architecture Invariant:** nothing here opens a library. The `temblor` binary loads plugin
//! files (or links them statically) and hands their root modules to [`Registry::add`]; the rest
//! of the engine cannot tell the two apart.

use std::{collections::BTreeMap, fmt};

use temblor_shim::abi::{PluginKind, PluginModRef};

/// One registered plugin.
#[derive(Clone)]
pub struct Plugin {
    /// Its name (from its manifest).
    pub name: String,
    /// Connector or codec.
    pub kind: PluginKind,
    /// The plugin's own version.
    pub version: String,
    /// The rustc it was built with.
    pub rustc: String,
    /// Where it came from: a file path, or `built-in` in the monolith.
    pub origin: String,
    /// Its root module: the constructors.
    pub module: PluginModRef,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("rustc", &self.rustc)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Reads the manifest of `module`; `origin` says where it came from.
    #[must_use]
    pub fn new(module: PluginModRef, origin: impl Into<String>) -> Self {
        let manifest = module.manifest()();
        Self {
            name: manifest.name.to_string(),
            kind: manifest.kind,
            version: manifest.version.to_string(),
            rustc: manifest.rustc.to_string(),
            origin: origin.into(),
            module,
        }
    }
}

/// A second plugin with a name already taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duplicate plugin name '{name}': already loaded from {kept}")]
pub struct DuplicateName {
    /// The name.
    pub name: String,
    /// Where the plugin that keeps it came from.
    pub kept: String,
}

/// Plugins by name.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    plugins: BTreeMap<String, Plugin>,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plugin; the first one with a name keeps it.
    ///
    /// # Errors
    /// When the name is taken.
    pub fn add(&mut self, plugin: Plugin) -> Result<(), DuplicateName> {
        if let Some(kept) = self.plugins.get(&plugin.name) {
            return Err(DuplicateName {
                name: plugin.name,
                kept: kept.origin.clone(),
            });
        }
        self.plugins.insert(plugin.name.clone(), plugin);
        Ok(())
    }

    /// The plugin with this name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.get(name)
    }

    /// Every plugin, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.values()
    }

    /// The number of plugins.
    #[must_use]
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// ` (loaded: a, b)` for messages about an unknown name, or a hint that none are loaded.
    #[must_use]
    pub fn names_hint(&self, kind: PluginKind) -> String {
        let names: Vec<&str> = self
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.name.as_str())
            .collect();
        if names.is_empty() {
            format!(
                " (no {} plugins are loaded: check --plugin-dir and `temblor plugins list`)",
                kind.as_str()
            )
        } else {
            format!(" (loaded {}s: {})", kind.as_str(), names.join(", "))
        }
    }
}
