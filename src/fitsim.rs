//! What llama.cpp's `--fit` would choose for a launch, replayed on placer's memory model instead
//! of llama.cpp's dry-run loads (`common/fit.cpp:common_params_fit_impl`,
//! llamacpp-internals.md §7.3), so that `check` and `solve` can compare a placement with the
//! baseline users get by default — on any host, without loading anything.
//!
//! Replayed: step 1 (nothing changes when every device already leaves its target free), step 3
//! (layers filled back to front, for a MoE model as "dense-only" layers whose routed experts stay
//! on the CPU) and, for one GPU, step 4 (dense-only layers converted to full layers front to back,
//! then part of one more layer: `UP`, `GATE`, else `ATTN`). Not replayed: the context reduction of
//! step 2 (only when `-c` is not given) and step 4's overflow from one GPU to the next, so on
//! several GPUs the MoE result is step 3's (with each device's leading layers converted in turn).
//! "Used" is llama.cpp's own buffers (model + context + compute) as `memory::predict` sizes them;
//! "free" is what llama.cpp sees when it fits: the usable memory less the CUDA context it has
//! already created by then ([`FIT_TIME_CONTEXT_MIB`]).

use crate::anatomy::Anatomy;
use crate::launch::{GpuLayers, LaunchConfig, Override};
use crate::memory::{Predictor, Verdict};
use crate::units::MIB;

/// Device memory already taken when `--fit` measures free memory (the CUDA context; cuBLAS and
/// the pools come later). Measured: on `gpu:24000` testbed runs the ballast left 23,984 MiB and
/// llama.cpp's fit saw 23,460 MiB (`llama_prepare_model_devices: … 23460 MiB free`, every
/// single-GPU `--fit` run in data/runs).
pub const FIT_TIME_CONTEXT_MIB: u64 = 524;

pub use crate::llama::FIT_TARGET_MIB;

/// `--fit`'s choice: the launch it hands to llama.cpp and how it got there.
#[derive(Debug, Clone)]
pub struct FitChoice {
    pub launch: LaunchConfig,
    /// Layers per GPU (the output layer counts as one, as `--fit` counts it).
    pub layers: Vec<u32>,
    /// Of those, layers whose FFN (or routed experts) stay elsewhere.
    pub partial: Vec<u32>,
    /// Steps taken, in words.
    pub steps: Vec<String>,
    /// `--fit` keeps the command as it is (every layer on the GPUs, llama.cpp's default split).
    pub unchanged: bool,
}

/// What `--fit` may use on each GPU of `pr.host` (MiB): the free memory llama.cpp reads (the
/// usable memory, or what a virtual device reports: `Gpu::reported_free_mib`) less the CUDA
/// context already created when it measures, less `base`'s `--fit-target` (one value broadcast).
/// Virtual devices of one physical GPU share its one context, and each reports its share of the
/// free memory (`ggml-cuda.cu: ggml_backend_cuda_get_device_memory` divides by the devices
/// sharing the GPU), so each loses its share of the context. Measured (2026-12-07 c5, two virtual
/// devices, NVML free 48,084 MiB): "projected … vs. 47558 MiB of free device memory", targets
/// 22,755 and 11,555 MiB = 23,779 − 1,024 and 23,779 − 12,224 (data/runs/
/// 2026-12-07-gptoss120b-h100emul-c32k-trial-c5, the `fit-tuned` log).
pub fn budgets_mib(pr: &Predictor, base: &LaunchConfig) -> Vec<i64> {
    let t = &base.fit_target_mib;
    let gpus = &pr.host.gpus;
    (0..gpus.len())
        .map(|d| {
            let target = t.get(d).or(t.last()).copied().unwrap_or(FIT_TARGET_MIB) as i64;
            let g = &gpus[d];
            let free = g
                .reported_free_mib
                .unwrap_or(g.usable_mib)
                .max(g.usable_mib);
            // A virtual device (host detect --emulate records what it reports) shares its GPU
            // with the other virtual devices of the same model.
            let sharing = if g.reported_free_mib.is_some() {
                gpus.iter()
                    .filter(|o| {
                        o.reported_free_mib.is_some() && o.model == g.model && o.rpc.is_none()
                    })
                    .count()
                    .max(1)
            } else {
                1
            };
            free as i64 - (FIT_TIME_CONTEXT_MIB / sharing as u64) as i64 - target
        })
        .collect()
}

/// Replay `--fit` for `base` (its `-c`, `-b/-ub`, KV types and tool are kept; `-ngl`, `-ts`
/// and overrides are what `--fit` chooses), each GPU held to `budget_mib` of llama.cpp's own
/// buffers ([`budgets_mib`], or a log's own free memory less its targets).
pub fn simulate(
    pr: &Predictor,
    base: &LaunchConfig,
    budget_mib: &[i64],
) -> anyhow::Result<FitChoice> {
    let a = pr.anatomy;
    let nd = pr.host.gpus.len();
    anyhow::ensure!(nd > 0, "--fit places nothing on a host without GPUs");
    anyhow::ensure!(budget_mib.len() == nd, "one budget per GPU");
    let budget: Vec<i64> = budget_mib.iter().map(|b| b * MIB as i64).collect();
    let n_layer = a.hp.n_layer - a.hp.n_nextn;
    let total = n_layer + 1; // + the output layer
    let moe = a.hp.n_expert > 0;
    let mut steps = Vec::new();

    let fits = |plan: &Plan| -> anyhow::Result<Vec<bool>> {
        let p = pr.predict(&plan.launch(base, a, n_layer, pr.host))?;
        Ok(p.gpus
            .iter()
            .zip(&budget)
            .map(|(g, b)| ((g.model + g.kv + g.rs + g.compute) as i64) <= *b)
            .collect())
    };

    // Step 1: everything on the GPUs, llama.cpp's default split.
    let all = Plan::default_split(nd, total);
    let first = pr.predict(&LaunchConfig {
        gpu_layers: GpuLayers::All,
        tensor_split: None,
        overrides: Vec::new(),
        ..base.clone()
    })?;
    let ok = first
        .gpus
        .iter()
        .zip(&budget)
        .all(|(g, b)| ((g.model + g.kv + g.rs + g.compute) as i64) <= *b)
        && first.verdict == Verdict::Fits;
    if ok {
        steps.push("every device leaves its target free with all layers: no change".into());
        return Ok(all.choice(base, a, n_layer, steps, true, pr.host));
    }

    // Step 3: fill layers back to front (dense-only for MoE).
    let mut plan = Plan {
        layers: vec![0; nd],
        full: vec![0; nd],
        partial_kind: None,
        moe,
    };
    let mut left = total;
    for d in (0..nd).rev() {
        let mut best = 0;
        for n in 1..=left {
            let mut t = plan.clone();
            t.layers[d] = n;
            t.full[d] = if moe { 0 } else { n };
            if fits(&t)?[d] {
                best = n;
            } else {
                break;
            }
        }
        plan.layers[d] = best;
        plan.full[d] = if moe { 0 } else { best };
        left -= best;
    }
    steps.push(format!(
        "{} layers back to front: {:?} per GPU, {} on the CPU",
        if moe { "dense-only" } else { "whole" },
        plan.layers,
        left
    ));
    if !moe {
        return Ok(plan.choice(base, a, n_layer, steps, false, pr.host));
    }

    // Step 4: front to back, each device takes as many *full* layers as fit; the layers after
    // them stay dense-only on the next device (the later devices keep step 3's counts). Then
    // part of one more layer: its FFN overflows to the next GPU (to the CPU from the last).
    for d in 0..nd {
        let here_and_next = plan.layers[d] + plan.layers.get(d + 1).copied().unwrap_or(0);
        let with_full = |k: u32| -> Plan {
            let mut t = plan.clone();
            if d + 1 < nd {
                // device d: k full layers; device d+1 absorbs the rest of both.
                t.layers[d] = k;
                t.layers[d + 1] = here_and_next - k;
                t.full[d + 1] = 0;
            }
            t.full[d] = k.min(t.layers[d]);
            t
        };
        let max_k = if d + 1 < nd {
            here_and_next.saturating_sub(1)
        } else {
            plan.layers[d]
        };
        let mut k = plan.full[d];
        while k < max_k {
            // More full layers here only unload the next device: device d decides.
            let t = with_full(k + 1);
            if fits(&t)?[d] {
                k += 1;
            } else {
                break;
            }
        }
        let moved = with_full(k);
        if d + 1 < nd && !fits(&moved)?[d + 1] {
            // The next device cannot take the rest as dense-only: keep step 3's counts here and
            // convert only what fits among this device's own layers.
            let mut k = 0;
            while k < plan.layers[d] {
                let mut t = plan.clone();
                t.full[d] = k + 1;
                if fits(&t)?[d] {
                    k += 1;
                } else {
                    break;
                }
            }
            plan.full[d] = k;
        } else {
            plan = moved;
        }
        if plan.full[d] < plan.layers[d] || d + 1 < nd {
            for kind in [Partial::Up, Partial::Gate, Partial::Attn] {
                let mut t = plan.clone();
                if d + 1 < nd {
                    // the next layer moves to d as a partial one
                    if t.layers[d + 1] <= 1 {
                        break;
                    }
                    t.layers[d] += 1;
                    t.layers[d + 1] -= 1;
                }
                t.partial_kind = Some((d, kind));
                let f = fits(&t)?;
                if f[d] && (d + 1 == nd || f[d + 1]) {
                    steps.push(format!(
                        "one more layer on {} as {kind:?}",
                        pr.host.device_name(crate::host::DeviceId::Gpu(d))
                    ));
                    plan = t;
                    break;
                }
            }
        }
    }
    steps.push(format!(
        "full layers front to back: {:?} of {:?} per GPU",
        plan.full, plan.layers
    ));
    Ok(plan.choice(base, a, n_layer, steps, false, pr.host))
}

/// `LAYER_FRACTION_*` of common/fit.cpp: what of a partial layer stays on its GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Partial {
    /// attention + ffn_up (gate and down overflow)
    Up,
    /// attention + up + gate (down overflows)
    Gate,
    /// attention only (every FFN tensor overflows)
    Attn,
}

#[derive(Debug, Clone)]
struct Plan {
    /// Layers per GPU (output counted on the last GPU that has layers).
    layers: Vec<u32>,
    /// Of those, full layers (the first ones of each device after step 4; for MoE the output
    /// layer counts as full).
    full: Vec<u32>,
    /// The first dense-only layer of a device replaced by a partial one.
    partial_kind: Option<(usize, Partial)>,
    moe: bool,
}

impl Plan {
    fn default_split(nd: usize, total: u32) -> Plan {
        Plan {
            layers: (0..nd)
                .map(|d| if d + 1 == nd { total } else { 0 })
                .collect(),
            full: vec![0; nd],
            partial_kind: None,
            moe: false,
        }
    }

    /// `set_ngl_tensor_split_tbo`: -ngl = Σ layers, -ts = the counts, overrides per layer.
    fn launch(
        &self,
        base: &LaunchConfig,
        a: &Anatomy,
        n_layer: u32,
        host: &crate::host::Host,
    ) -> LaunchConfig {
        let ngl: u32 = self.layers.iter().sum();
        let nd = self.layers.len();
        let mut overrides = Vec::new();
        // GPU layers run from n_layer + 1 − ngl (the output is the last "layer").
        let mut il = (n_layer + 1).saturating_sub(ngl);
        for d in 0..nd {
            for k in 0..self.layers[d] {
                let layer = il + k;
                if layer >= n_layer {
                    continue; // the output layer
                }
                let full = k < self.full[d];
                let partial = self
                    .partial_kind
                    .filter(|(pd, _)| *pd == d && k == self.full[d])
                    .map(|(_, kind)| kind);
                let pattern = match (full, partial) {
                    (true, _) => None,
                    (false, Some(Partial::Up)) => {
                        Some(format!(r"blk\.{layer}\.ffn_(gate|gate_up|down).*"))
                    }
                    (false, Some(Partial::Gate)) => Some(format!(r"blk\.{layer}\.ffn_down.*")),
                    (false, Some(Partial::Attn)) => {
                        Some(format!(r"blk\.{layer}\.ffn_(gate|up|gate_up|down).*"))
                    }
                    (false, None) if self.moe => Some(format!(
                        r"blk\.{layer}\.ffn_(up|down|gate_up|gate)_(ch|)exps"
                    )),
                    (false, None) => None,
                };
                if let Some(pattern) = pattern {
                    // A device's partial layer overflows to the next GPU; dense-only layers'
                    // experts and the last GPU's overflow go to the CPU.
                    // (by llama.cpp's buffer name: `RPC<d>[host:port]` for an RPC device)
                    let buft = if partial.is_some() && d + 1 < nd {
                        host.buft_name(crate::host::DeviceId::Gpu(d + 1))
                    } else {
                        "CPU".into()
                    };
                    overrides.push(Override { pattern, buft });
                }
            }
            il += self.layers[d];
        }
        let _ = a;
        LaunchConfig {
            gpu_layers: GpuLayers::Count(ngl),
            tensor_split: (nd > 1).then(|| self.layers.iter().map(|&n| n as f64).collect()),
            overrides,
            fit: false,
            ..base.clone()
        }
    }

    fn choice(
        &self,
        base: &LaunchConfig,
        a: &Anatomy,
        n_layer: u32,
        steps: Vec<String>,
        unchanged: bool,
        host: &crate::host::Host,
    ) -> FitChoice {
        let launch = if unchanged {
            LaunchConfig {
                gpu_layers: GpuLayers::All,
                tensor_split: None,
                overrides: Vec::new(),
                fit: false,
                ..base.clone()
            }
        } else {
            self.launch(base, a, n_layer, host)
        };
        let partial = self
            .layers
            .iter()
            .zip(&self.full)
            .map(|(l, f)| l - f.min(l))
            .collect();
        FitChoice {
            launch,
            layers: if unchanged {
                Vec::new()
            } else {
                self.layers.clone()
            },
            partial: if unchanged { Vec::new() } else { partial },
            steps,
            unchanged,
        }
    }
}
