//! What the tasks do when a plugin instance fails: rebuild a panicked codec, restart a failed
//! source or sink with exponential backoff, and call an instance that may be missing (its last
//! rebuild failed).

use temblor_shim::{ErrorKind, PluginError, abi::CodecBox, abi_stable::std_types::RResult};
use tracing::{error, info, warn};

use super::{
    live::{Instance, Live},
    stats::{ConnectorCounters, ConnectorState, StateCell, add},
};
use crate::{deploy::RestartPolicy, wakeup::Stop};

/// After a failed decode or encode: a panicked codec may be broken, so build a fresh one.
/// False when that failed (the connector cannot go on).
pub(crate) fn recover_codec(codec: &mut Live<CodecBox>, e: &PluginError) -> bool {
    if e.kind != ErrorKind::Panic {
        return true;
    }
    match codec.rebuild() {
        Ok(()) => {
            warn!(connector = %codec.id, codec = %codec.plugin, "codec rebuilt after a panic");
            true
        }
        Err(e) => {
            error!(connector = %codec.id, codec = %codec.plugin, error = %e, "codec could not be rebuilt after a panic");
            false
        }
    }
}

/// Calls `f` on the instance, or fails when there is none (a rebuild failed).
pub(crate) fn call<T, R>(
    live: &mut Live<T>,
    f: impl FnOnce(&mut T) -> RResult<R, PluginError>,
) -> Result<R, PluginError> {
    match live.instance.as_mut() {
        Some(instance) => f(instance).into_result(),
        None => Err(PluginError::new(
            ErrorKind::Other,
            "no instance: the last rebuild failed",
        )),
    }
}

/// Restarts a failed source or sink: waits (exponential backoff, cut short by `stop`) and
/// builds a new instance, until one is built or `max_restarts` restarts in a row failed.
/// `failures` counts restarts since the last successful call. False when it gave up (`state`
/// is then `Failed`) or the engine stopped meanwhile; `state` is `Restarting` while it waits
/// and builds.
pub(crate) fn restart<T: Instance>(
    live: &mut Live<T>,
    policy: &RestartPolicy,
    failures: &mut u32,
    stop: Option<&Stop>,
    counters: &ConnectorCounters,
    state: &StateCell,
) -> bool {
    loop {
        *failures += 1;
        if *failures > policy.max_restarts {
            state.set(ConnectorState::Failed);
            error!(connector = %live.id, plugin = %live.plugin, restarts = *failures - 1, "giving up: the {} failed again after its last restart", T::WHAT);
            return false;
        }
        state.set(ConnectorState::Restarting);
        // Drop the failed instance first: it may hold what the new one needs (a port, a file).
        live.instance = None;
        let wait = policy.backoff(*failures);
        warn!(connector = %live.id, plugin = %live.plugin, restart = *failures, wait_ms = wait.as_millis() as u64, "restarting the {}", T::WHAT);
        let waited = match stop {
            Some(stop) => stop.sleep(wait),
            None => {
                std::thread::sleep(wait);
                true
            }
        };
        if !waited {
            return false;
        }
        add(&counters.restarts, 1);
        match live.rebuild() {
            Ok(()) => {
                state.set(ConnectorState::Running);
                info!(connector = %live.id, plugin = %live.plugin, restart = *failures, "{} restarted", T::WHAT);
                return true;
            }
            Err(e) => {
                add(&counters.errors, 1);
                error!(connector = %live.id, plugin = %live.plugin, error = %e, "the {} could not be rebuilt", T::WHAT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::Ordering, time::Duration};

    use temblor_shim::Value;

    use super::*;
    use crate::engine::{
        live::{Cells, Reloader},
        testing::{self, broken, decode, ver1, ver2},
    };

    /// A codec of `ver1`, and the reloader that can swap the plugin under it.
    fn codec() -> (Live<CodecBox>, Reloader) {
        let mut cells = Cells::default();
        let cell = testing::cell(&mut cells, ver1::plugin_module());
        let live = Live::new("c", "ver", &Value::Null, cell).expect("ver1 builds");
        (live, Reloader::new(cells, testing::stop()))
    }

    /// Waits of 1, 2, 4, ... ms.
    fn quick(max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            backoff_ms: 1,
            max_backoff_ms: 4,
            max_restarts,
        }
    }

    #[test]
    fn a_panicked_codec_is_rebuilt_other_errors_keep_it() {
        let (mut live, reloader) = codec();
        // Rebuilding takes the plugin's current version: a rebuild shows by its events.
        reloader
            .reload(testing::plugin(ver2::plugin_module(), "v2"), Duration::ZERO)
            .unwrap();
        let data = PluginError::data("bad bytes");
        assert!(recover_codec(&mut live, &data));
        assert_eq!(decode(&mut live, &["x"]).unwrap().0, [Value::from("v1:x")]);
        let panicked = decode(&mut live, &["panic"]).unwrap_err();
        assert_eq!(panicked.kind, ErrorKind::Panic);
        assert!(recover_codec(&mut live, &panicked));
        assert_eq!(decode(&mut live, &["x"]).unwrap().0, [Value::from("v2:x")]);
        // A codec that cannot be rebuilt ends the connector.
        reloader
            .reload(
                testing::plugin(broken::plugin_module(), "b"),
                Duration::ZERO,
            )
            .unwrap();
        assert!(!recover_codec(&mut live, &panicked));
    }

    #[test]
    fn a_restart_that_builds_counts_once_and_runs_again() {
        let (mut live, _reloader) = codec();
        let counters = ConnectorCounters::default();
        let state = StateCell::default();
        let mut failures = 0;
        let stop = testing::stop();
        assert!(restart(
            &mut live,
            &quick(3),
            &mut failures,
            Some(&stop),
            &counters,
            &state
        ));
        assert_eq!(failures, 1);
        assert_eq!(counters.restarts.load(Ordering::Relaxed), 1);
        assert_eq!(state.get(), ConnectorState::Running);
        assert!(live.instance.is_some());
    }

    #[test]
    fn restarts_that_keep_failing_give_up_after_max_restarts() {
        let (mut live, reloader) = codec();
        reloader
            .reload(
                testing::plugin(broken::plugin_module(), "b"),
                Duration::ZERO,
            )
            .unwrap();
        let counters = ConnectorCounters::default();
        let state = StateCell::default();
        let mut failures = 0;
        assert!(!restart(
            &mut live,
            &quick(3),
            &mut failures,
            None,
            &counters,
            &state
        ));
        assert_eq!(state.get(), ConnectorState::Failed);
        assert_eq!(counters.restarts.load(Ordering::Relaxed), 3);
        assert_eq!(counters.errors.load(Ordering::Relaxed), 3);
        // The failed instance was dropped before the first rebuild.
        assert!(live.instance.is_none());
    }

    #[test]
    fn a_stop_cuts_the_backoff_short() {
        let (mut live, _reloader) = codec();
        let stop = testing::stop();
        stop.request();
        let counters = ConnectorCounters::default();
        let state = StateCell::default();
        let mut failures = 0;
        let slow = RestartPolicy {
            backoff_ms: 60_000,
            max_backoff_ms: 60_000,
            max_restarts: 3,
        };
        assert!(!restart(
            &mut live,
            &slow,
            &mut failures,
            Some(&stop),
            &counters,
            &state
        ));
        assert_eq!(state.get(), ConnectorState::Restarting);
        assert_eq!(counters.restarts.load(Ordering::Relaxed), 0);
    }
}
