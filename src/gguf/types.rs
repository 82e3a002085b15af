//! The ggml tensor type table of the llama.cpp version placer targets
//! (`ggml/include/ggml.h: enum ggml_type`, block sizes from `ggml/src/ggml-common.h`).

use serde::{Deserialize, Serialize};

/// A ggml tensor type id as stored in a GGUF tensor info. Ids this table does not know are kept
/// raw so that a newer file can still be sized from its offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct GgmlType(pub u32);

/// (id, name as llama.cpp prints it, elements per block, bytes per block).
/// Removed ids (4, 5, 31–33, 36–38) have block size 0: llama.cpp refuses them.
const TABLE: &[(u32, &str, u64, u64)] = &[
    (0, "f32", 1, 4),
    (1, "f16", 1, 2),
    (2, "q4_0", 32, 18),
    (3, "q4_1", 32, 20),
    (6, "q5_0", 32, 22),
    (7, "q5_1", 32, 24),
    (8, "q8_0", 32, 34),
    (9, "q8_1", 32, 36),
    (10, "q2_K", 256, 84),
    (11, "q3_K", 256, 110),
    (12, "q4_K", 256, 144),
    (13, "q5_K", 256, 176),
    (14, "q6_K", 256, 210),
    (15, "q8_K", 256, 292),
    (16, "iq2_xxs", 256, 66),
    (17, "iq2_xs", 256, 74),
    (18, "iq3_xxs", 256, 98),
    (19, "iq1_s", 256, 50),
    (20, "iq4_nl", 32, 18),
    (21, "iq3_s", 256, 110),
    (22, "iq2_s", 256, 82),
    (23, "iq4_xs", 256, 136),
    (24, "i8", 1, 1),
    (25, "i16", 1, 2),
    (26, "i32", 1, 4),
    (27, "i64", 1, 8),
    (28, "f64", 1, 8),
    (29, "iq1_m", 256, 56),
    (30, "bf16", 1, 2),
    (34, "tq1_0", 256, 54),
    (35, "tq2_0", 256, 66),
    (39, "mxfp4", 32, 17),
    (40, "nvfp4", 64, 36),
    (41, "q1_0", 128, 18),
    (42, "q2_0", 64, 18),
];

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q4_0: GgmlType = GgmlType(2);
    pub const Q4_1: GgmlType = GgmlType(3);
    pub const Q5_0: GgmlType = GgmlType(6);
    pub const Q5_1: GgmlType = GgmlType(7);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const Q2_K: GgmlType = GgmlType(10);
    pub const Q3_K: GgmlType = GgmlType(11);
    pub const Q4_K: GgmlType = GgmlType(12);
    pub const Q5_K: GgmlType = GgmlType(13);
    pub const Q6_K: GgmlType = GgmlType(14);
    pub const IQ4_NL: GgmlType = GgmlType(20);
    pub const IQ4_XS: GgmlType = GgmlType(23);
    pub const BF16: GgmlType = GgmlType(30);
    pub const MXFP4: GgmlType = GgmlType(39);

    fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        TABLE.iter().find(|e| e.0 == self.0)
    }

    /// Known to this table (and not a removed id).
    pub fn is_known(self) -> bool {
        self.entry().is_some()
    }

    pub fn name(self) -> String {
        match self.entry() {
            Some(e) => e.1.to_string(),
            None => format!("type{}", self.0),
        }
    }

    /// Parse a name as llama.cpp prints it or as `-ctk` accepts it (case-insensitive).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TABLE
            .iter()
            .find(|e| e.1.eq_ignore_ascii_case(name))
            .map(|e| GgmlType(e.0))
    }

    /// Elements per block (`ggml_blck_size`); `None` for unknown ids.
    pub fn block_size(self) -> Option<u64> {
        self.entry().map(|e| e.2)
    }

    /// Bytes per block (`ggml_type_size`); `None` for unknown ids.
    pub fn type_size(self) -> Option<u64> {
        self.entry().map(|e| e.3)
    }

    /// Block-quantized (block size > 1): gets CUDA's MATRIX_ROW_PADDING
    /// (`ggml_is_quantized`).
    pub fn is_quantized(self) -> bool {
        self.block_size().is_some_and(|b| b > 1)
    }

    /// `ggml_row_size(type, ne0)`; `None` if the type is unknown or `ne0` is not a whole number
    /// of blocks.
    pub fn row_size(self, ne0: u64) -> Option<u64> {
        let (b, t) = (self.block_size()?, self.type_size()?);
        if !ne0.is_multiple_of(b) {
            return None;
        }
        (ne0 / b).checked_mul(t)
    }

    /// `ggml_nbytes` of a contiguous tensor with these dims; `None` on unknown type, bad row
    /// length or overflow.
    pub fn nbytes(self, dims: &[u64]) -> Option<u64> {
        let row = self.row_size(*dims.first().unwrap_or(&1))?;
        dims.iter()
            .skip(1)
            .try_fold(row, |acc, &d| acc.checked_mul(d))
    }

    /// All types this table knows.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|e| GgmlType(e.0))
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
