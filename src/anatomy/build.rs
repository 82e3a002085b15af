//! Building an `Anatomy` from a GGUF header: hyper-parameters (hparams.rs), each tensor's layer
//! and role (roles.rs), and the `TensorGroup`s a placement moves.

use super::{hparams, roles, Anatomy, GroupKind, Hparams, LayerRef, Role, Tensor, TensorGroup};
use crate::gguf::GgufModel;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

pub fn from_gguf(model: &GgufModel) -> Result<Anatomy> {
    let mut warnings = Vec::new();
    let arch = match model.metadata.architecture() {
        Some(a) => a.to_string(),
        None => bail!("the GGUF has no general.architecture key; is it a model file (not a vocab or LoRA file)?"),
    };
    // Every key placer reads is `<arch>.<name>`, and messages name them: an architecture that is
    // not a printable name is no architecture llama.cpp knows ("unknown model architecture",
    // `src/llama-model.cpp:llama_model_create`), and must not put control bytes on the terminal.
    if arch.is_empty() || arch.len() > 64 || arch.chars().any(|c| c.is_control()) {
        bail!(
            "general.architecture {:?} is not an architecture name; the header is corrupt",
            crate::units::shown(&arch, 40)
        );
    }
    let known_arch = hparams::is_known(&arch);
    if !known_arch {
        warnings.push(format!(
            "architecture '{}' is not one placer knows: roles come from tensor names only, \
             sliding-window and recurrent layers are not detected",
            crate::units::shown(&arch, 40)
        ));
    }
    for (i, have, need) in model.incomplete_shards() {
        warnings.push(format!(
            "file {} of the model is {have} bytes but its header declares {need}: header only, \
             size unknown (a truncated download, or a header snapshot without placer.file_size); \
             llama.cpp refuses it (\"tensor data is not within the file bounds\")",
            i + 1
        ));
    }
    let mut hp = hparams::from_metadata(model, &arch, &mut warnings)?;
    let tensors = tensors(model, &hp, &mut warnings)?;
    hparams::validate(model, &arch, &hp)?;
    dense_ffn_widths(&mut hp, &tensors);
    shared_experts(&mut hp, &tensors);
    let groups = groups(&tensors);
    Ok(Anatomy {
        arch,
        known_arch,
        hp,
        tensors,
        groups,
        file_type: model
            .metadata
            .get_u64("general.file_type")
            .map(file_type_name),
        name: model.metadata.get_str("general.name").map(str::to_string),
        shards: model
            .shards
            .iter()
            .map(|s| (s.data_offset, s.file_size))
            .collect(),
        warnings,
    })
}

fn tensors(model: &GgufModel, hp: &Hparams, warnings: &mut Vec<String>) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(model.tensors.len());
    let mut other = Vec::new();
    for t in &model.tensors {
        let (layer, role) = roles::classify(&t.name, hp);
        if let LayerRef::Block(il) = layer {
            if il >= hp.n_layer {
                bail!(
                    "tensor '{}' is in block {il} but block_count is {}",
                    t.name,
                    hp.n_layer
                );
            }
        }
        if role == Role::Other {
            other.push(t.name.as_str());
        }
        if t.size_from_offsets {
            warnings.push(format!(
                "tensor '{}' has ggml type id {} that placer does not know; its size was taken from the file offsets",
                t.name, t.ggml_type.0
            ));
        }
        let shard = model.shards.get(t.shard);
        out.push(Tensor {
            name: t.name.clone(),
            layer,
            role,
            ggml_type: t.ggml_type,
            dims: t.dims.clone(),
            nbytes: t.nbytes,
            shard: t.shard,
            file_offset: shard.map_or(t.offset, |s| s.data_offset.saturating_add(t.offset)),
        });
    }
    if !other.is_empty() {
        let shown: Vec<&str> = other.iter().take(5).copied().collect();
        warnings.push(format!(
            "{} tensor(s) with names placer does not recognise were kept with their layer as 'other': {}{}",
            other.len(),
            shown.join(", "),
            if other.len() > shown.len() { ", …" } else { "" }
        ));
    }
    Ok(out)
}

/// `Hparams::n_ff` is the dense FFN width of layers that have one and 0 elsewhere: a MoE GGUF's
/// `feed_forward_length` describes no tensor on its expert layers. Where the key is missing, the
/// width is read from `ffn_up`/`ffn_gate` (`{n_embd, n_ff}`).
fn dense_ffn_widths(hp: &mut Hparams, tensors: &[Tensor]) {
    let mut width: BTreeMap<u32, u64> = BTreeMap::new();
    for t in tensors.iter().filter(|t| t.role == Role::DenseFfn) {
        if let (LayerRef::Block(il), true) = (
            t.layer,
            t.name.contains("ffn_up") || t.name.contains("ffn_gate"),
        ) {
            width.insert(il, t.dims.get(1).copied().unwrap_or(0));
        }
    }
    for (il, n_ff) in hp.n_ff.iter_mut().enumerate() {
        match width.get(&(il as u32)) {
            None => *n_ff = 0,
            Some(&w) if *n_ff == 0 => *n_ff = w.min(u32::MAX as u64) as u32,
            Some(_) => {}
        }
    }
}

/// A model with `ffn_*_shexp` tensors but no `expert_shared_count` key (qwen2moe, qwen3next)
/// builds one shared-expert FFN per layer; its width is ffn_up_shexp's second dimension.
fn shared_experts(hp: &mut Hparams, tensors: &[Tensor]) {
    let up = tensors
        .iter()
        .find(|t| t.role == Role::SharedExpert && t.name.contains("ffn_up_shexp"));
    let Some(up) = up else { return };
    if hp.n_expert_shared == 0 {
        hp.n_expert_shared = 1;
    }
    if hp.n_ff_shexp == 0 {
        hp.n_ff_shexp = up.dims.get(1).copied().unwrap_or(0).min(u32::MAX as u64) as u32;
    }
}

/// One group per (layer, kind), ordered Input, blocks 0.., Output; tensors in file order.
fn groups(tensors: &[Tensor]) -> Vec<TensorGroup> {
    let mut by_key: BTreeMap<(LayerRef, GroupKind), TensorGroup> = BTreeMap::new();
    for (i, t) in tensors.iter().enumerate() {
        let kind = roles::group_kind(t.layer, t.role);
        let g = by_key
            .entry((t.layer, kind))
            .or_insert_with(|| TensorGroup {
                layer: t.layer,
                kind,
                tensors: Vec::new(),
                bytes: 0,
            });
        g.tensors.push(i);
        g.bytes += t.nbytes;
    }
    by_key.into_values().collect()
}

/// `llama_model_ftype_name` labels for `general.file_type` (`include/llama.h: enum llama_ftype`).
pub fn file_type_name(ftype: u64) -> String {
    let name = match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        41 => "Q2_0",
        1024 => "GUESSED",
        _ => return format!("ftype {ftype}"),
    };
    name.to_string()
}
