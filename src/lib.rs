//! placer: decide where every tensor of a GGUF model goes when llama.cpp runs it on several GPUs
//! and a CPU, and prove the choice against real llama.cpp.
//!
//! One pass from top to bottom, a module per stage (docs/design.md lists the stages and what each
//! may use; a test keeps every import pointing down):
//! `gguf` (bytes → header) → `anatomy` (header → layers, roles, tensor groups) → `memory`
//! (anatomy + launch command + host → bytes per device) → `solver` (integer program →
//! `Placement`) → `profile` (aggressive / moderate, their report and models.conf sections) →
//! `emit` (a launch as argv text). `logs` reads what llama.cpp printed and `calibrate` fits the
//! constants the models leave open; `fitsim` replays llama.cpp's `--fit` on the memory model (the
//! baseline every profile is priced against).
//!
//! The boundary types, in pipeline order:
//!
//! ```no_run
//! use placer::{Anatomy, Calibration, GgufModel, Host, LaunchConfig, Placement, Prediction};
//! let model: GgufModel = placer::gguf::open(std::path::Path::new("model.gguf"))?;
//! let anatomy: Anatomy = placer::anatomy::from_gguf(&model)?;
//! let host: Host = placer::host::default_host();
//! let launch: LaunchConfig = placer::launch::parse_args(
//!     placer::launch::Tool::Server,
//!     &["-m".into(), "model.gguf".into(), "-c".into(), "32768".into()],
//! )?;
//! let cal = Calibration::shipped();
//! let prediction: Prediction = placer::memory::predict(&anatomy, &launch, &host, &cal)?;
//! println!("{}", prediction.verdict);
//! # let _: Option<Placement> = None;
//! # Ok::<(), anyhow::Error>(())
//! ```

pub use crate::anatomy::Anatomy;
pub use crate::calibration::Calibration;
pub use crate::check::CheckReport;
pub use crate::gguf::GgufModel;
pub use crate::host::Host;
pub use crate::launch::LaunchConfig;
pub use crate::memory::Prediction;
pub use crate::placement::Placement;
pub use crate::profile::{Profile, ProfileKind, SolveReport};
pub use crate::solver::{Solution, SolveRequest};

pub mod anatomy;
pub mod builds;
pub mod calibrate;
pub mod calibration;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod config;
pub mod emit;
pub mod env;
pub mod fitsim;
pub mod fsio;
pub mod gguf;
pub mod host;
pub mod host_model;
pub mod launch;
pub mod llama;
pub mod logs;
pub mod memory;
pub mod modelsconf;
pub mod oracle;
pub mod placement;
pub mod preset;
pub mod process;
pub mod profile;
pub mod remote;
pub mod rpc;
pub mod solver;
pub mod speed;
pub mod synth;
pub mod target;
pub mod trial;
pub mod units;
