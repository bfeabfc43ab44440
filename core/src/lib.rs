//! The temblor runtime: everything between the plugins.
//!
//! - [`deploy`]: the deployment file, parsed and validated into a [`deploy::Plan`];
//! - [`registry`]: the plugins by name, however they were loaded;
//! - [`pipeline`]: operators and their expression language (events to events);
//! - [`engine`]: the threads, channels and counters that run a plan.
//!
//! **Architecture Invariant:** this crate opens no library and knows nothing of `dlopen`: it
//! only sees plugins' root modules, handed to it by the `temblor` binary.

pub(crate) mod delivery;
pub mod deploy;
pub mod engine;
pub mod pipeline;
pub mod registry;
pub mod sys;
pub(crate) mod wakeup;

/// Pre- and postprocessors, in their own crate (no runtime) so fuzz targets and benchmarks
/// use them without the engine.
use temblor_processors as processors;

pub use deploy::{DeployError, Deployment, Plan};
pub use engine::{Engine, StartError, Stats};
pub use registry::{Plugin, Registry};
pub use wakeup::Stop;
