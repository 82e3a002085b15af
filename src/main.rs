use clap::{Parser, Subcommand};
use placer::cli;

/// placer — where every tensor of a GGUF model goes when llama.cpp runs it on GPUs and a CPU.
#[derive(Debug, Parser)]
#[command(name = "placer", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// What every tensor costs and what the architecture is (from the GGUF header).
    Inspect(cli::inspect::Args),
    /// Write a GGUF with a real architecture's tensor table (header-only or full-size).
    Synth(cli::synth::Args),
    /// Predict memory per device for a llama.cpp launch command; say whether it fits.
    Check(cli::check::Args),
    /// Choose the fastest placement that fits; emit aggressive and moderate profiles.
    Solve(cli::solve::Args),
    /// Learn from measured llama.cpp runs.
    Calibrate(cli::calibrate::Args),
    /// Start each models.conf profile in llama-server, measure it, learn, choose one.
    Trial(cli::trial::Args),
    /// Host descriptions: detect this machine's GPUs (NVML).
    Host(cli::host::Args),
    /// Regenerate the reports in docs/ from data/runs.
    Report(cli::report::Args),
}

fn main() {
    let argv = cli::check::normalize_argv(cli::solve::normalize_argv(std::env::args()))
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(cli::EXIT_BAD_INPUT);
        });
    let cli = Cli::parse_from(argv);
    let result = match cli.cmd {
        Cmd::Inspect(a) => cli::inspect::run(a),
        Cmd::Synth(a) => cli::synth::run(a),
        Cmd::Check(a) => cli::check::run(a),
        Cmd::Solve(a) => cli::solve::run(a),
        Cmd::Calibrate(a) => cli::calibrate::run(a),
        Cmd::Trial(a) => cli::trial::run(a),
        Cmd::Host(a) => cli::host::run(a),
        Cmd::Report(a) => cli::report::run(a),
    };
    let code = cli::exit_code(&result);
    match result {
        Ok(()) => {}
        Err(e) if code == cli::EXIT_DOES_NOT_FIT => eprintln!("{e:#}"),
        Err(e) => eprintln!("error: {e:#}"),
    }
    std::process::exit(code);
}
