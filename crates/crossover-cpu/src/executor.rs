//! Runs a graph step by step — a node, or a chain of nodes fused into one kernel — freeing
//! each intermediate after its last reader.

use std::sync::Arc;
use std::time::Instant;

use crossover_core::{
    CompileOptions, Error, Executable, Graph, MemoryUsage, Result, RunOutput, StageTimings, Tensor,
    ValueId,
};

use crate::fuse::{self, Fusion};
use crate::kernels;
use crate::workers::Workers;

enum Work {
    Node(usize),
    Fused(Fusion),
}

struct Step {
    work: Work,
    /// Values whose last reader is this step (graph outputs excluded).
    frees: Vec<usize>,
}

impl Step {
    fn inputs<'a>(&'a self, g: &'a Graph) -> Box<dyn Iterator<Item = ValueId> + 'a> {
        match &self.work {
            Work::Node(i) => Box::new(g.nodes[*i].inputs.iter().flatten().copied()),
            Work::Fused(f) => Box::new(f.inputs.iter().copied()),
        }
    }
}

pub struct CpuExecutable {
    graph: Arc<Graph>,
    plan: Plan,
    workers: Workers,
    weights: u64,
}

/// What a graph needs to run on the CPU: its constants by value index, so a run never
/// looks them up in a map, and the order of steps with the values each one frees.
pub(crate) struct Plan {
    constants: Vec<Option<Tensor>>,
    steps: Vec<Step>,
}

impl Plan {
    pub(crate) fn new(graph: &Graph) -> Result<Plan> {
        let n = graph.values.len();
        let mut constants = vec![None; n];
        for (id, t) in &graph.constants {
            constants[id.0] = Some(t.clone());
        }
        for node in &graph.nodes {
            if !kernels::supports(&node.op) {
                return Err(Error::UnsupportedOp {
                    op: node.op.name().into(),
                    opset: graph.opset,
                }
                .in_node(node.label(graph), node.op.name()));
            }
        }
        let mut fused: Vec<Option<Fusion>> = (0..graph.nodes.len()).map(|_| None).collect();
        let mut swallowed = vec![false; graph.nodes.len()];
        for f in fuse::find(graph) {
            // A chain runs where its last node was: every input it reads (a mask computed
            // between its nodes, say) exists by then.
            let last = *f.nodes.iter().max().expect("a chain has nodes");
            for &n in &f.nodes {
                swallowed[n] = n != last;
            }
            fused[last] = Some(f);
        }
        let mut steps: Vec<Step> = Vec::new();
        for (i, f) in fused.into_iter().enumerate() {
            let work = match f {
                Some(f) => Work::Fused(f),
                None if swallowed[i] => continue,
                None => Work::Node(i),
            };
            steps.push(Step {
                work,
                frees: Vec::new(),
            });
        }
        let mut last_use = vec![None; n];
        for (i, step) in steps.iter().enumerate() {
            for v in step.inputs(graph) {
                last_use[v.0] = Some(i);
            }
        }
        for (v, last) in last_use.iter().enumerate() {
            let keep = graph.outputs.iter().any(|o| o.0 == v) || constants[v].is_some();
            if let (Some(i), false) = (last, keep) {
                steps[*i].frees.push(v);
            }
        }
        // Weights only fused steps read live in those steps, in the layout they use.
        for (v, c) in constants.iter_mut().enumerate() {
            if last_use[v].is_none() && !graph.outputs.iter().any(|o| o.0 == v) {
                *c = None;
            }
        }
        Ok(Plan { constants, steps })
    }

    /// Runs `g` (the graph this plan was made for) with its inputs and any other values
    /// bound beforehand (a subgraph's captures); returns the outputs and peak bytes.
    pub(crate) fn execute(
        &self,
        g: &Graph,
        inputs: &[Tensor],
        bound: &[(ValueId, Tensor)],
    ) -> Result<(Vec<Tensor>, u64)> {
        let mut slots: Vec<Option<Tensor>> = vec![None; g.values.len()];
        let mut live: u64 = 0;
        let mut peak: u64 = 0;
        for (id, t) in g
            .inputs
            .iter()
            .zip(inputs)
            .chain(bound.iter().map(|(i, t)| (i, t)))
        {
            live += t.nbytes() as u64;
            slots[id.0] = Some(t.clone());
        }

        for step in &self.steps {
            let value = |v: ValueId| slots[v.0].as_ref().or(self.constants[v.0].as_ref());
            match &step.work {
                Work::Node(i) => {
                    let node = &g.nodes[*i];
                    let outputs = {
                        let args: Vec<Option<&Tensor>> =
                            node.inputs.iter().map(|v| v.and_then(value)).collect();
                        kernels::eval(&node.op, &args)
                            .map_err(|e| e.in_node(node.label(g), node.op.name()))?
                    };
                    let wanted = node
                        .outputs
                        .iter()
                        .rposition(Option::is_some)
                        .map_or(0, |i| i + 1);
                    if outputs.len() < wanted {
                        return Err(Error::Device {
                            device: "cpu".into(),
                            message: format!(
                                "{} produced {} outputs where the node needs {wanted}",
                                node.op.name(),
                                outputs.len()
                            ),
                        }
                        .in_node(node.label(g), node.op.name()));
                    }
                    for (slot, t) in node.outputs.iter().zip(outputs) {
                        if let Some(id) = slot {
                            live += t.nbytes() as u64;
                            slots[id.0] = Some(t);
                        }
                    }
                }
                Work::Fused(f) => {
                    let head = &g.nodes[f.nodes[0]];
                    let args = f
                        .inputs
                        .iter()
                        .map(|&v| {
                            value(v).ok_or_else(|| {
                                Error::InvalidModel(format!(
                                    "{:?} is read before it is computed",
                                    g.value(v).name
                                ))
                            })
                        })
                        .collect::<Result<Vec<&Tensor>>>()?;
                    let y = f
                        .kernel
                        .run(&args)
                        .map_err(|e| e.in_node(head.label(g), head.op.name()))?;
                    live += y.nbytes() as u64;
                    slots[f.output.0] = Some(y);
                }
            }
            peak = peak.max(live);
            for &v in &step.frees {
                if let Some(t) = slots[v].take() {
                    live -= t.nbytes() as u64;
                }
            }
        }
        let outputs = g
            .outputs
            .iter()
            .map(|id| {
                slots[id.0]
                    .clone()
                    .or_else(|| self.constants[id.0].clone())
                    .ok_or_else(|| {
                        Error::InvalidModel(format!(
                            "output {:?} was never computed",
                            g.value(*id).name
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        Ok((outputs, peak))
    }
}

/// Runs a graph on host tensors in the calling thread (or its rayon pool), with extra
/// values bound by id: how control-flow kernels run their subgraphs.
pub(crate) fn run_graph(
    plan: &Plan,
    graph: &Graph,
    inputs: &[Tensor],
    bound: &[(ValueId, Tensor)],
) -> Result<Vec<Tensor>> {
    Ok(plan.execute(graph, inputs, bound)?.0)
}

/// Has glibc keep freed tensor buffers for reuse instead of handing them back to the
/// kernel. By default a buffer above a few MiB is its own `mmap`, so every run's
/// intermediate values fault in freshly zeroed pages (a third of the encoder's time at
/// batch 8 on a 2-core VM); kept in the heap, the next run reuses them. The cost is that
/// the process keeps its peak heap, as ONNX Runtime's CPU arena does. Process-wide, set
/// once, before the first model runs.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; 32 MiB is glibc's
            // largest mmap threshold.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

impl CpuExecutable {
    pub fn new(graph: Arc<Graph>, options: &CompileOptions) -> Result<Self> {
        keep_freed_buffers();
        let plan = Plan::new(&graph)?;
        let workers = Workers::new(options.threads, options.allow_spinning)?;
        let weights = graph.constants.values().map(|t| t.nbytes() as u64).sum();
        Ok(CpuExecutable {
            graph,
            plan,
            workers,
            weights,
        })
    }
}

impl Executable for CpuExecutable {
    fn run(&self, inputs: &[Tensor]) -> Result<RunOutput> {
        self.graph.check_inputs(inputs)?;
        let start = Instant::now();
        let (outputs, peak) = self
            .workers
            .run(|| self.plan.execute(&self.graph, inputs, &[]))?;
        let timings = StageTimings {
            compute: start.elapsed(),
            ..Default::default()
        };
        Ok(RunOutput {
            outputs,
            timings,
            peak_bytes: peak,
        })
    }

    fn memory(&self) -> MemoryUsage {
        MemoryUsage {
            weights: self.weights,
            workspace: 0,
            peak: 0,
        }
    }
}
