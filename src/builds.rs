//! Build facts: which command-line options exist in which llama.cpp build, as committed data.
//!
//! The tables in `data/llama-builds/b<BUILD>.toml` are extracted from each source tree's
//! `common/arg.cpp` (`common_params_parser_init`) and `common/common.h` (`struct common_params`)
//! by `testbed/llama-options.py`; docs/llama-builds.md lists the trees and how each build number
//! was established. This module embeds them, picks the table for a build, and checks an argv the
//! way that build's `common/arg.cpp: common_params_parse_ex` would.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The embedded tables, oldest first.
const TABLES: &[(&str, &str)] = &[
    (
        "b8022.toml",
        include_str!("../data/llama-builds/b8022.toml"),
    ),
    (
        "b9093.toml",
        include_str!("../data/llama-builds/b9093.toml"),
    ),
    (
        "b11312.toml",
        include_str!("../data/llama-builds/b11312.toml"),
    ),
    (
        "b11434.toml",
        include_str!("../data/llama-builds/b11434.toml"),
    ),
];

/// Build of the reference tree (llama-cpp-python 0.3.36, commit 0c1e57098): placer's memory
/// rules were read from it (see `crate::llama`).
pub const REFERENCE_BUILD: u32 = 11312;

/// One llama.cpp tree's option table and defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildFacts {
    /// Lowest build this table answers for: the tree's own build number, except where
    /// `build_note` says the table stands in for an older build.
    pub build: u32,
    /// Commit (abbreviated) or `unknown` where the sdist carries no git metadata.
    pub commit: String,
    /// The sdist the tree came from.
    pub source: String,
    #[serde(default)]
    pub build_note: String,
    /// What `--version` prints in this tree (`common/arg.cpp`, the `--version` handler).
    pub version_format: String,
    /// `common/arg.cpp: kv_cache_types` as `ggml_type_name` spells them.
    pub kv_cache_types: Vec<String>,
    pub parser: ParserFacts,
    /// Tool → the `LLAMA_EXAMPLE_*` (without prefix) it passes to `common_params_parse`.
    pub tools: BTreeMap<String, String>,
    pub defaults: Defaults,
    pub options: Vec<OptionSpec>,
}

/// How `common/arg.cpp: common_params_parse_ex` reads argv in this tree.
#[derive(Debug, Clone, Deserialize)]
pub struct ParserFacts {
    /// `--long_name` has `_` replaced by `-` before the lookup.
    pub underscore_to_dash: bool,
    /// Integer options go through `std::stoi` (i32).
    pub int_parse: String,
    /// Whether `--flag=value` is split (it is not in any tree covered).
    pub equals_syntax: bool,
}

/// `common/common.h: struct common_params` defaults placer cares about (+ per-tool ones).
#[derive(Debug, Clone, Deserialize)]
pub struct Defaults {
    pub n_ctx: i64,
    pub n_batch: i64,
    pub n_ubatch: i64,
    pub n_parallel: i64,
    pub n_gpu_layers: i64,
    pub main_gpu: i64,
    pub split_mode: String,
    /// `-lm` default (trees with `--load-mode`).
    pub load_mode: Option<String>,
    /// `--mmap` default (trees before `--load-mode`).
    pub use_mmap: Option<bool>,
    pub flash_attn_type: String,
    pub fit_params: bool,
    pub fit_params_min_ctx: i64,
    /// `--fit-target` default, MiB.
    pub fit_target_mib: u64,
    pub cache_type_k: String,
    pub cache_type_v: String,
    pub kv_unified: bool,
    pub swa_full: bool,
    /// `common_params_parser_init`: llama-server's `-np` default (-1 = auto).
    pub server_n_parallel: Option<i64>,
    /// `tools/server/server.cpp`: what `-np` auto becomes.
    pub server_auto_parallel: Option<u32>,
    pub server_auto_kv_unified: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArgKind {
    /// No value.
    Flag,
    /// `--x` / `--no-x`, no value.
    Bool,
    /// One value through `std::stoi`.
    Int,
    /// One value, handled as text.
    String,
    /// Two values.
    TwoValues,
}

/// One `add_opt(common_arg(...))`.
#[derive(Debug, Clone, Deserialize)]
pub struct OptionSpec {
    pub names: Vec<String>,
    #[serde(default)]
    pub negated: Vec<String>,
    pub kind: ArgKind,
    #[serde(default)]
    pub hint: Vec<String>,
    /// Literal values the handler compares against.
    #[serde(default)]
    pub values: Vec<String>,
    /// `is_truthy` / `is_falsey` / `is_autoy` words accepted.
    #[serde(default)]
    pub bool_words: Vec<String>,
    /// Anything outside `values` / `bool_words` throws.
    #[serde(default)]
    pub closed: bool,
    /// `std::sto*` conversions applied to the value (e.g. `-ngl`: `stoi` unless auto/all).
    #[serde(default)]
    pub parses: Vec<String>,
    /// Integer checks that throw, e.g. `value == 0`.
    #[serde(default)]
    pub rejects: Vec<String>,
    /// `set_examples` (empty = COMMON).
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Added only inside `if (ex == LLAMA_EXAMPLE_X)`.
    pub if_example: Option<String>,
    /// Added only in the `else` of such an `if`.
    pub unless_example: Option<String>,
    pub env: Option<String>,
}

/// `common_arg_utils::is_truthy` / `is_falsey` / `is_autoy` (common/arg.cpp).
fn bool_word_values(word: &str) -> &'static [&'static str] {
    match word {
        "truthy" => &["on", "enabled", "true", "1"],
        "falsey" => &["off", "disabled", "false", "0"],
        "autoy" => &["auto", "-1"],
        _ => &[],
    }
}

impl OptionSpec {
    /// Every spelling: names and negated names.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().chain(&self.negated).map(String::as_str)
    }

    /// Whether the option takes a value.
    pub fn takes_value(&self) -> bool {
        matches!(
            self.kind,
            ArgKind::Int | ArgKind::String | ArgKind::TwoValues
        )
    }

    /// The values a closed option accepts, in llama.cpp's spelling.
    pub fn accepted(&self) -> Vec<String> {
        let mut out = self.values.clone();
        for w in &self.bool_words {
            for v in bool_word_values(w) {
                if !out.iter().any(|x| x == v) {
                    out.push(v.to_string());
                }
            }
        }
        out
    }

    /// `common_params_parser_init: add_opt`: the option is registered for example `ex` when it
    /// names `ex` or COMMON in `set_examples` and does not exclude `ex`.
    pub fn applies_to(&self, ex: &str) -> bool {
        let in_examples = if self.examples.is_empty() {
            true
        } else {
            self.examples.iter().any(|e| e == ex || e == "COMMON")
        };
        let cond = match (&self.if_example, &self.unless_example) {
            (Some(x), _) => x == ex,
            (_, Some(x)) => x != ex,
            _ => true,
        };
        in_examples && cond && !self.excludes.iter().any(|e| e == ex)
    }

    /// Check one value as the handler would.
    fn check_value(&self, flag: &str, v: &str) -> Result<(), ArgvError> {
        match self.kind {
            ArgKind::Int => {
                let n = stoi(v).map_err(|e| e.into_error(flag, v))?;
                self.check_rejects(flag, v, n)
            }
            ArgKind::String => {
                let accepted = self.accepted();
                if accepted.iter().any(|a| a == v) {
                    return Ok(());
                }
                if self.parses.iter().any(|p| p == "stoi") {
                    let n = stoi(v).map_err(|e| e.into_error(flag, v))?;
                    return self.check_rejects(flag, v, n);
                }
                if self.closed {
                    return Err(ArgvError::NotAccepted {
                        flag: flag.to_string(),
                        value: v.to_string(),
                        accepted,
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn check_rejects(&self, flag: &str, v: &str, n: i32) -> Result<(), ArgvError> {
        for rule in &self.rejects {
            let mut it = rule.split_whitespace().skip(1);
            let (Some(op), Some(k)) = (it.next(), it.next().and_then(|k| k.parse::<i64>().ok()))
            else {
                continue;
            };
            let n = n as i64;
            let hit = match op {
                "<" => n < k,
                "<=" => n <= k,
                "==" => n == k,
                ">" => n > k,
                ">=" => n >= k,
                "!=" => n != k,
                _ => false,
            };
            if hit {
                return Err(ArgvError::Rejected {
                    flag: flag.to_string(),
                    value: v.to_string(),
                    rule: rule.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Which llama.cpp program reads the argv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Server,
    FitParams,
    Cli,
    Completion,
}

impl Tool {
    pub fn key(self) -> &'static str {
        match self {
            Tool::Server => "server",
            Tool::FitParams => "fit-params",
            Tool::Cli => "cli",
            Tool::Completion => "completion",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(
        "llama.cpp build {requested} is older than every supported build table ({supported}){hint}"
    )]
    TooOld {
        requested: u32,
        supported: String,
        hint: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    #[error("{arg}: not an option of {tool} in llama.cpp b{build}{}", .suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    Unknown {
        arg: String,
        tool: String,
        build: u32,
        suggestion: Option<String>,
    },
    #[error("{arg}: llama.cpp b{build} does not split --flag=value; write `{flag} VALUE`")]
    EqualsSyntax {
        arg: String,
        flag: String,
        build: u32,
    },
    #[error("{flag} exists in llama.cpp b{build} but not for {tool} (it belongs to {examples})")]
    WrongTool {
        flag: String,
        tool: String,
        build: u32,
        examples: String,
    },
    #[error("{flag} needs a value ({hint})")]
    MissingValue { flag: String, hint: String },
    #[error("{flag} {value:?}: llama.cpp accepts {}", .accepted.join(", "))]
    NotAccepted {
        flag: String,
        value: String,
        accepted: Vec<String>,
    },
    #[error("{flag} {value:?}: not an integer (std::stoi)")]
    NotAnInteger { flag: String, value: String },
    #[error("{flag} {value:?}: outside the 32-bit range std::stoi accepts")]
    OutOfRange { flag: String, value: String },
    #[error("{flag} {value:?}: rejected by llama.cpp ({rule})")]
    Rejected {
        flag: String,
        value: String,
        rule: String,
    },
    #[error("this build has no tool table for {tool}")]
    NoTool { tool: String },
}

enum StoiError {
    Invalid,
    Range,
}

impl StoiError {
    fn into_error(self, flag: &str, v: &str) -> ArgvError {
        match self {
            StoiError::Invalid => ArgvError::NotAnInteger {
                flag: flag.to_string(),
                value: v.to_string(),
            },
            StoiError::Range => ArgvError::OutOfRange {
                flag: flag.to_string(),
                value: v.to_string(),
            },
        }
    }
}

/// `std::stoi` (strtol base 10, then an `int` range check): leading whitespace, an optional sign,
/// at least one digit; trailing characters are ignored (`"12abc"` → 12).
fn stoi(s: &str) -> Result<i32, StoiError> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return Err(StoiError::Invalid);
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v * 10 + (b - b'0') as i64;
        if v > i32::MAX as i64 + 1 {
            return Err(StoiError::Range);
        }
    }
    let v = if neg { -v } else { v };
    i32::try_from(v).map_err(|_| StoiError::Range)
}

/// Levenshtein distance (for did-you-mean).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl BuildFacts {
    /// The option with this spelling (any tool), after llama.cpp's `_` → `-` for `--` names.
    pub fn option(&self, name: &str) -> Option<&OptionSpec> {
        let name = self.normalize(name);
        self.options
            .iter()
            .find(|o| o.all_names().any(|n| n == name))
    }

    /// Whether any tool of this build knows `name`.
    pub fn has(&self, name: &str) -> bool {
        self.option(name).is_some()
    }

    /// The option as `tool` registers it (`-np` differs between llama-server and the rest).
    pub fn option_for(&self, name: &str, tool: Tool) -> Option<&OptionSpec> {
        let ex = self.tools.get(tool.key())?;
        let name = self.normalize(name);
        self.options
            .iter()
            .find(|o| o.applies_to(ex) && o.all_names().any(|n| n == name))
    }

    /// `common_params_parse_ex`: `--long_name` → `--long-name`.
    fn normalize(&self, arg: &str) -> String {
        if self.parser.underscore_to_dash && arg.starts_with("--") {
            arg.replace('_', "-")
        } else {
            arg.to_string()
        }
    }

    /// Check `args` (without the program name) as this build's `common_params_parse_ex` reads
    /// them for `tool`: every word must be an option of that tool, values where they are due,
    /// in the accepted set, integers within `std::stoi`'s range.
    pub fn validate_argv(&self, args: &[String], tool: Tool) -> Result<(), ArgvError> {
        let ex = self
            .tools
            .get(tool.key())
            .ok_or_else(|| ArgvError::NoTool {
                tool: tool.key().to_string(),
            })?;
        let mut i = 0;
        while i < args.len() {
            let raw = &args[i];
            i += 1;
            let arg = self.normalize(raw);
            let Some(opt) = self
                .options
                .iter()
                .find(|o| o.applies_to(ex) && o.all_names().any(|n| n == arg))
            else {
                return Err(self.unknown(raw, &arg, tool, ex));
            };
            let is_negated = opt.negated.contains(&arg);
            if !opt.takes_value() || is_negated {
                continue;
            }
            let n_values = if opt.kind == ArgKind::TwoValues { 2 } else { 1 };
            for _ in 0..n_values {
                let Some(v) = args.get(i) else {
                    return Err(ArgvError::MissingValue {
                        flag: raw.clone(),
                        hint: opt.hint.join(" "),
                    });
                };
                i += 1;
                opt.check_value(raw, v)?;
            }
        }
        Ok(())
    }

    fn unknown(&self, raw: &str, arg: &str, tool: Tool, ex: &str) -> ArgvError {
        if let Some((flag, _)) = arg.split_once('=') {
            if self
                .options
                .iter()
                .any(|o| o.applies_to(ex) && o.all_names().any(|n| n == flag))
            {
                return ArgvError::EqualsSyntax {
                    arg: raw.to_string(),
                    flag: flag.to_string(),
                    build: self.build,
                };
            }
        }
        if let Some(o) = self.option(arg) {
            let examples = if o.examples.is_empty() {
                "COMMON".to_string()
            } else {
                o.examples.join(", ")
            };
            return ArgvError::WrongTool {
                flag: raw.to_string(),
                tool: tool.key().to_string(),
                build: self.build,
                examples,
            };
        }
        let suggestion = self
            .options
            .iter()
            .filter(|o| o.applies_to(ex))
            .flat_map(|o| o.all_names())
            .map(|n| (distance(arg, n), n))
            .filter(|(d, n)| *d <= 3.max(n.len() / 4))
            .min()
            .map(|(_, n)| n.to_string());
        ArgvError::Unknown {
            arg: raw.to_string(),
            tool: tool.key().to_string(),
            build: self.build,
            suggestion,
        }
    }
}

/// Every embedded table, oldest first (parsed once).
pub fn all() -> &'static [BuildFacts] {
    static ALL: OnceLock<Vec<BuildFacts>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<BuildFacts> = TABLES
            .iter()
            .map(|(name, text)| {
                toml::from_str(text)
                    .unwrap_or_else(|e| panic!("data/llama-builds/{name} does not parse: {e}"))
            })
            .collect();
        v.sort_by_key(|f| f.build);
        v
    })
}

/// The table chosen for a build.
#[derive(Debug, Clone, Copy)]
pub struct Selected {
    pub facts: &'static BuildFacts,
    pub requested: u32,
    /// The requested build is newer than the newest table: its options may differ.
    pub newer_than_tables: bool,
}

impl Selected {
    /// A one-line note on how the table was chosen, when the user should know.
    pub fn warning(&self) -> Option<String> {
        self.newer_than_tables.then(|| {
            format!(
                "llama.cpp build {} is newer than the newest option table (b{}, {}); using that table",
                self.requested, self.facts.build, self.facts.source
            )
        })
    }
}

/// The newest table with `build ≤ n`.
pub fn for_build(n: u32) -> Result<Selected, BuildError> {
    let tables = all();
    match tables.iter().rev().find(|f| f.build <= n) {
        Some(facts) => Ok(Selected {
            facts,
            requested: n,
            newer_than_tables: n > tables.last().map_or(0, |f| f.build),
        }),
        None => Err(BuildError::TooOld {
            requested: n,
            supported: tables
                .iter()
                .map(|f| format!("b{}", f.build))
                .collect::<Vec<_>>()
                .join(", "),
            hint: if n == 0 {
                " — build 0 is what a tree built without git metadata reports (e.g. from a sdist); pass the build number explicitly"
            } else {
                ""
            },
        }),
    }
}

/// The reference tree's facts (`REFERENCE_BUILD`).
pub fn reference() -> &'static BuildFacts {
    all()
        .iter()
        .find(|f| f.build == REFERENCE_BUILD)
        .expect("the reference table is embedded")
}

/// Build number and commit from `llama-server --version` output or a log's build line.
/// Formats (common/arg.cpp `--version` handler; common/build-info.cpp.in:
/// `llama_print_build_info`):
/// - `version: 8022 (abcdef12)` (older trees)
/// - `version: 0.5.0-dev (build 11312, commit 0c1e57098)` (newer trees)
/// - `build: 8022 (abcdef12) with …` (the start-up log line, `common_init`)
pub fn parse_version_output(text: &str) -> Option<(u32, String)> {
    static RES: OnceLock<[regex::Regex; 3]> = OnceLock::new();
    let res = RES.get_or_init(|| {
        [
            regex::Regex::new(
                r"(?m)^\s*version:\s*\S+\s*\(build\s+(\d+),\s*commit\s+([0-9A-Za-z]+)\)",
            )
            .unwrap(),
            regex::Regex::new(r"(?m)^\s*version:\s*(\d+)\s*\(([0-9A-Za-z]+)\)").unwrap(),
            regex::Regex::new(r"(?m)\bbuild:\s*(\d+)\s*\(([0-9A-Za-z]+)\)").unwrap(),
        ]
    });
    res.iter().find_map(|re| {
        let c = re.captures(text)?;
        Some((c[1].parse().ok()?, c[2].to_string()))
    })
}

/// The flags that keep CPU-resident weights in pinned host memory instead of a mapped file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadModeFlags {
    pub flags: Vec<String>,
    /// What is lost when the build has no way to say it.
    pub note: Option<String>,
}

/// `-lm none` where `--load-mode` exists, else `--no-mmap`, else nothing.
///
/// Equivalence: both end with the model loader's `use_mmap = false`, and then
/// `src/llama-model-loader.cpp: llama_model_loader::create_tensor` keeps the device's host buffer
/// type (CUDA_Host, pinned) for CPU weights — it swaps it for plain CPU memory only
/// `if (use_mmap && buft == ggml_backend_dev_host_buffer_type(buft_dev))`. In the reference tree
/// `llama_model_loader::llama_model_loader` sets `use_mmap = load_mode ∈ {MMAP, MMAP_MLOCK, AUTO}`,
/// so `-lm none` gives `use_mmap = false`; in older trees `--no-mmap` sets
/// `common_params::use_mmap = false`, passed on by `common/common.cpp:
/// common_model_params_to_llama` as `llama_model_params::use_mmap`.
pub fn load_mode_flags(facts: &BuildFacts) -> LoadModeFlags {
    if let Some(o) = facts.option("-lm") {
        if o.values.iter().any(|v| v == "none") {
            return LoadModeFlags {
                flags: vec!["-lm".into(), "none".into()],
                note: None,
            };
        }
    }
    if facts.has("--no-mmap") {
        return LoadModeFlags {
            flags: vec!["--no-mmap".into()],
            note: None,
        };
    }
    LoadModeFlags {
        flags: Vec::new(),
        note: Some(format!(
            "llama.cpp b{} has neither -lm none nor --no-mmap: CPU weights stay memory-mapped (CPU_Mapped), so prompt processing streams them to the GPU from pageable memory (slower prefill), and the page cache, not the process, holds them",
            facts.build
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn every_table_parses() {
        let all = all();
        assert_eq!(all.len(), TABLES.len());
        for f in all {
            assert!(
                f.options.len() > 200,
                "b{}: {} options",
                f.build,
                f.options.len()
            );
            assert!(f.tools.contains_key("server"), "b{}", f.build);
            assert_eq!(f.parser.int_parse, "std::stoi");
        }
        assert!(all.windows(2).all(|w| w[0].build < w[1].build));
    }

    /// Every flag placer emits today (src/emit.rs, src/check.rs, src/solver) with a value it writes.
    const PLACER_EMITS: &str = "-m model.gguf -c 131072 -ngl 99 -ngl all -ts 24,12 \
        -ot blk\\.1\\.ffn_.*_exps=CPU,blk\\.2\\.ffn_.*_exps=CUDA1 -sm layer -mg 0 -ub 2048 -b 2048 \
        -ctk q8_0 -ctv q8_0 -np 1 -kvu -nkvo -fa on -lm none -dev CUDA0,CUDA1 --fit off \
        --no-op-offload --cpu-moe --n-cpu-moe 10 -fitt 1024";

    #[test]
    fn reference_knows_every_flag_placer_emits() {
        reference()
            .validate_argv(&argv(PLACER_EMITS), Tool::Server)
            .unwrap();
    }

    #[test]
    fn older_trees_lack_load_mode_and_take_no_mmap() {
        let old = for_build(8022).unwrap().facts;
        assert!(!old.has("-lm"));
        assert!(old.has("--no-mmap"));
        assert!(!old.has("-fitp"), "0.3.17 has no --fit-print");
        assert_eq!(load_mode_flags(old).flags, ["--no-mmap"]);
        assert_eq!(load_mode_flags(reference()).flags, ["-lm", "none"]);
        assert!(!reference().has("--no-mmap"));
        let e = old
            .validate_argv(&argv("-lm none"), Tool::Server)
            .unwrap_err();
        assert!(matches!(e, ArgvError::Unknown { .. }), "{e}");
        // -sm tensor came later
        let e = old
            .validate_argv(&argv("-sm tensor"), Tool::Server)
            .unwrap_err();
        assert!(matches!(e, ArgvError::NotAccepted { .. }), "{e}");
        for_build(9093)
            .unwrap()
            .facts
            .validate_argv(&argv("--no-mmap -fitp on"), Tool::FitParams)
            .unwrap();
    }

    #[test]
    fn misspellings_get_a_suggestion() {
        let r = reference();
        let e = r
            .validate_argv(&argv("--cache-typek q8_0"), Tool::Server)
            .unwrap_err();
        match &e {
            ArgvError::Unknown { suggestion, .. } => {
                assert_eq!(suggestion.as_deref(), Some("--cache-type-k"))
            }
            _ => panic!("{e}"),
        }
        assert!(e.to_string().contains("did you mean --cache-type-k"), "{e}");
        let e = r
            .validate_argv(&argv("--ctx-sise 4096"), Tool::Server)
            .unwrap_err();
        assert!(e.to_string().contains("--ctx-size"), "{e}");
    }

    #[test]
    fn underscores_are_dashes_for_long_names() {
        // common_params_parse_ex: std::replace(arg, '_', '-') for `--` arguments
        let r = reference();
        r.validate_argv(&argv("--ctx_size 4096 --n_gpu_layers 10"), Tool::Server)
            .unwrap();
        assert!(r
            .validate_argv(&argv("-n_gpu_layers 1"), Tool::Server)
            .is_err());
    }

    #[test]
    fn values_are_checked() {
        let r = reference();
        let bad = |s: &str| r.validate_argv(&argv(s), Tool::Server).unwrap_err();
        assert!(matches!(bad("-c 4294967296"), ArgvError::OutOfRange { .. }));
        assert!(matches!(bad("-c big"), ArgvError::NotAnInteger { .. }));
        assert!(matches!(
            bad("-ngl 4294967296"),
            ArgvError::OutOfRange { .. }
        ));
        assert!(matches!(bad("-ctk q8"), ArgvError::NotAccepted { .. }));
        assert!(matches!(bad("-fa maybe"), ArgvError::NotAccepted { .. }));
        assert!(matches!(bad("-np 0"), ArgvError::Rejected { .. }));
        assert!(matches!(bad("--n-cpu-moe -1"), ArgvError::Rejected { .. }));
        assert!(matches!(bad("-c"), ArgvError::MissingValue { .. }));
        assert!(matches!(
            bad("--ctx-size=4096"),
            ArgvError::EqualsSyntax { .. }
        ));
        assert!(matches!(bad("--"), ArgvError::Unknown { .. }));
        assert!(matches!(bad("-fitp on"), ArgvError::WrongTool { .. }));
        // -np 0 is fine outside the server (a different registration of -np)
        r.validate_argv(&argv("-np 0 -fitp on"), Tool::FitParams)
            .unwrap();
        // std::stoi ignores trailing characters; -ot values are free text
        r.validate_argv(&argv("-c 4096k -fa auto -fa -1 -ngl auto"), Tool::Server)
            .unwrap();
        r.validate_argv(&argv("-ot a=b,c=d --no-kv-unified"), Tool::Server)
            .unwrap();
    }

    #[test]
    fn build_lookup() {
        assert_eq!(for_build(8022).unwrap().facts.build, 8022);
        assert_eq!(for_build(9092).unwrap().facts.build, 8022);
        assert_eq!(for_build(11312).unwrap().facts.build, 11312);
        let s = for_build(20000).unwrap();
        assert!(s.newer_than_tables && s.warning().is_some());
        assert_eq!(s.facts.build, 11434);
        assert!(for_build(11434).unwrap().warning().is_none());
        let e = for_build(7000).unwrap_err().to_string();
        assert!(e.contains("b8022") && e.contains("b11434"), "{e}");
        assert!(for_build(0).unwrap_err().to_string().contains("git"));
        assert_eq!(reference().commit, "0c1e57098");
        assert_eq!(
            reference().defaults.fit_target_mib,
            crate::llama::FIT_TARGET_MIB
        );
        assert_eq!(
            reference().defaults.server_auto_parallel,
            Some(crate::llama::SERVER_AUTO_PARALLEL)
        );
    }

    #[test]
    fn version_output() {
        assert_eq!(
            parse_version_output(
                "version: 8022 (abcdef12)\nbuilt with GNU 13.3.0 for Linux x86_64\n"
            ),
            Some((8022, "abcdef12".into()))
        );
        assert_eq!(
            parse_version_output(
                "version: 0.5.0-dev (build 11312, commit 0c1e57098)\nbuilt with GNU 12 for Linux x86_64"
            ),
            Some((11312, "0c1e57098".into()))
        );
        assert_eq!(
            parse_version_output("main: build: 9093 (1a2b3c4d5) with cc for x86_64"),
            Some((9093, "1a2b3c4d5".into()))
        );
        assert_eq!(
            parse_version_output("llama-server: command not found"),
            None
        );
    }
}
