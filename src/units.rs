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

/// A string read from a file (a GGUF key, a model name, a host file's GPU name) as it may appear
/// in a message: control and other non-printing characters escaped (`\u{1b}`, `\0`, `\n`), at
/// most `max` characters kept and the rest counted, so a corrupt file cannot put megabytes of
/// binary on the terminal.
pub fn shown(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, (i, c)) in s.char_indices().enumerate() {
        if n == max {
            out.push_str(&format!("…(+{} bytes)", s.len() - i));
            return out;
        }
        if c.is_control() || c == '\u{fffd}' || c == '\u{feff}' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Raw bytes (a file's magic, a header that is not text) as text and hex: `"GGUL" (47 47 55 4c)`.
pub fn shown_bytes(b: &[u8]) -> String {
    let text: String = b
        .iter()
        .map(|&x| {
            if x.is_ascii_graphic() || x == b' ' {
                (x as char).to_string()
            } else {
                format!("\\x{x:02x}")
            }
        })
        .collect();
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("\"{text}\" ({})", hex.join(" "))
}
