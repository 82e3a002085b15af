//! `placer solve MODEL`: the fastest placement that fits, as an aggressive and a moderate profile.

use crate::anatomy::Anatomy;
use crate::calibration::Calibration;
use crate::gguf::GgmlType;
use crate::host::Host;
use crate::solver::SolveRequest;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Catalog id (models/<id>.toml, e.g. glm-q8) or a path to a .gguf / header snapshot.
    pub model: String,
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
    /// Use only these GPUs (llama.cpp's `--device`), e.g. `--devices CUDA0` or `CUDA0,CUDA1`.
    #[arg(long = "devices", alias = "device")]
    pub devices: Option<String>,
    /// Keep every weight on the GPUs (nothing but the token embeddings on the CPU); when that
    /// does not fit, say the smallest change that does.
    #[arg(long)]
    pub gpu_only: bool,
    #[command(flatten)]
    pub common: super::common::CommonArgs,
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
        .filter(|t| crate::launch::kv_type_ok(*t))
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
    /// Which calibration it is (shown in the report).
    pub calibration_source: super::common::CalibrationSource,
    pub request: SolveRequest,
}

pub fn inputs(a: &Args) -> anyhow::Result<Inputs> {
    let dir = a.common.models_dir();
    let is_id = !a.model.ends_with(".gguf") && !std::path::Path::new(&a.model).is_file();
    let gguf = crate::catalog::load_model(&a.model, Some(&dir))?;
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
    let host = a.common.host()?;
    let (calibration, calibration_source) = a.common.calibration()?;
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
    let tool = a.common.tool.unwrap_or(crate::launch::Tool::Server);
    anyhow::ensure!(
        tool != crate::launch::Tool::Bench,
        "--tool bench: solve plans for llama-server (server) or llama-cli / llama-completion (cli)"
    );
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
        calibration_source,
        request,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let inp = inputs(&a)?;
    let profiles =
        crate::profile::solve_profiles(&inp.anatomy, &inp.host, &inp.request, &inp.calibration);
    let fit = crate::profile::fit_baseline(&inp.anatomy, &inp.host, &inp.request, &inp.calibration);
    let report = crate::profile::SolveReport {
        id: &inp.id,
        name: &inp.name,
        anatomy: &inp.anatomy,
        host: &inp.host,
        request: &inp.request,
        profiles: &profiles,
        fit: fit.as_ref(),
        calibration: inp.calibration_source.to_string(),
    };
    if a.common.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render());
    }
    if let Some(path) = &a.write {
        let fit_flags = fit
            .as_ref()
            .and_then(|b| b.fit_choice.as_deref())
            .map(|c| c.split(':').next().unwrap_or(c).trim().to_string());
        let src = crate::profile::ConfSource {
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
            .filter_map(|p| crate::profile::conf_section(&src, &inp.anatomy, p))
            .collect();
        if sections.is_empty() {
            return Err(super::DoesNotFit(format!(
                "nothing written to {}: no profile fits (see the smallest changes above)",
                path.display()
            ))
            .into());
        }
        for note in crate::modelsconf::write::upsert_file(path, &sections)? {
            eprintln!("note: {note}");
        }
        let names: Vec<String> = sections.iter().map(|s| format!("[{}]", s.name)).collect();
        eprintln!("wrote {} to {}", names.join(" and "), path.display());
    }
    if profiles.iter().all(|p| p.solution.is_none()) {
        return Err(super::DoesNotFit(
            "placer solve: no profile fits (see the smallest changes above)".into(),
        )
        .into());
    }
    Ok(())
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
