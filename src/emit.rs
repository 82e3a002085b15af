//! A launch configuration as text: the llama.cpp argv, a shell command line, and the EXTRA_ARGS of
//! a models.conf section. Only rendering: the launch itself is built by `placement::to_launch`
//! (flags of a placement) or parsed by `launch` (argv of a command); emit knows neither the
//! solver nor the profiles.
//!
//! Every option is written in the spelling of `common/arg.cpp` of the reference tree
//! (llama-cpp-python 0.3.36 sdist), and only when it differs from llama.cpp's default.

use crate::builds::{BuildFacts, Tool as BuildTool};
use crate::launch::{FlashAttn, GpuLayers, LaunchConfig, LoadMode, SplitMode};

/// The llama-server arguments (without the program name) of a launch configuration, in the
/// reference tree's spelling (`builds::reference`). Commands shown to a user go through
/// [`argv_for`] with their build.
pub fn argv(cfg: &LaunchConfig) -> Vec<String> {
    argv_for(cfg, crate::builds::reference()).argv
}

/// A launch rendered for one llama.cpp build.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The arguments, every option one that build's parser accepts for the launch's program.
    pub argv: Vec<String>,
    /// What had to change for that build and what it costs (empty when nothing did).
    pub notes: Vec<String>,
}

/// The arguments of `cfg` for the build whose option table is `facts`: each option in a spelling
/// that build accepts (`-lm none` becomes `--no-mmap` where `--load-mode` does not exist yet,
/// `builds::load_mode_flags`), an option the build lacks dropped with a note saying what that
/// costs. The user's own arguments (`passthrough`) are kept verbatim.
pub fn argv_for(cfg: &LaunchConfig, facts: &BuildFacts) -> Rendered {
    let mut notes = Vec::new();
    let tool = build_tool(cfg.tool);
    let mut a: Vec<String> = Vec::new();
    for group in groups(cfg) {
        let flag = group[0].as_str();
        if flag == "-lm" {
            if group[1] == "none" {
                let lm = crate::builds::load_mode_flags(facts);
                if let Some(n) = lm.note {
                    notes.push(n);
                }
                a.extend(lm.flags);
                continue;
            }
            if group[1] == "mlock" && !facts.has("-lm") && facts.has("--mlock") {
                a.push("--mlock".into());
                continue;
            }
        }
        let known = match tool {
            Some(t) => facts.option_for(flag, t).is_some(),
            None => true,
        };
        if known {
            a.extend(group);
        } else {
            notes.push(format!(
                "llama.cpp b{} has no {flag}: `{}` dropped{}",
                facts.build,
                group.join(" "),
                drop_cost(flag)
            ));
        }
    }
    a.extend(cfg.passthrough.iter().cloned());
    Rendered { argv: a, notes }
}

/// The option table's name for the program a launch is for (None: llama-bench, whose parser is
/// not `common/arg.cpp`).
pub fn build_tool(t: crate::launch::Tool) -> Option<BuildTool> {
    match t {
        crate::launch::Tool::Server => Some(BuildTool::Server),
        crate::launch::Tool::Cli => Some(BuildTool::Completion),
        crate::launch::Tool::Bench => None,
    }
}

fn drop_cost(flag: &str) -> &'static str {
    match flag {
        "-kvu" => " (one KV buffer per slot instead of a unified one: the memory model's KV split no longer matches)",
        "-sm" => " (layer split, the default, is used)",
        "--fit" => " (that build does not auto-fit; the placement flags are explicit anyway)",
        _ => "",
    }
}

/// The options of `cfg` as (flag, values…) groups, reference spelling, defaults left out.
fn groups(cfg: &LaunchConfig) -> Vec<Vec<String>> {
    let d = LaunchConfig::default();
    let mut a: Vec<Vec<String>> = Vec::new();
    fn pair(a: &mut Vec<Vec<String>>, k: &str, v: String) {
        a.push(vec![k.to_string(), v]);
    }
    // First: `-ot` and `-dev` look buffer types and devices up when they are parsed
    // (`common/arg.cpp: parse_tensor_buffer_overrides`), so the RPC devices must exist by then.
    if !cfg.rpc.is_empty() {
        pair(&mut a, "--rpc", cfg.rpc.join(","));
    }
    if !cfg.model.is_empty() {
        let (flag, value) = model_flag(&cfg.model);
        pair(&mut a, flag, value.to_string());
    }
    pair(&mut a, "-c", cfg.ctx.to_string());
    if let Some(devs) = &cfg.devices {
        pair(&mut a, "-dev", devs.join(","));
    }
    match cfg.gpu_layers {
        GpuLayers::Count(n) => pair(&mut a, "-ngl", n.to_string()),
        GpuLayers::All => pair(&mut a, "-ngl", "all".into()),
        GpuLayers::Auto => {}
    }
    if cfg.split_mode != d.split_mode {
        let sm = match cfg.split_mode {
            SplitMode::None => "none",
            SplitMode::Layer => "layer",
            SplitMode::Row => "row",
            SplitMode::Tensor => "tensor",
        };
        pair(&mut a, "-sm", sm.into());
    }
    if let Some(ts) = &cfg.tensor_split {
        pair(
            &mut a,
            "-ts",
            ts.iter().map(|x| fmt_num(*x)).collect::<Vec<_>>().join(","),
        );
    }
    if !cfg.overrides.is_empty() {
        let list: Vec<String> = cfg
            .overrides
            .iter()
            .map(|o| format!("{}={}", o.pattern, o.buft))
            .collect();
        pair(&mut a, "-ot", list.join(","));
    }
    pair(&mut a, "-b", cfg.batch.to_string());
    pair(&mut a, "-ub", cfg.ubatch.to_string());
    pair(&mut a, "-ctk", cfg.type_k.name());
    pair(&mut a, "-ctv", cfg.type_v.name());
    if cfg.flash_attn != d.flash_attn {
        pair(
            &mut a,
            "-fa",
            if cfg.flash_attn == FlashAttn::On {
                "on".into()
            } else {
                "off".into()
            },
        );
    }
    if let Some(np) = cfg.n_parallel {
        pair(&mut a, "-np", np.to_string());
    }
    if cfg.kv_unified == Some(true) {
        a.push(vec!["-kvu".into()]);
    }
    if cfg.load_mode != d.load_mode {
        let lm = match cfg.load_mode {
            LoadMode::Mmap => "mmap",
            LoadMode::None => "none",
            LoadMode::Mlock => "mlock",
            LoadMode::Dio => "dio",
        };
        pair(&mut a, "-lm", lm.into());
    }
    if !cfg.kv_offload {
        a.push(vec!["-nkvo".into()]);
    }
    if !cfg.op_offload {
        a.push(vec!["--no-op-offload".into()]);
    }
    pair(
        &mut a,
        "--fit",
        if cfg.fit { "on".into() } else { "off".into() },
    );
    // `-fitt`: the MiB `--fit` keeps free per device (`common/arg.cpp`, default 1024), only where
    // --fit runs and the value is not the default.
    if cfg.fit && !cfg.fit_target_mib.is_empty() && cfg.fit_target_mib != [1024] {
        let v: Vec<String> = cfg.fit_target_mib.iter().map(|m| m.to_string()).collect();
        pair(&mut a, "-fitt", v.join(","));
    }
    a
}

/// How llama.cpp is told the model (`common/arg.cpp`): `-hf user/repo[:QUANT]` for
/// `hf:user/repo[:QUANT]` (llama-server resolves and downloads it by the rules src/remote/hf.rs
/// follows), `-mu URL` for an http(s) URL, else `-m PATH`.
pub fn model_flag(model: &str) -> (&'static str, &str) {
    if let Some(repo) = model.strip_prefix("hf:") {
        return ("-hf", repo);
    }
    let lower = model.get(..8).unwrap_or(model).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return ("-mu", model);
    }
    ("-m", model)
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A shell command line (`llama-server …`), each argument single-quoted where the shell would
/// otherwise interpret it.
pub fn command_line(cfg: &LaunchConfig) -> String {
    command_line_for(cfg, crate::builds::reference())
}

/// [`command_line`] for the build whose option table is `facts` ([`argv_for`]).
pub fn command_line_for(cfg: &LaunchConfig, facts: &BuildFacts) -> String {
    let program = match cfg.tool {
        crate::launch::Tool::Server => "llama-server",
        crate::launch::Tool::Cli => "llama-completion",
        crate::launch::Tool::Bench => "llama-bench",
    };
    std::iter::once(program.to_string())
        .chain(argv_for(cfg, facts).argv.iter().map(|s| shell_quote(s)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` quoted for a POSIX shell where it would otherwise be split or interpreted.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,=+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The arguments models.conf carries in EXTRA_ARGS: everything but -m, -c, -ngl and --fit (which
/// have their own keys).
pub fn extra_args(cfg: &LaunchConfig) -> Vec<String> {
    extra_args_for(cfg, crate::builds::reference())
}

/// [`extra_args`] for the build whose option table is `facts` ([`argv_for`]).
pub fn extra_args_for(cfg: &LaunchConfig, facts: &BuildFacts) -> Vec<String> {
    let a = argv_for(cfg, facts).argv;
    let mut out = Vec::new();
    let mut i = 0;
    while i < a.len() {
        if ["-m", "-c", "-ngl", "--fit"].contains(&a[i].as_str()) {
            i += 2;
            continue;
        }
        out.push(a[i].clone());
        i += 1;
    }
    out
}
