//! A discrete-event simulation of the scheduler: the same routing ([`crate::policy::route`])
//! and the same dynamic batching rules, with each run taking the time its device's cost
//! curve predicts. It answers what a fleet of devices would do with a request trace
//! without running a model, which is what `crossover plan` sizes fleets with.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::f64::consts::PI;

use crossover_core::{invalid, DeviceId, Result};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::curve::CostCurve;
use crate::policy::{self, DeviceView, Policy, Route};
use crate::scheduler::QueueConfig;

/// One device of a simulated fleet.
#[derive(Clone, Debug)]
pub struct SimDevice {
    pub id: DeviceId,
    pub curve: CostCurve,
    pub queue: QueueConfig,
    /// Dollars per hour, for the fleet's cost.
    pub price: f64,
}

/// A request of a trace: when it arrives (seconds from the start) and its samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    pub at: f64,
    pub samples: usize,
}

/// The shape of the arrival rate over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Pattern {
    /// Poisson arrivals at a constant rate.
    Steady,
    /// Bursts at 3x the mean rate for a quarter of each 4-second period, 1/3x otherwise.
    Bursty,
    /// A day compressed into the trace: the rate swings from 20% to 180% of the mean.
    Diurnal,
}

impl std::str::FromStr for Pattern {
    type Err = crossover_core::Error;
    fn from_str(s: &str) -> Result<Pattern> {
        match s {
            "steady" => Ok(Pattern::Steady),
            "bursty" => Ok(Pattern::Bursty),
            "diurnal" => Ok(Pattern::Diurnal),
            _ => Err(invalid!(
                "unknown trace {s:?}: use steady, bursty or diurnal"
            )),
        }
    }
}

/// What a trace carries.
#[derive(Clone, Debug)]
pub struct TraceSpec {
    pub pattern: Pattern,
    /// Mean requests per second.
    pub rate: f64,
    pub duration: f64,
    /// Share of requests that are bulk batches of `bulk` samples; the rest are singles.
    pub bulk_share: f64,
    pub bulk: usize,
    pub seed: u64,
}

impl TraceSpec {
    /// Arrivals of an inhomogeneous Poisson process, by thinning one at the peak rate.
    pub fn arrivals(&self) -> Result<Vec<Arrival>> {
        if !(self.rate > 0.0 && self.rate.is_finite() && self.duration > 0.0) {
            return Err(invalid!(
                "a trace needs a positive rate and duration, got {} /s for {} s",
                self.rate,
                self.duration
            ));
        }
        let peak = self.rate * 3.0;
        let gap = Exp::new(peak).map_err(|e| invalid!("rate {peak}: {e}"))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let mut out = Vec::new();
        let mut t = 0.0;
        loop {
            t += gap.sample(&mut rng);
            if t >= self.duration {
                return Ok(out);
            }
            if rng.gen::<f64>() * peak < self.rate_at(t) {
                let bulk = rng.gen_bool(self.bulk_share.clamp(0.0, 1.0));
                out.push(Arrival {
                    at: t,
                    samples: if bulk { self.bulk.max(1) } else { 1 },
                });
            }
        }
    }

    /// Requests per second at time `t`; averages `rate` over the trace.
    pub fn rate_at(&self, t: f64) -> f64 {
        match self.pattern {
            Pattern::Steady => self.rate,
            Pattern::Bursty => {
                if t % 4.0 < 1.0 {
                    self.rate * 3.0
                } else {
                    self.rate / 3.0
                }
            }
            Pattern::Diurnal => self.rate * (1.0 - 0.8 * (2.0 * PI * t / self.duration).cos()),
        }
    }
}

/// What a simulation measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SimResult {
    /// Per request: samples and seconds from arrival to completion.
    pub latencies: Vec<(usize, f64)>,
    /// Seconds each device ran.
    pub busy: Vec<f64>,
    /// Last completion, seconds.
    pub makespan: f64,
    /// Requests no device could take (every queue full).
    pub refused: usize,
}

impl SimResult {
    /// Latency quantile `q` (0..=1) of requests with `samples` samples (all when `None`).
    pub fn quantile(&self, q: f64, samples: Option<usize>) -> f64 {
        let mut v: Vec<f64> = self
            .latencies
            .iter()
            .filter(|(n, _)| samples.map_or(true, |s| s == *n))
            .map(|(_, l)| *l)
            .collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
    }

    pub fn samples(&self) -> usize {
        self.latencies.iter().map(|(n, _)| n).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Arrive(usize),
    /// A device finished its run.
    Done(usize),
    /// A device's batching delay ran out.
    Wake(usize),
}

#[derive(Debug)]
struct Timed(f64, u64, Event);

impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    /// Earliest first in a max-heap; ties in insertion order.
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

struct Job {
    request: usize,
    samples: usize,
    queued: f64,
}

#[derive(Default)]
struct Dev {
    jobs: VecDeque<Job>,
    queued: usize,
    /// The run in progress: its jobs, start and predicted end.
    running: Option<(Vec<Job>, f64, f64)>,
}

/// Runs `arrivals` through `devices` under `policy`; `splittable`: requests may be cut
/// along the batch axis (as the live scheduler does for batchable models).
pub fn simulate(
    devices: &[SimDevice],
    policy: &Policy,
    arrivals: &[Arrival],
    splittable: bool,
) -> SimResult {
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<Timed>, t: f64, e: Event| {
        seq += 1;
        heap.push(Timed(t, seq, e));
    };
    for (i, a) in arrivals.iter().enumerate() {
        push(&mut heap, a.at, Event::Arrive(i));
    }
    let mut devs: Vec<Dev> = devices.iter().map(|_| Dev::default()).collect();
    let mut result = SimResult {
        busy: vec![0.0; devices.len()],
        ..SimResult::default()
    };
    // Parts outstanding and latest completion per request.
    let mut pending: Vec<(usize, f64)> = vec![(0, 0.0); arrivals.len()];
    let mut routed = 0u64;
    while let Some(Timed(now, _, event)) = heap.pop() {
        let touched = match event {
            Event::Arrive(r) => {
                let a = arrivals[r];
                let views: Vec<DeviceView> = devices
                    .iter()
                    .zip(&devs)
                    .map(|(d, s)| DeviceView {
                        id: &d.id,
                        curve: &d.curve,
                        max_batch: d.queue.max_batch,
                        backlog: s.running.as_ref().map_or(0.0, |r| (r.2 - now).max(0.0))
                            + policy::run_time(&d.curve, d.queue.max_batch, s.queued),
                        queued: s.queued,
                        available: s.jobs.len() < d.queue.capacity,
                    })
                    .collect();
                let route = if devices.len() == 1 {
                    views[0].available.then_some(Route::Whole(0))
                } else {
                    routed += 1;
                    policy::route(policy, &views, a.samples, splittable, routed - 1)
                };
                let parts = match route {
                    Some(Route::Whole(i)) => vec![(i, a.samples)],
                    Some(Route::Split(p)) => p,
                    None => {
                        result.refused += 1;
                        vec![]
                    }
                };
                pending[r] = (parts.len(), 0.0);
                for &(i, n) in &parts {
                    devs[i].jobs.push_back(Job {
                        request: r,
                        samples: n,
                        queued: now,
                    });
                    devs[i].queued += n;
                }
                parts.iter().map(|p| p.0).collect()
            }
            Event::Done(i) => {
                if let Some((jobs, start, end)) = devs[i].running.take() {
                    result.busy[i] += end - start;
                    for j in jobs {
                        let p = &mut pending[j.request];
                        p.0 -= 1;
                        p.1 = p.1.max(now);
                        if p.0 == 0 {
                            let a = arrivals[j.request];
                            result.latencies.push((a.samples, p.1 - a.at));
                            result.makespan = result.makespan.max(p.1);
                        }
                    }
                }
                vec![i]
            }
            Event::Wake(i) => vec![i],
        };
        for i in touched {
            if devs[i].running.is_some() || devs[i].jobs.is_empty() {
                continue;
            }
            let d = &devices[i];
            let s = &mut devs[i];
            let waiting: usize = s.jobs.iter().map(|j| j.samples).sum();
            let deadline = s.jobs[0].queued + d.queue.max_delay.as_secs_f64();
            // Wait for company only while the oldest request may still wait.
            if waiting < d.queue.max_batch && now < deadline && splittable {
                push(&mut heap, deadline, Event::Wake(i));
                continue;
            }
            let mut take = Vec::new();
            let mut n = 0;
            while let Some(j) = s.jobs.front() {
                if !take.is_empty() && (!splittable || n + j.samples > d.queue.max_batch) {
                    break;
                }
                n += j.samples;
                take.extend(s.jobs.pop_front());
            }
            s.queued -= n;
            let end = now + d.curve.latency(n);
            s.running = Some((take, now, end));
            push(&mut heap, end, Event::Done(i));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::Sample;
    use std::time::Duration;

    fn curve(fixed: f64, per: f64) -> CostCurve {
        CostCurve::new(
            [1, 8, 64]
                .into_iter()
                .map(|b| Sample {
                    batch: b,
                    upload: 0.0,
                    compute: fixed + per * b as f64,
                    download: 0.0,
                })
                .collect(),
        )
        .unwrap()
    }

    fn device(id: &str, c: CostCurve, delay_ms: u64) -> SimDevice {
        SimDevice {
            id: id.parse().unwrap(),
            curve: c,
            queue: QueueConfig {
                max_batch: 64,
                max_delay: Duration::from_millis(delay_ms),
                capacity: 1 << 20,
            },
            price: 1.0,
        }
    }

    #[test]
    fn an_idle_device_serves_each_request_in_its_run_time() {
        let d = [device("cpu", curve(0.0, 1e-3), 0)];
        let arrivals: Vec<Arrival> = (0..10)
            .map(|i| Arrival {
                at: i as f64,
                samples: 4,
            })
            .collect();
        let r = simulate(&d, &Policy::Latency, &arrivals, true);
        assert_eq!(r.latencies.len(), 10);
        assert!(r.latencies.iter().all(|(_, l)| (l - 4e-3).abs() < 1e-12));
        assert!((r.busy[0] - 0.04).abs() < 1e-9);
    }

    #[test]
    fn queued_requests_coalesce_and_wait_for_the_device() {
        // Five singles at once on a device with 10 ms of fixed cost wait out the 1 ms
        // batching delay together and share one run.
        let d = [device("cuda:0", curve(0.01, 1e-4), 1)];
        let arrivals: Vec<Arrival> = (0..5)
            .map(|_| Arrival {
                at: 0.0,
                samples: 1,
            })
            .collect();
        let r = simulate(&d, &Policy::Latency, &arrivals, true);
        let want = 0.001 + 0.01 + 5e-4;
        assert!(
            r.latencies.iter().all(|(_, l)| (l - want).abs() < 1e-9),
            "{:?}",
            r.latencies
        );
    }

    #[test]
    fn traces_average_their_rate() {
        for pattern in [Pattern::Steady, Pattern::Bursty, Pattern::Diurnal] {
            let spec = TraceSpec {
                pattern,
                rate: 200.0,
                duration: 40.0,
                bulk_share: 0.1,
                bulk: 8,
                seed: 1,
            };
            let a = spec.arrivals().unwrap();
            let rate = a.len() as f64 / spec.duration;
            assert!((rate / 200.0 - 1.0).abs() < 0.1, "{pattern:?}: {rate}/s");
            assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        }
        assert!("weekly".parse::<Pattern>().is_err());
    }

    #[test]
    fn the_simulated_router_sends_bulk_to_the_gpu_and_singles_to_the_cpu() {
        let d = [
            device("cuda:0", curve(5e-3, 5e-5), 1),
            device("cpu", curve(0.0, 1e-3), 0),
        ];
        let arrivals = [
            Arrival {
                at: 0.0,
                samples: 1,
            },
            Arrival {
                at: 1.0,
                samples: 64,
            },
        ];
        let r = simulate(&d, &Policy::Latency, &arrivals, true);
        // The single: 1 ms on the CPU. The bulk: 5 + 3.2 ms on the GPU (no CPU share
        // would beat it by the split margin).
        assert!((r.latencies[0].1 - 1e-3).abs() < 1e-9, "{:?}", r.latencies);
        assert!(r.latencies[1].1 < 0.02, "{:?}", r.latencies);
    }
}
