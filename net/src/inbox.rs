//! A bounded queue from a plugin's network tasks to its `pull`, which wakes the engine.
//!
//! [`channel`] makes both ends. Tasks [`Outbox::send`] (waiting while the queue is full, so a
//! slow engine slows the peers down through TCP); `pull` takes what is there with
//! [`Inbox::try_recv`] and returns at once. The source hands the engine's
//! [`Notify`](temblor_shim::Notify) to [`Inbox::set_notify`] in its `set_notify`, and every send
//! then wakes the engine. Without one (a host that never offers it), [`Inbox::recv`] waits up
//! to a limit instead. A `pull` takes its batch with a [`Drain`]: the first item as `recv`
//! does, the rest while there are some, up to a number of items.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use temblor_shim::{Notify, Pull};
use tokio::{
    runtime::Handle,
    sync::mpsc::{self, error::TryRecvError},
};

/// The engine's wake-up, once the source has it.
#[derive(Debug, Default)]
struct Waker(OnceLock<Notify>);

impl Waker {
    fn wake(&self) {
        if let Some(n) = self.0.get() {
            n.notify();
        }
    }
}

/// The sending end, for network tasks. Cheap to clone.
#[derive(Debug)]
pub struct Outbox<T> {
    tx: mpsc::Sender<T>,
    waker: Arc<Waker>,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }
}

/// The source is gone (its inbox was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl<T> Outbox<T> {
    /// Queues `item`, waiting while the queue is full, and wakes the engine.
    ///
    /// # Errors
    /// The inbox is gone.
    pub async fn send(&self, item: T) -> Result<(), Closed> {
        self.tx.send(item).await.map_err(|_| Closed)?;
        self.waker.wake();
        Ok(())
    }

    /// Queues `item` if there is room now, and wakes the engine; gives it back otherwise.
    ///
    /// # Errors
    /// The queue is full or the inbox is gone: the item comes back.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.waker.wake();
                Ok(())
            }
            Err(e) => Err(e.into_inner()),
        }
    }

    /// Queues `item` if there is room now, without waking the engine: for a task that hands
    /// over many items of one read and then calls [`Outbox::wake`] once (a wake per item
    /// makes the engine pull them a few at a time).
    ///
    /// # Errors
    /// The queue is full or the inbox is gone: the item comes back.
    pub fn try_send_quiet(&self, item: T) -> Result<(), T> {
        self.tx.try_send(item).map_err(|e| e.into_inner())
    }

    /// Wakes the engine without sending (say, after changing state it will look at).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Whether the inbox is gone.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The receiving end, for `pull`.
#[derive(Debug)]
pub struct Inbox<T> {
    rx: mpsc::Receiver<T>,
    waker: Arc<Waker>,
    handle: Handle,
}

/// A queue of at most `capacity` items, whose fallback wait runs on `handle`.
#[must_use]
pub fn channel<T>(capacity: usize, handle: Handle) -> (Outbox<T>, Inbox<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let waker = Arc::new(Waker::default());
    (
        Outbox {
            tx,
            waker: Arc::clone(&waker),
        },
        Inbox { rx, waker, handle },
    )
}

/// What [`Inbox::try_recv`] and [`Inbox::recv`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<T> {
    /// An item.
    Item(T),
    /// Nothing now.
    Empty,
    /// Every outbox is gone: nothing will ever come.
    Closed,
}

impl<T> Inbox<T> {
    /// Keeps the engine's wake-up: from now on every send wakes it. `true` (for the source's
    /// `set_notify`). A second handle is dropped: the first one stays.
    pub fn set_notify(&self, notify: Notify) -> bool {
        let _ = self.waker.0.set(notify);
        true
    }

    /// Whether the engine's wake-up was handed over: `pull` must then never wait.
    #[must_use]
    pub fn notifies(&self) -> bool {
        self.waker.0.get().is_some()
    }

    /// The next item, without waiting.
    pub fn try_recv(&mut self) -> Received<T> {
        match self.rx.try_recv() {
            Ok(item) => Received::Item(item),
            Err(TryRecvError::Empty) => Received::Empty,
            Err(TryRecvError::Disconnected) => Received::Closed,
        }
    }

    /// The next item: without waiting when the engine is woken by sends, else waiting up to
    /// `limit` for one. Call it from the engine's thread (never from a runtime thread).
    pub fn recv(&mut self, limit: Duration) -> Received<T> {
        match self.try_recv() {
            Received::Empty if !self.notifies() => {
                let rx = &mut self.rx;
                match self
                    .handle
                    .block_on(async { tokio::time::timeout(limit, rx.recv()).await })
                {
                    Ok(Some(item)) => Received::Item(item),
                    Ok(None) => Received::Closed,
                    Err(_) => Received::Empty,
                }
            }
            found => found,
        }
    }
}

/// One `pull`'s taking from an [`Inbox`]: the first item as [`Inbox::recv`] takes it (waiting
/// up to `wait` only for a host that gave no wake-up), then items while there are some, at
/// most `max_items`. It borrows the inbox only per call, so the loop body may use the source:
/// ```ignore
/// let mut drain = Drain::new(PULL_ITEMS, WAIT);
/// while let Some(item) = drain.next(&mut self.inbox).map_err(|Closed| self.lost())? {
///     self.hand_over(item, out);
///     if out.byte_len() >= PULL_BYTES {
///         break;
///     }
/// }
/// Ok(drain.pull())
/// ```
#[derive(Debug, Clone)]
pub struct Drain {
    taken: usize,
    max_items: usize,
    wait: Duration,
}

impl Drain {
    /// Takes at most `max_items` (at least one), waiting up to `wait` for the first.
    #[must_use]
    pub fn new(max_items: usize, wait: Duration) -> Self {
        Self {
            taken: 0,
            max_items: max_items.max(1),
            wait,
        }
    }

    /// The next item; `None` when there is none now or `max_items` were taken.
    ///
    /// # Errors
    /// [`Closed`] when every outbox is gone and nothing was taken (after items, the closed
    /// inbox shows at the next `pull`).
    pub fn next<T>(&mut self, inbox: &mut Inbox<T>) -> Result<Option<T>, Closed> {
        if self.taken >= self.max_items {
            return Ok(None);
        }
        let found = if self.taken == 0 {
            inbox.recv(self.wait)
        } else {
            inbox.try_recv()
        };
        match found {
            Received::Item(item) => {
                self.taken += 1;
                Ok(Some(item))
            }
            Received::Closed if self.taken == 0 => Err(Closed),
            Received::Empty | Received::Closed => Ok(None),
        }
    }

    /// How many items were taken.
    #[must_use]
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// What `pull` returns: idle when nothing was taken.
    #[must_use]
    pub fn pull(&self) -> Pull {
        if self.taken == 0 {
            Pull::Idle
        } else {
            Pull::Ready
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use temblor_shim::Wake;

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn sends_wake_the_engine_once_it_gave_its_handle() {
        let handle = crate::runtime::handle().unwrap();
        let (tx, mut rx) = channel::<u32>(4, handle.clone());
        assert_eq!(
            rx.recv(Duration::from_millis(10)),
            Received::Empty,
            "waited, found none"
        );
        let count = Arc::new(Count(AtomicUsize::new(0)));
        assert!(rx.set_notify(Notify::new(Arc::clone(&count))));
        handle.block_on(tx.send(7)).unwrap();
        assert_eq!(tx.try_send(8), Ok(()));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(rx.recv(Duration::from_secs(60)), Received::Item(7));
        assert_eq!(rx.try_recv(), Received::Item(8));
        assert_eq!(
            rx.recv(Duration::from_secs(60)),
            Received::Empty,
            "no wait once notified"
        );
        drop(tx);
        assert_eq!(rx.try_recv(), Received::Closed);
    }

    #[test]
    fn a_full_queue_gives_the_item_back() {
        let (tx, _rx) = channel::<u32>(1, crate::runtime::handle().unwrap());
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Err(2));
    }

    #[test]
    fn a_drain_takes_up_to_its_limit_and_says_closed_only_when_empty() {
        let handle = crate::runtime::handle().unwrap();
        let (tx, mut rx) = channel::<u32>(8, handle);
        let mut drain = Drain::new(3, Duration::from_millis(1));
        assert_eq!(drain.next(&mut rx), Ok(None), "nothing yet");
        assert_eq!(drain.pull(), Pull::Idle);
        for i in 0..5 {
            assert_eq!(tx.try_send(i), Ok(()));
        }
        let mut drain = Drain::new(3, Duration::from_millis(1));
        let mut got = Vec::new();
        while let Some(i) = drain.next(&mut rx).unwrap() {
            got.push(i);
        }
        assert_eq!(
            (got, drain.taken(), drain.pull()),
            (vec![0, 1, 2], 3, Pull::Ready)
        );
        drop(tx);
        let mut drain = Drain::new(10, Duration::from_millis(1));
        assert_eq!(drain.next(&mut rx), Ok(Some(3)));
        assert_eq!(drain.next(&mut rx), Ok(Some(4)));
        assert_eq!(
            drain.next(&mut rx),
            Ok(None),
            "closed after items: next pull"
        );
        let mut drain = Drain::new(10, Duration::from_millis(1));
        assert_eq!(drain.next(&mut rx), Err(Closed));
    }
}
