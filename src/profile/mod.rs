//! Aggressive and moderate profiles: a placement, its launch flags, its prediction.
//!
//! The two profiles differ only in the memory kept free on every device. The margins come from
//! the calibration (`Calibration::margins`, data/calibration.toml — learned from the distribution
//! of memory-prediction errors by `placer calibrate`), plus the per-GPU margin an observed OOM
//! added (`GpuCalibration::oom_margin_mib`). They are printed with every profile.

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
use crate::calibration::Calibration;
use crate::host::{DeviceId, Host};
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

/// Margins of a profile on `host`: the calibrated profile margin on every GPU plus that GPU's
/// OOM margin; the same profile margin on host RAM.
pub fn margins(kind: ProfileKind, host: &Host, cal: &Calibration) -> (Margins, String) {
    let base = match kind {
        ProfileKind::Aggressive => cal.margins.aggressive_mib,
        ProfileKind::Moderate => cal.margins.moderate_mib,
    };
    // Calibration::gpu_margins_mib adds what OOMs taught about the GPU model and that very device.
    let mut gpu_mib: Vec<f64> = cal.gpu_margins_mib(kind == ProfileKind::Aggressive, host);
    // Testbed runs record their host by label ("gpu:24000", "emul:24000,12800": the usable MiB
    // per GPU, testbed/MANIFEST.md), the host files by name; an OOM margin learned under either
    // applies to this host.
    let labels = host_labels(host);
    for (i, m) in gpu_mib.iter_mut().enumerate() {
        let dev = format!("CUDA{i}");
        let by_label = labels
            .iter()
            .map(|l| cal.device_extra_mib(l, &dev))
            .fold(0.0, f64::max);
        *m += (by_label - cal.device_extra_mib(&host.name, &dev)).max(0.0);
    }
    let mut learned: Vec<String> = Vec::new();
    for (i, g) in host.gpus.iter().enumerate() {
        let dev = format!("CUDA{i}");
        let model_mib = cal.gpu(&g.model).oom_margin_mib;
        if model_mib > 0.0 {
            learned.push(format!(
                "{dev} +{model_mib:.0} MiB learned from OOMs on {} GPUs (gpus.oom_margin_mib)",
                g.model
            ));
        }
        // The device's margin is its largest learned entry (Calibration::device_extra_mib).
        let largest = cal
            .device_margins
            .iter()
            .filter(|m| labels.contains(&m.host) && m.device == dev && m.extra_mib > 0.0)
            .max_by(|a, b| a.extra_mib.total_cmp(&b.extra_mib));
        if let Some(dm) = largest {
            let from = if dm.from.is_empty() {
                "an OOM log".to_string()
            } else {
                format!("the OOM in run {}", dm.from)
            };
            learned.push(format!(
                "{dev} +{:.0} MiB learned from {from} (device_margins, host {})",
                dm.extra_mib, dm.host
            ));
        }
    }
    let mut src = format!(
        "{base:.0} MiB per device = calibration margins.{}_mib (data/calibration.toml, {} runs, llama.cpp {})",
        kind.name(),
        cal.n_runs,
        cal.llama_build
    );
    if !learned.is_empty() {
        src.push_str(&format!("; {}", learned.join(", ")));
    }
    (
        Margins {
            gpu_mib,
            ram_mib: base,
        },
        src,
    )
}

/// The names an OOM margin may have recorded this host under: its name, and the testbed's labels
/// `gpu:<usable MiB per GPU>` / `emul:<…>`.
fn host_labels(host: &Host) -> Vec<String> {
    let usable = host
        .gpus
        .iter()
        .map(|g| g.usable_mib.to_string())
        .collect::<Vec<_>>()
        .join(",");
    vec![
        host.name.clone(),
        format!("gpu:{usable}"),
        format!("emul:{usable}"),
    ]
}

/// Solve both profiles, concurrently (rayon::join): they share nothing but the inputs.
pub fn solve_profiles(
    anatomy: &Anatomy,
    host: &Host,
    req: &SolveRequest,
    cal: &Calibration,
) -> Vec<Profile> {
    let one = |kind: ProfileKind| {
        let (m, src) = margins(kind, host, cal);
        let r = solver::solve(anatomy, host, req, cal, &m);
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

/// The placement in words: layer ranges per device, then moved groups.
pub fn describe(anatomy: &Anatomy, p: &Placement) -> Vec<String> {
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
        let mut s = format!("{d}: ");
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
        if ls == [u32::MAX] {
            out.push(format!("{what} on {d}"));
        } else {
            out.push(format!("{what} of layers {} on {d}", runs(&ls)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OOM margin recorded under the testbed's label (`gpu:24000`) applies to a host file with
    /// another name but the same usable memory, is added to that device's budget and is printed
    /// with the run it came from; a host with other usable memory does not get it.
    #[test]
    fn oom_margin_by_testbed_label() {
        let mut cal = Calibration::shipped();
        cal.device_margins = vec![crate::calibration::DeviceMargin {
            host: "gpu:24000".into(),
            device: "CUDA0".into(),
            extra_mib: 200.0,
            from: "some-run--hand".into(),
        }];
        let mut host = crate::host::Host::by_name_or_path("single-24gb").unwrap();
        host.name = "my-box".into();
        host.gpus.truncate(1);
        host.gpus[0].usable_mib = 24000;
        let (m, src) = margins(ProfileKind::Aggressive, &host, &cal);
        let base = cal.margins.aggressive_mib + cal.gpu(&host.gpus[0].model).oom_margin_mib;
        assert_eq!(m.gpu_mib[0], base + 200.0);
        assert!(
            src.contains("+200 MiB learned from the OOM in run some-run--hand"),
            "{src}"
        );
        host.gpus[0].usable_mib = 23000;
        let (m, src) = margins(ProfileKind::Aggressive, &host, &cal);
        assert_eq!(m.gpu_mib[0], base);
        assert!(!src.contains("some-run"), "{src}");
    }
}
