//! `placer host detect`: describe this machine's GPUs (through NVML) and RAM as a host file
//! (the format of `crate::host::Host`, as in hardware/*.toml).
//!
//! - GPUs: name, total and free memory (NVML `nvmlDeviceGetMemoryInfo`), memory bus width and
//!   maximum memory clock (→ a bandwidth estimate), PCIe generation and width (→ link GB/s).
//! - RAM: MemTotal / MemAvailable from /proc/meminfo; bandwidth measured by a short parallel
//!   read of a 1 GiB buffer (`--no-measure-ram` skips it).
//! - `--emulate 24000,12800`: describe a smaller host on big GPUs, the way the testbed runs it
//!   (ballast so that llama.cpp sees exactly those MiB free; with more entries than physical GPUs,
//!   llama.cpp's `GGML_CUDA_DEVICES` virtual devices, mapped round-robin onto the physical ones:
//!   ggml/src/ggml-cuda/ggml-cuda.cu:ggml_cuda_init).
//!
//! Without an NVIDIA driver this fails with a message that says so; nothing else in placer
//! needs NVML (every other command works from host files).

use crate::host::{Gpu, Host, Ram};
use crate::units::MIB;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: HostCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum HostCmd {
    /// Read this machine's GPUs (NVML) and RAM; print or write a host file.
    Detect(DetectArgs),
}

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// Write the host file here (default: print it).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Name recorded in the file.
    #[arg(long)]
    pub name: Option<String>,
    /// Usable MiB per emulated GPU, e.g. `24000,12800`: the host llama.cpp will see when the
    /// testbed's ballast holds the rest (more entries than GPUs: virtual devices, GGML_CUDA_DEVICES).
    #[arg(long, value_delimiter = ',')]
    pub emulate: Option<Vec<u64>>,
    /// Do not measure RAM bandwidth (the file then leaves `bandwidth_gbs` under [ram] as a
    /// commented line to fill in by hand; placer refuses the file until it is).
    #[arg(long)]
    pub no_measure_ram: bool,
    /// Running llama.cpp `rpc-server`s to include, `host:port,…` as llama.cpp's `--rpc` takes
    /// them: their devices (free memory, alignment, allocation rule) and the measured link come
    /// first in the file, in llama.cpp's order (RPC0, RPC1…). Without an NVIDIA driver the local
    /// machine then has no GPU (a CPU client).
    #[arg(long, value_delimiter = ',')]
    pub rpc: Vec<String>,
}

/// Seconds one RPC probe may wait for a connection or a response.
const RPC_TIMEOUT_S: u64 = 10;

/// The devices of the rpc-servers, in llama.cpp's order, as host-file GPUs. The remote memory
/// bandwidth cannot be asked over RPC: it is left unmeasured (a commented line to fill in).
fn rpc_gpus(endpoints: &[String]) -> Result<Vec<Gpu>> {
    let mut out = Vec::new();
    for e in endpoints {
        let r = crate::rpc::probe(e, std::time::Duration::from_secs(RPC_TIMEOUT_S))?;
        let link = r.link_gbs.unwrap_or(0.0);
        for d in &r.devices {
            let kind = if d.row_padding {
                "CUDA/HIP rule"
            } else {
                "no row padding"
            };
            let probe = crate::host::RpcDevice {
                endpoint: r.endpoint.clone(),
                device: d.index,
                alignment: d.alignment,
                row_padding: d.row_padding,
                compute: None,
                link_gbs: (link * 1000.0).round() / 1000.0,
                latency_us: r.latency_us.round().max(1.0),
            };
            // The protocol does not name the backend; the alignment rule does (host.rs
            // `RpcDevice::computes_on_cpu`), and the file says it so a Mac can correct it.
            let (compute, compute_note) = if probe.computes_on_cpu() {
                (
                    crate::host::RpcCompute::Cpu,
                    "compute = cpu: alignment 32 without row padding is the CPU backend's (a Mac's Metal reports the same: set compute = \"gpu\" there)",
                )
            } else {
                (
                    crate::host::RpcCompute::Gpu,
                    "compute = gpu: a GPU backend's alignment",
                )
            };
            out.push(Gpu {
                model: format!("RPC device {} of {}", d.index, r.endpoint),
                total_mib: d.total / MIB,
                usable_mib: d.free / MIB,
                bandwidth_gbs: 0.0,
                // The host↔device link of an RPC device is the network.
                pcie_gbs: (link * 1000.0).round() / 1000.0,
                source: format!(
                    "rpc-server {} (protocol {}.{}.{}): {} MiB free of {} MiB, alignment {} ({kind}); \
                     link: median round trip {:.0} us, {:.2} GB/s server to client (4 MiB reads); \
                     {compute_note}; bandwidth_gbs: that machine's memory bandwidth, by hand",
                    r.endpoint,
                    r.version.0,
                    r.version.1,
                    r.version.2,
                    d.free / MIB,
                    d.total / MIB,
                    d.alignment,
                    r.latency_us,
                    link
                ),
                reported_free_mib: None,
                rpc: Some(crate::host::RpcDevice {
                    compute: Some(compute),
                    ..probe
                }),
            });
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<()> {
    match args.cmd {
        HostCmd::Detect(a) => detect_cmd(a),
    }
}

fn detect_cmd(a: DetectArgs) -> Result<()> {
    let remote = rpc_gpus(&a.rpc)?;
    let gpus = match detect_gpus() {
        Ok(g) => g,
        Err(e) if !remote.is_empty() => {
            eprintln!("note: no local GPU ({e:#}); the host is a CPU client of its RPC devices");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .context("cannot read /proc/meminfo (host RAM); placer host detect runs on Linux")?;
    let (total_mib, avail_mib) =
        parse_meminfo(&meminfo).context("/proc/meminfo has no MemTotal/MemAvailable lines")?;
    let (bw, bw_source) = if a.no_measure_ram {
        (
            0.0,
            "not measured (--no-measure-ram): set bandwidth_gbs by hand".to_string(),
        )
    } else {
        let gbs = measure_ram_read_gbs();
        (
            gbs,
            format!(
                "parallel read of a 1 GiB buffer, best of 3 ({} threads)",
                rayon::current_num_threads()
            ),
        )
    };
    let ram = Ram {
        total_mib,
        usable_mib: avail_mib,
        bandwidth_gbs: round1(bw),
        source: format!("/proc/meminfo (MemTotal, MemAvailable); bandwidth: {bw_source}"),
    };
    let (gpus, description) = match &a.emulate {
        None => {
            let d = describe(&gpus);
            (gpus, d)
        }
        Some(targets) => {
            let emulated = emulate(&gpus, targets)?;
            let d = format!("emulated {} on {}", mib_list(targets), describe(&gpus));
            (emulated, d)
        }
    };
    let name = a.name.clone().unwrap_or_else(|| {
        let local = default_name(&gpus, a.emulate.is_some());
        match (gpus.is_empty(), remote.len()) {
            (_, 0) => local,
            (true, n) => format!("cpu-client-{n}rpc"),
            (false, n) => format!("{local}-{n}rpc"),
        }
    });
    let description = if remote.is_empty() {
        description
    } else {
        let local = if gpus.is_empty() {
            "a CPU client".to_string()
        } else {
            description
        };
        format!(
            "{} RPC device(s) on {} + {local}",
            remote.len(),
            a.rpc.join(", ")
        )
    };
    let host = Host {
        name,
        description,
        gpus: remote.into_iter().chain(gpus).collect(),
        ram,
    };
    let text = format!(
        "# Written by `placer host detect` (NVML + /proc/meminfo).\n\
         # GPU order is NVML's (PCI bus id); llama.cpp's CUDA0, CUDA1… follow CUDA_DEVICE_ORDER\n\
         # (default FASTEST_FIRST): set CUDA_DEVICE_ORDER=PCI_BUS_ID when the GPUs differ.\n{}",
        unmeasured_as_comments(&host.to_toml())
    );
    match &a.output {
        Some(p) => {
            crate::fsio::replace(p, text.as_bytes())?;
            eprintln!("wrote {} ({} GPU(s))", p.display(), host.gpus.len());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// A bandwidth placer could not measure (`--no-measure-ram`, or NVML without clocks) is written
/// as a commented line to fill in, never as `0.0`: 0 GB/s would make that device's reads free,
/// and the host reader (`Host::validate`) refuses it, saying what to write.
pub fn unmeasured_as_comments(toml_text: &str) -> String {
    toml_text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let zero = ["bandwidth_gbs = 0.0", "pcie_gbs = 0.0"].contains(&t);
            if zero {
                let key = t.split(' ').next().unwrap_or(t);
                format!("# {key} = ?   # not measured: fill in (GB/s), placer refuses the file until then")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// One physical GPU as NVML reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhysicalGpu {
    pub name: String,
    pub total_mib: u64,
    pub free_mib: u64,
    pub bus_width_bits: Option<u32>,
    pub max_mem_clock_mhz: Option<u32>,
    pub pcie_gen: Option<u32>,
    pub pcie_width: Option<u32>,
}

/// Every GPU NVML sees, in NVML (PCI bus) order.
pub fn detect_physical() -> Result<Vec<PhysicalGpu>> {
    use nvml_wrapper::enum_wrappers::device::Clock;
    let nvml = nvml_wrapper::Nvml::init().map_err(|e| {
        anyhow::anyhow!(
            "no NVIDIA driver found (NVML could not be loaded: {e}). `placer host detect` needs the \
             NVIDIA driver (libnvidia-ml.so). Everything else in placer works from host files: pass \
             --host with a shipped host (users-4090-5070ti, single-24gb, …) or a TOML file written \
             like those in hardware/."
        )
    })?;
    let n = nvml.device_count().context("NVML: cannot count GPUs")?;
    if n == 0 {
        bail!(
            "NVML found no NVIDIA GPU on this machine; write a host file by hand (see hardware/)"
        );
    }
    let mut out = Vec::new();
    for i in 0..n {
        let d = nvml
            .device_by_index(i)
            .with_context(|| format!("NVML: cannot open GPU {i}"))?;
        let mem = d
            .memory_info()
            .with_context(|| format!("NVML: no memory info for GPU {i}"))?;
        out.push(PhysicalGpu {
            name: d.name().unwrap_or_else(|_| format!("GPU {i}")),
            total_mib: mem.total / MIB,
            free_mib: mem.free / MIB,
            bus_width_bits: d.memory_bus_width().ok(),
            max_mem_clock_mhz: d.max_clock_info(Clock::Memory).ok(),
            pcie_gen: d.max_pcie_link_gen().ok(),
            pcie_width: d.max_pcie_link_width().ok(),
        });
    }
    Ok(out)
}

fn detect_gpus() -> Result<Vec<Gpu>> {
    Ok(detect_physical()?.iter().map(to_gpu).collect())
}

/// A host-file GPU from NVML's numbers.
pub fn to_gpu(p: &PhysicalGpu) -> Gpu {
    let bw = match (p.bus_width_bits, p.max_mem_clock_mhz) {
        (Some(b), Some(c)) => bandwidth_gbs(b, c),
        _ => 0.0,
    };
    let pcie = match (p.pcie_gen, p.pcie_width) {
        (Some(g), Some(w)) => pcie_gbs(g, w),
        _ => 0.0,
    };
    Gpu {
        model: p.name.clone(),
        total_mib: p.total_mib,
        usable_mib: p.free_mib,
        bandwidth_gbs: round1(bw),
        pcie_gbs: round1(pcie),
        source: format!(
            "NVML: free {} of {} MiB; memory bus {} bit at {} MHz max; PCIe gen {} x{} (max link)",
            p.free_mib,
            p.total_mib,
            opt(p.bus_width_bits),
            opt(p.max_mem_clock_mhz),
            opt(p.pcie_gen),
            opt(p.pcie_width)
        ),
        reported_free_mib: None,
        rpc: None,
    }
}

/// Peak memory bandwidth in GB/s from NVML's bus width and maximum memory clock.
/// NVML reports the memory clock at half the data rate for both GDDR and HBM, so bytes per
/// second = bus bytes × clock × 2. Checked against datasheets: H100 SXM 5120 bit × 2619 MHz →
/// 3352 GB/s (3.35 TB/s); RTX 4090 384 bit × 10501 MHz → 1008 GB/s.
pub fn bandwidth_gbs(bus_width_bits: u32, mem_clock_mhz: u32) -> f64 {
    (bus_width_bits as f64 / 8.0) * (mem_clock_mhz as f64 * 1e6) * 2.0 / 1e9
}

/// PCIe bandwidth per direction in GB/s: transfer rate per lane × lanes × line-code efficiency / 8.
/// Gen 1–2: 2.5 / 5 GT/s with 8b/10b; gen 3–5: 8 / 16 / 32 GT/s with 128b/130b; gen 6: 64 GT/s
/// (FLIT mode, ~242/256). Example: gen 4 x16 → 31.5 GB/s.
pub fn pcie_gbs(gen: u32, width: u32) -> f64 {
    let (gts, eff) = match gen {
        1 => (2.5, 0.8),
        2 => (5.0, 0.8),
        3 => (8.0, 128.0 / 130.0),
        4 => (16.0, 128.0 / 130.0),
        5 => (32.0, 128.0 / 130.0),
        6 => (64.0, 242.0 / 256.0),
        _ => return 0.0,
    };
    gts * width as f64 * eff / 8.0
}

/// (MemTotal, MemAvailable) in MiB from /proc/meminfo text (values are in kB).
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some((field("MemTotal")? / 1024, field("MemAvailable")? / 1024))
}

/// The GPUs llama.cpp sees when the testbed emulates `targets` MiB usable per device on
/// `physical`: device i is backed by physical GPU i % n (round-robin, as GGML_CUDA_DEVICES does in
/// ggml-cuda.cu:ggml_cuda_init), and its total is the physical total divided by the number of
/// devices sharing that GPU (ggml_backend_cuda_get_device_memory).
pub fn emulate(physical: &[Gpu], targets: &[u64]) -> Result<Vec<Gpu>> {
    if physical.is_empty() {
        bail!("no GPU to emulate on");
    }
    if targets.is_empty() || targets.contains(&0) {
        bail!("--emulate needs one positive MiB value per GPU, e.g. --emulate 24000,12800");
    }
    let n = physical.len();
    let share = |p: usize| (0..targets.len()).filter(|i| i % n == p).count() as u64;
    let mut out = Vec::new();
    for (i, &t) in targets.iter().enumerate() {
        let p = &physical[i % n];
        let shares = share(i % n);
        let total = p.total_mib / shares;
        // the ballast can only hold memory back: what a device shows free cannot exceed its share
        // of what is free now
        let free_share = p.usable_mib / shares;
        if t > free_share {
            bail!(
                "cannot emulate {t} MiB on GPU {i}: it is backed by physical GPU {} ({}), of which \
                 {free_share} MiB are free for this device; use a smaller value",
                i % n,
                p.model
            );
        }
        let how = if shares > 1 {
            format!(
                "virtual device {i} of {} on physical GPU {} (GGML_CUDA_DEVICES={})",
                shares,
                i % n,
                targets.len()
            )
        } else {
            format!("physical GPU {}", i % n)
        };
        out.push(Gpu {
            model: p.model.clone(),
            total_mib: total,
            usable_mib: t,
            bandwidth_gbs: p.bandwidth_gbs,
            pcie_gbs: p.pcie_gbs,
            source: format!(
                "emulated: {t} MiB usable via ballast on {how}; {}",
                p.source
            ),
            // a virtual device shows its share of what is free (the ballast holds the rest):
            // llama.cpp's `--fit` plans its targets against that, not against the budget
            reported_free_mib: (shares > 1 && free_share > t).then_some(free_share),
            rpc: None,
        });
    }
    Ok(out)
}

/// Best-of-3 read bandwidth over a 1 GiB buffer with all threads (GB/s). A measurement of this
/// machine, not a datasheet value; it is what the CPU side of a split placement streams at.
pub fn measure_ram_read_gbs() -> f64 {
    use rayon::prelude::*;
    const WORDS: usize = (1 << 30) / 8;
    let buf: Vec<u64> = (0..WORDS as u64)
        .into_par_iter()
        .map(|i| i.wrapping_mul(0x9E37_79B9))
        .collect();
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let s: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &x| a ^ x))
            .reduce(|| 0, |a, b| a ^ b);
        let dt = t.elapsed().as_secs_f64();
        std::hint::black_box(s);
        best = best.max((WORDS * 8) as f64 / dt / 1e9);
    }
    best
}

fn describe(gpus: &[Gpu]) -> String {
    let names: Vec<String> = gpus
        .iter()
        .map(|g| format!("{} ({} MiB)", g.model, g.total_mib))
        .collect();
    names.join(" + ")
}

fn default_name(gpus: &[Gpu], emulated: bool) -> String {
    let first = gpus.first().map(|g| {
        g.model
            .to_lowercase()
            .replace("nvidia ", "")
            .replace(' ', "-")
    });
    let base = format!("{}x{}", gpus.len(), first.unwrap_or_default());
    if emulated {
        format!("{base}-emulated")
    } else {
        base
    }
}

fn mib_list(v: &[u64]) -> String {
    let s: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("{} MiB", s.join(" + "))
}

fn opt(v: Option<u32>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "?".into())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> Gpu {
        to_gpu(&PhysicalGpu {
            name: "NVIDIA H100 80GB HBM3".into(),
            total_mib: 81559,
            free_mib: 81079,
            bus_width_bits: Some(5120),
            max_mem_clock_mhz: Some(2619),
            pcie_gen: Some(5),
            pcie_width: Some(16),
        })
    }

    #[test]
    fn bandwidth_matches_datasheets() {
        // H100 SXM: 3.35 TB/s; RTX 4090: 1008 GB/s; RTX 5070 Ti (256 bit, 14001 MHz): 896 GB/s
        assert!((bandwidth_gbs(5120, 2619) - 3352.3).abs() < 1.0);
        assert!((bandwidth_gbs(384, 10501) - 1008.1).abs() < 1.0);
        assert!((bandwidth_gbs(256, 14001) - 896.1).abs() < 1.0);
    }

    #[test]
    fn pcie_per_direction() {
        assert!((pcie_gbs(4, 16) - 31.5).abs() < 0.1);
        assert!((pcie_gbs(5, 16) - 63.0).abs() < 0.1);
        assert!((pcie_gbs(3, 8) - 7.88).abs() < 0.01);
        assert_eq!(pcie_gbs(9, 16), 0.0);
    }

    #[test]
    fn meminfo_parses_and_rejects() {
        let t = "MemTotal:       131072000 kB\nMemFree:  1 kB\nMemAvailable:   125000000 kB\n";
        assert_eq!(parse_meminfo(t), Some((128000, 122070)));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn emulate_two_virtual_devices_on_one_gpu() {
        let hs = emulate(&[h100()], &[24000, 12800]).unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].usable_mib, 24000);
        assert_eq!(hs[1].usable_mib, 12800);
        // each virtual device reports half the physical total (ggml_backend_cuda_get_device_memory)
        assert_eq!(hs[0].total_mib, 81559 / 2);
        assert!(hs[1].source.contains("GGML_CUDA_DEVICES=2"));
        // what llama.cpp reads on the 12,800 MiB device is its share of the free memory
        let share = h100().usable_mib / 2;
        assert_eq!(hs[1].reported_free_mib, Some(share));
        // one-to-one (a ballast per physical GPU): the device shows the budget itself
        let one = emulate(&[h100(), h100()], &[24000, 12800]).unwrap();
        assert_eq!(one[1].reported_free_mib, None);
    }

    #[test]
    fn emulate_one_to_one_keeps_physical_total() {
        let hs = emulate(&[h100(), h100()], &[24000, 12800]).unwrap();
        assert_eq!(hs[1].total_mib, 81559);
        assert!(hs[1].source.contains("physical GPU 1"));
    }

    #[test]
    fn emulate_refuses_more_than_free() {
        let err = emulate(&[h100()], &[70000, 12800]).unwrap_err().to_string();
        assert!(err.contains("cannot emulate 70000"), "{err}");
        assert!(emulate(&[h100()], &[]).is_err());
        assert!(emulate(&[h100()], &[0]).is_err());
        assert!(emulate(&[], &[100]).is_err());
    }

    #[test]
    fn detected_host_round_trips_through_the_host_format() {
        let host = Host {
            name: "t".into(),
            description: String::new(),
            gpus: emulate(&[h100()], &[24000, 12800]).unwrap(),
            ram: Ram {
                total_mib: 1,
                usable_mib: 1,
                bandwidth_gbs: 1.0,
                source: String::new(),
            },
        };
        let back: Host = toml::from_str(&host.to_toml()).unwrap();
        assert_eq!(back, host);
    }

    #[test]
    fn without_a_driver_the_error_says_what_to_do() {
        // Only meaningful where no NVIDIA driver is installed (CI); elsewhere detection succeeds.
        if let Err(e) = detect_physical() {
            let msg = e.to_string();
            assert!(msg.contains("NVIDIA") && msg.contains("host file"), "{msg}");
        }
    }
}
