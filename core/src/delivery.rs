//! Delivery tokens: how the engine learns that everything a source handed over in one batch was
//! delivered, and tells the source (`ack`) or says what failed (`fail`).
//!
//! A source that wants acknowledgements gets one [`Delivery`] per batch it hands over. Every
//! batch of events that carries some of its events holds an `Arc` of it: fan-out clones the
//! `Arc`, `route` and the error port clone it into each part, `batch` and `count` keep it while
//! they hold events, a sink keeps it until it has flushed what it wrote. When the last `Arc` is
//! dropped the outcome goes back to the source's thread: an ack, or, when someone marked it
//! failed on the way (a sink gave up), a fail with the first reason.
//!
//! **Architecture Invariant:** no token is created or cloned per event: one per source batch,
//! one clone per copy of a batch. A source without acknowledgements has no tokens at all.

use std::sync::{
    Arc, Mutex,
    mpsc::{Receiver, Sender, channel},
};
use std::time::Duration;

use crate::wakeup::Wakeup;

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything was delivered.
    Ack(u64),
    /// Something could not be delivered: why.
    Fail(u64, String),
}

/// One source batch in flight.
#[derive(Debug)]
pub(crate) struct Delivery {
    token: u64,
    failed: Mutex<Option<String>>,
    home: Sender<Outcome>,
    /// The source's thread, woken when the outcome is sent.
    wakeup: Option<Arc<Wakeup>>,
}

impl Delivery {
    /// Marks the batch failed (the first reason is kept).
    pub(crate) fn fail(&self, reason: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_none() {
            *failed = Some(reason.to_owned());
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let failed = self.failed.get_mut().map_or(None, Option::take);
        let outcome = match failed {
            None => Outcome::Ack(self.token),
            Some(reason) => Outcome::Fail(self.token, reason),
        };
        // The source is gone when this fails: nobody is left to tell.
        let _ = self.home.send(outcome);
        if let Some(w) = &self.wakeup {
            w.wake();
        }
    }
}

/// The tokens a batch of events carries: none when its source takes no acknowledgements,
/// usually one.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tokens(Vec<Arc<Delivery>>);

impl Tokens {
    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds the tokens of `other` not held yet (the same token twice would only delay
    /// nothing, but the list would grow with every batch an operator holds).
    pub(crate) fn merge(&mut self, other: &Tokens) {
        for t in &other.0 {
            if !self.0.iter().any(|mine| Arc::ptr_eq(mine, t)) {
                self.0.push(Arc::clone(t));
            }
        }
    }

    /// Moves every token of `other` here.
    pub(crate) fn absorb(&mut self, other: Tokens) {
        if self.0.is_empty() {
            self.0 = other.0;
        } else {
            self.merge(&other);
        }
    }

    /// Marks every token failed.
    pub(crate) fn fail(&self, reason: &str) {
        for t in &self.0 {
            t.fail(reason);
        }
    }
}

/// The source side: hands out tokens and collects their outcomes.
#[derive(Debug)]
pub(crate) struct Acks {
    next: u64,
    /// Tokens handed out and not resolved yet.
    outstanding: u64,
    /// Tokens below this belong to an instance that was dropped (restart, reload): their
    /// outcomes are not passed on.
    first_current: u64,
    tx: Sender<Outcome>,
    rx: Receiver<Outcome>,
    wakeup: Option<Arc<Wakeup>>,
}

impl Default for Acks {
    fn default() -> Self {
        let (tx, rx) = channel();
        Self {
            next: 1,
            outstanding: 0,
            first_current: 1,
            tx,
            rx,
            wakeup: None,
        }
    }
}

impl Acks {
    /// Acks whose outcomes wake `wakeup` (the source's thread) as they arrive.
    pub(crate) fn waking(wakeup: Arc<Wakeup>) -> Self {
        Self {
            wakeup: Some(wakeup),
            ..Self::default()
        }
    }

    /// The token the next batch will carry if it is handed over.
    pub(crate) fn peek(&self) -> u64 {
        self.next
    }

    /// The batch with token [`Acks::peek`] was handed over: its delivery.
    pub(crate) fn issue(&mut self) -> Tokens {
        let d = Delivery {
            token: self.next,
            failed: Mutex::new(None),
            home: self.tx.clone(),
            wakeup: self.wakeup.clone(),
        };
        self.next += 1;
        self.outstanding += 1;
        Tokens(vec![Arc::new(d)])
    }

    /// The instance the outcomes were for is gone: later outcomes of its tokens are dropped.
    pub(crate) fn new_instance(&mut self) {
        self.first_current = self.next;
    }

    /// Tokens handed out and not resolved.
    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// The outcomes that arrived, for the current instance, waiting up to `wait` for the first
    /// when none is there.
    pub(crate) fn collect(&mut self, wait: Duration, out: &mut Vec<Outcome>) {
        let first = if wait.is_zero() {
            self.rx.try_recv().ok()
        } else {
            self.rx.recv_timeout(wait).ok()
        };
        let Some(first) = first else { return };
        for o in std::iter::once(first).chain(std::iter::from_fn(|| self.rx.try_recv().ok())) {
            self.outstanding = self.outstanding.saturating_sub(1);
            let token = match &o {
                Outcome::Ack(t) | Outcome::Fail(t, _) => *t,
            };
            if token >= self.first_current {
                out.push(o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_copy_acks() {
        let mut acks = Acks::default();
        assert_eq!(acks.peek(), 1);
        let t = acks.issue();
        let copy = t.clone();
        let mut held = Tokens::default();
        held.merge(&t);
        held.merge(&copy);
        assert_eq!(held.len(), 1, "the same token is held once");
        drop(t);
        drop(copy);
        let mut out = Vec::new();
        acks.collect(Duration::ZERO, &mut out);
        assert!(out.is_empty(), "one copy is still held");
        assert_eq!(acks.outstanding(), 1);
        drop(held);
        acks.collect(Duration::ZERO, &mut out);
        assert_eq!(out, [Outcome::Ack(1)]);
        assert_eq!(acks.outstanding(), 0);
    }

    #[test]
    fn a_failed_copy_fails_the_batch_with_the_first_reason() {
        let mut acks = Acks::default();
        let t = acks.issue();
        let copy = t.clone();
        copy.fail("sink 'a' gave up");
        t.fail("sink 'b' gave up");
        drop((t, copy));
        let mut out = Vec::new();
        acks.collect(Duration::from_millis(100), &mut out);
        assert_eq!(out, [Outcome::Fail(1, "sink 'a' gave up".to_owned())]);
    }

    #[test]
    fn outcomes_of_a_dropped_instance_are_not_passed_on() {
        let mut acks = Acks::default();
        let old = acks.issue();
        acks.new_instance();
        let new = acks.issue();
        drop((old, new));
        let mut out = Vec::new();
        acks.collect(Duration::ZERO, &mut out);
        assert_eq!(out, [Outcome::Ack(2)]);
        assert_eq!(acks.outstanding(), 0);
    }
}
