//! The `bucket` operator (Tremor's `grouper::bucket`): at most `rate` events per
//! `time_range_s` per (class, dimension), over a sliding window of `windows` slots; the rest go
//! to the `overflow` port. See `docs/pipeline.md`.

use std::{borrow::Cow, time::Instant};

use temblor_shim::{Object, Value};

use super::{
    Events,
    aggregate::{Groups, key_hash, max_groups},
    error::{ConfigError, EventError, at_key, known_keys, optional_expression},
    expr::{Expr, NULL, int_of},
    ops::{Exits, Fate, sort_events},
    parse::parse_expr,
};

/// The counts of one (class, dimension).
#[derive(Debug, Clone)]
struct Limiter {
    /// Events per slot, a ring.
    counts: Vec<u64>,
    /// Their sum.
    total: u64,
    /// The absolute index of the newest slot.
    slot: u64,
    /// When it was last seen (a sequence number), for eviction.
    seen: u64,
}

impl Limiter {
    /// Moves the window on to slot `now`, forgetting the slots that fell out of it.
    fn advance(&mut self, now: u64) {
        let n = self.counts.len() as u64;
        if now <= self.slot {
            return;
        }
        if now - self.slot >= n {
            self.counts.iter_mut().for_each(|c| *c = 0);
            self.total = 0;
        } else {
            for s in self.slot + 1..=now {
                let at = usize::try_from(s % n).unwrap_or(0);
                self.total -= self.counts[at];
                self.counts[at] = 0;
            }
        }
        self.slot = now;
    }
}

/// The `bucket` operator.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    class: Expr,
    rate: Expr,
    dimension: Option<Expr>,
    /// One slot's length, in nanoseconds.
    slot_ns: u128,
    windows: usize,
    overflow_port: usize,
    max_groups: usize,
    start: Option<Instant>,
    table: Groups<Limiter>,
    seq: u64,
    /// Limiters dropped because `max_groups` was reached.
    pub(crate) evicted: u64,
}

impl Bucket {
    /// Reads `bucket = { ... }`; `overflow_port` gives the index of the `overflow` port.
    pub(crate) fn compile(t: &Object, overflow_port: usize) -> Result<Self, ConfigError> {
        const KEYS: &[&str] = &[
            "class",
            "rate",
            "dimension",
            "time_range_s",
            "windows",
            "max_groups",
        ];
        known_keys(t, "bucket", KEYS)?;
        let expr = |key| optional_expression(t, (key, "is an expression string"), parse_expr);
        let class = expr("class")?.unwrap_or_else(|| {
            Expr::Path(super::expr::Path::new(
                super::expr::Root::Meta,
                vec![super::expr::Segment::Key("class".to_owned())],
            ))
        });
        let rate = expr("rate")?.ok_or(ConfigError::Required {
            key: "rate",
            hint: "an expression, such as 'meta.rate'",
        })?;
        let dimension = expr("dimension")?;
        let range_s = match t.get("time_range_s") {
            None => 1.0,
            Some(v) => match super::expr::float_of(v) {
                Some(s) if s > 0.0 && s.is_finite() => s,
                _ => {
                    return Err(ConfigError::Must {
                        key: "time_range_s",
                        rule: "be a number of seconds above 0",
                    });
                }
            },
        };
        let windows = match t.get("windows") {
            None => 100,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=10_000).contains(&n) => usize::try_from(n).unwrap_or(100),
                _ => {
                    return Err(ConfigError::Must {
                        key: "windows",
                        rule: "be an integer from 1 to 10000",
                    });
                }
            },
        };
        let max_groups = max_groups(t)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let range_ns = (range_s * 1e9) as u128;
        let slot_ns = (range_ns / windows as u128).max(1);
        Ok(Self {
            class,
            rate,
            dimension,
            slot_ns,
            windows,
            overflow_port,
            max_groups,
            start: None,
            table: Groups::default(),
            seq: 0,
            evicted: 0,
        })
    }

    pub(crate) fn start(&mut self, now: Instant) {
        self.start = Some(now);
    }

    /// An estimate of the bytes the limiters hold.
    pub(crate) fn state_bytes(&self) -> usize {
        self.table
            .bytes(|l| size_of::<Limiter>() + l.counts.len() * size_of::<u64>())
    }

    /// Limiters held.
    pub(crate) fn groups(&self) -> usize {
        self.table.len()
    }

    /// Passes the events within their class's rate, moves the others to `overflow`.
    pub(crate) fn apply(&mut self, events: &mut Events, now: Instant, exits: &mut Exits<'_>) {
        let start = *self.start.get_or_insert(now);
        let slot = u64::try_from(now.saturating_duration_since(start).as_nanos() / self.slot_ns)
            .unwrap_or(u64::MAX);
        let overflow = Fate::Port(self.overflow_port);
        sort_events(events, exits, |e, m| {
            Ok(if self.admit(e, m, slot)? {
                Fate::Keep
            } else {
                overflow
            })
        });
    }

    /// Whether the event is within its rate (and counts it).
    fn admit(&mut self, event: &Value, meta: &Value, slot: u64) -> Result<bool, EventError> {
        let rate = self.rate.eval(event, meta).map_err(at_key("rate"))?;
        let rate = match rate.as_ref() {
            Value::Null => return Ok(true),
            v => match int_of(v) {
                Some(r) if r >= 0 => u64::try_from(r).unwrap_or(u64::MAX),
                _ => {
                    return Err(EventError::Rate {
                        found: v.type_name(),
                    });
                }
            },
        };
        let class = self.class.eval(event, meta).map_err(at_key("class"))?;
        let dimension = match &self.dimension {
            Some(d) => d.eval(event, meta).map_err(at_key("dimension"))?,
            None => Cow::Borrowed(&NULL),
        };
        let key = [class, dimension];
        let hash = key_hash(&key);
        self.seq += 1;
        let row = match self.table.find(hash, &key) {
            Some(row) => row,
            None => {
                if self.table.len() >= self.max_groups {
                    // Forget the least recently seen (class, dimension).
                    if let Some((row, _)) = self
                        .table
                        .rows
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, l))| l.seen)
                    {
                        self.table.remove(row);
                        self.evicted += 1;
                    }
                }
                let limiter = Limiter {
                    counts: vec![0; self.windows],
                    total: 0,
                    slot,
                    seen: 0,
                };
                self.table.insert(hash, &key, limiter)
            }
        };
        let limiter = &mut self.table.rows[row].1;
        limiter.seen = self.seq;
        limiter.advance(slot);
        if limiter.total >= rate {
            return Ok(false);
        }
        let at = usize::try_from(slot % limiter.counts.len() as u64).unwrap_or(0);
        limiter.counts[at] += 1;
        limiter.total += 1;
        Ok(true)
    }
}
