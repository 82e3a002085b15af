//! Byte units. llama.cpp prints sizes as bytes / 1024 / 1024 with two decimals ("MiB").

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;

/// Bytes → MiB as llama.cpp prints them.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// MiB (possibly fractional) → bytes, rounded to the nearest byte.
pub fn from_mib(mib: f64) -> u64 {
    (mib * MIB as f64).round().max(0.0) as u64
}

/// Round `n` up to a multiple of `align` (`GGML_PAD`). `align` must be non-zero.
pub fn pad(n: u64, align: u64) -> u64 {
    n.div_ceil(align) * align
}

/// "659 t/s", or "not priced (no prefill constants in the calibration)".
pub fn tps_text(t: Option<f64>) -> String {
    match t {
        Some(v) => format!("{v:.0} t/s"),
        None => "not priced (no prefill constants in the calibration)".into(),
    }
}
