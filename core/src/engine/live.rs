//! Plugin instances that can be rebuilt: after a panic or a failure (restart with backoff), and
//! after a new version of their plugin was loaded (hot reload).
//!
//! Every plugin the deployment uses has one [`PluginCell`]: the module instances are built from
//! now, and a generation number. [`Reloader::reload`] puts a new module in the cell and bumps
//! the generation; each task checks the generation at its next batch boundary (one relaxed
//! atomic load per batch) and rebuilds its instance from the new module. The old library stays
//! mapped (libraries are never unloaded), so an instance built from it that is still running
//! stays valid until it is dropped.
//!
//! **Architecture Invariant:** nothing here opens a library, and no instance is swapped in the
//! middle of a batch.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use temblor_shim::{
    PluginError, Value,
    abi::{CodecBox, PluginModRef, SinkBox, SourceBox},
    abi_stable::std_types::{RResult, RStr},
};

use crate::{registry::Plugin, wakeup::Stop};

/// The current version of one plugin, shared by every task that builds instances from it.
pub(crate) struct PluginCell {
    generation: AtomicU64,
    current: Mutex<Plugin>,
    /// The generation each live instance was built from.
    instances: Mutex<Vec<Weak<AtomicU64>>>,
}

impl fmt::Debug for PluginCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginCell")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl PluginCell {
    fn new(plugin: Plugin) -> Arc<Self> {
        Arc::new(Self {
            generation: AtomicU64::new(0),
            current: Mutex::new(plugin),
            instances: Mutex::new(Vec::new()),
        })
    }

    fn current(&self) -> (u64, PluginModRef, String) {
        let p = self.current.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock: a reload swaps module and generation together.
        (
            self.generation.load(Ordering::Acquire),
            p.module,
            p.origin.clone(),
        )
    }
}

/// The cells of every plugin a deployment uses, by name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Cells(BTreeMap<String, Arc<PluginCell>>);

impl Cells {
    /// The plugins' names, sorted.
    #[cfg(test)]
    pub(crate) fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    pub(crate) fn get_or_add(&mut self, plugin: &Plugin) -> Arc<PluginCell> {
        Arc::clone(
            self.0
                .entry(plugin.name.clone())
                .or_insert_with(|| PluginCell::new(plugin.clone())),
        )
    }
}

/// Why a reload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The running deployment does not use a plugin of this name.
    #[error("the running deployment uses no plugin named '{0}'")]
    NotInUse(String),
    /// The new plugin is of another kind than the running one.
    #[error("plugin '{name}': the new library is a {new}, the running one a {running}")]
    WrongKind {
        /// The plugin.
        name: String,
        /// The running one's kind.
        running: &'static str,
        /// The new one's kind.
        new: &'static str,
    },
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Instances built from the plugin when the reload began.
    pub instances: usize,
    /// How many of them were rebuilt from the new version before the wait ended (the others
    /// are rebuilt at their next batch).
    pub swapped: usize,
    /// From the reload call until the last instance was swapped (or the wait ended).
    pub elapsed: Duration,
    /// Whether the replaced library was told to shut down (every instance had moved to the
    /// new one within the wait).
    pub shut_down: bool,
}

/// Swaps plugins of a running engine. Cheap to clone; usable from any thread.
#[derive(Debug, Clone)]
pub struct Reloader {
    cells: Arc<Cells>,
    /// Wakes the idle sources, which adopt a reload between batches.
    stop: Stop,
}

impl Reloader {
    pub(crate) fn new(cells: Cells, stop: Stop) -> Self {
        Self {
            cells: Arc::new(cells),
            stop,
        }
    }

    /// The names of the plugins the deployment uses.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.cells.0.keys().map(String::as_str)
    }

    /// Where the running version of `name` came from (a file path, or `built-in`).
    #[must_use]
    pub fn origin(&self, name: &str) -> Option<String> {
        self.cells.0.get(name).map(|c| c.current().2)
    }

    /// Every plugin the deployment uses, as it runs now, with its generation (0 at start-up,
    /// one more per hot reload), by name.
    #[must_use]
    pub fn plugins(&self) -> Vec<(Plugin, u64)> {
        self.cells
            .0
            .values()
            .map(|c| {
                let current = c.current.lock().unwrap_or_else(|e| e.into_inner());
                (current.clone(), c.generation.load(Ordering::Acquire))
            })
            .collect()
    }

    /// Makes `plugin` the version new instances of its name are built from, and waits up to
    /// `wait` for every running instance to be rebuilt from it (each is, at its next batch
    /// boundary).
    ///
    /// # Errors
    /// No plugin of that name is in use, or the new one is of another kind.
    pub fn reload(&self, plugin: Plugin, wait: Duration) -> Result<Reloaded, ReloadError> {
        let started = Instant::now();
        let cell = self
            .cells
            .0
            .get(&plugin.name)
            .ok_or_else(|| ReloadError::NotInUse(plugin.name.clone()))?;
        let generation = {
            let mut current = cell.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.kind != plugin.kind {
                return Err(ReloadError::WrongKind {
                    name: plugin.name.clone(),
                    running: current.kind.as_str(),
                    new: plugin.kind.as_str(),
                });
            }
            let previous = std::mem::replace(&mut *current, plugin);
            (cell.generation.fetch_add(1, Ordering::AcqRel) + 1, previous)
        };
        let (generation, previous) = generation;
        // A source waiting for data adopts the new version now, not when data comes.
        self.stop.wake_all();
        let live = || -> Vec<Arc<AtomicU64>> {
            let mut instances = cell.instances.lock().unwrap_or_else(|e| e.into_inner());
            instances.retain(|w| w.strong_count() > 0);
            instances.iter().filter_map(Weak::upgrade).collect()
        };
        let total = live().len();
        loop {
            let behind = live()
                .iter()
                .filter(|g| g.load(Ordering::Acquire) < generation)
                .count();
            if behind == 0 || started.elapsed() >= wait {
                // Nothing runs on the old library any more: it may stop what it runs on its
                // own. (A built-in module shares the executable with the others: left alone.)
                let shut_down = behind == 0 && previous.origin != "built-in";
                if shut_down && let Some(shutdown) = previous.module.shutdown() {
                    shutdown();
                }
                return Ok(Reloaded {
                    instances: total,
                    swapped: total.saturating_sub(behind),
                    elapsed: started.elapsed(),
                    shut_down,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// What kind of instance a [`Live`] holds, and how to build one.
pub(crate) trait Instance: Sized {
    const WHAT: &'static str;
    fn build(module: PluginModRef, id: RStr<'_>, config: &Value) -> RResult<Self, PluginError>;
}

impl Instance for CodecBox {
    const WHAT: &'static str = "codec";
    fn build(module: PluginModRef, id: RStr<'_>, config: &Value) -> RResult<Self, PluginError> {
        module.new_codec()(id, config)
    }
}

impl Instance for SourceBox {
    const WHAT: &'static str = "source";
    fn build(module: PluginModRef, id: RStr<'_>, config: &Value) -> RResult<Self, PluginError> {
        module.new_source()(id, config)
    }
}

impl Instance for SinkBox {
    const WHAT: &'static str = "sink";
    fn build(module: PluginModRef, id: RStr<'_>, config: &Value) -> RResult<Self, PluginError> {
        module.new_sink()(id, config)
    }
}

/// A plugin instance of one connector, with what it takes to build it again.
pub(crate) struct Live<T> {
    /// The connector id.
    pub id: String,
    /// The plugin's name.
    pub plugin: String,
    config: Value,
    cell: Arc<PluginCell>,
    /// The generation `instance` was built from (registered in the cell).
    built: Arc<AtomicU64>,
    /// A reloaded generation that failed to build while the old instance went on: not
    /// tried again at every batch.
    failed: u64,
    /// None after a failed rebuild, until a rebuild succeeds.
    pub instance: Option<T>,
}

impl<T: Instance> Live<T> {
    /// Builds the first instance.
    pub(crate) fn new(
        id: &str,
        plugin: &str,
        config: &Value,
        cell: Arc<PluginCell>,
    ) -> Result<Self, PluginError> {
        let built = Arc::new(AtomicU64::new(0));
        cell.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&built));
        let mut live = Self {
            id: id.to_owned(),
            plugin: plugin.to_owned(),
            config: config.clone(),
            cell,
            built,
            failed: 0,
            instance: None,
        };
        live.rebuild()?;
        Ok(live)
    }

    /// Whether a newer version of the plugin was loaded since this instance was built.
    pub(crate) fn stale(&self) -> bool {
        let current = self.cell.generation.load(Ordering::Relaxed);
        current != self.built.load(Ordering::Relaxed) && current != self.failed
    }

    /// Builds a fresh instance from the plugin's current version and drops the old one (after:
    /// `drop_first` drops it before, for instances holding a resource the new one needs, such
    /// as a listening port).
    pub(crate) fn rebuild_with(&mut self, drop_first: bool) -> Result<(), PluginError> {
        if drop_first {
            self.instance = None;
        }
        let (generation, module, _) = self.cell.current();
        match T::build(module, RStr::from_str(&self.id), &self.config) {
            RResult::ROk(instance) => {
                self.instance = Some(instance);
                self.built.store(generation, Ordering::Release);
                Ok(())
            }
            RResult::RErr(e) => Err(e),
        }
    }

    pub(crate) fn rebuild(&mut self) -> Result<(), PluginError> {
        self.rebuild_with(false)
    }

    /// After a reload: rebuilds from the new version, logging the outcome. On failure the old
    /// instance is kept when it still exists (`drop_first` false), and the new version is
    /// tried again at the next batch.
    pub(crate) fn adopt_reload(&mut self, drop_first: bool) {
        let (generation, _, origin) = self.cell.current();
        match self.rebuild_with(drop_first) {
            Ok(()) => tracing::info!(
                connector = %self.id,
                plugin = %self.plugin,
                generation,
                origin = %origin,
                "{} rebuilt from the reloaded plugin",
                T::WHAT
            ),
            Err(e) => {
                tracing::error!(
                    connector = %self.id,
                    plugin = %self.plugin,
                    error = %e,
                    "the reloaded plugin could not build the {}; {}",
                    T::WHAT,
                    if self.instance.is_some() { "the old instance goes on" } else { "retrying at the next batch" }
                );
                if self.instance.is_some() {
                    // Do not try again at every batch: this version failed.
                    self.failed = generation;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use temblor_shim::abi::{CodecBox, PluginKind};

    use super::*;
    use crate::engine::testing::{self, broken, chunks, decode, ver1, ver2};

    fn codec(cells: &mut Cells) -> Live<CodecBox> {
        let cell = testing::cell(cells, ver1::plugin_module());
        Live::new("c", "ver", &Value::Null, cell).expect("ver1 builds")
    }

    #[test]
    fn an_instance_is_rebuilt_from_a_reloaded_plugin_when_it_adopts_it() {
        let mut cells = Cells::default();
        let mut live = codec(&mut cells);
        assert!(!live.stale());
        let reloader = Reloader::new(cells, testing::stop());
        assert_eq!(reloader.names().collect::<Vec<_>>(), ["ver"]);
        assert_eq!(reloader.origin("ver").as_deref(), Some("test"));
        // Nobody adopts it within the wait (this thread is the task): counted, not swapped.
        let done = reloader
            .reload(
                testing::plugin(ver2::plugin_module(), "v2.so"),
                Duration::ZERO,
            )
            .expect("same name and kind");
        assert_eq!(
            (done.instances, done.swapped, done.shut_down),
            (1, 0, false)
        );
        assert_eq!(reloader.plugins()[0].1, 1, "generation");
        // Until its batch boundary, the instance goes on as it was built.
        assert!(live.stale());
        assert_eq!(decode(&mut live, &["a"]).unwrap().0, [Value::from("v1:a")]);
        live.adopt_reload(false);
        assert!(!live.stale());
        assert_eq!(decode(&mut live, &["a"]).unwrap().0, [Value::from("v2:a")]);
        assert_eq!(reloader.origin("ver").as_deref(), Some("v2.so"));
    }

    #[test]
    fn a_reloaded_plugin_that_fails_to_build_leaves_the_old_instance_running() {
        let mut cells = Cells::default();
        let mut live = codec(&mut cells);
        let reloader = Reloader::new(cells, testing::stop());
        reloader
            .reload(
                testing::plugin(broken::plugin_module(), "broken.so"),
                Duration::ZERO,
            )
            .unwrap();
        live.adopt_reload(false);
        assert_eq!(decode(&mut live, &["a"]).unwrap().0, [Value::from("v1:a")]);
        // This version failed: not tried again at every batch.
        assert!(!live.stale());
        // Dropping first (an instance that holds a port) leaves none.
        live.adopt_reload(true);
        assert!(live.instance.is_none());
        let err = decode(&mut live, &["a"]).unwrap_err();
        assert_eq!(err.message.as_str(), "no instance: the last rebuild failed");
    }

    #[test]
    fn a_reload_names_what_it_refuses() {
        let mut cells = Cells::default();
        let _live = codec(&mut cells);
        let reloader = Reloader::new(cells, testing::stop());
        let other = testing::plugin(chunks::plugin_module(), "chunks.so");
        assert_eq!(other.kind, PluginKind::Connector);
        let err = reloader.reload(other, Duration::ZERO).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the running deployment uses no plugin named 'chunks'"
        );
        let mut connector = testing::plugin(chunks::plugin_module(), "chunks.so");
        connector.name = "ver".to_owned();
        let err = reloader.reload(connector, Duration::ZERO).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin 'ver': the new library is a connector, the running one a codec"
        );
    }

    #[test]
    fn a_reload_every_instance_adopted_shuts_the_old_library_down() {
        let mut cells = Cells::default();
        let live = codec(&mut cells);
        let reloader = Reloader::new(cells, testing::stop());
        let task = std::thread::spawn(move || {
            let mut live = live;
            while !live.stale() {
                std::thread::yield_now();
            }
            live.adopt_reload(false);
            live
        });
        let done = reloader
            .reload(
                testing::plugin(ver2::plugin_module(), "v2.so"),
                Duration::from_secs(60),
            )
            .unwrap();
        let mut live = task.join().unwrap();
        assert_eq!((done.instances, done.swapped), (1, 1));
        // The replaced plugin came from a file (`test`), not the executable.
        assert!(done.shut_down);
        assert_eq!(decode(&mut live, &["b"]).unwrap().0, [Value::from("v2:b")]);
    }
}
