//! Replays of a mixed workload (single requests and bulk batches arriving as a Poisson
//! process) through a session, and what each policy made of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossover::sched::sim::SimResult;
use crossover::sched::Overhead;
use crossover::{DeviceId, Result, Session, Tensor};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::report::price_of;

/// The requests of one replay.
#[derive(Clone, Debug)]
pub struct Workload {
    pub requests: usize,
    /// Mean arrivals per second.
    pub rate: f64,
    /// Share of requests that are bulk batches.
    pub bulk_share: f64,
    /// Samples in a bulk request.
    pub bulk: usize,
    pub seed: u64,
}

impl Workload {
    /// Arrival offsets from the start and each request's samples; the same for every
    /// replay with this seed, so policies see identical traffic.
    pub fn trace(&self) -> Result<Vec<(Duration, usize)>> {
        let gap = Exp::new(self.rate.max(1e-9))
            .map_err(|e| crossover::core::invalid!("arrival rate {}: {e}", self.rate))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let mut t = 0.0;
        Ok((0..self.requests)
            .map(|_| {
                t += gap.sample(&mut rng);
                let n = if rng.gen_bool(self.bulk_share.clamp(0.0, 1.0)) {
                    self.bulk
                } else {
                    1
                };
                (Duration::from_secs_f64(t), n)
            })
            .collect())
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Quantiles {
    /// Requests measured.
    pub count: usize,
    pub p45_ms: f64,
    pub p50_ms: f64,
    pub p55_ms: f64,
    pub p99_ms: f64,
}

fn quantiles(mut v: Vec<f64>) -> Quantiles {
    if v.is_empty() {
        return Quantiles::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] * 1e3;
    Quantiles {
        count: v.len(),
        p45_ms: at(0.45),
        p50_ms: at(0.50),
        p55_ms: at(0.55),
        p99_ms: at(0.99),
    }
}

/// What a scenario's replays measured, over every round.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub singles: Quantiles,
    pub bulk: Quantiles,
    /// Samples completed per second, first arrival to last reply.
    pub throughput: f64,
    /// Dollars per million samples, from each device's busy time and hourly price.
    pub dollars_per_million: Option<f64>,
    pub errors: usize,
    /// Share of single requests each device ran.
    pub singles_on: BTreeMap<DeviceId, f64>,
    /// Mean samples per device run.
    pub mean_batch: f64,
    /// Mean seconds of a run's stages.
    pub mean_run: f64,
    /// Every single request's latency, seconds, for comparing tails.
    #[serde(skip)]
    pub single_latencies: Vec<f64>,
}

/// What replays of one scenario measured, pooled over rounds.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    /// Seconds from submission to reply, single requests and bulk ones.
    singles: Vec<f64>,
    bulk: Vec<f64>,
    /// Samples answered, and the time from each replay's first arrival to its last reply.
    samples: usize,
    span: Duration,
    errors: usize,
    /// Single requests each device ran.
    placed: BTreeMap<DeviceId, usize>,
}

impl Replayed {
    /// Adds another round's replay of the same scenario.
    pub fn absorb(&mut self, other: Replayed) {
        self.singles.extend(other.singles);
        self.bulk.extend(other.bulk);
        self.samples += other.samples;
        self.span += other.span;
        self.errors += other.errors;
        for (d, k) in other.placed {
            *self.placed.entry(d).or_default() += k;
        }
    }

    /// The scenario's outcome; cost and batching come from `session`'s counters, which
    /// cover every round it replayed.
    pub fn outcome(
        self,
        scenario: &str,
        session: &Session,
        prices: &BTreeMap<DeviceId, f64>,
    ) -> Outcome {
        let stats = session.stats();
        let dollars: Option<f64> = stats
            .iter()
            .map(|s| price_of(prices, &s.device).map(|p| p / 3600.0 * s.busy.as_secs_f64()))
            .sum();
        let runs: u64 = stats.iter().map(|s| s.runs).sum();
        let run_samples: u64 = stats.iter().map(|s| s.samples).sum();
        let n_singles = self.singles.len().max(1) as f64;
        Outcome {
            scenario: scenario.to_string(),
            singles: quantiles(self.singles.clone()),
            single_latencies: self.singles,
            bulk: quantiles(self.bulk),
            throughput: self.samples as f64 / self.span.as_secs_f64().max(1e-9),
            dollars_per_million: dollars.map(|d| d / self.samples.max(1) as f64 * 1e6),
            errors: self.errors,
            singles_on: self
                .placed
                .into_iter()
                .map(|(d, k)| (d, k as f64 / n_singles))
                .collect(),
            mean_batch: if runs == 0 {
                0.0
            } else {
                run_samples as f64 / runs as f64
            },
            mean_run: stats.iter().map(|s| s.busy.as_secs_f64()).sum::<f64>() / runs.max(1) as f64,
        }
    }
}

/// Replays `trace` through `session`; `inputs(n)` gives a request of `n` samples. A
/// request still queued after `timeout` fails (as a client would give up), so a device
/// that cannot keep up shows as errors instead of an unbounded replay.
pub fn replay(
    session: &Session,
    trace: &[(Duration, usize)],
    inputs: &dyn Fn(usize) -> Result<Vec<Tensor>>,
    timeout: Duration,
) -> Result<Replayed> {
    let mut templates: BTreeMap<usize, Vec<Tensor>> = BTreeMap::new();
    for (_, n) in trace {
        if !templates.contains_key(n) {
            templates.insert(*n, inputs(*n)?);
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    let collector = std::thread::spawn(move || {
        let mut done = Vec::new();
        for (submitted, n, ticket) in rx.iter() {
            let t: crossover::Ticket = ticket;
            done.push((submitted, n, t.wait()));
        }
        done
    });
    let mut out = Replayed::default();
    for (at, n) in trace {
        let now = start.elapsed();
        if *at > now {
            std::thread::sleep(*at - now);
        }
        let submitted = start.elapsed();
        match session.submit_ordered(templates[n].clone(), Some(timeout)) {
            Ok(t) => tx
                .send((submitted, *n, t))
                .expect("the collector outlives the sends"),
            Err(_) => out.errors += 1,
        }
    }
    drop(tx);
    let done = collector.join().expect("the collector does not panic");
    for (submitted, n, reply) in done {
        match reply {
            Ok(r) => {
                let latency = r.latency();
                out.span = out.span.max(submitted + latency);
                out.samples += n;
                if n == 1 {
                    out.singles.push(latency.as_secs_f64());
                    *out.placed.entry(r.device().clone()).or_default() += 1;
                } else {
                    out.bulk.push(latency.as_secs_f64());
                }
            }
            Err(_) => out.errors += 1,
        }
    }
    Ok(out)
}

/// How much higher `a`'s p99 is than `b`'s, milliseconds, with a 95% bootstrap interval:
/// two scenarios that route alike differ by chance alone, and an interval that holds zero
/// says the replays cannot tell them apart. `None` without latencies on either side.
pub fn p99_difference(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    const RESAMPLES: usize = 2000;
    if a.is_empty() || b.is_empty() {
        return None;
    }
    fn p99(v: &mut [f64]) -> f64 {
        let k = ((v.len() - 1) as f64 * 0.99).round() as usize;
        *v.select_nth_unstable_by(k, f64::total_cmp).1 * 1e3
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut resample = |v: &[f64], out: &mut Vec<f64>| {
        out.clear();
        out.extend((0..v.len()).map(|_| v[rng.gen_range(0..v.len())]));
        p99(out)
    };
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    let mut diffs: Vec<f64> = (0..RESAMPLES)
        .map(|_| resample(a, &mut ra) - resample(b, &mut rb))
        .collect();
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((RESAMPLES - 1) as f64 * q).round() as usize];
    let point = p99(&mut a.to_vec()) - p99(&mut b.to_vec());
    Some((point, at(0.025), at(0.975)))
}

pub fn print(outcomes: &[Outcome]) {
    println!(
        "{:<16} {:>11} {:>11} {:>10} {:>10} {:>10} {:>9} {:>7} {:>6}  singles ran on",
        "scenario",
        "single p50",
        "single p99",
        "bulk p50",
        "bulk p99",
        "samples/s",
        "$/1M",
        "batch",
        "errors"
    );
    for o in outcomes {
        let on: Vec<String> = o
            .singles_on
            .iter()
            .map(|(d, f)| format!("{d} {:.0}%", f * 100.0))
            .collect();
        println!(
            "{:<16} {:>8.2} ms {:>8.2} ms {:>7.1} ms {:>7.1} ms {:>10.1} {:>9} {:>7.1} {:>6}  {}",
            o.scenario,
            o.singles.p50_ms,
            o.singles.p99_ms,
            o.bulk.p50_ms,
            o.bulk.p99_ms,
            o.throughput,
            o.dollars_per_million
                .map_or("-".to_string(), |d| format!("{d:.3}")),
            o.mean_batch,
            o.errors,
            on.join(", ")
        );
    }
}

/// What the simulator needs beyond the curves, measured on this machine's session.
#[derive(Clone, Debug, Default)]
pub struct Host {
    pub overhead: BTreeMap<DeviceId, Overhead>,
    /// `contention[a][b]`: how many times longer a's runs take while b runs.
    pub contention: BTreeMap<DeviceId, BTreeMap<DeviceId, f64>>,
}

/// Requests per device for the scheduler's own cost; runs per pair for contention.
const PROBES: usize = 21;
const CONTENTION_RUNS: usize = 7;

/// The simulator's agreement target: its p50 within this share of the replay's.
pub const AGREEMENT: f64 = 0.2;

/// Measures the scheduler's per-request cost on each device and how much each pair of
/// devices slows each other down when both run.
pub fn measure_host(session: &Session, devices: &[DeviceId]) -> Result<Host> {
    let mut host = Host::default();
    for d in devices {
        host.overhead
            .insert(d.clone(), session.measure_overhead(d, PROBES)?);
    }
    for a in devices {
        for b in devices.iter().filter(|b| *b != a) {
            let slowdown = session.measure_contention(a, b, CONTENTION_RUNS)?;
            host.contention
                .entry(a.clone())
                .or_default()
                .insert(b.clone(), slowdown);
        }
    }
    Ok(host)
}

pub fn print_host(host: &Host) {
    println!("measured for the simulator (one-sample requests):");
    for (d, o) in &host.overhead {
        let slower: Vec<String> = host
            .contention
            .get(d)
            .into_iter()
            .flatten()
            .map(|(b, f)| format!("{f:.2}x as long while {b} runs"))
            .collect();
        println!(
            "  {d}: after idle, wake-up {:.3} ms and {:.3} ms slower stages; handling {:.3} ms per run{}{}",
            o.wake * 1e3,
            o.cold * 1e3,
            o.run * 1e3,
            if slower.is_empty() { "" } else { "; runs take " },
            slower.join(", ")
        );
    }
}

/// p50 of the simulated requests with one sample.
fn sim_p50_ms(sim: &SimResult) -> f64 {
    quantiles(
        sim.latencies
            .iter()
            .filter(|(n, _)| *n == 1)
            .map(|(_, l)| *l)
            .collect(),
    )
    .p50_ms
}

/// One replay and its simulations.
pub struct Agreement<'a> {
    pub replay: &'a Outcome,
    /// On the calibrated curves: the prediction `crossover plan` makes.
    pub forecast: SimResult,
    /// How many times their calibrated time each device's runs took in the replay,
    /// beyond what the simulator models (another process on the machine, say).
    pub speed: Vec<(DeviceId, f64)>,
    /// On the calibrated curves scaled by `speed`: the model checked with the device
    /// speeds the replay ran at.
    pub check: SimResult,
}

/// Whether the forecast can be held to the replay: every device ran within this share of
/// its calibrated speed.
pub const STEADY: f64 = 0.05;

/// Fewest completed single requests whose p50 is judged.
pub const MIN_JUDGED: usize = 30;

/// `yes` or `NO`; `few` when fewer than [`MIN_JUDGED`] singles completed (the rest timed
/// out), `unstable` when the replay's 45th and 55th percentiles are more than 2x apart:
/// the median sits in the gap between two devices' latency modes, and a few requests
/// moving from one to the other move it by far more than [`AGREEMENT`].
fn verdict(o: &Outcome, simulated_ms: f64) -> &'static str {
    let q = &o.singles;
    let p50 = q.p50_ms.max(1e-9);
    if q.count < MIN_JUDGED {
        "few"
    } else if q.p55_ms > 2.0 * q.p45_ms {
        "unstable"
    } else if (simulated_ms / p50 - 1.0).abs() <= AGREEMENT {
        "yes"
    } else {
        "NO"
    }
}

/// Each replay's single-request p50 next to the simulator's on the same trace, queues and
/// measured host costs, and whether they agree within [`AGREEMENT`].
pub fn print_agreement(rows: &[Agreement]) {
    println!(
        "simulator vs replay (single-request p50, same trace and queues; agrees within {:.0}%):",
        AGREEMENT * 100.0
    );
    println!("  forecast: on the calibrated curves, as `crossover plan` predicts");
    println!("  check: on the calibrated curves scaled by the device speed seen in the replay");
    println!(
        "{:<16} {:>11} {:>11} {:>6} {:>9} {:>24} {:>11} {:>6} {:>9} {:>14} {:>14}",
        "scenario",
        "replay p50",
        "forecast",
        "ratio",
        "agrees",
        "replay speed",
        "check",
        "ratio",
        "agrees",
        "batch rep/sim",
        "errors rep/sim"
    );
    for a in rows {
        let o = a.replay;
        let forecast = sim_p50_ms(&a.forecast);
        let check = sim_p50_ms(&a.check);
        let runs = a.check.runs.iter().sum::<usize>().max(1) as f64;
        let batch = a.check.run_samples.iter().sum::<usize>() as f64 / runs;
        let speed: Vec<String> = a.speed.iter().map(|(d, f)| format!("{d}={f:.2}")).collect();
        println!(
            "{:<16} {:>8.2} ms {:>8.2} ms {:>6.2} {:>9} {:>24} {:>8.2} ms {:>6.2} {:>9} {:>14} {:>14}",
            o.scenario,
            o.singles.p50_ms,
            forecast,
            forecast / o.singles.p50_ms.max(1e-9),
            verdict(o, forecast),
            speed.join(","),
            check,
            check / o.singles.p50_ms.max(1e-9),
            verdict(o, check),
            format!("{:.1}/{:.1}", o.mean_batch, batch),
            format!("{}/{}", o.errors, a.check.refused + a.check.expired)
        );
    }
    let steady = rows
        .iter()
        .flat_map(|a| &a.speed)
        .all(|(_, f)| (f - 1.0).abs() <= STEADY);
    if !steady {
        println!(
            "the devices did not run at their calibrated speed (within {:.0}%) in every replay: \
             the forecast is not held to the replay there; the check is",
            STEADY * 100.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Latencies around 0.1 ms with a tail, seconds.
    fn latencies(seed: u64, shift: f64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let tail = Exp::new(5000.0).unwrap();
        (0..400)
            .map(|_| 1e-4 + tail.sample(&mut rng) + shift)
            .collect()
    }

    #[test]
    fn p99_difference_tells_chance_from_a_worse_tail() {
        let (d, lo, hi) = p99_difference(&latencies(1, 0.0), &latencies(2, 0.0)).unwrap();
        assert!(lo < 0.0 && 0.0 < hi, "{d} [{lo}, {hi}]: same distribution");
        let (d, lo, hi) = p99_difference(&latencies(1, 1e-3), &latencies(2, 0.0)).unwrap();
        assert!(
            lo > 0.0 && (d - 1.0).abs() < 0.5,
            "{d} [{lo}, {hi}]: 1 ms worse"
        );
        let (_, _, hi) = p99_difference(&latencies(1, 0.0), &latencies(2, 1e-3)).unwrap();
        assert!(hi < 0.0, "1 ms better");
        assert!(p99_difference(&[], &[1.0]).is_none());
    }
}
