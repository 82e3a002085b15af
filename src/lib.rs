//! placer: decide where every tensor of a GGUF model goes when llama.cpp runs it on several GPUs
//! and a CPU, and prove the choice against real llama.cpp.
//!
//! One pass from top to bottom, a module per stage:
//! `gguf` (bytes → header) → `anatomy` (header → layers, roles, tensor groups) → `memory`
//! (anatomy + launch command + host → bytes per device) → `solver` (integer program → `Placement`)
//! → `profile` (aggressive / moderate) → `emit` (flags, `-ot` regexes, models.conf).
//! `logs` reads what llama.cpp printed and `calibrate` fits the constants the models leave open;
//! `fitsim` replays llama.cpp's `--fit` on the memory model (the baseline every profile is priced
//! against).

pub mod anatomy;
pub mod calibrate;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod emit;
pub mod fitsim;
pub mod gguf;
pub mod host;
pub mod launch;
pub mod llama;
pub mod logs;
pub mod memory;
pub mod modelsconf;
pub mod oracle;
pub mod placement;
pub mod profile;
pub mod solver;
pub mod speed;
pub mod synth;
pub mod units;
