//! crossover's CUDA backend: the driver API through cudarc, loaded at run time, and the
//! hand-written PTX of `crossover-kernels`.
//!
//! ## Design
//! - **No CUDA at build time.** cudarc's `dynamic-loading` opens `libcuda.so` when a device
//!   is first asked for, so the same binary (and Python wheel) runs where no NVIDIA driver
//!   exists; [`devices`] then says why, as `CUDA not available: <reason>`.
//! - **One context and stream per device**, shared by every model compiled for it; runs on
//!   a device are serialised (they share the stream and the pinned staging buffer).
//! - **Memory:** a caching pool (per-size free lists, so steady runs never call
//!   `cuMemAlloc`), weights uploaded once by [`Backend::compile`], inputs and outputs
//!   through pinned memory with async copies. CUDA events split each run into upload,
//!   compute and download.
//! - **Placement:** [`plan::partition`] puts each node on the GPU or the host; host nodes
//!   run through [`CompileOptions::host_fallback`] inside the same run, their copies
//!   counted in the timings. [`CudaExecutable::host_nodes`] lists them.
//! - **Launch overhead:** the second run with the same input shapes is captured into a
//!   CUDA graph, later ones replay it (when no node needs the host mid-run).

mod device;
mod exec;
pub mod launch;
mod ops;
pub mod plan;
pub mod visible;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crossover_core::{Backend, CompileOptions, DeviceInfo, Error, Executable, Graph, Node, Result};

pub use device::{devices, NotAvailable};
pub use exec::CudaExecutable;
pub use plan::{HostReason, NodePlacement, Placement};

use device::Device;
use exec::{DevVal, GraphCache};

/// Knobs of the CUDA backend.
#[derive(Clone, Copy, Debug)]
pub struct CudaOptions {
    /// Run f32 matrix products on tensor cores in TF32 (10-bit mantissa inputs, f32
    /// accumulation), as cuBLAS does when allowed. Off by default: results then match the
    /// CPU to f32 rounding.
    pub tf32: bool,
    /// Capture repeated shapes into CUDA graphs.
    pub graphs: bool,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            tf32: false,
            graphs: true,
        }
    }
}

/// One CUDA device as a crossover [`Backend`].
pub struct CudaBackend {
    device: Arc<Device>,
    options: CudaOptions,
}

impl CudaBackend {
    /// Opens `cuda:<index>` (an index into [`devices`]): context, stream, PTX modules.
    pub fn new(index: usize) -> Result<CudaBackend> {
        Self::with_options(index, CudaOptions::default())
    }

    pub fn with_options(index: usize, options: CudaOptions) -> Result<CudaBackend> {
        Ok(CudaBackend {
            device: Device::open(index)?,
            options,
        })
    }

    /// The compute capability, e.g. `(8, 0)` for an A100.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.device.compute_capability
    }

    /// Where each node of `graph` would run; no GPU needed (see [`plan::report`]).
    pub fn placements(graph: &Graph) -> Vec<NodePlacement> {
        plan::report(graph)
    }
}

impl Backend for CudaBackend {
    fn info(&self) -> DeviceInfo {
        self.device.info().unwrap_or_else(|_| DeviceInfo {
            id: crossover_core::DeviceId {
                kind: crossover_core::DeviceKind::Cuda,
                index: self.device.index,
            },
            name: "CUDA device (query failed)".into(),
            memory_total: 0,
            memory_free: 0,
            compute_units: 0,
        })
    }

    fn supports(&self, node: &Node) -> bool {
        plan::supports_op(node)
    }

    fn compile(&self, graph: Arc<Graph>, options: &CompileOptions) -> Result<Box<dyn Executable>> {
        Ok(Box::new(self.compile_cuda(graph, options)?))
    }
}

impl CudaBackend {
    /// [`Backend::compile`] with the concrete type, for [`CudaExecutable::host_nodes`].
    pub fn compile_cuda(
        &self,
        graph: Arc<Graph>,
        options: &CompileOptions,
    ) -> Result<CudaExecutable> {
        let placements = plan::partition(&graph);
        if options.host_fallback.is_none() {
            let needs_eval = |p: &Placement, n: &Node| {
                matches!(p, Placement::Host(_))
                    && !matches!(
                        n.op,
                        crossover_core::Op::Layout(
                            crossover_core::op::LayoutOp::Shape { .. }
                                | crossover_core::op::LayoutOp::Size
                        )
                    )
            };
            if let Some((p, n)) = placements
                .iter()
                .zip(&graph.nodes)
                .find(|(p, n)| needs_eval(p, n))
            {
                let Placement::Host(reason) = p else {
                    unreachable!()
                };
                return Err(Error::Unsupported(format!(
                    "node {:?} ({}) cannot run on cuda:{} ({reason}) and no host fallback was given",
                    n.label(&graph),
                    n.op.name(),
                    self.device.index
                )));
            }
        }
        self.device.bind()?;
        // Weights: constants that a device node reads as data, uploaded once.
        let mut weights = HashMap::new();
        let mut weight_bytes = 0u64;
        {
            let mut staging = self.device.lock_run();
            for (node, p) in graph.nodes.iter().zip(&placements) {
                if *p != Placement::Device {
                    continue;
                }
                for (i, v) in node.inputs.iter().enumerate() {
                    let Some(v) = v else { continue };
                    if weights.contains_key(v) || plan::is_host_param(node, i) {
                        continue;
                    }
                    let Some(t) = graph.constants.get(v) else {
                        continue;
                    };
                    if t.dtype() == crossover_core::DType::String {
                        continue;
                    }
                    let bytes = exec::tensor_bytes(t)?;
                    let buf = Arc::new(self.device.alloc(bytes.len())?);
                    if !bytes.is_empty() {
                        // SAFETY: `buf` holds `bytes.len()` bytes; the copy is synchronous.
                        unsafe { cudarc::driver::result::memcpy_htod_sync(buf.ptr, &bytes) }
                            .map_err(|e| self.device.err("uploading weights", e))?;
                    }
                    weight_bytes += bytes.len() as u64;
                    weights.insert(
                        *v,
                        DevVal {
                            buf,
                            shape: t.shape().to_vec(),
                            dtype: t.dtype(),
                        },
                    );
                }
            }
            staging.reset();
        }
        Ok(CudaExecutable {
            fusions: plan::epilogue_fusions(&graph, &placements),
            device: self.device.clone(),
            last_use: exec::last_uses(&graph),
            graph,
            placements,
            weights,
            weight_bytes,
            fallback: options.host_fallback.clone(),
            tf32: self.options.tf32,
            use_graphs: self.options.graphs,
            graphs: Mutex::new(GraphCache::default()),
            peak: Mutex::new(0),
        })
    }
}
