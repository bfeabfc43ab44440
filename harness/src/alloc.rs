//! Counting the allocations of the current thread.
//!
//! A test crate (or a `#[cfg(test)]` module) installs the allocator itself, since only the
//! final binary may declare one:
//!
//! ```text
//! #[global_allocator]
//! static ALLOCATOR: temblor_harness::alloc::Counting = temblor_harness::alloc::Counting;
//!
//! let (value, n) = temblor_harness::alloc::allocations_of(|| decode(frame));
//! ```

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

/// `System`, counting each allocation of the calling thread.
#[derive(Debug)]
pub struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; counting has no other effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What `f` returns, and how many allocations it made on this thread (counted only where
/// [`Counting`] is the global allocator).
pub fn allocations_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (result, ALLOCATIONS.with(Cell::get) - before)
}
