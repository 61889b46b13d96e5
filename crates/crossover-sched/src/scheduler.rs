//! The live scheduler: one queue and one worker thread per device, dynamic batching,
//! routing by policy, and fault handling.
//!
//! ## Design
//! A request is routed when it arrives ([`crate::policy::route`] over each device's
//! predicted backlog) and waits in that device's queue. A device's worker takes the
//! oldest request and, if the model is batchable, the compatible requests behind it up
//! to the queue's `max_batch` samples, waiting at most `max_delay` for more (Triton's
//! dynamic batcher); it runs them as one batch and cuts the outputs back per request.
//! A request its caller waits for ([`Scheduler::run`]) that is routed to an idle CPU runs
//! on the caller's thread instead, while the worker waits: the same one run at a time,
//! without two thread hand-offs.
//!
//! A run that fails because of the device marks it unhealthy (retried after an
//! exponential backoff) and moves that batch and the device's queue to the other
//! devices. A run that fails because of its inputs is retried one request at a time, so
//! that only the request at fault gets the error. Every request ends in exactly one
//! reply: a result, or an error saying why.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossover_core::{
    DeviceId, DeviceInfo, DeviceKind, Error, ErrorKind, Executable, MemoryUsage, Result,
    StageTimings, Tensor,
};

use crate::batch::{self, BatchAxis};
use crate::curve::{CostCurve, Sample};
use crate::policy::{self, DeviceView, Policy, Route};
use crate::stats::{Counters, DeviceStats};

/// A device's queue limits.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Most samples in one run.
    pub max_batch: usize,
    /// How long the oldest request may wait for others to join its run.
    pub max_delay: Duration,
    /// Most requests waiting; beyond it the device refuses work.
    pub capacity: usize,
}

impl QueueConfig {
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// The longest a request waits for company, however large the fixed cost it saves.
    pub const MAX_DELAY_CAP: Duration = Duration::from_millis(2);

    /// Defaults from a device's curve: batches up to `max_batch`, and a queue delay equal
    /// to the fixed per-run cost (overhead and transfers at batch 1) that a joined
    /// request saves, capped at [`Self::MAX_DELAY_CAP`]. A device without fixed cost,
    /// such as the CPU, does not wait.
    pub fn from_curve(curve: &CostCurve, max_batch: usize) -> QueueConfig {
        let one = curve.predict(1);
        let fixed = curve.overhead() + one.upload + one.download;
        QueueConfig {
            max_batch: max_batch.max(1),
            max_delay: Duration::from_secs_f64(fixed.max(0.0)).min(Self::MAX_DELAY_CAP),
            capacity: Self::DEFAULT_CAPACITY,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_batch: 64,
            max_delay: Duration::ZERO,
            capacity: Self::DEFAULT_CAPACITY,
        }
    }
}

/// What serving a request costs on one device beyond its run's timed stages (the curve),
/// in seconds: measured by [`Scheduler::measure_overhead`], modelled by the simulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Overhead {
    /// From a request reaching an idle device's queue to its run starting, beyond the
    /// batching delay: the worker thread waking up. A busy worker does not pay it.
    pub wake: f64,
    /// How much longer the stages of a run take after the device sat idle than in
    /// back-to-back calibration runs: thread pools asleep, caches cold.
    pub cold: f64,
    /// How long each run holds the worker beyond its stage times: routing, joining the
    /// inputs, the backend's untimed host work, cutting the outputs and replying.
    pub run: f64,
}

/// One device given to the scheduler: the model compiled for it and what it costs.
pub struct DeviceSlot {
    pub info: DeviceInfo,
    pub executable: Box<dyn Executable>,
    /// The calibrated curve; `None` starts without one and learns it from runs (enough
    /// when there is a single device and nothing to choose).
    pub curve: Option<CostCurve>,
    pub queue: QueueConfig,
}

/// One run a request (or a slice of it) took part in.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub device: DeviceId,
    /// This request's samples in the run.
    pub samples: usize,
    /// All samples in the run, with those of requests batched alongside.
    pub batch: usize,
    /// `queue` is this request's wait; the others are the run's.
    pub timings: StageTimings,
    /// From submission to this reply, as the caller saw it.
    pub latency: Duration,
    /// Peak bytes of intermediate values during the run.
    pub peak_bytes: u64,
}

/// A finished request.
#[derive(Clone, Debug)]
pub struct Reply {
    /// In the order of the model's outputs.
    pub outputs: Vec<Tensor>,
    /// One entry, or one per slice when the request was split across devices.
    pub runs: Vec<RunInfo>,
}

impl Reply {
    /// The device that ran the request (the one that ran its first rows, if split).
    pub fn device(&self) -> &DeviceId {
        &self.runs[0].device
    }

    /// From submission to the reply (to its last slice, if split).
    pub fn latency(&self) -> Duration {
        self.runs
            .iter()
            .map(|r| r.latency)
            .max()
            .unwrap_or_default()
    }

    /// Peak intermediate bytes of the run (the largest, if split).
    pub fn peak_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.peak_bytes).max().unwrap_or(0)
    }

    /// Stage timings; for a split request, those of the slice that finished last.
    pub fn timings(&self) -> StageTimings {
        self.runs
            .iter()
            .map(|r| r.timings)
            .max_by_key(|t| t.total())
            .unwrap_or_default()
    }
}

/// A submitted request; [`Ticket::wait`] blocks until it ends.
pub struct Ticket {
    parts: usize,
    rx: mpsc::Receiver<(usize, Result<Part>)>,
}

struct Part {
    outputs: Vec<Tensor>,
    run: RunInfo,
}

impl Ticket {
    pub fn wait(self) -> Result<Reply> {
        let mut parts: Vec<Option<Part>> = (0..self.parts).map(|_| None).collect();
        let mut first_error = None;
        for _ in 0..self.parts {
            match self.rx.recv() {
                Ok((i, Ok(p))) => parts[i] = Some(p),
                Ok((_, Err(e))) => {
                    first_error.get_or_insert(e);
                }
                // Every job holds a sender and replies once before it is dropped.
                Err(_) => {
                    return Err(Error::Device {
                        device: "scheduler".into(),
                        message: "a request was dropped without a reply".into(),
                    })
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let parts: Vec<Part> = parts.into_iter().flatten().collect();
        let outputs = if parts.len() == 1 {
            parts[0].outputs.clone()
        } else {
            let each: Vec<&[Tensor]> = parts.iter().map(|p| p.outputs.as_slice()).collect();
            batch::join(&each)?
        };
        Ok(Reply {
            outputs,
            runs: parts.into_iter().map(|p| p.run).collect(),
        })
    }
}

struct Job {
    inputs: Vec<Tensor>,
    samples: usize,
    /// When the request arrived, for its end-to-end latency.
    arrived: Instant,
    /// When it joined its current queue.
    queued: Instant,
    deadline: Option<Instant>,
    /// Devices that failed this job.
    tried: Vec<usize>,
    part: usize,
    reply: mpsc::Sender<(usize, Result<Part>)>,
}

impl Job {
    /// Replies, after letting go of the inputs: a caller holding its answer may reuse its
    /// buffers, and a binding's reference on them (a numpy array) is already released.
    fn answer(self, result: Result<Part>) {
        let Job {
            inputs,
            part,
            reply,
            ..
        } = self;
        drop(inputs);
        let _ = reply.send((part, result));
    }
}

enum Health {
    Healthy,
    Failing {
        failures: u32,
        retry_at: Instant,
        last: String,
    },
}

impl Health {
    /// Whether the device takes work at `now`: healthy, or its backoff is over (a probe).
    fn open(&self, now: Instant) -> bool {
        match self {
            Health::Healthy => true,
            Health::Failing { retry_at, .. } => now >= *retry_at,
        }
    }
}

struct State {
    jobs: VecDeque<Job>,
    queued_samples: usize,
    /// The run in progress: when it started and its predicted seconds.
    running: Option<(Instant, f64)>,
    /// A caller runs a request on its own thread ([`Inner::run_inline`]); the worker
    /// waits, so the device still runs one batch at a time.
    inline: bool,
    health: Health,
}

struct Device {
    info: DeviceInfo,
    exec: Box<dyn Executable>,
    queue: QueueConfig,
    state: Mutex<State>,
    wake: Condvar,
    curve: RwLock<Option<CostCurve>>,
    /// The curve as calibrated, before any refinement.
    calibrated: Option<CostCurve>,
    counters: Mutex<Counters>,
}

/// Weight of each observed run in the online refinement of a device's curve (the
/// simulator refines its curves the same way).
pub(crate) const OBSERVE_WEIGHT: f64 = 0.1;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Inner {
    policy: Policy,
    axis: BatchAxis,
    devices: Vec<Device>,
    shutdown: AtomicBool,
    /// Requests routed so far.
    routed: AtomicU64,
}

/// Routes requests to devices and runs them; see the module docs.
pub struct Scheduler {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

/// Probes of the scheduler's cost: at least this many, then until [`PROBE_TIME`] is spent.
const MIN_PROBES: usize = 3;
const PROBE_TIME: Duration = Duration::from_secs(1);

/// Seconds `d`'s curve predicts for a run of `samples`; 0 before it has one.
fn predicted(d: &Device, samples: usize) -> f64 {
    d.curve
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or(0.0, |c| c.latency(samples))
}

/// `f` up to `most` times: at least [`MIN_PROBES`], then while [`PROBE_TIME`] lasts (a
/// run of a large model on a software GPU takes seconds).
fn repeat(most: usize, mut f: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    let began = Instant::now();
    let mut out = Vec::new();
    while out.len() < most.max(MIN_PROBES)
        && (out.len() < MIN_PROBES || began.elapsed() < PROBE_TIME)
    {
        out.push(f()?);
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker never panics while holding a lock (runs are caught), so poisoning only
    // follows a bug; the state is still consistent enough to drain.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
    pub fn new(devices: Vec<DeviceSlot>, policy: Policy, axis: BatchAxis) -> Result<Scheduler> {
        if devices.is_empty() {
            return Err(crossover_core::invalid!(
                "a scheduler needs at least one device"
            ));
        }
        if devices.len() > 1 && devices.iter().any(|d| d.curve.is_none()) {
            return Err(crossover_core::invalid!(
                "routing between devices needs a calibrated curve for each"
            ));
        }
        match &policy {
            Policy::Pinned(id) if !devices.iter().any(|d| &d.info.id == id) => {
                return Err(crossover_core::invalid!(
                    "the policy pins {id}, which is not among the session's devices"
                ))
            }
            Policy::Cost { prices, .. } => {
                if let Some(d) = devices.iter().find(|d| !prices.contains_key(&d.info.id)) {
                    return Err(crossover_core::invalid!(
                        "the cost policy needs a price for every device; {} has none",
                        d.info.id
                    ));
                }
            }
            _ => {}
        }
        let inner = Arc::new(Inner {
            policy,
            axis,
            devices: devices
                .into_iter()
                .map(|d| Device {
                    info: d.info,
                    exec: d.executable,
                    queue: d.queue,
                    state: Mutex::new(State {
                        jobs: VecDeque::new(),
                        queued_samples: 0,
                        running: None,
                        inline: false,
                        health: Health::Healthy,
                    }),
                    wake: Condvar::new(),
                    calibrated: d.curve.clone(),
                    curve: RwLock::new(d.curve),
                    counters: Mutex::new(Counters::default()),
                })
                .collect(),
            shutdown: AtomicBool::new(false),
            routed: AtomicU64::new(0),
        });
        let workers = (0..inner.devices.len())
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("crossover-{}", inner.devices[i].info.id))
                    .spawn(move || inner.work(i))
                    .map_err(|e| Error::Device {
                        device: "scheduler".into(),
                        message: format!("cannot start a worker thread: {e}"),
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Scheduler { inner, workers })
    }

    /// Routes a request (inputs in the model's order) and returns at once.
    pub fn submit(&self, inputs: Vec<Tensor>, deadline: Option<Duration>) -> Result<Ticket> {
        self.route(inputs, deadline, false)
    }

    /// Submits and waits. A request routed to an idle CPU runs on the calling thread, as
    /// a direct call would: handing it to the worker and back costs two thread wake-ups,
    /// more than a small model's run ([`Inner::run_inline`] says when).
    pub fn run(&self, inputs: Vec<Tensor>, deadline: Option<Duration>) -> Result<Reply> {
        self.route(inputs, deadline, true)?.wait()
    }

    fn route(
        &self,
        inputs: Vec<Tensor>,
        deadline: Option<Duration>,
        inline: bool,
    ) -> Result<Ticket> {
        let samples = self.inner.axis.samples(&inputs)?;
        let now = Instant::now();
        let (tx, rx) = mpsc::channel();
        let job = Job {
            inputs,
            samples,
            arrived: now,
            queued: now,
            deadline: deadline.map(|d| now + d),
            tried: Vec::new(),
            part: 0,
            reply: tx,
        };
        let parts = self.inner.place(job, true, inline)?;
        Ok(Ticket { parts, rx })
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    pub fn devices(&self) -> impl Iterator<Item = &DeviceInfo> {
        self.inner.devices.iter().map(|d| &d.info)
    }

    pub fn queue_config(&self, device: &DeviceId) -> Option<&QueueConfig> {
        self.inner
            .devices
            .iter()
            .find(|d| &d.info.id == device)
            .map(|d| &d.queue)
    }

    /// Each device's current curve (calibrated, then refined by observed runs).
    pub fn curves(&self) -> Vec<(DeviceId, Option<CostCurve>)> {
        self.inner
            .devices
            .iter()
            .map(|d| {
                let c = d.curve.read().unwrap_or_else(|p| p.into_inner()).clone();
                (d.info.id.clone(), c)
            })
            .collect()
    }

    pub fn memory(&self) -> Vec<(DeviceId, MemoryUsage)> {
        self.inner
            .devices
            .iter()
            .map(|d| (d.info.id.clone(), d.exec.memory()))
            .collect()
    }

    pub fn stats(&self) -> Vec<DeviceStats> {
        self.inner
            .devices
            .iter()
            .map(|d| {
                let healthy = matches!(lock(&d.state).health, Health::Healthy);
                lock(&d.counters).snapshot(d.info.id.clone(), healthy)
            })
            .collect()
    }

    /// Measures [`Overhead`] on `device` with `probes` requests of `inputs`, one at a
    /// time through its queue while it is otherwise idle: the medians of what each
    /// reply's latency adds to its run's stage times. The probes count in the stats.
    pub fn measure_overhead(
        &self,
        device: &DeviceId,
        inputs: &[Tensor],
        probes: usize,
    ) -> Result<Overhead> {
        let i = self
            .inner
            .devices
            .iter()
            .position(|d| &d.info.id == device)
            .ok_or_else(|| {
                crossover_core::invalid!("{device} is not among the scheduler's devices")
            })?;
        let d = &self.inner.devices[i];
        let delay = match self.inner.axis {
            BatchAxis::Leading => d.queue.max_delay,
            BatchAxis::None => Duration::ZERO,
        };
        let samples = self.inner.axis.samples(inputs)?;
        let predicted = d
            .curve
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.latency(samples));
        let (mut wake, mut cold, mut run) = (Vec::new(), Vec::new(), Vec::new());
        let began = Instant::now();
        for _ in 0..probes.max(MIN_PROBES) {
            if wake.len() >= MIN_PROBES && began.elapsed() > PROBE_TIME {
                break;
            }
            // Long enough for the worker to be asleep again, as on an idle device.
            std::thread::sleep(Duration::from_millis(1));
            let (tx, rx) = mpsc::channel();
            let now = Instant::now();
            self.inner.enqueue(
                i,
                Job {
                    inputs: inputs.to_vec(),
                    samples,
                    arrived: now,
                    queued: now,
                    deadline: None,
                    tried: Vec::new(),
                    part: 0,
                    reply: tx,
                },
            )?;
            let reply = Ticket { parts: 1, rx }.wait()?;
            let r = &reply.runs[0];
            let t = r.timings;
            wake.push(t.queue.saturating_sub(delay).as_secs_f64());
            let stages = t.upload + t.compute + t.download;
            if let Some(p) = predicted {
                cold.push(stages.as_secs_f64() - p);
            }
            run.push(r.latency.saturating_sub(t.queue + stages).as_secs_f64());
        }
        Ok(Overhead {
            wake: median(wake),
            cold: median(cold).max(0.0),
            run: median(run),
        })
    }

    /// How many times longer `victim`'s runs of `inputs` take while `other` runs
    /// `other_inputs` without pause, outside the queues: the medians of `runs` stage times
    /// each way. Near 1 for devices that share nothing; well above for two that both use
    /// the host's cores (the CPU and a software GPU such as llvmpipe).
    pub fn measure_contention(
        &self,
        victim: &DeviceId,
        inputs: &[Tensor],
        other: &DeviceId,
        other_inputs: &[Tensor],
        runs: usize,
    ) -> Result<f64> {
        let find = |id: &DeviceId| {
            self.executable(id).ok_or_else(|| {
                crossover_core::invalid!("{id} is not among the scheduler's devices")
            })
        };
        let (v, o) = (find(victim)?, find(other)?);
        let stages = |v: &dyn Executable| -> Result<f64> {
            let t = v.run(inputs)?.timings;
            Ok((t.upload + t.compute + t.download).as_secs_f64())
        };
        let alone = repeat(runs, || stages(v))?;
        let (started, stop) = (AtomicBool::new(false), AtomicBool::new(false));
        let (contended, background) = std::thread::scope(|s| {
            let busy = s.spawn(|| -> Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    started.store(true, Ordering::Relaxed);
                    o.run(other_inputs)?;
                }
                Ok(())
            });
            while !started.load(Ordering::Relaxed) && !busy.is_finished() {
                std::thread::yield_now();
            }
            let contended = repeat(runs, || stages(v));
            stop.store(true, Ordering::Relaxed);
            let background = busy.join().unwrap_or_else(|_| {
                Err(Error::Device {
                    device: other.to_string(),
                    message: "a run panicked".into(),
                })
            });
            (contended, background)
        });
        background?;
        Ok((median(contended?) / median(alone).max(f64::MIN_POSITIVE)).max(1.0))
    }

    /// Runs directly on one device's compiled model, outside the queues (calibration).
    pub fn executable(&self, device: &DeviceId) -> Option<&dyn Executable> {
        self.inner
            .devices
            .iter()
            .find(|d| &d.info.id == device)
            .map(|d| d.exec.as_ref())
    }
}

impl Drop for Scheduler {
    /// Lets the workers finish what is queued, so no request is left without a reply.
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        for d in &self.inner.devices {
            let _guard = lock(&d.state);
            d.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Inner {
    fn view<'a>(
        &'a self,
        i: usize,
        curve: &'a CostCurve,
        now: Instant,
        tried: &[usize],
    ) -> DeviceView<'a> {
        let d = &self.devices[i];
        let st = lock(&d.state);
        let in_flight = st.running.map_or(0.0, |(start, predicted)| {
            (predicted - now.saturating_duration_since(start).as_secs_f64()).max(0.0)
        });
        let healthy = st.health.open(now);
        DeviceView {
            id: &d.info.id,
            curve,
            max_batch: d.queue.max_batch,
            backlog: in_flight + policy::run_time(curve, d.queue.max_batch, st.queued_samples),
            queued: st.queued_samples,
            available: healthy && st.jobs.len() < d.queue.capacity && !tried.contains(&i),
        }
    }

    /// Routes `job` and queues it (or its slices), or with `inline` runs it whole on this
    /// thread where [`Inner::run_inline`] may; returns how many parts it became.
    fn place(&self, job: Job, splittable: bool, inline: bool) -> Result<usize> {
        let now = Instant::now();
        let route = if self.devices.len() == 1 {
            let st = lock(&self.devices[0].state);
            let ok = st.jobs.len() < self.devices[0].queue.capacity;
            drop(st);
            if job.tried.is_empty() && ok {
                Some(Route::Whole(0))
            } else {
                None
            }
        } else {
            let curves: Vec<_> = self
                .devices
                .iter()
                .map(|d| d.curve.read().unwrap_or_else(|p| p.into_inner()))
                .collect();
            let views: Vec<DeviceView> = curves
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| self.view(i, c, now, &job.tried)))
                .collect();
            let splittable = splittable && self.axis == BatchAxis::Leading;
            let seq = self.routed.fetch_add(1, Ordering::Relaxed);
            policy::route(&self.policy, &views, job.samples, splittable, seq)
        };
        match route {
            Some(Route::Whole(i)) => {
                let job = if inline {
                    match self.run_inline(i, job) {
                        None => return Ok(1),
                        Some(job) => job,
                    }
                } else {
                    job
                };
                self.enqueue(i, job)?;
                Ok(1)
            }
            Some(Route::Split(slices)) => {
                let mut start = 0;
                for (part, (i, n)) in slices.iter().enumerate() {
                    let slice = Job {
                        inputs: batch::take_rows(&job.inputs, start..start + n),
                        samples: *n,
                        arrived: job.arrived,
                        queued: job.queued,
                        deadline: job.deadline,
                        tried: job.tried.clone(),
                        part,
                        reply: job.reply.clone(),
                    };
                    start += n;
                    // A slice that cannot be queued still answers, with its error.
                    if let Err(e) = self.enqueue(*i, slice) {
                        let _ = job.reply.send((part, Err(e)));
                    }
                }
                Ok(slices.len())
            }
            None => Err(self.unplaceable(&job)),
        }
    }

    fn unplaceable(&self, job: &Job) -> Error {
        let mut why = Vec::new();
        let mut full = 0;
        for (i, d) in self.devices.iter().enumerate() {
            let st = lock(&d.state);
            let reason = if job.tried.contains(&i) {
                "failed this request".to_string()
            } else if st.jobs.len() >= d.queue.capacity {
                full += 1;
                format!("queue full ({} requests)", st.jobs.len())
            } else if let Health::Failing { last, .. } = &st.health {
                format!("unhealthy: {last}")
            } else {
                "not chosen by the policy".to_string()
            };
            why.push(format!("{}: {reason}", d.info.id));
        }
        if full > 0 && job.tried.is_empty() && full == self.available_count() {
            Error::Overloaded(format!("every device queue is full ({})", why.join("; ")))
        } else {
            Error::Device {
                device: "scheduler".into(),
                message: format!(
                    "no device can take the request under policy {}: {}",
                    self.policy,
                    why.join("; ")
                ),
            }
        }
    }

    fn available_count(&self) -> usize {
        let now = Instant::now();
        self.devices
            .iter()
            .filter(|d| lock(&d.state).health.open(now))
            .count()
    }

    /// Runs `job` on the calling thread if device `i` is idle (nothing queued or running),
    /// healthy, and either the CPU (whose runs are host threads' work anyway) or a device
    /// that batches without waiting; gives the job back otherwise. A GPU with a queue
    /// delay keeps it: an idle GPU's first request is the one others coalesce with. The
    /// reply goes through the job's channel as from the worker, so faults, retries and
    /// counters are the same.
    fn run_inline(&self, i: usize, job: Job) -> Option<Job> {
        let d = &self.devices[i];
        let now = Instant::now();
        {
            let mut st = lock(&d.state);
            let idle = st.jobs.is_empty() && st.running.is_none() && !st.inline;
            let live = job.deadline.is_none_or(|t| now < t);
            let eager = d.info.id.kind == DeviceKind::Cpu || d.queue.max_delay.is_zero();
            if !(idle && live && eager && st.health.open(now)) {
                return Some(job);
            }
            st.inline = true;
            st.running = Some((now, predicted(d, job.samples)));
        }
        self.execute(i, vec![job]);
        let mut st = lock(&d.state);
        st.inline = false;
        st.running = None;
        if !st.jobs.is_empty() {
            d.wake.notify_one();
        }
        None
    }

    fn enqueue(&self, i: usize, mut job: Job) -> Result<()> {
        let d = &self.devices[i];
        let mut st = lock(&d.state);
        if st.jobs.len() >= d.queue.capacity {
            return Err(Error::Overloaded(format!(
                "the {} queue is full ({} requests)",
                d.info.id,
                st.jobs.len()
            )));
        }
        job.queued = Instant::now();
        st.queued_samples += job.samples;
        st.jobs.push_back(job);
        d.wake.notify_one();
        Ok(())
    }

    /// A device's worker loop.
    fn work(&self, i: usize) {
        let d = &self.devices[i];
        loop {
            let Some(jobs) = self.next_batch(d) else {
                return;
            };
            let now = Instant::now();
            let (live, expired): (Vec<Job>, Vec<Job>) = jobs
                .into_iter()
                .partition(|j| j.deadline.is_none_or(|t| now < t));
            for j in expired {
                lock(&d.counters).error();
                let waited = now.saturating_duration_since(j.arrived);
                j.answer(Err(Error::DeadlineExceeded(format!(
                    "the request waited {:.1} ms in the {} queue, past its deadline",
                    waited.as_secs_f64() * 1e3,
                    d.info.id
                ))));
            }
            if !live.is_empty() {
                self.execute(i, live);
            }
            lock(&d.state).running = None;
        }
    }

    /// Waits for work and takes the oldest request plus the compatible ones behind it.
    /// `None` once shut down with nothing left.
    fn next_batch(&self, d: &Device) -> Option<Vec<Job>> {
        let mut st = lock(&d.state);
        while st.jobs.is_empty() || st.inline {
            if st.jobs.is_empty() && self.shutdown.load(Ordering::SeqCst) {
                return None;
            }
            st = d.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let first = st.jobs.pop_front()?;
        let mut samples = first.samples;
        let wait_until = first.queued + d.queue.max_delay;
        let mut jobs = vec![first];
        while self.axis == BatchAxis::Leading && samples < d.queue.max_batch {
            match st.jobs.front() {
                Some(j)
                    if samples + j.samples <= d.queue.max_batch
                        && batch::compatible(&jobs[0].inputs, &j.inputs) =>
                {
                    samples += j.samples;
                    jobs.extend(st.jobs.pop_front());
                }
                Some(_) => break,
                None => {
                    let now = Instant::now();
                    if now >= wait_until || self.shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    st = d
                        .wake
                        .wait_timeout(st, wait_until - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        st.queued_samples -= samples;
        st.running = Some((Instant::now(), predicted(d, samples)));
        Some(jobs)
    }

    fn execute(&self, i: usize, jobs: Vec<Job>) {
        let d = &self.devices[i];
        let samples: usize = jobs.iter().map(|j| j.samples).sum();
        let started = Instant::now();
        let result = {
            let refs: Vec<&[Tensor]> = jobs.iter().map(|j| j.inputs.as_slice()).collect();
            batch::join(&refs).and_then(|inputs| {
                catch_unwind(AssertUnwindSafe(|| d.exec.run(&inputs))).unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(Error::Device {
                        device: d.info.id.to_string(),
                        message: format!("the run panicked: {what}"),
                    })
                })
            })
        };
        match result {
            Ok(out) => {
                lock(&d.state).health = Health::Healthy;
                let t = out.timings;
                let calibrated = d.calibrated.as_ref().map_or(Duration::ZERO, |c| {
                    Duration::from_secs_f64(c.latency(samples))
                });
                lock(&d.counters).run(t.upload + t.compute + t.download, calibrated);
                self.observe(d, samples, t);
                let rows = batch::row_ranges(jobs.iter().map(|j| j.samples));
                let split = if jobs.len() == 1 {
                    Ok(vec![out.outputs])
                } else {
                    batch::split(&out.outputs, &rows)
                };
                match split {
                    Ok(parts) => {
                        for (job, outputs) in jobs.into_iter().zip(parts) {
                            let queue = started.saturating_duration_since(job.queued);
                            let latency = job.arrived.elapsed();
                            lock(&d.counters).completed(job.samples, queue, latency);
                            let run = RunInfo {
                                device: d.info.id.clone(),
                                samples: job.samples,
                                batch: samples,
                                timings: StageTimings { queue, ..t },
                                latency,
                                peak_bytes: out.peak_bytes,
                            };
                            job.answer(Ok(Part { outputs, run }));
                        }
                    }
                    Err(e) => self.fail_all(d, jobs, &e),
                }
            }
            Err(e) if e.kind() == ErrorKind::Device => self.device_failed(i, jobs, e),
            // The inputs were at fault: find which, one request at a time.
            Err(_) if jobs.len() > 1 => {
                for job in jobs {
                    self.execute(i, vec![job]);
                }
            }
            Err(e) => self.fail_all(d, jobs, &e),
        }
    }

    fn observe(&self, d: &Device, samples: usize, t: StageTimings) {
        let run = Sample {
            batch: samples,
            upload: t.upload.as_secs_f64(),
            compute: t.compute.as_secs_f64(),
            download: t.download.as_secs_f64(),
        };
        let mut curve = d.curve.write().unwrap_or_else(|p| p.into_inner());
        match curve.as_mut() {
            Some(c) => c.observe(run, OBSERVE_WEIGHT),
            None => *curve = CostCurve::new(vec![run]).ok(),
        }
    }

    fn fail_all(&self, d: &Device, jobs: Vec<Job>, e: &Error) {
        for job in jobs {
            lock(&d.counters).error();
            job.answer(Err(e.clone()));
        }
    }

    /// Marks device `i` unhealthy and moves the failed batch and its queue elsewhere.
    fn device_failed(&self, i: usize, jobs: Vec<Job>, e: Error) {
        let d = &self.devices[i];
        lock(&d.counters).fault();
        let moved: Vec<Job> = {
            let mut st = lock(&d.state);
            let failures = match &st.health {
                Health::Healthy => 1,
                Health::Failing { failures, .. } => failures + 1,
            };
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << (failures - 1).min(16))
                .min(MAX_BACKOFF);
            tracing::warn!(
                "{} failed ({e}); retrying it in {:.1} s",
                d.info.id,
                backoff.as_secs_f64()
            );
            st.health = Health::Failing {
                failures,
                retry_at: Instant::now() + backoff,
                last: e.to_string(),
            };
            st.queued_samples = 0;
            jobs.into_iter().chain(st.jobs.drain(..)).collect()
        };
        for mut job in moved {
            job.tried.push(i);
            let reply = job.reply.clone();
            let part = job.part;
            let retry = match self.policy {
                Policy::Pinned(_) => Err(e.clone()),
                _ => self.place(job, false, false).map(|_| ()),
            };
            if let Err(why) = retry {
                lock(&d.counters).error();
                let err = match why {
                    Error::Device { message, .. } if !matches!(self.policy, Policy::Pinned(_)) => {
                        Error::Device {
                            device: d.info.id.to_string(),
                            message: format!("{e}; moving the request failed: {message}"),
                        }
                    }
                    other => other,
                };
                let _ = reply.send((part, Err(err)));
            }
        }
    }
}
