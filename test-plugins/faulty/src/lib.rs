//! `faulty`: a connector for the engine's fault tests, never shipped. It is a source and a
//! sink, and fails on purpose where its config says: in its constructors, in `pull`, in
//! `push`; its sink can also be slow.
//!
//! **Source.** Emits the frames `1`, `2`, ... `lines` (ASCII decimal, one frame per line
//! number, `batch` frames per pull), then says `Exhausted` (with the last frames). With
//! `panic_pull_at = K`, the pull that would emit line K panics instead, before emitting
//! anything; `fail_pull_at = K` makes it return an `Io` error instead.
//!
//! **Sink.** Appends each frame and a `\n` to `path` (when given; without it, frames are
//! discarded), buffered: written through on `flush` and when the sink is dropped. The first
//! `panic_push_times` pushes panic, the next `fail_push_times` pushes return an `Io` error, both
//! before writing anything. `delay_ms` makes every push sleep first (a slow sink).
//!
//! **Counters are per process and per connector id**, not per instance: the number of lines
//! emitted, and how many pulls and pushes have failed so far, live in process-global statics
//! keyed by the connector's id. A source the engine builds again after a failure goes on after
//! the last line emitted by the failed one (nothing is emitted twice, nothing is skipped), and
//! the failures happen only as many times as configured in the whole process, however many
//! instances the engine builds. Source and sink counters are kept apart.
//!
//! ## Config
//! Every key is optional.
//! - `fail_new` (`"error"` or `"panic"`): the source and sink constructors return an error
//!   (kind `Other`) or panic, naming the connector id.
//! - `lines` (integer, default 1000): how many lines the source emits.
//! - `batch` (integer ≥ 1, default 100): frames per pull.
//! - `panic_pull_at` (integer ≥ 1): the pull that would emit this line panics instead;
//!   `panic_pull_times` (default 1) times in this process.
//! - `fail_pull_at` (integer ≥ 1): the pull that would emit this line returns an `Io` error
//!   instead; `fail_pull_times` (default 1) times in this process. When both are at the same
//!   line, the panics come first.
//! - `path` (string): the sink appends each frame and `\n` to this file (created if missing).
//! - `panic_push_times` (integer, default 0): the first pushes (in this process, for this id)
//!   that panic.
//! - `fail_push_times` (integer, default 0): the pushes after those that return an `Io` error.
//! - `delay_ms` (integer, default 0): every push sleeps this long first.
//!
//! A `*_times` key without its `*_at` is refused, and so is `batch = 0` or a `*_at` of 0.
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "in"
//! plugin = "faulty"
//! config = { lines = 5000, panic_pull_at = 2500, panic_pull_times = 2 }
//!
//! [[connector]]
//! id = "out"
//! plugin = "faulty"
//! config = { path = "out.txt", fail_push_times = 3, delay_ms = 5 }
//! ```

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::{File, OpenOptions},
    io::{BufWriter, Write as _},
    path::PathBuf,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use temblor_shim::{
    ErrorKind, Frames, PluginError, Pull, Setup, Sink, Source, SourceBatch, serde::Deserialize,
    tracing,
};

/// What the constructors do instead of building.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", rename_all = "lowercase")]
pub enum FailNew {
    /// Return an error.
    Error,
    /// Panic.
    Panic,
}

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// Whether the constructors fail, and how.
    #[serde(default)]
    pub fail_new: Option<FailNew>,
    /// How many lines the source emits.
    #[serde(default = "default_lines")]
    pub lines: u64,
    /// Frames per pull.
    #[serde(default = "default_batch")]
    pub batch: u64,
    /// The pull that would emit this line panics instead.
    #[serde(default)]
    pub panic_pull_at: Option<u64>,
    /// How many times, in this process.
    #[serde(default)]
    pub panic_pull_times: Option<u64>,
    /// The pull that would emit this line returns an error instead.
    #[serde(default)]
    pub fail_pull_at: Option<u64>,
    /// How many times, in this process.
    #[serde(default)]
    pub fail_pull_times: Option<u64>,
    /// The file the sink appends to.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The first pushes that panic.
    #[serde(default)]
    pub panic_push_times: u64,
    /// The pushes after those that return an error.
    #[serde(default)]
    pub fail_push_times: u64,
    /// Milliseconds every push sleeps first.
    #[serde(default)]
    pub delay_ms: u64,
}

fn default_lines() -> u64 {
    1000
}

fn default_batch() -> u64 {
    100
}

impl Config {
    /// Reads and checks the config, and fails on purpose when `fail_new` says so.
    fn read(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Self = setup.config()?;
        let id = setup.id;
        let bad = |message: String| Err(PluginError::config(format_args!("'{id}': {message}")));
        if config.batch == 0 {
            return bad("`batch` must be at least 1".to_owned());
        }
        for (at, times, at_key, times_key) in [
            (
                config.panic_pull_at,
                config.panic_pull_times,
                "panic_pull_at",
                "panic_pull_times",
            ),
            (
                config.fail_pull_at,
                config.fail_pull_times,
                "fail_pull_at",
                "fail_pull_times",
            ),
        ] {
            if at == Some(0) {
                return bad(format!("`{at_key}` is a line number, at least 1"));
            }
            if at.is_none() && times.is_some() {
                return bad(format!("`{times_key}` needs `{at_key}`"));
            }
        }
        match config.fail_new {
            None => Ok(config),
            Some(FailNew::Error) => Err(PluginError::new(
                ErrorKind::Other,
                format_args!("'{id}': fail_new = \"error\": the constructor fails on purpose"),
            )),
            Some(FailNew::Panic) => {
                panic!("'{id}': fail_new = \"panic\": the constructor panics on purpose")
            }
        }
    }
}

/// What one connector id has done so far in this process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// The last line the source emitted (0: none yet).
    pub emitted: u64,
    /// Pulls that panicked.
    pub pull_panics: u64,
    /// Pulls that returned an error.
    pub pull_failures: u64,
    /// Pushes that panicked.
    pub push_panics: u64,
    /// Pushes that returned an error.
    pub push_failures: u64,
}

/// The counters of every connector id, for the whole process.
static COUNTERS: Mutex<BTreeMap<String, Counters>> = Mutex::new(BTreeMap::new());

/// Runs `f` on the counters of `id`. Never panics while holding the lock.
fn with_counters<T>(id: &str, f: impl FnOnce(&mut Counters) -> T) -> T {
    let mut all = COUNTERS.lock().unwrap_or_else(PoisonError::into_inner);
    f(all.entry(id.to_owned()).or_default())
}

/// The counters of `id` so far (all zero when it has done nothing).
#[must_use]
pub fn counters(id: &str) -> Counters {
    with_counters(id, |c| *c)
}

/// The `faulty` source.
#[derive(Debug)]
pub struct FaultySource {
    id: String,
    config: Config,
}

impl FaultySource {
    /// Builds the source, unless `fail_new` says otherwise.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Other` error with `fail_new = "error"`.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config = Config::read(setup)?;
        Ok(Self {
            id: setup.id.to_owned(),
            config,
        })
    }
}

/// Whether this pull, which would emit `lines`, fails at `at` once more (the counter
/// `done` counts the failures so far and is advanced when it does).
fn fails_now(at: Option<u64>, times: Option<u64>, lines: (u64, u64), done: &mut u64) -> bool {
    let Some(at) = at else { return false };
    if !(lines.0..=lines.1).contains(&at) || *done >= times.unwrap_or(1) {
        return false;
    }
    *done += 1;
    true
}

/// A fault due now: the how-manyth of how many, by kind.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Panic(u64, u64),
    Fail(u64, u64),
}

/// Acts `fault` out for instance `id`: panics, or returns an `Io` error, saying what `doing`
/// says was being done and which time of how many this is.
fn act(fault: Option<Fault>, id: &str, doing: impl Fn(Fault) -> String) -> Result<(), PluginError> {
    match fault {
        None => Ok(()),
        Some(f @ Fault::Panic(n, of)) => {
            panic!("'{id}': {} panics on purpose ({n} of {of})", doing(f))
        }
        Some(f @ Fault::Fail(n, of)) => Err(PluginError::new(
            ErrorKind::Io,
            format_args!("'{id}': {} fails on purpose ({n} of {of})", doing(f)),
        )),
    }
}

impl Source for FaultySource {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        let c = &self.config;
        let first = counters(&self.id).emitted + 1;
        if first > c.lines {
            return Ok(Pull::Exhausted);
        }
        let last = c.lines.min(first.saturating_add(c.batch - 1));
        let fault = with_counters(&self.id, |n| {
            if fails_now(
                c.panic_pull_at,
                c.panic_pull_times,
                (first, last),
                &mut n.pull_panics,
            ) {
                Some(Fault::Panic(n.pull_panics, c.panic_pull_times.unwrap_or(1)))
            } else if fails_now(
                c.fail_pull_at,
                c.fail_pull_times,
                (first, last),
                &mut n.pull_failures,
            ) {
                Some(Fault::Fail(n.pull_failures, c.fail_pull_times.unwrap_or(1)))
            } else {
                None
            }
        });
        act(fault, &self.id, |f| {
            let (key, at) = match f {
                Fault::Panic(..) => ("panic_pull_at", c.panic_pull_at),
                Fault::Fail(..) => ("fail_pull_at", c.fail_pull_at),
            };
            format!(
                "{key} = {}: pull of lines {first}..={last}",
                at.unwrap_or_default()
            )
        })?;
        let mut digits = String::with_capacity(20);
        for line in first..=last {
            digits.clear();
            let _ = write!(digits, "{line}");
            out.push(digits.as_bytes());
        }
        with_counters(&self.id, |n| n.emitted = last);
        if last == c.lines {
            tracing::info!(id = %self.id, lines = c.lines, "faulty source exhausted");
            Ok(Pull::Exhausted)
        } else {
            Ok(Pull::Ready)
        }
    }
}

/// The `faulty` sink.
#[derive(Debug)]
pub struct FaultySink {
    id: String,
    config: Config,
    file: Option<BufWriter<File>>,
}

impl FaultySink {
    /// Builds the sink (opening `path` for appending), unless `fail_new` says otherwise.
    ///
    /// # Errors
    /// A `Config` error for a bad config; an `Other` error with `fail_new = "error"`; an `Io`
    /// error naming the path when it cannot be opened.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config = Config::read(setup)?;
        let id = setup.id;
        let file = match &config.path {
            None => None,
            Some(path) => Some(BufWriter::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        PluginError::io(format_args!("'{id}': cannot open {}", path.display()), &e)
                    })?,
            )),
        };
        Ok(Self {
            id: id.to_owned(),
            config,
            file,
        })
    }

    fn write_error(&self, e: &std::io::Error) -> PluginError {
        let path = self.config.path.as_deref().unwrap_or_else(|| "".as_ref());
        PluginError::io(
            format_args!("'{}': cannot write {}", self.id, path.display()),
            e,
        )
    }
}

impl Sink for FaultySink {
    fn push(&mut self, frames: &Frames) -> Result<(), PluginError> {
        let c = &self.config;
        if c.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(c.delay_ms));
        }
        let fault = with_counters(&self.id, |n| {
            if n.push_panics < c.panic_push_times {
                n.push_panics += 1;
                Some(Fault::Panic(n.push_panics, c.panic_push_times))
            } else if n.push_failures < c.fail_push_times {
                n.push_failures += 1;
                Some(Fault::Fail(n.push_failures, c.fail_push_times))
            } else {
                None
            }
        });
        act(fault, &self.id, |_| {
            format!("push of {} frames", frames.len())
        })?;
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let written = frames
            .iter()
            .try_for_each(|frame| file.write_all(frame).and_then(|()| file.write_all(b"\n")));
        written.map_err(|e| self.write_error(&e))
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let flushed = file.flush();
        flushed.map_err(|e| self.write_error(&e))
    }
}

impl Drop for FaultySink {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(id = %self.id, error = %e, "faulty sink: flushing on drop failed");
        }
    }
}

temblor_shim::export_plugin! {
    name: "faulty",
    kind: Connector,
    source: FaultySource::new,
    sink: FaultySink::new,
}

#[cfg(test)]
mod tests {
    use temblor_shim::{
        Object, Value,
        abi_stable::std_types::{RResult, RStr},
    };

    use super::*;

    /// The error of a constructor that must fail (its objects cannot be printed).
    fn error_of<T>(result: RResult<T, PluginError>) -> PluginError {
        match result {
            RResult::ROk(_) => panic!("the constructor succeeded"),
            RResult::RErr(e) => e,
        }
    }

    fn config(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().cloned().collect::<Object>())
    }

    fn source(id: &str, fields: &[(&str, Value)]) -> Result<FaultySource, PluginError> {
        FaultySource::new(&Setup {
            id,
            config: &config(fields),
        })
    }

    /// Pulls until exhausted or `max` pulls; the frames as numbers.
    fn drain(source: &mut FaultySource, max: usize) -> (Vec<u64>, Option<Pull>) {
        let mut got = Vec::new();
        let mut last = None;
        for _ in 0..max {
            let mut frames = SourceBatch::new();
            let pull = source.pull(&mut frames).expect("pull");
            got.extend(
                frames
                    .iter()
                    .map(|f| std::str::from_utf8(f).unwrap().parse::<u64>().unwrap()),
            );
            last = Some(pull);
            if pull == Pull::Exhausted {
                break;
            }
        }
        (got, last)
    }

    #[test]
    fn defaults() {
        let c: Config = temblor_shim::from_value(&config(&[])).unwrap();
        assert_eq!(c.lines, 1000);
        assert_eq!(c.batch, 100);
        assert_eq!(c.fail_new, None);
        assert_eq!(c.path, None);
        assert_eq!(
            (c.panic_push_times, c.fail_push_times, c.delay_ms),
            (0, 0, 0)
        );
    }

    #[test]
    fn the_source_emits_numbered_lines_in_batches_then_ends() {
        let mut s = source(
            "emit",
            &[("lines", Value::from(250_u64)), ("batch", 100_u64.into())],
        )
        .unwrap();
        let mut frames = SourceBatch::new();
        assert_eq!(s.pull(&mut frames).unwrap(), Pull::Ready);
        assert_eq!(frames.len(), 100);
        assert_eq!(frames.get(0), Some(&b"1"[..]));
        assert_eq!(frames.get(99), Some(&b"100"[..]));
        let (rest, last) = drain(&mut s, 10);
        assert_eq!(rest, (101..=250).collect::<Vec<_>>());
        assert_eq!(last, Some(Pull::Exhausted));
        frames.clear();
        assert_eq!(s.pull(&mut frames).unwrap(), Pull::Exhausted);
        assert!(frames.is_empty());
        assert_eq!(counters("emit").emitted, 250);
    }

    #[test]
    fn a_pull_panics_before_emitting_and_a_new_instance_goes_on() {
        let fields = [
            ("lines", Value::from(1000_u64)),
            ("panic_pull_at", 250_u64.into()),
            ("panic_pull_times", 2_u64.into()),
        ];
        let cfg = config(&fields);
        let module = plugin_module();
        let mut got = Vec::new();
        let mut panics = Vec::new();
        // Through the ABI, as the engine calls it: the panic is caught and comes back as an
        // error; every failed instance is replaced by a new one.
        'instances: for _ in 0..5 {
            let mut s = module.new_source()(RStr::from("panics"), &cfg).unwrap();
            loop {
                let mut frames = SourceBatch::new();
                match s.pull(&mut frames).into_result() {
                    Ok(pull) => {
                        got.extend(
                            frames
                                .iter()
                                .map(|f| std::str::from_utf8(f).unwrap().parse::<u64>().unwrap()),
                        );
                        if pull == Pull::Exhausted {
                            break 'instances;
                        }
                    }
                    Err(e) => {
                        assert!(frames.is_empty(), "nothing emitted by a failed pull");
                        panics.push(e);
                        continue 'instances;
                    }
                }
            }
        }
        assert_eq!(got, (1..=1000).collect::<Vec<_>>(), "no gap, no duplicate");
        assert_eq!(panics.len(), 2, "{panics:?}");
        for e in &panics {
            assert_eq!(e.kind, ErrorKind::Panic);
            assert!(
                e.message
                    .contains("'panics': panic_pull_at = 250: pull of lines 201..=300"),
                "{e}"
            );
        }
        assert_eq!(counters("panics").pull_panics, 2);
    }

    #[test]
    fn a_pull_fails_with_an_io_error_as_often_as_configured() {
        let mut s = source(
            "fails",
            &[
                ("lines", Value::from(30_u64)),
                ("batch", 10_u64.into()),
                ("fail_pull_at", 15_u64.into()),
                ("fail_pull_times", 3_u64.into()),
            ],
        )
        .unwrap();
        let mut frames = SourceBatch::new();
        s.pull(&mut frames).unwrap();
        for n in 1..=3 {
            let mut none = SourceBatch::new();
            let e = s.pull(&mut none).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Io);
            assert!(e.message.contains(&format!("({n} of 3)")), "{e}");
            assert!(none.is_empty());
        }
        let (rest, last) = drain(&mut s, 10);
        assert_eq!(rest, (11..=30).collect::<Vec<_>>());
        assert_eq!(last, Some(Pull::Exhausted));
    }

    #[test]
    fn bad_configs_are_refused_with_the_key() {
        for (fields, needle) in [
            (vec![("batch", Value::from(0_u64))], "batch"),
            (vec![("panic_pull_at", Value::from(0_u64))], "panic_pull_at"),
            (
                vec![("fail_pull_times", Value::from(2_u64))],
                "needs `fail_pull_at`",
            ),
            (
                vec![("panic_pull_times", Value::from(2_u64))],
                "needs `panic_pull_at`",
            ),
            (vec![("nosuch", Value::from(1_u64))], "nosuch"),
            (vec![("fail_new", Value::from("sometimes"))], "sometimes"),
        ] {
            let e = source("bad", &fields).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(e.message.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn fail_new_fails_or_panics_in_both_constructors() {
        let module = plugin_module();
        let error = config(&[("fail_new", Value::from("error"))]);
        let e = error_of(module.new_source()(RStr::from("ctor"), &error));
        assert_eq!(e.kind, ErrorKind::Other);
        assert!(
            e.message
                .contains("'ctor': fail_new = \"error\": the constructor fails on purpose"),
            "{e}"
        );
        let e = error_of(module.new_sink()(RStr::from("ctor"), &error));
        assert_eq!(e.kind, ErrorKind::Other);
        let panic = config(&[("fail_new", Value::from("panic"))]);
        for e in [
            error_of(module.new_source()(RStr::from("ctor"), &panic)),
            error_of(module.new_sink()(RStr::from("ctor"), &panic)),
        ] {
            assert_eq!(e.kind, ErrorKind::Panic);
            assert!(
                e.message
                    .contains("'ctor': fail_new = \"panic\": the constructor panics on purpose"),
                "{e}"
            );
        }
    }

    fn temp_file(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("temblor-faulty-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn the_sink_appends_lines_and_fails_first_as_configured() {
        let path = temp_file("sink");
        std::fs::write(&path, "0\n").unwrap();
        let cfg = config(&[
            ("path", Value::from(path.display().to_string())),
            ("panic_push_times", 1_u64.into()),
            ("fail_push_times", 2_u64.into()),
        ]);
        let module = plugin_module();
        let batch = |lines: &[&str]| -> Frames { lines.iter().map(|l| l.as_bytes()).collect() };
        let mut sink = module.new_sink()(RStr::from("sink"), &cfg).unwrap();
        let e = sink.push(&batch(&["a"])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Panic, "{e}");
        assert!(
            e.message
                .contains("'sink': push of 1 frames panics on purpose (1 of 1)"),
            "{e}"
        );
        // A new instance: the counters are per id, not per instance.
        drop(sink);
        let mut sink = module.new_sink()(RStr::from("sink"), &cfg).unwrap();
        for n in 1..=2 {
            let e = sink.push(&batch(&["a"])).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Io, "{e}");
            assert!(e.message.contains(&format!("({n} of 2)")), "{e}");
        }
        sink.push(&batch(&["1", "2"])).unwrap();
        sink.push(&batch(&["3"])).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n1\n2\n3\n",
            "nothing written by failed pushes; appended to what was there"
        );
        sink.push(&batch(&["4"])).unwrap();
        drop(sink);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n1\n2\n3\n4\n",
            "flushed when dropped"
        );
        let c = counters("sink");
        assert_eq!((c.push_panics, c.push_failures), (1, 2));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_slow_sink_sleeps_on_every_push() {
        let mut sink = FaultySink::new(&Setup {
            id: "slow",
            config: &config(&[("delay_ms", Value::from(30_u64))]),
        })
        .unwrap();
        let frames: Frames = [&b"x"[..]].into_iter().collect();
        let begin = std::time::Instant::now();
        for _ in 0..3 {
            sink.push(&frames).unwrap();
        }
        assert!(
            begin.elapsed() >= Duration::from_millis(90),
            "{:?}",
            begin.elapsed()
        );
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_path() {
        let e = FaultySink::new(&Setup {
            id: "nodir",
            config: &config(&[("path", Value::from("/no/such/dir/out.txt"))]),
        })
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        assert!(
            e.message
                .contains("'nodir': cannot open /no/such/dir/out.txt"),
            "{e}"
        );
    }
}
