//! The CPU backend's worker threads: the caller among them, kept awake between runs.
//!
//! A run executes on the calling thread, as worker 0 of a crew of `threads` built for
//! that thread at its first run, with `threads - 1` workers beside it (see [`Workers`]).
//! A rayon pool's idle threads sleep on a futex within microseconds, and a run that
//! needs sleeping threads pays a wake-up: 25 µs on a quiet 2-core VM, 100 µs after a
//! millisecond of idleness — more than a small model's compute. So after each run the
//! workers linger, spinning for new work, for [`LINGER`], and through the next run when
//! it starts meanwhile (between its parallel steps too); a caller that hands its run to
//! the shared crew spins on its result for up to [`CALLER_SPIN`] before it blocks. ONNX
//! Runtime's intra-op pool spins the same way by default; as there,
//! `CompileOptions::allow_spinning` turns both off.

use std::cell::{Cell, OnceCell};
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
    /// The crew this thread takes part in as worker 0, built at its first run (`None`
    /// where it cannot: a worker of some other pool).
    static OWN: OnceCell<Option<Crew>> = const { OnceCell::new() };
}

/// Where a run goes. A caller thread runs on a crew of its own, in which it is one of
/// the `threads` (as ONNX Runtime's caller is one of its intra-op threads): on two
/// cores, a caller that waited on two workers was a third thread competing for them,
/// and a batch-1 run took longer on two threads than on one. A caller that cannot join
/// a crew of this size (a rayon worker elsewhere, or a thread whose own crew has
/// another size) hands its run to the shared crew and waits.
pub(crate) struct Workers {
    threads: usize,
    shared: Crew,
    spin: bool,
}

/// A pool and its lingering state.
struct Crew {
    pool: rayon::ThreadPool,
    warmth: Arc<Warmth>,
    /// Whether worker 0 is the thread that built it (and lingers never).
    caller_inside: bool,
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

    /// Polls for rayon work until `until` passes and no run is in flight. It does not
    /// start while a run is in flight: a worker waiting inside a run's join can steal a
    /// lingerer, and one that spun there would hold that run back. Nor on a caller that
    /// is worker 0 of its crew, which may be waiting on another crew's run. One that
    /// started between runs is at the bottom of its worker's stack, so it may spin
    /// through the next run too: a rayon worker idle between a run's parallel steps
    /// sleeps within microseconds, and the encoder's 50 wake-ups a run cost it 8%.
    fn linger_here(&self) {
        let nested = LINGERING.with(|l| l.replace(true));
        let caller = OWN
            .try_with(|own| own.get().is_some_and(|c| c.is_some()))
            .unwrap_or(false);
        if !nested && !caller && self.in_flight.load(Ordering::Acquire) == 0 {
            let mut idle = 0u32;
            while self.now() < self.until.load(Ordering::Relaxed)
                || self.in_flight.load(Ordering::Acquire) > 0
            {
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

impl Crew {
    /// `threads` threads, the calling one among them when `with_caller`.
    fn new(threads: usize, with_caller: bool) -> std::result::Result<Crew, String> {
        let mut builder = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("crossover-cpu-{i}"));
        if with_caller {
            builder = builder.use_current_thread();
        }
        let pool = builder.build().map_err(|e| e.to_string())?;
        Ok(Crew {
            pool,
            warmth: Arc::new(Warmth {
                epoch: Instant::now(),
                until: AtomicU64::new(0),
                lingering: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
            }),
            caller_inside: with_caller,
        })
    }

    /// The calling thread's own crew of `threads`, built at its first run.
    fn own<R>(threads: usize, f: impl FnOnce(Option<&Crew>) -> R) -> R {
        OWN.with(|own| {
            let crew = own.get_or_init(|| {
                // A rayon worker cannot be worker 0 of a second pool; a crew that
                // cannot start its threads leaves the shared one.
                rayon::current_thread_index()
                    .is_none()
                    .then(|| Crew::new(threads, true).ok())
                    .flatten()
            });
            f(crew
                .as_ref()
                .filter(|c| c.pool.current_num_threads() == threads))
        })
    }

    /// Extends the lingering time and spawns a lingerer for each worker without one.
    fn keep_warm(&self) {
        let w = &self.warmth;
        let until = w.now() + LINGER.as_nanos() as u64;
        w.until.fetch_max(until, Ordering::Relaxed);
        let threads = self.pool.current_num_threads() - usize::from(self.caller_inside);
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

/// Counts a run in flight until dropped (also when the run panics).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Workers {
    /// Runs on `threads` threads, the caller among them (`None`: one per core); the
    /// workers linger, and callers of the shared crew spin, when `spin`.
    pub(crate) fn new(threads: Option<usize>, spin: bool) -> Result<Workers> {
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let shared = Crew::new(threads, false).map_err(|message| Error::Device {
            device: "cpu".into(),
            message: format!("cannot start the worker threads: {message}"),
        })?;
        Ok(Workers {
            threads,
            shared,
            spin,
        })
    }

    /// Runs `f` on the workers and returns its result (a panic in `f` resumes here).
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        Crew::own(self.threads, |own| match own {
            Some(crew) => {
                let in_flight = InFlight::new(&crew.warmth.in_flight);
                // On worker 0 of the crew: `install` runs `f` on this thread.
                let out = crew.pool.install(f);
                drop(in_flight);
                if self.spin {
                    crew.keep_warm();
                }
                out
            }
            None => self.run_shared(f),
        })
    }

    /// Hands `f` to the shared crew and waits, spinning first when `spin`.
    fn run_shared<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let crew = &self.shared;
        let in_flight = InFlight::new(&crew.warmth.in_flight);
        let mut out = None;
        let done = AtomicBool::new(false);
        crew.pool.in_place_scope(|s| {
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
            crew.keep_warm();
        }
        out.expect("a scope returns once its spawned work has run")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(n: usize) -> Workers {
        Workers::new(Some(n), true).unwrap()
    }

    /// Lingerers of the crew a run from this thread goes to.
    fn lingering(w: &Workers) -> usize {
        Crew::own(w.threads, |own| {
            own.unwrap_or(&w.shared)
                .warmth
                .lingering
                .load(Ordering::Acquire)
        })
    }

    #[test]
    fn the_caller_is_one_of_the_threads() {
        let w = workers(2);
        let me = std::thread::current().id();
        for _ in 0..20 {
            let (here, index, ids) = w.run(|| {
                let ids = rayon::broadcast(|_| std::thread::current().id());
                (
                    std::thread::current().id(),
                    rayon::current_thread_index(),
                    ids,
                )
            });
            assert_eq!(here, me, "the run left the calling thread");
            assert_eq!(index, Some(0));
            assert_eq!(ids.len(), 2);
            assert!(ids.contains(&me) && ids[0] != ids[1], "{ids:?}");
        }
    }

    #[test]
    fn callers_that_cannot_take_part_use_the_shared_crew() {
        // This thread's own crew has 2 threads; a 3-thread session runs elsewhere.
        let (two, three) = (workers(2), workers(3));
        assert_eq!(two.run(rayon::current_num_threads), 2);
        assert_eq!(three.run(rayon::current_num_threads), 3);
        let me = std::thread::current().id();
        assert_ne!(three.run(|| std::thread::current().id()), me);
        // A worker of another pool cannot join one: its runs go to the shared crew.
        let other = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (sum, threads) =
            other.install(|| two.run(|| (rayon::join(|| 1, || 2), rayon::current_num_threads())));
        assert_eq!((sum, threads), ((1, 2), 2));
        // A one-thread crew is the caller alone.
        std::thread::spawn(|| {
            let one = workers(1);
            let me = std::thread::current().id();
            assert_eq!(one.run(|| std::thread::current().id()), me);
            assert_eq!(lingering(&one), 0, "a crew of the caller alone lingers");
        })
        .join()
        .unwrap();
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
            assert_eq!(lingering(&w), 0, "run {i}");
        }
    }

    #[test]
    fn a_worker_lingering_between_runs_stays_awake_through_the_next() {
        let w = workers(2);
        // The lingerer must have started before the second run does, which a loaded
        // machine may delay: one of several tries is enough.
        let awake = (0..20).any(|_| {
            w.run(|| ());
            std::thread::sleep(LINGER / 4);
            w.run(|| {
                // A serial step longer than the lingering time.
                std::thread::sleep(LINGER * 4);
                lingering(&w) > 0
            })
        });
        assert!(awake, "no worker spun through a run's serial step");
    }

    #[test]
    fn workers_stop_lingering_after_the_lingering_time() {
        let w = workers(2);
        w.run(|| ());
        let start = Instant::now();
        assert!(lingering(&w) <= 1, "worker 0, the caller, lingers too");
        while lingering(&w) > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "lingerers still spinning 10 s after the last run"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
