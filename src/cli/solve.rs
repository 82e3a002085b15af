//! `placer solve MODEL`: the fastest placement that fits, as an aggressive and a moderate profile.

use crate::anatomy::Anatomy;
use crate::calibrate::Calibration;
use crate::gguf::GgmlType;
use crate::host::{DeviceId, Host};
use crate::profile::Profile;
use crate::solver::SolveRequest;
use crate::units::mib;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Catalog id (models/<id>.toml, e.g. glm-q8) or a path to a .gguf / header snapshot.
    pub model: String,
    /// Host: a shipped name (users-4090-5070ti, single-24gb, …) or a host TOML file.
    #[arg(long)]
    pub host: Option<String>,
    /// Context size (`-c`); 0 = the model's training context.
    #[arg(long = "ctx", short = 'c', default_value_t = 0)]
    pub ctx: u32,
    /// Micro-batch (`-ub`); sizes the compute buffers. Default: placer chooses among
    /// 512/1024/2048/4096 when CPU weights stream to the GPU during prefill, else 512.
    #[arg(long = "ub", alias = "ubatch-size")]
    pub ubatch: Option<u32>,
    /// Logical batch (`-b`).
    #[arg(long = "batch-size", short = 'b', default_value_t = 2048)]
    pub batch: u32,
    /// K cache type (`-ctk`): f16, q8_0, q4_0, …
    #[arg(long = "ctk", alias = "cache-type-k", default_value = "f16")]
    pub type_k: String,
    /// V cache type (`-ctv`).
    #[arg(long = "ctv", alias = "cache-type-v", default_value = "f16")]
    pub type_v: String,
    /// Parallel sequences (`-np`).
    #[arg(long = "parallel", alias = "np", default_value_t = 1)]
    pub parallel: u32,
    /// Workload: prompt tokens per request (default: half the context).
    #[arg(long)]
    pub prompt: Option<u32>,
    /// Workload: generated tokens per request (default: 128).
    #[arg(long)]
    pub gen: Option<u32>,
    /// Context depth attention reads per generated token (default: prompt + gen / 2).
    #[arg(long)]
    pub depth: Option<u32>,
    /// Older spelling of the workload: prompt tokens per generated token (sets --prompt to
    /// this × --gen when --prompt is not given).
    #[arg(long)]
    pub prefill_weight: Option<f64>,
    /// What `-m` / MODEL= should say (default: the catalog's file name, or the path given).
    #[arg(long)]
    pub model_path: Option<String>,
    /// Calibration file (default: the shipped data/calibration.toml).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Use only these GPUs (llama.cpp's `--device`), e.g. `--devices CUDA0` or `CUDA0,CUDA1`.
    #[arg(long = "devices", alias = "device")]
    pub devices: Option<String>,
    /// Keep every weight on the GPUs (nothing but the token embeddings on the CPU); when that
    /// does not fit, say the smallest change that does.
    #[arg(long)]
    pub gpu_only: bool,
    /// The llama.cpp program that will run the flags: llama-server (default), llama-completion or
    /// llama-cli (they reserve a whole ubatch of logits, which changes the compute buffers).
    #[arg(long, default_value = "llama-server")]
    pub tool: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Add or replace [<id>-aggressive] / [<id>-moderate] in this models.conf.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// `-ub`, `-ctk`, `-ctv`, `-np` as llama.cpp spells them → the long options clap knows.
pub fn normalize_argv<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let args: Vec<String> = args.into_iter().collect();
    let is_solve = args.get(1).map(|s| s == "solve").unwrap_or(false);
    args.into_iter()
        .map(|a| {
            if !is_solve {
                return a;
            }
            match a.as_str() {
                "-ub" => "--ub".into(),
                "-ctk" => "--ctk".into(),
                "-ctv" => "--ctv".into(),
                "-np" => "--parallel".into(),
                _ => a,
            }
        })
        .collect()
}

fn kv_type(s: &str) -> anyhow::Result<GgmlType> {
    GgmlType::from_name(s)
        .filter(|t| crate::emit::kv_type_ok(*t))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown KV cache type {s:?}; llama.cpp accepts {}",
                crate::launch::KV_CACHE_TYPES.join(", ")
            )
        })
}

/// Everything `solve` needs, resolved from the arguments.
pub struct Inputs {
    pub id: String,
    pub name: String,
    pub arch_source: String,
    pub anatomy: Anatomy,
    pub host: Host,
    pub calibration: Calibration,
    pub request: SolveRequest,
}

pub fn inputs(a: &Args) -> anyhow::Result<Inputs> {
    let dir = crate::catalog::models_dir();
    let is_id = !a.model.ends_with(".gguf") && !std::path::Path::new(&a.model).is_file();
    let gguf = crate::catalog::load_model(&a.model, None)?;
    let anatomy = crate::anatomy::from_gguf(&gguf)?;
    let (id, name, path, arch_source) = if is_id {
        let e = crate::catalog::entry(&a.model, &dir)?;
        let file = e
            .source
            .files
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{}.gguf", e.id));
        let snap = crate::catalog::snapshot_path(&a.model, &dir);
        (
            e.id.clone(),
            e.name.clone(),
            file,
            format!("GGUF header snapshot {}", snap.display()),
        )
    } else {
        let stem = std::path::Path::new(&a.model)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .to_string();
        let name = anatomy.name.clone().unwrap_or_else(|| stem.clone());
        (
            stem,
            name,
            a.model.clone(),
            format!("GGUF header of {}", a.model),
        )
    };
    let host = match &a.host {
        Some(h) => Host::by_name_or_path(h)?,
        None => crate::host::default_host(),
    };
    let calibration = match &a.calibration {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("bad calibration file {}: {e}", p.display()))?
        }
        None => Calibration::shipped(),
    };
    let type_k = kv_type(&a.type_k)?;
    let type_v = kv_type(&a.type_v)?;
    if a.ubatch == Some(0) || a.batch == 0 {
        anyhow::bail!("-b and -ub must be at least 1");
    }
    let gen = a.gen;
    let prompt = a.prompt.or_else(|| {
        a.prefill_weight
            .map(|w| (w.max(0.0) * gen.unwrap_or(crate::solver::DEFAULT_GEN) as f64).round() as u32)
    });
    check_workload_fits(a.ctx, prompt, gen)?;
    let devices = match &a.devices {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|n| {
                    let t = n.trim();
                    t.to_ascii_lowercase()
                        .strip_prefix("cuda")
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|&i| i < host.gpus.len())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--devices {t}: host {} has {}",
                                host.name,
                                (0..host.gpus.len())
                                    .map(|i| format!("CUDA{i}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                })
                .collect::<anyhow::Result<Vec<usize>>>()?,
        ),
    };
    let tool = match a.tool.as_str() {
        "llama-server" | "server" => crate::launch::Tool::Server,
        "llama-completion" | "llama-cli" | "completion" | "cli" => crate::launch::Tool::Cli,
        t => anyhow::bail!("--tool {t}: expected llama-server, llama-completion or llama-cli"),
    };
    let request = SolveRequest {
        model_path: a.model_path.clone().unwrap_or(path),
        ctx: a.ctx,
        batch: a.batch,
        ubatch: a.ubatch.unwrap_or(SolveRequest::default().ubatch),
        ubatch_fixed: a.ubatch.is_some(),
        type_k,
        type_v,
        n_parallel: a.parallel.max(1),
        decode_depth: a.depth,
        prompt,
        gen,
        devices,
        gpu_only: a.gpu_only,
        tool,
        host_gpus: host.gpus.len(),
        ..SolveRequest::default()
    };
    Ok(Inputs {
        id,
        name,
        arch_source,
        anatomy,
        host,
        calibration,
        request,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let inp = inputs(&a)?;
    let profiles =
        crate::profile::solve_profiles(&inp.anatomy, &inp.host, &inp.request, &inp.calibration);
    let fit = fit_baseline(&inp);
    if a.json {
        let v = serde_json::json!({
            "model": inp.id,
            "name": inp.name,
            "host": inp.host.name,
            "request": inp.request,
            "profiles": profiles.iter().map(profile_json).collect::<Vec<_>>(),
            "fit_baseline": fit.as_ref().map(|b| serde_json::json!({
                "choice": b.fit_choice,
                "verdict": b.verdict_text,
                "speed": b.speed,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&inp, &profiles, fit.as_ref()));
    }
    if let Some(path) = &a.write {
        let fit_flags = fit
            .as_ref()
            .and_then(|b| b.fit_choice.as_deref())
            .map(|c| c.split(':').next().unwrap_or(c).trim().to_string());
        let src = crate::emit::ConfSource {
            id: &inp.id,
            name: &inp.name,
            arch_source: &inp.arch_source,
            host: &inp.host,
            calibration: &inp.calibration,
            fit_baseline: match (&fit_flags, fit.as_ref().and_then(|b| b.speed.as_ref())) {
                (Some(f), Some(sp)) => Some((f.as_str(), sp.decode_tps, sp.prefill_tps)),
                _ => None,
            },
        };
        let sections: Vec<_> = profiles
            .iter()
            .filter_map(|p| crate::emit::conf_section(&src, &inp.anatomy, p))
            .collect();
        if sections.is_empty() {
            anyhow::bail!(
                "nothing written to {}: no profile fits (see the suggestions above)",
                path.display()
            );
        }
        crate::modelsconf::write::upsert_file(path, &sections)?;
        let names: Vec<String> = sections.iter().map(|s| format!("[{}]", s.name)).collect();
        eprintln!("wrote {} to {}", names.join(" and "), path.display());
    }
    Ok(())
}

fn profile_json(p: &Profile) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    if let Some(s) = &p.solution {
        v["argv"] = serde_json::json!(crate::emit::argv(&s.launch));
        v["command"] = serde_json::json!(crate::emit::command_line(&s.launch));
    }
    v
}

/// The human-readable report: one table per profile and the llama-server command line.
pub fn render(
    inp: &Inputs,
    profiles: &[Profile],
    fit: Option<&crate::check::CheckReport>,
) -> String {
    let mut o = String::new();
    let hp = &inp.anatomy.hp;
    let r = &inp.request;
    o.push_str(&format!(
        "{} ({}, {} layers{}) on {}{} — -c {} -ub {} -ctk {} -ctv {} -np {}\n",
        inp.name,
        inp.anatomy.arch,
        hp.n_layer,
        if hp.n_expert > 0 {
            format!(", {} experts / {} used", hp.n_expert, hp.n_expert_used)
        } else {
            String::new()
        },
        inp.host.name,
        r.devices
            .as_ref()
            .map(|d| format!(
                " (--devices {})",
                d.iter()
                    .map(|i| format!("CUDA{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .unwrap_or_default(),
        r.n_ctx(&inp.anatomy),
        if r.ubatch_fixed {
            r.ubatch.to_string()
        } else {
            "auto".to_string()
        },
        r.type_k,
        r.type_v,
        r.n_parallel
    ));
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
                "device (MiB)", "weights", "KV", "compute", "overhead", "total /     cap", "free"
            ));
            for d in &s.devices {
                let label = match d.device {
                    DeviceId::Gpu(i) => format!(
                        "{} {}",
                        d.device,
                        inp.host
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
                    d.free() as f64 / (1u64 << 20) as f64
                ));
            }
            for line in crate::profile::describe(&inp.anatomy, &s.placement) {
                o.push_str(&format!("  {line}\n"));
            }
            let w = &s.workload;
            o.push_str(&format!(
                "  predicted decode {:.1} t/s at depth {}, prefill {} ({} hand-offs/token); \
                 request of {} prompt + {} generated tokens: {:.1} s\n",
                s.decode_tps,
                w.decode_depth,
                crate::solver::tps_text(s.prefill_tps),
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
            o.push_str(&format!("  {}\n", crate::emit::command_line(&s.launch)));
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
                    crate::solver::tps_text(sp.prefill_tps)
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

/// A request holds its prompt and its generated tokens in one sequence's context; a workload
/// that cannot fit would be priced at depths llama.cpp never reaches.
fn check_workload_fits(ctx: u32, prompt: Option<u32>, gen: Option<u32>) -> anyhow::Result<()> {
    if ctx == 0 {
        return Ok(()); // training context: checked against the model later (prompt is clamped)
    }
    let g = gen.unwrap_or(crate::solver::DEFAULT_GEN);
    if g >= ctx {
        anyhow::bail!(
            "--gen {g} does not fit in --ctx {ctx}: a request's generated tokens share the context \
             with its prompt; use --gen {} or less, or a larger --ctx",
            ctx / 2
        );
    }
    if let Some(p) = prompt {
        if p as u64 + g as u64 > ctx as u64 {
            anyhow::bail!(
                "--prompt {p} + --gen {g} = {} tokens do not fit in --ctx {ctx}; use --prompt {} \
                 or less, or --ctx {} or more",
                p as u64 + g as u64,
                ctx - g,
                (p as u64 + g as u64).next_multiple_of(1024)
            );
        }
    }
    Ok(())
}

/// What llama.cpp's `--fit` would choose for the same request (its own 1024 MiB targets, every
/// GPU of the host), checked and priced like any command. None with `--devices`/`--gpu-only`
/// (not a --fit request) or no GPU.
fn fit_baseline(inp: &Inputs) -> Option<crate::check::CheckReport> {
    let r = &inp.request;
    if r.devices.is_some() || r.gpu_only || inp.host.gpus.is_empty() {
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
        prompt: Some(r.prompt_tokens(&inp.anatomy)),
        gen: Some(r.gen_tokens()),
    };
    crate::check::check_with(
        &inp.anatomy,
        &base,
        &inp.host,
        &inp.calibration,
        Vec::new(),
        workload,
    )
    .ok()
}
