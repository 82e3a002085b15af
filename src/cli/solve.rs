//! `placer solve MODEL`: the fastest placement that fits, as an aggressive and a moderate profile.

use crate::anatomy::Anatomy;
use crate::gguf::GgmlType;
use crate::host::Host;
use crate::host_model::HostModel;
use crate::modelsconf::read::Section;
use crate::solver::SolveRequest;
use anyhow::Context;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Catalog id (models/<id>.toml, e.g. glm-q8), a path to a .gguf / header snapshot, a
    /// published GGUF (`hf:user/repo[:QUANT]` as llama.cpp's -hf names it, or an https URL: only
    /// its header is fetched, docs/remote.md), or a section of the user's models.conf (`models.conf:SECTION`: its MODEL, CTX_SIZE, KV types,
    /// -b, -np are the request, its own flags like --jinja are kept; placer decides -ngl -ts -ot
    /// -sm -mg -ub and the load mode). `--write models.conf:SECTION` alone names it too.
    pub model: Option<String>,
    /// Context size (`-c`); 0 = the model's training context. Default: the section's CTX_SIZE,
    /// else 0.
    #[arg(long = "ctx", short = 'c', value_parser = ctx_arg)]
    pub ctx: Option<u32>,
    /// Micro-batch (`-ub`); sizes the compute buffers. Default: placer chooses among
    /// 512/1024/2048/4096 when CPU weights stream to the GPU during prefill, else 512.
    #[arg(long = "ub", alias = "ubatch-size", value_parser = ubatch_arg)]
    pub ubatch: Option<u32>,
    /// Logical batch (`-b`). Default: the section's, else 2048.
    #[arg(long = "batch-size", short = 'b', value_parser = batch_arg)]
    pub batch: Option<u32>,
    /// K cache type (`-ctk`): f16, q8_0, q4_0, … Default: the section's, else f16.
    #[arg(long = "ctk", alias = "cache-type-k")]
    pub type_k: Option<String>,
    /// V cache type (`-ctv`). Default: the section's, else f16.
    #[arg(long = "ctv", alias = "cache-type-v")]
    pub type_v: Option<String>,
    /// Parallel sequences (`-np`), the same rule as `check` (`launch::n_parallel`): for
    /// llama-server 0 is refused, at most 256. Default: the section's, else 1.
    #[arg(long = "parallel", alias = "np", value_parser = int_arg, allow_negative_numbers = true)]
    pub parallel: Option<i32>,
    #[command(flatten)]
    pub workload: super::common::WorkloadArgs,
    /// Context depth attention reads per generated token (default: prefix + prompt + gen / 2).
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
    /// Add or replace [<id>-aggressive] / [<id>-moderate] in this models.conf (with a section
    /// as MODEL: [SECTION-aggressive] / [SECTION-moderate] in that file when no path is given).
    #[arg(long, num_args = 0..=1, value_name = "MODELS_CONF")]
    pub write: Option<Option<PathBuf>>,
    /// With `models.conf:SECTION`: rewrite SECTION itself with the chosen profile (`--profile`),
    /// the old version commented out above it, as the users do by hand.
    #[arg(long)]
    pub in_place: bool,
    /// Also add or replace the same sections in llama-server's router preset file
    /// (`llama-server --models-preset FILE`, INI; docs/presets.md), in llama.cpp's own key
    /// spelling; every other byte of the file is kept.
    #[arg(long, value_name = "PRESET_INI")]
    pub write_preset: Option<PathBuf>,
    /// Do not confirm the profiles with llama.cpp's `llama-fit-params` dry run (run by default
    /// when the target build's llama-server has it beside it and MODEL is a full GGUF file).
    #[arg(long)]
    pub no_oracle: bool,
    /// Arguments put in front of the profile's flags for the dry run (e.g. `--rpc host:port,…`
    /// where the devices are RPC servers).
    #[arg(
        long,
        value_name = "ARGS",
        allow_hyphen_values = true,
        value_delimiter = ' '
    )]
    pub oracle_args: Vec<String>,
    /// The profile `--in-place` writes.
    #[arg(long, value_enum, default_value = "aggressive")]
    pub profile: crate::profile::ProfileKind,
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

/// `--ctx`, `--ub`, `-b`, `--parallel` are read like llama.cpp's `-c -ub -b -np` (`std::stoi`
/// into int32, then llama.cpp's range rule: `launch::stoi`, `launch::ctx_size`, …), so `solve`
/// and `check` accept and refuse the same values.
fn int_arg(v: &str) -> Result<i32, String> {
    crate::launch::stoi("-np", v)
        .and_then(|(n, rest)| {
            anyhow::ensure!(rest.is_empty(), "{v:?} is not a whole number");
            Ok(n)
        })
        .map_err(|e| e.to_string())
}

fn ctx_arg(v: &str) -> Result<u32, String> {
    crate::launch::stoi("-c", v)
        .and_then(|(n, rest)| {
            anyhow::ensure!(rest.is_empty(), "{v:?} is not a whole number");
            crate::launch::ctx_size(n)
        })
        .map_err(|e| e.to_string())
}

fn ubatch_arg(v: &str) -> Result<u32, String> {
    crate::launch::stoi("-ub", v)
        .and_then(|(n, rest)| {
            anyhow::ensure!(rest.is_empty(), "{v:?} is not a whole number");
            crate::launch::ubatch_size("-ub", n)
        })
        .map_err(|e| e.to_string())
}

fn batch_arg(v: &str) -> Result<u32, String> {
    crate::launch::stoi("-b", v)
        .and_then(|(n, rest)| {
            anyhow::ensure!(rest.is_empty(), "{v:?} is not a whole number");
            crate::launch::batch_size("-b", n)
        })
        .map_err(|e| e.to_string())
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
    /// The user's models.conf section the request came from, and its file.
    pub section: Option<(PathBuf, Section)>,
    pub id: String,
    pub name: String,
    pub arch_source: String,
    pub anatomy: Anatomy,
    pub host: Host,
    /// The host resolved under the calibration, once (rates, memory constants, margins).
    pub host_model: HostModel,
    /// Which calibration it is (shown in the report).
    pub calibration_source: super::common::CalibrationSource,
    pub request: SolveRequest,
    /// The llama.cpp build the flags are written for.
    pub target: crate::target::Target,
    /// MODEL is a full GGUF file (weights present), which llama-fit-params can read.
    pub full_model: bool,
}

/// `models.conf:SECTION` given as MODEL: the file and the section.
pub fn section_spec(model: &str) -> anyhow::Result<Option<(PathBuf, Section)>> {
    let Some((file, _)) = model.rsplit_once(':') else {
        return Ok(None);
    };
    if file.is_empty() || Path::new(model).is_file() || !Path::new(file).is_file() {
        return Ok(None);
    }
    crate::modelsconf::read::load_spec(model).map(Some)
}

/// `--write` given a `models.conf:SECTION` (clap takes the word after `--write` as its file):
/// with no MODEL, or with the same section as MODEL, it is the section to plan and write next
/// to (`solve models.conf:SECTION --write`); with another MODEL the word is named in the error.
/// A `FILE:SECTION` whose FILE does not exist is refused rather than created as a file with a
/// colon in its name.
pub fn settle_write(mut a: Args) -> anyhow::Result<Args> {
    if let Some(Some(w)) = &a.write {
        let word = w.to_string_lossy().to_string();
        if let Some((file, section)) = word
            .rsplit_once(':')
            .filter(|(f, s)| !f.is_empty() && !s.is_empty() && !w.exists())
        {
            anyhow::ensure!(
                Path::new(file).is_file(),
                "--write {word}: no file {file} (--write takes a models.conf file; to plan a \
                 section give it as MODEL: `placer solve {word} --write`)"
            );
            match a.model.as_deref() {
                None => a.model = Some(word),
                Some(m) if m == word => {}
                Some(m) => anyhow::bail!(
                    "--write {word}: --write takes a file, not a section; {m:?} is the MODEL. \
                     To add the profiles to {file}: `--write {file}`; to plan section [{section}]: \
                     `placer solve {word} --write`"
                ),
            }
            a.write = Some(None);
        }
    }
    anyhow::ensure!(
        a.model.is_some(),
        "no MODEL: give a catalog id, a .gguf path or models.conf:SECTION (`placer solve MODEL`)"
    );
    Ok(a)
}

pub fn inputs(a: &Args) -> anyhow::Result<Inputs> {
    let dir = a.common.models_dir();
    let target = a.common.target()?;
    let model = a.model.as_deref().unwrap_or_default();
    let section = section_spec(model)?;
    // The user's command, when MODEL is a models.conf section: validated against the target
    // build's options (llama.cpp would refuse an unknown one) and read like any launch.
    let from_conf = match &section {
        None => None,
        Some((file, s)) => {
            let argv = crate::launch::section_argv(s)?;
            if let Some(t) = crate::emit::build_tool(crate::launch::Tool::Server) {
                target.facts().validate_argv(&argv, t).map_err(|e| {
                    anyhow::anyhow!(
                        "{}:[{}]: {e}; llama.cpp would refuse to start (option table: {})",
                        file.display(),
                        s.name,
                        target.describe()
                    )
                })?;
            }
            let cfg = crate::launch::from_section(s)?.config;
            anyhow::ensure!(
                !cfg.model.is_empty(),
                "{}:[{}] has no MODEL=; add the model's path (relative to your models folder)",
                file.display(),
                s.name
            );
            Some(cfg)
        }
    };
    let model_word = from_conf.as_ref().map_or(model, |c| c.model.as_str());
    let conf_dir = section
        .as_ref()
        .and_then(|(f, _)| f.parent().map(Path::to_path_buf));
    let resolved = crate::catalog::resolve_model(model_word, conf_dir.as_deref(), Some(&dir));
    let is_id = matches!(resolved, Some(crate::catalog::ModelRef::CatalogId(_)))
        || (resolved.is_none() && !model_word.ends_with(".gguf"));
    let load_word = match &resolved {
        Some(crate::catalog::ModelRef::File(f)) => f.to_string_lossy().to_string(),
        _ => model_word.to_string(),
    };
    let remote = match &resolved {
        Some(crate::catalog::ModelRef::Remote(src)) => {
            Some(crate::catalog::load_remote(src, &a.common.remote())?)
        }
        _ => None,
    };
    let loaded = match &remote {
        Some(r) => Ok(r.model.clone()),
        None => crate::catalog::load_model_with(&load_word, Some(&dir), &a.common.remote()),
    };
    let gguf = loaded.with_context(|| {
        if section.is_some() {
            format!(
                "MODEL={model_word}: not found relative to the models folder ({}), the \
                 models.conf folder or as given; pass --models-dir DIR (or set models_dir in \
                 the config file)",
                dir.display()
            )
        } else {
            format!("cannot read model {model_word:?}")
        }
    })?;
    let anatomy = crate::anatomy::from_gguf(&gguf)?;
    // A file holding every tensor's bytes (not a header snapshot): what llama-fit-params reads.
    let full_model =
        !is_id && gguf.has_tensor_data() && remote.as_ref().is_none_or(|r| r.local.is_some());
    let (mut id, mut name, mut path, arch_source) = if let Some(r) = &remote {
        let name = anatomy.name.clone().unwrap_or_else(|| r.file_stem.clone());
        let from = match &r.local {
            Some(p) => format!("GGUF header of {} (llama.cpp's cache)", p.display()),
            None => format!(
                "GGUF header of {} ({} fetched)",
                model_word,
                crate::remote::human(r.fetched())
            ),
        };
        (r.file_stem.clone(), name, r.launch_model.clone(), from)
    } else if is_id {
        let e = crate::catalog::entry(model_word, &dir)?;
        let file = e
            .source
            .files
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{}.gguf", e.id));
        let snap = crate::catalog::snapshot_path(model_word, &dir);
        (
            e.id.clone(),
            e.name.clone(),
            file,
            format!("GGUF header snapshot {}", snap.display()),
        )
    } else {
        let stem = Path::new(&load_word)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .to_string();
        let name = anatomy.name.clone().unwrap_or_else(|| stem.clone());
        (
            stem,
            name,
            load_word.clone(),
            format!("GGUF header of {load_word}"),
        )
    };
    if let Some((_, s)) = &section {
        id = s.name.clone();
        path = model_word.to_string();
        if let Some(n) = s.get("NAME") {
            name = n.to_string();
        }
    }
    let host = a.common.host()?;
    let (calibration, calibration_source) = a.common.calibration()?;
    let conf = from_conf.as_ref();
    let type_k = match &a.type_k {
        Some(t) => kv_type(t)?,
        None => conf.map_or(GgmlType::F16, |c| c.type_k),
    };
    let type_v = match &a.type_v {
        Some(t) => kv_type(t)?,
        None => conf.map_or(GgmlType::F16, |c| c.type_v),
    };
    let ctx = a.ctx.or(conf.map(|c| c.ctx)).unwrap_or(0);
    let batch = a.batch.or(conf.map(|c| c.batch)).unwrap_or(2048);
    if a.ubatch == Some(0) || batch == 0 {
        anyhow::bail!("-b and -ub must be at least 1");
    }
    let gen = a.workload.gen;
    let prompt = a.workload.prompt.or_else(|| {
        a.prefill_weight
            .map(|w| (w.max(0.0) * gen.unwrap_or(crate::solver::DEFAULT_GEN) as f64).round() as u32)
    });
    check_workload_fits(ctx, a.workload.prefix, prompt, gen)?;
    let devices = match &a.devices {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|n| {
                    let t = n.trim();
                    host.gpu_by_name(t).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--devices {t}: host {} has {}",
                            host.name,
                            (0..host.gpus.len())
                                .map(|i| host.device_name(crate::host::DeviceId::Gpu(i)))
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
    // A section's -np was checked by `launch::from_section` under the same rule.
    let parallel = match a.parallel {
        Some(v) => crate::launch::n_parallel(tool, v)?.ok_or_else(|| {
            anyhow::anyhow!(
                "--parallel -1 (auto): solve plans a fixed number of sequences; give --parallel N ≥ 1"
            )
        })?,
        None => conf.and_then(|c| c.n_parallel).unwrap_or(1),
    };
    let request = SolveRequest {
        model_path: a.model_path.clone().unwrap_or(path),
        ctx,
        batch,
        ubatch: a.ubatch.unwrap_or(SolveRequest::default().ubatch),
        ubatch_fixed: a.ubatch.is_some(),
        type_k,
        type_v,
        n_parallel: parallel,
        kv_unified: conf.is_some_and(|c| c.kv_unified == Some(true)),
        flash_attn: conf.map_or(crate::launch::FlashAttn::Auto, |c| c.flash_attn),
        op_offload: conf.is_none_or(|c| c.op_offload),
        extra_args: conf.map(|c| c.passthrough.clone()).unwrap_or_default(),
        decode_depth: a.depth,
        prompt,
        gen,
        workload: a.workload.workload,
        prefix: a.workload.prefix,
        devices,
        gpu_only: a.gpu_only,
        tool,
        host_gpus: host.gpus.len(),
        rpc: Vec::new(),
        buft_names: Vec::new(),
    };
    let mut request = request;
    request.set_host(&host);
    Ok(Inputs {
        section,
        id,
        name,
        arch_source,
        anatomy,
        host_model: HostModel::resolve(&host, &calibration),
        host,
        calibration_source,
        request,
        target,
        full_model,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let a = settle_write(a)?;
    let inp = inputs(&a)?;
    let mut profiles = crate::profile::solve_profiles(&inp.anatomy, &inp.host_model, &inp.request);
    let oracle = match oracle_for(&inp, a.no_oracle) {
        Ok(o) => Ok(crate::profile::confirm_profiles(
            &inp.anatomy,
            &inp.host_model,
            &inp.request,
            inp.target.facts(),
            &o,
            &a.oracle_args,
            &mut profiles,
        )),
        Err(why) => Err(why),
    };
    let fit = crate::profile::fit_baseline(&inp.anatomy, &inp.host_model, &inp.request);
    let report = crate::profile::SolveReport {
        id: &inp.id,
        name: &inp.name,
        anatomy: &inp.anatomy,
        host: &inp.host,
        request: &inp.request,
        profiles: &profiles,
        fit: fit.as_ref(),
        calibration: inp.calibration_source.to_string(),
        target: &inp.target,
        oracle: oracle.as_ref().map(|v| v.as_slice()).map_err(|e| e.clone()),
    };
    if a.common.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render());
    }
    let conf_file = inp.section.as_ref().map(|(f, _)| f.clone());
    let write_to = match (&a.write, a.in_place) {
        (Some(Some(p)), _) => Some(p.clone()),
        (Some(_), _) | (None, true) => Some(conf_file.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "--write without a file and --in-place need MODEL as models.conf:SECTION; \
                 give the file: --write models.conf"
            )
        })?),
        (None, false) => None,
    };
    if write_to.is_some() || a.write_preset.is_some() {
        let fit_flags = fit
            .as_ref()
            .and_then(|b| b.fit_choice.as_deref())
            .map(|c| c.split(':').next().unwrap_or(c).trim().to_string());
        let in_place = a.in_place.then_some(inp.id.as_str());
        let src = crate::profile::ConfSource {
            id: &inp.id,
            name: &inp.name,
            arch_source: &inp.arch_source,
            host: &inp.host,
            host_model: &inp.host_model,
            fit_baseline: match (&fit_flags, fit.as_ref().and_then(|b| b.speed.as_ref())) {
                (Some(f), Some(sp)) => Some((f.as_str(), sp.decode_tps, sp.prefill_tps)),
                _ => None,
            },
            build: inp.target.facts(),
            from_section: inp.section.as_ref().map(|(_, s)| s),
            section_name: in_place,
        };
        let sections: Vec<_> = profiles
            .iter()
            .filter(|p| !a.in_place || p.kind == a.profile)
            .filter_map(|p| crate::profile::conf_section(&src, &inp.anatomy, p))
            .collect();
        let target = write_to.as_ref().or(a.write_preset.as_ref()).unwrap();
        if sections.is_empty() {
            return Err(super::DoesNotFit(format!(
                "nothing written to {}: no profile fits (see the smallest changes above)",
                target.display()
            ))
            .into());
        }
        // Both texts are built before either file is written: a profile the preset cannot
        // carry leaves both files as they were.
        let preset_sections = match &a.write_preset {
            Some(_) => Some(preset_sections(&inp, &a, &profiles, &sections)?),
            None => None,
        };
        let names: Vec<String> = sections.iter().map(|s| format!("[{}]", s.name)).collect();
        if let Some(path) = &write_to {
            for note in crate::modelsconf::write::upsert_file(path, &sections)? {
                eprintln!("note: {note}");
            }
            eprintln!("wrote {} to {}", names.join(" and "), path.display());
        }
        if let (Some(path), Some(ps)) = (&a.write_preset, &preset_sections) {
            for note in crate::preset::upsert_file(path, ps, inp.target.facts())? {
                eprintln!("note: {note}");
            }
            eprintln!(
                "wrote {} to {} (llama-server --models-preset)",
                names.join(" and "),
                path.display()
            );
        }
    }
    if profiles.iter().all(|p| p.solution.is_none()) {
        return Err(super::DoesNotFit(
            "placer solve: no profile fits (see the smallest changes above)".into(),
        )
        .into());
    }
    Ok(())
}

/// The profiles of `sections` (models.conf text, same order) as llama-server preset sections:
/// the same `#` notes and name, the launch as `key = value` lines for the target build. MODEL
/// of a models.conf section is relative to the users' models folder; the router starts its
/// children from its own folder, so the preset gets the file as found.
fn preset_sections(
    inp: &Inputs,
    a: &Args,
    profiles: &[crate::profile::Profile],
    sections: &[crate::modelsconf::write::NewSection],
) -> anyhow::Result<Vec<crate::modelsconf::write::NewSection>> {
    let facts = inp.target.facts();
    let chosen = profiles
        .iter()
        .filter(|p| !a.in_place || p.kind == a.profile)
        .filter_map(|p| p.solution.as_ref());
    let mut out = Vec::new();
    for (sol, sec) in chosen.zip(sections) {
        let mut launch = sol.launch.clone();
        if let Some((file, _)) = &inp.section {
            let dir = a.common.models_dir();
            if let Some(crate::catalog::ModelRef::File(f)) =
                crate::catalog::resolve_model(&launch.model, file.parent(), Some(&dir))
            {
                launch.model = std::path::absolute(&f)
                    .unwrap_or(f)
                    .to_string_lossy()
                    .to_string();
            }
        }
        let header = format!("[{}]", sec.name);
        let comments: Vec<String> = sec
            .text
            .lines()
            .take_while(|l| l.trim() != header)
            .map(|l| {
                l.strip_prefix("# ")
                    .or_else(|| l.strip_prefix('#'))
                    .unwrap_or(l)
                    .to_string()
            })
            .collect();
        let argv = crate::emit::argv_for(&launch, facts).argv;
        let text = crate::preset::section_text(&sec.name, &comments, &argv, facts)
            .map_err(|e| anyhow::anyhow!("--write-preset: [{}]: {e}", sec.name))?;
        out.push(crate::modelsconf::write::NewSection {
            name: sec.name.clone(),
            text,
        });
    }
    Ok(out)
}

/// A request holds its prompt and its generated tokens in one sequence's context; a workload
/// that cannot fit would be priced at depths llama.cpp never reaches.
fn check_workload_fits(
    ctx: u32,
    prefix: Option<u32>,
    prompt: Option<u32>,
    gen: Option<u32>,
) -> anyhow::Result<()> {
    if ctx == 0 {
        return Ok(()); // training context: checked against the model later (tokens are clamped)
    }
    if let Some(g) = gen {
        if g >= ctx {
            anyhow::bail!(
                "--gen {g} does not fit in --ctx {ctx}: a request's generated tokens share the \
                 context with its prompt; use --gen {} or less, or a larger --ctx",
                ctx / 2
            );
        }
    }
    let g = gen.unwrap_or(0) as u64;
    let p = prefix.unwrap_or(0) as u64;
    if let Some(q) = prompt {
        if p + q as u64 + g > ctx as u64 {
            anyhow::bail!(
                "--prompt {q} + --gen {g}{} = {} tokens do not fit in --ctx {ctx}; use --prompt {} \
                 or less, or --ctx {} or more",
                prefix.map(|p| format!(" + --prefix {p}")).unwrap_or_default(),
                p + q as u64 + g,
                (ctx as u64).saturating_sub(p + g),
                (p + q as u64 + g).next_multiple_of(1024)
            );
        }
    } else if p + g > ctx as u64 {
        anyhow::bail!(
            "--prefix {p} + --gen {g} = {} tokens do not fit in --ctx {ctx}",
            p + g
        );
    }
    Ok(())
}

/// llama.cpp's dry-run tool for this solve, or why it cannot be used (one line for the report).
fn oracle_for(inp: &Inputs, disabled: bool) -> Result<crate::oracle::Oracle, String> {
    if disabled {
        return Err("not run (--no-oracle); placer's memory model only".into());
    }
    let Some(server) = &inp.target.server else {
        return Err(
            "not run (no llama-server given: --llama PATH); placer's memory model only".into(),
        );
    };
    if !inp.full_model {
        return Err(
            "not run (MODEL is a header snapshot, a catalog id or a remote header, not a full \
             GGUF on disk); placer's \
             memory model only"
                .into(),
        );
    }
    crate::oracle::Oracle::beside(server)
        .map_err(|e| format!("not run ({e}); placer's memory model only"))
}
