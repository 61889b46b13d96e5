//! Routing policies: which device (or devices) a request goes to, decided from each
//! device's cost curve and backlog. Pure functions, shared by the live scheduler and the
//! simulator, so that a plan and a replay make the same choices.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crossover_core::{invalid, DeviceId, Error, Result};

use crate::curve::CostCurve;

/// What the scheduler optimises.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Smallest predicted completion time: queue backlog plus run time.
    Latency,
    /// Most samples per second across devices: each request goes where it adds the least
    /// device time, which coalesces small requests on devices whose runs are batch-cheap.
    Throughput,
    /// Fewest dollars per inference among devices whose predicted completion stays under
    /// `p99_target`; `prices` are dollars per hour for each device.
    Cost {
        prices: BTreeMap<DeviceId, f64>,
        p99_target: Duration,
    },
    /// Every request on one device.
    Pinned(DeviceId),
    /// Each request to the next available device in turn, whatever it costs: the
    /// baseline of load balancers that know nothing of the devices.
    RoundRobin,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Latency => f.write_str("latency"),
            Policy::Throughput => f.write_str("throughput"),
            Policy::Cost { p99_target, .. } => {
                write!(f, "cost(p99 ≤ {:.1} ms)", p99_target.as_secs_f64() * 1e3)
            }
            Policy::Pinned(d) => write!(f, "pinned({d})"),
            Policy::RoundRobin => f.write_str("round-robin"),
        }
    }
}

impl FromStr for Policy {
    type Err = Error;

    /// `latency`, `throughput` or `pinned:<device>`; the cost policy needs prices and a
    /// target, so it is built with [`Policy::Cost`] directly.
    fn from_str(s: &str) -> Result<Policy> {
        match s {
            "latency" => Ok(Policy::Latency),
            "throughput" => Ok(Policy::Throughput),
            "round-robin" => Ok(Policy::RoundRobin),
            "cost" => Err(invalid!(
                "the cost policy needs per-device prices and a p99 target"
            )),
            _ => match s.strip_prefix("pinned:") {
                Some(d) => Ok(Policy::Pinned(d.parse()?)),
                None => Err(invalid!(
                    "unknown policy {s:?}: use latency, throughput, cost, round-robin or pinned:<device>"
                )),
            },
        }
    }
}

/// Parses `cpu=0.10,cuda:0=2.50` (dollars per hour).
pub fn parse_prices(s: &str) -> Result<BTreeMap<DeviceId, f64>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (d, p) = pair
                .split_once('=')
                .ok_or_else(|| invalid!("price {pair:?} is not DEVICE=DOLLARS_PER_HOUR"))?;
            let price: f64 = p
                .trim()
                .parse()
                .map_err(|_| invalid!("price {p:?} for {d} is not a number"))?;
            if !(price >= 0.0 && price.is_finite()) {
                return Err(invalid!("price {price} for {d} must be zero or more"));
            }
            Ok((d.trim().parse()?, price))
        })
        .collect()
}

/// What the policy knows of one device when a request arrives.
#[derive(Clone, Debug)]
pub struct DeviceView<'a> {
    pub id: &'a DeviceId,
    pub curve: &'a CostCurve,
    /// Largest batch one run may take.
    pub max_batch: usize,
    /// Predicted seconds until the device has finished the work already given to it.
    pub backlog: f64,
    /// Samples waiting in its queue (not yet running).
    pub queued: usize,
    /// Healthy, the model fits, and its queue has room.
    pub available: bool,
}

impl DeviceView<'_> {
    /// Seconds to run `n` samples, in runs of at most `max_batch`.
    pub fn run_time(&self, n: usize) -> f64 {
        run_time(self.curve, self.max_batch, n)
    }

    /// Predicted seconds until `n` more samples given now are done.
    pub fn completion(&self, n: usize) -> f64 {
        self.backlog + self.run_time(n)
    }

    /// Device seconds that `n` more samples add, when they join the queued ones.
    fn marginal(&self, n: usize) -> f64 {
        (self.run_time(self.queued + n) - self.run_time(self.queued)).max(0.0)
    }
}

/// Seconds to run `n` samples on a device with this curve, in runs of at most `max_batch`.
pub fn run_time(curve: &CostCurve, max_batch: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let max_batch = max_batch.max(1);
    let full = n / max_batch;
    let rest = n % max_batch;
    full as f64 * curve.latency(max_batch) + if rest > 0 { curve.latency(rest) } else { 0.0 }
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// The whole request to the device at this index.
    Whole(usize),
    /// Consecutive slices of the request: (device index, samples), in row order.
    Split(Vec<(usize, usize)>),
}

/// A split must beat the best whole placement by this factor to be worth the extra run.
const SPLIT_GAIN: f64 = 0.85;

/// Chooses devices for a request of `samples` samples; `None` when no device is available.
/// `splittable`: the request may be cut along its batch axis; `seq` numbers requests
/// (round-robin turns on it).
pub fn route(
    policy: &Policy,
    devices: &[DeviceView],
    samples: usize,
    splittable: bool,
    seq: u64,
) -> Option<Route> {
    let available = || devices.iter().enumerate().filter(|(_, d)| d.available);
    let by_completion =
        |n: usize| available().min_by(|(_, a), (_, b)| a.completion(n).total_cmp(&b.completion(n)));
    match policy {
        Policy::Pinned(id) => available()
            .find(|(_, d)| d.id == id)
            .map(|(i, _)| Route::Whole(i)),
        Policy::RoundRobin => {
            let open: Vec<usize> = available().map(|(i, _)| i).collect();
            (!open.is_empty()).then(|| Route::Whole(open[(seq % open.len() as u64) as usize]))
        }
        Policy::Latency => {
            let (best, view) = by_completion(samples)?;
            let whole = view.completion(samples);
            if splittable && samples >= 2 {
                if let Some(split) = best_split(devices, best, samples) {
                    if split.1 < whole * SPLIT_GAIN {
                        return Some(Route::Split(split.0));
                    }
                }
            }
            Some(Route::Whole(best))
        }
        Policy::Throughput => {
            // A device already holding several full runs of work takes more only when
            // every device does, so that the fast one does not queue without bound.
            let saturated = |d: &DeviceView| d.backlog > 4.0 * d.run_time(d.max_batch);
            let open: Vec<_> = available().filter(|(_, d)| !saturated(d)).collect();
            let pool = if open.is_empty() {
                available().collect()
            } else {
                open
            };
            pool.into_iter()
                .min_by(|(_, a), (_, b)| {
                    a.marginal(samples)
                        .total_cmp(&b.marginal(samples))
                        .then(a.completion(samples).total_cmp(&b.completion(samples)))
                })
                .map(|(i, _)| Route::Whole(i))
        }
        Policy::Cost { prices, p99_target } => {
            let target = p99_target.as_secs_f64();
            let cost = |d: &DeviceView| {
                prices.get(d.id).copied().unwrap_or(f64::INFINITY) / 3600.0 * d.marginal(samples)
                    / samples.max(1) as f64
            };
            available()
                .filter(|(_, d)| d.completion(samples) <= target)
                .min_by(|(_, a), (_, b)| {
                    cost(a)
                        .total_cmp(&cost(b))
                        .then(a.completion(samples).total_cmp(&b.completion(samples)))
                })
                .or_else(|| by_completion(samples))
                .map(|(i, _)| Route::Whole(i))
        }
    }
}

/// The best two-way split between `best` and the runner-up: (slices, predicted completion).
fn best_split(devices: &[DeviceView], best: usize, n: usize) -> Option<(Vec<(usize, usize)>, f64)> {
    let (other, _) = devices
        .iter()
        .enumerate()
        .filter(|(i, d)| d.available && *i != best)
        .min_by(|(_, a), (_, b)| a.completion(n).total_cmp(&b.completion(n)))?;
    let (a, b) = (&devices[best], &devices[other]);
    // a's completion grows with its share k, b's shrinks: bisect for where they cross.
    let finish = |k: usize| a.completion(k).max(b.completion(n - k));
    let (mut lo, mut hi) = (1, n - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if a.completion(mid) < b.completion(n - mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let k = [lo.saturating_sub(1).max(1), lo]
        .into_iter()
        .min_by(|x, y| finish(*x).total_cmp(&finish(*y)))?;
    Some((vec![(best, k), (other, n - k)], finish(k)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::Sample;

    fn curve(fixed: f64, per_sample: f64) -> CostCurve {
        CostCurve::new(
            [1, 2, 4, 8, 16, 32, 64]
                .into_iter()
                .map(|b| Sample {
                    batch: b,
                    upload: 0.0,
                    compute: fixed + per_sample * b as f64,
                    download: 0.0,
                })
                .collect(),
        )
        .unwrap()
    }

    fn view<'a>(
        id: &'a DeviceId,
        curve: &'a CostCurve,
        backlog: f64,
        queued: usize,
    ) -> DeviceView<'a> {
        DeviceView {
            id,
            curve,
            max_batch: 64,
            backlog,
            queued,
            available: true,
        }
    }

    // A CPU with no overhead and a GPU with 5 ms of it but 20x cheaper samples.
    fn pair() -> (DeviceId, CostCurve, DeviceId, CostCurve) {
        (
            DeviceId::CPU,
            curve(0.0, 1e-3),
            "cuda:0".parse().unwrap(),
            curve(5e-3, 5e-5),
        )
    }

    #[test]
    fn latency_sends_singles_to_the_cpu_and_bulk_to_the_gpu() {
        let (c, cc, g, gc) = pair();
        let views = [view(&c, &cc, 0.0, 0), view(&g, &gc, 0.0, 0)];
        assert_eq!(
            route(&Policy::Latency, &views, 1, false, 0),
            Some(Route::Whole(0))
        );
        assert_eq!(
            route(&Policy::Latency, &views, 64, false, 0),
            Some(Route::Whole(1))
        );
        // A busy CPU sends even a single to the GPU.
        let busy = [view(&c, &cc, 0.05, 50), view(&g, &gc, 0.0, 0)];
        assert_eq!(
            route(&Policy::Latency, &busy, 1, false, 0),
            Some(Route::Whole(1))
        );
    }

    #[test]
    fn a_large_batch_is_split_when_the_gpu_is_busy() {
        // A GPU only 4x faster per sample than the CPU, and 10 ms behind.
        let (c, cc, g) = (DeviceId::CPU, curve(0.0, 1e-3), "cuda:0".parse().unwrap());
        let gc = curve(1e-3, 2.5e-4);
        let views = [view(&c, &cc, 0.0, 0), view(&g, &gc, 0.01, 40)];
        let Some(Route::Split(parts)) = route(&Policy::Latency, &views, 40, true, 0) else {
            panic!("expected a split");
        };
        assert_eq!(parts.iter().map(|p| p.1).sum::<usize>(), 40);
        assert!(parts.iter().all(|p| p.1 > 0));
        // Not splittable: whole.
        assert!(matches!(
            route(&Policy::Latency, &views, 40, false, 0),
            Some(Route::Whole(_))
        ));
    }

    #[test]
    fn throughput_coalesces_on_the_device_where_samples_are_cheap() {
        let (c, cc, g, gc) = pair();
        let views = [view(&c, &cc, 0.0, 0), view(&g, &gc, 0.006, 16)];
        // Joining 16 queued samples costs the GPU 0.05 ms; the idle CPU 1 ms.
        assert_eq!(
            route(&Policy::Throughput, &views, 1, false, 0),
            Some(Route::Whole(1))
        );
    }

    #[test]
    fn cost_picks_the_cheapest_device_that_meets_the_target() {
        let (c, cc, g, gc) = pair();
        let views = [view(&c, &cc, 0.0, 0), view(&g, &gc, 0.0, 0)];
        let prices = parse_prices("cpu=0.1,cuda:0=3.0").unwrap();
        let policy = |ms| Policy::Cost {
            prices: prices.clone(),
            p99_target: Duration::from_millis(ms),
        };
        // 32 samples: the CPU needs 32 ms for 0.1 $/h, the GPU 6.6 ms for 3 $/h.
        assert_eq!(
            route(&policy(100), &views, 32, false, 0),
            Some(Route::Whole(0))
        );
        assert_eq!(
            route(&policy(10), &views, 32, false, 0),
            Some(Route::Whole(1))
        );
        // No device meets 1 ms: the fastest.
        assert_eq!(
            route(&policy(1), &views, 32, false, 0),
            Some(Route::Whole(1))
        );
    }

    #[test]
    fn unavailable_devices_are_never_chosen() {
        let (c, cc, g, gc) = pair();
        let mut views = [view(&c, &cc, 0.0, 0), view(&g, &gc, 0.0, 0)];
        views[0].available = false;
        assert_eq!(
            route(&Policy::Latency, &views, 1, true, 0),
            Some(Route::Whole(1))
        );
        assert_eq!(
            route(&Policy::Pinned(DeviceId::CPU), &views, 1, true, 0),
            None
        );
        views[1].available = false;
        assert_eq!(route(&Policy::Throughput, &views, 1, true, 0), None);
    }

    #[test]
    fn round_robin_takes_turns_whatever_the_cost() {
        let (c, cc, g, gc) = pair();
        let views = [view(&c, &cc, 0.0, 0), view(&g, &gc, 0.0, 0)];
        let picks: Vec<_> = (0..4)
            .map(|s| route(&Policy::RoundRobin, &views, 1, false, s))
            .collect();
        assert_eq!(picks, [0, 1, 0, 1].map(|i| Some(Route::Whole(i))));
    }

    #[test]
    fn policies_parse_with_clear_errors() {
        assert_eq!("latency".parse::<Policy>().unwrap(), Policy::Latency);
        assert_eq!(
            "pinned:cuda:1".parse::<Policy>().unwrap(),
            Policy::Pinned("cuda:1".parse().unwrap())
        );
        assert!("fastest"
            .parse::<Policy>()
            .unwrap_err()
            .to_string()
            .contains("unknown policy"));
        assert!(parse_prices("cpu=abc").is_err());
        assert!(parse_prices("gpu=1").is_err());
    }
}
