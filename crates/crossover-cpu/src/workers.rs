//! The CPU backend's worker threads, kept awake between runs.
//!
//! A rayon pool's idle threads sleep on a futex within microseconds, and a run handed to
//! sleeping threads pays a wake-up on the way in and another on the way back: 25 µs on a
//! quiet 2-core VM, 100 µs after a millisecond of idleness — more than a small model's
//! compute. So after each run the workers linger, spinning for new work, for
//! [`LINGER`]; the caller spins on its result for up to [`CALLER_SPIN`] before it blocks.
//! ONNX Runtime's intra-op pool spins the same way by default; as there,
//! `CompileOptions::allow_spinning` turns both off.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossover_core::{Error, Result};

/// How long the workers keep looking for work after a run ends.
pub(crate) const LINGER: Duration = Duration::from_micros(500);
/// How long a caller spins on its result before it sleeps until woken.
pub(crate) const CALLER_SPIN: Duration = Duration::from_micros(500);
/// Empty polls between the OS yields of a lingering worker, so that other threads (the
/// caller, a software-Vulkan device's) still get the core.
const POLLS_PER_YIELD: u32 = 64;

thread_local! {
    /// Set while this thread runs a lingerer: one it starts inside another returns at once.
    static LINGERING: Cell<bool> = const { Cell::new(false) };
}

pub(crate) struct Workers {
    pool: rayon::ThreadPool,
    warmth: Arc<Warmth>,
    spin: bool,
}

struct Warmth {
    epoch: Instant,
    /// Nanoseconds after `epoch` at which lingering workers go to sleep.
    until: AtomicU64,
    /// Lingerers spawned and not yet returned.
    lingering: AtomicUsize,
    /// Runs started and not yet finished.
    in_flight: AtomicUsize,
}

impl Warmth {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Polls for rayon work until `until` passes. It does not start while a run is in
    /// flight: a worker waiting inside a run's join can steal a lingerer, and one that
    /// spun there would hold that run back until `until`.
    fn linger_here(&self) {
        let nested = LINGERING.with(|l| l.replace(true));
        if !nested && self.in_flight.load(Ordering::Acquire) == 0 {
            let mut idle = 0u32;
            while self.now() < self.until.load(Ordering::Relaxed) {
                match rayon::yield_now() {
                    Some(rayon::Yield::Executed) => idle = 0,
                    _ => {
                        idle += 1;
                        if idle.is_multiple_of(POLLS_PER_YIELD) {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
        }
        LINGERING.with(|l| l.set(nested));
        self.lingering.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Workers {
    /// `threads` workers (`None`: one per core), which linger and let callers spin
    /// when `spin`.
    pub(crate) fn new(threads: Option<usize>, spin: bool) -> Result<Workers> {
        let mut builder =
            rayon::ThreadPoolBuilder::new().thread_name(|i| format!("crossover-cpu-{i}"));
        if let Some(t) = threads {
            builder = builder.num_threads(t);
        }
        let pool = builder.build().map_err(|e| Error::Device {
            device: "cpu".into(),
            message: format!("cannot start the worker threads: {e}"),
        })?;
        Ok(Workers {
            pool,
            warmth: Arc::new(Warmth {
                epoch: Instant::now(),
                until: AtomicU64::new(0),
                lingering: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
            }),
            spin,
        })
    }

    /// Runs `f` on the workers and returns its result (a panic in `f` resumes here).
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        struct InFlight<'a>(&'a AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.warmth.in_flight.fetch_add(1, Ordering::AcqRel);
        let in_flight = InFlight(&self.warmth.in_flight);
        let mut out = None;
        let done = AtomicBool::new(false);
        self.pool.in_place_scope(|s| {
            s.spawn(|_| {
                out = Some(f());
                done.store(true, Ordering::Release);
            });
            if self.spin {
                let start = Instant::now();
                while !done.load(Ordering::Acquire) && start.elapsed() < CALLER_SPIN {
                    std::thread::yield_now();
                }
            }
        });
        drop(in_flight);
        if self.spin {
            self.keep_warm();
        }
        out.expect("a scope returns once its spawned work has run")
    }

    /// Extends the lingering time and spawns a lingerer for each worker without one.
    fn keep_warm(&self) {
        let w = &self.warmth;
        let until = w.now() + LINGER.as_nanos() as u64;
        w.until.fetch_max(until, Ordering::Relaxed);
        let threads = self.pool.current_num_threads();
        let mut n = w.lingering.load(Ordering::Acquire);
        while n < threads {
            match w
                .lingering
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let w = Arc::clone(w);
                    self.pool.spawn(move || w.linger_here());
                    n += 1;
                }
                Err(now) => n = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(n: usize) -> Workers {
        Workers::new(Some(n), true).unwrap()
    }

    #[test]
    fn runs_return_their_results_on_the_pool() {
        let w = workers(2);
        for i in 0..200 {
            let (sum, inside) = w.run(|| {
                let sum: u64 = rayon::join(|| i, || 2 * i).0 + 1;
                (sum, rayon::current_thread_index().is_some())
            });
            assert_eq!(sum, i + 1);
            assert!(inside, "run {i} did not run on a worker thread");
            if i % 50 == 0 {
                // Past the lingering time: the next run finds the workers asleep.
                std::thread::sleep(LINGER * 3);
            }
        }
    }

    #[test]
    fn concurrent_callers_all_get_their_own_answers() {
        let w = workers(2);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let w = &w;
                s.spawn(move || {
                    for i in 0..100u64 {
                        let v = w.run(|| {
                            use rayon::prelude::*;
                            (0..1000u64).into_par_iter().map(|x| x * t + i).sum::<u64>()
                        });
                        assert_eq!(v, t * 999 * 1000 / 2 + 1000 * i);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panic_in_a_run_reaches_the_caller_and_the_pool_still_runs() {
        let w = workers(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            w.run(|| panic!("kernel bug"));
        }));
        assert!(r.is_err());
        assert_eq!(w.run(|| 7), 7);
    }

    #[test]
    fn without_spinning_nobody_lingers() {
        let w = Workers::new(Some(2), false).unwrap();
        for i in 0..50u64 {
            assert_eq!(w.run(|| rayon::join(|| i, || i + 1)), (i, i + 1));
            assert_eq!(w.warmth.lingering.load(Ordering::Acquire), 0, "run {i}");
        }
    }

    #[test]
    fn workers_stop_lingering_after_the_lingering_time() {
        let w = workers(2);
        w.run(|| ());
        let start = Instant::now();
        while w.warmth.lingering.load(Ordering::Acquire) > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "lingerers still spinning 10 s after the last run"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
