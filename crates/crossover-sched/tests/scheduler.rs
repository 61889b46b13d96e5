//! The live scheduler on the CPU backend, with a test double that makes a device slow or
//! failing on demand: batching, routing, faults, overload and deadlines.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossover_core::builder::ModelBuilder;
use crossover_core::{
    passes, Backend, CompileOptions, DType, DeviceId, DeviceInfo, Dim, Error, ErrorKind,
    Executable, Graph, MemoryUsage, Result, RunOutput, Tensor,
};
use crossover_cpu::CpuBackend;
use crossover_sched::{BatchAxis, CostCurve, DeviceSlot, Policy, QueueConfig, Sample, Scheduler};

/// Embedding lookup: `ids [batch, 1]` (i64) → rows of a 16 × 3 table. An id out of range
/// fails the run with an input error, which lets a test plant one bad request in a batch.
fn lookup_graph() -> Arc<Graph> {
    let mut b = ModelBuilder::new("lookup");
    let ids = b.input(
        "ids",
        DType::I64,
        &[Dim::Param("batch".into()), Dim::Fixed(1)],
    );
    let table: Vec<f32> = (0..48).map(|i| i as f32).collect();
    let w = b.weight("table", &Tensor::from_vec(&[16, 3], table).unwrap());
    let y = b.node("Gather", &[&w, &ids], &[]);
    b.output(
        &y,
        "rows",
        DType::F32,
        &[Dim::Param("batch".into()), Dim::Fixed(1), Dim::Fixed(3)],
    );
    let mut graph = b.into_model().unwrap().graph;
    passes::optimize(&mut graph, &CpuBackend::new()).unwrap();
    Arc::new(graph)
}

fn ids(v: &[i64]) -> Vec<Tensor> {
    vec![Tensor::from_vec(&[v.len(), 1], v.to_vec()).unwrap()]
}

fn first_column(t: &Tensor) -> Vec<f32> {
    t.view::<f32>()
        .unwrap()
        .iter()
        .step_by(3)
        .copied()
        .collect()
}

/// The CPU backend behind a knob: each run can be slowed down or made to fail as a
/// device failure would.
struct Double {
    inner: Box<dyn Executable>,
    delay: Duration,
    failing: AtomicBool,
    runs: AtomicUsize,
    /// The thread of each run.
    threads: std::sync::Mutex<Vec<std::thread::ThreadId>>,
}

impl Executable for Double {
    fn run(&self, inputs: &[Tensor]) -> Result<RunOutput> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        std::thread::sleep(self.delay);
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::Device {
                device: "double".into(),
                message: "injected failure".into(),
            });
        }
        self.inner.run(inputs)
    }

    fn memory(&self) -> MemoryUsage {
        self.inner.memory()
    }
}

struct Handle(Arc<Double>);

impl Executable for Handle {
    fn run(&self, inputs: &[Tensor]) -> Result<RunOutput> {
        self.0.run(inputs)
    }
    fn memory(&self) -> MemoryUsage {
        self.0.memory()
    }
}

fn double(graph: &Arc<Graph>, delay_ms: u64, failing: bool) -> Arc<Double> {
    Arc::new(Double {
        inner: CpuBackend::new()
            .compile(graph.clone(), &CompileOptions::default())
            .unwrap(),
        delay: Duration::from_millis(delay_ms),
        failing: AtomicBool::new(failing),
        runs: AtomicUsize::new(0),
        threads: Default::default(),
    })
}

fn flat_curve(seconds: f64) -> CostCurve {
    CostCurve::new(vec![
        Sample {
            batch: 1,
            upload: 0.0,
            compute: seconds,
            download: 0.0,
        },
        Sample {
            batch: 64,
            upload: 0.0,
            compute: seconds * 2.0,
            download: 0.0,
        },
    ])
    .unwrap()
}

fn slot(id: &str, exec: &Arc<Double>, curve: CostCurve, queue: QueueConfig) -> DeviceSlot {
    let mut info: DeviceInfo = CpuBackend::new().info();
    info.id = id.parse::<DeviceId>().unwrap();
    DeviceSlot {
        info,
        executable: Box::new(Handle(exec.clone())),
        curve: Some(curve),
        queue,
    }
}

#[test]
fn concurrent_singles_coalesce_into_batches_with_correct_rows() {
    let g = lookup_graph();
    let dev = double(&g, 20, false);
    let queue = QueueConfig {
        max_batch: 16,
        max_delay: Duration::from_millis(50),
        ..QueueConfig::default()
    };
    let s = Scheduler::new(
        vec![slot("cpu", &dev, flat_curve(0.02), queue)],
        Policy::Latency,
        BatchAxis::of(&g),
    )
    .unwrap();
    let tickets: Vec<_> = (0..12)
        .map(|i| s.submit(ids(&[i % 16]), None).unwrap())
        .collect();
    for (i, t) in tickets.into_iter().enumerate() {
        let r = t.wait().unwrap();
        assert_eq!(first_column(&r.outputs[0]), vec![3.0 * (i % 16) as f32]);
        assert_eq!(r.outputs[0].shape(), &[1, 1, 3]);
    }
    let stats = &s.stats()[0];
    assert_eq!(stats.requests, 12);
    assert!(
        stats.runs < 12,
        "12 queued singles ran in {} runs",
        stats.runs
    );
    assert_eq!(dev.runs.load(Ordering::SeqCst) as u64, stats.runs);
}

#[test]
fn a_waited_request_on_an_idle_device_runs_on_the_callers_thread() {
    let g = lookup_graph();
    let dev = double(&g, 30, false);
    let s = Arc::new(
        Scheduler::new(
            vec![slot("cpu", &dev, flat_curve(0.03), QueueConfig::default())],
            Policy::Latency,
            BatchAxis::of(&g),
        )
        .unwrap(),
    );
    let r = s.run(ids(&[2]), None).unwrap();
    assert_eq!(first_column(&r.outputs[0]), vec![6.0]);
    assert_eq!(dev.threads.lock().unwrap()[0], std::thread::current().id());

    // While one caller runs on its thread, the others queue; the worker takes them
    // after it, batched, and every one gets its own rows.
    let start = Arc::new(std::sync::Barrier::new(6));
    let callers: Vec<_> = (0..6)
        .map(|i| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let r = s.run(ids(&[i]), None).unwrap();
                assert_eq!(first_column(&r.outputs[0]), vec![3.0 * i as f32]);
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
    let stats = &s.stats()[0];
    assert_eq!(stats.requests, 7);
    assert!(
        stats.runs < 7,
        "6 callers at once ran in {} runs",
        stats.runs
    );
    // A submitted request is always the worker's.
    s.submit(ids(&[1]), None).unwrap().wait().unwrap();
    assert_ne!(
        *dev.threads.lock().unwrap().last().unwrap(),
        std::thread::current().id()
    );
}

#[test]
fn a_bad_request_in_a_batch_fails_alone() {
    let g = lookup_graph();
    let dev = double(&g, 10, false);
    let queue = QueueConfig {
        max_batch: 16,
        max_delay: Duration::from_millis(50),
        ..QueueConfig::default()
    };
    let s = Scheduler::new(
        vec![slot("cpu", &dev, flat_curve(0.01), queue)],
        Policy::Latency,
        BatchAxis::of(&g),
    )
    .unwrap();
    let good = s.submit(ids(&[1, 2]), None).unwrap();
    let bad = s.submit(ids(&[99]), None).unwrap();
    let also_good = s.submit(ids(&[3]), None).unwrap();
    assert_eq!(
        first_column(&good.wait().unwrap().outputs[0]),
        vec![3.0, 6.0]
    );
    let e = bad.wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        first_column(&also_good.wait().unwrap().outputs[0]),
        vec![9.0]
    );
    assert!(
        s.stats()[0].healthy,
        "an input error does not blame the device"
    );
}

#[test]
fn a_failing_device_is_marked_unhealthy_and_its_work_moves() {
    let g = lookup_graph();
    let broken = double(&g, 0, true);
    let fine = double(&g, 0, false);
    // The broken device looks faster, so the policy tries it first.
    let s = Scheduler::new(
        vec![
            slot("cuda:0", &broken, flat_curve(0.001), QueueConfig::default()),
            slot("cpu", &fine, flat_curve(0.01), QueueConfig::default()),
        ],
        Policy::Latency,
        BatchAxis::of(&g),
    )
    .unwrap();
    for i in 0..5 {
        let r = s.run(ids(&[i]), None).unwrap();
        assert_eq!(r.device().to_string(), "cpu");
        assert_eq!(first_column(&r.outputs[0]), vec![3.0 * i as f32]);
    }
    let stats = s.stats();
    assert!(!stats[0].healthy);
    assert!(stats[0].faults >= 1);
    assert_eq!(stats[1].requests, 5);
    // Backoff: the broken device is not retried on every request.
    assert!(broken.runs.load(Ordering::SeqCst) < 5);
}

#[test]
fn every_request_gets_an_error_when_every_device_fails() {
    let g = lookup_graph();
    let a = double(&g, 0, true);
    let b = double(&g, 0, true);
    let s = Scheduler::new(
        vec![
            slot("cuda:0", &a, flat_curve(0.001), QueueConfig::default()),
            slot("cpu", &b, flat_curve(0.01), QueueConfig::default()),
        ],
        Policy::Latency,
        BatchAxis::of(&g),
    )
    .unwrap();
    let tickets: Vec<_> = (0..6).map(|i| s.submit(ids(&[i]), None)).collect();
    for t in tickets {
        let e = match t {
            Ok(t) => t.wait().unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::Device, "{e}");
        assert!(
            e.to_string().contains("injected failure") || e.to_string().contains("unhealthy"),
            "{e}"
        );
    }
}

#[test]
fn a_pinned_request_is_not_moved_off_its_device() {
    let g = lookup_graph();
    let broken = double(&g, 0, true);
    let fine = double(&g, 0, false);
    let s = Scheduler::new(
        vec![
            slot("cuda:0", &broken, flat_curve(0.001), QueueConfig::default()),
            slot("cpu", &fine, flat_curve(0.01), QueueConfig::default()),
        ],
        Policy::Pinned("cuda:0".parse().unwrap()),
        BatchAxis::of(&g),
    )
    .unwrap();
    let e = s.run(ids(&[1]), None).unwrap_err();
    assert!(e.to_string().contains("injected failure"), "{e}");
    assert_eq!(fine.runs.load(Ordering::SeqCst), 0);
}

#[test]
fn a_full_queue_answers_overloaded() {
    let g = lookup_graph();
    let slow = double(&g, 200, false);
    let queue = QueueConfig {
        max_batch: 1,
        max_delay: Duration::ZERO,
        capacity: 1,
    };
    let s = Scheduler::new(
        vec![slot("cpu", &slow, flat_curve(0.2), queue)],
        Policy::Latency,
        BatchAxis::of(&g),
    )
    .unwrap();
    let running = s.submit(ids(&[1]), None).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let waiting = s.submit(ids(&[2]), None).unwrap();
    let e = s
        .submit(ids(&[3]), None)
        .err()
        .expect("a third request must be refused");
    assert_eq!(e.kind(), ErrorKind::Overloaded, "{e}");
    assert!(running.wait().is_ok() && waiting.wait().is_ok());
}

#[test]
fn a_request_past_its_deadline_is_answered_with_an_error() {
    let g = lookup_graph();
    let slow = double(&g, 150, false);
    let queue = QueueConfig {
        max_batch: 1,
        ..QueueConfig::default()
    };
    let s = Scheduler::new(
        vec![slot("cpu", &slow, flat_curve(0.15), queue)],
        Policy::Latency,
        BatchAxis::of(&g),
    )
    .unwrap();
    let first = s.submit(ids(&[1]), None).unwrap();
    let late = s
        .submit(ids(&[2]), Some(Duration::from_millis(20)))
        .unwrap();
    assert!(first.wait().is_ok());
    let e = late.wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeadlineExceeded, "{e}");
    assert_eq!(
        slow.runs.load(Ordering::SeqCst),
        1,
        "the expired request never ran"
    );
}

#[test]
fn a_large_request_is_split_across_two_devices_when_that_is_sooner() {
    let g = lookup_graph();
    let a = double(&g, 0, false);
    let b = double(&g, 0, false);
    // Two devices that cost the same per sample: half each finishes in half the time.
    let linear = || {
        CostCurve::new(vec![
            Sample {
                batch: 1,
                upload: 0.0,
                compute: 1e-3,
                download: 0.0,
            },
            Sample {
                batch: 64,
                upload: 0.0,
                compute: 64e-3,
                download: 0.0,
            },
        ])
        .unwrap()
    };
    let s = Scheduler::new(
        vec![
            slot("wgpu:0", &a, linear(), QueueConfig::default()),
            slot("cpu", &b, linear(), QueueConfig::default()),
        ],
        Policy::Latency,
        BatchAxis::of(&g),
    )
    .unwrap();
    let request: Vec<i64> = (0..40).map(|i| i % 16).collect();
    let r = s.run(ids(&request), None).unwrap();
    assert_eq!(r.runs.len(), 2, "{:?}", r.runs);
    assert_eq!(r.runs.iter().map(|x| x.samples).sum::<usize>(), 40);
    let want: Vec<f32> = request.iter().map(|i| 3.0 * *i as f32).collect();
    assert_eq!(first_column(&r.outputs[0]), want);
}

#[test]
fn the_scheduler_refuses_inconsistent_setups() {
    let g = lookup_graph();
    let a = double(&g, 0, false);
    let pinned_elsewhere = Scheduler::new(
        vec![slot("cpu", &a, flat_curve(0.01), QueueConfig::default())],
        Policy::Pinned("cuda:0".parse().unwrap()),
        BatchAxis::of(&g),
    );
    assert!(pinned_elsewhere
        .err()
        .unwrap()
        .to_string()
        .contains("cuda:0"));
    let no_price = Scheduler::new(
        vec![slot("cpu", &a, flat_curve(0.01), QueueConfig::default())],
        Policy::Cost {
            prices: Default::default(),
            p99_target: Duration::from_millis(10),
        },
        BatchAxis::of(&g),
    );
    assert!(no_price.err().unwrap().to_string().contains("price"));
}
