//! The `bench` connector: replays the lines of a file from memory, for benchmarks.
//!
//! Like Tremor's bench connector: the whole file is loaded when the connector is created (plain,
//! or `.gz` / `.xz`, decompressed), split into lines (the newline and a `\r` before it are
//! dropped, and so is the empty line after a final newline), and then replayed, one frame per
//! line, either a given number of times or for a given time. Each `pull` appends up to 1024
//! frames straight from the loaded data; the pull that appends the last line returns
//! `Exhausted`. Since frames are lines already, the connector needs no `separate` preprocessor.
//!
//! When it ends, the source logs how many frames and bytes it emitted, and how fast.
//!
//! With `acks = true` the source takes acknowledgements (see docs/delivery.md): it counts the
//! batches (pulls that handed over frames) it handed out, and how many of them the engine
//! acknowledged (delivered by every sink they reached) or failed, and logs the three counts at
//! info level when it is dropped. It replays as fast as without acks (it does not wait for
//! them): it measures what tracking deliveries costs the engine (`cargo xtask bench`'s
//! scenario with acks on).
//!
//! ## Config
//! - `path` (string, required): the file to replay; it must have at least one line.
//! - `iters` (integer ≥ 1, optional): replay every line this many times.
//! - `duration_s` (number ≥ 0, optional): replay over and over until this many seconds have
//!   passed since the first pull (checked once per pull, so every 1024 frames).
//! - `acks` (boolean, default `false`): take acknowledgements and count them.
//!
//! At most one of `iters` and `duration_s` may be given; with neither, the lines are replayed
//! once.
//!
//! ## Metadata
//! The connector sets none of its own; the engine gives each event `meta.connector` (the
//! connector's id) and `meta.stream` (0).
//!
//! ## Example
//! ```toml
//! [[connector]]
//! id = "bench"
//! plugin = "bench"
//! codec = "json"
//! config = { path = "examples/data/data.json.xz", iters = 1000 }
//! ```

use std::{
    io::Read,
    ops::Range,
    path::PathBuf,
    time::{Duration, Instant},
};

use temblor_shim::{PluginError, Pull, Setup, Source, SourceBatch, serde::Deserialize, tracing};

/// How many frames one `pull` appends at most.
pub const BATCH: usize = 1024;

/// The connector's `config`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(crate = "temblor_shim::serde", deny_unknown_fields)]
pub struct Config {
    /// The file to replay.
    pub path: PathBuf,
    /// How many times to replay it.
    pub iters: Option<u64>,
    /// For how long to replay it, in seconds.
    pub duration_s: Option<f64>,
    /// Whether to take acknowledgements (and count them).
    #[serde(default)]
    pub acks: bool,
}

/// When the replay ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Until {
    /// After this many passes over the lines.
    Iterations(u64),
    /// Once this much time has passed since the first pull.
    Elapsed(Duration),
}

/// Replays the lines of a file held in memory.
pub struct BenchSource {
    data: Vec<u8>,
    /// Where each line is in `data` (without its newline or `\r`).
    lines: Vec<Range<usize>>,
    until: Until,
    /// The index of the next line to emit.
    next: usize,
    /// Completed passes over all lines.
    passes: u64,
    frames: u64,
    bytes: u64,
    started: Option<Instant>,
    done: bool,
    /// With `acks`: the batches handed out, acknowledged and failed.
    acks: Option<AckCounts>,
}

/// The batches a source taking acknowledgements handed out, and what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckCounts {
    /// Pulls that handed over frames.
    pub handed_out: u64,
    /// Batches the engine acknowledged.
    pub acked: u64,
    /// Batches the engine failed.
    pub failed: u64,
}

impl AckCounts {
    /// Batches handed out and neither acknowledged nor failed (yet).
    #[must_use]
    pub fn outstanding(&self) -> u64 {
        self.handed_out.saturating_sub(self.acked + self.failed)
    }
}

/// Where each line of `data` is: split at `\n`, a `\r` before it dropped, and no empty line
/// after a final `\n` (as `str::lines` does).
fn split_lines(data: &[u8]) -> Vec<Range<usize>> {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = data[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| start + i);
        let mut line_end = end;
        if line_end > start && data[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        lines.push(start..line_end);
        start = end + 1;
    }
    lines
}

impl BenchSource {
    /// Loads the configured file.
    ///
    /// # Errors
    /// A `Config` error for a bad config or a file without lines; an `Io` error naming the path
    /// when the file cannot be read.
    pub fn new(setup: &Setup<'_>) -> Result<Self, PluginError> {
        let config: Config = setup.config()?;
        let path = config.path.display();
        let until = match (config.iters, config.duration_s) {
            (Some(_), Some(_)) => {
                return Err(PluginError::config(format_args!(
                    "give the bench connector either `iters` or `duration_s`, not both"
                )));
            }
            (Some(0), None) => {
                return Err(PluginError::config(format_args!(
                    "`iters` must be at least 1"
                )));
            }
            (Some(iters), None) => Until::Iterations(iters),
            (None, Some(secs)) => {
                Until::Elapsed(Duration::try_from_secs_f64(secs).map_err(|_| {
                    PluginError::config(format_args!(
                        "`duration_s` must be a number of seconds ≥ 0, not {secs}"
                    ))
                })?)
            }
            (None, None) => Until::Iterations(1),
        };
        let mut data = Vec::new();
        temblor_compress::open_read(&config.path)
            .and_then(|mut reader| reader.read_to_end(&mut data))
            .map_err(|e| PluginError::io(format_args!("cannot read {path}"), &e))?;
        let source = Self::replaying(data, until, config.acks);
        if source.lines.is_empty() {
            return Err(PluginError::config(format_args!(
                "{path} has no lines to replay"
            )));
        }
        tracing::info!(
            path = %path,
            lines = source.lines.len(),
            bytes = source.data.len(),
            "bench source loaded"
        );
        Ok(source)
    }

    /// A source replaying the lines of `data` until `until`, counting acks with `acks`.
    fn replaying(data: Vec<u8>, until: Until, acks: bool) -> Self {
        Self {
            lines: split_lines(&data),
            data,
            until,
            next: 0,
            passes: 0,
            frames: 0,
            bytes: 0,
            started: None,
            done: false,
            acks: acks.then(AckCounts::default),
        }
    }

    /// With `acks`: the batches handed out, acknowledged and failed so far.
    #[must_use]
    pub fn ack_counts(&self) -> Option<AckCounts> {
        self.acks
    }

    fn finish(&mut self) -> Pull {
        self.done = true;
        let elapsed = self.started.map_or(Duration::ZERO, |t| t.elapsed());
        let secs = elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let (frames_per_s, mib_per_s) = if secs > 0.0 {
            (
                self.frames as f64 / secs,
                self.bytes as f64 / secs / (1024.0 * 1024.0),
            )
        } else {
            (0.0, 0.0)
        };
        tracing::info!(
            frames = self.frames,
            bytes = self.bytes,
            passes = self.passes,
            elapsed_ms = elapsed.as_millis(),
            frames_per_s = frames_per_s.round(),
            mib_per_s = (mib_per_s * 100.0).round() / 100.0,
            "bench source done"
        );
        Pull::Exhausted
    }
}

impl Source for BenchSource {
    fn pull(&mut self, out: &mut SourceBatch) -> Result<Pull, PluginError> {
        if self.done {
            return Ok(Pull::Exhausted);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        if let Until::Elapsed(limit) = self.until
            && started.elapsed() >= limit
        {
            return Ok(self.finish());
        }
        let bytes_before = out.byte_len();
        let mut result = Pull::Ready;
        for _ in 0..BATCH {
            out.push(&self.data[self.lines[self.next].clone()]);
            self.frames += 1;
            self.next += 1;
            if self.next == self.lines.len() {
                self.next = 0;
                self.passes += 1;
                if self.until == Until::Iterations(self.passes) {
                    result = Pull::Exhausted;
                    break;
                }
            }
        }
        self.bytes += (out.byte_len() - bytes_before) as u64;
        if let Some(acks) = &mut self.acks {
            acks.handed_out += 1;
        }
        if result == Pull::Exhausted {
            return Ok(self.finish());
        }
        Ok(result)
    }

    fn wants_acks(&self) -> bool {
        self.acks.is_some()
    }

    fn ack(&mut self, _token: u64) -> Result<(), PluginError> {
        if let Some(acks) = &mut self.acks {
            acks.acked += 1;
        }
        Ok(())
    }

    fn fail(&mut self, token: u64, reason: &str) -> Result<(), PluginError> {
        if let Some(acks) = &mut self.acks {
            acks.failed += 1;
            tracing::debug!(token, reason, "bench batch failed");
        }
        Ok(())
    }
}

impl Drop for BenchSource {
    fn drop(&mut self) {
        if let Some(acks) = self.acks {
            tracing::info!(
                handed_out = acks.handed_out,
                acked = acks.acked,
                failed = acks.failed,
                outstanding = acks.outstanding(),
                "bench source acknowledgements"
            );
        }
    }
}

temblor_shim::export_plugin! {
    name: "bench",
    kind: Connector,
    source: BenchSource::new,
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_shim::Frames;

    fn lines_of(data: &[u8]) -> Vec<&[u8]> {
        split_lines(data).into_iter().map(|r| &data[r]).collect()
    }

    #[test]
    fn lines_drop_newlines_carriage_returns_and_a_final_empty_line() {
        assert_eq!(lines_of(b"a\nb\n"), [&b"a"[..], b"b"]);
        assert_eq!(lines_of(b"a\r\nb"), [&b"a"[..], b"b"]);
        assert_eq!(lines_of(b"a\n\nb\n\n"), [&b"a"[..], b"", b"b", b""]);
        assert_eq!(lines_of(b"\n"), [&b""[..]]);
        assert_eq!(lines_of(b"only\r"), [&b"only"[..]]);
        assert_eq!(lines_of(b"a\rb"), [&b"a\rb"[..]]);
        assert!(lines_of(b"").is_empty());
    }

    fn source(lines: &[&str], until: Until) -> BenchSource {
        let data: Vec<u8> = lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect();
        BenchSource::replaying(data, until, false)
    }

    #[test]
    fn batches_hold_1024_frames_and_the_last_one_ends_the_replay() {
        // 3 lines x 700 passes = 2100 frames = 1024 + 1024 + 52.
        let mut s = source(&["a", "bb", "ccc"], Until::Iterations(700));
        let mut sizes = Vec::new();
        let mut total = temblor_shim::Frames::new();
        loop {
            let mut frames = SourceBatch::new();
            let pull = s.pull(&mut frames).expect("pull");
            sizes.push(frames.len());
            total.extend_from(frames.frames());
            if pull == Pull::Exhausted {
                break;
            }
            assert_eq!(pull, Pull::Ready);
        }
        assert_eq!(sizes, [1024, 1024, 52]);
        assert_eq!(total.get(2099), Some(&b"ccc"[..]));
        assert_eq!(total.get(1024), Some(&b"bb"[..]));
        assert_eq!(s.frames, 2100);
        assert_eq!(s.bytes, 700 * 6);
        assert_eq!(s.passes, 700);
    }

    #[test]
    fn elapsed_replays_until_time_is_up() {
        let mut s = source(&["x"], Until::Elapsed(Duration::from_millis(30)));
        let mut frames = SourceBatch::new();
        let begin = Instant::now();
        let mut pulls = 0;
        while s.pull(&mut frames).expect("pull") == Pull::Ready {
            pulls += 1;
            frames.clear();
        }
        assert!(begin.elapsed() >= Duration::from_millis(30));
        assert!(
            pulls > 1,
            "replayed past the end of the lines: {pulls} pulls"
        );
        assert!(s.passes > 1024);
    }

    trait ExtendFrom {
        fn extend_from(&mut self, other: &Frames);
    }

    impl ExtendFrom for Frames {
        fn extend_from(&mut self, other: &Frames) {
            for f in other.iter() {
                self.push(f);
            }
        }
    }

    #[test]
    fn acks_are_counted_per_batch() {
        let mut s = source(&["a", "b"], Until::Iterations(2000));
        assert!(!s.wants_acks());
        s.ack(1).expect("ack");
        assert_eq!(s.ack_counts(), None, "without `acks` nothing is counted");
        s.acks = Some(AckCounts::default());
        assert!(s.wants_acks());
        let mut frames = SourceBatch::new();
        for token in 1..=2 {
            frames.reset(token);
            assert_eq!(s.pull(&mut frames).expect("pull"), Pull::Ready);
        }
        s.ack(2).expect("ack");
        s.fail(1, "lost").expect("fail");
        frames.reset(3);
        s.pull(&mut frames).expect("pull");
        let counts = s.ack_counts().expect("counted");
        assert_eq!(
            counts,
            AckCounts {
                handed_out: 3,
                acked: 1,
                failed: 1
            }
        );
        assert_eq!(counts.outstanding(), 1);
        // A pull after the end hands nothing over and is not counted.
        while s.pull(&mut frames).expect("pull") != Pull::Exhausted {
            frames.reset(0);
        }
        let handed = s.ack_counts().expect("counted").handed_out;
        frames.reset(9);
        assert_eq!(s.pull(&mut frames).expect("pull"), Pull::Exhausted);
        assert_eq!(s.ack_counts().expect("counted").handed_out, handed);
    }
}
