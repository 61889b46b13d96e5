//! Replays of a mixed workload (single requests and bulk batches arriving as a Poisson
//! process) through a session, and what each policy made of it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn quantiles(mut v: Vec<f64>) -> Quantiles {
    if v.is_empty() {
        return Quantiles::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] * 1e3;
    Quantiles {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    }
}

/// What one replay measured.
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
}

/// Replays `trace` through `session`; `inputs(n)` gives a request of `n` samples. A
/// request still queued after `timeout` fails (as a client would give up), so a device
/// that cannot keep up shows as errors instead of an unbounded replay.
pub fn replay(
    scenario: &str,
    session: &Session,
    trace: &[(Duration, usize)],
    inputs: &dyn Fn(usize) -> Result<Vec<Tensor>>,
    prices: &BTreeMap<DeviceId, f64>,
    timeout: Duration,
) -> Result<Outcome> {
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
    let mut refused = 0;
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
            Err(_) => refused += 1,
        }
    }
    drop(tx);
    let done = collector.join().expect("the collector does not panic");
    let mut singles = Vec::new();
    let mut bulk = Vec::new();
    let mut placed: BTreeMap<DeviceId, usize> = BTreeMap::new();
    let mut samples = 0usize;
    let mut last = Duration::ZERO;
    let mut errors = refused;
    for (submitted, n, reply) in done {
        match reply {
            Ok(r) => {
                let latency = r.latency();
                last = last.max(submitted + latency);
                samples += n;
                if n == 1 {
                    singles.push(latency.as_secs_f64());
                    *placed.entry(r.device().clone()).or_default() += 1;
                } else {
                    bulk.push(latency.as_secs_f64());
                }
            }
            Err(_) => errors += 1,
        }
    }
    let stats = session.stats();
    let dollars: Option<f64> = stats
        .iter()
        .map(|s| price_of(prices, &s.device).map(|p| p / 3600.0 * s.busy.as_secs_f64()))
        .sum();
    let runs: u64 = stats.iter().map(|s| s.runs).sum();
    let run_samples: u64 = stats.iter().map(|s| s.samples).sum();
    let n_singles = singles.len().max(1) as f64;
    Ok(Outcome {
        scenario: scenario.to_string(),
        singles: quantiles(singles),
        bulk: quantiles(bulk),
        throughput: samples as f64 / last.as_secs_f64().max(1e-9),
        dollars_per_million: dollars.map(|d| d / samples.max(1) as f64 * 1e6),
        errors,
        singles_on: placed
            .into_iter()
            .map(|(d, k)| (d, k as f64 / n_singles))
            .collect(),
        mean_batch: if runs == 0 {
            0.0
        } else {
            run_samples as f64 / runs as f64
        },
    })
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
