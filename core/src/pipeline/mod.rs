//! Pipelines: the operators of a `[[pipeline]]`, applied in order to every batch of events.
//!
//! ```toml
//! [[pipeline]]
//! id = "main"
//! operators = [
//!   { filter = 'event.level != "debug"' },
//!   { set = { "event.host" = 'lower(event.host)', "meta.seen" = true } },
//!   { route = { "alerts" = 'event.level == "error"' }, default = "out" },
//!   { batch = { count = 100, timeout_ms = 500 } },
//! ]
//! ```
//! [`PipelineDef::compile`] reads and checks the operators once, at start-up (expressions are
//! parsed with winnow, in `parse.rs`, and evaluated by `expr.rs`; operators are in `ops.rs`);
//! the engine's pipeline thread runs a `Pipeline` built from it. Every operator works on a whole batch ([`Events`]): no channel send, lock or allocation
//! per event beyond what the operation itself needs. The language and the operators are
//! documented for users in `docs/pipeline.md`.
//!
//! **Ports:** a pipeline's ports are `out` (index 0), `err` (1, error events) and the port
//! names its `route` operators use, in order of appearance. Events routed to `out` continue
//! through the operators after the route; events routed elsewhere leave the pipeline there.
//!
//! **Meta:** each event has a metadata value: what its source set (`meta.connector`,
//! `meta.stream`, and the source's own fields such as `meta.peer`), or `null`. A batch holds one
//! value shared by all its events until an operator writes meta, then one per event; it goes on
//! to the sinks beside the encoded frames (never into them).
//!
//! **Delivery tokens** ([`crate::delivery`]) travel with the events: a `route` gives every part
//! the batch's tokens, error events carry the tokens of their batch, and `batch`, `count` and
//! `aggregate` keep the tokens of what they hold until they emit it.
//!
//! **Stateful operators** (`aggregate.rs`, `bucket.rs`): `aggregate` adds the `late` port
//! (event time), `bucket` the `overflow` port; both bound their state (`max_groups`).

mod aggregate;
mod bucket;
mod error;
mod expr;
mod funcs;
mod ops;
mod parse;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_stateful;

use std::{sync::mpsc::Sender, time::Instant};

use temblor_shim::{RVec, Value};

use crate::delivery::Tokens;

pub use error::{At, ConfigError, EmitError, EventError, SetError};
pub use expr::EvalError;
pub use parse::SyntaxError;

/// The index of the `out` port.
pub const OUT: usize = 0;
/// The index of the `err` port.
pub const ERR: usize = 1;

/// A pipeline's operators, read and checked: what the engine runs.
#[derive(Debug, Clone)]
pub struct PipelineDef {
    id: String,
    ops: Vec<ops::Op>,
    ports: Vec<String>,
}

/// Why an operator could not be read: `pipeline 'ID' operators[I] (NAME): ...`, and in an
/// expression the column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "pipeline '{pipeline}' operators[{operator}]{}: {error}",
    name.map(|n| format!(" ({n})")).unwrap_or_default()
)]
pub struct OperatorError {
    /// The pipeline's id.
    pub pipeline: String,
    /// Index into the pipeline's `operators`.
    pub operator: usize,
    /// The operator's name, when the table names one.
    pub name: Option<&'static str>,
    /// What is wrong.
    pub error: ConfigError,
}

impl PipelineDef {
    /// Reads the operators of pipeline `id`.
    ///
    /// # Errors
    /// Every operator that is malformed or holds an invalid expression.
    pub fn compile<'v>(
        id: &str,
        operators: impl IntoIterator<Item = &'v Value>,
    ) -> Result<Self, Vec<OperatorError>> {
        let (def, errors) = Self::compile_partial(id, operators);
        if errors.is_empty() {
            Ok(def)
        } else {
            Err(errors)
        }
    }

    /// Reads what it can: the pipeline with its good operators (and every port they name, so
    /// that links can still be checked), and the errors of the others.
    pub fn compile_partial<'v>(
        id: &str,
        operators: impl IntoIterator<Item = &'v Value>,
    ) -> (Self, Vec<OperatorError>) {
        let mut ports = vec!["out".to_owned(), "err".to_owned()];
        let mut ops = Vec::new();
        let mut errors = Vec::new();
        for (i, spec) in operators.into_iter().enumerate() {
            match ops::compile(spec, &mut ports) {
                Ok(op) => ops.push(op),
                Err((name, error)) => errors.push(OperatorError {
                    pipeline: id.to_owned(),
                    operator: i,
                    name,
                    error,
                }),
            }
        }
        let def = Self {
            id: id.to_owned(),
            ops,
            ports,
        };
        (def, errors)
    }

    /// The pipeline's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ports: `out`, `err`, then the route ports in order of appearance.
    #[must_use]
    pub fn ports(&self) -> &[String] {
        &self.ports
    }

    /// The index of the port with this name.
    #[must_use]
    pub fn port(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p == name)
    }

    /// The number of operators.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the pipeline passes events through unchanged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A batch of events, with their metadata and delivery tokens, that goes back to the thread
/// that decoded it when it is dropped.
///
/// The values were allocated by the source's thread; freeing them in the sink's thread would
/// make every `free` cross allocator arenas and contend on their locks. Returned batches are
/// dropped (and their vector reused) by the source thread instead: one channel send per batch.
#[derive(Debug)]
pub(crate) struct Events {
    pub(crate) values: RVec<Value>,
    /// Empty (every event's meta is `base`), or one value per event.
    pub(crate) meta: RVec<Value>,
    /// The meta of every event while `meta` is empty.
    pub(crate) base: Value,
    /// The deliveries these events belong to (none when their source takes no acks).
    pub(crate) tokens: Tokens,
    /// When the source made this batch (for the latency the sink observes); none for what an
    /// operator held and emitted later.
    pub(crate) born: Option<Instant>,
    home: Option<Sender<RVec<Value>>>,
}

impl Events {
    /// Events that are freed where they end.
    pub(crate) fn local(values: RVec<Value>) -> Self {
        Self {
            values,
            meta: RVec::new(),
            base: Value::Null,
            tokens: Tokens::default(),
            born: None,
            home: None,
        }
    }

    /// Events that go back to `home` to be freed.
    pub(crate) fn homed(values: RVec<Value>, home: Sender<RVec<Value>>) -> Self {
        let mut events = Self::local(values);
        events.home = Some(home);
        events
    }

    /// An empty batch with the same home, shared meta and tokens.
    pub(crate) fn sibling(&self) -> Self {
        Self {
            values: RVec::new(),
            meta: RVec::new(),
            base: self.base.clone(),
            tokens: self.tokens.clone(),
            born: self.born,
            home: self.home.clone(),
        }
    }

    /// The meta of event `i`.
    pub(crate) fn meta_of(&self, i: usize) -> &Value {
        self.meta.get(i).unwrap_or(&self.base)
    }

    /// Drops the events from index `at` on. Their values go home to be freed there, in one
    /// vector: freeing them here, in another thread than the one that allocated them, costs
    /// far more than the move.
    pub(crate) fn discard_from(&mut self, at: usize) {
        if at >= self.values.len() {
            return;
        }
        if self.home.is_some() {
            let mut dead = RVec::with_capacity(self.values.len() - at);
            dead.extend(self.values.drain(at..));
            let mut dead = Self::local(dead);
            dead.home.clone_from(&self.home);
            drop(dead);
        } else {
            self.values.truncate(at);
        }
        self.meta.truncate(at);
    }

    /// Gives every event a meta value of its own (a copy of `base`), so that operators can
    /// write it.
    pub(crate) fn ensure_meta(&mut self) {
        if self.meta.len() < self.values.len() {
            let base = self.base.clone();
            self.meta.resize(self.values.len(), base);
        }
    }
}

impl Clone for Events {
    /// A copy (for fan-out to several targets) is freed where it ends; it carries the same
    /// tokens, so the batch counts as delivered only when every copy is.
    fn clone(&self) -> Self {
        Self {
            values: self.values.clone(),
            meta: self.meta.clone(),
            base: self.base.clone(),
            tokens: self.tokens.clone(),
            born: self.born,
            home: None,
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Some(home) = self.home.take()
            && self.values.capacity() > 0
        {
            // If home is gone (its source finished), the values are simply freed here. The
            // channel is unbounded on purpose: when it was bounded and full, values were freed
            // here, on another thread than the one that allocated them, which made that thread
            // slower still (contended frees), so the channel stayed full: filter-json ran at a
            // third of its speed in about half the runs. It holds at most the batches in flight
            // (the pipeline and sink channels are bounded), and the source drains it at every
            // batch.
            let _ = home.send(std::mem::take(&mut self.values));
        }
    }
}

/// What a pipeline emits: batches per port, and error events.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// `(port index, events)`, in the order they were produced.
    pub(crate) ports: Vec<(usize, Events)>,
    /// Error events of operators, for `err`.
    pub(crate) errors: RVec<Value>,
    /// The tokens of the batches the error events came from.
    pub(crate) error_tokens: Tokens,
}

impl Output {
    /// Everything produced so far, error events last.
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, (usize, Events)> {
        if !self.errors.is_empty() {
            let mut errors = Events::local(std::mem::take(&mut self.errors));
            errors.tokens = std::mem::take(&mut self.error_tokens);
            self.ports.push((ERR, errors));
        }
        self.ports.drain(..)
    }
}

/// What an operator emits on its own (a `batch` timeout, a `count` window): the events and the
/// tokens of the events they were made from.
pub(crate) type Held = (RVec<Value>, Tokens);

/// A running pipeline: the operators with their state.
#[derive(Debug)]
pub(crate) struct Pipeline {
    id: String,
    ops: Vec<ops::Op>,
}

impl Pipeline {
    /// Starts a pipeline (the clocks of windowed operators start now).
    pub(crate) fn new(def: &PipelineDef, now: Instant) -> Self {
        let mut ops = def.ops.clone();
        for op in &mut ops {
            op.start(now);
        }
        Self {
            id: def.id.clone(),
            ops,
        }
    }

    /// Runs a batch through every operator.
    pub(crate) fn process(&mut self, events: Events, now: Instant, out: &mut Output) {
        self.run_from(0, events, now, out);
    }

    fn run_from(&mut self, first: usize, mut events: Events, now: Instant, out: &mut Output) {
        for i in first..self.ops.len() {
            if events.values.is_empty() {
                return;
            }
            let errors = out.errors.len();
            self.ops[i].apply(&self.id, i, &mut events, now, out);
            self.failed(i, out);
            if out.errors.len() > errors {
                out.error_tokens.merge(&events.tokens);
            }
        }
        if !events.values.is_empty() {
            out.ports.push((OUT, events));
        }
    }

    /// The earliest time an operator wants to be woken up at.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.ops.iter().filter_map(ops::Op::deadline).min()
    }

    /// Lets operators whose deadline has passed emit (a batch timeout, a window's end).
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Output) {
        for i in 0..self.ops.len() {
            if let Some(held) = self.ops[i].tick(now) {
                self.run_from(i + 1, held_events(held), now, out);
            }
            self.failed(i, out);
        }
    }

    /// Error events for what operator `i` could not emit.
    fn failed(&mut self, i: usize, out: &mut Output) {
        let name = self.ops[i].name();
        for (reason, record) in self.ops[i].take_failed() {
            out.errors.push(ops::error_event(
                &self.id,
                i,
                name,
                &reason,
                record,
                Value::Null,
            ));
        }
    }

    /// Over the stateful operators: groups held, and groups evicted so far because a bound
    /// was reached.
    /// An estimate of the bytes the stateful operators hold (it walks every group: not for
    /// every batch).
    pub(crate) fn state_bytes(&self) -> usize {
        self.ops.iter().map(ops::Op::state_bytes).sum()
    }

    pub(crate) fn state(&self) -> (usize, u64) {
        self.ops
            .iter()
            .map(ops::Op::state)
            .fold((0, 0), |(g, e), (g2, e2)| (g + g2, e + e2))
    }

    /// At the end of the input: every operator emits what it holds, in order, so that what the
    /// first one flushes still goes through the others.
    pub(crate) fn finish(&mut self, now: Instant, out: &mut Output) {
        for i in 0..self.ops.len() {
            if let Some(held) = self.ops[i].flush() {
                self.run_from(i + 1, held_events(held), now, out);
            }
            self.failed(i, out);
        }
    }
}

fn held_events((values, tokens): Held) -> Events {
    let mut events = Events::local(values);
    events.tokens = tokens;
    events
}
