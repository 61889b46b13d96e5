//! A discrete-event simulation of the scheduler: the same routing ([`crate::policy::route`])
//! and the same dynamic batching rules, with each run taking the time its device's cost
//! curve predicts, plus what the scheduler measurably adds to it ([`Overhead`]) and the
//! slowdown of devices that share the host's cores while both run. It answers what a
//! fleet of devices would do with a request trace without running a model, which is what
//! `crossover plan` sizes fleets with.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::f64::consts::PI;

use crossover_core::{invalid, DeviceId, Result};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::curve::CostCurve;
use crate::policy::{self, DeviceView, Policy, Route};
use crate::scheduler::{Overhead, QueueConfig, OBSERVE_WEIGHT};

/// One device of a simulated fleet.
#[derive(Clone, Debug)]
pub struct SimDevice {
    pub id: DeviceId,
    pub curve: CostCurve,
    pub queue: QueueConfig,
    /// Dollars per hour, for the fleet's cost.
    pub price: f64,
    /// What the scheduler adds to each request beyond the curve (zero: the curve alone).
    pub overhead: Overhead,
    /// How many times longer its runs take while a device named here runs (devices that
    /// share its host cores, such as the CPU and a software GPU); others do not slow it.
    pub contention: BTreeMap<DeviceId, f64>,
    /// Runs take this many times what the curve says (1: as calibrated), while routing
    /// still believes the curve: a device found slower or faster than calibrated.
    pub run_scale: f64,
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
    /// Seconds each device spent in its runs' stages (as the scheduler's counters).
    pub busy: Vec<f64>,
    /// What the curve predicted for the same runs (as the scheduler's counters).
    pub calibrated_busy: Vec<f64>,
    /// Runs and samples run per device.
    pub runs: Vec<usize>,
    pub run_samples: Vec<usize>,
    /// Last completion, seconds.
    pub makespan: f64,
    /// Requests no device could take (every queue full).
    pub refused: usize,
    /// Requests still queued past their deadline, which failed.
    pub expired: usize,
}

impl SimResult {
    /// Adds a simulation of another trace on the same devices, as if run after this one.
    pub fn absorb(&mut self, other: SimResult) {
        let add = |a: &mut Vec<f64>, b: Vec<f64>| {
            a.resize(a.len().max(b.len()), 0.0);
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        };
        add(&mut self.busy, other.busy);
        add(&mut self.calibrated_busy, other.calibrated_busy);
        let add = |a: &mut Vec<usize>, b: Vec<usize>| {
            a.resize(a.len().max(b.len()), 0);
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        };
        add(&mut self.runs, other.runs);
        add(&mut self.run_samples, other.run_samples);
        self.latencies.extend(other.latencies);
        self.makespan += other.makespan;
        self.refused += other.refused;
        self.expired += other.expired;
    }

    /// Latency quantile `q` (0..=1) of requests with `samples` samples (all when `None`).
    pub fn quantile(&self, q: f64, samples: Option<usize>) -> f64 {
        let mut v: Vec<f64> = self
            .latencies
            .iter()
            .filter(|(n, _)| samples.is_none_or(|s| s == *n))
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
    /// A device finished its run (the run's version: a rescheduled run leaves stale ones).
    Done(usize, u64),
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

/// A run in progress.
struct Run {
    jobs: Vec<Job>,
    samples: usize,
    start: f64,
    /// What the scheduler predicted it takes (its current curve), for the backlog.
    predicted: f64,
    /// The run's own time (wake-up, handling and stages) when it runs alone.
    alone: f64,
    /// Of which the stages take longer for a cold start.
    cold: f64,
    /// Of `alone`, seconds still to go; progress since `at` at `rate` is not counted yet.
    left: f64,
    at: f64,
    /// Seconds of the run done per second, below 1 while a device it contends with runs.
    rate: f64,
    version: u64,
}

#[derive(Default)]
struct Dev {
    jobs: VecDeque<Job>,
    queued: usize,
    running: Option<Run>,
    /// Whether the worker just finished a run and has not gone back to sleep.
    awake: bool,
}

/// Runs `arrivals` through `devices` under `policy`; `splittable`: requests may be cut
/// along the batch axis (as the live scheduler does for batchable models); `deadline`:
/// seconds after which a request still queued fails, as [`crate::Scheduler::submit`]'s.
pub fn simulate(
    devices: &[SimDevice],
    policy: &Policy,
    arrivals: &[Arrival],
    splittable: bool,
    deadline: Option<f64>,
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
    // The curves routing sees: calibrated, then refined by each run, as the scheduler's.
    let mut believed: Vec<CostCurve> = devices.iter().map(|d| d.curve.clone()).collect();
    // contention[i][j]: how much longer i's runs take while j runs.
    let contention: Vec<Vec<f64>> = devices
        .iter()
        .map(|d| {
            devices
                .iter()
                .map(|o| d.contention.get(&o.id).copied().unwrap_or(1.0).max(1.0))
                .collect()
        })
        .collect();
    let mut result = SimResult {
        busy: vec![0.0; devices.len()],
        calibrated_busy: vec![0.0; devices.len()],
        runs: vec![0; devices.len()],
        run_samples: vec![0; devices.len()],
        ..SimResult::default()
    };
    // Parts outstanding, latest completion, and whether a part failed, per request.
    let mut pending: Vec<(usize, f64, bool)> = vec![(0, 0.0, false); arrivals.len()];
    let mut routed = 0u64;
    let mut versions = 0u64;
    while let Some(Timed(now, _, event)) = heap.pop() {
        // Progress of every run up to now, at the rate it had.
        for d in devs.iter_mut() {
            if let Some(r) = d.running.as_mut() {
                r.left = (r.left - (now - r.at) * r.rate).max(0.0);
                r.at = now;
            }
        }
        let finished = |pending: &mut Vec<(usize, f64, bool)>,
                        result: &mut SimResult,
                        request: usize,
                        failed: bool| {
            let p = &mut pending[request];
            p.0 -= 1;
            p.1 = p.1.max(now);
            p.2 |= failed;
            if p.0 == 0 {
                let a = arrivals[request];
                if p.2 {
                    result.expired += 1;
                } else {
                    result.latencies.push((a.samples, p.1 - a.at));
                }
                result.makespan = result.makespan.max(p.1);
            }
        };
        let touched = match event {
            Event::Arrive(r) => {
                let a = arrivals[r];
                let views: Vec<DeviceView> = devices
                    .iter()
                    .zip(&devs)
                    .zip(&believed)
                    .map(|((d, s), curve)| DeviceView {
                        id: &d.id,
                        curve,
                        max_batch: d.queue.max_batch,
                        backlog: s
                            .running
                            .as_ref()
                            .map_or(0.0, |r| (r.predicted - (now - r.start)).max(0.0))
                            + policy::run_time(curve, d.queue.max_batch, s.queued),
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
                pending[r] = (parts.len(), 0.0, false);
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
            Event::Done(i, v) => match devs[i].running.take() {
                Some(run) if run.version == v => {
                    // The stages of the run, stretched as contention stretched all of it:
                    // what the scheduler observes, counts as busy and refines its curve by.
                    let stretch = (now - run.start) / run.alone.max(f64::MIN_POSITIVE);
                    let mut seen = devices[i].curve.predict(run.samples);
                    let scaled = stretch * devices[i].run_scale;
                    seen.upload *= scaled;
                    seen.compute = seen.compute * scaled + run.cold * stretch;
                    seen.download *= scaled;
                    believed[i].observe(seen, OBSERVE_WEIGHT);
                    result.busy[i] += seen.total();
                    result.calibrated_busy[i] += devices[i].curve.latency(run.samples);
                    result.runs[i] += 1;
                    result.run_samples[i] += run.samples;
                    for j in run.jobs {
                        finished(&mut pending, &mut result, j.request, false);
                    }
                    devs[i].awake = true;
                    vec![i]
                }
                // A stale completion of a run since rescheduled.
                other => {
                    devs[i].running = other;
                    vec![]
                }
            },
            Event::Wake(i) => vec![i],
        };
        for i in touched {
            let d = &devices[i];
            let s = &mut devs[i];
            while s.running.is_none() && !s.jobs.is_empty() {
                let waiting: usize = s.jobs.iter().map(|j| j.samples).sum();
                let until = s.jobs[0].queued + d.queue.max_delay.as_secs_f64();
                // Wait for company only while the oldest request may still wait.
                if waiting < d.queue.max_batch && now < until && splittable {
                    push(&mut heap, until, Event::Wake(i));
                    s.awake = false;
                    break;
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
                // Requests past their deadline fail instead of running.
                let (live, expired): (Vec<Job>, Vec<Job>) = take
                    .into_iter()
                    .partition(|j| deadline.is_none_or(|t| now < arrivals[j.request].at + t));
                for j in expired {
                    finished(&mut pending, &mut result, j.request, true);
                }
                if live.is_empty() {
                    continue;
                }
                let samples: usize = live.iter().map(|j| j.samples).sum();
                let (wake, cold) = if s.awake {
                    (0.0, 0.0)
                } else {
                    (d.overhead.wake, d.overhead.cold)
                };
                let alone = wake + cold + d.overhead.run + d.curve.latency(samples) * d.run_scale;
                versions += 1;
                s.running = Some(Run {
                    jobs: live,
                    samples,
                    start: now,
                    predicted: believed[i].latency(n),
                    alone,
                    cold,
                    left: alone,
                    at: now,
                    rate: 0.0,
                    version: versions,
                });
            }
            if s.running.is_none() {
                s.awake = false;
            }
        }
        // Each run's rate with the devices running now; a run whose rate changed (or
        // that just started) gets its completion (re)scheduled.
        let busy: Vec<bool> = devs.iter().map(|d| d.running.is_some()).collect();
        for (i, d) in devs.iter_mut().enumerate() {
            let Some(r) = d.running.as_mut() else {
                continue;
            };
            let slowest = (0..busy.len())
                .filter(|&j| j != i && busy[j])
                .map(|j| contention[i][j])
                .fold(1.0, f64::max);
            let rate = 1.0 / slowest;
            if rate != r.rate {
                r.rate = rate;
                versions += 1;
                r.version = versions;
                push(&mut heap, now + r.left / rate, Event::Done(i, r.version));
            }
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
            overhead: Overhead::default(),
            contention: BTreeMap::new(),
            run_scale: 1.0,
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
        let r = simulate(&d, &Policy::Latency, &arrivals, true, None);
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
        let r = simulate(&d, &Policy::Latency, &arrivals, true, None);
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
        let r = simulate(&d, &Policy::Latency, &arrivals, true, None);
        // The single: 1 ms on the CPU. The bulk: 5 + 3.2 ms on the GPU (no CPU share
        // would beat it by the split margin).
        assert!((r.latencies[0].1 - 1e-3).abs() < 1e-9, "{:?}", r.latencies);
        assert!(r.latencies[1].1 < 0.02, "{:?}", r.latencies);
    }

    #[test]
    fn handling_and_wake_up_add_to_an_idle_devices_runs() {
        let mut d = device("cpu", curve(0.0, 1e-3), 0);
        d.overhead = Overhead {
            wake: 1e-4,
            cold: 2e-4,
            run: 3e-4,
        };
        // Alone: wake-up, cold start, handling and the run. Right behind another run:
        // the worker is awake and warm, so handling and the run only.
        let arrivals = [0.0, 1.0, 1.0].map(|at| Arrival { at, samples: 1 });
        let r = simulate(&[d], &Policy::Latency, &arrivals, false, None);
        let l: Vec<f64> = r.latencies.iter().map(|x| x.1).collect();
        assert!((l[0] - 1.6e-3).abs() < 1e-9, "{l:?}");
        assert!((l[1] - 1.6e-3).abs() < 1e-9, "{l:?}");
        assert!((l[2] - (1.6e-3 + 1.3e-3)).abs() < 1e-9, "{l:?}");
    }

    #[test]
    fn devices_sharing_cores_slow_each_other_while_both_run() {
        // Two devices, each 10 ms per run alone and twice as slow while the other runs.
        let mut a = device("cpu", curve(0.01, 0.0), 0);
        let mut b = device("wgpu:0", curve(0.01, 0.0), 0);
        a.contention.insert(b.id.clone(), 2.0);
        b.contention.insert(a.id.clone(), 2.0);
        let arrivals = [0.0, 0.005].map(|at| Arrival { at, samples: 1 });
        let r = simulate(&[a, b], &Policy::RoundRobin, &arrivals, false, None);
        // a runs alone for 5 ms, then both at half speed: a's last 5 ms take 10, and b
        // has done 5 ms of its 10 by then; b finishes its last 5 ms alone.
        let l: Vec<f64> = r.latencies.iter().map(|x| x.1).collect();
        assert!((l[0] - 0.015).abs() < 1e-9, "{l:?}");
        assert!((l[1] - 0.015).abs() < 1e-9, "{l:?}");
    }

    #[test]
    fn requests_past_their_deadline_fail_instead_of_running() {
        let d = [device("cpu", curve(0.01, 0.0), 0)];
        // Three at once on a device that runs one at a time (not batchable): the third
        // has waited 20 ms when its turn comes, past a 15 ms deadline.
        let arrivals = [0.0; 3].map(|at| Arrival { at, samples: 1 });
        let r = simulate(&d, &Policy::Latency, &arrivals, false, Some(0.015));
        assert_eq!(r.latencies.len(), 2);
        assert_eq!(r.expired, 1);
    }
}
