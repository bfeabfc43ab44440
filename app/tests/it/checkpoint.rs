//! The file source's checkpoint end to end: a run killed with SIGKILL half-way, then started
//! again, delivers every line of the input at least once, repeats at most one pull's worth of
//! lines, and leaves the checkpoint at the input's size; a run after a clean finish hands over
//! nothing.
//!
//! The source (connectors/file) with `checkpoint` keeps at most `max_in_flight` (default 1)
//! pulls unacknowledged, and writes the checkpoint before its next pull: when the engine is
//! killed, what was written to the output but not yet checkpointed is at most the one pull in
//! flight, which the next run reads again.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use codec_json::decode_slice;

use crate::support::{Connector, Deployment, connector_stat, output, temblor, temp_dir, wait_exit};

/// The lines of the input of the crash test.
const LINES: usize = 200_000;

/// The file source's chunk size and chunks per pull (`CHUNK` and `CHUNKS_PER_PULL` in
/// connectors/file/src/lib.rs): with a checkpoint, one pull hands over at most this many bytes
/// of whole lines (a single line longer than a chunk aside, which this input has not).
const PULL_BYTES: usize = 64 * 1024 * 4;

/// Line `n` of the input: unique, with padding of varying length.
fn line(n: usize) -> String {
    format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "x".repeat(n % 61))
}

/// Writes `lines` numbered lines to `path`; returns each line's length.
fn write_input(path: &Path, lines: usize) -> Vec<usize> {
    let text: Vec<String> = (0..lines).map(line).collect();
    std::fs::write(path, text.concat()).unwrap();
    text.iter().map(String::len).collect()
}

/// The most lines one pull can hand over: the longest run of consecutive lines that fits in
/// `PULL_BYTES`.
fn lines_per_pull(lengths: &[usize]) -> usize {
    let (mut most, mut start, mut bytes) = (0, 0, 0);
    for (end, len) in lengths.iter().enumerate() {
        bytes += len;
        while bytes > PULL_BYTES {
            bytes -= lengths[start];
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// `in` (the file, checkpointed, JSON lines) → `main` → `out` (JSON lines, appended to, so
/// that a second run adds to what the first one wrote).
fn checkpointed(input: &Path, checkpoint: &Path, out: &Path) -> Deployment {
    Deployment::passthrough(
        Connector::file_read("in", "json", input).set_path("checkpoint", checkpoint),
        Connector::file_write("out", out).set("mode", "append"),
    )
}

/// The offset in the checkpoint file, if there is one.
fn checkpoint_offset(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("the checkpoint file holds no offset: {text:?}")),
    )
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Starts the engine on `deploy`, its log going to `log`.
fn spawn(deploy: &Path, log: &Path) -> Child {
    temblor()
        .arg("run")
        .arg(deploy)
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits for the child to exit, at most `limit`; kills it and fails after that.
fn wait_at_most(child: &mut Child, limit: Duration, log: &Path) -> ExitStatus {
    wait_exit(child, limit).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("temblor still running after {limit:?}: {}", log_of(log));
    })
}

/// How often each input line occurs, whole, in the output, and how many output lines are not
/// whole JSON lines (a line cut by the kill, with the next run's first line after it).
fn occurrences(out: &Path, lines: usize) -> (Vec<u32>, usize) {
    let text = std::fs::read_to_string(out).unwrap();
    let mut counts = vec![0_u32; lines];
    let mut torn = 0;
    for l in text.lines() {
        let n = decode_slice(l.as_bytes())
            .ok()
            .and_then(|v| v.get("n").and_then(temblor_shim::Value::as_u64));
        match n {
            Some(n) => {
                let n = usize::try_from(n).unwrap();
                assert!(n < lines, "an n that is not in the input: {l}");
                counts[n] += 1;
            }
            None => {
                eprintln!("checkpoint: an output line that is not a whole input line: {l:.80}");
                torn += 1;
            }
        }
    }
    (counts, torn)
}

#[test]
fn a_killed_run_resumes_from_its_checkpoint_and_repeats_at_most_one_pull() {
    let dir = temp_dir("checkpoint-kill");
    let (input, checkpoint, out) = (dir.join("in.json"), dir.join("in.cp"), dir.join("out.json"));
    let lengths = write_input(&input, LINES);
    let input_size = size(&input);
    let deploy = checkpointed(&input, &checkpoint, &out).write(&dir);

    // First run: killed (SIGKILL) once a quarter of the output is there.
    let log1 = dir.join("run1.log");
    let mut child = spawn(&deploy, &log1);
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the first run ended ({status}) before it was killed, with {} of {input_size} \
                 bytes written: make the input larger\n{}",
                size(&out),
                log_of(&log1)
            );
        }
        if size(&out) >= input_size / 4 {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "only {} bytes written after 120 s: {}",
                size(&out),
                log_of(&log1)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status}");
    let written = size(&out);
    let at_kill = checkpoint_offset(&checkpoint);
    eprintln!(
        "checkpoint: killed after {:?} with {written} of {input_size} bytes written, \
         checkpoint at {at_kill:?}",
        started.elapsed()
    );
    assert!(
        written < input_size,
        "the output was complete before the kill: make the input larger"
    );

    // Second run: resumes and ends by itself when the file source is exhausted.
    let log2 = dir.join("run2.log");
    let mut child = spawn(&deploy, &log2);
    let status = wait_at_most(&mut child, Duration::from_secs(300), &log2);
    assert!(
        status.success(),
        "the second run: {status}\n{}",
        log_of(&log2)
    );

    let (counts, torn) = occurrences(&out, LINES);
    let missing: Vec<usize> = (0..LINES).filter(|&n| counts[n] == 0).collect();
    let duplicates: u64 = counts.iter().map(|&c| u64::from(c.saturating_sub(1))).sum();
    let repeated = counts.iter().filter(|&&c| c > 1).count();
    let bound = lines_per_pull(&lengths);
    eprintln!(
        "checkpoint: {LINES} input lines, {} output lines, {} missing, {duplicates} duplicates \
         ({repeated} lines repeated), {torn} torn; bound: one pull = {bound} lines \
         ({PULL_BYTES} bytes)",
        counts.iter().map(|&c| u64::from(c)).sum::<u64>() + torn as u64,
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} input lines never reached the output, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        duplicates <= bound as u64,
        "{duplicates} duplicate lines: more than one pull ({bound} lines)"
    );
    assert!(torn <= 1, "{torn} torn lines: only the kill can cut one");
    assert_eq!(
        checkpoint_offset(&checkpoint),
        Some(input_size),
        "the checkpoint holds the input's size\n{}",
        log_of(&log2)
    );
}

#[test]
fn a_run_after_a_clean_finish_hands_over_nothing() {
    let dir = temp_dir("checkpoint-finished");
    let (input, checkpoint, out) = (dir.join("in.json"), dir.join("in.cp"), dir.join("out.json"));
    let lines = 10_000;
    write_input(&input, lines);
    let input_size = size(&input);
    let deploy = checkpointed(&input, &checkpoint, &out).write(&dir);
    let run = |stats: &PathBuf| {
        let (status, _, stderr) = output(
            temblor()
                .arg("run")
                .arg(&deploy)
                .arg("--stats-json")
                .arg(stats),
        );
        assert!(status.status.success(), "{stderr}");
        std::fs::read_to_string(stats).unwrap()
    };

    let stats = run(&dir.join("stats1.json"));
    assert_eq!(connector_stat(&stats, "in", "events_out"), lines as u64);
    let (counts, torn) = occurrences(&out, lines);
    assert!(counts.iter().all(|&c| c == 1), "every line once");
    assert_eq!(torn, 0);
    assert_eq!(checkpoint_offset(&checkpoint), Some(input_size));
    let first = std::fs::read(&out).unwrap();

    // Resumed at the end: nothing more.
    let stats = run(&dir.join("stats2.json"));
    assert_eq!(connector_stat(&stats, "in", "events_out"), 0);
    assert!(std::fs::read(&out).unwrap() == first, "nothing appended");
    assert_eq!(checkpoint_offset(&checkpoint), Some(input_size));
}
