//! Per-device counters a session keeps: what ran where, how long it waited, how long it took.

use std::time::Duration;

use crossover_core::DeviceId;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency quantiles of completed requests, from enqueue to reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
}

/// A snapshot of one device's counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceStats {
    pub device: DeviceId,
    /// Requests (or request slices) completed here.
    pub requests: u64,
    pub samples: u64,
    /// Device runs; fewer than requests when requests were batched together.
    pub runs: u64,
    /// Requests that ended in an error here.
    pub errors: u64,
    /// Runs that failed because of the device (the work moved elsewhere).
    pub faults: u64,
    /// Time spent running.
    pub busy: Duration,
    /// What the calibrated curve predicted for the same runs: `busy` over it says how
    /// much slower (or faster) the device ran than when it was calibrated.
    pub calibrated_busy: Duration,
    /// Total time requests waited in this device's queue.
    pub queued: Duration,
    pub latency: Percentiles,
    pub healthy: bool,
}

impl DeviceStats {
    /// Mean samples per run: how well dynamic batching coalesced requests.
    pub fn mean_batch(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.samples as f64 / self.runs as f64
        }
    }
}

pub(crate) struct Counters {
    requests: u64,
    samples: u64,
    runs: u64,
    errors: u64,
    faults: u64,
    busy: Duration,
    calibrated_busy: Duration,
    queued: Duration,
    latency_us: Histogram<u64>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: 0,
            samples: 0,
            runs: 0,
            errors: 0,
            faults: 0,
            busy: Duration::ZERO,
            calibrated_busy: Duration::ZERO,
            queued: Duration::ZERO,
            // One microsecond to one hour at three significant digits.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant bounds are valid"),
        }
    }
}

impl Counters {
    /// A run that took `busy` and that the calibrated curve put at `calibrated`.
    pub(crate) fn run(&mut self, busy: Duration, calibrated: Duration) {
        self.runs += 1;
        self.busy += busy;
        self.calibrated_busy += calibrated;
    }

    pub(crate) fn completed(&mut self, samples: usize, queued: Duration, latency: Duration) {
        self.requests += 1;
        self.samples += samples as u64;
        self.queued += queued;
        let us = (latency.as_micros() as u64).clamp(1, self.latency_us.high());
        self.latency_us.saturating_record(us);
    }

    pub(crate) fn error(&mut self) {
        self.errors += 1;
    }

    pub(crate) fn fault(&mut self) {
        self.faults += 1;
    }

    pub(crate) fn snapshot(&self, device: DeviceId, healthy: bool) -> DeviceStats {
        let q = |p: f64| {
            if self.latency_us.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_micros(self.latency_us.value_at_quantile(p))
            }
        };
        DeviceStats {
            device,
            requests: self.requests,
            samples: self.samples,
            runs: self.runs,
            errors: self.errors,
            faults: self.faults,
            busy: self.busy,
            calibrated_busy: self.calibrated_busy,
            queued: self.queued,
            latency: Percentiles {
                p50: q(0.50),
                p95: q(0.95),
                p99: q(0.99),
            },
            healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut c = Counters::default();
        for ms in 1..=100 {
            c.completed(2, Duration::ZERO, Duration::from_millis(ms));
        }
        c.run(Duration::from_millis(10), Duration::from_millis(8));
        let s = c.snapshot(DeviceId::CPU, true);
        assert_eq!(s.requests, 100);
        assert_eq!(s.samples, 200);
        assert_eq!(s.mean_batch(), 200.0);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        assert!((ms(s.latency.p50) - 50.0).abs() < 0.5, "{:?}", s.latency);
        assert!((ms(s.latency.p99) - 99.0).abs() < 0.5, "{:?}", s.latency);
    }
}
