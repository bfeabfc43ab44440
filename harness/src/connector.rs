//! Compliance checks for connector plugins: [`compliance`] in one call, the single checks it
//! is made of, and [`Streams`], what a source hands over by stream.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use temblor_shim::{
    ErrorKind, Frames, Notify, PluginError, Pull, RVec, SourceBatch, Value, Wake,
    abi::{PluginKind, PluginModRef, SHIM_INTERFACE_VERSION, SinkBox, SourceBox},
    abi_stable::std_types::{RResult, RSlice, RStr},
};

use crate::with_unknown_key;

/// The manifest says connector, with a name and the shim's interface version.
///
/// # Panics
/// When it does not.
pub fn manifest(module: PluginModRef, name: &str) {
    is_a_connector(module);
    assert_eq!(module.manifest()().name.as_str(), name, "the plugin's name");
}

/// The manifest says connector, of this shim's interface, with a name.
fn is_a_connector(module: PluginModRef) {
    let manifest = module.manifest()();
    assert_eq!(
        manifest.kind,
        PluginKind::Connector,
        "the manifest says connector"
    );
    assert!(!manifest.name.is_empty(), "the plugin has a name");
    assert_eq!(manifest.shim_interface, SHIM_INTERFACE_VERSION);
}

/// Builds a source.
///
/// # Errors
/// The plugin's error.
pub fn source(module: PluginModRef, config: &Value) -> Result<SourceBox, PluginError> {
    module.new_source()(RStr::from_str("compliance"), config).into_result()
}

/// Builds a sink.
///
/// # Errors
/// The plugin's error.
pub fn sink(module: PluginModRef, config: &Value) -> Result<SinkBox, PluginError> {
    module.new_sink()(RStr::from_str("compliance"), config).into_result()
}

/// Pulls until `want` frames arrived, the source is exhausted, or `timeout` passed; returns
/// the frames and whether the source said it was exhausted. Each pull must come back within
/// about 100 ms (a little more is tolerated), so the engine can stop a source.
///
/// # Panics
/// When a pull fails or blocks too long.
pub fn pull_frames(source: &mut SourceBox, want: usize, timeout: Duration) -> (Vec<Vec<u8>>, bool) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut frames = SourceBatch::new();
    while got.len() < want && started.elapsed() < timeout {
        frames.reset(0);
        let pull_started = Instant::now();
        let pulled = source.pull_batch(&mut frames);
        assert!(
            pull_started.elapsed() < Duration::from_secs(2),
            "a pull blocked for {:?}",
            pull_started.elapsed()
        );
        got.extend(frames.iter().map(<[u8]>::to_vec));
        match pulled {
            RResult::ROk(Pull::Exhausted) => return (got, true),
            RResult::ROk(Pull::Ready | Pull::Idle) => {}
            RResult::RErr(e) => panic!("pull failed: {e}"),
        }
    }
    (got, false)
}

/// Pulls under delivery `token` (as the engine does for a source that wants acks) until `want`
/// frames arrived or `timeout` passed; returns each frame with its stream's metadata. Sleeps
/// 10 ms after an empty pull.
///
/// # Panics
/// When a pull fails.
pub fn pull_with_meta(
    source: &mut SourceBox,
    token: u64,
    want: usize,
    timeout: Duration,
) -> Vec<(Vec<u8>, Value)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut batch = SourceBatch::new();
    while got.len() < want && started.elapsed() < timeout {
        batch.reset(token);
        if let RResult::RErr(e) = source.pull_batch(&mut batch) {
            panic!("pull failed: {e}");
        }
        let frames: Vec<&[u8]> = batch.frames().iter().collect();
        for (range, run) in batch.all_runs() {
            for i in range {
                got.push((frames[i].to_vec(), run.meta.clone()));
            }
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    got
}

/// A source built from `config` delivers at least `want` frames within `timeout`, and is
/// dropped cleanly (it stops) afterwards; returns the frames.
///
/// # Panics
/// When it does not.
pub fn source_delivers(
    module: PluginModRef,
    config: &Value,
    want: usize,
    timeout: Duration,
) -> Vec<Vec<u8>> {
    is_a_connector(module);
    let mut source =
        source(module, config).unwrap_or_else(|e| panic!("the source refused {config}: {e}"));
    let (frames, _) = pull_frames(&mut source, want, timeout);
    assert!(
        frames.len() >= want,
        "wanted {want} frames within {timeout:?}, got {}",
        frames.len()
    );
    drop(source);
    frames
}

/// Pushes a batch with `meta` (one per frame, or none): the result, and the indices of the
/// frames the sink says it delivered.
pub fn push(
    sink: &mut SinkBox,
    frames: &Frames,
    meta: &[Value],
) -> (Result<(), PluginError>, Vec<u32>) {
    let mut delivered = RVec::new();
    let result = sink
        .push_batch(frames, RSlice::from_slice(meta), &mut delivered)
        .into_result();
    (result, delivered.to_vec())
}

/// A sink built from `config` accepts `frames` and flushes.
///
/// # Panics
/// When it does not.
pub fn sink_accepts(module: PluginModRef, config: &Value, frames: &[&[u8]]) {
    is_a_connector(module);
    let mut sink =
        sink(module, config).unwrap_or_else(|e| panic!("the sink refused {config}: {e}"));
    let batch: Frames = frames.iter().copied().collect();
    if let RResult::RErr(e) = sink.push_batch(&batch, RSlice::from_slice(&[]), &mut RVec::new()) {
        panic!("push failed: {e}");
    }
    if let RResult::RErr(e) = sink.flush() {
        panic!("flush failed: {e}");
    }
    drop(sink);
}

/// With one more, unknown key in `config`, the constructor (`source` or `sink`) refuses with a
/// config error naming the key.
///
/// # Panics
/// When it does not.
pub fn rejects_unknown_key(module: PluginModRef, config: &Value, as_source: bool) {
    let config = with_unknown_key(config);
    let result = if as_source {
        source(module, &config).map(drop)
    } else {
        sink(module, &config).map(drop)
    };
    match result {
        Ok(()) => panic!("an unknown config key was accepted"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Config, "{e}");
            assert!(
                e.message.contains("no_such_key_anywhere"),
                "the key is named: {e}"
            );
        }
    }
}

/// Asking for what the connector does not offer (a sink from a source-only connector, or the
/// reverse) is an `Unsupported` or `Config` error, never a panic.
///
/// # Panics
/// When it is something else.
pub fn refuses_the_other_direction(module: PluginModRef, config: &Value, as_source: bool) {
    let result = if as_source {
        source(module, config).map(drop)
    } else {
        sink(module, config).map(drop)
    };
    match result {
        Ok(()) => panic!("the connector accepted a direction it does not offer"),
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::Unsupported | ErrorKind::Config),
            "{e}"
        ),
    }
}

/// What a connector offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offers {
    /// A source only.
    Source,
    /// A sink only.
    Sink,
    /// Both, from the same config.
    Both,
}

/// How long building, a pull, or dropping (the engine's stop) may take.
const PROMPT: Duration = Duration::from_secs(2);

/// Every check all connectors pass, given a `config` that works (its servers, files and ports
/// already there):
/// - the manifest says connector, with a name and the shim's interface version;
/// - what it `offers` builds from `config`, and the other direction is refused
///   (`Unsupported` or `Config`), never a panic;
/// - a source's pulls come back within 2 s, also with a [`Notify`] when it takes one, and
///   dropping it (the engine's stop) takes under 2 s; a sink flushes what it was given, without
///   panicking, and is dropped as promptly;
/// - an unknown config key is a `Config` error that names it;
/// - a key left out is either optional or a `Config` error that names it.
///
/// # Panics
/// When a check fails, with what failed.
pub fn compliance(module: PluginModRef, name: &str, config: &Value, offers: Offers) {
    manifest(module, name);
    for as_source in [true, false] {
        if !matches!(
            (offers, as_source),
            (Offers::Both, _) | (Offers::Source, true) | (Offers::Sink, false)
        ) {
            refuses_the_other_direction(module, config, as_source);
            continue;
        }
        if as_source {
            let mut built = source(module, config)
                .unwrap_or_else(|e| panic!("the source refused {config}: {e}"));
            prompt_pulls(&mut built);
            if Wakes::install(&mut built).is_some() {
                prompt_pulls(&mut built);
            }
            stops_promptly(built, "source");
        } else {
            let mut built =
                sink(module, config).unwrap_or_else(|e| panic!("the sink refused {config}: {e}"));
            let started = Instant::now();
            if let RResult::RErr(e) = built.flush() {
                assert_ne!(e.kind, ErrorKind::Panic, "an empty flush panicked: {e}");
            }
            assert!(
                started.elapsed() < PROMPT * 5,
                "an empty flush took {:?}",
                started.elapsed()
            );
            stops_promptly(built, "sink");
        }
        rejects_unknown_key(module, config, as_source);
        missing_keys_are_named(module, config, as_source);
    }
}

/// A few pulls, each back within [`PROMPT`], none a panic.
fn prompt_pulls(source: &mut SourceBox) {
    let mut batch = SourceBatch::new();
    for _ in 0..3 {
        batch.reset(0);
        let started = Instant::now();
        let pulled = source.pull_batch(&mut batch);
        assert!(
            started.elapsed() < PROMPT,
            "a pull blocked for {:?}",
            started.elapsed()
        );
        match pulled {
            RResult::ROk(Pull::Exhausted) => return,
            RResult::ROk(_) => {}
            RResult::RErr(e) => assert_ne!(e.kind, ErrorKind::Panic, "a pull panicked: {e}"),
        }
    }
}

fn stops_promptly<T>(built: T, what: &str) {
    let started = Instant::now();
    drop(built);
    assert!(
        started.elapsed() < PROMPT,
        "dropping the {what} (the engine's stop) took {:?}",
        started.elapsed()
    );
}

/// Each key of `config` left out: the constructor builds, or refuses with a `Config` error
/// that names the key.
///
/// # Panics
/// When it does something else.
pub fn missing_keys_are_named(module: PluginModRef, config: &Value, as_source: bool) {
    let Some(object) = config.as_object() else {
        return;
    };
    for (key, _) in object.iter() {
        let mut fewer = object.clone();
        fewer.remove(key);
        let fewer = Value::Object(fewer);
        let result = if as_source {
            source(module, &fewer).map(drop)
        } else {
            sink(module, &fewer).map(drop)
        };
        if let Err(e) = result {
            assert_eq!(e.kind, ErrorKind::Config, "without `{key}`: {e}");
            assert!(
                e.message.contains(key),
                "without `{key}`, the error names it: {e}"
            );
        }
    }
}

/// Counts a source's wake-ups (its [`Notify`]).
#[derive(Debug, Default)]
pub struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Wakes {
    /// Hands `source` a notify that counts; `None` when the source takes none.
    pub fn install(source: &mut SourceBox) -> Option<Arc<Self>> {
        let wakes = Arc::new(Self::default());
        source
            .set_notify(Notify::new(Arc::clone(&wakes)))
            .then_some(wakes)
    }

    /// How many wake-ups so far.
    #[must_use]
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` wake-ups came (10 s at most).
    ///
    /// # Panics
    /// When they do not.
    pub fn wait_for(&self, n: usize) {
        assert!(
            crate::process::wait_until(Duration::from_secs(10), || self.count() >= n),
            "woken {} times, not {n}",
            self.count()
        );
    }
}

/// What a source handed over, by stream, as the engine sees it; checks as it goes that no
/// bytes come after a stream's end and no stream ends twice.
#[derive(Default, Debug)]
pub struct Streams {
    /// Each start (restarts included): stream and meta, in order.
    pub starts: Vec<(u64, Value)>,
    /// Every frame in order: its stream, the index in `starts` of the start it came under
    /// (`usize::MAX` for none), its bytes.
    pub frames: Vec<(u64, usize, Vec<u8>)>,
    /// Each end, in order.
    pub ended: Vec<u64>,
    open: BTreeSet<u64>,
    /// Per stream, the bytes not split into lines yet.
    partial: BTreeMap<u64, Vec<u8>>,
    /// Every complete line (split at `\n`, empty ones skipped; what is left at a stream's end
    /// is its last line), with its stream, in order.
    pub lines: Vec<(u64, Vec<u8>)>,
}

impl Streams {
    /// Takes in one batch.
    ///
    /// # Panics
    /// When a stream has bytes after its end, or ends twice.
    pub fn take(&mut self, batch: &SourceBatch) {
        for (range, run) in batch.all_runs() {
            let stream = run.stream;
            if run.starts() {
                // A start of an open stream starts it again with new meta (a WebSocket
                // message's kind).
                self.open.insert(stream);
                self.starts.push((stream, run.meta.clone()));
            }
            let start = self
                .starts
                .iter()
                .rposition(|(s, _)| *s == stream)
                .unwrap_or(usize::MAX);
            for i in range {
                let frame = batch.frames().get(i).expect("a frame");
                assert!(
                    self.open.contains(&stream) || !self.ended.contains(&stream),
                    "bytes of stream {stream} after its end"
                );
                self.frames.push((stream, start, frame.to_vec()));
                let partial = self.partial.entry(stream).or_default();
                partial.extend_from_slice(frame);
                while let Some(at) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=at).take(at).collect();
                    if !line.is_empty() {
                        self.lines.push((stream, line));
                    }
                }
            }
            if run.ends() {
                assert!(
                    self.open.remove(&stream) || !self.ended.contains(&stream),
                    "stream {stream} ended twice"
                );
                self.ended.push(stream);
                if let Some(rest) = self.partial.remove(&stream)
                    && !rest.is_empty()
                {
                    self.lines.push((stream, rest));
                }
            }
        }
    }

    /// Pulls until `done` or `timeout`; true when done. Every pull must come back within 2 s.
    ///
    /// # Panics
    /// When a pull fails or blocks.
    pub fn pull_for(
        &mut self,
        source: &mut SourceBox,
        timeout: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut batch = SourceBatch::new();
        while !done(self) {
            if Instant::now() >= deadline {
                return false;
            }
            batch.reset(0);
            let started = Instant::now();
            source.pull_batch(&mut batch).into_result().expect("pull");
            assert!(
                started.elapsed() < PROMPT,
                "a pull blocked for {:?}",
                started.elapsed()
            );
            self.take(&batch);
        }
        true
    }

    /// Pulls until `done` (10 s at most).
    ///
    /// # Panics
    /// When it is not done by then, or a pull fails.
    pub fn pull_until(
        &mut self,
        source: &mut SourceBox,
        done: impl Fn(&Self) -> bool,
    ) -> &mut Self {
        assert!(
            self.pull_for(source, Duration::from_secs(10), done),
            "timed out: {self:?}"
        );
        self
    }

    /// Pulls until `want` more lines arrived or `timeout` passed; the lines that arrived, as text.
    pub fn lines_until(
        &mut self,
        source: &mut SourceBox,
        want: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let before = self.lines.len();
        self.pull_for(source, timeout, |s| s.lines.len() >= before + want);
        self.lines[before..]
            .iter()
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    /// The complete lines of `stream` so far, as text.
    #[must_use]
    pub fn lines_of(&self, stream: u64) -> Vec<String> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    /// How many frames so far.
    #[must_use]
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// The frames of `stream`, in order.
    #[must_use]
    pub fn frames_of(&self, stream: u64) -> Vec<&[u8]> {
        self.frames
            .iter()
            .filter(|(s, _, _)| *s == stream)
            .map(|(_, _, f)| f.as_slice())
            .collect()
    }

    /// The bytes of `stream`, in order.
    #[must_use]
    pub fn bytes_of(&self, stream: u64) -> Vec<u8> {
        self.frames_of(stream).concat()
    }

    /// The streams that had frames, in order of their first frame.
    #[must_use]
    pub fn streams(&self) -> Vec<u64> {
        let mut seen = Vec::new();
        for (s, _, _) in &self.frames {
            if !seen.contains(s) {
                seen.push(*s);
            }
        }
        seen
    }

    /// The frames of `stream`, each with whether the meta of the start it came under has
    /// `key = true` (a WebSocket message's `binary`).
    #[must_use]
    pub fn frames_flagged(&self, stream: u64, key: &str) -> Vec<(Vec<u8>, bool)> {
        self.frames
            .iter()
            .filter(|(s, _, _)| *s == stream)
            .map(|(_, start, f)| {
                let flag = self.starts.get(*start).and_then(|(_, meta)| meta.get(key))
                    == Some(&Value::Bool(true));
                (f.clone(), flag)
            })
            .collect()
    }

    /// Whether some stream's bytes so far are exactly `bytes`.
    #[must_use]
    pub fn has_stream_of(&self, bytes: &[u8]) -> bool {
        self.streams().iter().any(|&s| self.bytes_of(s) == bytes)
    }

    /// The size of the largest frame so far.
    #[must_use]
    pub fn largest_frame(&self) -> usize {
        self.frames
            .iter()
            .map(|(_, _, f)| f.len())
            .max()
            .unwrap_or(0)
    }

    /// The meta of `stream`'s first start.
    ///
    /// # Panics
    /// When it never started.
    #[must_use]
    pub fn meta(&self, stream: u64) -> &Value {
        &self
            .starts
            .iter()
            .find(|(s, _)| *s == stream)
            .unwrap_or_else(|| panic!("stream {stream} never started: {self:?}"))
            .1
    }

    /// `meta.peer` of `stream`.
    ///
    /// # Panics
    /// When it never started or has no peer.
    #[must_use]
    pub fn peer(&self, stream: u64) -> &str {
        let meta = self.meta(stream);
        meta.get("peer")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("stream {stream} has no meta.peer: {meta}"))
    }

    /// The stream whose meta has this peer.
    ///
    /// # Panics
    /// When there is none.
    #[must_use]
    pub fn stream_of(&self, peer: &str) -> u64 {
        self.starts
            .iter()
            .find(|(_, m)| m.get("peer") == Some(&Value::from(peer)))
            .unwrap_or_else(|| panic!("no stream of {peer}: {self:?}"))
            .0
    }
}
