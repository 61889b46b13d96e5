mod bench;
mod codegen;
mod conformance;
mod expected;
mod gpu_test;
mod kernels;
mod overhead;
mod python;
mod test;
mod util;
mod vulkan;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "crossover's build and task runner")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Regenerate the prost bindings for onnx.proto (or check they are fresh).
    Codegen {
        #[arg(long)]
        check: bool,
    },
    /// Run every test: installs the Python tools into .venv, generates the ONNX node tests
    /// and golden data under target/, runs the Rust test suites, then builds the Python
    /// package into .venv and runs its pytest suite (ONNX backend node tests included).
    Test {
        /// Only generate the test data.
        #[arg(long)]
        prepare_only: bool,
    },
    /// Benchmark the CPU backend against onnxruntime (same ONNX files, inputs and threads,
    /// one run), plus GEMM against the FMA peak and the built-in models on every hardware
    /// device; writes target/bench/report.md and SVG plots.
    Bench {
        /// Threads on both sides (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Shorter measurements, for a first look.
        #[arg(long)]
        quick: bool,
        /// Only cases and benches whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Build the release abi3 wheel of the Python package into target/wheels.
    Wheel,
    /// Measure the Python binding's per-call overhead against Rust calls on the same
    /// session (median of many runs of a tiny model).
    Overhead {
        /// Build the extension with the release profile first (as a wheel ships).
        #[arg(long)]
        release: bool,
    },
    /// Time the round trip of a tiny model (or a built-in one) on a device: the fixed
    /// cost of one request there. llvmpipe numbers are labelled software, never GPU figures.
    DispatchOverhead {
        #[arg(long, default_value = "wgpu:0")]
        device: String,
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// A built-in model (mlp, cnn, encoder) instead of the tiny one.
        #[arg(long)]
        model: Option<String>,
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// Compile kernels/cuda/*.cu to PTX with NVRTC (kernels/ptx/, committed) and assemble
    /// it with ptxas for sm_80 and sm_90. `--check` only verifies the committed PTX.
    Kernels {
        #[arg(long)]
        check: bool,
    },
    /// Build the CUDA test binaries (release) into target/gpu-test/ with their test data
    /// and a run.sh, to copy to and run on a machine with an NVIDIA GPU.
    GpuTest,
    /// Run the ONNX backend node tests on a device and print per-op pass counts.
    Conformance {
        /// `cpu` or `wgpu:N` (adapter N of `crossover_wgpu::adapters`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Print every failing case with its error.
        #[arg(long, short)]
        verbose: bool,
        /// Rewrite tests/conformance/<device kind>-expected-failures.txt from this run.
        #[arg(long)]
        write_expected: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let root = util::root();
    let result = match cli.task {
        Task::Codegen { check } => codegen::run(&root, check),
        Task::Test { prepare_only: true } => test::prepare(&root),
        Task::Test {
            prepare_only: false,
        } => test::run(&root),
        Task::Bench {
            threads,
            quick,
            filter,
        } => bench::run(
            &root,
            &bench::Options {
                threads: threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                quick,
                filter,
            },
        ),
        Task::Wheel => python::wheel(&root),
        Task::Overhead { release } => python::overhead(&root, release),
        Task::DispatchOverhead {
            device,
            iters,
            model,
            batch,
        } => overhead::run(&device, iters.max(1), model.as_deref(), batch.max(1)),
        Task::Kernels { check } => kernels::run(&root, check),
        Task::GpuTest => gpu_test::run(&root),
        Task::Conformance {
            device,
            filter,
            verbose,
            write_expected,
        } => conformance::run(&root, &device, filter.as_deref(), verbose, write_expected),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
