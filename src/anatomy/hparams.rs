//! Hyper-parameters from GGUF metadata, with llama.cpp's per-architecture rules.
//!
//! Generic keys follow `src/llama-model.cpp:llama_model_base::load_hparams`; per-architecture
//! rules follow `src/models/<arch>.cpp:load_arch_hparams` and `src/llama-hparams.cpp`
//! (`set_swa_pattern`, `is_recr`, `is_mla`).

use super::{Hparams, Mla, Ssm};
use crate::gguf::{GgufModel, MetaValue, Metadata};
use anyhow::{bail, Context, Result};

/// `LLAMA_MAX_LAYERS` (`src/llama-hparams.h`): llama.cpp asserts `n_layer_all <= 512`.
pub const MAX_LAYERS: u32 = 512;

/// `LLAMA_MAX_EXPERTS` (`src/llama-hparams.h`): `load_hparams` asserts `n_expert <= 1024`.
pub const MAX_EXPERTS: u32 = 1024;

/// Which layers use the sliding window (`load_swa_pattern(ml, n_pattern, dense_first)`).
#[derive(Clone, Copy)]
struct SwaRule {
    n_pattern: u32,
    dense_first: bool,
    /// gemma3 applies the pattern only when `attention.sliding_window` is present and > 0.
    only_if_window: bool,
    /// n_swa when the key is absent (gemma2 hard-codes 4096).
    default_window: u32,
}

/// Which layers carry recurrent state instead of a KV cache.
#[derive(Clone, Copy, PartialEq)]
enum RecurrentRule {
    None,
    /// `llm_arch_is_recurrent` (mamba, mamba2, rwkv*): every layer.
    All,
    /// qwen3next / qwen35 / qwen35moe: `attention.recurrent_layers` if present, else
    /// `(il + 1) % full_attention_interval != 0` (interval default 4) for il < n_layer.
    FullAttentionInterval,
    /// nemotron_h: `il < n_layer && n_head_kv(il) == 0 && n_ff(il) == 0`.
    NemotronH,
}

struct ArchRule {
    name: &'static str,
    swa: Option<SwaRule>,
    recurrent: RecurrentRule,
}

const fn swa(
    n_pattern: u32,
    dense_first: bool,
    only_if_window: bool,
    default_window: u32,
) -> Option<SwaRule> {
    Some(SwaRule {
        n_pattern,
        dense_first,
        only_if_window,
        default_window,
    })
}

/// Architectures whose rules placer implements, each checked in the llama.cpp source
/// (`src/models/<file>.cpp:load_arch_hparams`; arch names from `src/llama-arch.cpp:LLM_ARCH_NAMES`).
const KNOWN: &[ArchRule] = &[
    ArchRule {
        name: "llama",
        swa: None,
        recurrent: RecurrentRule::None,
    }, // llama.cpp
    ArchRule {
        name: "qwen2",
        swa: None,
        recurrent: RecurrentRule::None,
    }, // qwen2.cpp
    ArchRule {
        name: "qwen3",
        swa: None,
        recurrent: RecurrentRule::None,
    }, // qwen3.cpp
    ArchRule {
        name: "qwen3moe",
        swa: None,
        recurrent: RecurrentRule::None,
    }, // qwen3moe.cpp
    ArchRule {
        name: "deepseek2",
        swa: None,
        recurrent: RecurrentRule::None,
    }, // deepseek2.cpp
    ArchRule {
        name: "glm4moe",
        swa: None,
        recurrent: RecurrentRule::None,
    }, // glm4-moe.cpp
    // openai-moe.cpp: load_swa_pattern(ml, 2) → even layers SWA (il % 2 < 1).
    ArchRule {
        name: "gpt-oss",
        swa: swa(2, false, false, 0),
        recurrent: RecurrentRule::None,
    },
    // gemma2.cpp: n_swa = 4096 default, load_swa_pattern(ml, 2).
    ArchRule {
        name: "gemma2",
        swa: swa(2, false, false, 4096),
        recurrent: RecurrentRule::None,
    },
    // gemma3.cpp: if sliding_window > 0, load_swa_pattern(ml, 6): 5 SWA + 1 full.
    ArchRule {
        name: "gemma3",
        swa: swa(6, false, true, 0),
        recurrent: RecurrentRule::None,
    },
    // cohere2.cpp: load_swa_pattern(ml, 4).
    ArchRule {
        name: "cohere2",
        swa: swa(4, false, false, 0),
        recurrent: RecurrentRule::None,
    },
    ArchRule {
        name: "qwen3next",
        swa: None,
        recurrent: RecurrentRule::FullAttentionInterval,
    },
    ArchRule {
        name: "qwen35",
        swa: None,
        recurrent: RecurrentRule::FullAttentionInterval,
    },
    ArchRule {
        name: "qwen35moe",
        swa: None,
        recurrent: RecurrentRule::FullAttentionInterval,
    },
    ArchRule {
        name: "nemotron_h",
        swa: None,
        recurrent: RecurrentRule::NemotronH,
    },
    ArchRule {
        name: "nemotron_h_moe",
        swa: None,
        recurrent: RecurrentRule::NemotronH,
    },
    ArchRule {
        name: "mamba",
        swa: None,
        recurrent: RecurrentRule::All,
    },
    ArchRule {
        name: "mamba2",
        swa: None,
        recurrent: RecurrentRule::All,
    },
];

/// True when placer implements this architecture's rules.
pub fn is_known(arch: &str) -> bool {
    KNOWN.iter().any(|r| r.name == arch)
}

/// Typed access to `<arch>.<suffix>` keys.
struct Keys<'a> {
    md: &'a Metadata,
    arch: &'a str,
}

impl Keys<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.arch)
    }

    fn get(&self, suffix: &str) -> Option<&MetaValue> {
        self.md.get(&self.key(suffix))
    }

    fn u32(&self, suffix: &str) -> Result<Option<u32>> {
        self.get(suffix)
            .map(|v| to_u32(v, &self.key(suffix)))
            .transpose()
    }

    /// `get_key_or_arr`: a scalar repeated over `n` layers, or an array of exactly `n`.
    fn per_layer(&self, suffix: &str, n: u32) -> Result<Option<Vec<u32>>> {
        let key = self.key(suffix);
        match self.get(suffix) {
            None => Ok(None),
            Some(MetaValue::Array(_, items)) => {
                if items.len() != n as usize {
                    bail!(
                        "key {key} has wrong array length; expected {n}, got {}",
                        items.len()
                    );
                }
                items
                    .iter()
                    .map(|v| to_u32(v, &key))
                    .collect::<Result<_>>()
                    .map(Some)
            }
            Some(v) => Ok(Some(vec![to_u32(v, &key)?; n as usize])),
        }
    }

    /// Largest value of a scalar-or-array key (for fields placer keeps as one number).
    fn max_of(&self, suffix: &str, n: u32) -> Result<Option<u32>> {
        Ok(self
            .per_layer(suffix, n)?
            .map(|v| v.into_iter().max().unwrap_or(0)))
    }
}

fn to_u32(v: &MetaValue, key: &str) -> Result<u32> {
    v.as_int()
        .and_then(|i| u32::try_from(i).ok())
        .with_context(|| {
            format!(
                "metadata key {key} should be a non-negative integer below 2^32, found {}",
                crate::units::shown(&format!("{v:?}"), 80)
            )
        })
}

fn to_bools(v: &MetaValue) -> Option<Vec<bool>> {
    match v {
        MetaValue::Array(_, items) => items.iter().map(|x| x.as_int().map(|i| i != 0)).collect(),
        _ => v.as_int().map(|i| vec![i != 0]),
    }
}

/// Everything `Hparams` needs, from metadata and (for fallbacks) tensor shapes.
pub fn from_metadata(model: &GgufModel, arch: &str, warnings: &mut Vec<String>) -> Result<Hparams> {
    let k = Keys {
        md: &model.metadata,
        arch,
    };
    let rule = KNOWN.iter().find(|r| r.name == arch);
    let n_layer = block_count(&k, model, warnings)?;
    let n_nextn = k.u32("nextn_predict_layers")?.unwrap_or(0);
    if n_nextn > n_layer {
        bail!("{arch}.nextn_predict_layers = {n_nextn} exceeds block_count = {n_layer}");
    }
    let n_main = n_layer - n_nextn;
    let n_embd = k.u32("embedding_length")?.unwrap_or(0);
    // load_hparams: n_head_kv defaults to n_head.
    let n_head = k
        .per_layer("attention.head_count", n_layer)?
        .unwrap_or_else(|| vec![0; n_layer as usize]);
    let n_head_kv = k
        .per_layer("attention.head_count_kv", n_layer)?
        .unwrap_or_else(|| n_head.clone());
    let n_ff_raw = k
        .per_layer("feed_forward_length", n_layer)?
        .unwrap_or_else(|| vec![0; n_layer as usize]);
    // n_embd_head_k = n_embd / n_head() unless attention.key_length says otherwise.
    let head0 = n_head.first().copied().unwrap_or(0);
    let default_head = n_embd.checked_div(head0).unwrap_or(0);
    let head_dim_k = k.u32("attention.key_length")?.unwrap_or(default_head);
    let head_dim_v = k.u32("attention.value_length")?.unwrap_or(default_head);
    let n_rot = k.u32("rope.dimension_count")?.unwrap_or(head_dim_k);
    let (n_swa, swa_layers) = swa_layers(&k, rule, n_layer, n_main, warnings)?;
    let recurrent_layers =
        recurrent_layers(&k, rule, n_layer, n_main, &n_head_kv, &n_ff_raw, warnings)?;
    let hp = Hparams {
        n_layer,
        n_nextn,
        n_embd,
        n_vocab: n_vocab(&k, model)?,
        n_ctx_train: k.u32("context_length")?.unwrap_or(0),
        n_head,
        n_head_kv,
        head_dim_k,
        head_dim_v,
        mla: mla(&k, n_rot)?,
        n_swa,
        swa_layers,
        recurrent_layers,
        ssm: ssm(&k)?,
        n_expert: k.u32("expert_count")?.unwrap_or(0),
        n_expert_used: k.max_of("expert_used_count", n_layer)?.unwrap_or(0),
        n_expert_shared: k.u32("expert_shared_count")?.unwrap_or(0),
        n_dense_lead: k.u32("leading_dense_block_count")?.unwrap_or(0),
        n_ff: n_ff_raw,
        n_ff_exp: k
            .max_of("expert_feed_forward_length", n_layer)?
            .unwrap_or(0),
        n_ff_shexp: k.u32("expert_shared_feed_forward_length")?.unwrap_or(0),
    };
    Ok(hp)
}

/// Values llama.cpp refuses, or that leave nothing to place, refused before any sizing
/// (a corrupt header must not "fit" with believable speeds):
/// - `context_length` above int32 (it would wrap when padded to 256 cells);
/// - `embedding_length` absent or 0 (`llama_model_base::load_hparams` reads it as a required
///   key; every weight and cache row is `n_embd` wide);
/// - `expert_count` above `LLAMA_MAX_EXPERTS`, `expert_used_count` above `expert_count`, an
///   expert count with no expert used, experts used without any (the asserts of
///   `llama_model_base::load_hparams`);
/// - `head_count` 0 on every layer of a model with attention (no recurrent layers): then the
///   head size `n_embd / n_head` of `load_hparams` is undefined and no KV is sized;
/// - MLA: the cached row `kv_lora_rank + n_rot` must match the `attn_kv_a_mqa` tensor's second
///   dimension (the shape `src/models/deepseek2.cpp:load_arch_tensors` creates it with;
///   `llama_model_loader::create_tensor` refuses any other), computed without wrapping.
///
/// Called by `anatomy::from_gguf` once the tensors are classified (a tensor outside
/// `block_count` is reported first).
pub fn validate(model: &GgufModel, arch: &str, hp: &Hparams) -> Result<()> {
    let k = Keys {
        md: &model.metadata,
        arch,
    };
    let known = is_known(arch);
    if hp.n_embd == 0 {
        bail!(
            "{arch}.embedding_length is {} : llama.cpp requires it (load_hparams) and every \
             weight row is that wide; the header is corrupt or not a model",
            if k.get("embedding_length").is_some() {
                "0"
            } else {
                "missing"
            }
        );
    }
    // `-c 0` takes n_ctx_train, which llama_context pads to 256 cells in a uint32
    // (`src/llama-context.cpp:llama_context`, `GGML_PAD(cparams.n_ctx, 256)`): keep it within
    // the int32 range `-c` itself has (`common/arg.cpp`, std::stoi) so it cannot wrap to 0.
    if hp.n_ctx_train > i32::MAX as u32 {
        bail!(
            "{arch}.context_length = {} is beyond any context llama.cpp can be given with -c \
             (at most {}); the header is corrupt",
            hp.n_ctx_train,
            i32::MAX
        );
    }
    if hp.n_expert > MAX_EXPERTS {
        bail!(
            "{arch}.expert_count = {} exceeds llama.cpp's LLAMA_MAX_EXPERTS ({MAX_EXPERTS})",
            hp.n_expert
        );
    }
    if hp.n_expert_used > hp.n_expert {
        bail!(
            "{arch}.expert_used_count = {} exceeds expert_count = {}: llama.cpp refuses the file \
             (load_hparams: n_expert_used_max <= n_expert)",
            hp.n_expert_used,
            hp.n_expert
        );
    }
    if hp.n_expert > 0 && hp.n_expert_used == 0 {
        bail!(
            "{arch}.expert_count = {} but expert_used_count is 0 or missing: llama.cpp refuses \
             the file (load_hparams: n_expert_used_max > 0 when n_expert > 0)",
            hp.n_expert
        );
    }
    // An architecture placer does not know may be attention-free: only a head count that is
    // there and 0 is refused for it.
    let has_attention = hp.recurrent_layers.iter().all(|&r| !r);
    let head_key = k.get("attention.head_count").is_some();
    if has_attention && (head_key || known) && hp.n_layer > 0 && hp.n_head.iter().all(|&h| h == 0) {
        bail!(
            "{arch}.attention.head_count is {} on every layer of a model with attention: the \
             head size (n_embd / n_head, load_hparams) and the KV cache are undefined",
            if k.get("attention.head_count").is_some() {
                "0"
            } else {
                "missing"
            }
        );
    }
    if let Some(m) = &hp.mla {
        let width = m.k_width();
        let mqa = model
            .tensors
            .iter()
            .find(|t| t.name.ends_with(".attn_kv_a_mqa.weight"))
            .and_then(|t| t.dims.get(1).copied());
        if let Some(ne1) = mqa {
            if ne1 != width {
                bail!(
                    "{arch}.attention.kv_lora_rank = {} with rope dimension {} gives a cached row of \
                     {width}, but attn_kv_a_mqa is {ne1} wide: llama.cpp refuses the file \
                     (deepseek2.cpp:load_arch_tensors creates it as {{n_embd, kv_lora_rank + n_rot}})",
                    m.kv_lora_rank,
                    m.rope_dim
                );
            }
        }
    }
    Ok(())
}

/// `<arch>.block_count` (1..=LLAMA_MAX_LAYERS); without it, the highest `blk.N` + 1, warned.
fn block_count(k: &Keys, model: &GgufModel, warnings: &mut Vec<String>) -> Result<u32> {
    let n = match k.u32("block_count")? {
        Some(n) => n,
        None => {
            let n = model
                .tensors
                .iter()
                .filter_map(|t| super::roles::block_index(&t.name))
                .max()
                .map_or(0, |m| m.saturating_add(1));
            warnings.push(format!(
                "{}.block_count is missing; counted {n} blocks from the tensor names",
                k.arch
            ));
            n
        }
    };
    if n > MAX_LAYERS {
        bail!(
            "{}.block_count = {n} exceeds llama.cpp's LLAMA_MAX_LAYERS ({MAX_LAYERS})",
            k.arch
        );
    }
    Ok(n)
}

/// `<arch>.vocab_size`, else the tokenizer's token list, else token_embd's second dimension.
fn n_vocab(k: &Keys, model: &GgufModel) -> Result<u32> {
    if let Some(n) = k.u32("vocab_size")? {
        return Ok(n);
    }
    // array_len: the token list may have been skipped by the reader (ReadOptions::SUMMARY).
    if let Some(n) = model.metadata.array_len("tokenizer.ggml.tokens") {
        return Ok(n.min(u32::MAX as u64) as u32);
    }
    let embd = model
        .tensor("token_embd.weight")
        .and_then(|t| t.dims.get(1).copied());
    Ok(embd.map_or(0, |n| n.min(u32::MAX as u64) as u32))
}

/// `is_mla()` (src/llama-hparams.cpp): both `key_length_mla` and `value_length_mla` present.
fn mla(k: &Keys, n_rot: u32) -> Result<Option<Mla>> {
    let kl = k.u32("attention.key_length_mla")?.unwrap_or(0);
    let vl = k.u32("attention.value_length_mla")?.unwrap_or(0);
    if kl == 0 || vl == 0 {
        return Ok(None);
    }
    let kv_lora_rank = k.u32("attention.kv_lora_rank")?.unwrap_or(0);
    Ok(Some(Mla {
        kv_lora_rank,
        rope_dim: n_rot,
    }))
}

fn ssm(k: &Keys) -> Result<Option<Ssm>> {
    let d_conv = k.u32("ssm.conv_kernel")?;
    let d_state = k.u32("ssm.state_size")?;
    if d_conv.is_none() && d_state.is_none() {
        return Ok(None);
    }
    Ok(Some(Ssm {
        d_conv: d_conv.unwrap_or(0),
        d_inner: k.u32("ssm.inner_size")?.unwrap_or(0),
        d_state: d_state.unwrap_or(0),
        n_group: k.u32("ssm.group_count")?.unwrap_or(0),
        dt_rank: k.u32("ssm.time_step_rank")?.unwrap_or(0),
    }))
}

/// (n_swa, is_swa per layer). `load_swa_pattern`: a bool array `sliding_window_pattern` if
/// present, else `set_swa_pattern(n_pattern, dense_first)` with n_pattern from the key or the
/// architecture's default; NextN layers are never SWA.
fn swa_layers(
    k: &Keys,
    rule: Option<&ArchRule>,
    n_layer: u32,
    n_main: u32,
    warnings: &mut Vec<String>,
) -> Result<(u32, Vec<bool>)> {
    let none = (0, vec![false; n_layer as usize]);
    let window = k.u32("attention.sliding_window")?;
    let Some(r) = rule.and_then(|r| r.swa) else {
        if window.is_some_and(|w| w > 0) && rule.is_none() {
            warnings.push(format!(
                "{}.attention.sliding_window is set but placer does not know which layers of '{}' \
                 use it; all layers are counted as full attention (KV over-estimated)",
                k.arch, k.arch
            ));
        }
        return Ok(none);
    };
    let n_swa = window.unwrap_or(r.default_window);
    if r.only_if_window && n_swa == 0 {
        return Ok(none);
    }
    let pattern = k.get("attention.sliding_window_pattern");
    let layers = match pattern {
        Some(v @ MetaValue::Array(..)) => {
            let mut b = to_bools(v)
                .context("attention.sliding_window_pattern must be an array of booleans")?;
            b.resize(n_layer as usize, false);
            b
        }
        other => {
            let n = match other {
                Some(v) => to_u32(v, &k.key("attention.sliding_window_pattern"))?,
                None => r.n_pattern,
            };
            (0..n_layer)
                .map(|il| il < n_main && is_swa(il, n, r.dense_first))
                .collect()
        }
    };
    let n_swa = if layers.iter().any(|&b| b) { n_swa } else { 0 };
    Ok((n_swa, layers))
}

/// `llama_hparams::set_swa_pattern` for one layer.
fn is_swa(il: u32, n_pattern: u32, dense_first: bool) -> bool {
    if n_pattern == 0 {
        return true;
    }
    if dense_first {
        !il.is_multiple_of(n_pattern)
    } else {
        il % n_pattern < n_pattern - 1
    }
}

fn recurrent_layers(
    k: &Keys,
    rule: Option<&ArchRule>,
    n_layer: u32,
    n_main: u32,
    n_head_kv: &[u32],
    n_ff: &[u32],
    warnings: &mut Vec<String>,
) -> Result<Vec<bool>> {
    let n = n_layer as usize;
    let rule = match rule {
        Some(r) => r.recurrent,
        None => {
            if k.get("ssm.state_size").is_some() || k.get("ssm.conv_kernel").is_some() {
                warnings.push(format!(
                    "'{}' has recurrent-state (ssm.*) keys but placer does not know which layers are \
                     recurrent; none are counted (recurrent state not estimated)",
                    k.arch
                ));
            }
            RecurrentRule::None
        }
    };
    Ok(match rule {
        RecurrentRule::None => vec![false; n],
        RecurrentRule::All => vec![true; n],
        RecurrentRule::NemotronH => (0..n)
            .map(|il| (il as u32) < n_main && n_head_kv[il] == 0 && n_ff[il] == 0)
            .collect(),
        RecurrentRule::FullAttentionInterval => match k.get("attention.recurrent_layers") {
            Some(v) => {
                let b = to_bools(v).context("attention.recurrent_layers must be booleans")?;
                match b.len() {
                    1 => vec![b[0]; n],
                    len if len == n => b,
                    len => bail!(
                        "key {} has wrong array length; expected {n}, got {len}",
                        k.key("attention.recurrent_layers")
                    ),
                }
            }
            None => {
                let interval = k.u32("full_attention_interval")?.unwrap_or(4);
                if interval == 0 {
                    bail!("{} must be at least 1", k.key("full_attention_interval"));
                }
                (0..n_layer)
                    .map(|il| il < n_main && !(il + 1).is_multiple_of(interval))
                    .collect()
            }
        },
    })
}
