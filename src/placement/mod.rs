//! A placement: which device hosts each layer (and so its attention and KV) and which tensor
//! groups live elsewhere. What the solver produces; [`to_launch`] turns it into the launch
//! (`-ngl -ts -ot`) that realises it.

#![warn(missing_docs)]

mod ot;
pub use ot::{consecutive_runs, layer_devices, layer_set_regex, overrides, resolve, to_launch};

use crate::host::DeviceId;
use serde::{Deserialize, Serialize};

/// Where each layer and each moved tensor group lives: what the solver returns, expressible with
/// `-ngl -ts -ot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Device per repeating layer 0..n_layer, then the output layer at index n_layer.
    /// llama.cpp constraint: CPU layers first, then contiguous ranges per GPU in device order.
    pub layer_device: Vec<DeviceId>,
    /// Tensor groups (indices into `Anatomy::groups`) placed on another device than their layer.
    pub moved: Vec<(usize, DeviceId)>,
}

impl Placement {
    /// Device of a group under this placement.
    pub fn group_device(&self, anatomy: &crate::anatomy::Anatomy, group: usize) -> DeviceId {
        if let Some((_, d)) = self.moved.iter().find(|(g, _)| *g == group) {
            return *d;
        }
        match anatomy.groups[group].layer {
            crate::anatomy::LayerRef::Input => DeviceId::Cpu,
            crate::anatomy::LayerRef::Block(il) => self.layer_device[il as usize],
            crate::anatomy::LayerRef::Output => *self.layer_device.last().expect("output layer"),
        }
    }
}

/// llama.cpp's layer order of devices: CPU layers come first, then GPU 0, GPU 1, … in device
/// order (`src/llama-model.cpp:llama_model_base::load_tensors`, `i_gpu_start` and the
/// `upper_bound` over the cumulative `-ts` split).
pub fn device_rank(d: DeviceId) -> usize {
    match d {
        DeviceId::Cpu => 0,
        DeviceId::Gpu(i) => i + 1,
    }
}

impl Placement {
    /// Check that llama.cpp can express this placement with `-ngl`/`-ts`: one entry per layer plus
    /// the output layer, CPU layers first, GPUs in non-decreasing device order, the output layer
    /// last; every moved group names an existing group and a device other than its layer's.
    pub fn validate(&self, anatomy: &crate::anatomy::Anatomy) -> anyhow::Result<()> {
        let n_slots = anatomy.n_layer() as usize + 1;
        if self.layer_device.len() != n_slots {
            anyhow::bail!(
                "placement has {} layer entries; the model needs {} ({} layers + the output layer)",
                self.layer_device.len(),
                n_slots,
                n_slots - 1
            );
        }
        for (il, w) in self.layer_device.windows(2).enumerate() {
            if device_rank(w[1]) < device_rank(w[0]) {
                anyhow::bail!(
                    "layer {} is on {} after layer {} on {}: llama.cpp puts CPU layers first and \
                     then GPUs in device order (-ngl/-ts cannot express this)",
                    il + 1,
                    w[1],
                    il,
                    w[0]
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for &(g, d) in &self.moved {
            if g >= anatomy.groups.len() {
                anyhow::bail!(
                    "moved group {g} does not exist (model has {})",
                    anatomy.groups.len()
                );
            }
            if !seen.insert(g) {
                anyhow::bail!("group {g} is moved twice");
            }
            let own = match anatomy.groups[g].layer {
                crate::anatomy::LayerRef::Input => DeviceId::Cpu,
                crate::anatomy::LayerRef::Block(il) => self.layer_device[il as usize],
                crate::anatomy::LayerRef::Output => self.layer_device[n_slots - 1],
            };
            if own == d {
                anyhow::bail!("group {g} is 'moved' to its own layer's device {d}");
            }
        }
        Ok(())
    }

    /// Device of every tensor (same order as `Anatomy::tensors`) under this placement.
    pub fn tensor_devices(&self, anatomy: &crate::anatomy::Anatomy) -> Vec<DeviceId> {
        let n_slots = self.layer_device.len();
        // Tensors outside every group follow their layer (llama.cpp's default).
        let mut out: Vec<DeviceId> = anatomy
            .tensors
            .iter()
            .map(|t| match t.layer {
                crate::anatomy::LayerRef::Input => DeviceId::Cpu,
                crate::anatomy::LayerRef::Block(il) => self
                    .layer_device
                    .get(il as usize)
                    .copied()
                    .unwrap_or(DeviceId::Cpu),
                crate::anatomy::LayerRef::Output => self
                    .layer_device
                    .get(n_slots.wrapping_sub(1))
                    .copied()
                    .unwrap_or(DeviceId::Cpu),
            })
            .collect();
        for (gi, g) in anatomy.groups.iter().enumerate() {
            let d = self.group_device(anatomy, gi);
            for &t in &g.tensors {
                out[t] = d;
            }
        }
        out
    }

    /// Number of layer slots (incl. the output layer) on each GPU, for `-ts`, and the total for
    /// `-ngl`.
    pub fn gpu_layer_counts(&self, n_gpus: usize) -> Vec<u32> {
        let mut counts = vec![0u32; n_gpus];
        for d in &self.layer_device {
            if let DeviceId::Gpu(i) = *d {
                if i >= counts.len() {
                    counts.resize(i + 1, 0);
                }
                counts[i] += 1;
            }
        }
        counts
    }
}
