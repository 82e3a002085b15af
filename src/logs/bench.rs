//! llama-bench output (`tools/llama-bench/llama-bench.cpp`): markdown (default), CSV, JSON and
//! JSONL. Markdown rows are read from their END (`| … | test | t/s |`) because the columns in
//! between depend on which parameters were varied (llamacpp-internals.md §9.3).

use super::{BenchResult, LogFormat, LogRun};
use regex::Regex;
use serde_json::{Map, Value};
use std::sync::LazyLock;

static FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*build: ([0-9a-fA-F]+|unknown) \((\d+)\)\s*$").expect("regex")
});
static TEST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:pp(\d+))?\+?(?:tg(\d+))?(?: @ d(\d+))?$").expect("regex"));
static TS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([\d.]+)(?:\s*±\s*([\d.]+))?$").expect("regex"));

/// The markdown table header seen so far (column names), if any.
#[derive(Debug, Default, Clone)]
pub struct MarkdownState {
    header: Option<Vec<String>>,
}

/// `build: <commit> (<number>)`, the footer llama-bench prints after its markdown table.
pub fn footer(line: &str) -> Option<(String, String)> {
    FOOTER
        .captures(line)
        .map(|c| (c[1].to_string(), c[2].to_string()))
}

fn cells(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    if !(t.starts_with('|') && t.ends_with('|') && t.len() > 2) {
        return None;
    }
    Some(
        t[1..t.len() - 1]
            .split('|')
            .map(|c| c.trim().to_string())
            .collect(),
    )
}

/// One markdown line: remembers the header, returns a result for a data row.
pub fn markdown_line(state: &mut MarkdownState, line: &str) -> Option<BenchResult> {
    let cells = cells(line)?;
    let n = cells.len();
    if n < 2 {
        return None;
    }
    if cells[n - 1] == "t/s" && cells[n - 2] == "test" {
        state.header = Some(cells);
        return None;
    }
    let header = state.header.as_ref()?;
    if cells
        .iter()
        .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
    {
        return None;
    }
    let ts = TS.captures(&cells[n - 1])?;
    let mut r = test_fields(&cells[n - 2])?;
    r.avg_ts = ts[1].parse().ok()?;
    r.stddev_ts = ts.get(2).and_then(|m| m.as_str().parse().ok());
    if header.len() == n {
        for (name, value) in header.iter().zip(&cells) {
            named_column(&mut r, name, value);
        }
    } else {
        r.model = cells.first().cloned();
    }
    Some(r)
}

/// Markdown display names (`test::get_field_display_name` upstream) and CSV/JSON field names.
fn named_column(r: &mut BenchResult, name: &str, value: &str) {
    let s = || Some(value.to_string());
    match name {
        "model" | "model_type" => r.model = s(),
        "ngl" | "n_gpu_layers" => r.n_gpu_layers = value.parse().ok(),
        "n_ubatch" => r.n_ubatch = value.parse().ok(),
        "n_batch" => r.n_batch = value.parse().ok(),
        "type_k" => r.type_k = s(),
        "type_v" => r.type_v = s(),
        "fa" | "flash_attn" => r.flash_attn = s(),
        "ts" | "tensor_split" => r.tensor_split = s(),
        "ot" | "tensor_buft_overrides" => r.overrides = s(),
        _ => {}
    }
}

/// `pp512`, `tg128`, `pp512+tg128`, optionally ` @ d4096`.
fn test_fields(test: &str) -> Option<BenchResult> {
    let c = TEST.captures(test.trim())?;
    let num = |i: usize| {
        c.get(i)
            .and_then(|m| m.as_str().parse::<u32>().ok())
            .unwrap_or(0)
    };
    let (p, g, d) = (num(1), num(2), num(3));
    if p == 0 && g == 0 {
        return None;
    }
    Some(BenchResult {
        test: test.trim().to_string(),
        n_prompt: p,
        n_gen: g,
        n_depth: d,
        ..Default::default()
    })
}

fn get_f64(obj: &Map<String, Value>, key: &str) -> Option<f64> {
    match obj.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn get_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One JSON / JSONL / CSV record (field names of `test::get_fields`).
pub fn from_json_obj(obj: &Map<String, Value>) -> Option<BenchResult> {
    let avg_ts = get_f64(obj, "avg_ts")?;
    let n_prompt = get_f64(obj, "n_prompt").unwrap_or(0.0) as u32;
    let n_gen = get_f64(obj, "n_gen").unwrap_or(0.0) as u32;
    let n_depth = get_f64(obj, "n_depth").unwrap_or(0.0) as u32;
    let mut test = match (n_prompt, n_gen) {
        (p, 0) => format!("pp{p}"),
        (0, g) => format!("tg{g}"),
        (p, g) => format!("pp{p}+tg{g}"),
    };
    if n_depth > 0 {
        test.push_str(&format!(" @ d{n_depth}"));
    }
    let flash_attn = get_str(obj, "flash_attn").map(|v| match v.as_str() {
        "1" | "true" => "enabled".to_string(),
        "0" | "false" => "disabled".to_string(),
        "-1" => "auto".to_string(),
        _ => v,
    });
    Some(BenchResult {
        model: get_str(obj, "model_filename").or_else(|| get_str(obj, "model_type")),
        test,
        n_prompt,
        n_gen,
        n_depth,
        avg_ts,
        stddev_ts: get_f64(obj, "stddev_ts"),
        n_gpu_layers: get_f64(obj, "n_gpu_layers").map(|v| v as i64),
        n_ubatch: get_f64(obj, "n_ubatch").map(|v| v as u32),
        n_batch: get_f64(obj, "n_batch").map(|v| v as u32),
        type_k: get_str(obj, "type_k"),
        type_v: get_str(obj, "type_v"),
        flash_attn,
        tensor_split: get_str(obj, "tensor_split"),
        overrides: get_str(obj, "tensor_buft_overrides"),
    })
}

/// Prompt speed from the first pure prompt test, decode speed from the first pure generation test.
pub fn apply_speeds(run: &mut LogRun) {
    if run.prompt_tps.is_none() {
        if let Some(b) = run.bench.iter().find(|b| b.n_prompt > 0 && b.n_gen == 0) {
            run.prompt_tps = Some(b.avg_ts);
            run.prompt_tokens = Some(b.n_prompt);
        }
    }
    if run.gen_tps.is_none() {
        if let Some(b) = run.bench.iter().find(|b| b.n_gen > 0 && b.n_prompt == 0) {
            run.gen_tps = Some(b.avg_ts);
            run.gen_tokens = Some(b.n_gen);
        }
    }
}

fn run_from(source: &str, format: LogFormat, objs: &[Map<String, Value>]) -> Option<LogRun> {
    let bench: Vec<BenchResult> = objs.iter().filter_map(from_json_obj).collect();
    if bench.is_empty() {
        return None;
    }
    let first = &objs[0];
    let build = match (
        get_str(first, "build_number"),
        get_str(first, "build_commit"),
    ) {
        (Some(n), Some(c)) => Some(format!("b{n} ({c})")),
        _ => None,
    };
    let mut run = LogRun {
        source: source.to_string(),
        format,
        build,
        model_path: get_str(first, "model_filename"),
        n_batch: get_f64(first, "n_batch").map(|v| v as u32),
        n_ubatch: get_f64(first, "n_ubatch").map(|v| v as u32),
        type_k: get_str(first, "type_k"),
        type_v: get_str(first, "type_v"),
        bench,
        ..Default::default()
    };
    apply_speeds(&mut run);
    Some(run)
}

/// A whole file that is llama-bench CSV (`-o csv`) or JSON (`-o json`); `None` otherwise.
pub fn parse_structured(source: &str, content: &str) -> Option<LogRun> {
    let t = content.trim_start();
    if t.starts_with('[') {
        let v: Value = serde_json::from_str(t.trim_end()).ok()?;
        let objs: Vec<Map<String, Value>> = v
            .as_array()?
            .iter()
            .filter_map(|o| o.as_object().cloned())
            .collect();
        return run_from(source, LogFormat::BenchJson, &objs);
    }
    let first_line = t.lines().next().unwrap_or("");
    if first_line
        .trim_start_matches('"')
        .starts_with("build_commit")
    {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(t.as_bytes());
        let headers = rdr.headers().ok()?.clone();
        let mut objs = Vec::new();
        for rec in rdr.records().flatten() {
            let mut m = Map::new();
            for (h, v) in headers.iter().zip(rec.iter()) {
                m.insert(h.to_string(), Value::String(v.to_string()));
            }
            objs.push(m);
        }
        return run_from(source, LogFormat::BenchCsv, &objs);
    }
    None
}
