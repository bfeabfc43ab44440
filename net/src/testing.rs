//! What the tests of the network connectors share (feature `testing`, which they turn on as a
//! dev-dependency): building a connector from a bad config, and counting the engine's
//! wake-ups.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use temblor_shim::{ErrorKind, Notify, PluginError, Pull, Setup, Source, SourceBatch, Value, Wake};

/// Builds an instance with `new` from the config `fields` and checks that it is refused with a
/// `Config` error naming `needle` (and not the connector's id: the engine adds that). The
/// error, for more checks.
///
/// # Panics
/// When the config is accepted, or the error is another one.
pub fn refused<T>(
    new: impl FnOnce(&Setup<'_>) -> Result<T, PluginError>,
    fields: &[(&str, Value)],
    needle: &str,
) -> PluginError {
    let config = Value::Object(fields.iter().cloned().collect());
    let Err(err) = new(&Setup {
        id: "refused-id",
        config: &config,
    }) else {
        panic!("{config} was accepted");
    };
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains(needle), "{needle}: {err}");
    assert!(
        !err.message.contains("refused-id"),
        "the engine names the connector: {err}"
    );
    err
}

/// Counts the engine's wake-ups.
#[derive(Debug, Default)]
pub struct Wakes(AtomicUsize);

impl Wakes {
    /// A counter and the `Notify` that counts into it.
    #[must_use]
    pub fn notify() -> (Arc<Self>, Notify) {
        let wakes = Arc::new(Self::default());
        let notify = Notify::new(Arc::clone(&wakes));
        (wakes, notify)
    }

    /// The wake-ups so far.
    #[must_use]
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Wakes {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Hands the engine's wake-up to `source`, then pulls twenty times with nothing there: each
/// pull says `Idle` at once (without the wake-up each would wait about 100 ms), nothing is
/// handed over and nobody wakes. The counter, for what follows.
///
/// # Panics
/// When a pull fails, waits, or hands something over, or something woke the engine.
pub fn idle_pulls_never_wait(source: &mut impl Source) -> Arc<Wakes> {
    let (wakes, notify) = Wakes::notify();
    assert!(source.set_notify(notify));
    let mut batch = SourceBatch::new();
    let begin = Instant::now();
    for _ in 0..20 {
        assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Idle);
    }
    assert!(
        begin.elapsed() < Duration::from_secs(1),
        "{:?}",
        begin.elapsed()
    );
    assert!(batch.is_empty());
    assert_eq!(wakes.count(), 0, "nothing arrived, nobody woke");
    wakes
}

/// Without the engine's wake-up, a pull with nothing there waits about 100 ms, then says
/// `Idle`.
///
/// # Panics
/// When it fails, waits less than 90 ms or a second or more, or hands something over.
pub fn an_idle_pull_waits_about_100_ms(source: &mut impl Source) {
    let mut batch = SourceBatch::new();
    let begin = Instant::now();
    assert_eq!(source.pull(&mut batch).expect("pull"), Pull::Idle);
    assert!(begin.elapsed() >= Duration::from_millis(90));
    assert!(begin.elapsed() < Duration::from_secs(1));
    assert!(batch.is_empty());
}

/// Checks that `new` refuses each bad retry setting (`backoff_ms` 0, `max_backoff_ms` under
/// `backoff_ms`, `timeout_ms` 0) with an error naming it, the rest of the config being `base`.
///
/// # Panics
/// As [`refused`].
pub fn refuses_bad_retry_settings<T>(
    new: impl Fn(&Setup<'_>) -> Result<T, PluginError>,
    base: &[(&str, Value)],
) {
    for (bad, field) in [
        (&[("backoff_ms", 0_u64)][..], "backoff_ms"),
        (
            &[("backoff_ms", 10), ("max_backoff_ms", 5)],
            "max_backoff_ms",
        ),
        (&[("timeout_ms", 0)], "timeout_ms"),
    ] {
        let mut fields = base.to_vec();
        fields.extend(bad.iter().map(|&(k, v)| (k, Value::from(v))));
        refused(&new, &fields, field);
    }
}
