//! Aggressive and moderate profiles: a placement, its launch flags, its prediction.
//! OWNER: solver helper.
//!
//! The two profiles differ only in the memory kept free on every device. The margins come from
//! the calibration (`Calibration::margins`, data/calibration.toml — learned from the distribution
//! of memory-prediction errors by `placer calibrate`), plus the per-GPU margin an observed OOM
//! added (`GpuCalibration::oom_margin_mib`). They are printed with every profile.

use crate::anatomy::{Anatomy, GroupKind, LayerRef};
use crate::calibrate::Calibration;
use crate::host::{DeviceId, Host};
use crate::placement::Placement;
use crate::solver::{self, Infeasible, Margins, Solution, SolveRequest};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// Small margin: fills the GPUs (the users' "most layers on GPU, little headroom").
    Aggressive,
    /// Larger margin: the one to run when an aggressive start has failed once.
    Moderate,
}

impl ProfileKind {
    pub fn name(self) -> &'static str {
        match self {
            ProfileKind::Aggressive => "aggressive",
            ProfileKind::Moderate => "moderate",
        }
    }
    pub fn all() -> [ProfileKind; 2] {
        [ProfileKind::Aggressive, ProfileKind::Moderate]
    }
}

/// A solved profile (or why it does not fit).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub kind: ProfileKind,
    pub margins: Margins,
    /// Where the margins came from, in words.
    pub margin_source: String,
    pub solution: Option<Solution>,
    pub infeasible: Option<Infeasible>,
}

/// Margins of a profile on `host`: the calibrated profile margin on every GPU plus that GPU's
/// OOM margin; the same profile margin on host RAM.
pub fn margins(kind: ProfileKind, host: &Host, cal: &Calibration) -> (Margins, String) {
    let base = match kind {
        ProfileKind::Aggressive => cal.margins.aggressive_mib,
        ProfileKind::Moderate => cal.margins.moderate_mib,
    };
    let gpu_mib: Vec<f64> = host.gpus.iter().map(|g| base + cal.gpu(&g.model).oom_margin_mib.max(0.0)).collect();
    let oom: Vec<String> = host
        .gpus
        .iter()
        .enumerate()
        .filter(|(_, g)| cal.gpu(&g.model).oom_margin_mib > 0.0)
        .map(|(i, g)| format!("CUDA{i} +{:.0} MiB after an OOM", cal.gpu(&g.model).oom_margin_mib))
        .collect();
    let mut src = format!(
        "{base:.0} MiB per device = calibration margins.{}_mib (data/calibration.toml, {} runs, llama.cpp {})",
        kind.name(),
        cal.n_runs,
        cal.llama_build
    );
    if !oom.is_empty() {
        src.push_str(&format!("; {}", oom.join(", ")));
    }
    (Margins { gpu_mib, ram_mib: base }, src)
}

/// Solve both profiles.
pub fn solve_profiles(anatomy: &Anatomy, host: &Host, req: &SolveRequest, cal: &Calibration) -> Vec<Profile> {
    ProfileKind::all()
        .iter()
        .map(|&kind| {
            let (m, src) = margins(kind, host, cal);
            let r = solver::solve(anatomy, host, req, cal, &m);
            let (solution, infeasible) = match r {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            Profile { kind, margins: m, margin_source: src, solution, infeasible }
        })
        .collect()
}

/// `a–b` or `a` for a run of layer indices.
fn runs(v: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { format!("{}", v[i]) } else { format!("{}–{}", v[i], v[j]) });
        i = j + 1;
    }
    parts.join(", ")
}

fn kind_label(k: GroupKind) -> &'static str {
    match k {
        GroupKind::ExpertsGate => "routed experts (gate)",
        GroupKind::ExpertsUp => "routed experts (up)",
        GroupKind::ExpertsDown => "routed experts (down)",
        GroupKind::ExpertsGateUp => "routed experts (gate+up)",
        GroupKind::SharedExperts => "shared experts",
        GroupKind::DenseFfn => "dense FFN",
        GroupKind::Output => "output layer",
        GroupKind::LayerCore => "layer core",
        GroupKind::Input => "input",
    }
}

/// The placement in words: layer ranges per device, then moved groups.
pub fn describe(anatomy: &Anatomy, p: &Placement) -> Vec<String> {
    let n = anatomy.n_layer() as usize;
    let mut out = Vec::new();
    let mut devs: Vec<DeviceId> = p.layer_device.clone();
    devs.dedup();
    for d in devs {
        let layers: Vec<u32> = (0..n).filter(|&i| p.layer_device[i] == d).map(|i| i as u32).collect();
        let with_out = p.layer_device[n] == d;
        let mut s = format!("{d}: ");
        if layers.is_empty() {
            s.push_str("output layer only");
        } else {
            s.push_str(&format!("layers {} (attention + KV){}", runs(&layers), if with_out { " + output layer" } else { "" }));
        }
        out.push(s);
    }
    // moved groups: (kind, device) → layers
    let mut by: std::collections::BTreeMap<(String, DeviceId), Vec<u32>> = Default::default();
    for &(g, d) in &p.moved {
        let grp = &anatomy.groups[g];
        let il = match grp.layer {
            LayerRef::Block(il) => il,
            LayerRef::Output | LayerRef::Input => u32::MAX,
        };
        by.entry((kind_label(grp.kind).to_string(), d)).or_default().push(il);
    }
    for ((k, d), mut ls) in by {
        ls.sort_unstable();
        if ls == [u32::MAX] {
            out.push(format!("{k} on {d}"));
        } else {
            out.push(format!("{k} of layers {} on {d}", runs(&ls)));
        }
    }
    out
}
