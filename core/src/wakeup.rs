//! How a source's thread sleeps while nothing happens, and everyone who has news for it wakes
//! it: its plugin (data is ready, through a [`Notify`](temblor_shim::Notify)), a sink (a
//! batch was delivered, or a paused sink can write again), a reload, and the engine's stop.
//!
//! **Architecture Invariant:** no engine thread sleeps in steps to look for work. A source
//! that took a `Notify` is pulled again only when woken; the others wait inside their own
//! `pull` as interface 1 and 2 have it.

use std::{
    sync::{
        Arc, Condvar, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// One thread's wake-up: a flag that a waker raises and the waiting thread lowers.
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    pending: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Wakeup {
    /// Wakes the thread (or makes its next wait return at once). Takes the lock only when the
    /// flag was down, so a busy source's plugin pays one atomic swap per notify.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.cv.notify_one();
        }
    }

    /// Waits until woken (at once if woken since the last wait), at most `limit` when one is
    /// given. Lowers the flag. `true` when woken.
    pub(crate) fn wait(&self, limit: Option<Duration>) -> bool {
        let deadline = limit.map(|d| Instant::now() + d);
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // The waker raises the flag before it takes the lock, and the flag is checked under
        // the lock: a wake between the check and the wait cannot be lost.
        while !self.pending.load(Ordering::Acquire) {
            held = match deadline {
                None => self.cv.wait(held).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.cv
                        .wait_timeout(held, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        drop(held);
        self.pending.store(false, Ordering::Release);
        true
    }
}

impl temblor_shim::Wake for Wakeup {
    fn wake(&self) {
        Wakeup::wake(self);
    }
}

/// The engine's stop request: a flag (which signal handlers may also set) and the wake-ups of
/// every thread that must notice it without polling.
#[derive(Debug, Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    wakeups: Arc<Mutex<Vec<Weak<Wakeup>>>>,
}

impl Stop {
    pub(crate) fn new(flag: Arc<AtomicBool>) -> Self {
        Self {
            flag,
            wakeups: Arc::default(),
        }
    }

    /// Asks the engine to stop: sources stop pulling, everything in flight drains, sinks
    /// flush. `false` when it had been asked already.
    pub fn request(&self) -> bool {
        let first = !self.flag.swap(true, Ordering::AcqRel);
        self.wake_all();
        first
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Sleeps for `d` (a restart's backoff) unless a stop is asked for meanwhile: `false`
    /// then, at once.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let wakeup = Arc::new(Wakeup::default());
        self.register(&wakeup);
        loop {
            // Registered before the check: a request after it wakes the wait below.
            if self.requested() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            wakeup.wait(Some(left));
        }
    }

    /// Registers a thread's wake-up, to be woken by [`Stop::request`] and [`Stop::wake_all`].
    pub(crate) fn register(&self, w: &Arc<Wakeup>) {
        let mut all = self.wakeups.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(w));
    }

    /// Wakes every registered thread (a stop, or a reload they must adopt).
    pub(crate) fn wake_all(&self) {
        let all = self.wakeups.lock().unwrap_or_else(|e| e.into_inner());
        for w in all.iter().filter_map(Weak::upgrade) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_before_the_wait_is_not_lost() {
        let w = Wakeup::default();
        w.wake();
        w.wake();
        assert!(w.wait(Some(Duration::ZERO)), "the earlier wake counts");
        assert!(!w.wait(Some(Duration::from_millis(5))), "and only once");
    }

    #[test]
    fn a_stop_ends_a_backoff_sleep_at_once() {
        let stop = Stop::new(Arc::new(AtomicBool::new(false)));
        assert!(stop.sleep(Duration::from_millis(5)), "slept it out");
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                stop.request();
            })
        };
        let started = Instant::now();
        assert!(
            !stop.sleep(Duration::from_secs(60)),
            "cut short by the stop"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        stopper.join().unwrap();
        assert!(!stop.sleep(Duration::from_secs(60)), "and at once after it");
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait() {
        let w = Arc::new(Wakeup::default());
        let waker = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                w.wake();
            })
        };
        assert!(w.wait(None));
        waker.join().unwrap();
    }

    #[test]
    fn stop_sets_the_flag_once_and_wakes_every_registered_thread() {
        let stop = Stop::new(Arc::new(AtomicBool::new(false)));
        let (a, b) = (Arc::new(Wakeup::default()), Arc::new(Wakeup::default()));
        stop.register(&a);
        stop.register(&b);
        drop(b);
        assert!(stop.request());
        assert!(!stop.request(), "asked already");
        assert!(stop.requested());
        assert!(a.wait(Some(Duration::ZERO)));
        assert_eq!(
            stop.wakeups.lock().unwrap().len(),
            2,
            "the dropped one is pruned later"
        );
    }
}
