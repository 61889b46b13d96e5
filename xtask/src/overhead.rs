//! `cargo xtask dispatch-overhead`: the round trip of a tiny model (one Add on one float)
//! on a device, which is the fixed cost a request pays there: upload, one dispatch,
//! readback. `--model` times a built-in model instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossover::core::{passes, Backend, CompileOptions, DType, DeviceId, DeviceKind, Dim, Tensor};
use crossover::zoo::ZooModel;
use crossover::{CpuBackend, ModelBuilder};

fn tiny() -> crossover::core::Graph {
    let mut b = ModelBuilder::new("tiny");
    let x = b.input("x", DType::F32, &[Dim::Fixed(1)]);
    let one = b.weight("one", &Tensor::from_vec(&[1], vec![1.0f32]).expect("sized"));
    let y = b.node("Add", &[&x, &one], &[]);
    b.output(&y, "y", DType::F32, &[Dim::Fixed(1)]);
    b.into_model().expect("tiny model imports").graph
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(device: &str, iters: usize, model: Option<&str>, batch: usize) -> Result<(), String> {
    let id: DeviceId = device
        .parse()
        .map_err(|e: crossover::core::Error| e.to_string())?;
    let (backend, label): (Box<dyn Backend>, String) = match id.kind {
        DeviceKind::Cpu => (Box::new(CpuBackend::new()), "cpu".into()),
        DeviceKind::Wgpu => {
            let b =
                crossover_wgpu::WgpuBackend::new(id.index, crossover_wgpu::AdapterSelection::Auto)
                    .map_err(|e| e.to_string())?;
            let mut label = b.adapter().to_string();
            if b.adapter().software {
                label.push_str(
                    " — SOFTWARE VULKAN (llvmpipe): correctness only, not a GPU performance figure",
                );
            }
            (Box::new(b), label)
        }
        DeviceKind::Cuda => return Err("cuda: not measured by this task yet".into()),
    };
    let (mut graph, inputs, what) = match model {
        None => (
            tiny(),
            vec![Tensor::from_vec(&[1], vec![2.0f32]).expect("sized")],
            "tiny model (one Add on [1])".to_string(),
        ),
        Some(m) => {
            let z: ZooModel = m
                .parse()
                .map_err(|e: crossover::core::Error| e.to_string())?;
            let inputs = z
                .sample_inputs(batch, 16)
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            (
                z.model().map_err(|e| e.to_string())?.graph,
                inputs,
                format!("{z} batch {batch}"),
            )
        }
    };
    passes::optimize(&mut graph, &CpuBackend::new()).map_err(|e| e.to_string())?;
    let options = CompileOptions {
        host_fallback: Some(Arc::new(CpuBackend::new())),
        ..Default::default()
    };
    let exe = backend
        .compile(Arc::new(graph), &options)
        .map_err(|e| e.to_string())?;
    for _ in 0..iters.min(10) {
        exe.run(&inputs).map_err(|e| e.to_string())?;
    }
    let mut walls = Vec::with_capacity(iters);
    let mut stages = [Duration::ZERO; 3];
    for _ in 0..iters {
        let t0 = Instant::now();
        let out = exe.run(&inputs).map_err(|e| e.to_string())?;
        walls.push(t0.elapsed());
        stages[0] += out.timings.upload;
        stages[1] += out.timings.compute;
        stages[2] += out.timings.download;
    }
    walls.sort();
    let n = iters as u32;
    println!("device: {label}");
    println!("{what}, {iters} runs after warm-up:");
    println!(
        "  round trip  median {:?}  p10 {:?}  p90 {:?}",
        percentile(&walls, 0.5),
        percentile(&walls, 0.1),
        percentile(&walls, 0.9)
    );
    println!(
        "  mean stages upload {:?}  compute {:?}  download {:?}",
        stages[0] / n,
        stages[1] / n,
        stages[2] / n
    );
    Ok(())
}
