//! [`Notify`]: how a source wakes the engine when it has something to hand over (interface 3).
//!
//! The engine builds one per source instance and hands it over with
//! [`SourceFfi::set_notify`](crate::abi::SourceFfi::set_notify). A source that takes it returns
//! from `pull` at once when it has nothing, and calls [`Notify::notify`] from any thread (a
//! tokio task, an I/O thread) when data is ready; the engine sleeps in between, without polling.
//!
//! The handle is three host functions and a pointer the host owns: calling it from a plugin
//! runs host code, so no runtime, lock or waker type crosses the boundary.

use std::{ffi::c_void, sync::Arc};

use abi_stable::StableAbi;

/// What the host side of a [`Notify`] does: wake the thread waiting for its source.
pub trait Wake: Send + Sync + 'static {
    /// The source has something (or the engine has something for it): stop waiting.
    fn wake(&self);
}

/// A handle that wakes the engine's thread for one source. Cheap to clone, `Send` and `Sync`.
#[repr(C)]
#[derive(StableAbi)]
pub struct Notify {
    /// The host's `Arc<W>`, as a raw pointer.
    data: *const c_void,
    wake: extern "C" fn(*const c_void),
    clone: extern "C" fn(*const c_void) -> *const c_void,
    release: extern "C" fn(*const c_void),
}

// SAFETY: `data` is an `Arc<W>` with `W: Send + Sync`, only ever used through the three
// functions built for that `W` in `Notify::new`.
unsafe impl Send for Notify {}
// SAFETY: as above.
unsafe impl Sync for Notify {}

extern "C" fn wake_fn<W: Wake>(data: *const c_void) {
    // SAFETY: `data` came from `Arc::into_raw` of an `Arc<W>` this handle still owns.
    let w = unsafe { &*data.cast::<W>() };
    // A panic must not cross this `extern "C"` function.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
}

extern "C" fn clone_fn<W: Wake>(data: *const c_void) -> *const c_void {
    // SAFETY: as in `wake_fn`; the count is raised for the new handle.
    unsafe { Arc::increment_strong_count(data.cast::<W>()) };
    data
}

extern "C" fn release_fn<W: Wake>(data: *const c_void) {
    // SAFETY: as in `wake_fn`; this handle's count is given back once, by its `Drop`.
    unsafe { Arc::decrement_strong_count(data.cast::<W>()) };
}

impl Notify {
    /// A handle that calls `w.wake()` (host side).
    pub fn new<W: Wake>(w: Arc<W>) -> Self {
        Self {
            data: Arc::into_raw(w).cast(),
            wake: wake_fn::<W>,
            clone: clone_fn::<W>,
            release: release_fn::<W>,
        }
    }

    /// Wakes the engine: this source has something to hand over. Cheap when the engine is
    /// already awake; never blocks for long.
    pub fn notify(&self) {
        (self.wake)(self.data);
    }
}

impl Clone for Notify {
    fn clone(&self) -> Self {
        Self {
            data: (self.clone)(self.data),
            wake: self.wake,
            clone: self.clone,
            release: self.release,
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        (self.release)(self.data);
    }
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notify")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn notify_calls_the_host_and_keeps_its_arc_alive_until_the_last_clone() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let a = Notify::new(Arc::clone(&counter));
        let b = a.clone();
        assert_eq!(Arc::strong_count(&counter), 3, "one count per handle");
        a.notify();
        drop(a);
        std::thread::spawn(move || b.notify()).join().unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert_eq!(
            Arc::strong_count(&counter),
            1,
            "every handle gave its count back"
        );
    }
}
