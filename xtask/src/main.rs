mod codegen;
mod conformance;
mod expected;
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
    /// and golden data under target/, then runs the Rust test suites.
    Test {
        /// Only generate the test data.
        #[arg(long)]
        prepare_only: bool,
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
        Task::DispatchOverhead {
            device,
            iters,
            model,
            batch,
        } => overhead::run(&device, iters.max(1), model.as_deref(), batch.max(1)),
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
