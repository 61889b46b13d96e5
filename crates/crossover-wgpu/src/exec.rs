//! A model compiled for one adapter, and the per-run machinery.
//!
//! ## Design
//! Compile uploads every f32 constant once and decides which nodes the GPU may run.
//! A run walks the nodes in order: a GPU node appends a dispatch to the run's command
//! list; a node placed on the host (unsupported op or dtype) first submits that list,
//! downloads the values it reads, runs on the [`Evaluator`] and leaves its outputs on
//! the host, to be uploaded only if a GPU node reads them. A model the GPU runs entirely
//! therefore costs one upload, one submission and one readback of its outputs.
//!
//! Everything a run creates (work buffers, upload and readback buffers, parameter
//! blocks, bind groups) is recorded on a [`Tape`]; tapes are cached per input shapes and
//! replayed, so a second run at the same shapes allocates nothing. A run takes a tape
//! out of the cache and puts it back after, so concurrent runs never share buffers. Work
//! buffers are recycled by liveness within a run: a value's buffer returns to the free
//! list after its last reader.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossover_core::op::ElementwiseOp;
use crossover_core::{
    DType, Evaluator, Executable, Graph, MemoryUsage, Node, Op, Result, RunOutput, StageTimings,
    Tensor, ValueId,
};
use crossover_kernels::wgsl::{self, Shader};

use crate::gpu::{padded, Gpu};

/// A value on the device: a contiguous f32 buffer and its shape.
#[derive(Clone)]
pub(crate) struct DevVal {
    pub buf: Arc<wgpu::Buffer>,
    pub shape: Vec<usize>,
    /// From the run's work pool (returns to it after the last reader).
    pub pooled: bool,
    /// An f16 tensor, held as f32 between its upload and its readback.
    pub half: bool,
}

impl DevVal {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where a value lives during a run; both when it was copied.
#[derive(Clone, Default)]
pub(crate) struct Val {
    pub host: Option<Tensor>,
    pub dev: Option<DevVal>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Work,
    Upload,
    Readback,
}

enum Item {
    Buffer {
        buf: Arc<wgpu::Buffer>,
        role: Role,
    },
    Params {
        buf: Arc<wgpu::Buffer>,
        words: Vec<u32>,
    },
    Bind {
        group: Arc<wgpu::BindGroup>,
        key: Vec<usize>,
    },
    Clock(Clock),
}

/// Times one compute pass on the GPU clock: two timestamps, resolved and read back.
#[derive(Clone)]
struct Clock {
    set: Arc<wgpu::QuerySet>,
    resolve: Arc<wgpu::Buffer>,
    readback: Arc<wgpu::Buffer>,
}

/// The resources of one run, replayable at the same input shapes.
#[derive(Default)]
pub(crate) struct Tape {
    items: Vec<Item>,
}

impl Tape {
    fn bytes(&self) -> u64 {
        self.items
            .iter()
            .map(|i| match i {
                Item::Buffer { buf, role } if *role != Role::Readback => buf.size(),
                _ => 0,
            })
            .sum()
    }
}

enum Cmd {
    Dispatch {
        pipeline: usize,
        group: Arc<wgpu::BindGroup>,
        grid: (u32, u32, u32),
    },
    Copy {
        src: Arc<wgpu::Buffer>,
        dst: Arc<wgpu::Buffer>,
        bytes: u64,
    },
}

pub(crate) struct Compiled {
    pub gpu: Arc<Gpu>,
    pub graph: Arc<Graph>,
    pub weights: HashMap<ValueId, DevVal>,
    pub weight_bytes: u64,
    pub fallback: Option<Arc<dyn Evaluator>>,
    /// Per node: whether the op has a kernel at all (dtype is checked per run).
    pub on_gpu: Vec<bool>,
    /// Per value: the last node that reads it; `usize::MAX` for graph outputs.
    pub last_use: Vec<usize>,
    /// Per node: a Relu right after it is folded into its epilogue (Gemm, MatMul).
    pub fuse_relu: Vec<bool>,
    /// Per node: the attention chain that ends there, tried as one kernel.
    pub attention: Vec<Option<crate::attention::Attention>>,
    /// Per node: part of an attention chain, run (if at all) when its last node is reached.
    pub deferred: Vec<bool>,
    pub tapes: Mutex<HashMap<Vec<Vec<usize>>, Vec<Tape>>>,
    pub workspace: AtomicU64,
}

impl Executable for Compiled {
    fn run(&self, inputs: &[Tensor]) -> Result<RunOutput> {
        self.graph.check_inputs(inputs)?;
        let key: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let tape = self
            .tapes
            .lock()
            .ok()
            .and_then(|mut m| m.get_mut(&key).and_then(|v| v.pop()))
            .unwrap_or_default();
        let mut run = Run::new(self, tape);
        let result = run.execute(inputs);
        // A failed run may leave work queued; wait so its buffers are idle before reuse.
        if result.is_err() {
            let _ = self.gpu.device.poll(wgpu::PollType::wait_indefinitely());
            let _ = self.gpu.check();
        }
        let outputs = result?;
        let tape = std::mem::take(&mut run.tape);
        self.workspace.fetch_max(tape.bytes(), Ordering::Relaxed);
        if let Ok(mut m) = self.tapes.lock() {
            m.entry(key).or_default().push(tape);
        }
        Ok(RunOutput {
            outputs,
            timings: run.timings,
            peak_bytes: run.peak,
        })
    }

    fn memory(&self) -> MemoryUsage {
        let workspace = self.workspace.load(Ordering::Relaxed);
        MemoryUsage {
            weights: self.weight_bytes,
            workspace,
            peak: self.weight_bytes + workspace,
        }
    }
}

pub(crate) fn f32_data(t: &Tensor) -> Result<Cow<'_, [f32]>> {
    let v = t.view::<f32>()?;
    Ok(match v.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(v.iter().copied().collect()),
    })
}

pub(crate) struct Run<'m> {
    pub m: &'m Compiled,
    tape: Tape,
    cursor: usize,
    pub vals: Vec<Option<Val>>,
    refs: HashMap<usize, usize>,
    free: Vec<Arc<wgpu::Buffer>>,
    cmds: Vec<Cmd>,
    uploads_pending: bool,
    pub timings: StageTimings,
    live: u64,
    pub peak: u64,
}

fn key_of(b: &Arc<wgpu::Buffer>) -> usize {
    Arc::as_ptr(b) as usize
}

impl<'m> Run<'m> {
    fn new(m: &'m Compiled, tape: Tape) -> Self {
        let mut vals: Vec<Option<Val>> = vec![None; m.graph.values.len()];
        for (id, t) in &m.graph.constants {
            vals[id.0] = Some(Val {
                host: Some(t.clone()),
                dev: m.weights.get(id).cloned(),
            });
        }
        Run {
            m,
            tape,
            cursor: 0,
            vals,
            refs: HashMap::new(),
            free: Vec::new(),
            cmds: Vec::new(),
            uploads_pending: false,
            timings: StageTimings::default(),
            live: 0,
            peak: 0,
        }
    }

    fn execute(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let graph = self.m.graph.clone();
        for (id, t) in graph.inputs.iter().zip(inputs) {
            self.vals[id.0] = Some(Val {
                host: Some(t.clone()),
                dev: None,
            });
        }
        let mut i = 0;
        while i < graph.nodes.len() {
            if self.m.deferred[i] {
                i += 1;
                continue;
            }
            if let Some(a) = &self.m.attention[i] {
                let node = &graph.nodes[i];
                let half = self.reads_half(&node.inputs);
                if crate::attention::lower(self, a)
                    .map_err(|e| e.in_node(node.label(&graph), "attention"))?
                {
                    self.set_half(&node.outputs, half);
                    self.release_after(i);
                    i += 1;
                    continue;
                }
                // Not this run's shapes: the deferred nodes run now, in order.
                for &j in &a.nodes[..a.nodes.len() - 1] {
                    self.node(j)?;
                }
            }
            i += self.node(i)?;
        }
        let outs: Vec<ValueId> = graph.outputs.clone();
        let need: Vec<ValueId> = outs
            .iter()
            .copied()
            .filter(|v| matches!(&self.vals[v.0], Some(Val { host: None, .. })))
            .collect();
        self.submit_compute()?;
        self.download(&need)?;
        outs.iter()
            .map(|v| {
                self.vals[v.0]
                    .as_ref()
                    .and_then(|x| x.host.clone())
                    .ok_or_else(|| {
                        self.m.gpu.error(format!(
                            "output {:?} was never computed",
                            graph.value(*v).name
                        ))
                    })
            })
            .collect()
    }

    /// Runs node `i` on the device or the host; returns how many nodes that took (2 when
    /// a Relu folded into it).
    fn node(&mut self, i: usize) -> Result<usize> {
        let graph = self.m.graph.clone();
        let node = &graph.nodes[i];
        let fused = self.m.fuse_relu[i];
        // An op on f16 data gives f16 data, but for Cast (only to f32 has a kernel).
        let half = self.reads_half(&node.inputs)
            && !matches!(node.op, Op::Elementwise(ElementwiseOp::Cast { .. }));
        let ran = if self.m.on_gpu[i] {
            crate::lower::lower(self, node, fused)
                .map_err(|e| e.in_node(node.label(&graph), node.op.name()))?
        } else {
            false
        };
        if ran {
            self.set_half(&node.outputs, half);
        }
        if ran && fused {
            // The Relu's output is the fused node's output.
            let relu = &graph.nodes[i + 1];
            let src = node.outputs[0].expect("fusion checked the output");
            if let Some(dst) = relu.outputs.first().copied().flatten() {
                let v = self.vals[src.0].take();
                self.vals[dst.0] = v;
            }
            self.release_after(i);
            self.release_after(i + 1);
            return Ok(2);
        }
        if !ran {
            self.host_node(node)
                .map_err(|e| e.in_node(node.label(&graph), node.op.name()))?;
        }
        self.release_after(i);
        Ok(1)
    }

    /// Whether any of these values is an f16 tensor held on the device.
    fn reads_half(&self, ids: &[Option<ValueId>]) -> bool {
        ids.iter().flatten().any(|v| {
            matches!(&self.vals[v.0], Some(Val { dev: Some(d), .. }) if d.half)
                || self.host(*v).is_some_and(|t| t.dtype() == DType::F16)
        })
    }

    /// Tags the device copies of these values as f16 tensors or not.
    fn set_half(&mut self, ids: &[Option<ValueId>], half: bool) {
        for v in ids.iter().flatten() {
            if let Some(Val { dev: Some(d), .. }) = self.vals[v.0].as_mut() {
                d.half = half;
            }
        }
    }

    /// Drops values whose last reader was node `i`, recycling their buffers.
    fn release_after(&mut self, i: usize) {
        let node = &self.m.graph.nodes[i];
        let ids = node.inputs.iter().chain(node.outputs.iter()).flatten();
        for &v in ids {
            if self.m.last_use[v.0] != i && self.m.last_use[v.0] != NEVER_READ {
                continue;
            }
            if self.m.graph.constants.contains_key(&v) {
                continue;
            }
            if let Some(Val { dev: Some(d), .. }) = self.vals[v.0].take() {
                self.unref(&d);
            }
        }
    }

    fn unref(&mut self, d: &DevVal) {
        if !d.pooled {
            return;
        }
        let k = key_of(&d.buf);
        let n = self.refs.entry(k).or_insert(1);
        *n -= 1;
        if *n == 0 {
            self.refs.remove(&k);
            self.live -= d.buf.size();
            self.free.push(d.buf.clone());
        }
    }

    /// Returns an intermediate buffer no value holds (a step of a chained op).
    pub fn drop_temp(&mut self, d: &DevVal) {
        self.unref(d);
    }

    /// Another value shares `d`'s buffer (Reshape and friends).
    pub fn alias(&mut self, d: &DevVal, shape: Vec<usize>) -> DevVal {
        if d.pooled {
            *self.refs.entry(key_of(&d.buf)).or_insert(1) += 1;
        }
        DevVal {
            buf: d.buf.clone(),
            shape,
            pooled: d.pooled,
            half: d.half,
        }
    }

    fn tape_buffer(&mut self, bytes: u64, role: Role, what: &str) -> Result<Arc<wgpu::Buffer>> {
        let size = padded(bytes);
        if let Some(Item::Buffer { buf, role: r }) = self.tape.items.get(self.cursor) {
            if *r == role && buf.size() == size {
                let buf = buf.clone();
                self.cursor += 1;
                if let Some(p) = self.free.iter().position(|b| Arc::ptr_eq(b, &buf)) {
                    self.free.swap_remove(p);
                }
                return Ok(buf);
            }
        }
        self.tape.items.truncate(self.cursor);
        let buf = match role {
            Role::Work => match self.free.iter().position(|b| b.size() == size) {
                Some(p) => self.free.swap_remove(p),
                None => Arc::new(self.m.gpu.buffer(
                    size,
                    wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    what,
                )?),
            },
            Role::Upload => Arc::new(self.m.gpu.buffer(
                size,
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                what,
            )?),
            Role::Readback => Arc::new(self.m.gpu.buffer(
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                what,
            )?),
        };
        self.tape.items.push(Item::Buffer {
            buf: buf.clone(),
            role,
        });
        self.cursor += 1;
        Ok(buf)
    }

    /// A fresh pooled f32 buffer for a node's output of `shape`.
    pub fn output(&mut self, shape: Vec<usize>, what: &str) -> Result<DevVal> {
        let n: usize = shape.iter().product();
        let buf = self.tape_buffer((n * 4) as u64, Role::Work, what)?;
        self.refs.insert(key_of(&buf), 1);
        self.live += buf.size();
        self.peak = self.peak.max(self.live);
        Ok(DevVal {
            buf,
            shape,
            pooled: true,
            half: false,
        })
    }

    /// Uploads raw words (f32 data or u32 indices) into a buffer of their own.
    pub fn upload_words(&mut self, words: &[u8], shape: Vec<usize>, what: &str) -> Result<DevVal> {
        let t0 = Instant::now();
        let buf = self.tape_buffer(words.len() as u64, Role::Upload, what)?;
        if !words.is_empty() {
            self.m.gpu.queue.write_buffer(&buf, 0, words);
            self.uploads_pending = true;
        }
        self.timings.upload += t0.elapsed();
        Ok(DevVal {
            buf,
            shape,
            pooled: false,
            half: false,
        })
    }

    /// The value as an f32 device buffer, uploading a host copy if needed; `None` when
    /// the value is not f32.
    pub fn dev(&mut self, v: ValueId) -> Result<Option<DevVal>> {
        let Some(val) = self.vals[v.0].as_ref() else {
            return Err(self.m.gpu.error(format!(
                "value {:?} is read before it is computed",
                self.m.graph.value(v).name
            )));
        };
        if let Some(d) = &val.dev {
            return Ok(Some(d.clone()));
        }
        let t = val.host.clone().expect("a value lives somewhere");
        let name = self.m.graph.value(v).name.clone();
        let d = match t.dtype() {
            DType::F32 => {
                let data = f32_data(&t)?;
                self.upload_words(bytemuck::cast_slice(&data), t.shape().to_vec(), &name)?
            }
            DType::F16 if self.m.gpu.f16 => {
                // Uploaded as it is, widened on the device.
                let mut bits: Vec<u16> =
                    t.view::<half::f16>()?.iter().map(|x| x.to_bits()).collect();
                // Writes to a buffer come in whole 4-byte words.
                if bits.len() % 2 == 1 {
                    bits.push(0);
                }
                let raw =
                    self.upload_words(bytemuck::cast_slice(&bits), t.shape().to_vec(), &name)?;
                let mut d = self.output(t.shape().to_vec(), &name)?;
                self.convert(&wgsl::WIDEN, &raw.buf, &d.buf, d.len())?;
                d.half = true;
                d
            }
            _ => return Ok(None),
        };
        if let Some(val) = self.vals[v.0].as_mut() {
            val.dev = Some(d.clone());
        }
        Ok(Some(d))
    }

    /// Whether the value can be read as f32 on the device (f16 too, where it runs there).
    pub fn is_f32(&self, v: ValueId) -> bool {
        match &self.vals[v.0] {
            Some(Val { dev: Some(_), .. }) => true,
            Some(Val { host: Some(t), .. }) => {
                t.dtype() == DType::F32 || (t.dtype() == DType::F16 && self.m.gpu.f16)
            }
            _ => false,
        }
    }

    pub fn shape(&self, v: ValueId) -> Option<Vec<usize>> {
        match &self.vals[v.0] {
            Some(Val { dev: Some(d), .. }) => Some(d.shape.clone()),
            Some(Val { host: Some(t), .. }) => Some(t.shape().to_vec()),
            _ => None,
        }
    }

    pub fn dtype(&self, v: ValueId) -> Option<DType> {
        match &self.vals[v.0] {
            Some(Val { host: Some(t), .. }) => Some(t.dtype()),
            Some(Val { dev: Some(d), .. }) if d.half => Some(DType::F16),
            Some(Val { dev: Some(_), .. }) => Some(DType::F32),
            _ => None,
        }
    }

    /// The host copy of a value, if one exists without a download.
    pub fn host(&self, v: ValueId) -> Option<&Tensor> {
        self.vals[v.0].as_ref().and_then(|x| x.host.as_ref())
    }

    pub fn set_dev(&mut self, v: ValueId, d: DevVal) {
        self.vals[v.0] = Some(Val {
            host: None,
            dev: Some(d),
        });
    }

    pub fn set_host(&mut self, v: ValueId, t: Tensor) {
        self.vals[v.0] = Some(Val {
            host: Some(t),
            dev: None,
        });
    }

    fn params(&mut self, words: &[u32]) -> Result<Arc<wgpu::Buffer>> {
        if let Some(Item::Params { buf, words: w }) = self.tape.items.get_mut(self.cursor) {
            if w.as_slice() != words {
                let mut block = [0u32; crossover_kernels::wgsl::PARAM_WORDS];
                block[..words.len()].copy_from_slice(words);
                self.m
                    .gpu
                    .queue
                    .write_buffer(buf, 0, bytemuck::cast_slice(&block));
                *w = words.to_vec();
            }
            let buf = buf.clone();
            self.cursor += 1;
            return Ok(buf);
        }
        self.tape.items.truncate(self.cursor);
        let mut block = [0u32; crossover_kernels::wgsl::PARAM_WORDS];
        block[..words.len()].copy_from_slice(words);
        let buf = Arc::new(self.m.gpu.buffer(
            (block.len() * 4) as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            "kernel parameters",
        )?);
        self.m
            .gpu
            .queue
            .write_buffer(&buf, 0, bytemuck::cast_slice(&block));
        self.tape.items.push(Item::Params {
            buf: buf.clone(),
            words: words.to_vec(),
        });
        self.cursor += 1;
        Ok(buf)
    }

    /// Appends one dispatch of `shader` over `inputs` (bindings 1..) writing `output`.
    pub fn dispatch(
        &mut self,
        shader: &Shader,
        words: &[u32],
        inputs: &[&Arc<wgpu::Buffer>],
        output: &Arc<wgpu::Buffer>,
        grid: (u32, u32, u32),
    ) -> Result<()> {
        debug_assert_eq!(inputs.len() as u32, shader.inputs, "{}", shader.name);
        let params = self.params(words)?;
        let (pi, _) = self.m.gpu.pipeline(shader);
        let mut key = vec![pi, key_of(&params)];
        key.extend(inputs.iter().map(|b| key_of(b)));
        key.push(key_of(output));
        let group =
            match self.tape.items.get(self.cursor) {
                Some(Item::Bind { group, key: k }) if *k == key => {
                    let g = group.clone();
                    self.cursor += 1;
                    g
                }
                _ => {
                    self.tape.items.truncate(self.cursor);
                    let pipeline = &self.m.gpu.pipelines[pi];
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: params.as_entire_binding(),
                    }];
                    for (i, b) in inputs.iter().enumerate() {
                        entries.push(wgpu::BindGroupEntry {
                            binding: i as u32 + 1,
                            resource: b.as_entire_binding(),
                        });
                    }
                    entries.push(wgpu::BindGroupEntry {
                        binding: inputs.len() as u32 + 1,
                        resource: output.as_entire_binding(),
                    });
                    let g = Arc::new(self.m.gpu.device.create_bind_group(
                        &wgpu::BindGroupDescriptor {
                            label: Some(shader.name),
                            layout: &pipeline.layout,
                            entries: &entries,
                        },
                    ));
                    self.tape.items.push(Item::Bind {
                        group: g.clone(),
                        key,
                    });
                    self.cursor += 1;
                    g
                }
            };
        self.cmds.push(Cmd::Dispatch {
            pipeline: pi,
            group,
            grid,
        });
        Ok(())
    }

    /// The tape's query set for the next timed pass.
    fn clock(&mut self) -> Result<Clock> {
        if let Some(Item::Clock(c)) = self.tape.items.get(self.cursor) {
            let c = c.clone();
            self.cursor += 1;
            return Ok(c);
        }
        self.tape.items.truncate(self.cursor);
        let gpu = &self.m.gpu;
        let c = Clock {
            set: Arc::new(gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            })),
            resolve: Arc::new(gpu.buffer(
                16,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                "pass timestamps",
            )?),
            readback: Arc::new(gpu.buffer(
                16,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                "pass timestamps",
            )?),
        };
        self.tape.items.push(Item::Clock(c.clone()));
        self.cursor += 1;
        Ok(c)
    }

    /// The time between a finished pass's two timestamps.
    fn pass_time(&self, c: &Clock) -> Result<Duration> {
        self.m
            .gpu
            .map_read(&[(&c.readback, 16)], "reading pass timestamps")?;
        let ticks: [u64; 2] = {
            let view = c
                .readback
                .get_mapped_range(0..16)
                .map_err(|e| self.m.gpu.error(format!("reading pass timestamps: {e}")))?;
            let t = bytemuck::cast_slice::<u8, u64>(&view);
            [t[0], t[1]]
        };
        c.readback.unmap();
        let ns = ticks[1].saturating_sub(ticks[0]) as f64 * self.m.gpu.tick_ns;
        Ok(Duration::from_nanos(ns as u64))
    }

    /// Records the queued commands; `clock` times their compute pass (only dispatches
    /// are queued then, so there is one).
    fn encode(&mut self, clock: Option<&Clock>) -> Option<wgpu::CommandBuffer> {
        if self.cmds.is_empty() {
            return None;
        }
        let gpu = &self.m.gpu;
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        let cmds = std::mem::take(&mut self.cmds);
        let mut i = 0;
        while i < cmds.len() {
            match &cmds[i] {
                Cmd::Copy { src, dst, bytes } => {
                    enc.copy_buffer_to_buffer(src, 0, dst, 0, *bytes);
                    i += 1;
                }
                Cmd::Dispatch { .. } => {
                    // Consecutive dispatches share one pass.
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("kernels"),
                        timestamp_writes: clock.map(|c| wgpu::ComputePassTimestampWrites {
                            query_set: &c.set,
                            beginning_of_pass_write_index: Some(0),
                            end_of_pass_write_index: Some(1),
                        }),
                    });
                    while let Some(Cmd::Dispatch {
                        pipeline,
                        group,
                        grid,
                    }) = cmds.get(i)
                    {
                        pass.set_pipeline(&gpu.pipelines[*pipeline].pipeline);
                        pass.set_bind_group(0, group.as_ref(), &[]);
                        pass.dispatch_workgroups(grid.0, grid.1, grid.2);
                        i += 1;
                    }
                }
            }
        }
        if let Some(c) = clock {
            enc.resolve_query_set(&c.set, 0..2, &c.resolve, 0);
            enc.copy_buffer_to_buffer(&c.resolve, 0, &c.readback, 0, 16);
        }
        Some(enc.finish())
    }

    /// Applies pending uploads (timed as upload), then runs the queued kernels (compute).
    pub fn submit_compute(&mut self) -> Result<()> {
        if self.uploads_pending {
            let t0 = Instant::now();
            self.m.gpu.queue.submit([]);
            self.m.gpu.wait()?;
            self.uploads_pending = false;
            self.timings.upload += t0.elapsed();
        }
        let t0 = Instant::now();
        let clock = if self.m.gpu.timestamps && !self.cmds.is_empty() {
            Some(self.clock()?)
        } else {
            None
        };
        if let Some(cb) = self.encode(clock.as_ref()) {
            self.m.gpu.queue.submit([cb]);
            self.m.gpu.wait()?;
        }
        self.timings.compute += match &clock {
            Some(c) => self.pass_time(c)?,
            None => t0.elapsed(),
        };
        Ok(())
    }

    /// Queues one f16/f32 conversion of `n` elements (`widen.wgsl`, `narrow.wgsl`).
    fn convert(
        &mut self,
        shader: &Shader,
        src: &Arc<wgpu::Buffer>,
        dst: &Arc<wgpu::Buffer>,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let grid = self.m.gpu.grid_1d(n, shader.name)?;
        self.dispatch(shader, &[crate::lower::u(n)?], &[src], dst, grid)
    }

    /// Copies device values to the host (after running what is queued).
    pub fn download(&mut self, ids: &[ValueId]) -> Result<()> {
        let todo: Vec<(ValueId, DevVal)> = ids
            .iter()
            .filter_map(|&v| match &self.vals[v.0] {
                Some(Val {
                    host: None,
                    dev: Some(d),
                }) => Some((v, d.clone())),
                _ => None,
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        // f16 results are narrowed on the device: half the bytes to read back.
        let mut todo = todo;
        for (_, d) in todo.iter_mut().filter(|(_, d)| d.half) {
            let narrow = self.tape_buffer((d.len() * 2) as u64, Role::Work, "f16 result")?;
            self.convert(&wgsl::NARROW, &d.buf, &narrow, d.len())?;
            d.buf = narrow;
        }
        self.submit_compute()?;
        let t0 = Instant::now();
        let mut staged = Vec::new();
        for (v, d) in &todo {
            let elem = if d.half { 2 } else { 4 };
            let bytes = if d.len() == 0 {
                0
            } else {
                padded((d.len() * elem) as u64)
            };
            let name = self.m.graph.value(*v).name.clone();
            let rb = self.tape_buffer(bytes, Role::Readback, &name)?;
            if bytes > 0 {
                self.cmds.push(Cmd::Copy {
                    src: d.buf.clone(),
                    dst: rb.clone(),
                    bytes,
                });
            }
            staged.push((*v, d.clone(), rb, bytes));
        }
        if let Some(cb) = self.encode(None) {
            self.m.gpu.queue.submit([cb]);
        }
        let maps: Vec<(&wgpu::Buffer, u64)> = staged
            .iter()
            .filter(|s| s.3 > 0)
            .map(|s| (s.2.as_ref(), s.3))
            .collect();
        self.m.gpu.map_read(&maps, "reading results back")?;
        for (v, d, rb, bytes) in staged {
            let n = d.len();
            let t = if bytes == 0 {
                Tensor::zeros(if d.half { DType::F16 } else { DType::F32 }, &d.shape)?
            } else {
                let view = rb
                    .get_mapped_range(0..bytes)
                    .map_err(|e| self.m.gpu.error(format!("reading results back: {e}")))?;
                let t = if d.half {
                    let bits = &bytemuck::cast_slice::<u8, u16>(&view)[..n];
                    let data: Vec<half::f16> =
                        bits.iter().map(|&b| half::f16::from_bits(b)).collect();
                    Tensor::from_vec(&d.shape, data)
                } else {
                    Tensor::from_vec(
                        &d.shape,
                        bytemuck::cast_slice::<u8, f32>(&view)[..n].to_vec(),
                    )
                };
                drop(view);
                rb.unmap();
                t?
            };
            if let Some(val) = self.vals[v.0].as_mut() {
                val.host = Some(t);
            }
        }
        self.timings.download += t0.elapsed();
        Ok(())
    }

    /// Runs `node` on the host evaluator, downloading the device values it reads.
    fn host_node(&mut self, node: &Node) -> Result<()> {
        let Some(fallback) = self.m.fallback.clone() else {
            return Err(crossover_core::Error::Unsupported(format!(
                "{} cannot run on wgpu:{} here and no host fallback was given (CompileOptions::host_fallback)",
                node.op.name(),
                self.m.gpu.desc.index
            )));
        };
        let ids: Vec<ValueId> = node.inputs.iter().flatten().copied().collect();
        self.download(&ids)?;
        let t0 = Instant::now();
        let inputs: Vec<Option<&Tensor>> = node
            .inputs
            .iter()
            .map(|v| v.and_then(|v| self.vals[v.0].as_ref().and_then(|x| x.host.as_ref())))
            .collect();
        let outs = fallback.eval(node, &inputs)?;
        for (o, t) in node.outputs.iter().zip(outs) {
            if let Some(o) = o {
                self.set_host(*o, t);
            }
        }
        self.timings.compute += t0.elapsed();
        Ok(())
    }
}

/// `last_use` of a value no node reads and the graph does not output.
pub(crate) const NEVER_READ: usize = usize::MAX - 1;
