//! `placer inspect MODEL [--json]`: what the architecture is and what every tensor costs, from
//! the GGUF header alone.

use crate::anatomy::kv::{kv_bytes_per_token, n_embd_r, n_embd_s, rs_bytes_per_seq};
use crate::anatomy::{from_gguf, Anatomy, GroupKind, Hparams, LayerRef, Role};
use crate::gguf::{GgmlType, GgufModel};
use crate::units::mib;
use anyhow::{ensure, Result};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A .gguf file (any shard of a split model), a header snapshot, a catalog id, a URL, or
    /// `hf:user/repo[:QUANT]` (only the header is fetched).
    pub model: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Catalog directory (default: $PLACER_MODELS, else ./models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// A remote MODEL (URL, `hf:…`) from the header caches only (docs/remote.md).
    #[arg(long)]
    pub offline: bool,
}

pub fn run(args: Args) -> Result<()> {
    let model = crate::catalog::load_model_with(
        &args.model,
        args.models_dir.as_deref(),
        &super::common::remote_options(args.offline),
    )?;
    let report = report(&model)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// Tokens of context per KV column ("KV bytes per 1K tokens").
const KV_TOKENS: u64 = 1024;

/// Everything `inspect` shows; `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: Option<String>,
    pub arch: String,
    pub known_arch: bool,
    pub file_type: Option<String>,
    pub hparams: Hparams,
    pub shards: Vec<ShardRow>,
    pub n_tensors: usize,
    pub layers: Vec<LayerRow>,
    pub roles: Vec<RoleRow>,
    /// Σ bytes over the rows of `layers` (= Σ over `roles`).
    pub total_bytes: u64,
    /// Σ ggml_nbytes of the file's tensor infos (what llama.cpp prints as "file size").
    /// A file shorter than the tensor data its header declares, with no recorded real size
    /// (`GgufModel::incomplete_shards`): `file_tensor_bytes` is what the header declares.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub header_only: bool,
    pub file_tensor_bytes: u64,
    /// Σ over layers of KV bytes per 1024 tokens at f16 K and V (one sequence).
    pub kv_f16_per_1k_tokens: u64,
    /// Σ over layers of recurrent-state bytes per sequence.
    pub rs_per_seq: u64,
    /// No `output.weight`: llama.cpp duplicates token_embd as the output head
    /// (`TENSOR_DUPLICATED`), so its bytes count twice in memory (input on CPU, output on the
    /// output device). The file holds it once, and so do the totals here.
    pub output_tied: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardRow {
    pub data_offset: u64,
    /// Bytes on disk of the file that was read.
    pub file_size: Option<u64>,
    /// Size of the real file when this one is a header-only snapshot (`placer.file_size`).
    pub real_file_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    pub layer: LayerRef,
    /// "full", "swa", "recurrent", "nextn", "mlp" (no attention, no state), or "" off-block.
    pub kind: &'static str,
    pub core: u64,
    pub dense_ffn: u64,
    pub shared_experts: u64,
    /// Routed experts: gate + up + down + fused gate_up.
    pub experts: u64,
    pub io: u64,
    pub total: u64,
    pub kv_f16_per_1k_tokens: u64,
    pub rs_per_seq: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleRow {
    pub role: Role,
    pub tensors: usize,
    pub bytes: u64,
}

/// Build the report for a model header.
pub fn report(model: &GgufModel) -> Result<Report> {
    let a = from_gguf(model)?;
    let layers = layer_rows(&a);
    let roles = role_rows(&a);
    let total_bytes: u64 = layers.iter().map(|r| r.total).sum();
    // Every tensor belongs to exactly one row: the table accounts for the whole file.
    ensure!(
        total_bytes == model.tensor_bytes() && roles.iter().map(|r| r.bytes).sum::<u64>() == total_bytes,
        "internal error: per-layer totals ({total_bytes} B) differ from the file's tensor data ({} B)",
        model.tensor_bytes()
    );
    Ok(Report {
        name: a.name.clone(),
        arch: a.arch.clone(),
        known_arch: a.known_arch,
        file_type: a.file_type.clone(),
        hparams: a.hp.clone(),
        shards: model
            .shards
            .iter()
            .map(|s| ShardRow {
                data_offset: s.data_offset,
                file_size: s.file_size,
                real_file_size: None,
            })
            .enumerate()
            .map(|(i, mut r)| {
                if i == 0 {
                    r.real_file_size = model.metadata.get_u64("placer.file_size");
                }
                r
            })
            .collect(),
        n_tensors: a.tensors.len(),
        kv_f16_per_1k_tokens: layers.iter().map(|r| r.kv_f16_per_1k_tokens).sum(),
        rs_per_seq: layers.iter().map(|r| r.rs_per_seq).sum(),
        output_tied: a.tensors.iter().all(|t| t.role != Role::Output),
        layers,
        roles,
        total_bytes,
        file_tensor_bytes: model.tensor_bytes(),
        header_only: !model.incomplete_shards().is_empty(),
        warnings: a.warnings.clone(),
    })
}

fn layer_kind(hp: &Hparams, il: u32) -> &'static str {
    let flag = |v: &[bool]| v.get(il as usize).copied().unwrap_or(false);
    if hp.n_nextn > 0 && il >= hp.n_layer - hp.n_nextn {
        "nextn"
    } else if flag(&hp.recurrent_layers) {
        "recurrent"
    } else if hp.n_head_kv.get(il as usize).copied().unwrap_or(0) == 0 {
        "mlp"
    } else if flag(&hp.swa_layers) {
        "swa"
    } else {
        "full"
    }
}

fn layer_rows(a: &Anatomy) -> Vec<LayerRow> {
    let mut refs = vec![LayerRef::Input];
    refs.extend((0..a.hp.n_layer).map(LayerRef::Block));
    refs.push(LayerRef::Output);
    refs.into_iter()
        .map(|layer| {
            let mut row = LayerRow {
                layer,
                kind: "",
                core: 0,
                dense_ffn: 0,
                shared_experts: 0,
                experts: 0,
                io: 0,
                total: 0,
                kv_f16_per_1k_tokens: 0,
                rs_per_seq: 0,
            };
            for (_, g) in a.groups_of(layer) {
                let slot = match g.kind {
                    GroupKind::LayerCore => &mut row.core,
                    GroupKind::DenseFfn => &mut row.dense_ffn,
                    GroupKind::SharedExperts => &mut row.shared_experts,
                    k if k.is_routed_experts() => &mut row.experts,
                    _ => &mut row.io,
                };
                *slot += g.bytes;
                row.total += g.bytes;
            }
            if let LayerRef::Block(il) = layer {
                row.kind = layer_kind(&a.hp, il);
                row.kv_f16_per_1k_tokens =
                    KV_TOKENS * kv_bytes_per_token(&a.hp, il, GgmlType::F16, GgmlType::F16);
                row.rs_per_seq = rs_bytes_per_seq(&a.hp, il);
            }
            row
        })
        .collect()
}

const ROLE_ORDER: &[Role] = &[
    Role::TokenEmbd,
    Role::Attention,
    Role::Norm,
    Role::Router,
    Role::Recurrent,
    Role::DenseFfn,
    Role::SharedExpert,
    Role::ExpertsGate,
    Role::ExpertsUp,
    Role::ExpertsDown,
    Role::ExpertsGateUp,
    Role::NextN,
    Role::OutputNorm,
    Role::Output,
    Role::Other,
];

fn role_rows(a: &Anatomy) -> Vec<RoleRow> {
    ROLE_ORDER
        .iter()
        .map(|&role| {
            let ts = a.tensors.iter().filter(|t| t.role == role);
            RoleRow {
                role,
                tensors: ts.clone().count(),
                bytes: ts.map(|t| t.nbytes).sum(),
            }
        })
        .filter(|r| r.tensors > 0)
        .collect()
}

/// "0-4,6-10,12" for the layers where `v` is true.
pub fn layer_ranges(v: &[bool]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        if !v[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < v.len() && v[i + 1] {
            i += 1;
        }
        out.push(if start == i {
            start.to_string()
        } else {
            format!("{start}-{i}")
        });
        i += 1;
    }
    out.join(",")
}

/// "4" when all layers agree, else "min-max (per layer)".
fn per_layer(v: &[u32]) -> String {
    match (v.iter().min(), v.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi} (per layer)"),
        _ => "0".into(),
    }
}

fn m(bytes: u64) -> String {
    format!("{:.2}", mib(bytes))
}

/// Human-readable tables (what `placer inspect` prints).
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    summary(&mut s, r);
    layer_table(&mut s, r);
    role_table(&mut s, r);
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

fn summary(s: &mut String, r: &Report) {
    let hp = &r.hparams;
    let w = |s: &mut String, k: &str, v: String| {
        let _ = writeln!(s, "{k:<11}{v}");
    };
    let label = [
        r.file_type.clone(),
        (!r.known_arch).then(|| "unknown architecture".to_string()),
    ];
    let label: Vec<String> = label.into_iter().flatten().collect();
    w(
        s,
        "model",
        format!(
            "{} ({}{})",
            r.name.as_deref().unwrap_or("?"),
            r.arch,
            label.iter().map(|l| format!(", {l}")).collect::<String>()
        ),
    );
    w(
        s,
        "tensors",
        format!(
            "{} in {} file(s), {} MiB of tensor data{}",
            r.n_tensors,
            r.shards.len(),
            m(r.file_tensor_bytes),
            if r.header_only {
                " declared (header only: size unknown; the file holds less)"
            } else {
                ""
            }
        ),
    );
    if let Some(real) = r.shards.first().and_then(|s| s.real_file_size) {
        w(
            s,
            "snapshot",
            format!("header-only; the real file is {real} bytes"),
        );
    }
    w(
        s,
        "layers",
        format!(
            "{} ({} NextN)   embd {}   vocab {}   train ctx {}",
            hp.n_layer, hp.n_nextn, hp.n_embd, hp.n_vocab, hp.n_ctx_train
        ),
    );
    w(
        s,
        "attention",
        format!(
            "heads {}, KV heads {}, head dim K {} / V {}",
            per_layer(&hp.n_head),
            per_layer(&hp.n_head_kv),
            hp.head_dim_k,
            hp.head_dim_v
        ),
    );
    if let Some(mla) = hp.mla {
        w(
            s,
            "MLA",
            format!(
                "kv_lora_rank {}, rope dim {} (cache holds K only)",
                mla.kv_lora_rank, mla.rope_dim
            ),
        );
    }
    if hp.swa_layers.iter().any(|&b| b) {
        let n = hp.swa_layers.iter().filter(|&&b| b).count();
        w(
            s,
            "SWA",
            format!(
                "window {} on {n} of {} layers: {}",
                hp.n_swa,
                hp.n_layer,
                layer_ranges(&hp.swa_layers)
            ),
        );
    }
    if hp.recurrent_layers.iter().any(|&b| b) {
        let n = hp.recurrent_layers.iter().filter(|&&b| b).count();
        w(
            s,
            "recurrent",
            format!(
                "{n} of {} layers: {}",
                hp.n_layer,
                layer_ranges(&hp.recurrent_layers)
            ),
        );
        if let Some(ssm) = hp.ssm {
            w(s, "", format!(
                "conv {} inner {} state {} groups {} dt_rank {} -> {} floats conv + {} floats state per sequence and layer",
                ssm.d_conv, ssm.d_inner, ssm.d_state, ssm.n_group, ssm.dt_rank, n_embd_r(hp), n_embd_s(hp)
            ));
        }
    }
    if hp.n_expert > 0 {
        w(
            s,
            "experts",
            format!(
                "{} used of {}, {} shared; expert FFN {}, shared FFN {}; dense lead layers {}",
                hp.n_expert_used,
                hp.n_expert,
                hp.n_expert_shared,
                hp.n_ff_exp,
                hp.n_ff_shexp,
                hp.n_dense_lead
            ),
        );
    }
    if r.output_tied {
        let embd = r
            .roles
            .iter()
            .find(|x| x.role == Role::TokenEmbd)
            .map_or(0, |x| x.bytes);
        w(s, "output", format!("tied: no output.weight, llama.cpp loads token_embd a second time as the output head (+{} MiB)", m(embd)));
    }
    let dense: Vec<bool> = hp.n_ff.iter().map(|&f| f > 0).collect();
    if dense.iter().any(|&b| b) {
        let widths: Vec<u32> = hp.n_ff.iter().copied().filter(|&f| f > 0).collect();
        w(
            s,
            "dense FFN",
            format!("{} on layers {}", per_layer(&widths), layer_ranges(&dense)),
        );
    }
    s.push('\n');
}

fn layer_table(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "{:<7} {:<9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "layer",
        "kind",
        "core MiB",
        "dense MiB",
        "shexp MiB",
        "exps MiB",
        "total MiB",
        "KV/1K f16",
        "RS/seq"
    );
    for row in &r.layers {
        let name = match row.layer {
            LayerRef::Input => "input".to_string(),
            LayerRef::Block(il) => il.to_string(),
            LayerRef::Output => "output".to_string(),
        };
        let core = if matches!(row.layer, LayerRef::Block(_)) {
            row.core
        } else {
            row.io
        };
        let _ = writeln!(
            s,
            "{:<7} {:<9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10}",
            name,
            row.kind,
            m(core),
            m(row.dense_ffn),
            m(row.shared_experts),
            m(row.experts),
            m(row.total),
            m(row.kv_f16_per_1k_tokens),
            m(row.rs_per_seq)
        );
    }
    let sum = |f: fn(&LayerRow) -> u64| r.layers.iter().map(f).sum::<u64>();
    let _ = writeln!(
        s,
        "{:<7} {:<9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "total",
        "",
        m(sum(|r| r.core + r.io)),
        m(sum(|r| r.dense_ffn)),
        m(sum(|r| r.shared_experts)),
        m(sum(|r| r.experts)),
        m(r.total_bytes),
        m(r.kv_f16_per_1k_tokens),
        m(r.rs_per_seq)
    );
    let _ = writeln!(
        s,
        "(KV/1K f16: K+V bytes per 1024 cells of context at f16, one sequence; swa layers keep at most \
         window + ubatch cells. RS/seq: recurrent state per sequence, F32, independent of context.)\n"
    );
}

fn role_table(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "{:<14} {:>8} {:>12} {:>7}",
        "role", "tensors", "MiB", "share"
    );
    for row in &r.roles {
        let share = if r.total_bytes > 0 {
            100.0 * row.bytes as f64 / r.total_bytes as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "{:<14} {:>8} {:>12} {:>6.1}%",
            format!("{:?}", row.role),
            row.tensors,
            m(row.bytes),
            share
        );
    }
    let _ = writeln!(
        s,
        "{:<14} {:>8} {:>12} {:>6.1}%",
        "total",
        r.n_tensors,
        m(r.total_bytes),
        100.0
    );
    let _ = writeln!(
        s,
        "(= {} bytes, the file's tensor data)",
        r.file_tensor_bytes
    );
}
