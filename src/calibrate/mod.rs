//! Calibration: fitting the constants the memory and speed models leave open from measured runs
//! (the types live in `crate::calibration`).

pub use crate::calibration::*;

pub mod fit;
pub mod learn;
pub mod records;
pub mod report;
pub mod run;
