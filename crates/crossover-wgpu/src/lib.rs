//! crossover's portable GPU backend: wgpu (Vulkan, Metal, DX12; Mesa's llvmpipe where
//! there is no GPU) running the hand-written WGSL of `crossover-kernels`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use crossover_core::{Backend, CompileOptions};
//! # fn demo(graph: Arc<crossover_core::Graph>, host: Arc<dyn crossover_core::Evaluator>) -> crossover_core::Result<()> {
//! for a in crossover_wgpu::adapters(crossover_wgpu::AdapterSelection::Auto) {
//!     println!("{a}");
//! }
//! let gpu = crossover_wgpu::WgpuBackend::new(0, crossover_wgpu::AdapterSelection::Auto)?;
//! let exe = gpu.compile(graph, &CompileOptions { host_fallback: Some(host), ..Default::default() })?;
//! # Ok(()) }
//! ```
//!
//! ## Design
//! A [`WgpuBackend`] is one opened adapter with every compute pipeline built once.
//! [`Backend::compile`] uploads the weights and returns an executable whose runs record
//! all dispatches of a GPU-resident stretch of the graph into one submission; nodes the
//! GPU cannot run (ops without a kernel, non-f32 data) run on the host evaluator given as
//! [`CompileOptions::host_fallback`], and the copies this costs show up in the timings.
//! See `docs/wgpu.md`.

mod adapter;
mod attention;
mod exec;
mod gpu;
mod lower;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crossover_core::{
    Backend, CompileOptions, DType, DeviceId, DeviceInfo, DeviceKind, Executable, Graph, Node, Op,
    Result,
};

pub use adapter::{adapters, AdapterDesc, AdapterKind, AdapterSelection};
use exec::{Compiled, DevVal, NEVER_READ};
use gpu::Gpu;

/// The clock the compute stage of a run's [`RunOutput`](crossover_core::RunOutput)
/// timings is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputeClock {
    /// Timestamps the GPU writes at the start and end of each compute pass.
    Gpu,
    /// Host clocks around each submission and its wait: the adapter lacks
    /// `TIMESTAMP_QUERY`.
    Host,
}

impl std::fmt::Display for ComputeClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ComputeClock::Gpu => "GPU timestamps",
            ComputeClock::Host => "host clock",
        })
    }
}

/// One wgpu adapter as a crossover device (`wgpu:N`).
pub struct WgpuBackend {
    gpu: Arc<Gpu>,
}

impl WgpuBackend {
    /// Opens adapter `index` of [`adapters`]`(selection)`.
    pub fn new(index: usize, selection: AdapterSelection) -> Result<WgpuBackend> {
        let mut list = adapter::ordered(selection);
        if index >= list.len() {
            let names: Vec<String> = list.iter().map(|(d, _)| d.to_string()).collect();
            return Err(crossover_core::Error::Device {
                device: format!("wgpu:{index}"),
                message: if names.is_empty() {
                    "no wgpu adapter found (no Vulkan, Metal or DX12 driver); on Debian/Ubuntu `apt-get install mesa-vulkan-drivers` provides the software one".into()
                } else {
                    format!("no such adapter; found {}", names.join(", "))
                },
            });
        }
        let (desc, adapter) = list.swap_remove(index);
        Self::from_adapter(desc, &adapter)
    }

    /// Opens a specific adapter (from [`adapters`], or one the caller found itself).
    pub fn from_adapter(desc: AdapterDesc, adapter: &wgpu::Adapter) -> Result<WgpuBackend> {
        Ok(WgpuBackend {
            gpu: Arc::new(Gpu::open(desc, adapter)?),
        })
    }

    /// The adapter this backend drives.
    pub fn adapter(&self) -> &AdapterDesc {
        &self.gpu.desc
    }

    /// Where the compute stage of the timings comes from on this adapter.
    pub fn compute_clock(&self) -> ComputeClock {
        if self.gpu.timestamps {
            ComputeClock::Gpu
        } else {
            ComputeClock::Host
        }
    }

    /// Whether f16 tensors run on this adapter (it has `SHADER_F16`); elsewhere nodes on
    /// f16 data run on the host fallback.
    pub fn shader_f16(&self) -> bool {
        self.gpu.f16
    }

    /// The limits that bound what fits: largest buffer, largest storage binding,
    /// workgroup memory.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.gpu.limits
    }
}

impl Backend for WgpuBackend {
    /// wgpu does not report device memory. `memory_total` and `memory_free` are the
    /// largest buffer the adapter allows (`max_buffer_size`): a lower bound on what one
    /// model may hold, not the VRAM size. `compute_units` is unknown to wgpu and left 0.
    fn info(&self) -> DeviceInfo {
        let mut name = self.gpu.desc.name.clone();
        if self.gpu.desc.software {
            name.push_str(" (software)");
        }
        DeviceInfo {
            id: DeviceId {
                kind: DeviceKind::Wgpu,
                index: self.gpu.desc.index,
            },
            name,
            memory_total: self.gpu.limits.max_buffer_size,
            memory_free: self.gpu.limits.max_buffer_size,
            compute_units: 0,
        }
    }

    fn supports(&self, node: &Node) -> bool {
        lower::has_kernel(node)
    }

    fn compile(&self, graph: Arc<Graph>, options: &CompileOptions) -> Result<Box<dyn Executable>> {
        let on_gpu: Vec<bool> = graph.nodes.iter().map(lower::has_kernel).collect();
        if options.host_fallback.is_none() {
            let missing: Vec<String> = graph
                .nodes
                .iter()
                .zip(&on_gpu)
                .filter(|(_, g)| !**g)
                .map(|(n, _)| format!("{} ({})", n.label(&graph), n.op.name()))
                .take(8)
                .collect();
            if !missing.is_empty() {
                return Err(crossover_core::Error::Unsupported(format!(
                    "wgpu:{} has no kernel for nodes {}; pass CompileOptions::host_fallback to run them on the host",
                    self.gpu.desc.index,
                    missing.join(", ")
                )));
            }
        }

        let mut last_use = vec![NEVER_READ; graph.values.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                last_use[v.0] = i;
            }
        }
        for v in &graph.outputs {
            last_use[v.0] = usize::MAX;
        }
        let mut readers = vec![0usize; graph.values.len()];
        for n in &graph.nodes {
            for v in n.inputs.iter().flatten() {
                readers[v.0] += 1;
            }
        }
        let fuse_relu: Vec<bool> = (0..graph.nodes.len())
            .map(|i| {
                let n = &graph.nodes[i];
                let fusable = matches!(
                    &n.op,
                    Op::Linalg(crossover_core::op::LinalgOp::MatMul)
                        | Op::Linalg(crossover_core::op::LinalgOp::Gemm { .. })
                );
                let Some(Some(out)) = n.outputs.first() else {
                    return false;
                };
                fusable
                    && readers[out.0] == 1
                    && last_use[out.0] == i + 1
                    && graph.nodes.get(i + 1).is_some_and(|r| {
                        matches!(
                            r.op,
                            Op::Elementwise(crossover_core::op::ElementwiseOp::Relu)
                        ) && r.inputs.first() == Some(&Some(*out))
                    })
            })
            .collect();

        // An attention chain runs at its last node, where v is surely computed; what the
        // chain reads from outside stays alive until then.
        let mut attention = vec![None; graph.nodes.len()];
        let mut deferred = vec![false; graph.nodes.len()];
        for a in attention::find(&graph) {
            let (&last, earlier) = a.nodes.split_last().expect("a chain has nodes");
            for &j in &a.nodes {
                for v in graph.nodes[j].inputs.iter().flatten() {
                    if !a.produces(&graph, *v) {
                        last_use[v.0] = last_use[v.0].max(last);
                    }
                }
            }
            for &j in earlier {
                deferred[j] = true;
            }
            attention[last] = Some(a);
        }

        // Weights: every f32 constant a GPU node reads, uploaded once.
        let mut read_on_gpu = vec![false; graph.values.len()];
        for (n, g) in graph.nodes.iter().zip(&on_gpu) {
            if *g {
                for v in n.inputs.iter().flatten() {
                    read_on_gpu[v.0] = true;
                }
            }
        }
        let mut weights = HashMap::new();
        let mut weight_bytes = 0;
        for (id, t) in &graph.constants {
            let half = t.dtype() == DType::F16 && self.gpu.f16;
            if !read_on_gpu[id.0] || !(t.dtype() == DType::F32 || half) {
                continue;
            }
            // f16 weights are widened once, here.
            let wide = if half {
                Some(t.cast(DType::F32)?)
            } else {
                None
            };
            let data = exec::f32_data(wide.as_ref().unwrap_or(t))?;
            let name = &graph.value(*id).name;
            let buf = self.gpu.buffer(
                (data.len() * 4) as u64,
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                name,
            )?;
            if !data.is_empty() {
                self.gpu
                    .queue
                    .write_buffer(&buf, 0, bytemuck::cast_slice(&data));
            }
            weight_bytes += buf.size();
            weights.insert(
                *id,
                DevVal {
                    buf: Arc::new(buf),
                    shape: t.shape().to_vec(),
                    pooled: false,
                    half,
                },
            );
        }
        self.gpu.queue.submit([]);
        self.gpu.wait()?;

        Ok(Box::new(Compiled {
            gpu: self.gpu.clone(),
            graph,
            weights,
            weight_bytes,
            fallback: options.host_fallback.clone(),
            on_gpu,
            last_use,
            fuse_relu,
            attention,
            deferred,
            tapes: Mutex::new(HashMap::new()),
            workspace: AtomicU64::new(0),
        }))
    }
}
