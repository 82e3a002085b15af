//! llama.cpp's placement rules: which device every tensor, every layer and every layer's KV
//! lands on for a launch command. Each rule cites the function of the reference tree
//! (`crate::llama::REFERENCE_SOURCE`) it reproduces.

use super::Resolved;
use crate::anatomy::{Anatomy, LayerRef, Role};
use crate::host::{DeviceId, Host};
use crate::launch::{GpuLayers, LaunchConfig, Override, SplitMode};
use regex::Regex;
use std::cell::RefCell;
use std::collections::HashMap;

/// `-ot` rules compiled once: (regex, target device) in command-line order.
#[derive(Debug, Clone)]
pub struct OverrideSet {
    rules: Vec<(Regex, DeviceId)>,
}

thread_local! {
    /// Compiled patterns by source text: the solver predicts thousands of candidate launches
    /// whose `-ot` lists share most patterns; compiling each once keeps `predict` under 1 ms.
    static REGEX_CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

fn compile_cached(pattern: &str) -> anyhow::Result<Regex> {
    REGEX_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(r) = cache.get(pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(pattern).map_err(|e| {
            anyhow::anyhow!(
                "-ot regex {pattern:?} does not compile: {e}\n(llama.cpp uses std::regex ECMAScript; \
                 placer uses Rust's regex crate, which has no look-around or back-references)"
            )
        })?;
        if cache.len() > 8192 {
            cache.clear();
        }
        cache.insert(pattern.to_string(), r.clone());
        Ok(r)
    })
}

/// A buffer-type name as `-ot` accepts it (`common/arg.cpp: parse_tensor_buffer_overrides`:
/// the *default* buffer type of a device: `CPU`, `CUDA0`, `CUDA1`…, `RPC0[host:port]` for an RPC
/// device (`ggml-rpc.cpp: ggml_backend_rpc_buffer_type`); `CUDA_Host` is refused).
pub fn parse_buft(name: &str, host: &Host) -> anyhow::Result<DeviceId> {
    if name == "CPU" {
        return Ok(DeviceId::Cpu);
    }
    if let Some(d) = host
        .devices()
        .into_iter()
        .find(|&d| host.buft_name(d) == name)
    {
        return Ok(d);
    }
    let available: Vec<String> = host.devices().iter().map(|&d| host.buft_name(d)).collect();
    anyhow::bail!(
        "unknown buffer type {name:?} in -ot (llama.cpp aborts with \"unknown buffer type\"); \
         host {:?} has: {}",
        host.name,
        available.join(", ")
    )
}

impl OverrideSet {
    /// Compile `-ot` rules for `host`: the regexes, and the buffer types ([`parse_buft`]).
    pub fn compile(overrides: &[Override], host: &Host) -> anyhow::Result<OverrideSet> {
        let rules = overrides
            .iter()
            .map(|o| Ok((compile_cached(&o.pattern)?, parse_buft(&o.buft, host)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(OverrideSet { rules })
    }

    /// First rule whose regex is found anywhere in `name` (`llama-model-loader.cpp:
    /// create_tensor`: `std::regex_search`, `break` on the first match).
    pub fn first_match(&self, name: &str) -> Option<(usize, DeviceId)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, (re, _))| re.is_match(name))
            .map(|(i, (_, d))| (i, *d))
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }
}

/// The GPUs llama.cpp uses, in its order (`src/llama.cpp: llama_prepare_model_devices`):
/// `-dev` list if given (case-insensitive names, `none` = no GPU), else every GPU of the host;
/// `-sm none` keeps only `devices[-mg]`.
pub fn device_list(cfg: &LaunchConfig, host: &Host) -> anyhow::Result<Vec<usize>> {
    let mut devices: Vec<usize> = match &cfg.devices {
        None => (0..host.gpus.len()).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                host.gpu_by_name(n).ok_or_else(|| {
                    anyhow::anyhow!(
                        "-dev {n}: host {:?} has no such device (it has {})",
                        host.name,
                        (0..host.gpus.len())
                            .map(|i| host.device_name(DeviceId::Gpu(i)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if cfg.split_mode == SplitMode::None && !devices.is_empty() {
        anyhow::ensure!(
            cfg.main_gpu < devices.len(),
            "-mg {}: invalid main GPU (llama.cpp: \"invalid value for main_gpu\"); {} device(s) available",
            cfg.main_gpu,
            devices.len()
        );
        devices = vec![devices[cfg.main_gpu]];
    }
    Ok(devices)
}

/// `llama_model::n_gpu_layers()`: negative (auto without --fit, all) = every layer + output.
pub fn n_gpu_layers(cfg: &LaunchConfig, n_layer_all: u32) -> u32 {
    match cfg.gpu_layers {
        GpuLayers::Count(n) => n,
        GpuLayers::Auto | GpuLayers::All => n_layer_all + 1,
    }
}

/// Device of each layer 0..=n_layer_all (the last is the output layer), as
/// `src/llama-model.cpp: llama_model_base::load_tensors` computes it: CPU keeps the first
/// layers; the offloaded ones are cut by normalized prefix sums of `splits` (float32, like
/// llama.cpp), `upper_bound` of `(il - i_gpu_start) / act_gpu_layers`.
pub fn layer_devices(
    n_layer_all: u32,
    ngl: u32,
    devices: &[usize],
    splits: &[f32],
) -> Vec<DeviceId> {
    let n_all = n_layer_all as i64;
    let i_gpu_start = (n_all + 1 - ngl as i64).max(0);
    let act = if devices.is_empty() {
        0
    } else {
        (ngl as i64).min(n_all + 1)
    };
    let mut cum: Vec<f32> = Vec::with_capacity(splits.len());
    let mut sum = 0.0f32;
    for s in splits {
        sum += s;
        cum.push(sum);
    }
    for c in cum.iter_mut() {
        *c /= sum;
    }
    (0..=n_all)
        .map(|il| {
            if il < i_gpu_start || il - i_gpu_start >= act {
                return DeviceId::Cpu;
            }
            let x = (il - i_gpu_start) as f32 / act as f32;
            // std::upper_bound: first element strictly greater than x.
            let k = cum.iter().position(|&c| c > x).unwrap_or(cum.len());
            DeviceId::Gpu(devices[k.min(devices.len() - 1)])
        })
        .collect()
}

/// Split proportions: `-ts` if any entry is non-zero, else each device's free memory at load
/// (`load_tensors`: "default split, by free memory"). `free_mib` is per host GPU.
pub fn split_weights(cfg: &LaunchConfig, devices: &[usize], free_mib: &[f64]) -> Vec<f32> {
    if let Some(ts) = &cfg.tensor_split {
        // -ts entries are per *used* device, in device-list order; missing ones are 0.
        let v: Vec<f32> = (0..devices.len())
            .map(|i| ts.get(i).copied().unwrap_or(0.0) as f32)
            .collect();
        if v.iter().any(|&x| x != 0.0) {
            return v;
        }
    }
    devices
        .iter()
        .map(|&g| (free_mib.get(g).copied().unwrap_or(0.0) * crate::units::MIB as f64) as f32)
        .collect()
}

/// Is a tensor skipped by the loader? NextN/MTP blocks (`il >= n_layer`, e.g.
/// `src/models/deepseek2.cpp`: `mtp_flags |= TENSOR_SKIP` unless MTP is loaded) are never
/// allocated (`llama-model-loader.cpp`: "model has unused tensor … -- ignoring").
pub fn is_skipped(anatomy: &Anatomy, t: &crate::anatomy::Tensor) -> bool {
    if t.role == Role::NextN {
        return true;
    }
    let first_nextn = anatomy.hp.n_layer.saturating_sub(anatomy.hp.n_nextn);
    matches!(t.layer, LayerRef::Block(il) if anatomy.hp.n_nextn > 0 && il >= first_nextn)
}

/// Resolve every placement rule for one launch command. `free_mib` is what llama.cpp finds free
/// per host GPU when it loads (used only for the default split).
pub fn resolve(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    host: &Host,
    free_mib: &[f64],
) -> anyhow::Result<Resolved> {
    let overrides = OverrideSet::compile(&cfg.overrides, host)?;
    resolve_with(anatomy, cfg, host, free_mib, &overrides)
}

/// `resolve` with overrides compiled by the caller (the solver reuses one `OverrideSet`).
pub fn resolve_with(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    host: &Host,
    free_mib: &[f64],
    overrides: &OverrideSet,
) -> anyhow::Result<Resolved> {
    let devices = device_list(cfg, host)?;
    let n_all = anatomy.hp.n_layer;
    let ngl = n_gpu_layers(cfg, n_all);
    let splits = split_weights(cfg, &devices, free_mib);
    let layer_device = layer_devices(n_all, ngl, &devices, &splits);
    let output_device = layer_device[n_all as usize];

    let n = anatomy.tensors.len();
    let mut tensor_device = Vec::with_capacity(n);
    let mut matched_override = Vec::with_capacity(n);
    let mut skipped = Vec::with_capacity(n);
    let mut won = vec![false; overrides.len()];
    let mut has_output = false;
    let mut token_embd_override = None;
    for t in &anatomy.tensors {
        has_output |= t.role == Role::Output;
        let hit = overrides.first_match(&t.name);
        if let Some((i, _)) = hit {
            won[i] = true;
        }
        if t.role == Role::TokenEmbd {
            token_embd_override = hit;
        }
        let default = match t.layer {
            // llama_model_base::load_tensors: "always keep [the input layer] on the CPU".
            LayerRef::Input => DeviceId::Cpu,
            LayerRef::Block(il) if il < n_all => layer_device[il as usize],
            // heads with a block id beyond the model layers go with the output layer.
            LayerRef::Block(_) | LayerRef::Output => output_device,
        };
        tensor_device.push(hit.map(|(_, d)| d).unwrap_or(default));
        matched_override.push(hit.map(|(i, _)| i));
        skipped.push(is_skipped(anatomy, t));
    }
    // Tied embeddings (no output.weight): the loader duplicates token_embd as the output
    // tensor on the output device (`TENSOR_DUPLICATED`, e.g. src/models/qwen3.cpp); the copy
    // keeps the name token_embd.weight, so an -ot matching it moves the copy too.
    let has_embd = anatomy.tensors.iter().any(|t| t.role == Role::TokenEmbd);
    let tied_output_device = (!has_output && has_embd)
        .then(|| token_embd_override.map(|(_, d)| d).unwrap_or(output_device));

    let kv_device = layer_device[..n_all as usize]
        .iter()
        .map(|&d| if cfg.kv_offload { d } else { DeviceId::Cpu })
        .collect();
    let unused_overrides = (0..overrides.len()).filter(|&i| !won[i]).collect();
    Ok(Resolved {
        layer_device,
        tensor_device,
        matched_override,
        unused_overrides,
        skipped,
        tied_output_device,
        kv_device,
        devices,
    })
}
