//! Builds a plan's tasks before anything runs: every plugin instance and processor chain, with
//! every problem collected (so a deployment starts whole or not at all), and the circuit
//! breaker's wiring (which sources feed which sink).

use std::sync::Arc;

use temblor_shim::{Value, abi::CodecBox};

use super::{
    dead_letter::DeadLetter,
    live::{Cells, Instance, Live},
    sink::SinkTask,
    source::{Gate, SourceTask},
};
use crate::{
    deploy::{ConnectorPlan, Deployment, Link, Named},
    processors::{self, Postprocessor, Preprocessor},
    registry::Registry,
};

/// The connectors whose sources feed connector `sink`'s sink, through any pipeline: those a
/// sink pauses while it cannot write. Sorted, each once.
pub(crate) fn feeding(links: &[Link], sink: usize) -> Vec<usize> {
    let into: Vec<usize> = links
        .iter()
        .filter_map(|l| match *l {
            Link::PipelineToSink {
                pipeline,
                connector,
                ..
            } if connector == sink => Some(pipeline),
            _ => None,
        })
        .collect();
    let mut sources: Vec<usize> = links
        .iter()
        .filter_map(|l| match *l {
            Link::SourceToPipeline {
                connector,
                pipeline,
            } if into.contains(&pipeline) => Some(connector),
            _ => None,
        })
        .collect();
    sources.sort_unstable();
    sources.dedup();
    sources
}

/// Whether connector `i` appears in any link.
pub(crate) fn linked(links: &[Link], i: usize) -> bool {
    links.iter().any(|l| match *l {
        Link::SourceToPipeline { connector, .. } | Link::PipelineToSink { connector, .. } => {
            connector == i
        }
    })
}

/// What the tasks are built from, and what went wrong building them.
pub(crate) struct Builder<'a> {
    pub(crate) deployment: &'a Deployment,
    pub(crate) registry: &'a Registry,
    pub(crate) cells: Cells,
    pub(crate) problems: Vec<String>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(deployment: &'a Deployment, registry: &'a Registry) -> Self {
        Self {
            deployment,
            registry,
            cells: Cells::default(),
            problems: Vec::new(),
        }
    }

    /// Builds the first instance of a plugin for connector `id`, or records why it cannot.
    fn live<T: Instance>(
        &mut self,
        what: &str,
        plugin: &str,
        id: &str,
        config: &Value,
    ) -> Option<Live<T>> {
        let Some(p) = self.registry.get(plugin) else {
            self.problems
                .push(format!("{what} '{id}': plugin '{plugin}' is not loaded"));
            return None;
        };
        let cell = self.cells.get_or_add(p);
        // The constructor's log lines name the connector as its thread's do (no plugin says it).
        let _span = tracing::info_span!("connector", id = %id).entered();
        match Live::new(id, plugin, config, cell) {
            Ok(live) => Some(live),
            Err(e) => {
                self.problems
                    .push(format!("{what} '{id}' (plugin '{plugin}'): {e}"));
                None
            }
        }
    }

    fn processors<T>(
        &mut self,
        id: &str,
        list: &[Named],
        new: impl Fn(&Named) -> Result<T, processors::ProcessorError>,
    ) -> Vec<T> {
        list.iter()
            .filter_map(|n| {
                new(n)
                    .map_err(|e| self.problems.push(format!("connector '{id}': {e}")))
                    .ok()
            })
            .collect()
    }

    /// Connector `i`'s id, its source or sink instance (`what`) and its codec, each built or
    /// its problem recorded.
    fn connector<T: Instance>(
        &mut self,
        i: usize,
        plan: &ConnectorPlan,
        what: &str,
    ) -> (String, Option<Live<T>>, Option<Live<CodecBox>>) {
        let spec = &self.deployment.connectors[i];
        let id = spec.id.get_ref().clone();
        let instance = self.live(what, spec.plugin.get_ref(), &id, &plan.config);
        let codec = self.live(
            "codec of connector",
            &plan.codec.name,
            &id,
            &plan.codec.config,
        );
        (id, instance, codec)
    }

    /// The source task of connector `i`, if its plugin, codec and preprocessors build.
    pub(crate) fn source(
        &mut self,
        i: usize,
        plan: &ConnectorPlan,
        gate: Arc<Gate>,
    ) -> Option<SourceTask> {
        let (id, source, codec) = self.connector(i, plan, "source");
        // Checked here; each stream builds its own chain from the list.
        let pre = self.processors(&id, &plan.preprocessors, Preprocessor::new);
        if pre.len() != plan.preprocessors.len() {
            return None;
        }
        Some(SourceTask {
            decoder: codec?,
            source: source?,
            pre: plan.preprocessors.clone(),
            streams: std::collections::HashMap::new(),
            id,
            home: std::sync::mpsc::channel(),
            restart: plan.restart,
            failures: 0,
            acks: crate::delivery::Acks::waking(Arc::clone(gate.wakeup())),
            wants_acks: false,
            notified: false,
            gate,
            reset: false,
            stopping: false,
        })
    }

    /// The sink task of connector `i`, if its plugin, codec and postprocessors build.
    pub(crate) fn sink(
        &mut self,
        i: usize,
        plan: &ConnectorPlan,
        feeds: Vec<Arc<Gate>>,
    ) -> Option<SinkTask> {
        let (id, sink, codec) = self.connector(i, plan, "sink");
        let post = self.processors(&id, &plan.postprocessors, Postprocessor::new);
        Some(SinkTask {
            encoder: codec?,
            sink: sink?,
            post,
            id,
            restart: plan.restart,
            retries: plan.retries,
            failures: 0,
            dead: false,
            dead_letter: plan.dead_letter.clone().map(DeadLetter::new),
            feeds,
            paused: false,
            pending: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{deploy::Port, engine::testing};

    fn to_sink(pipeline: usize, connector: usize) -> Link {
        Link::PipelineToSink {
            pipeline,
            port: Port::Out,
            connector,
        }
    }

    fn from_source(connector: usize, pipeline: usize) -> Link {
        Link::SourceToPipeline {
            connector,
            pipeline,
        }
    }

    #[test]
    fn a_sink_is_fed_by_the_sources_of_every_pipeline_into_it() {
        // Sources 0 and 1 into pipeline 0, source 1 also into pipeline 1, source 2 into
        // pipeline 2; pipelines 0 and 1 into sink 3, pipeline 2 into sink 4.
        let links = [
            from_source(1, 0),
            from_source(0, 0),
            from_source(1, 1),
            from_source(2, 2),
            to_sink(0, 3),
            to_sink(1, 3),
            to_sink(2, 4),
        ];
        assert_eq!(feeding(&links, 3), [0, 1]);
        assert_eq!(feeding(&links, 4), [2]);
        assert!(feeding(&links, 0).is_empty(), "a source is fed by nothing");
        assert!(linked(&links, 2) && linked(&links, 4));
        assert!(!linked(&links, 5));
    }

    #[test]
    fn every_problem_is_collected_and_nothing_is_built() {
        let registry = testing::registry(true);
        let (d, plan) = testing::deployment(r#"["a"]"#, "", &registry);
        let mut b = Builder::new(&d, &registry);
        let gate = Arc::new(Gate::default());
        assert!(b.source(0, &plan.connectors[0], gate).is_none());
        assert_eq!(b.problems.len(), 1, "{:?}", b.problems);
        assert!(
            b.problems[0].starts_with("codec of connector 'in' (plugin 'ver'): "),
            "{:?}",
            b.problems
        );
        assert!(
            b.problems[0].ends_with("broken on purpose"),
            "{:?}",
            b.problems
        );
    }

    #[test]
    fn a_source_gets_its_plugin_codec_and_preprocessors() {
        let registry = testing::registry(false);
        let (d, plan) = testing::deployment(
            r#"["a"]"#,
            r#"preprocessors = ["separate", "remove-empty"]"#,
            &registry,
        );
        let mut b = Builder::new(&d, &registry);
        let task = b
            .source(0, &plan.connectors[0], Arc::new(Gate::default()))
            .expect("builds");
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        assert_eq!(task.id, "in");
        let names: Vec<&str> = task.pre.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["separate", "remove-empty"]);
        // Both plugins have a cell, so a reload can find them.
        assert_eq!(b.cells.names(), ["chunks", "ver"]);
    }
}
