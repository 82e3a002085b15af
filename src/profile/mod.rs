//! Aggressive and moderate profiles: a placement, its launch flags, its prediction.
//!
//! The two profiles differ only in the memory kept free on every device. The margins come with
//! the host model (`host_model::HostModel`, resolved once from the calibration:
//! `Calibration::margins`, data/calibration.toml — learned from the distribution of
//! memory-prediction errors by `placer calibrate` — plus the per-GPU margin an observed OOM
//! added, `GpuCalibration::oom_margin_mib`). They are printed with every profile.

#![warn(missing_docs)]

mod confirm;
mod report;
mod section;
pub use confirm::{
    confirm_profiles, output_rows_gap, render_confirmation, Confirmation, SideBySide, MAX_DRY_RUNS,
};
pub use report::{fit_baseline, SolveReport};
pub use section::{conf_section, ConfSource, OWN_KEYS};

use crate::anatomy::{Anatomy, GroupKind, LayerRef};
use crate::host::DeviceId;
use crate::host_model::HostModel;
use crate::placement::Placement;
use crate::solver::{self, Infeasible, Margins, Solution, SolveRequest};
use serde::{Deserialize, Serialize};

/// The two profiles placer solves; they differ only in their margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// Small margin: fills the GPUs (the users' "most layers on GPU, little headroom").
    Aggressive,
    /// Larger margin: the one to run when an aggressive start has failed once.
    Moderate,
}

impl ProfileKind {
    /// The name as `--profile` and section ids spell it (`aggressive`, `moderate`).
    pub fn name(self) -> &'static str {
        match self {
            ProfileKind::Aggressive => "aggressive",
            ProfileKind::Moderate => "moderate",
        }
    }
    /// Both kinds, aggressive first.
    pub fn all() -> [ProfileKind; 2] {
        [ProfileKind::Aggressive, ProfileKind::Moderate]
    }
}

/// A solved profile (or why it does not fit).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Which profile.
    pub kind: ProfileKind,
    /// Memory kept free per device.
    pub margins: Margins,
    /// Where the margins came from, in words.
    pub margin_source: String,
    /// The solved placement; None when it does not fit.
    pub solution: Option<Solution>,
    /// Why it does not fit and the smallest changes that do; None when solved.
    pub infeasible: Option<Infeasible>,
}

/// Margins of a profile: the host model's (`host_model::profile_margins`: the calibrated
/// profile margin on every GPU plus that GPU's OOM margins; the same profile margin on RAM).
pub fn margins(kind: ProfileKind, hm: &HostModel) -> (Margins, String) {
    let p = hm.margins(kind == ProfileKind::Aggressive);
    (p.margins.clone(), p.source.clone())
}

/// Solve both profiles, concurrently (rayon::join): they share nothing but the inputs.
pub fn solve_profiles(anatomy: &Anatomy, hm: &HostModel, req: &SolveRequest) -> Vec<Profile> {
    let one = |kind: ProfileKind| {
        let (m, src) = margins(kind, hm);
        let r = solver::solve(anatomy, hm, req, &m);
        let (solution, infeasible) = match r {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        Profile {
            kind,
            margins: m,
            margin_source: src,
            solution,
            infeasible,
        }
    };
    let (a, m) = rayon::join(
        || one(ProfileKind::Aggressive),
        || one(ProfileKind::Moderate),
    );
    vec![a, m]
}

/// `a–b` or `a` for a run of layer indices.
fn runs(v: &[u32]) -> String {
    crate::placement::consecutive_runs(v)
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                format!("{a}")
            } else {
                format!("{a}–{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn part_label(k: GroupKind) -> &'static str {
    match k {
        GroupKind::ExpertsGate => "gate",
        GroupKind::ExpertsUp => "up",
        GroupKind::ExpertsDown => "down",
        GroupKind::ExpertsGateUp => "gate+up",
        _ => "",
    }
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

/// The placement in words: layer ranges per device, then moved groups (devices named as
/// llama.cpp names them on `host`: `RPC0`, `CUDA0`, `CPU`).
pub fn describe(anatomy: &Anatomy, host: &crate::host::Host, p: &Placement) -> Vec<String> {
    let n = anatomy.n_layer() as usize;
    let mut out = Vec::new();
    let mut devs: Vec<DeviceId> = p.layer_device.clone();
    devs.dedup();
    for d in devs {
        let layers: Vec<u32> = (0..n)
            .filter(|&i| p.layer_device[i] == d)
            .map(|i| i as u32)
            .collect();
        let with_out = p.layer_device[n] == d;
        let mut s = format!("{}: ", host.device_name(d));
        if layers.is_empty() {
            s.push_str("output layer only");
        } else {
            s.push_str(&format!(
                "layers {} (attention + KV){}",
                runs(&layers),
                if with_out { " + output layer" } else { "" }
            ));
        }
        out.push(s);
    }
    // moved groups: (kind, device) → layers; kinds with the same layers and device share a line.
    let mut by: std::collections::BTreeMap<(GroupKind, DeviceId), Vec<u32>> = Default::default();
    for &(g, d) in &p.moved {
        let grp = &anatomy.groups[g];
        let il = match grp.layer {
            LayerRef::Block(il) => il,
            LayerRef::Output | LayerRef::Input => u32::MAX,
        };
        by.entry((grp.kind, d)).or_default().push(il);
    }
    type Line = ((DeviceId, Vec<u32>), Vec<GroupKind>);
    let mut lines: Vec<Line> = Vec::new();
    for ((k, d), mut ls) in by {
        ls.sort_unstable();
        match lines.iter_mut().find(|(key, _)| key.0 == d && key.1 == ls) {
            Some((_, kinds)) => kinds.push(k),
            None => lines.push(((d, ls), vec![k])),
        }
    }
    for ((d, ls), kinds) in lines {
        let routed: Vec<&str> = kinds
            .iter()
            .filter(|k| k.is_routed_experts())
            .map(|k| part_label(*k))
            .collect();
        let mut names: Vec<String> = kinds
            .iter()
            .filter(|k| !k.is_routed_experts())
            .map(|k| kind_label(*k).to_string())
            .collect();
        if !routed.is_empty() {
            names.insert(0, format!("routed experts ({})", routed.join(", ")));
        }
        let what = names.join(" + ");
        let d = host.device_name(d);
        if ls == [u32::MAX] {
            out.push(format!("{what} on {d}"));
        } else {
            out.push(format!("{what} of layers {} on {d}", runs(&ls)));
        }
    }
    out
}
