//! The `aggregate` operator: windows (tumbling by time or count, hopping by time; processing or
//! event time), groups, aggregate functions, `having`, bounded state. See `docs/pipeline.md`.
//!
//! State is one [`Groups`] table per open window (a time window's start), each slot a group
//! with one accumulator per emitted field. Reading a group's key borrows from the event; a key
//! is cloned only when its group is new.
//!
//! A chain of windows (`window = [...]`) keeps one more table per open window of each later
//! level; a closed window's groups are merged into the next level ([`Emit::merge`]), never
//! re-aggregated from events.

use std::{
    borrow::Cow,
    cmp::Ordering,
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use cardinality_estimator::CardinalityEstimator;
use sketches_ddsketch::{Config as SketchConfig, DDSketch};
use temblor_shim::{Object, RVec, Value};

use super::{
    Events, Held,
    error::{
        At, ConfigError, EmitError, EventError, at_key, key_expression, known_keys,
        optional_expression,
    },
    expr::{Expr, Path, Root, Segment, float_of, int_of},
    ops::{Exits, hash_of},
    parse::{parse_expr, parse_expr_with},
};
use crate::delivery::Tokens;

/// The default bound on groups held at once (over all open windows).
pub(crate) const DEFAULT_MAX_GROUPS: usize = 10_000;
/// The default bound of `collect`.
const COLLECT_LIMIT: usize = 1_000;
/// The precision of `distinct`'s HyperLogLog++: 2^12 registers of 6 bits (3 KiB per group at
/// most), a standard error of 1.04 / sqrt(2^12), about 1.6%.
const DISTINCT_PRECISION: usize = 12;
/// The bound documented for `distinct`'s relative error (about three standard errors).
#[cfg(test)]
const DISTINCT_ERROR: f64 = 0.05;

/// `distinct`'s estimator, fed the 64-bit hashes of the values.
type Distinct =
    CardinalityEstimator<u64, std::collections::hash_map::DefaultHasher, DISTINCT_PRECISION, 6>;
/// The relative error of `percentile` (DDSketch's alpha).
pub(crate) const PERCENTILE_ERROR: f64 = 0.01;

/// Rows of a table keyed by a list of values, in the order their keys were first seen.
#[derive(Debug, Clone)]
pub(crate) struct Groups<S> {
    pub(crate) rows: Vec<(Vec<Value>, S)>,
    index: HashMap<u64, Vec<usize>>,
}

impl<S> Default for Groups<S> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }
}

/// An estimate of the bytes a value takes, itself and what it points to.
pub(crate) fn value_bytes(v: &Value) -> usize {
    size_of::<Value>() + heap_bytes(v)
}

/// An estimate of the bytes a value points to.
fn heap_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Array(items) => items.iter().map(value_bytes).sum(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| size_of::<Value>() + k.len() + value_bytes(v))
            .sum(),
        _ => 0,
    }
}

/// The hash of a key (agrees with `Value`'s equality).
pub(crate) fn key_hash(key: &[Cow<'_, Value>]) -> u64 {
    key.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, v| {
        h.rotate_left(17) ^ hash_of(v)
    })
}

impl<S> Groups<S> {
    /// The row of this key.
    pub(crate) fn find(&self, hash: u64, key: &[Cow<'_, Value>]) -> Option<usize> {
        self.index
            .get(&hash)?
            .iter()
            .copied()
            .find(|&r| self.rows[r].0.iter().zip(key).all(|(a, b)| a == b.as_ref()))
    }

    /// Adds a row (its key is not there).
    pub(crate) fn insert(&mut self, hash: u64, key: &[Cow<'_, Value>], state: S) -> usize {
        let at = self.rows.len();
        self.rows
            .push((key.iter().map(|v| v.as_ref().clone()).collect(), state));
        self.index.entry(hash).or_default().push(at);
        at
    }

    /// Removes a row (the later ones move up).
    pub(crate) fn remove(&mut self, row: usize) -> (Vec<Value>, S) {
        let removed = self.rows.remove(row);
        self.index.clear();
        for (i, (key, _)) in self.rows.iter().enumerate() {
            let borrowed: Vec<Cow<'_, Value>> = key.iter().map(Cow::Borrowed).collect();
            self.index.entry(key_hash(&borrowed)).or_default().push(i);
        }
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// An estimate of the bytes the table holds, `state` giving a row's state's.
    pub(crate) fn bytes(&self, state: impl Fn(&S) -> usize) -> usize {
        let per_row = size_of::<(Vec<Value>, S)>() + size_of::<usize>();
        let index = self.index.len() * (size_of::<(u64, Vec<usize>)>() + 8);
        index
            + self
                .rows
                .iter()
                .map(|(key, s)| per_row + key.iter().map(value_bytes).sum::<usize>() + state(s))
                .sum::<usize>()
    }

    fn drain(&mut self) -> std::vec::Drain<'_, (Vec<Value>, S)> {
        self.index.clear();
        self.rows.drain(..)
    }
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFn {
    Count,
    Sum,
    Min,
    Max,
    Mean,
    Var,
    Stdev,
    Percentile,
    First,
    Last,
    Collect,
    Distinct,
}

impl AggFn {
    /// Name, least and most arguments.
    const ALL: [(&'static str, Self, usize, usize); 12] = [
        ("count", Self::Count, 0, 1),
        ("sum", Self::Sum, 1, 1),
        ("min", Self::Min, 1, 1),
        ("max", Self::Max, 1, 1),
        ("mean", Self::Mean, 1, 1),
        ("var", Self::Var, 1, 1),
        ("stdev", Self::Stdev, 1, 1),
        ("percentile", Self::Percentile, 2, 2),
        ("first", Self::First, 1, 1),
        ("last", Self::Last, 1, 1),
        ("collect", Self::Collect, 1, 2),
        ("distinct", Self::Distinct, 1, 1),
    ];

    /// The functions' names, for messages.
    pub(super) fn names() -> String {
        Self::ALL.map(|(n, _, _, _)| n).join(", ")
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f, _, _)| *f == self)
            .map_or("?", |(n, _, _, _)| n)
    }

    fn numeric(self) -> bool {
        matches!(
            self,
            Self::Sum
                | Self::Min
                | Self::Max
                | Self::Mean
                | Self::Var
                | Self::Stdev
                | Self::Percentile
        )
    }
}

/// One emitted field: `name = 'fn(arg, ...)'`.
#[derive(Debug, Clone)]
pub(crate) struct Emit {
    name: String,
    func: AggFn,
    arg: Option<Expr>,
    /// `percentile`'s quantile.
    q: f64,
    /// `collect`'s bound.
    limit: usize,
}

/// A DDSketch (its crate gives it no `Debug`).
#[derive(Clone)]
struct Sketch(DDSketch);

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DDSketch({} values)", self.0.count())
    }
}

/// The state of one emitted field for one group.
#[derive(Debug, Clone)]
enum Acc {
    Count(u64),
    Sum {
        int: i128,
        float: f64,
        floats: bool,
        n: u64,
    },
    Extreme(Option<Value>),
    Mean {
        sum: f64,
        n: u64,
    },
    Var {
        n: u64,
        mean: f64,
        m2: f64,
    },
    Percentile(Box<Sketch>),
    First(Option<Value>),
    Last(Option<Value>),
    Collect(Vec<Value>),
    Distinct(Distinct),
}

fn num_cmp(a: &Value, b: &Value) -> Ordering {
    if let (Some(x), Some(y)) = (int_of(a), int_of(b)) {
        return x.cmp(&y);
    }
    let (x, y) = (float_of(a).unwrap_or(0.0), float_of(b).unwrap_or(0.0));
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

impl Emit {
    fn start(&self) -> Acc {
        match self.func {
            AggFn::Count => Acc::Count(0),
            AggFn::Sum => Acc::Sum {
                int: 0,
                float: 0.0,
                floats: false,
                n: 0,
            },
            AggFn::Min | AggFn::Max => Acc::Extreme(None),
            AggFn::Mean => Acc::Mean { sum: 0.0, n: 0 },
            AggFn::Var | AggFn::Stdev => Acc::Var {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            },
            AggFn::Percentile => Acc::Percentile(Box::new(Sketch(DDSketch::new(
                SketchConfig::new(PERCENTILE_ERROR, 2048, 1.0e-9),
            )))),
            AggFn::First => Acc::First(None),
            AggFn::Last => Acc::Last(None),
            AggFn::Collect => Acc::Collect(Vec::new()),
            AggFn::Distinct => Acc::Distinct(Distinct::default()),
        }
    }

    /// Whether the argument's value can be aggregated (`null` is skipped).
    fn check(&self, v: &Value) -> Result<(), EventError> {
        if self.func.numeric() && !matches!(v, Value::Null) && float_of(v).is_none() {
            return Err(EventError::NotANumber {
                name: self.name.clone(),
                func: self.func.name(),
                found: v.type_name(),
            });
        }
        Ok(())
    }

    fn add(&self, acc: &mut Acc, v: Option<&Value>) {
        let Some(v) = v else {
            // count(): every event.
            if let Acc::Count(n) = acc {
                *n += 1;
            }
            return;
        };
        if matches!(v, Value::Null) {
            return;
        }
        match acc {
            Acc::Count(n) => *n += 1,
            Acc::Sum {
                int,
                float,
                floats,
                n,
            } => {
                *n += 1;
                match int_of(v) {
                    Some(i) if !*floats => match int.checked_add(i) {
                        Some(s) => *int = s,
                        None => {
                            *floats = true;
                            *float = i128_f64(*int) + i128_f64(i);
                        }
                    },
                    _ => {
                        if !*floats {
                            *floats = true;
                            *float = i128_f64(*int);
                        }
                        *float += float_of(v).unwrap_or(0.0);
                    }
                }
            }
            Acc::Extreme(best) => {
                let better = best.as_ref().is_none_or(|b| {
                    let o = num_cmp(v, b);
                    if self.func == AggFn::Min {
                        o.is_lt()
                    } else {
                        o.is_gt()
                    }
                });
                if better {
                    *best = Some(v.clone());
                }
            }
            Acc::Mean { sum, n } => {
                *sum += float_of(v).unwrap_or(0.0);
                *n += 1;
            }
            Acc::Var { n, mean, m2 } => {
                // Welford's online algorithm.
                let x = float_of(v).unwrap_or(0.0);
                *n += 1;
                #[allow(clippy::cast_precision_loss)]
                let count = *n as f64;
                let delta = x - *mean;
                *mean += delta / count;
                *m2 += delta * (x - *mean);
            }
            Acc::Percentile(sketch) => sketch.0.add(float_of(v).unwrap_or(0.0)),
            Acc::First(first) => {
                if first.is_none() {
                    *first = Some(v.clone());
                }
            }
            Acc::Last(last) => *last = Some(v.clone()),
            Acc::Collect(items) => {
                if items.len() < self.limit {
                    items.push(v.clone());
                }
            }
            Acc::Distinct(seen) => seen.insert_hash(hash_of(v)),
        }
    }

    /// Merges the state `other` (of a later window of the same group) into `acc`.
    fn merge(&self, acc: &mut Acc, other: &Acc) {
        match (acc, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (
                Acc::Sum {
                    int,
                    float,
                    floats,
                    n,
                },
                Acc::Sum {
                    int: int2,
                    float: float2,
                    floats: floats2,
                    n: n2,
                },
            ) => {
                *n += n2;
                match int.checked_add(*int2) {
                    Some(sum) if !*floats && !*floats2 => *int = sum,
                    _ => {
                        let mine = if *floats { *float } else { i128_f64(*int) };
                        let theirs = if *floats2 { *float2 } else { i128_f64(*int2) };
                        *floats = true;
                        *float = mine + theirs;
                    }
                }
            }
            (a @ Acc::Extreme(_), Acc::Extreme(Some(v))) => self.add(a, Some(v)),
            (Acc::Mean { sum, n }, Acc::Mean { sum: s2, n: n2 }) => {
                *sum += s2;
                *n += n2;
            }
            (
                Acc::Var { n, mean, m2 },
                Acc::Var {
                    n: n2,
                    mean: mean2,
                    m2: m22,
                },
            ) => {
                // Chan et al.'s parallel combination of Welford states.
                if *n2 == 0 {
                    return;
                }
                #[allow(clippy::cast_precision_loss)]
                let (na, nb) = (*n as f64, *n2 as f64);
                let total = na + nb;
                let delta = mean2 - *mean;
                *mean += delta * nb / total;
                *m2 += m22 + delta * delta * na * nb / total;
                *n += n2;
            }
            (Acc::Percentile(a), Acc::Percentile(b)) => {
                // Both sketches have the same configuration: merging can not fail.
                let _ = a.0.merge(&b.0);
            }
            (Acc::First(a @ None), Acc::First(b)) | (Acc::Last(a), Acc::Last(b @ Some(_))) => {
                a.clone_from(b);
            }
            (Acc::Collect(a), Acc::Collect(b)) => {
                let room = self.limit.saturating_sub(a.len());
                a.extend(b.iter().take(room).cloned());
            }
            (Acc::Distinct(a), Acc::Distinct(b)) => a.merge(b),
            _ => {}
        }
    }

    /// An estimate of the bytes a state takes.
    fn bytes(acc: &Acc) -> usize {
        size_of::<Acc>()
            + match acc {
                Acc::Extreme(Some(v)) | Acc::First(Some(v)) | Acc::Last(Some(v)) => heap_bytes(v),
                Acc::Collect(items) => items.iter().map(value_bytes).sum(),
                // Its bins are u64 counts.
                Acc::Percentile(s) => size_of::<Sketch>() + s.0.length() * 8,
                Acc::Distinct(d) => d.size_of(),
                _ => 0,
            }
    }

    fn result(&self, acc: Acc) -> Value {
        match acc {
            Acc::Count(n) => Value::from(n),
            Acc::Sum { n: 0, .. } => Value::Null,
            Acc::Sum {
                int, float, floats, ..
            } => {
                if floats {
                    Value::F64(float)
                } else if let Ok(i) = i64::try_from(int) {
                    Value::I64(i)
                } else if let Ok(u) = u64::try_from(int) {
                    Value::U64(u)
                } else {
                    Value::F64(i128_f64(int))
                }
            }
            Acc::Extreme(v) | Acc::First(v) | Acc::Last(v) => v.unwrap_or_default(),
            Acc::Mean { n: 0, .. } => Value::Null,
            #[allow(clippy::cast_precision_loss)]
            Acc::Mean { sum, n } => Value::F64(sum / n as f64),
            Acc::Var { n, m2, .. } if n >= 2 => {
                #[allow(clippy::cast_precision_loss)]
                let var = m2 / (n - 1) as f64;
                Value::F64(if self.func == AggFn::Stdev {
                    var.sqrt()
                } else {
                    var
                })
            }
            Acc::Var { .. } => Value::Null,
            Acc::Percentile(sketch) => sketch
                .0
                .quantile(self.q)
                .ok()
                .flatten()
                .map_or(Value::Null, Value::F64),
            Acc::Collect(items) => Value::Array(items.into()),
            Acc::Distinct(seen) => Value::from(seen.estimate()),
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn i128_f64(i: i128) -> f64 {
    i as f64
}

/// How events are cut into windows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Window {
    /// Time windows of `size_ms` starting every `every_ms` (tumbling: both equal), aligned to
    /// the Unix epoch.
    Time { size_ms: u64, every_ms: u64 },
    /// Each group's window closes at its `n`th event.
    Count(u64),
}

/// One group of one window.
#[derive(Debug, Clone)]
struct Slot {
    accs: Vec<Acc>,
    /// When it was last seen (a sequence number), for eviction.
    seen: u64,
    /// Times of its first and last events (count windows' bounds).
    first_ms: u64,
    last_ms: u64,
    n: u64,
    /// The delivery tokens of the batches its events came in (merged once per batch).
    tokens: Tokens,
    /// The last batch merged into `tokens`.
    batch: u64,
}

/// A level of a chain of tumbling windows after the first.
#[derive(Debug, Clone)]
struct Level {
    size_ms: u64,
    /// Open windows by start.
    open: BTreeMap<u64, Groups<Slot>>,
    groups: usize,
}

/// The `aggregate` operator.
#[derive(Debug, Clone)]
pub(crate) struct Aggregate {
    window: Window,
    /// Event time (ms since the epoch), or processing time when `None`.
    time: Option<Expr>,
    lateness_ms: u64,
    /// The `late` port (event time only).
    late_port: usize,
    /// The `group_by` expressions' texts (the emitted `group`'s keys) ...
    group_names: Vec<String>,
    /// ... and the expressions.
    group_by: Vec<Expr>,
    /// Which `group_by` entries are `{ each = '...' }`: the event counts in the group of each
    /// element of that array.
    group_each: Vec<bool>,
    emit: Vec<Emit>,
    having: Option<Expr>,
    max_groups: usize,
    /// Open windows by start (count windows: one, at 0).
    open: BTreeMap<u64, Groups<Slot>>,
    /// A chain of windows (`window = [...]`): the levels after the first, each rolling up
    /// the closed windows of the one before.
    chain: Vec<Level>,
    groups: usize,
    seq: u64,
    /// Event time: the largest time seen.
    max_time: Option<u64>,
    /// An instant and the wall clock then (ms), to turn one into the other.
    anchor: Option<(Instant, u64)>,
    /// Batches seen (numbers them for `Slot::batch`).
    batch: u64,
    /// The tokens of the batch being aggregated.
    current: Tokens,
    /// The tokens of the records emitted and not handed on yet.
    emitted_tokens: Tokens,
    /// Groups emitted early because `max_groups` was reached.
    pub(crate) evicted: u64,
    /// Failures while emitting (a `having` that failed): reason and record.
    pub(crate) failed: Vec<(EventError, Value)>,
}

fn seconds(v: &Value, key: &'static str) -> Result<f64, ConfigError> {
    match float_of(v) {
        Some(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(ConfigError::Seconds {
            key,
            found: v.type_name(),
        }),
    }
}

/// `max_groups` of `aggregate` and `bucket`.
pub(crate) fn max_groups(t: &Object) -> Result<usize, ConfigError> {
    match t.get("max_groups") {
        None => Ok(DEFAULT_MAX_GROUPS),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(ConfigError::Must {
                key: "max_groups",
                rule: "be an integer of at least 1",
            }),
        },
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn millis(s: f64) -> u64 {
    (s * 1000.0).round() as u64
}

/// Reads `fn(args)`.
fn emit_spec(name: &str, text: &str) -> Result<Emit, EmitError> {
    let bad = || EmitError::NotACall {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    let open = trimmed.find('(').ok_or_else(bad)?;
    if !trimmed.ends_with(')') {
        return Err(bad());
    }
    let fname = trimmed[..open].trim();
    let Some(&(fname, func, least, most)) = AggFn::ALL.iter().find(|(n, _, _, _)| *n == fname)
    else {
        return Err(bad());
    };
    let inner = &trimmed[open + 1..trimmed.len() - 1];
    let args = parse_expr(&format!("[{inner}]")).map_err(|e| EmitError::Syntax {
        column: e.column + open,
        message: e.message,
        text: text.to_owned(),
    })?;
    let mut args: Vec<Expr> = match args {
        Expr::Array(items) => items,
        Expr::Lit(Value::Array(items)) => items.iter().cloned().map(Expr::Lit).collect(),
        _ => return Err(bad()),
    };
    if args.len() < least || args.len() > most {
        return Err(EmitError::Arity {
            func: fname,
            least,
            most,
            found: args.len(),
        });
    }
    let mut spec = Emit {
        name: name.to_owned(),
        func,
        arg: None,
        q: 0.5,
        limit: COLLECT_LIMIT,
    };
    if args.len() == 2 {
        let second = args.pop().unwrap_or(Expr::Lit(Value::Null));
        match (func, second) {
            (AggFn::Percentile, Expr::Lit(value)) => match float_of(&value) {
                Some(q) if (0.0..=1.0).contains(&q) => spec.q = q,
                _ => return Err(EmitError::Quantile { value }),
            },
            (AggFn::Collect, Expr::Lit(value)) => match value.as_u64() {
                Some(n) if n >= 1 => spec.limit = usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Err(EmitError::Bound { value }),
            },
            _ => return Err(EmitError::NotConstant { func: fname }),
        }
    }
    spec.arg = args.pop();
    Ok(spec)
}

/// Field names of the emitted records that the emit fields can not take.
pub(super) const RESERVED: [&str; 5] = [
    "group",
    "window_start_ms",
    "window_end_ms",
    "window_s",
    "early",
];

impl Aggregate {
    /// Reads `aggregate = { ... }`; `late_port` gives the index of the `late` port.
    pub(crate) fn compile(
        t: &Object,
        late_port: &mut dyn FnMut() -> Result<usize, ConfigError>,
    ) -> Result<Self, ConfigError> {
        const KEYS: &[&str] = &[
            "window",
            "group_by",
            "emit",
            "having",
            "time",
            "allowed_lateness_s",
            "max_groups",
        ];
        known_keys(t, "aggregate", KEYS)?;
        let (window, chain) = match t.get("window") {
            Some(Value::Object(w)) => (window(w)?, Vec::new()),
            Some(Value::Array(levels)) => chain(levels)?,
            _ => {
                return Err(ConfigError::RequiredShape {
                    key: "window",
                    shape: "`{ tumbling_s = S }`, `{ tumbling_n = N }`, \
                     `{ size_s = S, every_s = E }` or a chain `[{ tumbling_s = S1 }, \
                     { tumbling_s = S2 }, ...]`",
                });
            }
        };
        let group_by: Vec<(String, Expr, bool)> = match t.get("group_by") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    let (text, each) = match v {
                        Value::String(s) => (s.as_str(), false),
                        Value::Object(o) => match (o.len(), o.get("each")) {
                            (1, Some(Value::String(s))) => (s.as_str(), true),
                            _ => return Err(ConfigError::GroupByTable),
                        },
                        _ => {
                            return Err(ConfigError::Type {
                                key: "group_by",
                                is: "holds expressions or `{ each = 'EXPRESSION' }`",
                                found: v.type_name(),
                            });
                        }
                    };
                    let e = key_expression("group_by", text, parse_expr)?;
                    Ok((text.to_owned(), e, each))
                })
                .collect::<Result<_, ConfigError>>()?,
            Some(other) => {
                return Err(ConfigError::Type {
                    key: "group_by",
                    is: "is a list of expressions",
                    found: other.type_name(),
                });
            }
        };
        let emit: Vec<Emit> = match t.get("emit") {
            Some(Value::Object(o)) if !o.is_empty() => o
                .iter()
                .map(|(name, v)| {
                    let spec = if RESERVED.contains(&name) {
                        Err(EmitError::Reserved)
                    } else {
                        v.as_str()
                            .ok_or(EmitError::NotAString)
                            .and_then(|text| emit_spec(name, text))
                    };
                    spec.map_err(|source| ConfigError::Emit {
                        name: name.to_owned(),
                        source,
                    })
                })
                .collect::<Result<_, ConfigError>>()?,
            _ => {
                return Err(ConfigError::RequiredShape {
                    key: "emit",
                    shape: "a table of `\"NAME\" = 'FUNCTION(...)'`",
                });
            }
        };
        let having = optional_expression(t, ("having", "is an expression string"), |text| {
            let names = emit
                .iter()
                .map(|e| {
                    let field = Path::new(Root::Event, vec![Segment::Key(e.name.clone())]);
                    (e.name.clone(), Expr::Path(field))
                })
                .collect();
            parse_expr_with(text, names)
        })?;
        let time = optional_expression(
            t,
            (
                "time",
                "is an expression string (milliseconds since the epoch)",
            ),
            parse_expr,
        )?;
        let lateness_ms = match t.get("allowed_lateness_s") {
            None => 0,
            Some(_) if time.is_none() => return Err(ConfigError::LatenessWithoutTime),
            Some(v) => millis(seconds(v, "allowed_lateness_s")?),
        };
        let max_groups = max_groups(t)?;
        let late_port = if time.is_some() { late_port()? } else { 0 };
        Ok(Self {
            window,
            time,
            lateness_ms,
            late_port,
            group_names: group_by.iter().map(|(n, _, _)| n.clone()).collect(),
            group_each: group_by.iter().map(|(_, _, each)| *each).collect(),
            group_by: group_by.into_iter().map(|(_, e, _)| e).collect(),
            emit,
            having,
            max_groups,
            open: BTreeMap::new(),
            chain,
            groups: 0,
            seq: 0,
            max_time: None,
            anchor: None,
            batch: 0,
            current: Tokens::default(),
            emitted_tokens: Tokens::default(),
            evicted: 0,
            failed: Vec::new(),
        })
    }

    /// Starts the processing-time clock.
    pub(crate) fn start(&mut self, now: Instant) {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.anchor = Some((now, wall));
    }

    /// The wall clock at `now`, in ms.
    fn wall_ms(&self, now: Instant) -> u64 {
        match self.anchor {
            Some((at, wall)) if now >= at => {
                wall + u64::try_from((now - at).as_millis()).unwrap_or(0)
            }
            Some((at, wall)) => {
                wall.saturating_sub(u64::try_from((at - now).as_millis()).unwrap_or(0))
            }
            None => 0,
        }
    }

    /// An estimate of the bytes the groups of every open window hold.
    pub(crate) fn state_bytes(&self) -> usize {
        let slot = |s: &Slot| size_of::<Slot>() + s.accs.iter().map(Emit::bytes).sum::<usize>();
        self.open
            .values()
            .chain(self.chain.iter().flat_map(|l| l.open.values()))
            .map(|g| size_of::<(u64, Groups<Slot>)>() + g.bytes(slot))
            .sum()
    }

    /// Groups held (over every open window).
    pub(crate) fn groups(&self) -> usize {
        self.groups + self.chain.iter().map(|l| l.groups).sum::<usize>()
    }

    /// The instant processing-time windows end at; `None` for event time and count windows.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let Window::Time { size_ms, .. } = self.window else {
            return None;
        };
        if self.time.is_some() {
            return None;
        }
        let first = self
            .open
            .first_key_value()
            .map(|(start, _)| start + size_ms);
        let end = self
            .chain
            .iter()
            .filter_map(|l| l.open.first_key_value().map(|(start, _)| start + l.size_ms))
            .chain(first)
            .min()?;
        let (at, wall) = self.anchor?;
        Some(at + Duration::from_millis(end.saturating_sub(wall)))
    }

    /// Emits the windows that ended by `now` (processing time).
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Held> {
        let mut out = RVec::new();
        let now_ms = self.wall_ms(now);
        self.close_until(now_ms, &mut out);
        self.held(out)
    }

    /// Emits every open window.
    pub(crate) fn flush(&mut self) -> Option<Held> {
        let mut out = RVec::new();
        self.close_until(u64::MAX, &mut out);
        self.held(out)
    }

    fn held(&mut self, out: RVec<Value>) -> Option<Held> {
        if out.is_empty() {
            return None;
        }
        Some((out, std::mem::take(&mut self.emitted_tokens)))
    }

    /// Closes every time window that ends at or before `until` (count windows: only when
    /// `until` is the end, `u64::MAX`).
    fn close_until(&mut self, until: u64, out: &mut RVec<Value>) {
        let size_ms = match self.window {
            Window::Time { size_ms, .. } => size_ms,
            Window::Count(_) if until == u64::MAX => 0,
            Window::Count(_) => return,
        };
        while let Some(entry) = self.open.first_entry() {
            let start = *entry.key();
            if size_ms > 0 && start.saturating_add(size_ms) > until {
                break;
            }
            let mut groups = entry.remove();
            self.groups -= groups.len();
            for (key, slot) in groups.drain() {
                let bounds = match self.window {
                    Window::Time { size_ms, .. } => (start, start + size_ms),
                    Window::Count(_) => (slot.first_ms, slot.last_ms),
                };
                self.roll_up(0, &key, &slot, out);
                self.record(key, slot, bounds, false, out);
            }
        }
        // Then each level of a chain, in order (a level's windows end where the ones before
        // end, so they have had every window of the level before rolled in).
        for level in 1..=self.chain.len() {
            let size_ms = self.chain[level - 1].size_ms;
            while let Some(entry) = self.chain[level - 1].open.first_entry() {
                let start = *entry.key();
                if start.saturating_add(size_ms) > until {
                    break;
                }
                let mut groups = entry.remove();
                self.chain[level - 1].groups -= groups.len();
                for (key, slot) in groups.drain() {
                    self.roll_up(level, &key, &slot, out);
                    self.record(key, slot, (start, start + size_ms), false, out);
                }
            }
        }
    }

    /// Merges a group of a closed window of `level` (0: the first) into the next level of the
    /// chain, if there is one.
    fn roll_up(&mut self, level: usize, key: &[Value], slot: &Slot, out: &mut RVec<Value>) {
        let Some(next) = self.chain.get(level) else {
            return;
        };
        let start = slot.first_ms / next.size_ms * next.size_ms;
        let borrowed: Vec<Cow<'_, Value>> = key.iter().map(Cow::Borrowed).collect();
        let hash = key_hash(&borrowed);
        let found = next.open.get(&start).and_then(|g| g.find(hash, &borrowed));
        let row = match found {
            Some(row) => row,
            None => {
                if next.groups >= self.max_groups {
                    self.evict_level(level + 1, out);
                }
                let slot = Slot {
                    accs: self.emit.iter().map(Emit::start).collect(),
                    seen: 0,
                    first_ms: slot.first_ms,
                    last_ms: slot.last_ms,
                    n: 0,
                    tokens: Tokens::default(),
                    batch: 0,
                };
                let next = &mut self.chain[level];
                next.groups += 1;
                next.open
                    .entry(start)
                    .or_default()
                    .insert(hash, &borrowed, slot)
            }
        };
        let Some(groups) = self.chain[level].open.get_mut(&start) else {
            return;
        };
        let into = &mut groups.rows[row].1;
        into.seen = into.seen.max(slot.seen);
        into.n += slot.n;
        into.first_ms = into.first_ms.min(slot.first_ms);
        into.last_ms = into.last_ms.max(slot.last_ms);
        for ((spec, acc), other) in self.emit.iter().zip(&mut into.accs).zip(&slot.accs) {
            spec.merge(acc, other);
        }
    }

    /// Emits the least recently seen group of a level (from 1) of the chain early.
    fn evict_level(&mut self, level: usize, out: &mut RVec<Value>) {
        let l = &mut self.chain[level - 1];
        let Some((start, row)) = oldest(&l.open) else {
            return;
        };
        let size_ms = l.size_ms;
        let Some((key, slot)) = take_row(&mut l.open, &mut l.groups, start, row) else {
            return;
        };
        self.evicted += 1;
        self.roll_up(level, &key, &slot, out);
        self.record(key, slot, (start, start + size_ms), true, out);
    }

    /// The emitted record of a group, if `having` keeps it.
    fn record(
        &mut self,
        key: Vec<Value>,
        slot: Slot,
        (start_ms, end_ms): (u64, u64),
        early: bool,
        out: &mut RVec<Value>,
    ) {
        // Its events are delivered with the record (or dropped with it, by `having`).
        self.emitted_tokens.absorb(slot.tokens);
        let mut o = Object::with_capacity(self.emit.len() + 4);
        if !self.group_names.is_empty() {
            let mut g = Object::with_capacity(key.len());
            for (text, v) in self.group_names.iter().zip(key) {
                g.push(text.as_str().into(), v);
            }
            o.push("group".into(), Value::Object(g));
        }
        for (spec, acc) in self.emit.iter().zip(slot.accs) {
            o.push(spec.name.as_str().into(), spec.result(acc));
        }
        o.push("window_start_ms".into(), start_ms.into());
        o.push("window_end_ms".into(), end_ms.into());
        if !self.chain.is_empty() {
            let ms = end_ms - start_ms;
            o.push(
                "window_s".into(),
                if ms % 1000 == 0 {
                    Value::from(ms / 1000)
                } else {
                    #[allow(clippy::cast_precision_loss)]
                    Value::F64(ms as f64 / 1000.0)
                },
            );
        }
        if early {
            o.push("early".into(), true.into());
        }
        let record = Value::Object(o);
        if let Some(having) = &self.having {
            match having.eval_bool(&record, &Value::Null) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    self.failed.push((at_key("having")(e), record));
                    return;
                }
            }
        }
        out.push(record);
    }

    fn event_time(&self, event: &Value, meta: &Value) -> Result<Option<u64>, EventError> {
        let Some(time) = &self.time else {
            return Ok(None);
        };
        let v = time.eval(event, meta).map_err(at_key("time"))?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        match (int_of(&v), float_of(&v)) {
            (Some(i), _) if i >= 0 => Ok(Some(u64::try_from(i).unwrap_or(u64::MAX))),
            (None, Some(f)) if f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(EventError::Time {
                found: v.into_owned(),
            }),
        }
    }

    /// Aggregates a batch: what windows closed replaces the events; late events go to the
    /// `late` port, failed ones to `fail`.
    pub(crate) fn apply(&mut self, events: &mut Events, now: Instant, exits: &mut Exits<'_>) {
        let mut emitted = RVec::new();
        let now_ms = self.wall_ms(now);
        if self.time.is_none() {
            self.close_until(now_ms, &mut emitted);
        }
        self.batch += 1;
        self.current = std::mem::take(&mut events.tokens);
        let mut failed = false;
        let mut late = events.sibling();
        let with_meta = !events.meta.is_empty();
        let Events {
            values, meta, base, ..
        } = &mut *events;
        for i in 0..values.len() {
            let m = if with_meta { &meta[i] } else { &*base };
            match self.add(&values[i], m, now_ms, &mut emitted) {
                Ok(true) => {}
                Ok(false) => {
                    late.values.push(std::mem::take(&mut values[i]));
                    if with_meta {
                        late.meta.push(std::mem::take(&mut meta[i]));
                    }
                }
                Err(reason) => {
                    failed = true;
                    let m = if with_meta {
                        std::mem::take(&mut meta[i])
                    } else {
                        base.clone()
                    };
                    (exits.fail)(reason, std::mem::take(&mut values[i]), m);
                }
            }
        }
        if let Some(max) = self.max_time {
            let watermark = max.saturating_sub(self.lateness_ms);
            self.close_until(watermark, &mut emitted);
        }
        if !late.values.is_empty() {
            exits.ports.push((self.late_port, late));
        }
        // The records carry the tokens of the groups they were made of; the events aggregated
        // here live on in their groups' tokens. When an event failed, its batch's tokens go
        // with the records too, so that the error events carry them.
        let mut tokens = std::mem::take(&mut self.emitted_tokens);
        let current = std::mem::take(&mut self.current);
        if failed {
            tokens.absorb(current);
        }
        emitted.shrink_to_fit();
        let mut records = Events::local(emitted);
        records.tokens = tokens;
        // The aggregated events go back to where they were decoded, to be freed there.
        drop(std::mem::replace(events, records));
    }

    /// Adds one event; `Ok(false)` when it is late.
    fn add(
        &mut self,
        event: &Value,
        meta: &Value,
        now_ms: u64,
        emitted: &mut RVec<Value>,
    ) -> Result<bool, EventError> {
        let t = match self.event_time(event, meta)? {
            Some(t) => {
                let watermark = self
                    .max_time
                    .map_or(0, |m| m.saturating_sub(self.lateness_ms));
                if let Window::Time { size_ms, every_ms } = self.window {
                    // The latest window holding t.
                    let last_start = t / every_ms * every_ms;
                    if self.max_time.is_some() && last_start + size_ms <= watermark {
                        return Ok(false);
                    }
                }
                self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
                t
            }
            None => now_ms,
        };
        // The group expressions are taken out while the key borrows them.
        let group_by = std::mem::take(&mut self.group_by);
        let added = self.add_keyed(&group_by, t, event, meta, emitted);
        self.group_by = group_by;
        added
    }

    fn add_keyed(
        &mut self,
        group_by: &[Expr],
        t: u64,
        event: &Value,
        meta: &Value,
        emitted: &mut RVec<Value>,
    ) -> Result<bool, EventError> {
        let values: Vec<Cow<'_, Value>> = group_by
            .iter()
            .zip(&self.group_names)
            .map(|(e, text)| {
                e.eval(event, meta).map_err(|source| EventError::Eval {
                    at: At::GroupBy(text.clone()),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        // `each` entries: their arrays' elements, one key per combination.
        let mut lists: Vec<(usize, &[Value])> = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if !self.group_each[i] {
                continue;
            }
            match v.as_ref() {
                Value::Array(items) => lists.push((i, items.as_slice())),
                other => {
                    return Err(EventError::NotAnArray {
                        text: self.group_names[i].clone(),
                        found: other.type_name(),
                    });
                }
            }
        }
        for spec in &self.emit {
            if let Some(arg) = &spec.arg {
                let v = arg.eval(event, meta).map_err(|source| EventError::Eval {
                    at: At::Field(spec.name.clone()),
                    source,
                })?;
                spec.check(&v)?;
            }
        }
        if lists.is_empty() {
            let key: Vec<Cow<'_, Value>> =
                values.iter().map(|v| Cow::Borrowed(v.as_ref())).collect();
            self.add_key(&key, t, event, meta, emitted);
            return Ok(true);
        }
        if lists.iter().any(|(_, items)| items.is_empty()) {
            // An empty array: the event counts in no group.
            return Ok(true);
        }
        // Every combination of the elements (an odometer over the `each` entries).
        let mut at = vec![0_usize; lists.len()];
        let mut key: Vec<Cow<'_, Value>> =
            values.iter().map(|v| Cow::Borrowed(v.as_ref())).collect();
        loop {
            for ((i, items), &j) in lists.iter().zip(&at) {
                key[*i] = Cow::Borrowed(&items[j]);
            }
            self.add_key(&key, t, event, meta, emitted);
            let mut digit = lists.len();
            loop {
                if digit == 0 {
                    return Ok(true);
                }
                digit -= 1;
                at[digit] += 1;
                if at[digit] < lists[digit].1.len() {
                    break;
                }
                at[digit] = 0;
            }
        }
    }

    /// Adds an event to the group of `key` in every window that holds `t`.
    fn add_key(
        &mut self,
        key: &[Cow<'_, Value>],
        t: u64,
        event: &Value,
        meta: &Value,
        emitted: &mut RVec<Value>,
    ) {
        let hash = key_hash(key);
        match self.window {
            Window::Time { size_ms, every_ms } => {
                let watermark = match self.time {
                    Some(_) => self
                        .max_time
                        .map_or(0, |m| m.saturating_sub(self.lateness_ms)),
                    None => 0,
                };
                // The windows holding t: starts that are multiples of every_ms, in
                // (t - size_ms, t].
                let last = t / every_ms * every_ms;
                let mut start = if t < size_ms {
                    0
                } else {
                    ((t - size_ms) / every_ms + 1) * every_ms
                };
                while start <= last {
                    if self.time.is_none() || start + size_ms > watermark {
                        self.add_to(start, hash, key, event, meta, t, emitted);
                    }
                    start += every_ms;
                }
            }
            Window::Count(n) => {
                let (start, row) = self.add_to(0, hash, key, event, meta, t, emitted);
                let full = self.open.get(&start).is_some_and(|g| g.rows[row].1.n >= n);
                if full {
                    self.emit_row(start, row, false, emitted);
                }
            }
        }
    }

    /// Adds an event to its group in the window starting at `start`; the window and row.
    #[allow(clippy::too_many_arguments)]
    fn add_to(
        &mut self,
        start: u64,
        hash: u64,
        key: &[Cow<'_, Value>],
        event: &Value,
        meta: &Value,
        t: u64,
        emitted: &mut RVec<Value>,
    ) -> (u64, usize) {
        self.seq += 1;
        let found = self.open.get(&start).and_then(|g| g.find(hash, key));
        let row = match found {
            Some(row) => row,
            None => {
                if self.groups >= self.max_groups {
                    self.evict(emitted);
                }
                let slot = Slot {
                    accs: self.emit.iter().map(Emit::start).collect(),
                    seen: 0,
                    first_ms: t,
                    last_ms: t,
                    n: 0,
                    tokens: Tokens::default(),
                    batch: 0,
                };
                self.groups += 1;
                self.open.entry(start).or_default().insert(hash, key, slot)
            }
        };
        let seq = self.seq;
        let Self {
            open,
            emit,
            batch,
            current,
            ..
        } = self;
        let Some(groups) = open.get_mut(&start) else {
            return (start, row);
        };
        let slot = &mut groups.rows[row].1;
        slot.seen = seq;
        if slot.batch != *batch {
            slot.batch = *batch;
            slot.tokens.merge(current);
        }
        slot.n += 1;
        slot.first_ms = slot.first_ms.min(t);
        slot.last_ms = slot.last_ms.max(t);
        for (spec, acc) in emit.iter().zip(slot.accs.iter_mut()) {
            match &spec.arg {
                None => spec.add(acc, None),
                Some(arg) => {
                    if let Ok(v) = arg.eval(event, meta) {
                        spec.add(acc, Some(&v));
                    }
                }
            }
        }
        (start, row)
    }

    /// Emits the least recently seen group early.
    fn evict(&mut self, emitted: &mut RVec<Value>) {
        if let Some((start, row)) = oldest(&self.open) {
            self.evicted += 1;
            self.emit_row(start, row, true, emitted);
        }
    }

    fn emit_row(&mut self, start: u64, row: usize, early: bool, emitted: &mut RVec<Value>) {
        let Some((key, slot)) = take_row(&mut self.open, &mut self.groups, start, row) else {
            return;
        };
        let bounds = match self.window {
            Window::Time { size_ms, .. } => (start, start + size_ms),
            Window::Count(_) => (slot.first_ms, slot.last_ms),
        };
        self.roll_up(0, &key, &slot, emitted);
        self.record(key, slot, bounds, early, emitted);
    }
}

/// The least recently seen group of the open windows: its window's start and its row.
fn oldest(open: &BTreeMap<u64, Groups<Slot>>) -> Option<(u64, usize)> {
    open.iter()
        .flat_map(|(start, g)| {
            g.rows
                .iter()
                .enumerate()
                .map(move |(row, (_, s))| (s.seen, *start, row))
        })
        .min()
        .map(|(_, start, row)| (start, row))
}

/// Takes the group in `row` of the window that starts at `start` out of the open windows (the
/// window goes when it empties), and out of the count of `groups` held.
fn take_row(
    open: &mut BTreeMap<u64, Groups<Slot>>,
    groups: &mut usize,
    start: u64,
    row: usize,
) -> Option<(Vec<Value>, Slot)> {
    let window = open.get_mut(&start)?;
    let taken = window.remove(row);
    if window.is_empty() {
        open.remove(&start);
    }
    *groups -= 1;
    Some(taken)
}

/// Reads a chain of tumbling windows, each a multiple of the one before.
fn chain(levels: &[Value]) -> Result<(Window, Vec<Level>), ConfigError> {
    if levels.len() < 2 {
        return Err(ConfigError::ShortChain);
    }
    let mut sizes: Vec<u64> = Vec::with_capacity(levels.len());
    for (i, level) in levels.iter().enumerate() {
        let at = |source| ConfigError::Window {
            index: i + 1,
            source: Box::new(source),
        };
        let w = match level {
            Value::Object(w) => window(w).map_err(at)?,
            other => {
                return Err(at(ConfigError::Expected {
                    expected: "`{ tumbling_s = S }`",
                    found: other.type_name(),
                }));
            }
        };
        let size_ms = match w {
            Window::Time { size_ms, every_ms } if size_ms == every_ms => size_ms,
            _ => return Err(at(ConfigError::ChainNotTumbling)),
        };
        if let Some(&before_ms) = sizes.last()
            && (size_ms <= before_ms || size_ms % before_ms != 0)
        {
            return Err(at(ConfigError::ChainNotMultiple { size_ms, before_ms }));
        }
        sizes.push(size_ms);
    }
    let first = Window::Time {
        size_ms: sizes[0],
        every_ms: sizes[0],
    };
    let chain = sizes[1..]
        .iter()
        .map(|&size_ms| Level {
            size_ms,
            open: BTreeMap::new(),
            groups: 0,
        })
        .collect();
    Ok((first, chain))
}

fn window(w: &Object) -> Result<Window, ConfigError> {
    let keys: Vec<&str> = w.iter().map(|(k, _)| k).collect();
    let positive_ms = |key: &'static str| -> Result<u64, ConfigError> {
        let ms = millis(seconds(w.get(key).unwrap_or(&Value::Null), key)?);
        if ms == 0 {
            return Err(ConfigError::Must {
                key,
                rule: "be at least 0.001 (one millisecond)",
            });
        }
        Ok(ms)
    };
    match keys.as_slice() {
        ["tumbling_s"] => {
            let ms = positive_ms("tumbling_s")?;
            Ok(Window::Time {
                size_ms: ms,
                every_ms: ms,
            })
        }
        ["tumbling_n"] => match w.get("tumbling_n").and_then(Value::as_u64) {
            Some(n) if n >= 1 => Ok(Window::Count(n)),
            _ => Err(ConfigError::Must {
                key: "tumbling_n",
                rule: "be an integer of at least 1",
            }),
        },
        ["size_s", "every_s"] | ["every_s", "size_s"] => {
            let size_ms = positive_ms("size_s")?;
            let every_ms = positive_ms("every_s")?;
            if every_ms > size_ms {
                return Err(ConfigError::Must {
                    key: "every_s",
                    rule: "not exceed `size_s`",
                });
            }
            if size_ms / every_ms > 100 {
                return Err(ConfigError::TooManyWindows);
            }
            Ok(Window::Time { size_ms, every_ms })
        }
        _ => Err(ConfigError::WindowShape {
            keys: keys.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The estimate of `distinct` after each of `values` (each added twice: a repeat counts
    /// once), at every `every`th value.
    fn distinct_estimates(values: impl Iterator<Item = Value>, every: usize) -> Vec<(usize, u64)> {
        let spec = emit_spec("d", "distinct(event.v)").expect("distinct compiles");
        let mut acc = spec.start();
        let mut out = Vec::new();
        for (i, v) in values.enumerate() {
            spec.add(&mut acc, Some(&v));
            spec.add(&mut acc, Some(&v));
            if (i + 1) % every == 0 {
                let got = spec.result(acc.clone()).as_u64().expect("a count");
                out.push((i + 1, got));
            }
        }
        out
    }

    #[test]
    fn distinct_is_exact_on_small_counts() {
        // (what values, how many)
        type Make = Box<dyn Fn(usize) -> Value>;
        let cases: [(&str, Make); 3] = [
            ("integers", Box::new(|i| Value::from(i as u64))),
            ("strings", Box::new(|i| Value::from(format!("user-{i}")))),
            ("floats", Box::new(|i| Value::F64(i as f64 + 0.5))),
        ];
        for (what, make) in &cases {
            for (n, got) in distinct_estimates((0..128).map(make), 1) {
                assert_eq!(got, n as u64, "{what}: {n} distinct values");
            }
        }
        // 1 and 1.0 are one value, as in `group_by`; null is skipped.
        let got = distinct_estimates(
            [
                Value::from(1_u64),
                Value::F64(1.0),
                Value::Null,
                Value::from("1"),
            ]
            .into_iter(),
            4,
        );
        assert_eq!(got, [(4, 2)]);
    }

    #[test]
    fn distinct_stays_within_its_error_bound_up_to_100_000_values() {
        let mut worst = 0.0_f64;
        for (n, got) in distinct_estimates((1..=100_000_u64).map(Value::from), 100) {
            #[allow(clippy::cast_precision_loss)]
            let error = (got as f64 - n as f64).abs() / n as f64;
            assert!(
                error <= DISTINCT_ERROR,
                "{got} for {n} distinct values: {:.2}% off",
                error * 100.0
            );
            worst = worst.max(error);
        }
        // The estimate is not exact all the way (so this test measures an estimate).
        assert!(worst > 0.0);
    }
}
