//! Calibration: a model's measured cost on one device at batch sizes 1, 2, 4, …, and the
//! on-disk cache that keeps it across sessions.
//!
//! Each batch size runs once to warm up, then until it has both [`MIN_RUNS`] runs and
//! [`MIN_TIME`] of them (at most [`MAX_RUNS`]). Batch sizes whose runs are short are
//! measured again in [`ROUNDS`] interleaved rounds, so that a slow spell of a shared
//! machine falls on all of them alike instead of bending the curve at one; the median of
//! each stage over all rounds is the sample. Doubling stops at the largest batch the caller allows, when the next batch would not
//! fit the device's free memory, when a run fails for want of memory, or when the time
//! budget is spent.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossover_core::{
    invalid, DeviceId, DeviceInfo, Error, ErrorKind, Executable, Result, StageTimings, Tensor,
};
use serde::{Deserialize, Serialize};

use crate::curve::{CostCurve, Sample};

const MIN_RUNS: usize = 3;
const MAX_RUNS: usize = 200;
/// Measuring time per round: a 50 µs model gets about 400 runs over all rounds.
const MIN_TIME: Duration = Duration::from_millis(20);
/// Rounds over the batch sizes whose first round took at most [`SHORT_ROUND`]; longer
/// runs average the machine's noise out within one round.
const ROUNDS: usize = 5;
const SHORT_ROUND: Duration = Duration::from_millis(100);

/// A model's measured cost and footprint on one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// SHA-256 of the model bytes.
    pub model: String,
    pub device: DeviceId,
    pub device_name: String,
    /// The crossover version that measured it; another version measures again.
    pub version: String,
    /// Shapes of the inputs of one sample (batch 1) it was measured with.
    pub sample_shapes: Vec<Vec<usize>>,
    /// Median stage times per batch size, sorted by batch.
    pub samples: Vec<Sample>,
    pub weights_bytes: u64,
    /// Intermediate bytes one more sample adds to a run's peak.
    pub activation_bytes_per_sample: u64,
    /// The largest batch that ran; larger ones did not fit, failed, or were not tried.
    pub max_batch: usize,
    /// Why doubling stopped.
    pub limited_by: String,
}

impl Profile {
    pub fn curve(&self) -> Result<CostCurve> {
        CostCurve::new(self.samples.clone())
    }

    /// Largest batch whose weights and activations fit in `free` bytes.
    pub fn batch_fitting(&self, free: u64) -> usize {
        let left = free.saturating_sub(self.weights_bytes);
        match self.activation_bytes_per_sample {
            0 => usize::MAX,
            a => (left / a).min(usize::MAX as u64) as usize,
        }
    }
}

#[derive(Clone, Debug)]
pub struct CalibrationOptions {
    /// Largest batch size to try.
    pub max_batch: usize,
    /// Stop doubling once this much time is spent (batch 1 always runs).
    pub time_budget: Option<Duration>,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        CalibrationOptions {
            max_batch: 256,
            time_budget: Some(Duration::from_secs(30)),
        }
    }
}

/// Progress of a calibration, for a progress bar.
#[derive(Clone, Debug)]
pub struct Step {
    pub device: DeviceId,
    pub batch: usize,
    /// Batch sizes measured so far, and the most that will be.
    pub done: usize,
    pub planned: usize,
    pub sample: Sample,
}

/// Measures `exec` on `device` at batch sizes 1, 2, 4, …; `inputs_for(b)` gives the
/// inputs of a batch of `b` samples.
pub fn calibrate(
    exec: &dyn Executable,
    device: &DeviceInfo,
    model: &str,
    inputs_for: &dyn Fn(usize) -> Result<Vec<Tensor>>,
    options: &CalibrationOptions,
    progress: &mut dyn FnMut(&Step),
) -> Result<Profile> {
    let start = Instant::now();
    let batches: Vec<usize> = std::iter::successors(Some(1usize), |b| b.checked_mul(2))
        .take_while(|b| *b <= options.max_batch.max(1))
        .collect();
    let weights = exec.memory().weights;
    // Per batch size measured: its runs' stage times so far, and its inputs while it is
    // short enough for more rounds.
    let mut measured: Vec<(usize, Vec<StageTimings>, Option<Vec<Tensor>>)> = Vec::new();
    let mut peaks: Vec<(usize, u64)> = Vec::new();
    let mut limited_by = format!("the largest batch tried ({})", batches[batches.len() - 1]);
    for (i, &batch) in batches.iter().enumerate() {
        if let Some(per_sample) = per_sample_bytes(&peaks) {
            let need = weights + per_sample * batch as u64;
            if need > device.memory_free {
                limited_by = format!(
                    "memory: batch {batch} needs about {need} bytes, {} free",
                    device.memory_free
                );
                break;
            }
        }
        if i > 0 && over_budget(options, start) {
            limited_by = format!(
                "the time budget ({:?})",
                options.time_budget.unwrap_or_default()
            );
            break;
        }
        let inputs = inputs_for(batch)?;
        let began = Instant::now();
        let mut runs = Vec::new();
        let peak = match measure(exec, &inputs, &mut runs) {
            Ok(peak) => peak,
            Err(e) if i > 0 && out_of_memory(&e) => {
                limited_by = format!("batch {batch} failed: {e}");
                break;
            }
            Err(e) => return Err(e),
        };
        let short = began.elapsed() <= SHORT_ROUND;
        peaks.push((batch, peak));
        progress(&Step {
            device: device.id.clone(),
            batch,
            done: i + 1,
            planned: batches.len(),
            sample: median(batch, &runs),
        });
        measured.push((batch, runs, short.then_some(inputs)));
    }
    for _ in 1..ROUNDS {
        for (_, runs, inputs) in &mut measured {
            if let Some(inputs) = inputs.as_deref().filter(|_| !over_budget(options, start)) {
                measure(exec, inputs, runs)?;
            }
        }
    }
    let samples: Vec<Sample> = measured
        .iter()
        .map(|(batch, runs, _)| median(*batch, runs))
        .collect();
    let shapes = inputs_for(1)?.iter().map(|t| t.shape().to_vec()).collect();
    let max_batch = samples.last().map_or(1, |s| s.batch);
    Ok(Profile {
        model: model.to_string(),
        device: device.id.clone(),
        device_name: device.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        sample_shapes: shapes,
        samples,
        weights_bytes: weights,
        activation_bytes_per_sample: per_sample_bytes(&peaks).unwrap_or(0),
        max_batch,
        limited_by,
    })
}

fn out_of_memory(e: &Error) -> bool {
    matches!(e, Error::TooLarge { .. }) || e.kind() == ErrorKind::Device
}

/// Slope of peak bytes against batch size (the first point alone when there is one).
fn per_sample_bytes(peaks: &[(usize, u64)]) -> Option<u64> {
    match peaks {
        [] => None,
        [(b, p)] => Some(p / *b as u64),
        [.., (b0, p0), (b1, p1)] => Some(p1.saturating_sub(*p0) / (b1 - b0) as u64),
    }
}

fn over_budget(options: &CalibrationOptions, start: Instant) -> bool {
    options.time_budget.is_some_and(|b| start.elapsed() >= b)
}

/// One round at one batch size: a warm-up run, then runs until there are [`MIN_RUNS`]
/// and [`MIN_TIME`] of them (at most [`MAX_RUNS`]), appended to `runs`; the peak bytes.
fn measure(exec: &dyn Executable, inputs: &[Tensor], runs: &mut Vec<StageTimings>) -> Result<u64> {
    let mut peak = exec.run(inputs)?.peak_bytes;
    let (began, before) = (Instant::now(), runs.len());
    loop {
        let n = runs.len() - before;
        if n >= MAX_RUNS || (n >= MIN_RUNS && began.elapsed() >= MIN_TIME) {
            return Ok(peak);
        }
        let out = exec.run(inputs)?;
        peak = peak.max(out.peak_bytes);
        runs.push(out.timings);
    }
}

/// The median of each stage over `runs`.
fn median(batch: usize, runs: &[StageTimings]) -> Sample {
    let median = |f: fn(&StageTimings) -> Duration| {
        let mut v: Vec<f64> = runs.iter().map(|t| f(t).as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    Sample {
        batch,
        upload: median(|t| t.upload),
        compute: median(|t| t.compute),
        download: median(|t| t.download),
    }
}

/// Profiles on disk, one JSON file per (model, device, input shapes).
#[derive(Clone, Debug)]
pub struct ProfileCache {
    dir: PathBuf,
}

impl ProfileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ProfileCache { dir: dir.into() }
    }

    /// `$CROSSOVER_CACHE_DIR`, else `$XDG_CACHE_HOME/crossover`, else `~/.cache/crossover`;
    /// profiles go in its `profiles/` folder.
    pub fn default_location() -> Option<Self> {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = env("CROSSOVER_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("crossover")))
            .or_else(|| env("HOME").map(|p| p.join(".cache/crossover")))?;
        Some(ProfileCache::new(root.join("profiles")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, model: &str, device: &DeviceId, shapes: &[Vec<usize>]) -> PathBuf {
        let shapes = shapes
            .iter()
            .map(|s| {
                s.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("x")
            })
            .collect::<Vec<_>>()
            .join("_");
        let device = device.to_string().replace(':', "-");
        let model = &model[..model.len().min(16)];
        self.dir.join(format!("{model}-{device}-{shapes}.json"))
    }

    /// The cached profile for this model, device and input shapes, if one was measured
    /// by this version on a device of the same name.
    pub fn load(&self, model: &str, device: &DeviceInfo, shapes: &[Vec<usize>]) -> Option<Profile> {
        let path = self.path(model, &device.id, shapes);
        let text = std::fs::read_to_string(&path).ok()?;
        let profile: Profile = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("ignoring unreadable profile {}: {e}", path.display());
                return None;
            }
        };
        let fresh = profile.model == model
            && profile.device == device.id
            && profile.device_name == device.name
            && profile.version == env!("CARGO_PKG_VERSION")
            && profile.sample_shapes == shapes
            && profile.curve().is_ok();
        fresh.then_some(profile)
    }

    pub fn store(&self, profile: &Profile) -> Result<PathBuf> {
        let path = self.path(&profile.model, &profile.device, &profile.sample_shapes);
        let io = |e: std::io::Error| Error::Io {
            path: path.clone(),
            source: e,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let json = serde_json::to_string_pretty(profile)
            .map_err(|e| invalid!("cannot encode the profile: {e}"))?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::{MemoryUsage, RunOutput};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Reports 1 ms + 0.1 ms per sample, three times that during a slow spell of the
    /// machine: its first `slow_calls` runs.
    struct Spell {
        calls: AtomicUsize,
        slow_calls: usize,
    }

    impl Executable for Spell {
        fn run(&self, inputs: &[Tensor]) -> Result<RunOutput> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            let batch = inputs[0].shape()[0] as f64;
            let ms = (1.0 + 0.1 * batch) * if call < self.slow_calls { 3.0 } else { 1.0 };
            Ok(RunOutput {
                outputs: vec![],
                timings: StageTimings {
                    compute: Duration::from_secs_f64(ms * 1e-3),
                    ..Default::default()
                },
                peak_bytes: 0,
            })
        }

        fn memory(&self) -> MemoryUsage {
            MemoryUsage::default()
        }
    }

    #[test]
    fn a_slow_spell_during_one_batch_size_does_not_bend_the_curve() {
        // The spell covers batch 1's first round (a warm-up and MAX_RUNS runs, which
        // take no time here); the later rounds outvote it.
        let exec = Spell {
            calls: AtomicUsize::new(0),
            slow_calls: 1 + MAX_RUNS,
        };
        let device = DeviceInfo {
            id: DeviceId::CPU,
            name: "test".into(),
            memory_total: 1 << 30,
            memory_free: 1 << 30,
            compute_units: 1,
        };
        let inputs = |b: usize| Ok(vec![Tensor::from_vec(&[b], vec![0f32; b])?]);
        let options = CalibrationOptions {
            max_batch: 4,
            time_budget: None,
        };
        let p = calibrate(&exec, &device, "m", &inputs, &options, &mut |_| {}).unwrap();
        let got: Vec<(usize, f64)> = p
            .samples
            .iter()
            .map(|s| (s.batch, s.compute * 1e3))
            .collect();
        for ((b, ms), want) in got.iter().zip([1.1, 1.2, 1.4]) {
            assert!(
                (ms - want).abs() < 1e-9,
                "batch {b}: {ms} ms, want {want}: {got:?}"
            );
        }
        // Every round ran: 3 batch sizes × ROUNDS × (a warm-up + MAX_RUNS).
        assert_eq!(
            exec.calls.load(Ordering::SeqCst),
            3 * ROUNDS * (1 + MAX_RUNS)
        );
    }
}
