//! `crossover plan`: sizes a fleet of CPU and GPU instances for a trace and a latency
//! target by simulating it over the measured cost curves.

use std::collections::BTreeMap;

use crossover::sched::sim::{simulate, SimDevice, TraceSpec};
use crossover::sched::{Overhead, QueueConfig};
use crossover::{DeviceId, DeviceKind, Policy, Profile, Result};

use crate::report::price_of;

/// One kind of instance: a measured device and its price.
pub struct InstanceType {
    pub profile: Profile,
    pub price: f64,
}

/// How many instances of each type.
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet(pub Vec<usize>);

impl Fleet {
    pub fn describe(&self, types: &[InstanceType]) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .zip(types)
            .filter(|(n, _)| **n > 0)
            .map(|(n, t)| format!("{n}x {}", t.profile.device))
            .collect();
        parts.join(" + ")
    }

    pub fn has_gpu(&self, types: &[InstanceType]) -> bool {
        self.0
            .iter()
            .zip(types)
            .any(|(n, t)| *n > 0 && t.profile.device.kind != DeviceKind::Cpu)
    }

    fn has_cpu(&self, types: &[InstanceType]) -> bool {
        self.0
            .iter()
            .zip(types)
            .any(|(n, t)| *n > 0 && t.profile.device.kind == DeviceKind::Cpu)
    }

    pub fn per_hour(&self, types: &[InstanceType]) -> f64 {
        self.0
            .iter()
            .zip(types)
            .map(|(n, t)| *n as f64 * t.price)
            .sum()
    }

    /// Every fleet of 1 to `max` instances in all.
    pub fn all(kinds: usize, max: usize) -> Vec<Fleet> {
        let mut out = Vec::new();
        let mut counts = vec![0usize; kinds];
        loop {
            let total: usize = counts.iter().sum();
            if (1..=max).contains(&total) {
                out.push(Fleet(counts.clone()));
            }
            // Next combination, odometer style.
            let mut i = 0;
            loop {
                if i == kinds {
                    return out;
                }
                counts[i] += 1;
                if counts[i] <= max {
                    break;
                }
                counts[i] = 0;
                i += 1;
            }
        }
    }
}

/// A fleet's simulated service of a trace.
pub struct Outcome {
    pub fleet: Fleet,
    pub per_hour: f64,
    pub p50: f64,
    pub p99: f64,
    pub meets: bool,
    /// Dollars per million samples: the fleet's price over the trace's duration.
    pub per_million: f64,
}

pub fn devices(fleet: &Fleet, types: &[InstanceType]) -> Result<Vec<SimDevice>> {
    let mut out = Vec::new();
    for (n, t) in fleet.0.iter().zip(types) {
        let curve = t.profile.curve()?;
        for k in 0..*n {
            out.push(SimDevice {
                id: DeviceId {
                    kind: t.profile.device.kind,
                    index: t.profile.device.index * 100 + k,
                },
                queue: QueueConfig::from_curve(&curve, t.profile.max_batch),
                curve: curve.clone(),
                price: t.price,
                // Separate instances: no shared cores; the profile has no handling cost.
                overhead: Overhead::default(),
                contention: BTreeMap::new(),
                run_scale: 1.0,
            });
        }
    }
    Ok(out)
}

pub fn evaluate(
    fleet: &Fleet,
    types: &[InstanceType],
    trace: &TraceSpec,
    slo: f64,
    policy: &Policy,
) -> Result<Outcome> {
    let devs = devices(fleet, types)?;
    let policy = match policy {
        Policy::Cost { p99_target, .. } => Policy::Cost {
            prices: devs.iter().map(|d| (d.id.clone(), d.price)).collect(),
            p99_target: *p99_target,
        },
        p => p.clone(),
    };
    let arrivals = trace.arrivals()?;
    let result = simulate(&devs, &policy, &arrivals, true, None);
    let per_hour = fleet.per_hour(types);
    let (p50, p99) = (result.quantile(0.5, None), result.quantile(0.99, None));
    let samples = result.samples().max(1) as f64;
    Ok(Outcome {
        fleet: fleet.clone(),
        per_hour,
        p50,
        p99,
        meets: p99 <= slo && result.refused == 0 && result.latencies.len() == arrivals.len(),
        per_million: per_hour * trace.duration / 3600.0 / samples * 1e6,
    })
}

/// The cheapest fleet meeting the target among `fleets`, fastest p99 on a tie.
pub fn cheapest<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Option<&'a Outcome> {
    outcomes.filter(|o| o.meets).min_by(|a, b| {
        a.per_hour
            .total_cmp(&b.per_hour)
            .then(a.p99.total_cmp(&b.p99))
    })
}

/// Requests per second one device sustains on a mix of singles and `bulk`-sample batches.
pub fn capacity(curve: &crossover::sched::CostCurve, bulk_share: f64, bulk: usize) -> f64 {
    1.0 / ((1.0 - bulk_share) * curve.latency(1) + bulk_share * curve.latency(bulk))
}

pub fn instance_types(
    profiles: Vec<Profile>,
    prices: &BTreeMap<DeviceId, f64>,
) -> Result<Vec<InstanceType>> {
    profiles
        .into_iter()
        .map(|p| {
            let price = price_of(prices, &p.device).ok_or_else(|| {
                crossover::core::invalid!(
                    "no --price for {} (give e.g. --price cpu=0.10,cuda=2.50)",
                    p.device
                )
            })?;
            Ok(InstanceType { profile: p, price })
        })
        .collect()
}

pub fn print(outcomes: &[Outcome], types: &[InstanceType], slo_ms: f64) {
    let best = |f: &dyn Fn(&Fleet) -> bool| cheapest(outcomes.iter().filter(|o| f(&o.fleet)));
    println!(
        "{:<14} {:<28} {:>8} {:>10} {:>10} {:>9}",
        "option", "fleet", "$/hour", "p50 ms", "p99 ms", "$/1M"
    );
    let options: [(&str, Box<dyn Fn(&Fleet) -> bool>); 3] = [
        ("CPU only", Box::new(|f: &Fleet| !f.has_gpu(types))),
        ("GPU only", Box::new(|f: &Fleet| !f.has_cpu(types))),
        (
            "hybrid",
            Box::new(|f: &Fleet| f.has_cpu(types) && f.has_gpu(types)),
        ),
    ];
    let gpus = types
        .iter()
        .any(|t| t.profile.device.kind != DeviceKind::Cpu);
    for (name, pick) in &options {
        if !gpus && *name != "CPU only" {
            println!("{name:<14} the profile has no GPU to plan with");
            continue;
        }
        match best(pick.as_ref()) {
            Some(o) => println!(
                "{name:<14} {:<28} {:>8.2} {:>10.2} {:>10.2} {:>9.3}",
                o.fleet.describe(types),
                o.per_hour,
                o.p50 * 1e3,
                o.p99 * 1e3,
                o.per_million
            ),
            None => {
                println!("{name:<14} no fleet within the instance limit meets p99 <= {slo_ms} ms")
            }
        }
    }
}
