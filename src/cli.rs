//! The command line: `run`, `demo`, `eval`, `bench`, `check-config`, `migrate`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app;

#[derive(Parser, Debug)]
#[command(name = "sublist", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure sorting quality on real playlists (docs/eval.md).
    Eval(app::eval::EvalArgs),
    /// Run the learning pipeline offline on bundled real playlists.
    Demo(app::demo::DemoArgs),
    /// Time training and scoring on the CPU (and GPU, if any).
    Bench(app::bench::BenchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Eval(args)) => app::eval::run(args),
        Some(Command::Demo(args)) => app::demo::run(args),
        Some(Command::Bench(args)) => app::bench::run(args),
        None => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
