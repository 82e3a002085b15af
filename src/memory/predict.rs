//! `predict`: bytes per device for a launch command, and whether it fits.

use super::compute::{compute_buffers, ComputeInput};
use super::kv::{alloc_size, alloc_size_on, cache_sizes, context_shape};
use super::resolve::{resolve_with, OverrideSet};
use super::rules::{FaMask, MemoryRules, OutputRows};
use super::{DeviceMemory, HostMemory, Prediction, Resolved, Stage, Verdict};
use crate::anatomy::{Anatomy, Role};
use crate::calibration::Calibration;
use crate::host::{DeviceId, Host};
use crate::launch::{FlashAttn, GpuLayers, LaunchConfig, LoadMode, SplitMode};
use crate::units::{mib, MIB};

/// PRIOR (used only while the shipped calibration holds no fitted runs): memory a CUDA process
/// holds on each GPU beyond llama.cpp's buffers ("unaccounted": context, cuBLAS, pool).
/// From data/runs/2026-11-23-reference-qwen3moe-h200x2/t3_cmoe.log.gz (H200, ballast):
/// CUDA0 23999 free before start − 17989 free at exit − 5300 self = 710 MiB; CUDA1 704 MiB.
pub const PRIOR_OVERHEAD_MIB: f64 = 710.0;
/// PRIOR: part of that overhead already taken when llama.cpp reads free memory at load
/// (same run: 23999 MiB free before start, `using device CUDA0 … - 23475 MiB free`).
/// The default `-ts` split is proportional to this reduced free memory.
pub const PRIOR_LOAD_CONTEXT_MIB: f64 = 524.0;

/// Overhead per GPU (MiB): calibrated if the calibration has runs, else the prior.
pub fn overhead_mib(cal: &Calibration, gpu_model: &str) -> f64 {
    let g = cal.gpu(gpu_model);
    if cal.n_runs > 0 && g.overhead_mib > 0.0 {
        g.overhead_mib
    } else {
        PRIOR_OVERHEAD_MIB
    }
}

/// The memory constants of one host, resolved once from the calibration (part of
/// `host_model::HostModel`): per host GPU the overhead a used device holds beyond llama.cpp's
/// buffers and the part of it taken when llama.cpp reads free memory, and the compute-buffer
/// coefficients; with where the overhead came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Constants {
    /// Per host GPU, MiB ([`device_overhead_mib`]).
    pub overhead_mib: Vec<f64>,
    /// Per host GPU, MiB ([`load_context_mib`]).
    pub load_context_mib: Vec<f64>,
    /// Compute-buffer coefficients (`Calibration::compute`).
    pub compute: crate::calibration::ComputeConstants,
    /// Per host GPU, in words: "fitted (N runs)" or "prior".
    pub overhead_source: Vec<String>,
}

impl Constants {
    /// Resolve for `host` under `cal`.
    pub fn resolve(host: &Host, cal: &Calibration) -> Constants {
        Constants {
            overhead_mib: host
                .gpus
                .iter()
                .map(|g| device_overhead_mib(cal, g))
                .collect(),
            load_context_mib: host.gpus.iter().map(|g| load_context_mib(cal, g)).collect(),
            compute: cal.compute.clone(),
            overhead_source: host
                .gpus
                .iter()
                .map(|g| {
                    let fitted = cal.n_runs > 0 && cal.gpu(&g.model).overhead_mib > 0.0;
                    match (&g.rpc, fitted) {
                        (Some(_), _) => {
                            "RPC device (ggml-rpc.cpp: rpc_server::alloc_buffer)".into()
                        }
                        (None, true) => format!("fitted on {} GPUs", g.model),
                        (None, false) => "prior (memory::predict::PRIOR_OVERHEAD_MIB)".into(),
                    }
                })
                .collect(),
        }
    }

    /// Free memory llama.cpp sees per GPU at load (MiB): usable minus the CUDA context.
    pub fn free_at_load_mib(&self, host: &Host) -> Vec<f64> {
        host.gpus
            .iter()
            .zip(&self.load_context_mib)
            .map(|(g, ctx)| (g.usable_mib as f64 - ctx).max(0.0))
            .collect()
    }
}

/// Free memory llama.cpp sees per GPU at load (MiB): usable minus the CUDA context. An RPC
/// device reports the free memory of the running server (`ggml-rpc.cpp: rpc_server::
/// get_device_memory`), whose context is already taken: usable as the host file gives it.
pub fn free_at_load_mib(host: &Host, cal: &Calibration) -> Vec<f64> {
    Constants::resolve(host, cal).free_at_load_mib(host)
}

/// The part of the overhead a GPU holds when llama.cpp reads its free memory: the CUDA context
/// of this process; 0 for an RPC device (the server's context is in its reported free memory).
fn load_context_mib(cal: &Calibration, g: &crate::host::Gpu) -> f64 {
    if g.rpc.is_some() {
        0.0
    } else {
        PRIOR_LOAD_CONTEXT_MIB.min(overhead_mib(cal, &g.model))
    }
}

/// Memory a used device holds beyond llama.cpp's buffers (MiB). An RPC device: nothing in this
/// process; a CPU server allocates only the buffers it is asked for (`ggml-rpc.cpp:
/// rpc_server::alloc_buffer`), a CUDA/HIP server (`row_padding`) adds its cuBLAS and pool at the
/// first compute, the overhead less the context it already held.
pub fn device_overhead_mib(cal: &Calibration, g: &crate::host::Gpu) -> f64 {
    match &g.rpc {
        None => overhead_mib(cal, &g.model),
        Some(r) if r.row_padding => {
            let o = overhead_mib(cal, &g.model);
            (o - PRIOR_LOAD_CONTEXT_MIB.min(o)).max(0.0)
        }
        Some(_) => 0.0,
    }
}

/// Predicts for one model on one host; reuses compiled `-ot` regexes across calls.
pub struct Predictor<'a> {
    /// The model.
    pub anatomy: &'a Anatomy,
    /// The host.
    pub host: &'a Host,
    /// The host's memory constants (overhead, compute coefficients).
    pub constants: std::borrow::Cow<'a, Constants>,
    /// The target build's allocation rules (default: the reference tree's).
    pub rules: MemoryRules,
    free_mib: Vec<f64>,
}

impl<'a> Predictor<'a> {
    /// A predictor whose free memory at load is estimated from the host file
    /// ([`free_at_load_mib`]).
    pub fn new(anatomy: &'a Anatomy, host: &'a Host, calibration: &Calibration) -> Self {
        let c = Constants::resolve(host, calibration);
        Predictor {
            anatomy,
            host,
            free_mib: c.free_at_load_mib(host),
            constants: std::borrow::Cow::Owned(c),
            rules: MemoryRules::default(),
        }
    }

    /// A predictor on constants resolved once (`host_model::HostModel::memory`).
    pub fn with_constants(anatomy: &'a Anatomy, host: &'a Host, constants: &'a Constants) -> Self {
        Predictor {
            anatomy,
            host,
            free_mib: constants.free_at_load_mib(host),
            constants: std::borrow::Cow::Borrowed(constants),
            rules: MemoryRules::default(),
        }
    }

    /// Predict for a target build whose allocation rules differ from the reference tree's
    /// (`memory::rules::rules_for`).
    pub fn with_rules(mut self, rules: MemoryRules) -> Self {
        self.rules = rules;
        self
    }

    /// Use the free memory llama.cpp reported at load (MiB per host GPU) for the default split,
    /// e.g. from a log's `using device … - N MiB free` lines.
    pub fn with_free_at_load(mut self, free_mib: Vec<f64>) -> Self {
        if free_mib.len() == self.host.gpus.len() {
            self.free_mib = free_mib;
        }
        self
    }

    /// Predict a launch (compiles its `-ot` rules).
    pub fn predict(&self, cfg: &LaunchConfig) -> anyhow::Result<Prediction> {
        let overrides = OverrideSet::compile(&cfg.overrides, self.host)?;
        self.predict_with(cfg, &overrides)
    }

    /// With overrides compiled by the caller.
    pub fn predict_with(
        &self,
        cfg: &LaunchConfig,
        overrides: &OverrideSet,
    ) -> anyhow::Result<Prediction> {
        check_supported(cfg)?;
        check_rpc(cfg, self.host)?;
        let a = self.anatomy;
        let resolved = resolve_with(a, cfg, self.host, &self.free_mib, overrides)?;
        let mut shape = context_shape(cfg, &a.hp);
        if self.rules.output_rows == OutputRows::Ubatch {
            // b8022 generation: `graph_reserve(n_tokens, n_seqs, n_tokens)` (memory::rules).
            shape.n_outputs_max = shape.n_batch;
        }
        let fa_off = (cfg.flash_attn == FlashAttn::Auto)
            .then(|| super::compute::fa_auto_mismatch(a, &resolved))
            .flatten();
        if fa_off.is_some() {
            shape.flash_attn = false;
        }
        let caches = cache_sizes(cfg, &a.hp, &shape);
        let pp = pipeline_parallel(cfg, &resolved, a.hp.n_layer, overrides.is_empty());
        let n_gpus = self.host.gpus.len();
        let mut gpus: Vec<DeviceMemory> = self
            .host
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| DeviceMemory {
                device: DeviceId::Gpu(i),
                model: 0,
                kv: 0,
                rs: 0,
                compute: 0,
                overhead: 0,
                cap: g.usable_mib * MIB,
            })
            .collect();
        let mut host = HostMemory {
            cap: self.host.ram.usable_mib * MIB,
            ..HostMemory::default()
        };
        model_bytes(a, &resolved, cfg.load_mode, self.host, &mut gpus, &mut host);
        for (il, &d) in resolved.kv_device.iter().enumerate() {
            let (mut on_gpu, on_cpu) = caches.layers[il];
            match d {
                DeviceId::Gpu(g) => {
                    // An RPC device allocates the KV like its remote backend: without CUDA's
                    // row padding, the host rule (32-byte alignment; exact for a CPU server).
                    if let Some(r) = &self.host.gpus[g].rpc {
                        if !r.row_padding {
                            on_gpu = on_cpu;
                        }
                    }
                    gpus[g].kv += on_gpu.kv;
                    gpus[g].rs += on_gpu.rs;
                }
                DeviceId::Cpu => {
                    host.kv += on_cpu.kv;
                    host.rs += on_cpu.rs;
                }
            }
        }
        let cb = compute_buffers(&ComputeInput {
            anatomy: a,
            resolved: &resolved,
            shape: &shape,
            caches: &caches,
            type_k: cfg.type_k,
            type_v: cfg.type_v,
            op_offload: cfg.op_offload,
            pipeline_parallel: pp,
            compute: &self.constants.compute,
            n_gpus,
            fa_mask_f32: self.rules.fa_mask == FaMask::F32Cast,
            n_rpc: self.host.n_rpc(),
        });
        for (g, dm) in gpus.iter_mut().enumerate() {
            dm.compute = cb.gpus[g];
            // A GPU llama.cpp uses gets a CUDA context even if nothing lands on it.
            if resolved.devices.contains(&g) {
                dm.overhead = (self.constants.overhead_mib[g] * MIB as f64) as u64;
            }
        }
        host.compute = cb.host;
        let verdict = verdict(
            &gpus,
            &host,
            cfg.load_mode,
            &self.constants.load_context_mib,
        );
        let mut warnings = resolution_warnings(cfg, &resolved, a);
        if let Some((il, layer, sinks)) = fa_off {
            let name = |d: DeviceId| self.host.device_name(d);
            warnings.push(format!(
                "-fa auto turns flash attention off: layer {il} belongs to {} (the -ts split) but \
                 -ot put its attention sinks on {}, so llama.cpp schedules its attention there \
                 (src/llama-context.cpp: \"Flash Attention was auto, set to disabled\"); without \
                 it every full-attention layer holds F32 scores of n_ctx × -ub × heads — keep each \
                 layer's attention weights on its split device (move only ffn_*_exps) or pass -fa on",
                name(layer),
                name(sinks)
            ));
        }
        Ok(Prediction {
            gpus,
            host,
            verdict,
            resolved,
            shape,
            pipeline_parallel: pp,
            warnings,
        })
    }
}

/// One-shot prediction (compiles the `-ot` regexes; see `Predictor` for repeated calls).
pub fn predict(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    host: &Host,
    calibration: &Calibration,
) -> anyhow::Result<Prediction> {
    Predictor::new(anatomy, host, calibration).predict(cfg)
}

/// A host with RPC devices is only what llama.cpp sees when the command lists those servers.
fn check_rpc(cfg: &LaunchConfig, host: &Host) -> anyhow::Result<()> {
    let want = host.rpc_servers();
    if want.is_empty() || cfg.rpc == want {
        return Ok(());
    }
    anyhow::bail!(
        "host {:?} has RPC devices on {} but the command {}: llama.cpp only sees an rpc-server's \
         devices through --rpc, in that order (common/arg.cpp: add_rpc_devices); add \
         `--rpc {}`",
        host.name,
        want.join(", "),
        if cfg.rpc.is_empty() {
            "has no --rpc".to_string()
        } else {
            format!("says --rpc {}", cfg.rpc.join(","))
        },
        want.join(",")
    )
}

fn check_supported(cfg: &LaunchConfig) -> anyhow::Result<()> {
    match cfg.split_mode {
        SplitMode::Row => anyhow::bail!(
            "-sm row: this llama.cpp's CUDA backend has no split buffers \
             (src/llama-model.cpp: make_gpu_buft_list throws \"does not support split buffers\"); use -sm layer"
        ),
        SplitMode::Tensor => anyhow::bail!(
            "-sm tensor (experimental tensor parallelism) splits weights and KV differently; placer does not model it — use -sm layer"
        ),
        _ => Ok(()),
    }
}

/// `src/llama-context.cpp`: pipeline parallelism iff > 1 device, every layer and the output
/// offloaded (`n_gpu_layers() > n_layer_all`), `-sm layer`, KV offloaded and no tensor
/// overrides at all (any `-ot`, `--cpu-moe`, `--n-cpu-moe` turns it off).
pub fn pipeline_parallel(
    cfg: &LaunchConfig,
    r: &Resolved,
    n_layer_all: u32,
    no_overrides: bool,
) -> bool {
    let ngl_all = match cfg.gpu_layers {
        GpuLayers::Count(n) => n > n_layer_all,
        GpuLayers::Auto | GpuLayers::All => true,
    };
    r.devices.len() > 1
        && ngl_all
        && cfg.split_mode == SplitMode::Layer
        && cfg.kv_offload
        && no_overrides
}

/// Model buffers: CUDA sums padded alloc sizes; CPU weights are a mapped file span per shard
/// with mmap (`llama_model_loader::get_mapping_range`), else a copy (`CUDA_Host` / `CPU`).
fn model_bytes(
    a: &Anatomy,
    r: &Resolved,
    load: LoadMode,
    h: &Host,
    gpus: &mut [DeviceMemory],
    host: &mut HostMemory,
) {
    let mmap = load == LoadMode::Mmap;
    let n_shards = a.shards.len().max(1);
    let mut span: Vec<Option<(u64, u64)>> = vec![None; n_shards];
    let mut add = |d: DeviceId, t: &crate::anatomy::Tensor, host: &mut HostMemory| match d {
        DeviceId::Gpu(g) => {
            gpus[g].model += alloc_size_on(
                h.gpus[g].rpc.as_ref(),
                t.ggml_type,
                t.dims.first().copied().unwrap_or(1),
                t.nbytes,
            );
        }
        DeviceId::Cpu => {
            host.cpu_weights += t.nbytes;
            if mmap {
                let s = &mut span[t.shard.min(n_shards - 1)];
                let (lo, hi) = s.unwrap_or((u64::MAX, 0));
                *s = Some((lo.min(t.file_offset), hi.max(t.file_offset + t.nbytes)));
            } else {
                host.cpu_model += alloc_size(t.ggml_type, 0, t.nbytes, false);
            }
        }
    };
    for (i, t) in a.tensors.iter().enumerate() {
        if r.skipped.get(i).copied().unwrap_or(false) {
            continue;
        }
        add(r.tensor_device[i], t, host);
        if t.role == Role::TokenEmbd {
            if let Some(d) = r.tied_output_device {
                // The duplicate shares the file bytes: a CPU duplicate with mmap adds nothing.
                if !(d == DeviceId::Cpu && mmap) {
                    add(d, t, host);
                } else {
                    host.cpu_weights += 0;
                }
            }
        }
    }
    host.cpu_mapped_spans = span.iter().flatten().map(|(lo, hi)| hi - lo).collect();
    host.cpu_mapped = host.cpu_mapped_spans.iter().sum();
}

/// (stage, bytes a GPU holds once it is done, bytes the host holds once it is done).
type StageCheck<'a> = (Stage, &'a dyn Fn(&DeviceMemory) -> u64, u64);

/// First failing allocation in llama.cpp's start-up order: model buffers (every device), then
/// KV/RS, then compute reserve. Each GPU starts with the CUDA context already taken; the rest of
/// the overhead (cuBLAS, pool) appears at the first decode and is checked last (reported as
/// the compute stage: "compute reserve or first decode").
pub fn verdict(
    gpus: &[DeviceMemory],
    host: &HostMemory,
    load: LoadMode,
    load_context_mib: &[f64],
) -> Verdict {
    let ctx: Vec<u64> = gpus
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if g.overhead == 0 {
                return 0;
            }
            (load_context_mib.get(i).copied().unwrap_or(0.0) * MIB as f64) as u64
        })
        .collect();
    let host_model = if load == LoadMode::Mmap {
        0
    } else {
        host.cpu_model
    };
    let stages: [StageCheck; 3] = [
        (Stage::Load, &|g| g.model, host_model),
        (
            Stage::Kv,
            &|g| g.model + g.kv + g.rs,
            host_model + host.kv + host.rs,
        ),
        (
            Stage::Compute,
            &|g| g.model + g.kv + g.rs + g.compute,
            host_model + host.kv + host.rs + host.compute,
        ),
    ];
    for (stage, used, host_used) in stages {
        for (i, g) in gpus.iter().enumerate() {
            let need = used(g) + ctx[i];
            if need > g.cap {
                return Verdict::Oom {
                    device: g.device,
                    stage,
                    short_by: need - g.cap,
                };
            }
        }
        if host_used > host.cap {
            return Verdict::Oom {
                device: DeviceId::Cpu,
                stage,
                short_by: host_used - host.cap,
            };
        }
    }
    for g in gpus {
        if g.total() > g.cap {
            return Verdict::Oom {
                device: g.device,
                stage: Stage::Compute,
                short_by: g.total() - g.cap,
            };
        }
    }
    Verdict::Fits
}

fn resolution_warnings(cfg: &LaunchConfig, r: &Resolved, a: &Anatomy) -> Vec<String> {
    let mut w = Vec::new();
    for &i in &r.unused_overrides {
        let o = &cfg.overrides[i];
        let matches_any = regex::Regex::new(&o.pattern)
            .map(|re| a.tensors.iter().any(|t| re.is_match(&t.name)))
            .unwrap_or(false);
        if matches_any {
            w.push(format!(
                "-ot {}={}: every tensor it matches was already taken by an earlier rule (first match wins) — it does nothing",
                o.pattern, o.buft
            ));
        } else {
            w.push(format!(
                "-ot {}={}: the regex matches no tensor of this model — it does nothing (tensor names look like blk.12.ffn_up_exps.weight)",
                o.pattern, o.buft
            ));
        }
    }
    let _ = mib;
    w
}
