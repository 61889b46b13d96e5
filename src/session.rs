//! The object users hold: a model compiled for each of its devices, behind the scheduler
//! that routes every request.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crossover_core::{
    invalid, passes, CompileOptions, DType, DeviceId, DeviceInfo, Dim, Graph, MemoryUsage, Model,
    Result, Tensor, ValueInfo,
};
use crossover_cpu::CpuBackend;
use crossover_sched::{
    batch, calibrate, BatchAxis, CalibrationOptions, DeviceSlot, DeviceStats, Overhead, Policy,
    Profile, ProfileCache, QueueConfig, Reply, Scheduler, Selection, Step, Ticket,
};
use rand::{Rng, SeedableRng};

/// Called for each batch size measured while a session calibrates.
pub type Progress = Box<dyn FnMut(&Step) + Send>;

/// Where calibration profiles are kept.
#[derive(Clone, Debug, Default)]
pub enum ProfileStore {
    /// [`ProfileCache::default_location`].
    #[default]
    Default,
    At(ProfileCache),
    /// Measure every time; keep nothing.
    Off,
}

pub struct SessionBuilder {
    devices: Selection,
    exclude: Vec<DeviceId>,
    policy: Policy,
    threads: Option<usize>,
    allow_spinning: bool,
    calibration: CalibrationOptions,
    store: ProfileStore,
    sample: Option<Vec<(String, Tensor)>>,
    dims: BTreeMap<String, usize>,
    progress: Option<Progress>,
}

impl Default for SessionBuilder {
    fn default() -> Self {
        SessionBuilder {
            devices: Selection::Auto,
            exclude: Vec::new(),
            policy: Policy::Latency,
            threads: None,
            allow_spinning: true,
            calibration: CalibrationOptions::default(),
            store: ProfileStore::Default,
            sample: None,
            dims: BTreeMap::new(),
            progress: None,
        }
    }
}

impl SessionBuilder {
    /// Which devices to use: [`Selection::Auto`] (the default) or a list in order.
    pub fn devices(mut self, devices: Selection) -> Self {
        self.devices = devices;
        self
    }

    /// Runs on this one device only.
    pub fn device(self, device: DeviceId) -> Self {
        self.devices(Selection::List(vec![device]))
    }

    /// Leaves a device out of whatever the selection picks.
    pub fn exclude(mut self, device: DeviceId) -> Self {
        self.exclude.push(device);
        self
    }

    /// How requests are routed; [`Policy::Latency`] by default.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Threads a CPU run uses, the calling thread among them; all cores when unset.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Whether the CPU workers spin between close runs (default) or sleep at once, as
    /// ONNX Runtime's `session.intra_op.allow_spinning`: turn it off when other work
    /// shares the cores.
    pub fn allow_spinning(mut self, allow: bool) -> Self {
        self.allow_spinning = allow;
        self
    }

    /// Batch sizes and time budget of the calibration a multi-device session runs.
    pub fn calibration(mut self, options: CalibrationOptions) -> Self {
        self.calibration = options;
        self
    }

    pub fn profile_store(mut self, store: ProfileStore) -> Self {
        self.store = store;
        self
    }

    /// One sample's inputs (batch 1), by name, to calibrate with: the shapes of the
    /// requests the session will serve. Without it, inputs are synthesised from the
    /// model's declared shapes and [`SessionBuilder::dim`].
    pub fn sample_inputs(mut self, inputs: Vec<(String, Tensor)>) -> Self {
        self.sample = Some(inputs);
        self
    }

    /// The size of a named dimension (such as `sequence`) for synthesised calibration
    /// inputs; unnamed sizes default to 1.
    pub fn dim(mut self, name: &str, size: usize) -> Self {
        self.dims.insert(name.to_string(), size);
        self
    }

    /// Reports each calibration step (the CLI draws a progress bar with it).
    pub fn on_calibration(mut self, progress: impl FnMut(&Step) + Send + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    pub fn build_from_file(self, path: impl AsRef<Path>) -> Result<Session> {
        self.build(Model::load(path)?)
    }

    pub fn build_from_bytes(self, bytes: &[u8]) -> Result<Session> {
        self.build(Model::from_bytes(bytes)?)
    }

    pub fn build(mut self, model: Model) -> Result<Session> {
        let cpu = Arc::new(CpuBackend::new());
        let mut graph = model.graph.clone();
        passes::optimize(&mut graph, cpu.as_ref())?;
        let graph = Arc::new(graph);
        let axis = BatchAxis::of(&graph);
        let found = crossover_sched::select(&self.devices, &self.exclude)?;
        let options = CompileOptions {
            threads: self.threads,
            allow_spinning: self.allow_spinning,
            host_fallback: Some(cpu.clone()),
        };
        let mut compiled = Vec::new();
        let mut skipped = Vec::new();
        for f in found {
            match f.backend.compile(graph.clone(), &options) {
                Ok(exec) => compiled.push((f.info, exec)),
                // Auto selection uses what works; a named device must work.
                Err(e) if self.devices == Selection::Auto => {
                    tracing::warn!("not using {}: {e}", f.info.id);
                    skipped.push((f.info.id, e.to_string()));
                }
                Err(e) => {
                    return Err(invalid!("the model cannot run on {}: {e}", f.info.id));
                }
            }
        }
        if compiled.is_empty() {
            return Err(invalid!(
                "the model runs on none of the devices: {skipped:?}"
            ));
        }
        let sample = match self.sample.take() {
            Some(s) => order_inputs(&graph, &s)?,
            None => synthesize(&graph, &axis, &self.dims)?,
        };
        graph.check_inputs(&sample)?;
        let calibrate_now = compiled.len() > 1 || matches!(self.policy, Policy::Cost { .. });
        let mut profiles = Vec::new();
        let mut slots = Vec::new();
        for (info, exec) in compiled {
            let (curve, queue) = if calibrate_now {
                let profile = self.profile_one(&model, &info, exec.as_ref(), &axis, &sample)?;
                let curve = profile.curve()?;
                let fits = profile.batch_fitting(info.memory_free).max(1);
                let queue = QueueConfig::from_curve(&curve, profile.max_batch.min(fits));
                profiles.push(profile);
                (Some(curve), queue)
            } else {
                (None, QueueConfig::default())
            };
            slots.push(DeviceSlot {
                info,
                executable: exec,
                curve,
                queue,
            });
        }
        let scheduler = Scheduler::new(slots, self.policy.clone(), axis.clone())?;
        Ok(Session {
            model,
            graph,
            axis,
            sample,
            scheduler,
            profiles,
            skipped,
            store: self.store,
        })
    }

    fn profile_one(
        &mut self,
        model: &Model,
        info: &DeviceInfo,
        exec: &dyn crossover_core::Executable,
        axis: &BatchAxis,
        sample: &[Tensor],
    ) -> Result<Profile> {
        let shapes: Vec<Vec<usize>> = sample.iter().map(|t| t.shape().to_vec()).collect();
        let cache = cache_of(&self.store);
        if let Some(p) = cache
            .as_ref()
            .and_then(|c| c.load(&model.hash, info, &shapes))
        {
            return Ok(p);
        }
        let mut options = self.calibration.clone();
        if *axis == BatchAxis::None {
            options.max_batch = 1;
        }
        let mut progress = self.progress.take();
        let result = calibrate(
            exec,
            info,
            &model.hash,
            &|b| repeat_batch(sample, b),
            &options,
            &mut |s| {
                if let Some(p) = progress.as_mut() {
                    p(s)
                }
            },
        );
        self.progress = progress;
        let profile = result?;
        if let Some(c) = cache {
            if let Err(e) = c.store(&profile) {
                tracing::warn!("cannot cache the profile: {e}");
            }
        }
        Ok(profile)
    }
}

fn cache_of(store: &ProfileStore) -> Option<ProfileCache> {
    match store {
        ProfileStore::Default => ProfileCache::default_location(),
        ProfileStore::At(c) => Some(c.clone()),
        ProfileStore::Off => None,
    }
}

/// `b` copies of a one-sample request joined along the batch axis.
fn repeat_batch(sample: &[Tensor], b: usize) -> Result<Vec<Tensor>> {
    let copies: Vec<&[Tensor]> = (0..b.max(1)).map(|_| sample).collect();
    batch::join(&copies)
}

/// Inputs of one sample from the declared shapes: the batch dimension 1, named sizes
/// from `dims` (else 1, with a warning), seeded values in [-1, 1) for floats and zeros,
/// the one index always valid, for integers.
fn synthesize(
    graph: &Graph,
    axis: &BatchAxis,
    dims: &BTreeMap<String, usize>,
) -> Result<Vec<Tensor>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    graph
        .input_infos()
        .map(|v| {
            let dtype = v.dtype.ok_or_else(|| {
                invalid!(
                    "input {:?} has no declared type; give sample inputs",
                    v.name
                )
            })?;
            let declared = v.shape.as_deref().unwrap_or(&[]);
            let shape: Vec<usize> = declared
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Dim::Fixed(n) => *n,
                    _ if i == 0 && *axis == BatchAxis::Leading => 1,
                    Dim::Param(name) => dims.get(name).copied().unwrap_or_else(|| {
                        tracing::warn!(
                            "calibrating with {name} = 1; set it with SessionBuilder::dim"
                        );
                        1
                    }),
                    Dim::Unknown => 1,
                })
                .collect();
            let n: usize = shape.iter().product();
            Ok(match dtype {
                DType::F32 => Tensor::from_vec(
                    &shape,
                    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect(),
                )?,
                DType::F64 => Tensor::from_vec(
                    &shape,
                    (0..n).map(|_| rng.gen_range(-1.0f64..1.0)).collect(),
                )?,
                other => Tensor::zeros(other, &shape)?,
            })
        })
        .collect()
}

fn order_inputs(graph: &Graph, inputs: &[(String, Tensor)]) -> Result<Vec<Tensor>> {
    let borrowed: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    order_by_name(graph, &borrowed)
}

fn order_by_name(graph: &Graph, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>> {
    let expected: Vec<&str> = graph.input_infos().map(|v| v.name.as_str()).collect();
    for (name, _) in inputs {
        if !expected.contains(name) {
            return Err(invalid!(
                "the model has no input {name:?}; its inputs are {expected:?}"
            ));
        }
    }
    expected
        .iter()
        .map(|want| {
            let mut given = inputs.iter().filter(|(n, _)| n == want);
            match (given.next(), given.next()) {
                (Some((_, t)), None) => Ok(t.clone()),
                (None, _) => Err(invalid!("input {want:?} is missing")),
                (Some(_), Some(_)) => Err(invalid!("input {want:?} is given twice")),
            }
        })
        .collect()
}

/// A model ready to run on its devices.
pub struct Session {
    model: Model,
    graph: Arc<Graph>,
    axis: BatchAxis,
    /// One sample's inputs, for calibration.
    sample: Vec<Tensor>,
    scheduler: Scheduler,
    profiles: Vec<Profile>,
    skipped: Vec<(DeviceId, String)>,
    store: ProfileStore,
}

impl Session {
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn inputs(&self) -> Vec<&ValueInfo> {
        self.graph.input_infos().collect()
    }

    pub fn outputs(&self) -> Vec<&ValueInfo> {
        self.graph.output_infos().collect()
    }

    /// The devices this session runs on, in routing tie-break order.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.scheduler.devices().cloned().collect()
    }

    /// Devices the selection named but the model could not be compiled for, and why.
    pub fn skipped_devices(&self) -> &[(DeviceId, String)] {
        &self.skipped
    }

    pub fn policy(&self) -> &Policy {
        self.scheduler.policy()
    }

    /// Whether requests can be batched together and split (a common leading batch dim).
    pub fn batch_axis(&self) -> &BatchAxis {
        &self.axis
    }

    /// Runs with inputs given by name; returns the outputs in the model's order.
    pub fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>> {
        Ok(self.run_with_info(inputs)?.outputs)
    }

    /// Like [`Session::run`], with the device that ran it and its stage timings.
    pub fn run_with_info(&self, inputs: &[(&str, Tensor)]) -> Result<Reply> {
        self.run_ordered(&order_by_name(&self.graph, inputs)?)
    }

    /// Runs with inputs in the model's order. On an idle CPU the run happens on the
    /// calling thread ([`Scheduler::run`]).
    pub fn run_ordered(&self, inputs: &[Tensor]) -> Result<Reply> {
        self.graph.check_inputs(inputs)?;
        self.scheduler.run(inputs.to_vec(), None)
    }

    /// Queues a request and returns at once; `deadline` bounds its wait in a queue.
    pub fn submit(&self, inputs: &[(&str, Tensor)], deadline: Option<Duration>) -> Result<Ticket> {
        self.submit_ordered(order_by_name(&self.graph, inputs)?, deadline)
    }

    pub fn submit_ordered(
        &self,
        inputs: Vec<Tensor>,
        deadline: Option<Duration>,
    ) -> Result<Ticket> {
        self.graph.check_inputs(&inputs)?;
        self.scheduler.submit(inputs, deadline)
    }

    /// Bytes held on each device: weights, workspace and the peak of a run.
    pub fn memory(&self) -> Vec<(DeviceId, MemoryUsage)> {
        self.scheduler.memory()
    }

    /// Per-device counters since the session started.
    pub fn stats(&self) -> Vec<DeviceStats> {
        self.scheduler.stats()
    }

    /// The profiles the session calibrated with (empty for a single device).
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn queue_config(&self, device: &DeviceId) -> Option<&QueueConfig> {
        self.scheduler.queue_config(device)
    }

    /// What the scheduler adds to a one-sample request on `device` beyond its run's
    /// stage times, from `probes` requests sent one at a time while the session is idle
    /// (for the simulator; see [`Scheduler::measure_overhead`]).
    pub fn measure_overhead(&self, device: &DeviceId, probes: usize) -> Result<Overhead> {
        self.scheduler
            .measure_overhead(device, &self.sample, probes)
    }

    /// How many times longer `victim`'s one-sample runs take while `other` runs full
    /// batches (its queue's `max_batch`, as under load) without pause (see
    /// [`Scheduler::measure_contention`]).
    pub fn measure_contention(
        &self,
        victim: &DeviceId,
        other: &DeviceId,
        runs: usize,
    ) -> Result<f64> {
        let batch = match (&self.axis, self.queue_config(other)) {
            (BatchAxis::Leading, Some(q)) => q.max_batch,
            _ => 1,
        };
        let load = repeat_batch(&self.sample, batch)?;
        self.scheduler
            .measure_contention(victim, &self.sample, other, &load, runs)
    }

    /// Measures every device now at batch sizes 1, 2, 4, … (outside the queues) and
    /// updates the profile cache.
    pub fn profile(
        &self,
        options: &CalibrationOptions,
        progress: &mut dyn FnMut(&Step),
    ) -> Result<Vec<Profile>> {
        let mut options = options.clone();
        if self.axis == BatchAxis::None {
            options.max_batch = 1;
        }
        let cache = cache_of(&self.store);
        self.scheduler
            .devices()
            .map(|info| {
                let exec = self
                    .scheduler
                    .executable(&info.id)
                    .ok_or_else(|| invalid!("no executable for {}", info.id))?;
                let p = calibrate(
                    exec,
                    info,
                    &self.model.hash,
                    &|b| repeat_batch(&self.sample, b),
                    &options,
                    progress,
                )?;
                if let Some(c) = &cache {
                    if let Err(e) = c.store(&p) {
                        tracing::warn!("cannot cache the profile: {e}");
                    }
                }
                Ok(p)
            })
            .collect()
    }
}
