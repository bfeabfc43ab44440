//! The pipeline task: each batch from the linked sources through the operators, wake-ups for
//! operators' deadlines, and a final flush of what they hold when every input has ended.
//!
//! Events sent to a port with nothing connected are dropped and counted; for delivery they
//! count as delivered (the deployment chose not to keep them).

use std::{
    sync::mpsc::{Receiver, RecvTimeoutError, SyncSender},
    time::{Duration, Instant},
};

use tracing::{debug, warn};

use super::{Batch, add, send_all, stats::PipelineCounters};
use crate::pipeline::{ERR, Events, OUT, Output, Pipeline, PipelineDef};

/// Runs a pipeline until its inputs end.
pub(crate) fn run_pipeline(
    def: &PipelineDef,
    rx: &Receiver<Batch>,
    ports: &[Vec<SyncSender<Events>>],
    counters: &PipelineCounters,
) {
    let id = def.id();
    let mut pipeline = Pipeline::new(def, Instant::now());
    let mut out = Output::default();
    let mut warned_drop = vec![false; ports.len()];
    // `state_bytes` walks every group: it is estimated when the groups fell (windows closed)
    // and at most once a second while they do not.
    let mut bytes_at: Option<(Instant, usize)> = None;
    loop {
        let received = match pipeline.deadline() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let now = Instant::now();
        let done = match received {
            Ok(batch) => {
                pipeline.tick(now, &mut out);
                add(&counters.events_in, batch.events.values.len());
                pipeline.process(batch.events, now, &mut out);
                if !batch.errors.values.is_empty() {
                    out.ports.push((ERR, batch.errors));
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => {
                pipeline.tick(now, &mut out);
                false
            }
            Err(RecvTimeoutError::Disconnected) => {
                pipeline.finish(now, &mut out);
                true
            }
        };
        for (port, events) in out.drain() {
            let n = events.values.len();
            let targets = &ports[port];
            if targets.is_empty() || !send_all(targets, events) {
                add(&counters.dropped, n);
                if !warned_drop[port] {
                    warned_drop[port] = true;
                    warn!(
                        pipeline = id,
                        port = def.ports()[port].as_str(),
                        "nothing is connected to this port; its events are dropped (counted as dropped)"
                    );
                }
            } else if port == ERR {
                add(&counters.errors, n);
            } else {
                debug_assert!(port == OUT || port > ERR);
                add(&counters.events_out, n);
            }
        }
        let (groups, evicted) = pipeline.state();
        let stale = bytes_at.is_none_or(|(at, then)| {
            groups < then || now.saturating_duration_since(at) >= Duration::from_secs(1)
        });
        if groups == 0 || done || stale {
            let bytes = if groups == 0 {
                0
            } else {
                pipeline.state_bytes()
            };
            bytes_at = Some((now, groups));
            counters
                .state_bytes
                .store(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        }
        counters
            .state_groups
            .store(groups as u64, std::sync::atomic::Ordering::Relaxed);
        counters
            .evicted
            .store(evicted, std::sync::atomic::Ordering::Relaxed);
        if done {
            break;
        }
    }
    debug!(pipeline = id, "pipeline finished");
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{SyncSender, sync_channel};

    use temblor_shim::{RVec, Value};

    use super::*;
    use crate::delivery::{Acks, Outcome};

    fn def(operators: &str) -> PipelineDef {
        #[derive(serde::Deserialize)]
        struct Doc {
            ops: Value,
        }
        let doc: Doc = toml::from_str(&format!("ops = {operators}")).expect("toml");
        PipelineDef::compile("p", doc.ops.as_array().unwrap_or(&[])).expect("operators")
    }

    fn events(n: u64, acks: &mut Acks) -> Events {
        let mut e = Events::local((0..n).map(Value::from).collect::<RVec<Value>>());
        e.tokens = acks.issue();
        e
    }

    /// Runs the pipeline of `operators` to its end over one batch of each size (each with a
    /// token of `acks`), into `ports` (`out`, `err`).
    fn run(
        operators: &str,
        sizes: &[u64],
        acks: &mut Acks,
        ports: &[Vec<SyncSender<Events>>],
    ) -> PipelineCounters {
        let (tx, rx) = sync_channel(sizes.len());
        for &n in sizes {
            let errors = Events::local(RVec::new());
            let events = events(n, acks);
            tx.send(Batch { events, errors }).expect("send");
        }
        drop(tx);
        let counters = PipelineCounters::default();
        run_pipeline(&def(operators), &rx, ports, &counters);
        counters
    }

    #[test]
    fn filtered_and_forwarded_events_ack_once_every_copy_is_gone() {
        let mut acks = Acks::default();
        let (out_tx, out_rx) = sync_channel(4);
        let (err_tx, _err_rx) = sync_channel::<Events>(4);
        let ports = [vec![out_tx], vec![err_tx]];
        let counters = run("[{ filter = 'event > 4' }]", &[10], &mut acks, &ports);
        let forwarded = out_rx.recv().expect("a batch on out");
        assert_eq!(forwarded.values.len(), 5);
        let mut outcomes = Vec::new();
        acks.collect(std::time::Duration::ZERO, &mut outcomes);
        assert!(
            outcomes.is_empty(),
            "the forwarded batch still holds the token"
        );
        drop(forwarded);
        acks.collect(std::time::Duration::ZERO, &mut outcomes);
        assert_eq!(outcomes, [Outcome::Ack(1)]);
        assert_eq!(
            counters
                .events_in
                .load(std::sync::atomic::Ordering::Relaxed),
            10
        );
    }

    #[test]
    fn a_batch_operator_holds_the_tokens_of_what_it_holds() {
        let mut acks = Acks::default();
        let (out_tx, out_rx) = sync_channel(8);
        let ports = [vec![out_tx], Vec::new()];
        run("[{ batch = { count = 4 } }]", &[2, 2, 2], &mut acks, &ports);
        let first = out_rx.recv().expect("the full batch");
        let last = out_rx.recv().expect("the rest, flushed at the end");
        assert_eq!(first.values.len(), 1);
        assert_eq!(last.values.len(), 1);
        let mut outcomes = Vec::new();
        drop(first);
        acks.collect(std::time::Duration::ZERO, &mut outcomes);
        assert!(
            !outcomes.contains(&Outcome::Ack(3)),
            "token 3's events are in the last batch: {outcomes:?}"
        );
        drop(last);
        acks.collect(std::time::Duration::ZERO, &mut outcomes);
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
        assert_eq!(acks.outstanding(), 0);
    }
}
