//! Subcommands. Each file owns its clap `Args` and a `run` function; the options the planning
//! commands share are one flattened [`common::CommonArgs`].
//!
//! Exit codes, for scripts (`placer check … && llama-server …`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done; for `check`, the command fits; for `solve`, at least one profile fits |
//! | 1 | answered "does not fit": `check`'s verdict is an OOM, or `solve` found no profile that fits |
//! | 2 | bad input or environment (a file that does not read, an unknown flag, …): the message says what to do |
//! | 101 | internal error (a panic: a bug in placer; please report it) |

pub mod calibrate;
pub mod check;
pub mod common;
pub mod host;
pub mod inspect;
pub mod report;
pub mod solve;
pub mod synth;
pub mod trial;

/// Exit code: done (and it fits).
pub const EXIT_OK: i32 = 0;
/// Exit code: the answer is "does not fit".
pub const EXIT_DOES_NOT_FIT: i32 = 1;
/// Exit code: bad input or environment.
pub const EXIT_BAD_INPUT: i32 = 2;

/// A command that ran to its answer, and the answer is "does not fit" (exit code 1). The report
/// was already printed; the message is one closing line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DoesNotFit(pub String);

/// The exit code and the message for a command's result.
pub fn exit_code(result: &anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => EXIT_OK,
        Err(e) if e.downcast_ref::<DoesNotFit>().is_some() => EXIT_DOES_NOT_FIT,
        Err(_) => EXIT_BAD_INPUT,
    }
}
