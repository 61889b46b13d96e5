mod codegen;
mod conformance;
mod expected;
mod gpu_test;
mod kernels;
mod python;
mod test;
mod util;

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
    /// Compile kernels/cuda/*.cu to PTX with NVRTC (kernels/ptx/, committed) and assemble
    /// it with ptxas for sm_80 and sm_90. `--check` only verifies the committed PTX.
    Kernels {
        #[arg(long)]
        check: bool,
    },
    /// Build the CUDA test binaries (release) into target/gpu-test/ with their test data
    /// and a run.sh, to copy to and run on a machine with an NVIDIA GPU.
    GpuTest,
    /// Run the ONNX backend node tests on the CPU and print per-op pass counts.
    Conformance {
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Print every failing case with its error.
        #[arg(long, short)]
        verbose: bool,
        /// Rewrite tests/conformance/cpu-expected-failures.txt from this run.
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
        Task::Kernels { check } => kernels::run(&root, check),
        Task::GpuTest => gpu_test::run(&root),
        Task::Conformance {
            filter,
            verbose,
            write_expected,
        } => conformance::run(&root, filter.as_deref(), verbose, write_expected),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
