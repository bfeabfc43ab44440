//! The `metronome` connector: a source that emits a tick at a fixed interval, like Tremor's
//! metronome.
//!
//! Each tick is an event handed over as a value (no codec decodes it, so the connector needs
//! no `codec`; one given is not used):
//! ```json
//! {"id":0,"ingest_ns":1700000000000000000}
//! ```
//! `ingest_ns` is the wall-clock time the tick was emitted, in nanoseconds since the Unix epoch;
//! `id` counts the ticks emitted, from 0, with no gaps.
//!
//! **Timing.** Ticks follow a fixed grid: tick `k` is due `k × interval_ms` after the first
//! `pull` (so the first tick comes one interval after the source starts), however late the
//! previous one was, so the rate does not drift. `pull` never waits more than 100 ms: when the
//! next tick is further away it sleeps 100 ms and returns `Idle`, so the engine can stop the
//! source at any time. The source never ends by itself (it is never `Exhausted`): pair it with
//! the `exit` connector, or stop the engine, to end a deployment.
//!
//! **Falling behind.** When `pull` comes late (the engine was busy, or backpressure held the
//! source), the late tick is emitted at once, and every further grid point that passed in the
//! meantime is **skipped**: a stalled engine gets one tick, not a burst of them, and the next
//! tick is due at the next grid point still ahead. `id` stays gapless (it counts ticks emitted,
//! not grid points), and `ingest_ns` shows when each tick was really emitted.
//!
//! ## Config
//! - `interval_ms` (integer > 0, required): the time between ticks, in milliseconds.
//!
//! ## Metadata
//! The connector sets none of its own; the engine gives each tick `meta.connector` (the
//! connector's id) and `meta.stream` (0).
//!
//! ## Example
//! Ticks every second, written as JSON lines (the sink's codec encodes them):
//! ```toml
//! [[connector]]
//! id = "tick"
//! plugin = "metronome"
//! config = { interval_ms = 1000 }
//!
//! [[pipeline]]
//! id = "main"
//!
//! [[connector]]
//! id = "out"
//! plugin = "file"
//! codec = "json"
//! postprocessors = ["separate"]
//! config = { path = "ticks.json", mode = "write" }
//!
//! [[connect]]
//! from = "tick"
//! to = "main"
//!
//! [[connect]]
//! from = "main"
//! to = "out"
//! ```

use std::{
    thread,
    time::{Duration, Instant, SystemTime},
};

use temblor_shim::{
    Object, PluginError, Pull, Setup, Source, SourceBatch, Value, serde::Deserialize,
};

/// The longest a `pull` sleeps before it returns `Idle`.
pub const MAX_WAIT: Duration = Duration::from_millis(100);

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// Milliseconds between ticks.
    pub interval_ms: u64,
}

/// What the schedule says at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A tick is due: emit it.
    Tick,
    /// The next tick is due this much later.
    Wait(Duration),
}

/// The grid of due times: tick `k` (from 1) is due at `origin + k * interval`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    interval: Duration,
    origin: Option<Instant>,
    /// The grid index of the next tick.
    next: u64,
}

impl Schedule {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            origin: None,
            next: 1,
        }
    }

    /// When grid point `k` is due (`None`: beyond any clock).
    fn due(&self, origin: Instant, k: u64) -> Option<Instant> {
        let nanos = self.interval.as_nanos().checked_mul(u128::from(k))?;
        origin.checked_add(Duration::from_nanos(u64::try_from(nanos).ok()?))
    }

    /// What to do at `now`; the first call starts the grid.
    fn step(&mut self, now: Instant) -> Step {
        let origin = *self.origin.get_or_insert(now);
        match self.due(origin, self.next) {
            Some(due) if due <= now => Step::Tick,
            Some(due) => Step::Wait(due - now),
            // A tick centuries away: keep waiting.
            None => Step::Wait(Duration::MAX),
        }
    }

    /// A tick was emitted at `now`: the next one is the first grid point after `now` (the
    /// points passed meanwhile are skipped).
    fn ticked(&mut self, now: Instant) {
        let origin = *self.origin.get_or_insert(now);
        let elapsed = now.saturating_duration_since(origin).as_nanos();
        let passed = u64::try_from(elapsed / self.interval.as_nanos()).unwrap_or(u64::MAX);
        self.next = passed.saturating_add(1).max(self.next.saturating_add(1));
    }
}

/// Emits ticks.
#[derive(Debug)]
pub struct Metronome {
    schedule: Schedule,
    /// The id of the next tick.
    id: u64,
}

impl Metronome {
    /// A metronome whose first tick is due one interval after the first pull.
    ///
    /// # Errors
    /// A `Config` error when `interval_ms` is missing or 0, or for an unknown key.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        if config.interval_ms == 0 {
            return Err(PluginError::config(format_args!(
                "`interval_ms` must be at least 1"
            )));
        }
        Ok(Self {
            schedule: Schedule::new(Duration::from_millis(config.interval_ms)),
            id: 0,
        })
    }

    /// Hands over tick `self.id`, stamped with the current time.
    fn tick(&mut self, out: &mut SourceBatch) {
        let ingest_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let tick: Object = [
            ("id", Value::from(self.id)),
            ("ingest_ns", Value::from(ingest_ns)),
        ]
        .into_iter()
        .collect();
        out.push_value(Value::Object(tick), Value::Null);
        self.id += 1;
    }
}

impl Source for Metronome {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        if let Step::Wait(wait) = self.schedule.step(Instant::now()) {
            if wait > MAX_WAIT {
                thread::sleep(MAX_WAIT);
                return Ok(Pull::Idle);
            }
            thread::sleep(wait);
            // Sleep does not wake early, so the tick is due now.
        }
        self.tick(out);
        self.schedule.ticked(Instant::now());
        Ok(Pull::Ready)
    }
}

temblor_shim::export_plugin! {
    name: "metronome",
    kind: Connector,
    source: Metronome::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_harness::config;
    use temblor_shim::{ErrorKind, Value};

    fn metronome(fields: &[(&str, Value)]) -> Result<Metronome, PluginError> {
        Metronome::new(&Setup {
            id: "m",
            config: &config(fields),
        })
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ticks_follow_a_fixed_grid_without_drift() {
        let mut s = Schedule::new(10 * MS);
        let t0 = Instant::now();
        assert_eq!(s.step(t0), Step::Wait(10 * MS));
        assert_eq!(s.step(t0 + 4 * MS), Step::Wait(6 * MS));
        // Emitted 3 ms late: the next one is still due at 20 ms, not 23.
        assert_eq!(s.step(t0 + 13 * MS), Step::Tick);
        s.ticked(t0 + 13 * MS);
        assert_eq!(s.step(t0 + 13 * MS), Step::Wait(7 * MS));
        assert_eq!(s.step(t0 + 20 * MS), Step::Tick);
        s.ticked(t0 + 20 * MS);
        assert_eq!(s.step(t0 + 20 * MS), Step::Wait(10 * MS));
    }

    #[test]
    fn missed_ticks_are_skipped() {
        let mut s = Schedule::new(10 * MS);
        let t0 = Instant::now();
        s.step(t0);
        // 55 ms late: one tick now, the ones due at 20..=50 ms are skipped, next at 60 ms.
        assert_eq!(s.step(t0 + 55 * MS), Step::Tick);
        s.ticked(t0 + 55 * MS);
        assert_eq!(s.step(t0 + 55 * MS), Step::Wait(5 * MS));
        assert_eq!(s.next, 6);
    }

    #[test]
    fn a_tick_on_a_grid_point_schedules_the_next_point() {
        let mut s = Schedule::new(10 * MS);
        let t0 = Instant::now();
        s.step(t0);
        s.ticked(t0 + 10 * MS);
        assert_eq!(s.step(t0 + 10 * MS), Step::Wait(10 * MS));
    }

    #[test]
    fn ticks_are_values_with_consecutive_ids() {
        let mut m = metronome(&[("interval_ms", Value::from(1))]).expect("metronome");
        let mut out = SourceBatch::new();
        let started = Instant::now();
        for _ in 0..3 {
            assert_eq!(m.pull(&mut out).expect("pull"), Pull::Ready);
        }
        assert!(started.elapsed() >= 3 * MS);
        assert!(out.frames().is_empty(), "no frames: nothing for a codec");
        let (ticks, meta) = out.values();
        assert_eq!(ticks.len(), 3);
        assert!(meta.iter().all(|m| *m == Value::Null));
        let mut last_ns = 0;
        for (i, tick) in ticks.iter().enumerate() {
            let fields = tick.as_object().unwrap_or_else(|| panic!("{tick}"));
            assert_eq!(fields.len(), 2, "{tick}");
            assert_eq!(
                tick.get("id").and_then(Value::as_u64),
                Some(i as u64),
                "{tick}"
            );
            let ns = tick
                .get("ingest_ns")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("{tick}"));
            assert!(ns >= last_ns && ns > 1_600_000_000_000_000_000, "{tick}");
            last_ns = ns;
        }
        assert!(
            ticks[0].to_json().starts_with("{\"id\":0,\"ingest_ns\":"),
            "{}",
            ticks[0]
        );
    }

    #[test]
    fn a_far_tick_makes_pull_idle_within_100_ms() {
        let mut m = metronome(&[("interval_ms", Value::from(60_000))]).expect("metronome");
        let mut out = SourceBatch::new();
        let started = Instant::now();
        assert_eq!(m.pull(&mut out).expect("pull"), Pull::Idle);
        let took = started.elapsed();
        assert!(took >= 90 * MS && took < 1000 * MS, "{took:?}");
        assert!(out.is_empty());
    }

    #[test]
    fn bad_configs_are_config_errors() {
        for (config, needle) in [
            (vec![("interval_ms", Value::from(0))], "at least 1"),
            (vec![], "interval_ms"),
            (vec![("interval_ms", Value::from(-5))], "-5"),
            (
                vec![
                    ("interval_ms", Value::from(5)),
                    ("interval", Value::from(5)),
                ],
                "unknown field `interval`",
            ),
        ] {
            let err = metronome(&config).expect_err("refused");
            assert_eq!(err.kind, ErrorKind::Config, "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
    }
}
