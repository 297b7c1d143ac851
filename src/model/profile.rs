//! Where a network's time goes: every node of the plan timed, summed by
//! operator, as `edgeseg bench --profile` prints it.

use super::Model;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;
use tract_onnx::prelude::*;

/// The time of one kind of operator over the profiled runs.
#[derive(Clone, Debug, Serialize)]
pub struct OpTime {
    /// Operator name as tract's plan has it (`Conv`, `EdgesegInt8Conv`, `Add`…).
    pub op: String,
    /// Nodes of that operator in the plan.
    pub nodes: usize,
    /// Milliseconds per run, all those nodes together.
    pub ms_per_run: f64,
    /// Share of the summed node time.
    pub share: f64,
}

/// The time of one node over the profiled runs.
#[derive(Clone, Debug, Serialize)]
pub struct NodeTime {
    pub node: String,
    pub op: String,
    /// What tract says of the op (shapes, kernels), first line.
    pub info: String,
    pub ms_per_run: f64,
}

/// Where the time goes, by operator and by node, slowest first.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub ops: Vec<OpTime>,
    /// The slowest nodes (at most `TOP_NODES`).
    pub nodes: Vec<NodeTime>,
}

/// Nodes listed one by one in a profile.
pub const TOP_NODES: usize = 12;

impl Model {
    /// Run `input` `runs` times timing every node.
    pub fn profile(&self, input: &Tensor, runs: u32) -> Result<Profile> {
        let mut totals: HashMap<String, (f64, usize)> = HashMap::new();
        let mut per_node: HashMap<usize, f64> = HashMap::new();
        let mut state = self.plan.spawn().context("starting a profiling run")?;
        for run in 0..runs.max(1) {
            state
                .run_plan_with_eval(tvec!(input.clone().into()), |ctx, op_state, node, inputs| {
                    let t = Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                    let entry = totals.entry(node.op().name().to_string()).or_default();
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    entry.0 += ms;
                    *per_node.entry(node.id).or_default() += ms;
                    if run == 0 {
                        entry.1 += 1;
                    }
                    out
                })
                .with_context(|| format!("profiling {}", self.path.display()))?;
        }
        let sum: f64 = totals.values().map(|(ms, _)| ms).sum::<f64>().max(f64::MIN_POSITIVE);
        let mut ops: Vec<OpTime> = totals
            .into_iter()
            .map(|(op, (ms, nodes))| OpTime { op, nodes, ms_per_run: ms / runs.max(1) as f64, share: ms / sum })
            .collect();
        ops.sort_by(|a, b| b.ms_per_run.total_cmp(&a.ms_per_run));
        let graph = self.plan.model();
        let mut nodes: Vec<NodeTime> = per_node
            .into_iter()
            .map(|(id, ms)| {
                let node = graph.node(id);
                let info = node.op().info().ok().and_then(|i| i.into_iter().next()).unwrap_or_default();
                NodeTime { node: node.name.clone(), op: node.op().name().to_string(), info, ms_per_run: ms / runs.max(1) as f64 }
            })
            .collect();
        nodes.sort_by(|a, b| b.ms_per_run.total_cmp(&a.ms_per_run));
        nodes.truncate(TOP_NODES);
        Ok(Profile { ops, nodes })
    }
}
