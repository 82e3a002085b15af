//! A placement: which device hosts each layer (and so its attention and KV) and which tensor
//! groups live elsewhere. What the solver produces and the emitter turns into flags.

use crate::host::DeviceId;
use serde::{Deserialize, Serialize};

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
