//! Every environment variable placer reads, in one place (as uv's `uv-static` lists its own).
//!
//! | variable | what |
//! |---|---|
//! | `PLACER_MODELS` | the catalog folder (models/<id>.toml + models/headers/) |
//! | `PLACER_CALIBRATION` | the user's calibration file (default `~/.config/placer/calibration.toml`) |
//! | `PLACER_MIP_GAP` | the solver's optimality gap on the request time (experiments; default `solver::ilp::MIP_REL_GAP`) |
//! | `PLACER_HIGHS_OPTS` | extra HiGHS options, `name=value;…` (experiments) |
//! | `PLACER_HIGHS_VERBOSE` | print HiGHS's log |
//! | `PLACER_DEBUG_SOLVER` | print the solver's rounds (linear vs exact memory, times) |
//! | `PLACER_CONFIG` | the configuration file (default `~/.config/placer/config.toml`, src/config.rs) |
//! | `PLACER_LLAMA` | the llama-server (or its folder) placer writes for and runs (src/target.rs) |
//! | `PLACER_DATA` | the folder `placer trial` stores its runs in (default `$XDG_DATA_HOME/placer/runs` or `~/.local/share/placer/runs`, src/trial/store.rs) |
//! | `PLACER_OFFLINE` | read remote models (URLs, `hf:`) from the caches only, like `--offline` (src/remote) |
//! | `PLACER_HTTP_TIMEOUT` | seconds a server may stay silent while a remote header is read (default 30) |
//! | `XDG_CACHE_HOME` | placer's cache folder is `$XDG_CACHE_HOME/placer` (default `~/.cache/placer`); remote headers live in its `headers/` |
//!
//! llama.cpp's own variables, read the way llama.cpp reads them so that `hf:` names the file
//! `-hf` loads (src/remote/hf.rs):
//!
//! | variable | what |
//! |---|---|
//! | `MODEL_ENDPOINT`, `HF_ENDPOINT` | the Hub's base URL (`common/common.cpp:common_get_model_endpoint`) |
//! | `HF_TOKEN` | the token sent to that endpoint (`common/arg.cpp`, `--hf-token`'s default) |
//! | `LLAMA_CACHE`, `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `HF_HOME` | llama.cpp's model cache (`common/hf-cache.cpp:get_cache_directory`) |

/// The catalog folder.
pub const MODELS: &str = "PLACER_MODELS";
/// The user's calibration file.
pub const CALIBRATION: &str = "PLACER_CALIBRATION";
/// The solver's optimality gap on the request time.
pub const MIP_GAP: &str = "PLACER_MIP_GAP";
/// Extra HiGHS options, `name=value;…`.
pub const HIGHS_OPTS: &str = "PLACER_HIGHS_OPTS";
/// Print HiGHS's log.
pub const HIGHS_VERBOSE: &str = "PLACER_HIGHS_VERBOSE";
/// Print the solver's rounds.
pub const DEBUG_SOLVER: &str = "PLACER_DEBUG_SOLVER";

/// The configuration file.
pub const CONFIG: &str = "PLACER_CONFIG";
/// The llama-server binary or its folder.
pub const LLAMA: &str = "PLACER_LLAMA";
/// The folder `placer trial` stores its runs in.
pub const DATA: &str = "PLACER_DATA";

/// Remote models from the caches only.
pub const OFFLINE: &str = "PLACER_OFFLINE";
/// Seconds a server may stay silent.
pub const HTTP_TIMEOUT: &str = "PLACER_HTTP_TIMEOUT";
/// The XDG cache base folder.
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// llama.cpp's Hub endpoint.
pub const MODEL_ENDPOINT: &str = "MODEL_ENDPOINT";
/// llama.cpp's older name for the endpoint.
pub const HF_ENDPOINT: &str = "HF_ENDPOINT";
/// The Hub token.
pub const HF_TOKEN: &str = "HF_TOKEN";
/// llama.cpp's model cache, first choice.
pub const LLAMA_CACHE: &str = "LLAMA_CACHE";
/// The Hub's cache folder.
pub const HF_HUB_CACHE: &str = "HF_HUB_CACHE";
/// The Hub's older cache variable.
pub const HUGGINGFACE_HUB_CACHE: &str = "HUGGINGFACE_HUB_CACHE";
/// The Hub's home (its cache is `hub/` under it).
pub const HF_HOME: &str = "HF_HOME";

/// placer's cache folder: `$XDG_CACHE_HOME/placer`, else `~/.cache/placer`.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    path(XDG_CACHE_HOME)
        .or_else(|| path("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("placer"))
}

/// Whether a switch variable is set (to anything).
pub fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

/// A path variable, when set and not empty.
pub fn path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// `PLACER_MIP_GAP` as a number, when set and valid.
pub fn mip_gap() -> Option<f64> {
    std::env::var(MIP_GAP)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|g| g.is_finite() && *g >= 0.0)
}
