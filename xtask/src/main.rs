mod codegen;
mod conformance;
mod python;
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
    /// Run the ONNX backend node tests on the CPU and print per-op pass counts.
    Conformance {
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Print every failing case with its error.
        #[arg(long, short)]
        verbose: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let root = util::root();
    let result = match cli.task {
        Task::Codegen { check } => codegen::run(&root, check),
        Task::Conformance { filter, verbose } => {
            conformance::run(&root, filter.as_deref(), verbose)
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
