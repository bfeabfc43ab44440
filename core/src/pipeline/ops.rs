//! The operators: how each is read from the deployment, and how it runs over a batch.
//!
//! Every operator works on a whole batch in place: `filter` compacts the vector (no new
//! vector, no copy of a kept event), `set`/`remove`/`rename` change events where they are,
//! `route` moves the events for other ports into one vector per port. `batch` and `count` hold
//! state between batches and have a deadline the pipeline thread wakes up for; so do
//! `aggregate` (`aggregate.rs`) and `bucket` (`bucket.rs`).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use temblor_shim::{Object, RVec, Value};

use crate::delivery::Tokens;

use super::{
    Events, Held, OUT, Output,
    aggregate::Aggregate,
    bucket::Bucket,
    error::{At, ConfigError, EventError, known_keys},
    expr::{Expr, NULL, Path, Root},
    parse::{parse_expr, parse_path},
};

/// The operator names, as written in a deployment.
pub(crate) const NAMES: [&str; 9] = [
    "filter",
    "set",
    "remove",
    "rename",
    "route",
    "batch",
    "count",
    "aggregate",
    "bucket",
];

/// One operator: its configuration and, for `batch` and `count`, its state.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Filter(Expr),
    Set(Vec<(Path, Expr)>),
    Remove(Vec<Path>),
    Rename(Vec<(Path, Path)>),
    Route {
        /// Tried in order.
        branches: Vec<Branch>,
        /// Index into the pipeline's ports.
        default: usize,
    },
    Batch {
        size: usize,
        timeout: Option<Duration>,
        held: RVec<Value>,
        /// The tokens of the held events (and maybe of some already emitted).
        held_tokens: Tokens,
        since: Option<Instant>,
    },
    Count(Counter),
    Aggregate(Box<Aggregate>),
    Bucket(Box<Bucket>),
}

impl Op {
    /// The operator's name (`filter`, ...).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Filter(_) => "filter",
            Self::Set(_) => "set",
            Self::Remove(_) => "remove",
            Self::Rename(_) => "rename",
            Self::Route { .. } => "route",
            Self::Batch { .. } => "batch",
            Self::Count(_) => "count",
            Self::Aggregate(_) => "aggregate",
            Self::Bucket(_) => "bucket",
        }
    }
}

/// Reads one operator. `ports` holds the pipeline's ports so far (`out`, `err`, then route
/// ports in order of appearance); new route ports are added to it.
///
/// Errors come with the operator's name when it is known.
pub(crate) fn compile(
    spec: &Value,
    ports: &mut Vec<String>,
) -> Result<Op, (Option<&'static str>, ConfigError)> {
    let Value::Object(table) = spec else {
        return Err((
            None,
            ConfigError::NotATable {
                found: spec.type_name(),
            },
        ));
    };
    let mut found = table
        .iter()
        .filter_map(|(k, v)| NAMES.iter().find(|n| **n == k).map(|n| (*n, v)));
    let Some((name, arg)) = found.next() else {
        let keys: Vec<&str> = table.iter().map(|(k, _)| k).collect();
        let keys = if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.join(", ")
        };
        return Err((None, ConfigError::NoOperator { keys }));
    };
    if let Some((other, _)) = found.next() {
        return Err((Some(name), ConfigError::TwoOperators { name, other }));
    }
    let allowed: &[&str] = if name == "route" {
        &["route", "default"]
    } else {
        &[name]
    };
    if let Some((extra, _)) = table.iter().find(|(k, _)| !allowed.contains(k)) {
        let key = extra.to_owned();
        return Err((Some(name), ConfigError::UnknownKey { key }));
    }
    let op = match name {
        "filter" => filter(arg),
        "set" => set(arg),
        "remove" => remove(arg),
        "rename" => rename(arg),
        "route" => route(arg, table.get("default"), ports),
        "batch" => batch(arg),
        "aggregate" => self::table(arg, "`{ window = { tumbling_s = S }, emit = { ... } }`")
            .and_then(|t| {
                Aggregate::compile(t, &mut || port_index("late", ports))
                    .map(|a| Op::Aggregate(Box::new(a)))
            }),
        "bucket" => {
            self::table(arg, "`{ class = 'meta.class', rate = 'meta.rate' }`").and_then(|t| {
                let overflow = port_index("overflow", ports)?;
                Bucket::compile(t, overflow).map(|b| Op::Bucket(Box::new(b)))
            })
        }
        _ => count(arg),
    };
    op.map_err(|error| (Some(name), error))
}

fn expression(text: &str) -> Result<Expr, ConfigError> {
    parse_expr(text).map_err(|source| ConfigError::Expression {
        text: text.to_owned(),
        source,
    })
}

fn path(text: &str) -> Result<Path, ConfigError> {
    parse_path(text).map_err(|source| ConfigError::Path {
        text: text.to_owned(),
        source,
    })
}

/// A path that names something inside the event or meta (not the root itself).
fn inner_path(text: &str, what: &'static str) -> Result<Path, ConfigError> {
    let p = path(text)?;
    if p.segments.is_empty() {
        return Err(ConfigError::WholeRoot {
            text: text.to_owned(),
            what,
            root: p.text,
        });
    }
    Ok(p)
}

fn table<'v>(arg: &'v Value, expected: &'static str) -> Result<&'v Object, ConfigError> {
    match arg {
        Value::Object(o) if !o.is_empty() => Ok(o),
        Value::Object(_) => Err(ConfigError::EmptyTable { expected }),
        other => Err(ConfigError::Expected {
            expected,
            found: other.type_name(),
        }),
    }
}

fn string<'v>(v: &'v Value, what: &'static str) -> Result<&'v str, ConfigError> {
    v.as_str().ok_or_else(|| ConfigError::NotAString {
        what,
        found: v.type_name(),
    })
}

/// A condition: an expression that must give a bool.
fn condition(text: &str) -> Result<Expr, ConfigError> {
    let e = expression(text)?;
    match &e {
        Expr::Lit(v) if !matches!(v, Value::Bool(_)) => Err(ConfigError::NotABool {
            text: text.to_owned(),
            value: v.clone(),
        }),
        _ => Ok(e),
    }
}

fn filter(arg: &Value) -> Result<Op, ConfigError> {
    condition(string(arg, "a filter expression")?).map(Op::Filter)
}

fn set(arg: &Value) -> Result<Op, ConfigError> {
    let t = table(
        arg,
        "a table of `\"PATH\" = 'EXPRESSION'` (or a literal value)",
    )?;
    t.iter()
        .map(|(target, v)| {
            let target = path(target)?;
            let value = match v {
                Value::String(text) => expression(text)?,
                literal => Expr::Lit(literal.clone()),
            };
            Ok((target, value))
        })
        .collect::<Result<_, ConfigError>>()
        .map(Op::Set)
}

fn remove(arg: &Value) -> Result<Op, ConfigError> {
    let list = match arg {
        Value::String(_) => std::slice::from_ref(arg),
        Value::Array(a) if !a.is_empty() => a.as_slice(),
        _ => return Err(ConfigError::NoPaths),
    };
    list.iter()
        .map(|p| inner_path(string(p, "a path to remove")?, "remove"))
        .collect::<Result<_, _>>()
        .map(Op::Remove)
}

fn rename(arg: &Value) -> Result<Op, ConfigError> {
    let t = table(arg, "a table of `\"FROM\" = \"TO\"` paths")?;
    t.iter()
        .map(|(from, to)| {
            let from = inner_path(from, "rename")?;
            let to = inner_path(string(to, "the new path")?, "rename to")?;
            if from.root == to.root
                && (from.segments.starts_with(&to.segments)
                    || to.segments.starts_with(&from.segments))
            {
                return Err(ConfigError::RenameInside {
                    from: from.text,
                    to: to.text,
                });
            }
            Ok((from, to))
        })
        .collect::<Result<_, _>>()
        .map(Op::Rename)
}

fn port_index(name: &str, ports: &mut Vec<String>) -> Result<usize, ConfigError> {
    if name.is_empty() || name.contains('/') {
        return Err(ConfigError::PortName {
            name: name.to_owned(),
        });
    }
    if name == "err" {
        return Err(ConfigError::ErrPort);
    }
    Ok(ports.iter().position(|p| p == name).unwrap_or_else(|| {
        ports.push(name.to_owned());
        ports.len() - 1
    }))
}

fn route(arg: &Value, default: Option<&Value>, ports: &mut Vec<String>) -> Result<Op, ConfigError> {
    let t = table(arg, "a table of `\"PORT\" = 'CONDITION'`")?;
    let branches = t
        .iter()
        .map(|(port, cond)| {
            let text = string(cond, "a route condition")?;
            let cond = condition(text).map_err(|e| ConfigError::Route {
                port: port.to_owned(),
                source: Box::new(e),
            })?;
            Ok(Branch {
                port: port_index(port, ports)?,
                name: port.to_owned(),
                cond,
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    let default = match default {
        None => OUT,
        Some(d) => port_index(string(d, "`default`")?, ports)?,
    };
    Ok(Op::Route { branches, default })
}

fn batch(arg: &Value) -> Result<Op, ConfigError> {
    let t = table(arg, "`{ count = N, timeout_ms = T }`")?;
    known_keys(t, "batch", &["count", "timeout_ms"])?;
    let size = t.get("count").and_then(Value::as_u64).filter(|n| *n >= 1);
    let size = size.ok_or(ConfigError::Must {
        key: "count",
        rule: "be an integer of at least 1",
    })?;
    let size = usize::try_from(size).map_err(|_| ConfigError::TooLarge { key: "count" })?;
    let timeout = match t.get("timeout_ms") {
        None => None,
        Some(v) => Some(Duration::from_millis(v.as_u64().ok_or(
            ConfigError::Must {
                key: "timeout_ms",
                rule: "be a non-negative integer",
            },
        )?)),
    };
    Ok(Op::Batch {
        size,
        timeout,
        held: RVec::new(),
        held_tokens: Tokens::default(),
        since: None,
    })
}

fn count(arg: &Value) -> Result<Op, ConfigError> {
    let t = table(arg, "`{ by = \"PATH\", window_s = S }`")?;
    known_keys(t, "count", &["by", "window_s"])?;
    let by = match t.get("by") {
        None => None,
        Some(p) => Some(path(string(p, "`by`")?)?),
    };
    let window_s = t.get("window_s").cloned().unwrap_or_default();
    let window = match &window_s {
        Value::I64(_) | Value::U64(_) | Value::F64(_) => {
            #[allow(clippy::cast_precision_loss)]
            let s = match &window_s {
                Value::F64(f) => *f,
                other => other.as_u64().unwrap_or(0) as f64,
            };
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or(ConfigError::Must {
                    key: "window_s",
                    rule: "be a number of seconds above 0",
                })?
        }
        _ => {
            return Err(ConfigError::Required {
                key: "window_s",
                hint: "seconds, above 0",
            });
        }
    };
    Ok(Op::Count(Counter {
        by,
        window,
        window_s,
        start: None,
        anchor: None,
        keys: Vec::new(),
        index: HashMap::new(),
        tokens: Tokens::default(),
    }))
}

/// An event that failed in operator `operator` of `pipeline`, for the `err` port.
pub(crate) fn error_event(
    pipeline: &str,
    operator: usize,
    name: &str,
    reason: &EventError,
    event: Value,
    meta: Value,
) -> Value {
    let mut o = Object::with_capacity(5);
    o.push("error".into(), format!("{name}: {reason}").into());
    o.push("pipeline".into(), pipeline.into());
    o.push("operator".into(), operator.into());
    o.push("event".into(), event);
    if !matches!(meta, Value::Null) {
        o.push("meta".into(), meta);
    }
    Value::Object(o)
}

/// What becomes of an event in [`sort_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// It goes on through the operators after this one.
    Keep,
    /// It is dropped (a filter said no).
    Drop,
    /// It leaves by this port ([`OUT`]: it goes on, as [`Fate::Keep`]).
    Port(usize),
}

/// Where the events that leave an operator go: to other ports, or failed (to `err`, with why).
pub(super) struct Exits<'a> {
    /// The events for each port, in the order the ports were first used.
    pub(super) ports: &'a mut Vec<(usize, Events)>,
    /// Takes a failed event, with its meta.
    pub(super) fail: &'a mut dyn FnMut(EventError, Value, Value),
}

/// Runs `f` over every event with its meta, and moves each where `f` says: kept, in order,
/// compacting the vector in place; to the events of a port, added to the exits' ports (one
/// entry per port, after those already there); dropped; or, when `f` fails, to `err`.
pub(super) fn sort_events(
    events: &mut Events,
    exits: &mut Exits<'_>,
    mut f: impl FnMut(&mut Value, &mut Value) -> Result<Fate, EventError>,
) {
    let ports = &mut *exits.ports;
    let first_new = ports.len();
    let with_meta = !events.meta.is_empty();
    // Operators that write meta gave every event its own first: the shared one is only read.
    let mut shared = std::mem::take(&mut events.base);
    let (mut kept, mut dropped) = (0, false);
    for i in 0..events.values.len() {
        let m = if with_meta {
            &mut events.meta[i]
        } else {
            &mut shared
        };
        match f(&mut events.values[i], m) {
            Ok(Fate::Keep | Fate::Port(OUT)) => {
                if kept != i {
                    events.values.swap(kept, i);
                    if with_meta {
                        events.meta.swap(kept, i);
                    }
                }
                kept += 1;
            }
            Ok(Fate::Drop) => dropped = true,
            Ok(Fate::Port(port)) => {
                let at = match ports[first_new..].iter().position(|(p, _)| *p == port) {
                    Some(at) => first_new + at,
                    None => {
                        let mut sibling = events.sibling();
                        sibling.base = shared.clone();
                        ports.push((port, sibling));
                        ports.len() - 1
                    }
                };
                let to = &mut ports[at].1;
                to.values.push(std::mem::take(&mut events.values[i]));
                if with_meta {
                    to.meta.push(std::mem::take(&mut events.meta[i]));
                }
            }
            Err(reason) => {
                let event = std::mem::take(&mut events.values[i]);
                let m = if with_meta {
                    std::mem::take(&mut events.meta[i])
                } else {
                    shared.clone()
                };
                (exits.fail)(reason, event, m);
            }
        }
    }
    events.base = shared;
    if dropped {
        // Dropped events are still there: they go home to be freed.
        events.discard_from(kept);
    } else {
        // Only what was taken (nulls) is left.
        events.values.truncate(kept);
        events.meta.truncate(kept);
    }
}

/// [`Fate::Keep`] or [`Fate::Drop`].
fn keep_if(keep: bool) -> Fate {
    if keep { Fate::Keep } else { Fate::Drop }
}

impl Op {
    /// Applies the operator to a batch. Events that continue stay in `events`; events for
    /// other ports and error events go to `out`.
    pub(crate) fn apply(
        &mut self,
        pipeline: &str,
        index: usize,
        events: &mut Events,
        now: Instant,
        out: &mut Output,
    ) {
        let name = self.name();
        let errors = &mut out.errors;
        let mut fail = |reason: EventError, event: Value, meta: Value| {
            errors.push(error_event(pipeline, index, name, &reason, event, meta));
        };
        let exits = &mut Exits {
            ports: &mut out.ports,
            fail: &mut fail,
        };
        match self {
            Self::Filter(cond) => {
                sort_events(events, exits, |e, m| Ok(keep_if(cond.eval_bool(e, m)?)))
            }
            Self::Set(assignments) => {
                if assignments.iter().any(|(p, _)| p.root == Root::Meta) {
                    events.ensure_meta();
                }
                sort_events(events, exits, |e, m| {
                    for (target, value) in assignments.iter() {
                        let v = value
                            .eval(e, m)
                            .map_err(|source| EventError::Eval {
                                at: At::Field(target.text.clone()),
                                source,
                            })?
                            .into_owned();
                        target.set(e, m, v).map_err(|(reason, _)| reason)?;
                    }
                    Ok(Fate::Keep)
                });
            }
            Self::Remove(paths) => {
                if paths.iter().any(|p| p.root == Root::Meta) {
                    events.ensure_meta();
                }
                sort_events(events, exits, |e, m| {
                    for p in paths.iter() {
                        p.remove(e, m);
                    }
                    Ok(Fate::Keep)
                });
            }
            Self::Rename(pairs) => {
                if pairs.iter().any(|(_, to)| to.root == Root::Meta) {
                    events.ensure_meta();
                }
                sort_events(events, exits, |e, m| {
                    for (from, to) in pairs.iter() {
                        if let Some(v) = from.remove(e, m)
                            && let Err((reason, v)) = to.set(e, m, v)
                        {
                            // Put it back where it was (its parent is still there).
                            let _ = from.set(e, m, v);
                            return Err(reason.into());
                        }
                    }
                    Ok(Fate::Keep)
                });
            }
            Self::Route { branches, default } => {
                sort_events(events, exits, |e, m| {
                    for b in branches.iter() {
                        match b.cond.eval_bool(e, m) {
                            Ok(true) => return Ok(Fate::Port(b.port)),
                            Ok(false) => {}
                            Err(source) => {
                                let at = At::Port(b.name.clone());
                                return Err(EventError::Eval { at, source });
                            }
                        }
                    }
                    Ok(Fate::Port(*default))
                });
            }
            Self::Batch {
                size,
                timeout: _,
                held,
                held_tokens,
                since,
            } => {
                let mut full = RVec::new();
                events.meta.clear();
                events.base = Value::Null;
                held_tokens.absorb(std::mem::take(&mut events.tokens));
                for v in events.values.drain(..) {
                    if held.is_empty() {
                        *since = Some(now);
                    }
                    held.push(v);
                    if held.len() == *size {
                        full.push(Value::Array(std::mem::take(held)));
                        *since = None;
                    }
                }
                if !full.is_empty() {
                    // The emitted arrays carry every token seen; while events are still held,
                    // their tokens stay here too.
                    events.tokens = if held.is_empty() {
                        std::mem::take(held_tokens)
                    } else {
                        held_tokens.clone()
                    };
                }
                events.values.extend(full);
            }
            Self::Aggregate(agg) => agg.apply(events, now, exits),
            Self::Bucket(bucket) => bucket.apply(events, now, exits),
            Self::Count(counter) => {
                let (mut emitted, tokens) = counter.roll(now).unwrap_or_default();
                counter.add(events);
                counter.tokens.absorb(std::mem::take(&mut events.tokens));
                emitted.shrink_to_fit();
                // The counted events go back to where they were decoded, to be freed there.
                let mut counts = Events::local(emitted);
                counts.tokens = tokens;
                drop(std::mem::replace(events, counts));
            }
        }
    }

    /// When the operator wants to be woken up.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            Self::Batch {
                timeout: Some(t),
                since: Some(s),
                ..
            } => Some(*s + *t),
            Self::Count(c) if !c.keys.is_empty() => c.start.map(|s| s + c.window),
            Self::Aggregate(a) => a.deadline(),
            _ => None,
        }
    }

    /// What the operator emits because its deadline passed.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Held> {
        if self.deadline().is_none_or(|d| d > now) {
            return None;
        }
        match self {
            Self::Count(c) => c.roll(now),
            Self::Aggregate(a) => a.tick(now),
            _ => self.flush(),
        }
    }

    /// Everything the operator holds, at the end of the input.
    pub(crate) fn flush(&mut self) -> Option<Held> {
        match self {
            Self::Batch {
                held,
                held_tokens,
                since,
                ..
            } if !held.is_empty() => {
                *since = None;
                let mut out = RVec::with_capacity(1);
                out.push(Value::Array(std::mem::take(held)));
                Some((out, std::mem::take(held_tokens)))
            }
            Self::Count(c) => c.emit(),
            Self::Aggregate(a) => a.flush(),
            _ => None,
        }
    }

    /// Starts the operator's clock.
    pub(crate) fn start(&mut self, now: Instant) {
        match self {
            Self::Count(c) => {
                c.start = Some(now);
                c.anchor = Some((now, SystemTime::now()));
            }
            Self::Aggregate(a) => a.start(now),
            Self::Bucket(b) => b.start(now),
            _ => {}
        }
    }

    /// Records an operator could not emit (an `aggregate`'s `having` that failed), with why.
    pub(crate) fn take_failed(&mut self) -> Vec<(EventError, Value)> {
        match self {
            Self::Aggregate(a) => std::mem::take(&mut a.failed),
            _ => Vec::new(),
        }
    }

    /// An estimate of the bytes a stateful operator holds.
    pub(crate) fn state_bytes(&self) -> usize {
        match self {
            Self::Aggregate(a) => a.state_bytes(),
            Self::Bucket(b) => b.state_bytes(),
            Self::Count(c) => {
                c.keys
                    .iter()
                    .map(|(v, _)| super::aggregate::value_bytes(v) + size_of::<u64>())
                    .sum::<usize>()
                    + c.index.len() * (size_of::<(u64, Vec<usize>)>() + size_of::<usize>())
            }
            _ => 0,
        }
    }

    /// `(groups held, groups evicted so far)` of a stateful operator.
    pub(crate) fn state(&self) -> (usize, u64) {
        match self {
            Self::Aggregate(a) => (a.groups(), a.evicted),
            Self::Bucket(b) => (b.groups(), b.evicted),
            Self::Count(c) => (c.keys.len(), 0),
            _ => (0, 0),
        }
    }
}

/// One condition of a `route`.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    /// Index into the pipeline's ports.
    pub(crate) port: usize,
    name: String,
    cond: Expr,
}

/// The state of a `count`: the counts of the current window, by value.
#[derive(Debug, Clone)]
pub(crate) struct Counter {
    by: Option<Path>,
    window: Duration,
    /// As configured, for the emitted events.
    window_s: Value,
    /// The current window's start.
    start: Option<Instant>,
    /// An instant and the wall-clock time then, to date windows.
    anchor: Option<(Instant, SystemTime)>,
    /// Each value seen in this window, first seen first, with its count.
    keys: Vec<(Value, u64)>,
    /// Hash of a value to its indexes in `keys`.
    index: HashMap<u64, Vec<usize>>,
    /// The tokens of the events counted in this window.
    tokens: Tokens,
}

impl Counter {
    fn add(&mut self, events: &Events) {
        for (i, event) in events.values.iter().enumerate() {
            let meta = events.meta_of(i);
            let key = match &self.by {
                Some(p) => p.get(event, meta).unwrap_or(&NULL),
                None => &NULL,
            };
            let slots = self.index.entry(hash_of(key)).or_default();
            match slots.iter().find(|&&s| self.keys[s].0 == *key) {
                Some(&s) => self.keys[s].1 += 1,
                None => {
                    slots.push(self.keys.len());
                    self.keys.push((key.clone(), 1));
                }
            }
        }
    }

    /// Ends the window if `now` is past it: its counts, and a new window around `now`.
    fn roll(&mut self, now: Instant) -> Option<Held> {
        let start = *self.start.get_or_insert(now);
        if now < start + self.window {
            return None;
        }
        let emitted = self.emit();
        let behind = (now - start).as_nanos() % self.window.as_nanos();
        self.start = Some(now - Duration::from_nanos(u64::try_from(behind).unwrap_or(0)));
        emitted
    }

    /// The counts so far, one event per value (with the tokens of the counted events), and a
    /// fresh count.
    fn emit(&mut self) -> Option<Held> {
        if self.keys.is_empty() {
            return None;
        }
        let tokens = std::mem::take(&mut self.tokens);
        self.index.clear();
        let start_ms = match (self.anchor, self.start) {
            (Some((at, wall)), Some(start)) => {
                let wall = if start >= at {
                    wall + (start - at)
                } else {
                    wall - (at - start)
                };
                wall.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            _ => 0,
        };
        let Self {
            by, keys, window_s, ..
        } = self;
        Some((
            keys.drain(..)
                .map(|(value, n)| {
                    let mut o = Object::with_capacity(5);
                    if let Some(by) = by {
                        o.push("by".into(), by.text.as_str().into());
                        o.push("value".into(), value);
                    }
                    o.push("count".into(), n.into());
                    o.push("window_start_ms".into(), start_ms.into());
                    o.push("window_s".into(), window_s.clone());
                    Value::Object(o)
                })
                .collect(),
            tokens,
        ))
    }
}

/// A hash that agrees with `Value`'s equality: numbers by value, objects in any order.
pub(super) fn hash_of(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    hash_value(v, &mut h);
    h.finish()
}

fn hash_value(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => {
            h.write_u8(1);
            b.hash(h);
        }
        Value::I64(i) => {
            h.write_u8(2);
            h.write_i128(i128::from(*i));
        }
        Value::U64(u) => {
            h.write_u8(2);
            h.write_i128(i128::from(*u));
        }
        Value::F64(f) => {
            h.write_u8(2);
            #[allow(clippy::cast_possible_truncation, clippy::float_cmp)]
            if f.fract() == 0.0 && f.abs() < 1e38 {
                h.write_i128(*f as i128);
            } else {
                h.write_u64(f.to_bits());
            }
        }
        Value::String(s) => {
            h.write_u8(3);
            s.as_str().hash(h);
        }
        Value::Bytes(b) => {
            h.write_u8(4);
            b.as_slice().hash(h);
        }
        Value::Array(a) => {
            h.write_u8(5);
            h.write_usize(a.len());
            for item in a {
                hash_value(item, h);
            }
        }
        Value::Object(o) => {
            h.write_u8(6);
            h.write_usize(o.len());
            let mut sum = 0_u64;
            for (k, v) in o.iter() {
                let mut field = DefaultHasher::new();
                k.hash(&mut field);
                hash_value(v, &mut field);
                sum = sum.wrapping_add(field.finish());
            }
            h.write_u64(sum);
        }
    }
}
