//! Placement → the launch that realises it: `-ngl`, `-ts` and compact `-ot` regexes, checked
//! against llama.cpp's own placement rules. The one place a launch is built from a placement: the
//! solver verifies this launch, and emit only renders it as text.
//!
//! How llama.cpp reads it (reference tree, llama-cpp-python 0.3.36 sdist):
//! - `-ngl N -ts c0,c1,…` (`src/llama-model.cpp:llama_model_base::load_tensors`): the last `N` of
//!   the `n_layer + 1` layer slots (the output layer is the last slot) go to the GPUs; slot `i` of
//!   those goes to the first device whose normalised cumulative split exceeds `i / N`. With integer
//!   counts `c_d` (what `--fit` writes, `common/fit.cpp:set_ngl_tensor_split_tbo`) device `d` gets
//!   exactly `c_d` consecutive slots. CPU layers are the first ones.
//! - `-ot pattern=BUFT,…` (`common/arg.cpp:parse_tensor_buffer_overrides`): split on every `,` and
//!   the first `=`, so a pattern holds neither (no `{m,n}`). `src/llama-model-loader.cpp:
//!   create_tensor` tries the overrides in order with `std::regex_search` (substring match);
//!   the first match wins.
//! - Token embeddings stay on the CPU (`dev_input`), whatever `-ngl` says.
//!
//! The patterns emitted here are disjoint (no tensor matches two), so their order cannot change
//! the result; [`resolve`] re-applies llama.cpp's rules and [`to_launch`] refuses to return flags that
//! do not reproduce the placement exactly (it falls back to one exact pattern per tensor).

use super::Placement;
use crate::anatomy::{Anatomy, LayerRef};
use crate::host::DeviceId;
use crate::launch::{GpuLayers, LaunchConfig, Override};
use std::collections::{BTreeMap, BTreeSet};

/// The launch that realises `placement`: `base` (the request's settings: model, context, batch
/// sizes, KV types, tool…) with `-ngl`, `-ts` and the `-ot` overrides of the placement.
/// `host_gpus`: GPUs on the host (with one GPU and no layer elsewhere, `-ts` is left out).
pub fn to_launch(
    anatomy: &Anatomy,
    placement: &Placement,
    base: &LaunchConfig,
    host_gpus: usize,
) -> LaunchConfig {
    let counts = placement.gpu_layer_counts(0);
    let ngl: u32 = counts.iter().sum();
    let uses_other_gpu = counts.iter().skip(1).any(|&c| c > 0);
    let tensor_split = (ngl > 0 && (uses_other_gpu || host_gpus != 1))
        .then(|| counts.iter().map(|&c| c as f64).collect());
    LaunchConfig {
        gpu_layers: GpuLayers::Count(ngl),
        tensor_split,
        overrides: overrides(anatomy, placement),
        fit: false,
        ..base.clone()
    }
}

/// Compact `-ot` overrides moving every group of `placement.moved` to its device.
///
/// Groups moved to the same device are merged: per layer, the set of tensor-name stems moved
/// (`ffn_gate_exps`, …) is collected; layers with the same stem set and device share one pattern
/// `blk\.(<layer ranges>)\.(<stems>)\.`. A pattern that would match every layer holding those
/// stems drops the layer part. If the compact form does not reproduce the placement (a stem shared
/// by tensors that go to different devices), exact per-tensor patterns are used instead.
pub fn overrides(anatomy: &Anatomy, placement: &Placement) -> Vec<Override> {
    let compact = compact_overrides(anatomy, placement);
    let want = placement.tensor_devices(anatomy);
    if resolve_with(anatomy, &placement.layer_device, &compact)
        .ok()
        .as_ref()
        == Some(&want)
    {
        return compact;
    }
    exact_overrides(anatomy, placement)
}

/// Tensor name → (block index, stem), e.g. `blk.12.ffn_up_exps.weight` → (Some(12), "ffn_up_exps");
/// `output.weight` → (None, "output").
fn split_name(name: &str) -> (Option<u32>, &str) {
    if let Some(rest) = name.strip_prefix("blk.") {
        if let Some((num, tail)) = rest.split_once('.') {
            if let Ok(il) = num.parse::<u32>() {
                return (Some(il), tail.split('.').next().unwrap_or(tail));
            }
        }
    }
    (None, name.split('.').next().unwrap_or(name))
}

fn compact_overrides(anatomy: &Anatomy, placement: &Placement) -> Vec<Override> {
    // (device, block?) → stems moved there.
    let mut per_layer: BTreeMap<(DeviceId, Option<u32>), BTreeSet<String>> = BTreeMap::new();
    for &(g, d) in &placement.moved {
        for &t in &anatomy.groups[g].tensors {
            let (il, stem) = split_name(&anatomy.tensors[t].name);
            per_layer
                .entry((d, il))
                .or_default()
                .insert(stem.to_string());
        }
    }
    // (device, stems) → layers; globals (no block) become their own anchored patterns.
    let mut by_stems: BTreeMap<(DeviceId, Vec<String>), Vec<u32>> = BTreeMap::new();
    let mut globals: BTreeMap<DeviceId, BTreeSet<String>> = BTreeMap::new();
    for ((d, il), stems) in per_layer {
        match il {
            Some(il) => by_stems
                .entry((d, stems.into_iter().collect()))
                .or_default()
                .push(il),
            None => globals.entry(d).or_default().extend(stems),
        }
    }
    let mut out = Vec::new();
    for ((d, stems), layers) in by_stems {
        let universe: BTreeSet<u32> = anatomy
            .tensors
            .iter()
            .filter_map(|t| match split_name(&t.name) {
                (Some(il), s) if stems.iter().any(|x| x == s) => Some(il),
                _ => None,
            })
            .collect();
        let stem_re = alternation(&stems);
        let pattern = if layers.iter().copied().collect::<BTreeSet<_>>() == universe {
            format!(r"\.{stem_re}\.")
        } else {
            format!(
                r"blk\.{}\.{stem_re}\.",
                group_if_alt(&layer_set_regex(&layers))
            )
        };
        out.push(Override {
            pattern,
            buft: d.buft_name(),
        });
    }
    for (d, stems) in globals {
        let stems: Vec<String> = stems.into_iter().collect();
        out.push(Override {
            pattern: format!(r"^{}\.", group_if_alt(&alternation(&stems))),
            buft: d.buft_name(),
        });
    }
    out
}

fn exact_overrides(anatomy: &Anatomy, placement: &Placement) -> Vec<Override> {
    let mut out = Vec::new();
    for &(g, d) in &placement.moved {
        for &t in &anatomy.groups[g].tensors {
            out.push(Override {
                pattern: format!("^{}$", escape(&anatomy.tensors[t].name)),
                buft: d.buft_name(),
            });
        }
    }
    out
}

/// Escape regex metacharacters (tensor names are `[A-Za-z0-9_.]`, but be safe).
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !(c.is_ascii_alphanumeric() || c == '_') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn group_if_alt(s: &str) -> String {
    if s.contains('|') {
        format!("({s})")
    } else {
        s.to_string()
    }
}

/// `a|b|c` over stems, factoring a common prefix/suffix: `ffn_(down|gate|up)_exps`.
fn alternation(stems: &[String]) -> String {
    if stems.len() == 1 {
        return escape(&stems[0]);
    }
    let first = stems[0].as_bytes();
    let mut pre = first.len();
    let mut suf = first.len();
    for s in &stems[1..] {
        let b = s.as_bytes();
        pre = pre.min(first.iter().zip(b).take_while(|(x, y)| x == y).count());
        suf = suf.min(
            first
                .iter()
                .rev()
                .zip(b.iter().rev())
                .take_while(|(x, y)| x == y)
                .count(),
        );
    }
    let min_len = stems.iter().map(|s| s.len()).min().unwrap_or(0);
    // Keep every middle part non-empty and cut at '_' boundaries so the result stays readable.
    while pre > 0 && (pre + suf >= min_len || first[pre - 1] != b'_') {
        pre -= 1;
    }
    while suf > 0 && (pre + suf >= min_len || first[first.len() - suf] != b'_') {
        suf -= 1;
    }
    let mids: Vec<String> = stems
        .iter()
        .map(|s| escape(&s[pre..s.len() - suf]))
        .collect();
    format!(
        "{}({}){}",
        escape(&stems[0][..pre]),
        mids.join("|"),
        escape(&stems[0][first.len() - suf..])
    )
}

/// A regex matching exactly the decimal numbers in `layers` (no leading zeros, no `{m,n}`):
/// `[16..=49]` → `1[6-9]|[2-4][0-9]`. Runs of consecutive numbers become digit ranges.
pub fn layer_set_regex(layers: &[u32]) -> String {
    let mut v: Vec<u32> = layers.to_vec();
    v.sort_unstable();
    v.dedup();
    consecutive_runs(&v)
        .into_iter()
        .flat_map(|(a, b)| range_regex(a, b))
        .collect::<Vec<_>>()
        .join("|")
}

/// Maximal runs of consecutive numbers in a sorted, deduplicated list: `[1,2,3,7]` → `[(1,3),(7,7)]`.
pub fn consecutive_runs(v: &[u32]) -> Vec<(u32, u32)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        runs.push((v[i], v[j]));
        i = j + 1;
    }
    runs
}

/// Patterns for the integers in [a, b].
fn range_regex(a: u32, b: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut lo = a;
    // Split at powers of ten so that each piece has one digit count.
    while lo <= b {
        let digits = lo.to_string().len() as u32;
        let top = 10u64.pow(digits) - 1;
        let hi = (b as u64).min(top) as u32;
        same_len(&lo.to_string(), &hi.to_string(), &mut out);
        if hi == u32::MAX {
            break;
        }
        lo = hi + 1;
    }
    out
}

fn digit_class(lo: u8, hi: u8) -> String {
    match hi - lo {
        0 => (lo as char).to_string(),
        1 => format!("[{}{}]", lo as char, hi as char),
        _ => format!("[{}-{}]", lo as char, hi as char),
    }
}

/// Patterns for [lo, hi], both with the same number of digits.
fn same_len(lo: &str, hi: &str, out: &mut Vec<String>) {
    let (l, h) = (lo.as_bytes(), hi.as_bytes());
    let p = l.iter().zip(h).take_while(|(x, y)| x == y).count();
    if p == l.len() {
        out.push(lo.to_string());
        return;
    }
    let prefix = &lo[..p];
    let rest = l.len() - p - 1;
    let any = "[0-9]".repeat(rest);
    let (dl, dh) = (l[p], h[p]);
    let low_full = l[p + 1..].iter().all(|&c| c == b'0');
    let high_full = h[p + 1..].iter().all(|&c| c == b'9');
    if low_full && high_full {
        out.push(format!("{prefix}{}{any}", digit_class(dl, dh)));
        return;
    }
    let mut mid_lo = dl;
    let mut mid_hi = dh;
    if !low_full {
        // dl followed by [rest of lo .. 99..9]
        let nines = "9".repeat(rest);
        let mut sub = Vec::new();
        same_len(&lo[p + 1..], &nines, &mut sub);
        for s in sub {
            out.push(format!("{prefix}{}{s}", dl as char));
        }
        mid_lo = dl + 1;
    }
    let upper_partial = !high_full;
    if upper_partial {
        mid_hi = dh - 1;
    }
    if mid_lo <= mid_hi {
        out.push(format!("{prefix}{}{any}", digit_class(mid_lo, mid_hi)));
    }
    if upper_partial {
        let zeros = "0".repeat(rest);
        let mut sub = Vec::new();
        same_len(&zeros, &hi[p + 1..], &mut sub);
        for s in sub {
            out.push(format!("{prefix}{}{s}", dh as char));
        }
    }
}

/// llama.cpp's placement rules applied to a launch: device of every tensor (order of
/// `Anatomy::tensors`). `layer_device` from `-ngl`/`-ts` ([`layer_devices`]), then the first
/// matching override (regex search). Errors on an invalid pattern or unknown buffer type.
pub fn resolve(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    n_gpus: usize,
) -> anyhow::Result<Vec<DeviceId>> {
    let layer_device = layer_devices(anatomy.n_layer(), cfg, n_gpus);
    resolve_with(anatomy, &layer_device, &cfg.overrides)
}

fn resolve_with(
    anatomy: &Anatomy,
    layer_device: &[DeviceId],
    ovr: &[Override],
) -> anyhow::Result<Vec<DeviceId>> {
    let compiled: Vec<(regex::Regex, DeviceId)> = ovr
        .iter()
        .map(|o| Ok((regex::Regex::new(&o.pattern)?, parse_buft(&o.buft)?)))
        .collect::<anyhow::Result<_>>()?;
    let n = layer_device.len();
    Ok(anatomy
        .tensors
        .iter()
        .map(|t| {
            if let Some((_, d)) = compiled.iter().find(|(re, _)| re.is_match(&t.name)) {
                return *d;
            }
            match t.layer {
                LayerRef::Input => DeviceId::Cpu,
                LayerRef::Block(il) => layer_device
                    .get(il as usize)
                    .copied()
                    .unwrap_or(DeviceId::Cpu),
                LayerRef::Output => layer_device[n - 1],
            }
        })
        .collect())
}

fn parse_buft(s: &str) -> anyhow::Result<DeviceId> {
    if s == "CPU" {
        return Ok(DeviceId::Cpu);
    }
    s.strip_prefix("CUDA")
        .and_then(|i| i.parse().ok())
        .map(DeviceId::Gpu)
        .ok_or_else(|| anyhow::anyhow!("unknown buffer type {s} (expected CPU, CUDA0, CUDA1, …)"))
}

/// Device of each layer slot (n_layer repeating layers + the output layer) under `-ngl`/`-ts`,
/// with llama.cpp's float arithmetic (`llama_model_base::load_tensors`). Without `-ts` the split
/// follows free memory, which only the host knows: here it is taken as equal shares.
pub fn layer_devices(n_layer: u32, cfg: &LaunchConfig, n_gpus: usize) -> Vec<DeviceId> {
    let n_all = n_layer as i64;
    let ngl = match cfg.gpu_layers {
        GpuLayers::Count(n) => n as i64,
        GpuLayers::All | GpuLayers::Auto => n_all + 1,
    };
    let n_dev = n_gpus.max(cfg.tensor_split.as_ref().map_or(0, |v| v.len()));
    let mut splits: Vec<f32> = (0..n_dev)
        .map(|i| {
            cfg.tensor_split
                .as_ref()
                .map_or(1.0, |v| v.get(i).copied().unwrap_or(0.0) as f32)
        })
        .collect();
    if splits.iter().all(|&x| x == 0.0) {
        splits.iter_mut().for_each(|x| *x = 1.0);
    }
    let mut sum = 0.0f32;
    for s in splits.iter_mut() {
        sum += *s;
        *s = sum;
    }
    for s in splits.iter_mut() {
        *s /= sum;
    }
    let i_gpu_start = (n_all + 1 - ngl).max(0);
    let act = if n_dev == 0 { 0 } else { ngl.min(n_all + 1) };
    (0..=n_all)
        .map(|il| {
            if il < i_gpu_start || il - i_gpu_start >= act {
                return DeviceId::Cpu;
            }
            let x = (il - i_gpu_start) as f32 / act as f32;
            let k = splits.partition_point(|&c| c <= x);
            DeviceId::Gpu(k.min(n_dev - 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(re: &str, n: u32) -> bool {
        regex::Regex::new(&format!("^({re})$"))
            .unwrap()
            .is_match(&n.to_string())
    }

    #[test]
    fn layer_ranges_match_exactly_their_numbers() {
        let cases: Vec<Vec<u32>> = vec![
            (16..=49).collect(),
            vec![0, 1, 2, 5, 9, 10, 11, 99, 100, 101, 250],
            (0..=93).collect(),
            vec![7],
            (3..=47).step_by(4).collect(),
            (95..=205).collect(),
        ];
        for set in cases {
            let re = layer_set_regex(&set);
            assert!(!re.contains(','), "{re}");
            for n in 0..1200 {
                assert_eq!(matches(&re, n), set.contains(&n), "{re} on {n}");
            }
        }
        assert_eq!(
            layer_set_regex(&(16..=49).collect::<Vec<_>>()),
            "1[6-9]|[2-4][0-9]"
        );
        assert_eq!(
            layer_set_regex(&(0..=14).collect::<Vec<_>>()),
            "[0-9]|1[0-4]"
        );
    }

    #[test]
    fn stems_are_factored() {
        let s: Vec<String> = ["ffn_down_exps", "ffn_gate_exps", "ffn_up_exps"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(alternation(&s), "ffn_(down|gate|up)_exps");
        let s: Vec<String> = ["output", "output_norm"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(alternation(&s), "(output|output_norm)");
    }

    #[test]
    fn integer_split_reproduces_counts() {
        for n_layer in [1u32, 36, 47, 48, 94, 127] {
            for c0 in 0..=n_layer + 1 {
                let c1 = (n_layer + 1 - c0) / 2;
                let cfg = LaunchConfig {
                    gpu_layers: GpuLayers::Count(c0 + c1),
                    tensor_split: Some(vec![c0 as f64, c1 as f64]),
                    ..LaunchConfig::default()
                };
                let devs = layer_devices(n_layer, &cfg, 2);
                let n0 = devs.iter().filter(|d| **d == DeviceId::Gpu(0)).count() as u32;
                let n1 = devs.iter().filter(|d| **d == DeviceId::Gpu(1)).count() as u32;
                assert_eq!((n0, n1), (c0, c1));
            }
        }
    }
}
