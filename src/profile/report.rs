//! The solve report: what `placer solve` prints (a table per profile, the command line, the
//! comparison with llama.cpp's `--fit` on the same request) and its JSON form. A library type,
//! like `check::CheckReport`, so it is rendered in one place and snapshot-tested.

use super::Profile;
use crate::anatomy::Anatomy;
use crate::check::CheckReport;
use crate::host::{DeviceId, Host};
use crate::host_model::HostModel;
use crate::solver::SolveRequest;
use crate::units::mib;

/// Everything `placer solve` reports for one request.
pub struct SolveReport<'a> {
    /// Section id prefix (catalog id or file stem).
    pub id: &'a str,
    /// Human name of the model.
    pub name: &'a str,
    /// The model.
    pub anatomy: &'a Anatomy,
    /// The host it was solved for.
    pub host: &'a Host,
    /// The request.
    pub request: &'a SolveRequest,
    /// The profiles (aggressive, moderate).
    pub profiles: &'a [Profile],
    /// llama.cpp's `--fit` on the same request, replayed and priced (None: not comparable).
    pub fit: Option<&'a CheckReport>,
    /// Which calibration priced it ("shipped (data/calibration.toml) (112 runs)").
    pub calibration: String,
    /// The llama.cpp build the commands are written for.
    pub target: &'a crate::target::Target,
    /// llama.cpp's dry runs of the profiles (`confirm_profiles`), or why there were none.
    pub oracle: Result<&'a [super::Confirmation], String>,
}

impl SolveReport<'_> {
    /// The human-readable report: one table per profile and the llama-server command line.
    pub fn render(&self) -> String {
        let profiles = self.profiles;
        let fit = self.fit;
        let mut o = String::new();
        let hp = &self.anatomy.hp;
        let r = self.request;
        o.push_str(&format!(
            "{} ({}, {} layers{}) on {}{} — -c {} -ub {} -ctk {} -ctv {} -np {}\n",
            self.name,
            self.anatomy.arch,
            hp.n_layer,
            if hp.n_expert > 0 {
                format!(", {} experts / {} used", hp.n_expert, hp.n_expert_used)
            } else {
                String::new()
            },
            self.host.name,
            r.devices
                .as_ref()
                .map(|d| format!(
                    " (--devices {})",
                    d.iter()
                        .map(|&i| self.host.device_name(DeviceId::Gpu(i)))
                        .collect::<Vec<_>>()
                        .join(",")
                ))
                .unwrap_or_default(),
            r.n_ctx(self.anatomy),
            if r.ubatch_fixed {
                r.ubatch.to_string()
            } else {
                "auto".to_string()
            },
            r.type_k,
            r.type_v,
            r.n_parallel
        ));
        o.push_str(&format!("calibration: {}\n", self.calibration));
        o.push_str(&format!("flags for: {}\n", self.target.describe()));
        for p in profiles {
            o.push('\n');
            o.push_str(&format!(
                "== {} (margin: {}) ==\n",
                p.kind.name(),
                p.margin_source
            ));
            if let Some(s) = &p.solution {
                o.push_str(&format!(
                    "{:<28} {:>9} {:>9} {:>9} {:>9} {:>19} {:>9}\n",
                    "device (MiB)",
                    "weights",
                    "KV",
                    "compute",
                    "overhead",
                    "total /     cap",
                    "free"
                ));
                for d in &s.devices {
                    let label = match d.device {
                        DeviceId::Gpu(i) => format!(
                            "{} {}",
                            self.host.device_name(d.device),
                            self.host
                                .gpus
                                .get(i)
                                .map(|g| g.model.trim_start_matches("NVIDIA GeForce "))
                                .unwrap_or("")
                        ),
                        DeviceId::Cpu => "CPU (host RAM)".into(),
                    };
                    o.push_str(&format!(
                        "{:<28} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} / {:>7.0} {:>9.0}\n",
                        label,
                        mib(d.weights),
                        mib(d.kv),
                        mib(d.compute),
                        mib(d.overhead),
                        mib(d.total()),
                        mib(d.cap),
                        d.free() as f64 / crate::units::MIB as f64
                    ));
                }
                for line in crate::profile::describe(self.anatomy, self.host, &s.placement) {
                    o.push_str(&format!("  {line}\n"));
                }
                let w = &s.workload;
                o.push_str(&format!(
                    "  predicted decode {:.1} t/s at depth {}, prefill {} ({} hand-offs/token); \
                 request of {} prompt + {} generated tokens: {:.1} s\n",
                    s.decode_tps,
                    w.decode_depth,
                    crate::units::tps_text(s.prefill_tps),
                    s.splits,
                    w.prompt_tokens,
                    w.gen_tokens,
                    s.request_s
                ));
                if let Some(inf) = &s.gpu_only {
                    o.push_str(&format!(
                        "  not everything fits on the chosen GPUs: {}; to keep it all there:\n",
                        inf.reason
                    ));
                    if inf.suggestions.is_empty() {
                        o.push_str("    - no single change found\n");
                    }
                    for sug in &inf.suggestions {
                        o.push_str(&format!("    - {}\n", sug.change));
                    }
                }
                if let Some(c) = &s.ubatch_choice {
                    o.push_str(&format!("  {c}\n"));
                }
                o.push_str(&format!("  {}\n", s.speed_source));
                for w in &s.warnings {
                    o.push_str(&format!("  warning: {w}\n"));
                }
                let facts = self.target.facts();
                for n in crate::emit::argv_for(&s.launch, facts).notes {
                    o.push_str(&format!("  note: {n}\n"));
                }
                o.push_str(&format!(
                    "  {}\n",
                    crate::emit::command_line_for(&s.launch, facts)
                ));
            }
            if let Some(inf) = &p.infeasible {
                o.push_str(&format!("  {}", inf.reason));
                o.push('\n');
                if inf.suggestions.is_empty() {
                    o.push_str("  no single change found that makes it fit\n");
                } else {
                    o.push_str("  smallest changes that fit:\n");
                    for s in &inf.suggestions {
                        o.push_str(&format!("    - {}\n", s.change));
                    }
                }
            }
        }
        match &self.oracle {
            Ok(cs) if !cs.is_empty() => {
                o.push_str("\n== llama.cpp's own dry run (llama-fit-params) of each profile ==\n");
                for c in cs.iter() {
                    o.push_str(&super::render_confirmation(c));
                }
            }
            Ok(_) => {}
            Err(why) => o.push_str(&format!("\nllama.cpp dry run: {why}\n")),
        }
        if let Some(b) = fit {
            o.push_str("\n== llama.cpp --fit on the same request (replayed on this memory model, src/fitsim.rs) ==\n");
            if let Some(f) = &b.fit_choice {
                o.push_str(&format!("  {f}\n"));
            }
            match &b.speed {
                Some(sp) => {
                    o.push_str(&format!(
                        "  predicted decode {:.1} t/s, prefill {}\n",
                        sp.decode_tps,
                        crate::units::tps_text(sp.prefill_tps)
                    ));
                    for p in profiles {
                        if let Some(sol) = &p.solution {
                            let pre = match (sol.prefill_tps, sp.prefill_tps) {
                                (Some(a), Some(b)) if b > 0.0 => format!(", prefill {:.2}×", a / b),
                                _ => String::new(),
                            };
                            o.push_str(&format!(
                                "  placer {}: decode {:.2}×{pre} of --fit's (predicted)\n",
                                p.kind.name(),
                                sol.decode_tps / sp.decode_tps
                            ));
                        }
                    }
                }
                None => o.push_str(&format!("  verdict: {}\n", b.verdict_text)),
            }
        }
        o
    }
}

impl SolveReport<'_> {
    /// The JSON form: the request, every profile with its argv and command line, the `--fit`
    /// baseline.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.id,
            "name": self.name,
            "host": self.host.name,
            "calibration": self.calibration,
            "request": self.request,
            "llama_build": self.target.facts().build,
            "oracle": match &self.oracle {
                Ok(cs) => serde_json::json!(cs),
                Err(why) => serde_json::json!({ "not_run": why }),
            },
            "flags_for": self.target.describe(),
            "profiles": self.profiles.iter().map(|p| profile_json(p, self.target.facts())).collect::<Vec<_>>(),
            "fit_baseline": self.fit.map(|b| serde_json::json!({
                "choice": b.fit_choice,
                "verdict": b.verdict_text,
                "speed": b.speed,
                "gpu_free_mib": b.prediction.gpus.iter().map(|g| g.free() / crate::units::MIB as i64).collect::<Vec<_>>(),
            })),
        })
    }
}

fn profile_json(p: &Profile, facts: &crate::builds::BuildFacts) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    if let Some(s) = &p.solution {
        let r = crate::emit::argv_for(&s.launch, facts);
        v["argv"] = serde_json::json!(r.argv);
        v["notes"] = serde_json::json!(r.notes);
        v["command"] = serde_json::json!(crate::emit::command_line_for(&s.launch, facts));
    }
    v
}

/// What llama.cpp's `--fit` would choose for the same request (its own 1024 MiB targets, every
/// GPU of the host), checked and priced like any command. None with `--devices`/`--gpu-only`
/// (not a --fit request) or no GPU.
pub fn fit_baseline(anatomy: &Anatomy, hm: &HostModel, r: &SolveRequest) -> Option<CheckReport> {
    let host = &hm.host;
    if r.devices.is_some() || r.gpu_only || host.gpus.is_empty() {
        return None;
    }
    let base = crate::launch::LaunchConfig {
        fit: true,
        gpu_layers: crate::launch::GpuLayers::Auto,
        tensor_split: None,
        overrides: Vec::new(),
        fit_target_mib: vec![crate::fitsim::FIT_TARGET_MIB],
        ..crate::solver::request_launch(r)
    };
    let workload = crate::check::Workload {
        prompt: Some(r.prompt_tokens(anatomy)),
        gen: Some(r.gen_tokens(anatomy)),
        prefix: Some(r.prefix_tokens(anatomy)),
        ..Default::default()
    };
    crate::check::check_with(anatomy, &base, hm, Vec::new(), workload).ok()
}
