//! The scheduler on two real devices: the CPU and the wgpu backend (llvmpipe in CI).
//! Under `CI=true` a missing wgpu adapter fails the test instead of skipping it.

use std::time::Duration;

use crossover::conformance::compare_with;
use crossover::zoo::ZooModel;
use crossover::{
    CalibrationOptions, DeviceId, DeviceKind, Policy, ProfileCache, ProfileStore, Selection,
    Session, Tensor,
};

fn wgpu_device() -> Option<DeviceId> {
    let found = crossover::sched::discover();
    let wgpu = found
        .found
        .iter()
        .find(|f| f.info.id.kind == DeviceKind::Wgpu);
    match wgpu {
        Some(f) => Some(f.info.id.clone()),
        None => {
            let why: Vec<_> = found.missing.iter().map(|m| m.reason.clone()).collect();
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but no wgpu adapter: {why:?}"
            );
            eprintln!("SKIPPED: no wgpu adapter ({why:?}); install mesa-vulkan-drivers");
            None
        }
    }
}

fn session(gpu: &DeviceId, policy: Policy, cache: &tempfile::TempDir) -> Session {
    let z = ZooModel::Mlp;
    Session::builder()
        .devices(Selection::List(vec![DeviceId::CPU, gpu.clone()]))
        .policy(policy)
        .sample_inputs(z.sample_inputs(1, 1))
        .calibration(CalibrationOptions {
            max_batch: 8,
            time_budget: Some(Duration::from_secs(10)),
        })
        .profile_store(ProfileStore::At(ProfileCache::new(cache.path())))
        .build(z.model().unwrap())
        .unwrap()
}

fn reference(inputs: &[(String, Tensor)]) -> Vec<Tensor> {
    let cpu = Session::builder()
        .device(DeviceId::CPU)
        .build(ZooModel::Mlp.model().unwrap())
        .unwrap();
    let feed: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    cpu.run(&feed).unwrap()
}

#[test]
fn requests_are_routed_across_cpu_and_wgpu_with_correct_results() {
    let Some(gpu) = wgpu_device() else { return };
    let cache = tempfile::tempdir().unwrap();
    let s = session(&gpu, Policy::Latency, &cache);
    assert_eq!(s.profiles().len(), 2, "both devices are calibrated");
    // The profile cache now holds both, so a second session measures nothing.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 2);

    // Idle, a single goes where the curves say one sample is fastest.
    let fastest = s
        .profiles()
        .iter()
        .min_by(|a, b| {
            let l = |p: &crossover::Profile| p.curve().unwrap().latency(1);
            l(a).total_cmp(&l(b))
        })
        .unwrap()
        .device
        .clone();
    let one = ZooModel::Mlp.sample_inputs(1, 1);
    let feed: Vec<(&str, Tensor)> = one.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let reply = s.run_with_info(&feed).unwrap();
    assert_eq!(reply.device(), &fastest);
    compare_with(&reply.outputs[0], &reference(&one)[0], 1e-4, 1e-5).unwrap();

    // A burst of mixed sizes: every request answered, correctly, wherever it ran.
    let sizes = [1, 3, 1, 8, 1, 2, 5, 1, 1, 4];
    let requests: Vec<Vec<(String, Tensor)>> = sizes
        .iter()
        .map(|&b| ZooModel::Mlp.sample_inputs(b, 1))
        .collect();
    let tickets: Vec<_> = requests
        .iter()
        .map(|r| {
            let feed: Vec<(&str, Tensor)> =
                r.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
            s.submit(&feed, None).unwrap()
        })
        .collect();
    for (r, t) in requests.iter().zip(tickets) {
        let reply = t.wait().unwrap();
        compare_with(&reply.outputs[0], &reference(r)[0], 1e-4, 1e-5).unwrap();
    }
    let stats = s.stats();
    assert_eq!(
        stats.iter().map(|d| d.samples).sum::<u64>(),
        1 + sizes.iter().sum::<usize>() as u64
    );
    assert!(stats.iter().all(|d| d.healthy && d.errors == 0));
    let memory = s.memory();
    assert!(memory.iter().all(|(_, m)| m.weights > 0), "{memory:?}");
}

#[test]
fn pinned_and_round_robin_use_the_devices_they_name() {
    let Some(gpu) = wgpu_device() else { return };
    let cache = tempfile::tempdir().unwrap();
    let one = ZooModel::Mlp.sample_inputs(1, 1);
    let feed: Vec<(&str, Tensor)> = one.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let pinned = session(&gpu, Policy::Pinned(gpu.clone()), &cache);
    for _ in 0..3 {
        assert_eq!(pinned.run_with_info(&feed).unwrap().device(), &gpu);
    }
    let rr = session(&gpu, Policy::RoundRobin, &cache);
    let ran: Vec<DeviceId> = (0..4)
        .map(|_| rr.run_with_info(&feed).unwrap().device().clone())
        .collect();
    assert!(
        ran.contains(&gpu) && ran.contains(&DeviceId::CPU),
        "{ran:?}"
    );
}
