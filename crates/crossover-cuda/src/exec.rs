//! Running a compiled graph: values live on the device or the host, each node runs where
//! the plan put it (or on the host when its shapes fall outside its kernel), and copies
//! between the two are part of the run and of its timings.

use std::collections::{HashMap, HashSet};
use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cudarc::driver::{sys, CudaEvent, CudaGraph};

use crossover_core::{
    invalid, DType, Error, Evaluator, Executable, Graph, MemoryUsage, Node, Result, RunOutput,
    StageTimings, Tensor, ValueId,
};

use crate::device::{DevBuf, Device, Func, Staging};
use crate::plan::{HostReason, Placement};

/// A value on the device: a pooled buffer (shared by reshapes) with its shape and dtype.
#[derive(Clone)]
pub(crate) struct DevVal {
    pub buf: Arc<DevBuf>,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl DevVal {
    pub fn ptr(&self) -> u64 {
        self.buf.ptr
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone)]
pub(crate) enum Val {
    Dev(DevVal),
    Host(Tensor),
}

impl Val {
    pub fn shape(&self) -> &[usize] {
        match self {
            Val::Dev(d) => &d.shape,
            Val::Host(t) => t.shape(),
        }
    }
}

/// Marks a run that cannot be captured into a CUDA graph (it copies between host and
/// device mid-run); the caller then runs it the ordinary way.
const NOT_CAPTURABLE: &str = "not capturable into a CUDA graph";

/// A model compiled for one CUDA device.
pub struct CudaExecutable {
    pub(crate) device: Arc<Device>,
    pub(crate) graph: Arc<Graph>,
    pub(crate) placements: Vec<Placement>,
    pub(crate) weights: HashMap<ValueId, DevVal>,
    pub(crate) weight_bytes: u64,
    pub(crate) fallback: Option<Arc<dyn Evaluator>>,
    /// For each value, the last node that reads it (`usize::MAX`: a graph output).
    pub(crate) last_use: Vec<usize>,
    pub(crate) tf32: bool,
    /// GEMM-like node → the activation node its epilogue absorbs.
    pub(crate) fusions: HashMap<usize, (usize, crossover_kernels::cuda::Activation)>,
    pub(crate) use_graphs: bool,
    pub(crate) graphs: Mutex<GraphCache>,
    pub(crate) peak: Mutex<u64>,
}

/// CUDA graphs per input signature: a signature seen twice is captured, then replayed.
#[derive(Default)]
pub(crate) struct GraphCache {
    seen: HashSet<Signature>,
    refused: HashSet<Signature>,
    ready: HashMap<Signature, Captured>,
}

type Signature = Vec<(DType, Vec<usize>)>;

/// A captured run: the graph and every buffer it touches, owned for its lifetime.
struct Captured {
    graph: SendGraph,
    inputs: Vec<Option<DevVal>>,
    outputs: Vec<Val>,
    _hold: Vec<Arc<DevBuf>>,
}

struct SendGraph(CudaGraph);
// SAFETY: the graph is only launched under the device's run lock, with its context bound.
unsafe impl Send for SendGraph {}
unsafe impl Sync for SendGraph {}

/// Capacity of the captured-graph cache; beyond it new shapes run uncaptured.
const MAX_GRAPHS: usize = 16;

impl CudaExecutable {
    /// Indices of the nodes that run on the host, with why.
    pub fn host_nodes(&self) -> Vec<(usize, HostReason)> {
        self.placements
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Placement::Host(r) => Some((i, r.clone())),
                Placement::Device => None,
            })
            .collect()
    }

    fn events(&self) -> Result<[CudaEvent; 4]> {
        let ev = || {
            self.device
                .ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| self.device.err("creating an event", e))
        };
        Ok([ev()?, ev()?, ev()?, ev()?])
    }

    fn record(&self, e: &CudaEvent) -> Result<()> {
        e.record(&self.device.stream)
            .map_err(|err| self.device.err("recording an event", err))
    }

    fn elapsed(&self, a: &CudaEvent, b: &CudaEvent) -> Result<Duration> {
        let ms = a
            .elapsed_ms(b)
            .map_err(|e| self.device.err("reading an event", e))?;
        Ok(Duration::from_secs_f64((ms.max(0.0) as f64) / 1e3))
    }

    fn run_locked(&self, staging: &mut Staging, inputs: &[Tensor]) -> Result<RunOutput> {
        let sig: Signature = inputs
            .iter()
            .map(|t| (t.dtype(), t.shape().to_vec()))
            .collect();
        let mut cache = self.graphs.lock().unwrap_or_else(|p| p.into_inner());
        if self.use_graphs
            && !cache.ready.contains_key(&sig)
            && cache.seen.contains(&sig)
            && !cache.refused.contains(&sig)
            && cache.ready.len() < MAX_GRAPHS
        {
            match self.capture(staging, inputs) {
                Ok(c) => {
                    cache.ready.insert(sig.clone(), c);
                }
                Err(e) if e.to_string().contains(NOT_CAPTURABLE) => {
                    cache.refused.insert(sig.clone());
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(c) = cache.ready.get(&sig) {
            return self.replay(staging, c, inputs);
        }
        cache.seen.insert(sig);
        drop(cache);
        self.interpret(staging, inputs)
    }

    /// The ordinary run: uploads, every node in order, downloads.
    fn interpret(&self, staging: &mut Staging, inputs: &[Tensor]) -> Result<RunOutput> {
        let ev = self.events()?;
        let (in_use0, _, _) = self.device.pool_usage(true);
        self.record(&ev[0])?;
        let mut run = Run::new(self, staging, false);
        run.load_inputs(inputs)?;
        self.record(&ev[1])?;
        run.nodes()?;
        self.record(&ev[2])?;
        let outputs = run.outputs(&ev[3])?;
        let (host_up, host_down) = (run.host_up, run.host_down);
        drop(run);
        let (_, peak, _) = self.device.pool_usage(false);
        self.finish(
            &ev,
            outputs,
            host_up,
            host_down,
            peak.saturating_sub(in_use0) as u64,
        )
    }

    fn finish(
        &self,
        ev: &[CudaEvent; 4],
        outputs: Vec<Tensor>,
        host_up: Duration,
        host_down: Duration,
        peak_bytes: u64,
    ) -> Result<RunOutput> {
        ev[3]
            .synchronize()
            .map_err(|e| self.device.err("waiting for the run", e))?;
        let up = self.elapsed(&ev[0], &ev[1])?;
        let compute = self.elapsed(&ev[1], &ev[2])?;
        let down = self.elapsed(&ev[2], &ev[3])?;
        {
            let mut p = self.peak.lock().unwrap_or_else(|p| p.into_inner());
            *p = (*p).max(peak_bytes);
        }
        Ok(RunOutput {
            outputs,
            timings: StageTimings {
                queue: Duration::ZERO,
                upload: up + host_up,
                compute: compute.saturating_sub(host_up + host_down),
                download: down + host_down,
            },
            peak_bytes,
        })
    }

    /// Records the run for these input shapes into a CUDA graph. Buffers are never
    /// recycled inside it, so the captured addresses stay valid for every replay.
    fn capture(&self, staging: &mut Staging, inputs: &[Tensor]) -> Result<Captured> {
        let mut run = Run::new(self, staging, true);
        run.load_inputs(inputs)?;
        self.device.sync()?;
        run.staging.reset();
        let input_vals: Vec<Option<DevVal>> = self
            .graph
            .inputs
            .iter()
            .map(|v| match &run.vals[v.0] {
                Some(Val::Dev(d)) => Some(d.clone()),
                _ => None,
            })
            .collect();
        if input_vals.iter().any(Option::is_none) {
            return Err(Error::Unsupported(NOT_CAPTURABLE.into()));
        }
        run.capturing = true;
        let stream = &self.device.stream;
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
            .map_err(|e| self.device.err("beginning graph capture", e))?;
        let body = run.nodes();
        let ended = stream.end_capture(
            sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH,
        );
        body?;
        let graph = ended
            .map_err(|e| self.device.err("ending graph capture", e))?
            .ok_or_else(|| Error::Unsupported(NOT_CAPTURABLE.into()))?;
        let outputs = self
            .graph
            .outputs
            .iter()
            .map(|&v| run.get(v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Captured {
            graph: SendGraph(graph),
            inputs: input_vals,
            outputs,
            _hold: run.hold.take().unwrap_or_default(),
        })
    }

    fn replay(&self, staging: &mut Staging, c: &Captured, inputs: &[Tensor]) -> Result<RunOutput> {
        let ev = self.events()?;
        self.record(&ev[0])?;
        for (t, d) in inputs.iter().zip(&c.inputs) {
            if let Some(d) = d {
                upload_into(&self.device, staging, t, d)?;
            }
        }
        self.record(&ev[1])?;
        c.graph
            .0
            .launch()
            .map_err(|e| self.device.err("launching the CUDA graph", e))?;
        self.record(&ev[2])?;
        let outputs = download_all(&self.device, staging, &c.outputs, Some(&ev[3]))?;
        self.finish(&ev, outputs, Duration::ZERO, Duration::ZERO, 0)
    }
}

impl Executable for CudaExecutable {
    fn run(&self, inputs: &[Tensor]) -> Result<RunOutput> {
        let mut staging = self.device.lock_run();
        self.device.bind()?;
        let r = self.run_locked(&mut staging, inputs);
        if r.is_err() {
            // Copies queued before the failure may still read the staging buffer.
            let _ = self.device.sync();
        }
        staging.reset();
        r
    }

    fn memory(&self) -> MemoryUsage {
        let (_, _, cached) = self.device.pool_usage(false);
        MemoryUsage {
            weights: self.weight_bytes,
            workspace: cached as u64,
            peak: *self.peak.lock().unwrap_or_else(|p| p.into_inner()) + self.weight_bytes,
        }
    }
}

/// The bytes of a POD tensor in row-major order.
pub(crate) fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    if t.dtype() == DType::String {
        return Err(Error::UnsupportedDType(
            "string tensors cannot go to a CUDA device".into(),
        ));
    }
    let t = t.to_standard_layout();
    crossover_core::with_array!(&t, a => {
        let s = a.as_slice().ok_or_else(|| invalid!("tensor is not contiguous"))?;
        // SAFETY: every non-string element type is plain old data (bool is one byte, 0 or 1).
        let b = unsafe {
            std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s))
        };
        Ok(b.to_vec())
    })
}

/// A host tensor from bytes the device produced.
pub(crate) fn tensor_from_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
    macro_rules! build {
        ($t:ty) => {{
            let n: usize = shape.iter().product();
            let mut v: Vec<$t> = vec![<$t>::default(); n];
            let want = std::mem::size_of_val(v.as_slice());
            if bytes.len() < want {
                return Err(invalid!("device returned {} bytes for {want}", bytes.len()));
            }
            // SAFETY: `v` holds exactly `want` bytes of a POD type; bools come from
            // bools and stay 0 or 1.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, want)
            };
            Tensor::from_vec(shape, v)
        }};
    }
    use half::{bf16, f16};
    match dtype {
        DType::F32 => build!(f32),
        DType::F64 => build!(f64),
        DType::F16 => build!(f16),
        DType::BF16 => build!(bf16),
        DType::I8 => build!(i8),
        DType::I16 => build!(i16),
        DType::I32 => build!(i32),
        DType::I64 => build!(i64),
        DType::U8 => build!(u8),
        DType::U16 => build!(u16),
        DType::U32 => build!(u32),
        DType::U64 => build!(u64),
        DType::Bool => build!(bool),
        DType::String => Err(Error::UnsupportedDType("string".into())),
    }
}

fn upload_into(device: &Device, staging: &mut Staging, t: &Tensor, d: &DevVal) -> Result<()> {
    let bytes = tensor_bytes(t)?;
    if bytes.is_empty() {
        return Ok(());
    }
    let p = staging.take(device, bytes.len())?;
    // SAFETY: `p` has room for `bytes` (Staging::take) and stays pinned until the stream
    // has run the copy (the buffer is only reused after a synchronisation).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        let src = std::slice::from_raw_parts(p as *const u8, bytes.len());
        cudarc::driver::result::memcpy_htod_async(d.ptr(), src, device.stream.cu_stream())
    }
    .map_err(|e| device.err("copying to the device", e))
}

/// Downloads device values (one synchronisation for all) and passes host ones through.
/// `done`, when given, is recorded once the copies are queued, so that it marks their end
/// on the GPU's clock rather than the host's unpacking.
fn download_all(
    device: &Device,
    staging: &mut Staging,
    vals: &[Val],
    done: Option<&CudaEvent>,
) -> Result<Vec<Tensor>> {
    let mut pending = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        if let Val::Dev(d) = v {
            let n = d.len() * d.dtype.size();
            if n == 0 {
                continue;
            }
            let p = staging.take(device, n)?;
            // SAFETY: `p` has room for `n` bytes and is not reused before the sync below.
            unsafe {
                let dst = std::slice::from_raw_parts_mut(p, n);
                cudarc::driver::result::memcpy_dtoh_async(dst, d.ptr(), device.stream.cu_stream())
            }
            .map_err(|e| device.err("copying from the device", e))?;
            pending.push((i, p, n));
        }
    }
    if let Some(e) = done {
        e.record(&device.stream)
            .map_err(|err| device.err("recording an event", err))?;
    }
    device.sync()?;
    let mut out: Vec<Option<Tensor>> = vals
        .iter()
        .map(|v| match v {
            Val::Host(t) => Some(t.clone()),
            Val::Dev(_) => None,
        })
        .collect();
    for (i, p, n) in pending {
        let Val::Dev(d) = &vals[i] else { continue };
        // SAFETY: the copy into `p` has completed (synchronised above).
        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, n) };
        out[i] = Some(tensor_from_bytes(d.dtype, &d.shape, bytes)?);
    }
    vals.iter()
        .zip(out)
        .map(|(v, t)| match t {
            Some(t) => Ok(t),
            None => match v {
                Val::Dev(d) => Tensor::zeros(d.dtype, &d.shape),
                Val::Host(t) => Ok(t.clone()),
            },
        })
        .collect()
}

/// The state of one run.
pub(crate) struct Run<'a> {
    pub exe: &'a CudaExecutable,
    pub staging: &'a mut Staging,
    pub vals: Vec<Option<Val>>,
    /// While capturing: every buffer allocated, kept for the graph's lifetime.
    pub hold: Option<Vec<Arc<DevBuf>>>,
    pub capturing: bool,
    /// Epilogue activation for the node being run (set for fused GEMMs).
    pub act: crossover_kernels::cuda::Activation,
    /// Activation nodes already applied by a GEMM's epilogue this run.
    fused_done: HashSet<usize>,
    pub host_up: Duration,
    pub host_down: Duration,
}

impl<'a> Run<'a> {
    fn new(exe: &'a CudaExecutable, staging: &'a mut Staging, hold: bool) -> Self {
        Run {
            exe,
            staging,
            vals: vec![None; exe.graph.values.len()],
            hold: hold.then(Vec::new),
            capturing: false,
            act: crossover_kernels::cuda::Activation::None,
            fused_done: HashSet::new(),
            host_up: Duration::ZERO,
            host_down: Duration::ZERO,
        }
    }

    /// Uploads the inputs that a device node reads; the others stay on the host.
    fn load_inputs(&mut self, inputs: &[Tensor]) -> Result<()> {
        let g = &self.exe.graph;
        let mut on_device = HashSet::new();
        for (node, p) in g.nodes.iter().zip(&self.exe.placements) {
            if *p == Placement::Device {
                on_device.extend(node.inputs.iter().flatten().copied());
            }
        }
        for (&v, t) in g.inputs.iter().zip(inputs) {
            self.vals[v.0] = Some(if on_device.contains(&v) {
                let d = self.alloc(t.dtype(), t.shape())?;
                upload_into(&self.exe.device, self.staging, t, &d)?;
                Val::Dev(d)
            } else {
                Val::Host(t.clone())
            });
        }
        Ok(())
    }

    fn nodes(&mut self) -> Result<()> {
        let g = self.exe.graph.clone();
        for (i, node) in g.nodes.iter().enumerate() {
            if self.fused_done.contains(&i) {
                for v in node.inputs.iter().flatten() {
                    if self.exe.last_use[v.0] == i {
                        self.vals[v.0] = None;
                    }
                }
                continue;
            }
            let fused = self.exe.fusions.get(&i).copied();
            let outs = match &self.exe.placements[i] {
                Placement::Device => {
                    self.act = fused.map_or(crossover_kernels::cuda::Activation::None, |f| f.1);
                    let r = self.device_node(node);
                    self.act = crossover_kernels::cuda::Activation::None;
                    match r {
                        Ok(Some(o)) => {
                            // The activation ran in the epilogue: its output is this one.
                            if let Some((j, _)) = fused {
                                if let (Some(Some(out)), Some(first)) =
                                    (g.nodes[j].outputs.first(), o.first())
                                {
                                    self.vals[out.0] = Some(first.clone());
                                }
                                self.fused_done.insert(j);
                            }
                            o
                        }
                        Ok(None) => self.host_node(node)?,
                        Err(e) => return Err(e.in_node(node.label(&g), node.op.name())),
                    }
                }
                Placement::Host(_) => self
                    .host_node(node)
                    .map_err(|e| e.in_node(node.label(&g), node.op.name()))?,
            };
            for (slot, v) in node.outputs.iter().zip(outs) {
                if let Some(id) = slot {
                    self.vals[id.0] = Some(v);
                }
            }
            // Free what no later node reads (stream order makes the reuse safe).
            for v in node.inputs.iter().flatten() {
                if self.exe.last_use[v.0] == i {
                    self.vals[v.0] = None;
                }
            }
        }
        Ok(())
    }

    fn outputs(&mut self, done: &CudaEvent) -> Result<Vec<Tensor>> {
        let vals = self
            .exe
            .graph
            .outputs
            .iter()
            .map(|&v| self.get(v))
            .collect::<Result<Vec<_>>>()?;
        download_all(&self.exe.device, self.staging, &vals, Some(done))
    }

    /// A value wherever it lives: computed this run, an uploaded weight, a constant.
    pub fn get(&self, v: ValueId) -> Result<Val> {
        if let Some(x) = &self.vals[v.0] {
            return Ok(x.clone());
        }
        if let Some(d) = self.exe.weights.get(&v) {
            return Ok(Val::Dev(d.clone()));
        }
        if let Some(t) = self.exe.graph.constants.get(&v) {
            return Ok(Val::Host(t.clone()));
        }
        Err(invalid!(
            "value {:?} is read before it is computed",
            self.exe.graph.value(v).name
        ))
    }

    pub fn input(&self, node: &Node, i: usize) -> Option<ValueId> {
        node.inputs.get(i).copied().flatten()
    }

    /// Input `i` on the device, uploading it if it lives on the host.
    pub fn dev(&mut self, node: &Node, i: usize) -> Result<DevVal> {
        let v = self
            .input(node, i)
            .ok_or_else(|| invalid!("missing input {i}"))?;
        match self.get(v)? {
            Val::Dev(d) => Ok(d),
            Val::Host(t) => {
                if self.capturing {
                    return Err(Error::Unsupported(NOT_CAPTURABLE.into()));
                }
                let t0 = Instant::now();
                let d = self.alloc(t.dtype(), t.shape())?;
                upload_into(&self.exe.device, self.staging, &t, &d)?;
                self.host_up += t0.elapsed();
                // Later readers in this run reuse the copy.
                self.vals[v.0] = Some(Val::Dev(d.clone()));
                Ok(d)
            }
        }
    }

    pub fn opt_dev(&mut self, node: &Node, i: usize) -> Result<Option<DevVal>> {
        match self.input(node, i) {
            Some(_) => self.dev(node, i).map(Some),
            None => Ok(None),
        }
    }

    /// Input `i` on the host, downloading it if it lives on the device.
    pub fn host(&mut self, node: &Node, i: usize) -> Result<Option<Tensor>> {
        let Some(v) = self.input(node, i) else {
            return Ok(None);
        };
        match self.get(v)? {
            Val::Host(t) => Ok(Some(t)),
            Val::Dev(d) => {
                if self.capturing {
                    return Err(Error::Unsupported(NOT_CAPTURABLE.into()));
                }
                let t0 = Instant::now();
                let t = download_all(&self.exe.device, self.staging, &[Val::Dev(d)], None)?
                    .pop()
                    .ok_or_else(|| invalid!("download returned nothing"))?;
                self.staging.reset();
                self.host_down += t0.elapsed();
                Ok(Some(t))
            }
        }
    }

    pub fn alloc(&mut self, dtype: DType, shape: &[usize]) -> Result<DevVal> {
        let n = crossover_core::tensor::checked_numel(shape, dtype)?;
        let buf = Arc::new(self.exe.device.alloc(n * dtype.size())?);
        if let Some(h) = &mut self.hold {
            h.push(buf.clone());
        }
        Ok(DevVal {
            buf,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Launches a kernel by name on the run's stream.
    ///
    /// # Safety
    /// As [`Device::launch`]: `params` match the kernel and point at live device memory.
    pub unsafe fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &mut [*mut c_void],
    ) -> Result<()> {
        let f: Func = self.exe.device.func(name)?;
        // SAFETY: forwarded to the caller.
        unsafe { self.exe.device.launch(f, grid, block, params) }
    }

    /// Runs a node on the host: Shape and Size from metadata, the rest by the evaluator.
    fn host_node(&mut self, node: &Node) -> Result<Vec<Val>> {
        use crossover_core::op::LayoutOp;
        use crossover_core::Op;
        match &node.op {
            Op::Layout(LayoutOp::Shape { start, end }) => {
                let v = self
                    .input(node, 0)
                    .ok_or_else(|| invalid!("Shape needs an input"))?;
                let shape = self.get(v)?.shape().to_vec();
                let r = shape.len() as i64;
                let clamp = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
                let (s, e) = (clamp(*start), clamp(end.unwrap_or(r)));
                let dims: Vec<i64> = shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
                return Ok(vec![Val::Host(Tensor::from_vec(&[dims.len()], dims)?)]);
            }
            Op::Layout(LayoutOp::Size) => {
                let v = self
                    .input(node, 0)
                    .ok_or_else(|| invalid!("Size needs an input"))?;
                let n: usize = self.get(v)?.shape().iter().product();
                return Ok(vec![Val::Host(Tensor::scalar(n as i64))]);
            }
            _ => {}
        }
        let Some(eval) = self.exe.fallback.clone() else {
            return Err(Error::Unsupported(format!(
                "{} has no CUDA kernel for these inputs and no host fallback was given",
                node.op.name()
            )));
        };
        // While capturing, host work on host values (shape arithmetic) is fine: it depends
        // only on the input shapes, fixed for the captured graph. Device inputs refuse.
        let mut ins = Vec::with_capacity(node.inputs.len());
        for i in 0..node.inputs.len() {
            ins.push(self.host(node, i)?);
        }
        let refs: Vec<Option<&Tensor>> = ins.iter().map(Option::as_ref).collect();
        Ok(eval.eval(node, &refs)?.into_iter().map(Val::Host).collect())
    }
}

/// For each value, the index of the last node that reads it; graph outputs never die.
pub(crate) fn last_uses(graph: &Graph) -> Vec<usize> {
    let mut last = vec![0usize; graph.values.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            last[v.0] = i;
        }
    }
    for v in &graph.outputs {
        last[v.0] = usize::MAX;
    }
    last
}
