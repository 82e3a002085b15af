//! Subcommands. Each file owns its clap `Args` and a `run` function.
pub mod calibrate;
pub mod check;
pub mod host;
pub mod inspect;
pub mod report;
pub mod solve;
pub mod synth;
