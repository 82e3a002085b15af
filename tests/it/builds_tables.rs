//! The extracted option tables (data/llama-builds/) against the rest of placer.

/// `-ctk/-ctv` types placer accepts are the reference tree's `kv_cache_types`.
#[test]
fn kv_cache_types_match_the_reference_table() {
    let kv: Vec<&str> = placer::builds::reference()
        .kv_cache_types
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(kv, placer::launch::KV_CACHE_TYPES);
}

/// `--long_name` is `--long-name` to llama.cpp (`common_params_parse_ex`), and so to placer.
#[test]
fn underscored_long_options_are_read_like_llama_cpp() {
    let args: Vec<String> = ["-m", "x.gguf", "-c", "131072", "--ctx_size", "4096"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg = placer::launch::parse_args(placer::launch::Tool::Server, &args).unwrap();
    assert_eq!(cfg.ctx, 4096, "the last value wins, as in llama.cpp");
    placer::builds::reference()
        .validate_argv(&args, placer::builds::Tool::Server)
        .unwrap();
}

/// Misspelled options are refused with the spelling llama.cpp knows.
#[test]
fn misspelled_options_are_refused_with_a_suggestion() {
    let args: Vec<String> = ["-m", "x.gguf", "--cache-typek", "q8_0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let e = placer::builds::reference()
        .validate_argv(&args, placer::builds::Tool::Server)
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean --cache-type-k"), "{e}");
}
