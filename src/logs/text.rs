//! Text and `--log-jsonl` logs of llama-server, llama-cli, llama-completion (and llama-bench's
//! stderr). One pass over the lines; every matcher is a search, not anchored, because the prefix
//! varies by build and flags (`0.04.608.126 I `, `[2026-11-23 10:00:01] `, `srv  load_model: `,
//! ANSI colours) and generated text printed to the same stream can precede a log line on the
//! same physical line (`專家0.01.707.723 D n_past = 451` in the reference logs).
//!
//! A `--fit` run loads the model many times without allocating (trial "dry runs", all buffers
//! 0.00 MiB) before the real load; each load is a `Segment` and the run is the last segment that
//! is not a trial. Sources of the strings: llamacpp-internals.md §5–§9 and §11.3, checked against
//! the reference logs and the sdist tree (`src/llama-context.cpp`, `src/llama-model.cpp`,
//! `src/llama-kv-cache.cpp`, `common/fit.cpp:common_memory_breakdown_print`,
//! `ggml/src/ggml-cuda/ggml-cuda.cu`, `ggml/src/ggml-alloc.c`, `tools/server/server-context.cpp`).

use super::{bench, BreakdownRow, GpuSeen, LogFormat, LogRun, OomFailure};
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

const MIB: f64 = crate::units::MIB as f64;

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect("valid regex"));
    };
}

re!(ANSI, r"\x1b\[[0-9;]*[A-Za-z]");
re!(BUILD, r"\bbuild(?: =|:)? *(\d+) \(([0-9a-fA-F]+|unknown)\)");
re!(
    VERSION_NEW,
    r"\(build (\d+), commit ([0-9a-fA-F]+|unknown)\)"
);
re!(VERSION_OLD, r"^version: (\d+) \(([0-9a-fA-F]+|unknown)\)");
re!(
    META,
    r"loaded meta data with \d+ key-value pairs and \d+ tensors from (.+?) \(version"
);
re!(LOADING_MODEL, r"loading model '([^']+)'");
re!(
    USING_DEVICE,
    r"using device (\S+) \((.*)\) - (\d+) MiB free"
);
re!(
    CUDA_DEVICE,
    r"Device (\d+): (.+?), compute capability [\d.]+, VMM: \w+(?:, VRAM: (\d+) MiB)?"
);
re!(PRINT_INFO, r"print_info: ([\w. ]+?)\s+= (.*)$");
re!(
    LOAD_MODE,
    r"loading model tensors, this can take a while\.\.\. \(load_mode = (\w+)\)"
);
re!(LAYER_DEVICE, r"layer\s+(\d+) assigned to device (\w+)");
re!(
    OVERRIDE,
    r"tensor (\S+) (?:\([^)]*\) )?buffer type overridden to (\S+)"
);
re!(OFFLOADED, r"offloaded (\d+)/(\d+) layers to GPU");
re!(MODEL_BUF, r"(\S+) model buffer size\s*=\s*([\d.]+) MiB");
re!(
    OLD_MODEL_BUF,
    r"(?:llm_load_tensors|load_tensors):\s+(\S+) buffer size\s*=\s*([\d.]+) MiB"
);
re!(KV_BUF, r"(\S+) KV buffer size\s*=\s*([\d.]+) MiB");
re!(RS_BUF, r"(\S+) RS buffer size\s*=\s*([\d.]+) MiB");
re!(COMPUTE_BUF, r"(\S+) compute buffer size\s*=\s*([\d.]+) MiB");
re!(OUTPUT_BUF, r"(\S+)\s+output buffer size\s*=\s*([\d.]+) MiB");
re!(
    CTX_PARAM,
    r"(?:llama_context|llama_new_context_with_model|llama_init_from_model): (n_seq_max|n_ctx|n_ctx_seq|n_ctx_per_seq|n_batch|n_ubatch|flash_attn|kv_unified|n_outputs_max)\s*=\s*(\S+)"
);
re!(
    KV_SIZE,
    r"size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,.*?\), K \((\w+)\):\s*[\d.]+ MiB, V \((\w+)\)"
);
re!(KV_TYPES_OLD, r"type_k = '(\w+)', type_v = '(\w+)'");
re!(
    KV_SELF_OLD,
    r"KV self size\s*=\s*([\d.]+) MiB, K \((\w+)\):.*?V \((\w+)\)"
);
re!(
    GRAPH_NEW,
    r"graph(?: \(pp bs=\d+, tg bs=\d+\))?: nodes = (\d+)(?: / (\d+))?, splits = (\d+)(?: / (\d+))?"
);
re!(GRAPH_NODES_OLD, r"graph nodes\s*=\s*(\d+)");
re!(
    GRAPH_SPLITS_OLD,
    r"graph splits\s*=\s*(\d+)(?: \(with bs=\d+\), (\d+) \(with bs=1\))?"
);
re!(SCHED_COPIES, r"sched copies = (\d+)");
re!(
    FA_RESOLVED,
    r"Flash Attention (enabled|not supported, set to disabled)"
);
re!(
    BD_GPU,
    r"\|\s*-\s*(\S+)(?: \((.*?)\))?\s*\|\s*(\d+)\s*=\s*(\d+)\s*\+\s*\(\s*(\d+)\s*=\s*(\d+)\s*\+\s*(\d+)\s*\+\s*(\d+)\s*\)\s*\+\s*(-?\d+)\s*\|"
);
re!(
    BD_OTHER,
    r"\|\s*-\s*(\S+)(?: \((.*?)\))?\s*\|\s*(\d+)\s*=\s*(\d+)\s*\+\s*(\d+)\s*\+\s*(\d+)\s*\|"
);
re!(
    TIMING,
    r"(prompt )?eval time\s*=\s*([\d.]+) ms /\s*(\d+) (?:tokens|runs)(?:\s*\(\s*[\d.a-z+-]+ ms per token,\s*([\d.a-z+-]+) tokens per second\))?"
);
re!(
    FIT_TOOK,
    r"fitting params to (?:free |device )*memory took ([\d.]+) seconds"
);
re!(
    FIT_FAILED,
    r"(failed to fit params to free device memory|encountered an error while trying to fit params to free device memory): (.*)$"
);
re!(
    FIT_DEVICE,
    r"-\s+(\S+) \(.*?\):\s+(\d+) layers(?: \(\s*(\d+) overflowing\))?,\s+(-?\d+) MiB used,\s+(-?\d+) MiB free"
);
re!(
    FIT_OVERFLOW,
    r"set ngl_per_device\[(\d+)\]\.\(n_layer, n_part, overflow_type\)=\(\d+, \d+, (\w+)\)"
);
re!(FIT_PARAMS_OUT, r"^-c \d+ -ngl -?\d+.*$");
re!(FIT_CTX_REDUCED, r"context size reduced from (\d+) to (\d+)");
re!(
    CUDA_MALLOC,
    r"allocating ([\d.]+) MiB on device (\d+): cudaMalloc failed: (.*)$"
);
re!(
    ALLOC_FAILED,
    r"(\w+): failed to allocate (?:(\S+) )?buffer of size (\d+)"
);
re!(UNABLE_ALLOC, r"unable to allocate (\S+) buffer");
re!(
    CPU_INSUFFICIENT,
    r"insufficient memory \(attempted to allocate\s*([\d.]+) MB\)"
);
re!(
    OUTPUT_FAIL,
    r"failed to allocate output buffer of size ([\d.]+) MiB"
);
re!(CUDA_ERROR_DEV, r"current device: (\d+)");

/// How far one model load has got, for naming the stage of an OOM (llamacpp-internals.md §8:
/// weights, then output buffer + KV/RS, then compute reserve, then decoding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Progress {
    #[default]
    Start,
    Load,
    Context,
    Reserve,
    Running,
}

#[derive(Debug, Clone, Default)]
struct Segment {
    run: LogRun,
    fit_trial: bool,
    seen_meta: bool,
    progress: Progress,
    has_breakdown_after_reserve: bool,
}

impl Segment {
    fn new(fit_trial: bool) -> Segment {
        Segment {
            fit_trial,
            ..Default::default()
        }
    }
    fn has_load_content(&self) -> bool {
        self.progress >= Progress::Load || self.seen_meta
    }
}

struct Parser {
    g: LogRun,
    seg: Segment,
    /// Last non-trial segment that was complete before the current one started.
    best: Option<Segment>,
    in_fit: bool,
    recognized: usize,
    terminal: bool,
    last_oom_line: Option<usize>,
    line_no: usize,
    fit_devices: BTreeMap<String, String>,
    fit_layers: BTreeMap<String, crate::logs::FitDevice>,
    fit_overflow: BTreeMap<usize, String>,
    jsonl_lines: usize,
    md: bench::MarkdownState,
}

/// Read a text or JSONL log. `None` when nothing in it is something llama.cpp prints.
pub fn parse(source: &str, content: &str) -> Option<LogRun> {
    let mut p = Parser {
        g: LogRun {
            source: source.to_string(),
            ..Default::default()
        },
        seg: Segment::new(false),
        best: None,
        in_fit: false,
        recognized: 0,
        terminal: false,
        last_oom_line: None,
        line_no: 0,
        fit_devices: BTreeMap::new(),
        fit_layers: BTreeMap::new(),
        fit_overflow: BTreeMap::new(),
        jsonl_lines: 0,
        md: bench::MarkdownState::default(),
    };
    for raw in content.split(['\n', '\r']) {
        p.line_no += 1;
        if raw.trim_start().starts_with('{') {
            if let Ok(serde_json::Value::Object(obj)) =
                serde_json::from_str::<serde_json::Value>(raw.trim())
            {
                p.json_line(&obj);
                continue;
            }
        }
        p.text_line(raw);
    }
    p.finish()
}

fn f(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}
fn u(s: &str) -> Option<u32> {
    s.parse::<u32>().ok()
}

impl Parser {
    fn json_line(&mut self, obj: &serde_json::Map<String, serde_json::Value>) {
        self.jsonl_lines += 1;
        match obj.get("type").and_then(|t| t.as_str()) {
            Some("log") => {
                if let Some(msg) = obj.get("msg").and_then(|m| m.as_str()) {
                    for line in msg.split(['\n', '\r']) {
                        self.text_line(line);
                    }
                }
            }
            Some("fit_memory_breakdown") => {
                let rows = obj
                    .get("data")
                    .and_then(|d| d.get("rows"))
                    .and_then(|r| r.as_array());
                if let Some(rows) = rows {
                    self.recognized += 1;
                    let parsed: Vec<BreakdownRow> =
                        rows.iter().filter_map(breakdown_from_json).collect();
                    self.set_breakdown(parsed);
                }
            }
            _ => {
                // llama-bench -o jsonl objects carry avg_ts.
                if obj.contains_key("avg_ts") {
                    if let Some(b) = bench::from_json_obj(obj) {
                        self.recognized += 1;
                        self.terminal = true;
                        self.g.bench.push(b);
                    }
                }
            }
        }
    }

    fn set_breakdown(&mut self, rows: Vec<BreakdownRow>) {
        self.seg.run.breakdown = rows;
        if self.seg.progress >= Progress::Reserve {
            self.seg.has_breakdown_after_reserve = true;
        }
    }

    /// Start a new load (a `--fit` trial or the real one); keep the previous if it was real.
    fn new_segment(&mut self) {
        let old = std::mem::replace(&mut self.seg, Segment::new(self.in_fit));
        if old.has_load_content() {
            if old.fit_trial {
                self.g.fit_trials += 1;
            } else {
                self.best = Some(old);
            }
        }
    }

    fn text_line(&mut self, raw: &str) {
        let cleaned;
        let line = if raw.contains('\x1b') {
            cleaned = ANSI.replace_all(raw, "");
            cleaned.as_ref()
        } else {
            raw
        };
        if line.trim().is_empty() {
            return;
        }
        if let Some(b) = bench::markdown_line(&mut self.md, line) {
            self.recognized += 1;
            self.terminal = true;
            self.g.format = LogFormat::BenchMarkdown;
            self.g.bench.push(b);
            return;
        }
        if self.build_line(line) {
            return;
        }
        let before = self.recognized;
        self.load_lines(line);
        if self.recognized == before {
            self.context_lines(line);
        }
        if self.recognized == before {
            self.fit_lines(line);
        }
        if self.recognized == before {
            self.speed_and_breakdown_lines(line);
        }
        if self.recognized == before {
            self.oom_lines(line);
        }
        if self.recognized == before && line.contains("llama_") {
            // Any other libllama line still marks the file as a llama.cpp log.
            self.recognized += 1;
        }
    }

    fn build_line(&mut self, line: &str) -> bool {
        if !(line.contains("build") || line.starts_with("version")) {
            return false;
        }
        let caps = BUILD
            .captures(line)
            .or_else(|| VERSION_NEW.captures(line))
            .or_else(|| VERSION_OLD.captures(line));
        if let Some((commit, number)) = bench::footer(line) {
            self.g.build = Some(format!("b{number} ({commit})"));
            self.recognized += 1;
            return true;
        }
        if let Some(c) = caps {
            self.g.build = Some(format!("b{} ({})", &c[1], &c[2]));
            self.recognized += 1;
            return true;
        }
        false
    }

    fn load_lines(&mut self, line: &str) {
        if let Some(c) = META.captures(line) {
            if self.seg.seen_meta {
                self.new_segment();
            }
            self.seg.seen_meta = true;
            self.seg.progress = self.seg.progress.max(Progress::Load);
            self.seg.run.model_path = Some(c[1].to_string());
            self.recognized += 1;
        } else if let Some(c) = USING_DEVICE.captures(line) {
            let dev = c[1].to_string();
            if self.seg.run.free_at_load.contains_key(&dev) || self.seg.progress > Progress::Load {
                self.new_segment();
            }
            self.seg.progress = self.seg.progress.max(Progress::Load);
            if let Some(v) = f(&c[3]) {
                self.seg.run.free_at_load.insert(dev, v);
            }
            self.recognized += 1;
        } else if let Some(c) = CUDA_DEVICE.captures(line) {
            let gpu = GpuSeen {
                description: c[2].to_string(),
                vram_mib: c.get(3).and_then(|m| f(m.as_str())),
            };
            self.g.gpus.insert(format!("CUDA{}", &c[1]), gpu);
            self.recognized += 1;
        } else if let Some(c) = LOADING_MODEL.captures(line) {
            self.seg
                .run
                .model_path
                .get_or_insert_with(|| c[1].to_string());
            self.recognized += 1;
        } else if let Some(c) = PRINT_INFO.captures(line) {
            self.g.model_info_insert(&c[1], c[2].trim());
            self.recognized += 1;
        } else if let Some(c) = LOAD_MODE.captures(line) {
            self.seg.run.load_mode = Some(c[1].to_string());
            self.recognized += 1;
        } else if let Some(c) = LAYER_DEVICE.captures(line) {
            if let Some(l) = u(&c[1]) {
                self.seg.run.layer_device.insert(l, c[2].to_string());
            }
            self.recognized += 1;
        } else if let Some(c) = OVERRIDE.captures(line) {
            self.seg
                .run
                .overrides
                .insert(c[1].to_string(), c[2].to_string());
            self.recognized += 1;
        } else if let Some(c) = OFFLOADED.captures(line) {
            self.seg.run.layers_offloaded = u(&c[1]).zip(u(&c[2]));
            self.recognized += 1;
        } else if let Some(c) = MODEL_BUF.captures(line) {
            add(&mut self.seg.run.buffers.model, &c[1], &c[2]);
            self.recognized += 1;
        } else if let Some(c) = OLD_MODEL_BUF.captures(line) {
            add(&mut self.seg.run.buffers.model, &c[1], &c[2]);
            self.recognized += 1;
        }
    }

    fn context_lines(&mut self, line: &str) {
        let run = &mut self.seg.run;
        if let Some(c) = CTX_PARAM.captures(line) {
            self.seg.progress = self.seg.progress.max(Progress::Context);
            let v = &c[2];
            match &c[1] {
                "n_seq_max" => run.n_seq_max = u(v),
                "n_ctx" => run.n_ctx = u(v),
                "n_ctx_seq" | "n_ctx_per_seq" => run.n_ctx_seq = u(v),
                "n_batch" => run.n_batch = u(v),
                "n_ubatch" => run.n_ubatch = u(v),
                "n_outputs_max" => run.n_outputs_max = u(v),
                "flash_attn" => run.flash_attn = Some(normalize_fa(v)),
                "kv_unified" => run.kv_unified = Some(v == "true" || v == "1"),
                _ => {}
            }
            self.recognized += 1;
        } else if line.contains("constructing llama_context") {
            self.seg.progress = self.seg.progress.max(Progress::Context);
            self.recognized += 1;
        } else if let Some(c) = KV_BUF.captures(line) {
            self.seg.progress = self.seg.progress.max(Progress::Context);
            add(&mut run.buffers.kv, &c[1], &c[2]);
            self.recognized += 1;
        } else if let Some(c) = RS_BUF.captures(line) {
            self.seg.progress = self.seg.progress.max(Progress::Context);
            add(&mut run.buffers.rs, &c[1], &c[2]);
            self.recognized += 1;
        } else if let Some(c) = OUTPUT_BUF.captures(line) {
            self.seg.progress = self.seg.progress.max(Progress::Context);
            add(&mut run.buffers.output, &c[1], &c[2]);
            self.recognized += 1;
        } else if let Some(c) = KV_SIZE.captures(line) {
            self.seg.progress = self.seg.progress.max(Progress::Context);
            if let Some(v) = f(&c[1]) {
                *run.kv_size_mib.get_or_insert(0.0) += v;
            }
            run.type_k = Some(c[4].to_string());
            run.type_v = Some(c[5].to_string());
            self.recognized += 1;
        } else if let Some(c) = KV_SELF_OLD.captures(line) {
            self.seg.progress = self.seg.progress.max(Progress::Context);
            run.kv_size_mib = f(&c[1]);
            run.type_k = Some(c[2].to_string());
            run.type_v = Some(c[3].to_string());
            self.recognized += 1;
        } else if let Some(c) = KV_TYPES_OLD.captures(line) {
            run.type_k = Some(c[1].to_string());
            run.type_v = Some(c[2].to_string());
            self.recognized += 1;
        } else if line.contains("compute buffer size") && !line.contains("compute buffer size is") {
            if let Some(c) = COMPUTE_BUF.captures(line) {
                self.seg.progress = self.seg.progress.max(Progress::Reserve);
                if let Some(v) = f(&c[2]) {
                    run.buffers.compute.insert(c[1].to_string(), v);
                }
                self.recognized += 1;
            }
        } else if let Some(c) = GRAPH_NEW.captures(line) {
            let nodes = u(&c[1]);
            let nodes_tg = c.get(2).and_then(|m| u(m.as_str())).or(nodes);
            let splits = u(&c[3]);
            let splits_tg = c.get(4).and_then(|m| u(m.as_str())).or(splits);
            run.graph_nodes = nodes.zip(nodes_tg);
            run.graph_splits = splits.zip(splits_tg);
            run.pipeline_parallel.get_or_insert(false);
            self.seg.progress = self.seg.progress.max(Progress::Reserve);
            self.recognized += 1;
        } else if let Some(c) = GRAPH_NODES_OLD.captures(line) {
            let n = u(&c[1]);
            run.graph_nodes = n.zip(n);
            self.recognized += 1;
        } else if let Some(c) = GRAPH_SPLITS_OLD.captures(line) {
            let s = u(&c[1]);
            let s1 = c.get(2).and_then(|m| u(m.as_str())).or(s);
            run.graph_splits = s.zip(s1);
            run.pipeline_parallel.get_or_insert(false);
            self.seg.progress = self.seg.progress.max(Progress::Reserve);
            self.recognized += 1;
        } else if line.contains("pipeline parallelism enabled") {
            run.pipeline_parallel = Some(true);
            self.recognized += 1;
        } else if line.contains("retrying without pipeline parallelism") {
            run.pipeline_parallel = Some(false);
            self.recover_pipeline_oom(line);
            self.recognized += 1;
        } else if let Some(c) = SCHED_COPIES.captures(line) {
            run.pipeline_parallel = Some(u(&c[1]).unwrap_or(1) > 1);
            self.recognized += 1;
        } else if let Some(c) = FA_RESOLVED.captures(line) {
            run.flash_attn = Some(if &c[1] == "enabled" {
                "enabled".into()
            } else {
                "disabled".into()
            });
            self.recognized += 1;
        } else if line.contains("warming up the model") || line.contains("server is listening") {
            self.seg.progress = Progress::Running;
            if line.contains("server is listening") {
                self.terminal = true;
            }
            self.recognized += 1;
        }
    }

    /// A compute reserve that failed with pipeline parallelism is retried without it
    /// (`llama-context.cpp:sched_reserve`): the OOM before it was recovered from.
    fn recover_pipeline_oom(&mut self, line: &str) {
        if let Some(i) = self.last_oom_line {
            if self.line_no - i <= 20 {
                if let Some(o) = self.g.oom.pop() {
                    self.g.warnings.push(format!(
                        "compute buffers with pipeline parallelism did not fit on {} ({} bytes); llama.cpp retried without: {}",
                        o.device.unwrap_or_default(),
                        o.bytes.unwrap_or(0),
                        line.trim()
                    ));
                }
                self.last_oom_line = None;
            }
        }
    }

    fn fit_lines(&mut self, line: &str) {
        if line.contains("fitting params to device memory") {
            self.in_fit = true;
            self.seg.fit_trial = true;
            self.recognized += 1;
        } else if let Some(c) = FIT_TOOK.captures(line) {
            self.g.fit_seconds = f(&c[1]);
            self.end_fit();
            self.recognized += 1;
        } else if line.contains("successfully fit params to free device memory") {
            self.g.fit_result = Some(self.fit_summary("fitted"));
            self.recognized += 1;
        } else if line.contains("no changes needed") && line.contains("free device memory") {
            self.g.fit_result = Some("no changes needed".into());
            self.recognized += 1;
        } else if let Some(c) = FIT_FAILED.captures(line) {
            self.g.fit_result = Some(format!("failed: {}", c[2].trim()));
            self.end_fit();
            self.recognized += 1;
        } else if let Some(c) = FIT_DEVICE.captures(line) {
            let over = c
                .get(3)
                .map(|m| format!(" ({} overflowing)", m.as_str()))
                .unwrap_or_default();
            self.fit_devices.insert(
                c[1].to_string(),
                format!("{} {} layers{}", &c[1], &c[2], over),
            );
            self.fit_layers.insert(
                c[1].to_string(),
                crate::logs::FitDevice {
                    name: c[1].to_string(),
                    n_layer: u(&c[2]).unwrap_or(0),
                    n_part: c.get(3).and_then(|m| u(m.as_str())),
                },
            );
            self.recognized += 1;
        } else if let Some(c) = FIT_OVERFLOW.captures(line) {
            if let Ok(id) = c[1].parse::<usize>() {
                self.fit_overflow.insert(id, c[2].to_string());
            }
            self.recognized += 1;
        } else if let Some(c) = FIT_CTX_REDUCED.captures(line) {
            self.g.warnings.push(format!(
                "--fit reduced the context from {} to {}",
                &c[1], &c[2]
            ));
            self.recognized += 1;
        } else if FIT_PARAMS_OUT.is_match(line.trim()) {
            self.g.fit_result = Some(line.trim().to_string());
            self.terminal = true;
            self.recognized += 1;
        }
    }

    fn end_fit(&mut self) {
        if self.in_fit {
            self.in_fit = false;
            // The next load is the real one.
            self.new_segment();
        }
    }

    fn fit_summary(&self, what: &str) -> String {
        if self.fit_devices.is_empty() {
            return what.to_string();
        }
        let devs: Vec<&str> = self.fit_devices.values().map(|s| s.as_str()).collect();
        format!("{what}: {}", devs.join(", "))
    }

    fn speed_and_breakdown_lines(&mut self, line: &str) {
        if line.contains("eval time") {
            if let Some(c) = TIMING.captures(line) {
                let ms = f(&c[2]);
                let n = u(&c[3]);
                let tps = c
                    .get(4)
                    .and_then(|m| f(m.as_str()))
                    .or_else(|| match (ms, n) {
                        (Some(ms), Some(n)) if ms > 0.0 => Some(n as f64 * 1000.0 / ms),
                        _ => None,
                    });
                if c.get(1).is_some() {
                    self.g.prompt_tokens = n;
                    self.g.prompt_tps = tps;
                } else {
                    self.g.gen_tokens = n;
                    self.g.gen_tps = tps;
                }
                self.seg.progress = Progress::Running;
                self.terminal = true;
                self.recognized += 1;
                return;
            }
        }
        if line.contains("memory breakdown [MiB]") {
            self.set_breakdown(Vec::new());
            self.recognized += 1;
        } else if line.contains('|') && line.contains('=') {
            if let Some(c) = BD_GPU.captures(line) {
                let n = |i: usize| f(&c[i]).unwrap_or(0.0);
                let row = BreakdownRow {
                    name: c[1].to_string(),
                    description: c.get(2).map(|m| m.as_str().to_string()),
                    total: Some(n(3)),
                    free: Some(n(4)),
                    self_: n(5),
                    model: n(6),
                    context: n(7),
                    compute: n(8),
                    unaccounted: Some(n(9)),
                };
                self.push_breakdown_row(row);
            } else if let Some(c) = BD_OTHER.captures(line) {
                let n = |i: usize| f(&c[i]).unwrap_or(0.0);
                let row = BreakdownRow {
                    name: c[1].to_string(),
                    description: c.get(2).map(|m| m.as_str().to_string()),
                    total: None,
                    free: None,
                    self_: n(3),
                    model: n(4),
                    context: n(5),
                    compute: n(6),
                    unaccounted: None,
                };
                self.push_breakdown_row(row);
            }
        }
    }

    fn push_breakdown_row(&mut self, row: BreakdownRow) {
        self.seg.run.breakdown.retain(|r| r.name != row.name);
        self.seg.run.breakdown.push(row);
        if self.seg.progress >= Progress::Reserve {
            self.seg.has_breakdown_after_reserve = true;
        }
        self.recognized += 1;
    }

    fn stage_now(&self) -> &'static str {
        match self.seg.progress {
            Progress::Start | Progress::Load => "load",
            Progress::Context => "kv",
            Progress::Reserve => "compute",
            Progress::Running => "runtime",
        }
    }

    fn push_oom(&mut self, device: Option<String>, bytes: Option<u64>, stage: &str, line: &str) {
        self.g.oom.push(OomFailure {
            device,
            bytes,
            stage: stage.to_string(),
            line: line.trim().to_string(),
        });
        self.last_oom_line = Some(self.line_no);
        self.terminal = true;
        self.recognized += 1;
    }

    /// The OOM a follow-up line refers to: the last one, if it was reported a few lines ago.
    fn open_oom(&mut self) -> Option<&mut OomFailure> {
        let recent = self.last_oom_line.is_some_and(|i| self.line_no - i <= 20);
        if recent {
            self.g.oom.last_mut()
        } else {
            None
        }
    }

    fn oom_lines(&mut self, line: &str) {
        if let Some(c) = CUDA_MALLOC.captures(line) {
            let bytes = f(&c[1]).map(|m| (m * MIB).round() as u64);
            let stage = self.stage_now();
            self.push_oom(Some(format!("CUDA{}", &c[2])), bytes, stage, line);
        } else if let Some(c) = ALLOC_FAILED.captures(line) {
            let func = c[1].to_string();
            let buft = c.get(2).map(|m| m.as_str().to_string());
            let bytes = c[3].parse::<u64>().ok();
            let stage = if func.contains("gallocr") {
                if self.seg.progress >= Progress::Running {
                    "runtime"
                } else {
                    "compute"
                }
            } else {
                self.stage_now()
            };
            if let Some(o) = self.open_oom() {
                o.bytes = bytes.or(o.bytes);
                if o.device.is_none() {
                    o.device = buft;
                }
                o.stage = stage.to_string();
                self.recognized += 1;
            } else {
                let dev = buft.or_else(|| func.contains("cpu").then(|| "CPU".to_string()));
                self.push_oom(dev, bytes, stage, line);
            }
        } else if let Some(c) = UNABLE_ALLOC.captures(line) {
            let buft = c[1].to_string();
            if let Some(o) = self.open_oom() {
                o.stage = "load".into();
                o.device.get_or_insert(buft);
                self.recognized += 1;
            } else {
                self.push_oom(Some(buft), None, "load", line);
            }
        } else if line.contains("failed to allocate buffer for kv cache")
            || line.contains("failed to allocate buffer for rs cache")
        {
            self.refine_or_push("kv", line);
        } else if line.contains("failed to allocate compute") {
            self.refine_or_push("compute", line);
        } else if line.contains("failed to reserve graph buffers")
            || line.contains("failed to allocate graph")
        {
            self.refine_or_push("runtime", line);
        } else if let Some(c) = CPU_INSUFFICIENT.captures(line) {
            let bytes = f(&c[1]).map(|m| (m * MIB).round() as u64);
            let stage = self.stage_now();
            self.push_oom(Some("CPU".into()), bytes, stage, line);
        } else if let Some(c) = OUTPUT_FAIL.captures(line) {
            let bytes = f(&c[1]).map(|m| (m * MIB).round() as u64);
            let stage = if self.seg.progress >= Progress::Running {
                "runtime"
            } else {
                "kv"
            };
            self.push_oom(Some("Host".into()), bytes, stage, line);
        } else if line.contains("CUDA error: out of memory") {
            let stage = if self.seg.progress >= Progress::Reserve {
                "runtime"
            } else {
                self.stage_now()
            };
            self.push_oom(None, None, stage, line);
        } else if let Some(c) = CUDA_ERROR_DEV.captures(line) {
            let dev = format!("CUDA{}", &c[1]);
            if let Some(o) = self.open_oom() {
                o.device.get_or_insert(dev);
            }
            self.recognized += 1;
        } else if line.contains("mmap failed") && line.contains("error loading model") {
            self.push_oom(Some("CPU".into()), None, "load", line);
        } else if line.contains("failed to load model")
            || line.contains("exiting due to")
            || line.contains("failed to create context")
            || line.contains("error loading model")
        {
            self.terminal = true;
            self.recognized += 1;
        }
    }

    fn refine_or_push(&mut self, stage: &str, line: &str) {
        if let Some(o) = self.open_oom() {
            o.stage = stage.to_string();
            self.recognized += 1;
        } else {
            self.push_oom(None, None, stage, line);
        }
    }

    fn finish(mut self) -> Option<LogRun> {
        if self.recognized == 0 {
            return None;
        }
        // The run is the last load that was not a --fit trial.
        let last = std::mem::take(&mut self.seg);
        let seg = if !last.fit_trial && last.has_load_content() {
            Some(last)
        } else {
            if last.fit_trial && last.has_load_content() {
                self.g.fit_trials += 1;
            }
            self.best.take()
        };
        let mut run = match &seg {
            Some(s) => s.run.clone(),
            None => LogRun::default(),
        };
        let complete = seg.as_ref().is_some_and(|s| s.has_breakdown_after_reserve);
        let g = self.g;
        run.source = g.source;
        run.build = g.build;
        run.gpus = g.gpus;
        run.oom = g.oom;
        run.prompt_tokens = g.prompt_tokens;
        run.prompt_tps = g.prompt_tps;
        run.gen_tokens = g.gen_tokens;
        run.gen_tps = g.gen_tps;
        run.fit_result = g.fit_result;
        run.fit_seconds = g.fit_seconds;
        run.fit_trials = g.fit_trials;
        let mut fit_layers: Vec<crate::logs::FitDevice> = self.fit_layers.into_values().collect();
        fit_layers.sort_by_key(|d| {
            d.name
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        run.fit_devices = fit_layers;
        run.fit_overflow = self.fit_overflow;
        run.bench = g.bench;
        run.warnings.extend(g.warnings);
        run.model_info = g.model_info;
        run.format = match (self.jsonl_lines > 0, run.bench.is_empty()) {
            (true, true) => LogFormat::Jsonl,
            (true, false) => LogFormat::BenchJson,
            (false, _) => g.format,
        };
        run.args = g.args;
        bench::apply_speeds(&mut run);
        if seg.is_none() && run.bench.is_empty() && run.fit_result.is_none() {
            run.warnings
                .push("no model load in the log (only --fit trial loads, or none)".into());
        }
        run.truncated = !(self.terminal || complete);
        if run.truncated {
            run.warnings
                .push("log ends before the run finished (no timings, breakdown, or error)".into());
        }
        Some(run)
    }
}

impl LogRun {
    /// Keep a few `print_info` facts that identify the model (arch, layers, file size, name).
    fn model_info_insert(&mut self, key: &str, value: &str) {
        const KEEP: [&str; 8] = [
            "arch",
            "file type",
            "file size",
            "n_layer",
            "n_expert",
            "n_expert_used",
            "model type",
            "general.name",
        ];
        if KEEP.contains(&key) {
            self.model_info.insert(key.to_string(), value.to_string());
        }
    }
}

fn add(map: &mut BTreeMap<String, f64>, name: &str, mib: &str) {
    if let Some(v) = f(mib) {
        *map.entry(name.to_string()).or_insert(0.0) += v;
    }
}

/// `flash_attn = auto|enabled|disabled` (new), `0|1` or `true|false` (older builds).
fn normalize_fa(v: &str) -> String {
    match v {
        "1" | "true" | "on" | "enabled" => "enabled".into(),
        "0" | "false" | "off" | "disabled" => "disabled".into(),
        other => other.to_string(),
    }
}

fn breakdown_from_json(v: &serde_json::Value) -> Option<BreakdownRow> {
    let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
    Some(BreakdownRow {
        name: v.get("name")?.as_str()?.to_string(),
        description: v
            .get("description")
            .and_then(|d| d.as_str())
            .map(|s| s.to_string()),
        total: num("total"),
        free: num("free"),
        self_: num("self").unwrap_or(0.0),
        model: num("model").unwrap_or(0.0),
        context: num("context").unwrap_or(0.0),
        compute: num("compute").unwrap_or(0.0),
        unaccounted: num("unaccounted"),
    })
}
