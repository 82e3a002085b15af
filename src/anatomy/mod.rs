//! Model anatomy: from a GGUF header, the architecture's hyper-parameters and every tensor
//! assigned to a layer, a role and a `TensorGroup` (the unit a placement decision moves).

mod build;
mod hparams;
pub mod kv;
mod roles;

use crate::gguf::GgmlType;
use serde::{Deserialize, Serialize};

pub use build::{file_type_name, from_gguf};
pub use hparams::MAX_LAYERS;

/// Which llama.cpp "layer" a tensor belongs to for `-ngl` purposes (`llm_tensor_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LayerRef {
    /// token_embd & co: always on the CPU in llama.cpp.
    Input,
    /// blk.N
    Block(u32),
    /// output, output_norm: the "output layer", offloaded first by -ngl.
    Output,
}

/// What a tensor does. Names come from `src/llama-arch.cpp: LLM_TENSOR_NAMES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    TokenEmbd,
    Output,
    OutputNorm,
    /// Attention projections, attention norms, sinks, MLA a/b projections, rope factors.
    Attention,
    Norm,
    /// ffn_gate_inp, exp_probs_b.
    Router,
    DenseFfn,
    ExpertsGate,
    ExpertsUp,
    ExpertsDown,
    /// Fused `ffn_gate_up_exps`.
    ExpertsGateUp,
    SharedExpert,
    /// Recurrent-state weights (ssm_*, Gated DeltaNet, Mamba-2).
    Recurrent,
    /// NextN / MTP block tensors: skipped by llama.cpp unless MTP is requested.
    NextN,
    Other,
}

/// The unit a placement moves: everything of a layer that must stay with the layer (its
/// attention, norms, router, recurrent weights, its KV), or a part that may go elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GroupKind {
    Input,
    LayerCore,
    DenseFfn,
    SharedExperts,
    ExpertsGate,
    ExpertsUp,
    ExpertsDown,
    ExpertsGateUp,
    Output,
}

impl GroupKind {
    /// Routed experts: read with probability ≈ n_expert_used / n_expert per token.
    pub fn is_routed_experts(self) -> bool {
        matches!(
            self,
            GroupKind::ExpertsGate
                | GroupKind::ExpertsUp
                | GroupKind::ExpertsDown
                | GroupKind::ExpertsGateUp
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub name: String,
    pub layer: LayerRef,
    pub role: Role,
    pub ggml_type: GgmlType,
    pub dims: Vec<u64>,
    pub nbytes: u64,
    /// Index of the shard (split file) holding it.
    pub shard: usize,
    /// Absolute byte offset of the tensor's data in its shard (for CPU_Mapped spans).
    pub file_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorGroup {
    pub layer: LayerRef,
    pub kind: GroupKind,
    /// Indices into `Anatomy::tensors`.
    pub tensors: Vec<usize>,
    pub bytes: u64,
}

/// Multi-head latent attention (deepseek2 family): the cache stores only the latent + rope part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mla {
    pub kv_lora_rank: u32,
    pub rope_dim: u32,
}

impl Mla {
    /// The cached K row, `kv_lora_rank + n_rot`, in 64 bits: two u32 keys near 2^32 must not
    /// wrap into a small cache.
    pub fn k_width(&self) -> u64 {
        self.kv_lora_rank as u64 + self.rope_dim as u64
    }
}

/// Recurrent-state dimensions (Mamba-2, Gated DeltaNet): see `src/llama-hparams.cpp`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ssm {
    pub d_conv: u32,
    pub d_inner: u32,
    pub d_state: u32,
    pub n_group: u32,
    pub dt_rank: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hparams {
    /// `<arch>.block_count` (includes NextN blocks, like llama.cpp's n_layer_all).
    pub n_layer: u32,
    /// `<arch>.nextn_predict_layers` (the last blocks).
    pub n_nextn: u32,
    pub n_embd: u32,
    pub n_vocab: u32,
    pub n_ctx_train: u32,
    /// Per layer (arrays in GGUF are expanded; a scalar is repeated).
    pub n_head: Vec<u32>,
    pub n_head_kv: Vec<u32>,
    pub head_dim_k: u32,
    pub head_dim_v: u32,
    pub mla: Option<Mla>,
    /// Sliding-window size, and which layers use it.
    pub n_swa: u32,
    pub swa_layers: Vec<bool>,
    /// Layers with recurrent state instead of a KV cache.
    pub recurrent_layers: Vec<bool>,
    pub ssm: Option<Ssm>,
    pub n_expert: u32,
    pub n_expert_used: u32,
    pub n_expert_shared: u32,
    /// deepseek2 `leading_dense_block_count`.
    pub n_dense_lead: u32,
    /// Dense FFN width per layer (0 where the layer has none).
    pub n_ff: Vec<u32>,
    pub n_ff_exp: u32,
    pub n_ff_shexp: u32,
}

impl Hparams {
    /// Layers that own a KV cache (not recurrent, not NextN).
    pub fn has_kv(&self, il: u32) -> bool {
        il < self.n_layer - self.n_nextn
            && !self
                .recurrent_layers
                .get(il as usize)
                .copied()
                .unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anatomy {
    pub arch: String,
    /// False when placer does not know the architecture: generic roles from names.
    pub known_arch: bool,
    pub hp: Hparams,
    pub tensors: Vec<Tensor>,
    pub groups: Vec<TensorGroup>,
    /// `general.file_type` label, name, etc. for display.
    pub file_type: Option<String>,
    pub name: Option<String>,
    /// Per shard: (data section offset, file size when known).
    pub shards: Vec<(u64, Option<u64>)>,
    pub warnings: Vec<String>,
}

impl Anatomy {
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.nbytes).sum()
    }
    /// Number of repeating layers llama.cpp counts for -ngl (`n_layer_all`).
    pub fn n_layer(&self) -> u32 {
        self.hp.n_layer
    }
    pub fn groups_of(&self, layer: LayerRef) -> impl Iterator<Item = (usize, &TensorGroup)> {
        self.groups
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.layer == layer)
    }
}
