mod codegen;
mod conformance;
mod expected;
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
    /// and golden data under target/, runs the Rust test suites, then builds the Python
    /// package into .venv and runs its pytest suite (ONNX backend node tests included).
    Test {
        /// Only generate the test data.
        #[arg(long)]
        prepare_only: bool,
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
        Task::Wheel => python::wheel(&root),
        Task::Overhead { release } => python::overhead(&root, release),
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
