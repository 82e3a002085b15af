//! `launch::parse_args`: llama.cpp's spellings and values (common/arg.cpp of the reference tree).

use placer::gguf::GgmlType;
use placer::launch::*;

fn parse(tool: Tool, s: &str) -> LaunchConfig {
    let argv: Vec<String> = s.split_whitespace().map(String::from).collect();
    parse_args(tool, &argv).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    let argv: Vec<String> = s.split_whitespace().map(String::from).collect();
    parse_args(Tool::Server, &argv).unwrap_err().to_string()
}

#[test]
fn spellings_and_values() {
    let c = parse(
        Tool::Server,
        "-m a.gguf --ctx-size 8192 --n-gpu-layers 20 --split-mode none --main-gpu 1 --tensor-split 3/1 \
         -b 1024 --ubatch-size 256 --parallel 2 --kv-unified -ctk q8_0 --cache-type-v q4_0 --flash-attn on \
         --swa-full --load-mode none -fit off -fitt 512,2048 -nkvo --no-op-offload -dev CUDA1,CUDA0",
    );
    assert_eq!(c.model, "a.gguf");
    assert_eq!(c.ctx, 8192);
    assert_eq!(c.gpu_layers, GpuLayers::Count(20));
    assert_eq!(c.split_mode, SplitMode::None);
    assert_eq!(c.main_gpu, 1);
    assert_eq!(c.tensor_split, Some(vec![3.0, 1.0]));
    assert_eq!((c.batch, c.ubatch), (1024, 256));
    assert_eq!((c.n_parallel, c.kv_unified), (Some(2), Some(true)));
    assert_eq!((c.type_k, c.type_v), (GgmlType::Q8_0, GgmlType::Q4_0));
    assert_eq!(c.flash_attn, FlashAttn::On);
    assert!(c.swa_full && !c.fit && !c.kv_offload && !c.op_offload);
    assert_eq!(c.load_mode, LoadMode::None);
    assert_eq!(c.fit_target_mib, vec![512, 2048]);
    assert_eq!(
        c.devices,
        Some(vec!["CUDA1".to_string(), "CUDA0".to_string()])
    );
    assert!(c.passthrough.is_empty());
}

#[test]
fn gpu_layers_words() {
    assert_eq!(parse(Tool::Server, "-ngl auto").gpu_layers, GpuLayers::Auto);
    assert_eq!(parse(Tool::Server, "-ngl all").gpu_layers, GpuLayers::All);
    assert_eq!(parse(Tool::Server, "-ngl -1").gpu_layers, GpuLayers::Auto);
    assert_eq!(
        parse(Tool::Server, "--gpu-layers 99").gpu_layers,
        GpuLayers::Count(99)
    );
    assert!(err("-ngl many").contains("auto or all"));
}

#[test]
fn overrides_accumulate_in_command_line_order() {
    let c = parse(
        Tool::Server,
        r"-ot blk\.0\.=CUDA0,exps=CPU --n-cpu-moe 2 -cmoe --override-tensor a=CUDA1 -ncffn 1",
    );
    let pats: Vec<(&str, &str)> = c
        .overrides
        .iter()
        .map(|o| (o.pattern.as_str(), o.buft.as_str()))
        .collect();
    assert_eq!(
        pats,
        vec![
            (r"blk\.0\.", "CUDA0"),
            ("exps", "CPU"),
            (r"blk\.0\.ffn_(up|down|gate|gate_up)_(ch|)exps", "CPU"),
            (r"blk\.1\.ffn_(up|down|gate|gate_up)_(ch|)exps", "CPU"),
            (r"\.ffn_(up|down|gate|gate_up)_(ch|)exps", "CPU"),
            ("a", "CUDA1"),
            (r"blk\.0\.ffn_(up|down|gate)\.", "CPU"),
        ]
    );
    // split on the first '=' only
    let c = parse(Tool::Server, "-ot a=b=CPU");
    assert_eq!(
        (
            c.overrides[0].pattern.as_str(),
            c.overrides[0].buft.as_str()
        ),
        ("a", "b=CPU")
    );
    assert!(err("-ot noequals").contains("<regex>=<buffer type>"));
    assert!(err("-ncmoe -1").contains("negative"));
}

#[test]
fn defaults_per_tool() {
    let s = parse(Tool::Server, "");
    assert_eq!(
        (s.n_parallel, s.batch, s.ubatch, s.fit),
        (None, 2048, 512, true)
    );
    assert!(err("-np 0").contains("rejects 0"));
    assert_eq!(parse(Tool::Server, "-np -1").n_parallel, None);
    assert_eq!(parse(Tool::Cli, "-np 3").n_parallel, Some(3));
}

#[test]
fn bad_values_say_what_llama_cpp_accepts() {
    assert!(err("-sm rows").contains("none, layer, row, tensor"));
    assert!(err("-fa maybe").contains("on|off|auto"));
    assert!(err("-ctk q3_K").contains("f32, f16, bf16, q8_0"));
    assert!(err("-lm fast").contains("mmap+mlock"));
    assert!(err("-fit sometimes").contains("on|off"));
    assert!(err("-ts 1,x").contains("not a non-negative number"));
    assert!(err("-c").contains("needs a value"));
    assert!(err("-ts 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1").contains("at most 15"));
}

#[test]
fn unknown_flags_are_kept_with_their_values() {
    let c = parse(
        Tool::Server,
        "--jinja --temp 0.7 -m x --min-p 0.01 --port 8080 --no-webui --seed -1",
    );
    assert_eq!(
        c.passthrough,
        vec![
            "--jinja",
            "--temp",
            "0.7",
            "--min-p",
            "0.01",
            "--port",
            "8080",
            "--no-webui",
            "--seed",
            "-1"
        ]
    );
    assert_eq!(c.model, "x");
}

#[test]
fn old_load_flags_map_with_a_warning() {
    let argv: Vec<String> = ["--no-mmap"].iter().map(|s| s.to_string()).collect();
    let p = parse_args_full(Tool::Server, &argv).unwrap();
    assert_eq!(p.config.load_mode, LoadMode::None);
    assert!(p.warnings[0].contains("-lm none"));
}

#[test]
fn extra_args_words() {
    assert_eq!(
        split_words(r#"-ot "blk\.1\.=CUDA0" --alias 'my model'  -np 1"#).unwrap(),
        vec!["-ot", r"blk\.1\.=CUDA0", "--alias", "my model", "-np", "1"]
    );
    assert!(split_words("'open").is_err());
}
