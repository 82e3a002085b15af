//! A profile as a models.conf section in the users' format: `#` lines saying where every number
//! came from, then NAME, DESCRIPTION, SPEED, MODEL, CTX_SIZE, N_GPU_LAYERS, FIT, EXTRA_ARGS.

use crate::anatomy::Anatomy;
use crate::host::DeviceId;
use crate::launch::GpuLayers;

/// What a models.conf section says about where its numbers came from.
pub struct ConfSource<'a> {
    /// Section id prefix (catalog id or file stem).
    pub id: &'a str,
    /// Human name (NAME=).
    pub name: &'a str,
    /// Where the architecture was read ("GGUF header snapshot models/headers/glm-q8.gguf").
    pub arch_source: &'a str,
    /// The host it was solved for.
    pub host: &'a crate::host::Host,
    /// The calibration it was solved with.
    /// The host model the profile was solved on (its calibration's size and build are printed).
    pub host_model: &'a crate::host_model::HostModel,
    /// llama.cpp's `--fit` on the same request (replayed, src/fitsim.rs): its flags and predicted
    /// decode / prefill t/s, for a comparison line. None: not compared.
    pub fit_baseline: Option<(&'a str, f64, Option<f64>)>,
    /// The llama.cpp build the section's flags are written for.
    pub build: &'a crate::builds::BuildFacts,
    /// The user's section this profile was solved from (`placer solve models.conf:SECTION`): its
    /// NAME, DESCRIPTION and keys placer does not write are carried over.
    pub from_section: Option<&'a crate::modelsconf::read::Section>,
    /// Write the profile under this name instead of `<id>-<kind>` (`--in-place`).
    pub section_name: Option<&'a str>,
}

/// The keys placer writes; any other key of the user's section is carried over verbatim.
pub const OWN_KEYS: [&str; 8] = [
    "NAME",
    "DESCRIPTION",
    "SPEED",
    "MODEL",
    "CTX_SIZE",
    "N_GPU_LAYERS",
    "FIT",
    "EXTRA_ARGS",
];

fn mib_str(b: u64) -> String {
    format!("{:.0}", crate::units::mib(b))
}

/// One profile as a models.conf section in the users' format (docs/models-conf.md):
/// `#` lines saying where every number came from, then NAME, DESCRIPTION, SPEED, MODEL, CTX_SIZE,
/// N_GPU_LAYERS, FIT, EXTRA_ARGS. EXTRA_ARGS is unquoted, as the users' start.sh word-splits it.
pub fn conf_section(
    src: &ConfSource,
    anatomy: &Anatomy,
    profile: &super::Profile,
) -> Option<crate::modelsconf::write::NewSection> {
    let sol = profile.solution.as_ref()?;
    let kind = profile.kind.name();
    let name = src
        .section_name
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{kind}", src.id));
    let user = src.from_section;
    let hp = &anatomy.hp;
    let mut t = String::new();
    let mut c = |s: String| {
        t.push_str("# ");
        t.push_str(&s);
        t.push('\n');
    };
    c(format!(
        "placer solve — {kind} profile for {} on host {}",
        src.name, src.host.name
    ));
    let mut arch = format!(
        "architecture: {} ({}), {} layers",
        anatomy.arch, src.arch_source, hp.n_layer
    );
    if hp.n_expert > 0 {
        arch.push_str(&format!(
            ", MoE {} experts / {} used{}",
            hp.n_expert,
            hp.n_expert_used,
            if hp.n_expert_shared > 0 {
                format!(" + {} shared", hp.n_expert_shared)
            } else {
                String::new()
            }
        ));
    }
    if hp.mla.is_some() {
        arch.push_str(", MLA KV");
    }
    if hp.swa_layers.iter().any(|&s| s) {
        arch.push_str(&format!(
            ", {} SWA layers",
            hp.swa_layers.iter().filter(|&&s| s).count()
        ));
    }
    let rec = hp.recurrent_layers.iter().filter(|&&r| r).count();
    if rec > 0 {
        arch.push_str(&format!(", {rec} recurrent layers (no KV)"));
    }
    c(arch);
    c(format!("margin: {}", profile.margin_source));
    c("memory per device (MiB, placer's memory model = llama.cpp's allocation rules):".into());
    for d in &sol.devices {
        let label = match d.device {
            DeviceId::Gpu(i) => format!(
                "{} {}",
                d.device,
                src.host.gpus.get(i).map(|g| g.model.as_str()).unwrap_or("")
            ),
            DeviceId::Cpu => "host RAM".into(),
        };
        let over = if d.device == DeviceId::Cpu {
            ""
        } else {
            " + overhead "
        };
        let ovh = if d.device == DeviceId::Cpu {
            String::new()
        } else {
            mib_str(d.overhead)
        };
        c(format!(
            "  {label}: weights {} + KV {} + compute {}{over}{ovh} = {} of {} usable, {} free (margin {})",
            mib_str(d.weights),
            mib_str(d.kv),
            mib_str(d.compute),
            mib_str(d.total()),
            mib_str(d.cap),
            mib_str(d.cap.saturating_sub(d.total())),
            mib_str(d.margin)
        ));
    }
    for line in super::describe(anatomy, &src.host_model.host, &sol.placement) {
        c(format!("placement: {line}"));
    }
    let hm = src.host_model;
    let w = &sol.workload;
    c(format!(
        "predicted decode {:.1} t/s at depth {}, prefill {} ({} hand-offs/token; workload \
         {} prompt + {} generated tokens = {:.1} s; speed model docs/solver.md, calibration from \
         {} runs, llama.cpp {})",
        sol.decode_tps,
        w.decode_depth,
        crate::units::tps_text(sol.prefill_tps),
        sol.splits,
        w.prompt_tokens,
        w.gen_tokens,
        sol.request_s,
        hm.calibration_runs,
        hm.calibration_build,
    ));
    if let Some(inf) = &sol.gpu_only {
        c(format!("weights on the CPU because {}", inf.reason));
        for sug in &inf.suggestions {
            c(format!("  to keep them all on the GPU: {}", sug.change));
        }
    }
    if let Some(u) = &sol.ubatch_choice {
        c(u.clone());
    }
    if let Some((flags, dec, pre)) = src.fit_baseline {
        let prefill = match (sol.prefill_tps, pre) {
            (Some(a), Some(b)) if b > 0.0 => format!(", prefill {:.2}×", a / b),
            _ => String::new(),
        };
        c(format!(
            "vs llama.cpp --fit on the same request ({flags}, replayed on the same models, \
             docs/fit-replay.md): decode {:.2}×{prefill} (predicted)",
            sol.decode_tps / dec
        ));
    }
    c(sol.speed_source.clone());
    c(format!(
        "flags for llama.cpp b{} ({})",
        src.build.build, src.build.source
    ));
    for n in crate::emit::argv_for(&sol.launch, src.build).notes {
        c(format!("note: {n}"));
    }
    c("NOT YET TESTED: run it, then `placer calibrate` the log".into());
    t.push_str(&format!("[{name}]\n"));
    match user.and_then(|u| u.get("NAME")) {
        Some(n) if src.section_name.is_some() => t.push_str(&format!("NAME={n}\n")),
        Some(n) => t.push_str(&format!("NAME={n} ({kind})\n")),
        None => t.push_str(&format!("NAME={} ({kind})\n", src.name)),
    }
    match user.and_then(|u| u.get("DESCRIPTION")) {
        Some(d) => t.push_str(&format!("DESCRIPTION={d}\n")),
        None => t.push_str(&format!(
            "DESCRIPTION=placer {kind}: {}\n",
            super::describe(anatomy, &src.host_model.host, &sol.placement).join("; ")
        )),
    }
    t.push_str(&format!("SPEED=~{:.0} t/s (predicted)\n", sol.decode_tps));
    // A remote model has no file for MODEL= to name: its `-hf` / `-mu` goes in EXTRA_ARGS,
    // where llama-server reads it as written (`emit::model_flag`).
    if crate::emit::model_flag(&sol.launch.model).0 == "-m" {
        t.push_str(&format!("MODEL={}\n", sol.launch.model));
    }
    t.push_str(&format!("CTX_SIZE={}\n", sol.launch.ctx));
    let ngl = match sol.launch.gpu_layers {
        GpuLayers::Count(n) => n.to_string(),
        GpuLayers::All => "all".into(),
        GpuLayers::Auto => "auto".into(),
    };
    t.push_str(&format!("N_GPU_LAYERS={ngl}\n"));
    t.push_str("FIT=off\n");
    if let Some(u) = user {
        for (k, v) in &u.entries {
            if !OWN_KEYS.contains(&k.as_str()) {
                t.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    t.push_str(&format!(
        "EXTRA_ARGS={}\n",
        crate::emit::extra_args_for(&sol.launch, src.build).join(" ")
    ));
    Some(crate::modelsconf::write::NewSection { name, text: t })
}
