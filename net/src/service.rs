//! [`Service`]: the tasks of one source or sink instance, stopped and joined when it is
//! dropped, and the [`StopSignal`] they watch.

use std::time::Duration;

use tokio::{runtime::Handle, sync::watch, task::JoinHandle};

/// What a task of a [`Service`] watches to know when to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Resolves once the service is stopping (at once if it is).
    pub async fn stopped(&mut self) {
        // An error means the service is gone: stopped as well.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether the service is stopping.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// The tasks of one source or sink instance on the plugin's runtime. Dropping it (the engine
/// dropped the instance: a stop, a restart, a reload) signals every task to stop and joins
/// them, waiting up to the grace period given to [`Service::new`] before aborting the rest:
/// when it returns, every socket the tasks held is closed.
#[derive(Debug)]
pub struct Service {
    handle: Handle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl Service {
    /// A service on `handle` whose tasks get `grace` to finish once stopped.
    #[must_use]
    pub fn new(handle: Handle, grace: Duration) -> Self {
        Self {
            handle,
            stop: watch::channel(false).0,
            tasks: Vec::new(),
            grace,
        }
    }

    /// The runtime the service runs on.
    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// A signal its tasks watch.
    #[must_use]
    pub fn signal(&self) -> StopSignal {
        StopSignal(self.stop.subscribe())
    }

    /// Runs `task` until it ends or the service stops.
    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(self.handle.spawn(task));
    }

    /// Runs `f` to completion on the runtime, from a thread outside it (the engine's).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    /// Signals every task to stop and waits for them (up to the grace period, then aborts
    /// them). Idempotent.
    pub fn stop(&mut self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut self.tasks);
        if tasks.is_empty() {
            return;
        }
        let grace = self.grace;
        let join = async move {
            let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
            let all = async {
                for t in tasks {
                    let _ = t.await;
                }
            };
            if tokio::time::timeout(grace, all).await.is_err() {
                for a in &aborts {
                    a.abort();
                }
            }
        };
        if Handle::try_current().is_ok() {
            // On a runtime thread (not the engine's): blocking here could stall the runtime.
            // The tasks were told to stop and are left to end on their own.
            drop(self.handle.spawn(join));
        } else {
            self.handle.block_on(join);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[test]
    fn dropping_a_service_stops_and_joins_its_tasks() {
        let handle = crate::runtime::handle().unwrap();
        let ended = Arc::new(AtomicUsize::new(0));
        let mut service = Service::new(handle, Duration::from_secs(5));
        for _ in 0..3 {
            let mut signal = service.signal();
            let ended = Arc::clone(&ended);
            service.spawn(async move {
                signal.stopped().await;
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert!(!service.signal().is_stopped());
        drop(service);
        assert_eq!(
            ended.load(Ordering::SeqCst),
            3,
            "joined before drop returned"
        );
    }

    #[test]
    fn a_task_that_ignores_the_signal_is_aborted_after_the_grace() {
        let handle = crate::runtime::handle().unwrap();
        let mut service = Service::new(handle, Duration::from_millis(50));
        service.spawn(std::future::pending());
        let started = std::time::Instant::now();
        service.stop();
        assert!(started.elapsed() < Duration::from_secs(5));
        service.stop();
    }
}
