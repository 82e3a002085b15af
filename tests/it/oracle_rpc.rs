//! llama.cpp's own dry run (`llama-fit-params --fit-print on`) on two RPC devices on loopback,
//! against placer's prediction for the same commands.
//!
//! Needs a llama.cpp build with the RPC backend (`.ci/llama-cpp.sh` makes one): set
//! `PLACER_LLAMA_BIN` to its bin folder (or its llama-server). Without it the test prints a
//! note and passes.
//!
//! Two `ggml-rpc-server` processes play two GPUs (llama.cpp names them RPC0 and RPC1,
//! `ggml/src/ggml-rpc/ggml-rpc.cpp: ggml_backend_rpc_add_server`); placer is given a host with two
//! GPUs (its CUDA0 / CUDA1). KV (and recurrent state) per device must agree with placer to the
//! MiB; weights must agree to the MiB with placer's tensor placement summed under the RPC
//! buffer's rule (below), and where placer's CUDA-rule total falls in another MiB the difference
//! is printed as a rule difference. Compute buffers are printed side by side (the RPC devices
//! run the CPU backend's graph, without CUDA's op offload).
//!
//! One memory rule differs between an RPC device and the CUDA device placer models, and the test
//! measures it rather than hiding it: a CUDA buffer pads every tensor to 128 bytes and every
//! quantized tensor whose rows are not a multiple of 512 by one extra 512-column row piece
//! (`ggml-cuda.cu: ggml_backend_cuda_buffer_type_get_alloc_size`), an RPC buffer holds
//! `ggml_nbytes` aligned to the remote CPU buffer's 32 bytes (`ggml-rpc.cpp:
//! ggml_backend_rpc_buffer_type_get_alloc_size` asks the server, whose CPU buffer type has no
//! `get_alloc_size`; `ggml-backend.cpp: ggml_backend_cpu_buffer_type_get_alignment` =
//! `TENSOR_ALIGNMENT`). A dry run reports whole MiB only (its weight buffers are dummies), so
//! the table printed below shows placer's bytes under both rules; the difference is a few KiB
//! here (a real llama-server load prints 6.59 MiB for RPC0 where the CUDA rule gives 6.61).

use placer::anatomy::{self, Anatomy};
use placer::calibrate::Calibration;
use placer::gguf::{self, WriteOptions};
use placer::host::{DeviceId, Host};
use placer::launch::{self, Tool};
use placer::memory::{self, Prediction};
use placer::oracle::{DryRun, Oracle};
use placer::units::MIB;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The build's bin folder from `PLACER_LLAMA_BIN` (a folder or a binary in it).
pub(crate) fn llama_bin() -> Option<PathBuf> {
    let v = std::env::var_os("PLACER_LLAMA_BIN")?;
    let p = PathBuf::from(v);
    let dir = if p.is_dir() {
        p
    } else {
        p.parent()?.to_path_buf()
    };
    Some(dir)
}

/// A `ggml-rpc-server` on 127.0.0.1, killed when dropped (also while a failed assert unwinds).
pub(crate) struct RpcServer {
    child: Child,
    pub(crate) port: u16,
}

impl RpcServer {
    pub(crate) fn start(bin: &Path) -> RpcServer {
        // A port the kernel just handed out and released; the server binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let exe = ["ggml-rpc-server", "rpc-server"]
            .iter()
            .map(|n| bin.join(n))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no ggml-rpc-server / rpc-server in {}", bin.display()));
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let mut server = RpcServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(s)) = server.child.try_wait() {
                panic!("{} exited at start ({s})", exe.display());
            }
            assert!(
                Instant::now() < deadline,
                "rpc server on port {port} not listening after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server.port = port;
        server
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use crate::llama_support::tiny_moe;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A catalog model as a sparse file: the real header, then a hole as long as the tensor data.
/// The dry run never reads weights (`no_alloc`), but the loader checks that every tensor lies
/// within the file (`src/llama-model-loader.h: llama_tensor_weight`: "data is not within the
/// file bounds"), so a header-only file is refused and a sparse one is not. Costs a few MB of
/// disk.
fn sparse_catalog_model(id: &str, dir: &Path) -> PathBuf {
    let models = repo().join("models");
    let entry = placer::catalog::entry(id, &models).expect("catalog entry");
    let model = entry.synthesize(None, &models).expect("synthesizes");
    let path = dir.join(format!("{id}-sparse.gguf"));
    gguf::write_gguf(
        &path,
        &model.metadata,
        &model.tensors,
        &WriteOptions::default(),
    )
    .expect("writes the header");
    let data: u64 = model
        .tensors
        .iter()
        .map(|t| t.nbytes.div_ceil(gguf::DEFAULT_ALIGNMENT) * gguf::DEFAULT_ALIGNMENT)
        .sum();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("reopens");
    let header = file.metadata().expect("metadata").len();
    file.set_len(header + data).expect("extends (sparse)");
    path
}

/// Two GPUs with room to spare: the caps do not enter weights or KV.
fn loopback_host() -> Host {
    Host::from_toml(
        &std::fs::read_to_string(repo().join("tests/fixtures/oracle/loopback-rpc-host.toml"))
            .expect("host fixture"),
        "loopback-rpc-host.toml",
    )
    .expect("host fixture parses")
}

/// Bytes of the weights placer puts on GPU `g`, under the RPC device's rule (ggml_nbytes
/// aligned to 32) instead of CUDA's.
fn model_bytes_rpc_rule(a: &Anatomy, p: &Prediction, g: usize) -> u64 {
    a.tensors
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            p.resolved.tensor_device[*i] == DeviceId::Gpu(g)
                && !p.resolved.skipped.get(*i).copied().unwrap_or(false)
        })
        .map(|(_, t)| memory::kv::alloc_size(t.ggml_type, 0, t.nbytes, false))
        .sum()
}

struct Compared {
    lines: Vec<String>,
    mismatches: Vec<String>,
    /// Disagreements with placer's (CUDA) prediction that the RPC buffer rule accounts for.
    explained: Vec<String>,
}

fn compare(
    label: &str,
    a: &Anatomy,
    host: &Host,
    dry: &DryRun,
    pred: &Prediction,
    servers: &[RpcServer],
) -> Compared {
    let mut c = Compared {
        lines: Vec::new(),
        mismatches: Vec::new(),
        explained: Vec::new(),
    };
    assert_eq!(
        dry.devices.len(),
        host.gpus.len(),
        "{label}: llama.cpp saw {:?}",
        dry.devices.iter().map(|d| &d.name).collect::<Vec<_>>()
    );
    for (g, (d, p)) in dry.devices.iter().zip(&pred.gpus).enumerate() {
        assert_eq!(d.name, format!("RPC{g}"), "{label}: device order");
        // Buffer type names carry the server's own device index and endpoint
        // (`ggml-rpc.cpp: ggml_backend_rpc_buffer_type`): RPC0[127.0.0.1:PORT] on both servers.
        let buft = format!("RPC0[{}]", servers[g].endpoint());
        let log_compute = dry.buffer_mib(&buft, "compute");
        let rpc_rule = model_bytes_rpc_rule(a, pred, g);
        c.lines.push(format!(
            "{label:<28} {:<5} model {:>4} MiB, placer {:>4} MiB ({:>8.3} CUDA rule, {:>8.3} RPC rule) | \
             KV {:>3}, placer {:>3} ({:>7.3}) | compute {:>3}, placer {:>4} (log {:>7.2})",
            d.name,
            d.model_mib,
            p.model / MIB,
            p.model as f64 / MIB as f64,
            rpc_rule as f64 / MIB as f64,
            d.context_mib,
            (p.kv + p.rs) / MIB,
            (p.kv + p.rs) as f64 / MIB as f64,
            d.compute_mib,
            p.compute / MIB,
            log_compute,
        ));
        // Where each tensor goes must match exactly: llama.cpp's weights are placer's tensors
        // for this device summed under the RPC buffer's rule.
        if d.model_mib != rpc_rule / MIB {
            c.mismatches.push(format!(
                "{label}: {} weights: llama.cpp {} MiB, placer's tensors under the RPC rule {} MiB \
                 (placer's CUDA prediction {} MiB)",
                d.name,
                d.model_mib,
                rpc_rule / MIB,
                p.model / MIB
            ));
        } else if d.model_mib != p.model / MIB {
            // Same tensors; placer's CUDA padding crosses a MiB boundary that the RPC buffer's
            // does not. Known and explained: reported, not a failure.
            c.explained.push(format!(
                "{label}: {} weights: llama.cpp {} MiB, placer {} MiB = the RPC rule's {:.3} MiB + \
                 {} KiB of CUDA padding (MATRIX_ROW_PADDING rows, 128-byte alignment)",
                d.name,
                d.model_mib,
                p.model / MIB,
                rpc_rule as f64 / MIB as f64,
                (p.model - rpc_rule) / 1024
            ));
        }
        if d.context_mib != (p.kv + p.rs) / MIB {
            c.mismatches.push(format!(
                "{label}: {} KV: llama.cpp {} MiB, placer {} MiB",
                d.name,
                d.context_mib,
                (p.kv + p.rs) / MIB
            ));
        }
    }
    let h = &pred.host;
    c.lines.push(format!(
        "{label:<28} Host  model {:>4} MiB, placer {:>4} MiB (CPU weights) | KV {:>3}, placer {:>3} | compute {:>3}, placer {:>4}",
        dry.host.model_mib,
        (h.cpu_weights + h.cpu_model) / MIB,
        dry.host.context_mib,
        (h.kv + h.rs) / MIB,
        dry.host.compute_mib,
        h.compute / MIB,
    ));
    c
}

#[test]
fn llama_fit_params_on_two_rpc_devices_agrees_with_placer() {
    let Some(bin) = llama_bin() else {
        eprintln!(
            "note: PLACER_LLAMA_BIN is not set; skipping the llama.cpp dry-run comparison \
             (build one with .ci/llama-cpp.sh)"
        );
        return;
    };
    let oracle = Oracle::beside(&bin).expect("llama-fit-params beside the build");
    let build = oracle.version().expect("llama-fit-params --version");
    eprintln!("llama.cpp build {} ({})", build.number, build.commit);

    let tmp = tempfile::tempdir().expect("temp dir");
    let model = tiny_moe(tmp.path());
    let gg = gguf::open(&model).expect("reads back");
    let a = anatomy::from_gguf(&gg).expect("anatomy");

    let placements: &[(&str, &[&str])] = &[
        ("all layers, -ts 1,1", &["-ngl", "99", "-ts", "1,1"]),
        ("all layers, -ts 3,1", &["-ngl", "99", "-ts", "3,1"]),
        (
            "-ts 1,1, experts on CPU",
            &["-ngl", "99", "-ts", "1,1", "-ot", "exps=CPU"],
        ),
        ("-ngl 4 (layers 3-5 + output)", &["-ngl", "4", "-ts", "1,1"]),
        (
            "-ngl 99 -ctk q8_0 -ctv q8_0",
            &["-ngl", "99", "-ts", "1,1", "-ctk", "q8_0", "-ctv", "q8_0"],
        ),
    ];
    let common = [
        "-c", "2048", "-b", "512", "-ub", "256", "-np", "1", "-fa", "on",
    ];
    run_placements(&bin, &oracle, &model, &a, &common, placements);
}

/// A big catalog model (GLM-4.7-Flash Q8_0, deepseek2 with MLA, 31.8 GB) without its weights:
/// the same comparison on a sparse file.
#[test]
fn llama_fit_params_on_a_sparse_catalog_model_agrees_with_placer() {
    let Some(bin) = llama_bin() else {
        eprintln!("note: PLACER_LLAMA_BIN is not set; skipping the sparse-file dry run");
        return;
    };
    let oracle = Oracle::beside(&bin).expect("llama-fit-params beside the build");
    let tmp = tempfile::tempdir().expect("temp dir");
    let model = sparse_catalog_model("glm-q8", tmp.path());
    let gg = gguf::open(&model).expect("reads back");
    let a = anatomy::from_gguf(&gg).expect("anatomy");
    let placements: &[(&str, &[&str])] = &[
        ("glm-q8 all layers, -ts 1,1", &["-ngl", "99", "-ts", "1,1"]),
        (
            "glm-q8 -ts 1,1, experts on CPU",
            &["-ngl", "99", "-ts", "1,1", "-ot", "exps=CPU"],
        ),
        ("glm-q8 -ngl 30 -ts 2,1", &["-ngl", "30", "-ts", "2,1"]),
    ];
    let common = ["-c", "8192", "-np", "1", "-fa", "on"];
    run_placements(&bin, &oracle, &model, &a, &common, placements);
}

/// gpt-oss-120b (MXFP4 experts, rows of 2880: CUDA pads them, an RPC buffer does not) and
/// qwen3-next (hybrid: recurrent state beside the KV cache), sparse, one placement each.
#[test]
fn llama_fit_params_on_sparse_gpt_oss_and_qwen3next_agrees_with_placer() {
    let Some(bin) = llama_bin() else {
        eprintln!("note: PLACER_LLAMA_BIN is not set; skipping the sparse-file dry runs");
        return;
    };
    let oracle = Oracle::beside(&bin).expect("llama-fit-params beside the build");
    for id in ["gpt-oss-120b", "qwen3-next"] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let model = sparse_catalog_model(id, tmp.path());
        let gg = gguf::open(&model).expect("reads back");
        let a = anatomy::from_gguf(&gg).expect("anatomy");
        let label = format!("{id} -ts 1,1");
        let placements: &[(&str, &[&str])] = &[(&label, &["-ngl", "99", "-ts", "1,1"])];
        let common = ["-c", "16384", "-np", "1", "-fa", "on"];
        run_placements(&bin, &oracle, &model, &a, &common, placements);
    }
}

fn run_placements(
    bin: &Path,
    oracle: &Oracle,
    model: &Path,
    a: &Anatomy,
    common: &[&str],
    placements: &[(&str, &[&str])],
) {
    let host = loopback_host();
    let cal = Calibration::shipped();
    let servers = [RpcServer::start(bin), RpcServer::start(bin)];
    let rpc = format!("{},{}", servers[0].endpoint(), servers[1].endpoint());
    let m = model.display().to_string();
    let mut all = Vec::new();
    for (label, flags) in placements {
        let mut argv: Vec<String> = vec!["-m".into(), m.clone()];
        argv.extend(common.iter().map(|s| s.to_string()));
        argv.extend(flags.iter().map(|s| s.to_string()));
        // placer: the same command without --rpc (its host file names the two devices).
        let cfg = launch::parse_args(Tool::Cli, &argv).expect("placer parses the command");
        let pred = memory::predict(a, &cfg, &host, &cal).expect("placer predicts");
        argv.extend(["--rpc".to_string(), rpc.clone()]);
        let dry = oracle.dry_run(&argv).expect("dry run");
        eprintln!("{label}: dry run {:.2} s", dry.elapsed.as_secs_f64());
        all.push(compare(label, a, &host, &dry, &pred, &servers));
    }
    for c in &all {
        for l in &c.lines {
            eprintln!("{l}");
        }
    }
    for e in all.iter().flat_map(|c| &c.explained) {
        eprintln!("rule difference: {e}");
    }
    let mismatches: Vec<&String> = all.iter().flat_map(|c| &c.mismatches).collect();
    assert!(
        mismatches.is_empty(),
        "llama.cpp and placer disagree ({} placements):\n{}",
        all.len(),
        mismatches
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The solve → dry run → correct loop (`profile::confirm_profiles`) with placer's model
/// deliberately off: a calibration that under-predicts every compute buffer (`[compute]
/// fixed_mib = -150`, `moe_scale = 0.05`) on devices sized so that the profile's margin cannot
/// absorb the difference. llama.cpp's dry run projects more than placer, the margin grows by the
/// difference, the profile is solved again, and the final placement is within every device's cap
/// minus the margin by llama.cpp's own numbers; weights and KV agree to the MiB.
#[test]
fn solve_corrects_itself_with_the_dry_run_when_its_model_is_off() {
    let Some(bin) = llama_bin() else {
        eprintln!("SKIPPED: PLACER_LLAMA_BIN not set (./run test builds llama.cpp and sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_moe(dir.path());
    let (a, b) = (RpcServer::start(&bin), RpcServer::start(&bin));
    let host = std::fs::read_to_string(repo().join("tests/fixtures/oracle/loopback-rpc-host.toml"))
        .unwrap()
        .replace("usable_mib = 4096", "usable_mib = 993")
        .replace("total_mib = 4096", "total_mib = 993");
    std::fs::write(dir.path().join("host.toml"), host).unwrap();
    let cal = std::fs::read_to_string(repo().join("data/calibration.toml"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("fixed_mib =") {
                "fixed_mib = -150.0".to_string()
            } else if l.starts_with("moe_scale =") {
                "moe_scale = 0.05".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("off.toml"), cal).unwrap();
    let rpc = format!("--rpc 127.0.0.1:{},127.0.0.1:{}", a.port, b.port);
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .arg("solve")
        .arg(&model)
        .args(["--ctx", "4096", "--json", "--host"])
        .arg(dir.path().join("host.toml"))
        .arg("--calibration")
        .arg(dir.path().join("off.toml"))
        .arg("--llama")
        .arg(&bin)
        .args(["--oracle-args", &rpc])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let conf = &v["oracle"][0];
    eprintln!("{}", conf["summary"]);
    let corrected: u64 = conf["corrected_mib"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert!(corrected > 0, "the loop corrected nothing: {conf}");
    let rows = conf["devices"].as_array().unwrap();
    assert!(
        !rows.is_empty(),
        "the corrected profile was not confirmed: {conf}"
    );
    let sol = &v["profiles"][0]["solution"];
    for (i, row) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r["device"] != "host")
    {
        let p: Vec<u64> = row["placer"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let l: Vec<u64> = row["llama"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(p[0], l[0], "weights, device {i}: {row}");
        assert_eq!(p[1], l[1], "KV, device {i}: {row}");
        let d = &sol["devices"][i];
        let room = d["cap"].as_u64().unwrap() - d["margin"].as_u64().unwrap();
        let llama_total = l.iter().sum::<u64>() * 1048576 + d["overhead"].as_u64().unwrap();
        assert!(
            llama_total <= room,
            "device {i}: llama.cpp {llama_total} B > room {room} B"
        );
    }
}
