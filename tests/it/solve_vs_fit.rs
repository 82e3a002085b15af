//! placer's aggressive profile against llama.cpp's `--fit` choice for the same request (replayed,
//! src/fitsim.rs), under the same speed model: on the users' host and models, the profile's
//! predicted request time is never longer than `--fit`'s.

use std::process::Command;

/// Run `placer solve ARGS…` from the repository root; panics with stderr when it fails.
fn run_solve(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .arg("solve")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn solve(model: &str, ctx: u32) -> serde_json::Value {
    serde_json::from_slice(&run_solve(&[model, "--ctx", &ctx.to_string(), "--json"])).unwrap()
}

#[test]
fn aggressive_is_never_predicted_slower_than_fit() {
    let mut compared = 0;
    for model in [
        "glm-q4",
        "glm-q8",
        "gpt-oss-120b",
        "qwen3-30b-a3b-q8",
        "qwen3-32b-q8",
        "qwen3-coder-next-q5",
    ] {
        for ctx in [32768u32, 131072] {
            let v = solve(model, ctx);
            let Some(sp) = v["fit_baseline"]["speed"].as_object() else {
                eprintln!("{model} {ctx}: --fit's choice does not fit; nothing to compare");
                continue;
            };
            let agg = &v["profiles"][0]["solution"];
            let prompt = sp["prompt_tokens"].as_f64().unwrap();
            assert_eq!(prompt, agg["workload"]["prompt_tokens"].as_f64().unwrap());
            let gen = agg["workload"]["gen_tokens"].as_f64().unwrap();
            let fit_s = prompt / sp["prefill_tps"].as_f64().unwrap()
                + gen / sp["decode_tps"].as_f64().unwrap();
            let placer_s = agg["request_s"].as_f64().unwrap();
            eprintln!(
                "{model} {ctx}: request --fit {fit_s:.1} s, placer aggressive {placer_s:.1} s"
            );
            assert!(
                placer_s <= fit_s * 1.005,
                "{model} -c {ctx}: placer {placer_s:.2} s > --fit {fit_s:.2} s"
            );
            compared += 1;
            // Moderate keeps a larger margin; where --fit's own choice leaves at least that
            // much free on every GPU, moderate could have chosen it and must not be slower.
            let moderate = &v["profiles"][1]["solution"];
            let fit_free: Vec<i64> = v["fit_baseline"]["gpu_free_mib"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            let meets = moderate["devices"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["device"]
                        .as_object()
                        .is_some_and(|o| o.contains_key("Gpu"))
                })
                .zip(&fit_free)
                .all(|(d, free)| *free as f64 >= d["margin"].as_f64().unwrap() / 1048576.0);
            if meets {
                let mod_s = moderate["request_s"].as_f64().unwrap();
                eprintln!("{model} {ctx}: --fit meets moderate's margins: moderate {mod_s:.1} s");
                assert!(
                    mod_s <= fit_s * 1.005,
                    "{model} -c {ctx}: moderate {mod_s:.2} s > --fit {fit_s:.2} s although \
                     --fit's choice leaves moderate's margins free"
                );
            }
        }
    }
    assert!(compared >= 8, "only {compared} requests compared");
}

/// `solve --write` says in each section how the profile compares with `--fit` (users' lesson 3:
/// every number in a profile says where it came from).
#[test]
fn models_conf_sections_carry_the_fit_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("models.conf");
    run_solve(&[
        "glm-q8",
        "--ctx",
        "131072",
        "--write",
        conf.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&conf).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# vs llama.cpp --fit on the same request (-ngl "))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| l.contains("× (predicted)")), "{text}");
}
