//! Cost curves: a device's latency as a function of batch size, from calibration runs.
//!
//! Between measured batch sizes the curve interpolates linearly; past the largest it
//! extends with the slope of the last segment, since throughput on a saturated device
//! grows no further. The fixed per-run overhead (launches, synchronisation, dispatch) is
//! the intercept of a least-squares line through the measured compute times: the part of
//! a run's time that does not shrink when the batch does.

use std::fmt;

use crossover_core::{invalid, Result};

/// One calibration measurement: the median stage times of runs at one batch size.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub batch: usize,
    /// Host to device copies, seconds (zero on the CPU).
    pub upload: f64,
    /// Time on the device, seconds.
    pub compute: f64,
    /// Device to host copies, seconds (zero on the CPU).
    pub download: f64,
}

impl Sample {
    pub fn total(&self) -> f64 {
        self.upload + self.compute + self.download
    }

    fn scaled_lerp(&self, other: &Sample, t: f64, batch: usize) -> Sample {
        let lerp = |a: f64, b: f64| a + (b - a) * t;
        Sample {
            batch,
            upload: lerp(self.upload, other.upload).max(0.0),
            compute: lerp(self.compute, other.compute).max(0.0),
            download: lerp(self.download, other.download).max(0.0),
        }
    }
}

/// Latency against batch size for one (model, device).
#[derive(Clone, Debug, PartialEq)]
pub struct CostCurve {
    /// Sorted by batch, one per batch size.
    samples: Vec<Sample>,
    /// Seconds of each run's compute that do not depend on the batch size.
    overhead: f64,
}

impl CostCurve {
    /// A curve through `samples`; repeated batch sizes keep the later measurement.
    pub fn new(mut samples: Vec<Sample>) -> Result<Self> {
        if samples.is_empty() {
            return Err(invalid!("a cost curve needs at least one measurement"));
        }
        for s in &samples {
            if s.batch == 0 {
                return Err(invalid!("a measurement at batch size 0"));
            }
            let times = [s.upload, s.compute, s.download];
            if times.iter().any(|t| !t.is_finite() || *t < 0.0) {
                return Err(invalid!(
                    "a measurement at batch {} has a negative or non-finite time: {s:?}",
                    s.batch
                ));
            }
        }
        samples.sort_by_key(|s| s.batch);
        let mut unique: Vec<Sample> = Vec::with_capacity(samples.len());
        for s in samples {
            match unique.last_mut() {
                Some(last) if last.batch == s.batch => *last = s,
                _ => unique.push(s),
            }
        }
        monotone(&mut unique);
        let overhead = intercept(&unique).clamp(0.0, unique[0].compute);
        Ok(CostCurve {
            samples: unique,
            overhead,
        })
    }

    /// Refines the curve with an observed run: the measurement at that batch size moves
    /// `weight` (0..=1) of the way to it, or the run becomes a new measurement.
    pub fn observe(&mut self, run: Sample, weight: f64) {
        let ok = [run.upload, run.compute, run.download]
            .iter()
            .all(|t| t.is_finite() && *t >= 0.0);
        if run.batch == 0 || !ok {
            return;
        }
        let at = self.samples.partition_point(|p| p.batch < run.batch);
        match self.samples.get_mut(at) {
            Some(p) if p.batch == run.batch => {
                *p = p.scaled_lerp(&run, weight.clamp(0.0, 1.0), run.batch)
            }
            _ => self.samples.insert(at, run),
        }
        monotone(&mut self.samples);
        self.overhead = intercept(&self.samples).clamp(0.0, self.samples[0].compute);
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The largest batch size measured.
    pub fn max_measured(&self) -> usize {
        self.samples.last().map_or(0, |s| s.batch)
    }

    /// Seconds of each run that do not depend on the batch size.
    pub fn overhead(&self) -> f64 {
        self.overhead
    }

    /// The predicted stage times of one run at `batch` (at least 1).
    pub fn predict(&self, batch: usize) -> Sample {
        let batch = batch.max(1);
        let s = &self.samples;
        let at = s.partition_point(|p| p.batch < batch);
        if at < s.len() && s[at].batch == batch {
            return s[at];
        }
        // Below the smallest, between two, or past the largest measured batch size.
        let (a, b) = match (at, s.len()) {
            (_, 1) => {
                // One point: the time scales with the batch beyond the fixed overhead.
                let p = s[0];
                let k = batch as f64 / p.batch as f64;
                return Sample {
                    batch,
                    upload: p.upload * k,
                    compute: self.overhead + (p.compute - self.overhead) * k,
                    download: p.download * k,
                };
            }
            (0, _) => (s[0], s[1]),
            (i, n) if i >= n => (s[n - 2], s[n - 1]),
            (i, _) => (s[i - 1], s[i]),
        };
        let t = (batch as f64 - a.batch as f64) / (b.batch as f64 - a.batch as f64);
        a.scaled_lerp(&b, t, batch)
    }

    /// Predicted seconds for one run at `batch`.
    pub fn latency(&self, batch: usize) -> f64 {
        self.predict(batch).total()
    }

    /// Predicted samples per second when every run carries `batch` samples.
    pub fn throughput(&self, batch: usize) -> f64 {
        let l = self.latency(batch);
        if l > 0.0 {
            batch.max(1) as f64 / l
        } else {
            f64::INFINITY
        }
    }

    /// Where the time of one run at `batch` goes.
    pub fn breakdown(&self, batch: usize) -> Breakdown {
        let p = self.predict(batch);
        let overhead = self.overhead.min(p.compute);
        Breakdown {
            transfer: p.upload + p.download,
            overhead,
            compute: p.compute - overhead,
        }
    }
}

/// Makes each stage's time non-decreasing in the batch size, by the closest such fit
/// (pool adjacent violators, least squares): a larger batch never runs faster, and a
/// measurement that says so is noise, which would otherwise send the routing the wrong
/// way between the two points.
fn monotone(samples: &mut [Sample]) {
    let stages: [fn(&mut Sample) -> &mut f64; 3] =
        [|s| &mut s.upload, |s| &mut s.compute, |s| &mut s.download];
    for stage in stages {
        // Blocks of pooled points: (mean, count).
        let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(samples.len());
        for s in samples.iter_mut() {
            blocks.push((*stage(s), 1));
            while let [.., (m0, n0), (m1, n1)] = blocks[..] {
                if m0 <= m1 {
                    break;
                }
                let n = n0 + n1;
                blocks.truncate(blocks.len() - 2);
                blocks.push(((m0 * n0 as f64 + m1 * n1 as f64) / n as f64, n));
            }
        }
        let fitted = blocks.iter().flat_map(|&(m, n)| std::iter::repeat_n(m, n));
        for (s, v) in samples.iter_mut().zip(fitted) {
            *stage(s) = v;
        }
    }
}

/// The intercept of the least-squares line of compute time against batch size.
fn intercept(s: &[Sample]) -> f64 {
    if s.len() < 2 {
        return 0.0;
    }
    let n = s.len() as f64;
    let mx = s.iter().map(|p| p.batch as f64).sum::<f64>() / n;
    let my = s.iter().map(|p| p.compute).sum::<f64>() / n;
    let sxx: f64 = s.iter().map(|p| (p.batch as f64 - mx).powi(2)).sum();
    let sxy: f64 = s
        .iter()
        .map(|p| (p.batch as f64 - mx) * (p.compute - my))
        .sum();
    if sxx == 0.0 {
        return 0.0;
    }
    my - sxy / sxx * mx
}

/// Where one run's time goes, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Breakdown {
    /// Upload and download.
    pub transfer: f64,
    /// The fixed part of compute: launches, synchronisation, dispatch.
    pub overhead: f64,
    /// The part of compute that grows with the batch.
    pub compute: f64,
}

impl Breakdown {
    pub fn total(&self) -> f64 {
        self.transfer + self.overhead + self.compute
    }
}

/// `61% upload+download, 24% fixed overhead, 15% compute`.
impl fmt::Display for Breakdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        let pct = |v: f64| {
            if total > 0.0 {
                (100.0 * v / total).round()
            } else {
                0.0
            }
        };
        write!(
            f,
            "{}% upload+download, {}% fixed overhead, {}% compute",
            pct(self.transfer),
            pct(self.overhead),
            pct(self.compute)
        )
    }
}

/// From which batch size one device (the challenger, typically a GPU) is faster per run
/// than another (the incumbent, typically the CPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crossover {
    /// Faster from batch 1.
    Always,
    /// Faster from this batch size on, up to the largest one considered.
    AtBatch(usize),
    /// Never faster up to the largest batch size considered.
    Never,
}

impl fmt::Display for Crossover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crossover::Always => f.write_str("always"),
            Crossover::AtBatch(b) => write!(f, "from batch {b}"),
            Crossover::Never => f.write_str("never"),
        }
    }
}

/// The smallest batch size in `1..=max_batch` from which `challenger` stays faster than
/// `incumbent` for every larger batch size considered.
pub fn crossover(incumbent: &CostCurve, challenger: &CostCurve, max_batch: usize) -> Crossover {
    let max_batch = max_batch.max(1);
    let mut from = None;
    for b in 1..=max_batch {
        if challenger.latency(b) < incumbent.latency(b) {
            from.get_or_insert(b);
        } else {
            from = None;
        }
    }
    match from {
        Some(1) => Crossover::Always,
        Some(b) => Crossover::AtBatch(b),
        None => Crossover::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> CostCurve {
        // 2 ms per sample, no transfers, 0.1 ms dispatch.
        CostCurve::new(
            [1, 2, 4, 8, 16]
                .iter()
                .map(|&b| Sample {
                    batch: b,
                    upload: 0.0,
                    compute: 1e-4 + 2e-3 * b as f64,
                    download: 0.0,
                })
                .collect(),
        )
        .unwrap()
    }

    fn gpu() -> CostCurve {
        // 5 ms of launches, 0.1 ms per sample, 0.5 ms per sample of copies.
        CostCurve::new(
            [1, 2, 4, 8, 16]
                .iter()
                .map(|&b| Sample {
                    batch: b,
                    upload: 4e-4 * b as f64,
                    compute: 5e-3 + 1e-4 * b as f64,
                    download: 1e-4 * b as f64,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn interpolates_and_extrapolates() {
        let c = cpu();
        assert!((c.latency(3) - (1e-4 + 6e-3)).abs() < 1e-12);
        assert!((c.latency(32) - (1e-4 + 64e-3)).abs() < 1e-12);
        assert!((c.overhead() - 1e-4).abs() < 1e-12);
        assert!(c.throughput(16) > c.throughput(1));
    }

    #[test]
    fn finds_the_crossover_and_explains_it() {
        // GPU: 5 ms + 0.6 ms·b; CPU: 0.1 ms + 2 ms·b; equal near b = 3.5.
        assert_eq!(crossover(&cpu(), &gpu(), 16), Crossover::AtBatch(4));
        assert_eq!(crossover(&cpu(), &gpu(), 2), Crossover::Never);
        // The CPU wins small batches only, so it never stays ahead.
        assert_eq!(crossover(&gpu(), &cpu(), 16), Crossover::Never);
        let slow_cpu = CostCurve::new(vec![Sample {
            batch: 1,
            upload: 0.0,
            compute: 1.0,
            download: 0.0,
        }])
        .unwrap();
        assert_eq!(crossover(&slow_cpu, &gpu(), 16), Crossover::Always);
        let b = gpu().breakdown(1);
        assert!((b.overhead - 5e-3).abs() < 1e-9, "{b:?}");
        assert_eq!(
            b.to_string(),
            "9% upload+download, 89% fixed overhead, 2% compute"
        );
    }

    #[test]
    fn one_point_scales_beyond_its_overhead() {
        let c = CostCurve::new(vec![Sample {
            batch: 4,
            upload: 0.0,
            compute: 8e-3,
            download: 0.0,
        }])
        .unwrap();
        assert_eq!(c.overhead(), 0.0);
        assert!((c.latency(8) - 16e-3).abs() < 1e-12);
    }

    #[test]
    fn bad_measurements_are_errors() {
        assert!(CostCurve::new(vec![]).is_err());
        let bad = |batch, compute| Sample {
            batch,
            upload: 0.0,
            compute,
            download: 0.0,
        };
        assert!(CostCurve::new(vec![bad(0, 1.0)]).is_err());
        assert!(CostCurve::new(vec![bad(1, f64::NAN)]).is_err());
        assert!(CostCurve::new(vec![bad(1, -1.0)]).is_err());
    }

    #[test]
    fn a_noisy_calibration_fits_a_monotone_curve() {
        let at = |batch, compute| Sample {
            batch,
            upload: 0.0,
            compute,
            download: 0.0,
        };
        // Batch 1 read during a slow spell, batch 8 during a fast one.
        let mut c = CostCurve::new(vec![
            at(1, 0.132e-3),
            at(2, 0.100e-3),
            at(4, 0.200e-3),
            at(8, 0.150e-3),
            at(16, 0.400e-3),
        ])
        .unwrap();
        let fitted: Vec<f64> = c.samples().iter().map(|s| s.compute).collect();
        let want = [0.116e-3, 0.116e-3, 0.175e-3, 0.175e-3, 0.400e-3];
        for (f, w) in fitted.iter().zip(want) {
            assert!((f - w).abs() < 1e-12, "{fitted:?}");
        }
        // A faster observed run is pooled in too, never leaving a dip.
        c.observe(at(16, 0.1e-3), 1.0);
        let fitted: Vec<f64> = c.samples().iter().map(|s| s.compute).collect();
        assert!(fitted.windows(2).all(|w| w[0] <= w[1]), "{fitted:?}");
        // A curve that already rises is left as measured.
        assert_eq!(
            cpu().samples(),
            CostCurve::new(cpu().samples().to_vec()).unwrap().samples()
        );
        assert!((cpu().latency(2) - (1e-4 + 4e-3)).abs() < 1e-12);
    }
}
