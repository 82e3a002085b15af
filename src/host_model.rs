//! One host's model, resolved once: the host file and the calibration turned into the values
//! every later stage uses — the speed rates (`speed::rates`, with the host's learned factors),
//! the memory constants (overhead per GPU, the CUDA context at load, the compute-buffer
//! coefficients: `memory::predict::Constants`) and the margins of both profiles and of `check` —
//! each with where it came from. `solve`, `check` and `trial` build it once
//! ([`HostModel::resolve`]) and hand it down; nothing below asks the calibration again.
//!
//! The calibration's own rules are documented in docs/calibration.md; the margins in
//! docs/memory-model.md ("Margins").

use crate::calibration::Calibration;
use crate::host::Host;
use crate::memory::predict::Constants;
use crate::speed::Rates;
use serde::{Deserialize, Serialize};

/// Memory kept free per device (MiB), on top of everything the memory model predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Margins {
    /// Per GPU, in host order, MiB.
    pub gpu_mib: Vec<f64>,
    /// Host RAM, MiB.
    pub ram_mib: f64,
}

/// A profile's margins and where they came from, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileMargins {
    pub margins: Margins,
    pub source: String,
}

/// The resolved model of one host under one calibration.
#[derive(Debug, Clone)]
pub struct HostModel {
    pub host: Host,
    /// Speed constants (`speed::rates`: the host's first-GPU model's fitted constants, else the
    /// `[speed]` priors, times the learned host factors).
    pub rates: Rates,
    /// Where the rates came from, in words.
    pub rates_source: String,
    /// Memory constants per GPU.
    pub memory: Constants,
    /// The aggressive profile's margins.
    pub aggressive: ProfileMargins,
    /// The moderate profile's margins.
    pub moderate: ProfileMargins,
    /// What `check` calls safe: the moderate margin per GPU (`Calibration::gpu_margins_mib`).
    pub check_margins_mib: Vec<f64>,
    /// The calibration's size and build, for reports.
    pub calibration_runs: usize,
    pub calibration_build: String,
}

impl HostModel {
    /// Resolve `host` under `cal` (the one place that reads the calibration for a host).
    pub fn resolve(host: &Host, cal: &Calibration) -> HostModel {
        HostModel {
            host: host.clone(),
            rates: crate::speed::rates(cal, host),
            rates_source: rates_source(cal, host),
            memory: Constants::resolve(host, cal),
            aggressive: profile_margins(true, host, cal),
            moderate: profile_margins(false, host, cal),
            check_margins_mib: cal.gpu_margins_mib(false, host),
            calibration_runs: cal.n_runs,
            calibration_build: cal.llama_build.clone(),
        }
    }

    /// The margins of the aggressive (`true`) or the moderate profile.
    pub fn margins(&self, aggressive: bool) -> &ProfileMargins {
        if aggressive {
            &self.aggressive
        } else {
            &self.moderate
        }
    }

    /// The model of the host as llama.cpp sees it with `--device` = `devs` (in that order): the
    /// per-GPU values of those GPUs, nothing resolved again. (The PCIe rate stays that of the
    /// host's first local GPU.)
    pub fn restrict(&self, devs: &[usize]) -> HostModel {
        fn pick<T: Clone + Default>(v: &[T], devs: &[usize]) -> Vec<T> {
            devs.iter()
                .map(|&i| v.get(i).cloned().unwrap_or_default())
                .collect()
        }
        let mut rates = self.rates.clone();
        for v in [
            &mut rates.gpu_s_per_byte,
            &mut rates.gpu_s_per_attn_flop,
            &mut rates.gpu_s_per_wide_attn_flop,
            &mut rates.gpu_s_per_wide_attn_layer,
            &mut rates.prefill_gpu_s_per_attn_flop,
            &mut rates.prefill_gpu_s_per_wide_attn_flop,
            &mut rates.prefill_gpu_s_per_matmul_flop,
            &mut rates.gpu_s_per_attn_head_cell,
            &mut rates.prefill_gpu_s_per_attn_head_cell,
        ] {
            *v = pick(v, devs);
        }
        let margins = |p: &ProfileMargins| ProfileMargins {
            margins: Margins {
                gpu_mib: pick(&p.margins.gpu_mib, devs),
                ram_mib: p.margins.ram_mib,
            },
            source: p.source.clone(),
        };
        HostModel {
            host: Host {
                gpus: devs.iter().map(|&i| self.host.gpus[i].clone()).collect(),
                ..self.host.clone()
            },
            rates,
            rates_source: self.rates_source.clone(),
            memory: Constants {
                overhead_mib: pick(&self.memory.overhead_mib, devs),
                load_context_mib: pick(&self.memory.load_context_mib, devs),
                compute: self.memory.compute.clone(),
                overhead_source: pick(&self.memory.overhead_source, devs),
            },
            aggressive: margins(&self.aggressive),
            moderate: margins(&self.moderate),
            check_margins_mib: pick(&self.check_margins_mib, devs),
            calibration_runs: self.calibration_runs,
            calibration_build: self.calibration_build.clone(),
        }
    }

    /// Every resolved value with its origin, one line each (for `--verbose` reports).
    pub fn provenance(&self) -> Vec<String> {
        let mut v = vec![self.rates_source.clone()];
        for (i, (o, src)) in self
            .memory
            .overhead_mib
            .iter()
            .zip(&self.memory.overhead_source)
            .enumerate()
        {
            v.push(format!(
                "{} overhead {o:.0} MiB: {src}",
                self.host.device_name(crate::host::DeviceId::Gpu(i))
            ));
        }
        v.push(format!("aggressive margins: {}", self.aggressive.source));
        v.push(format!("moderate margins: {}", self.moderate.source));
        v
    }
}

/// Where the speed constants of `host` come from, in words (printed with the prediction).
pub fn rates_source(cal: &Calibration, host: &Host) -> String {
    let first = host.gpus.first().map(|g| g.model.as_str()).unwrap_or("");
    let fitted = match cal
        .gpus
        .iter()
        .find(|g| g.model == first)
        .and_then(|g| g.host_speed.as_ref())
    {
        Some(h) => format!(
            "speed constants fitted on {first} hosts ({} runs; terms they could not fit: [speed] priors)",
            h.n_runs
        ),
        None => format!("speed constants: [speed] priors (no runs on a {first} host yet)"),
    };
    match cal.host_factors(first) {
        Some(f) => format!(
            "{fitted}; host factors learned from {} decode / {} prefill runs",
            f.n_decode_runs, f.n_prefill_runs
        ),
        None => fitted,
    }
}

/// Margins of a profile on `host`: the calibrated profile margin on every GPU plus that GPU's
/// OOM margin; the same profile margin on host RAM.
pub fn profile_margins(aggressive: bool, host: &Host, cal: &Calibration) -> ProfileMargins {
    let (base, name) = if aggressive {
        (cal.margins.aggressive_mib, "aggressive")
    } else {
        (cal.margins.moderate_mib, "moderate")
    };
    // Calibration::gpu_margins_mib adds what OOMs taught about the GPU model and that very device.
    let mut gpu_mib: Vec<f64> = cal.gpu_margins_mib(aggressive, host);
    // Testbed runs record their host by label ("gpu:24000", "emul:24000,12800": the usable MiB
    // per GPU, testbed/MANIFEST.md), the host files by name; an OOM margin learned under either
    // applies to this host.
    let labels = host_labels(host);
    for (i, m) in gpu_mib.iter_mut().enumerate() {
        let dev = format!("CUDA{i}");
        let by_label = labels
            .iter()
            .map(|l| cal.device_extra_mib(l, &dev))
            .fold(0.0, f64::max);
        *m += (by_label - cal.device_extra_mib(&host.name, &dev)).max(0.0);
    }
    let mut learned: Vec<String> = Vec::new();
    for (i, g) in host.gpus.iter().enumerate() {
        let dev = format!("CUDA{i}");
        let model_mib = cal.gpu(&g.model).oom_margin_mib;
        if model_mib > 0.0 {
            learned.push(format!(
                "{dev} +{model_mib:.0} MiB learned from OOMs on {} GPUs (gpus.oom_margin_mib)",
                g.model
            ));
        }
        // The device's margin is its largest learned entry (Calibration::device_extra_mib).
        let largest = cal
            .device_margins
            .iter()
            .filter(|m| labels.contains(&m.host) && m.device == dev && m.extra_mib > 0.0)
            .max_by(|a, b| a.extra_mib.total_cmp(&b.extra_mib));
        if let Some(dm) = largest {
            let from = if dm.from.is_empty() {
                "an OOM log".to_string()
            } else {
                format!("the OOM in run {}", dm.from)
            };
            learned.push(format!(
                "{dev} +{:.0} MiB learned from {from} (device_margins, host {})",
                dm.extra_mib, dm.host
            ));
        }
    }
    let mut source = format!(
        "{base:.0} MiB per device = calibration margins.{name}_mib (data/calibration.toml, {} runs, llama.cpp {})",
        cal.n_runs, cal.llama_build
    );
    if !learned.is_empty() {
        source.push_str(&format!("; {}", learned.join(", ")));
    }
    ProfileMargins {
        margins: Margins {
            gpu_mib,
            ram_mib: base,
        },
        source,
    }
}

/// The names an OOM margin may have recorded this host under: its name, and the testbed's labels
/// `gpu:<usable MiB per GPU>` / `emul:<…>`.
fn host_labels(host: &Host) -> Vec<String> {
    let usable = host
        .gpus
        .iter()
        .map(|g| g.usable_mib.to_string())
        .collect::<Vec<_>>()
        .join(",");
    vec![
        host.name.clone(),
        format!("gpu:{usable}"),
        format!("emul:{usable}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OOM margin recorded under the testbed's label (`gpu:24000`) applies to a host file with
    /// another name but the same usable memory, is added to that device's budget and is printed
    /// with the run it came from; a host with other usable memory does not get it.
    #[test]
    fn oom_margin_by_testbed_label() {
        let mut cal = Calibration::shipped();
        cal.device_margins = vec![crate::calibration::DeviceMargin {
            host: "gpu:24000".into(),
            device: "CUDA0".into(),
            extra_mib: 200.0,
            from: "some-run--hand".into(),
        }];
        let mut host = crate::host::Host::by_name_or_path("single-24gb").unwrap();
        host.name = "my-box".into();
        host.gpus.truncate(1);
        host.gpus[0].usable_mib = 24000;
        let m = profile_margins(true, &host, &cal);
        let base = cal.margins.aggressive_mib + cal.gpu(&host.gpus[0].model).oom_margin_mib;
        assert_eq!(m.margins.gpu_mib[0], base + 200.0);
        assert!(
            m.source
                .contains("+200 MiB learned from the OOM in run some-run--hand"),
            "{}",
            m.source
        );
        host.gpus[0].usable_mib = 23000;
        let m = profile_margins(true, &host, &cal);
        assert_eq!(m.margins.gpu_mib[0], base);
        assert!(!m.source.contains("some-run"), "{}", m.source);
    }

    /// Resolved once, the model holds what the stages used to look up on their own.
    #[test]
    fn resolve_matches_the_lookups_it_replaces() {
        let cal = Calibration::shipped();
        let host = crate::host::Host::by_name_or_path("single-24gb").unwrap();
        let hm = HostModel::resolve(&host, &cal);
        assert_eq!(hm.rates, crate::speed::rates(&cal, &host));
        assert_eq!(
            hm.memory.overhead_mib,
            host.gpus
                .iter()
                .map(|g| crate::memory::predict::device_overhead_mib(&cal, g))
                .collect::<Vec<_>>()
        );
        assert_eq!(hm.check_margins_mib, cal.gpu_margins_mib(false, &host));
        assert_eq!(hm.provenance().len(), 3 + host.gpus.len());
    }
}
