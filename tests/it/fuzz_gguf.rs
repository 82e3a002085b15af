//! Fuzz harness: the GGUF reader (stream and file), then anatomy and `inspect` on whatever it
//! accepts. Bounds: no panic, `TIME_BOUND` per input, heap ≤ 128 × input + 1 MiB while reading
//! (measured by the test binary's counting allocator, see gguf_reader_props.rs), and error
//! texts that are short and free of control characters (finding 13 of issue 14).
use crate::fuzz_support::*;
use crate::gguf_reader_props::measure;
use proptest::prelude::*;

fn budget(n: usize) -> usize {
    128 * n + (1 << 20)
}

fn check_error_text(name: &str, msg: &str) {
    assert!(
        msg.len() < 2048,
        "{name}: error text of {} bytes: {:?}…",
        msg.len(),
        msg.chars().take(200).collect::<String>()
    );
    assert!(
        !msg.chars().any(|c| c.is_control()),
        "{name}: control characters in error text {msg:?}"
    );
}

/// Everything placer does with a model header, on one input.
fn exercise(name: &str, bytes: &[u8], dir: &std::path::Path) {
    let (r, peak) = timed(name, || measure(|| placer::gguf::read_header(bytes)));
    assert!(
        peak <= budget(bytes.len()),
        "{name}: reader peak heap {peak} B for {} B of input",
        bytes.len()
    );
    match r {
        Ok(model) => timed(name, || {
            if let Err(e) = placer::anatomy::from_gguf(&model) {
                check_error_text(name, &format!("{e:#}"));
            }
            if let Ok(rep) = placer::cli::inspect::report(&model) {
                let _ = placer::cli::inspect::render(&rep);
            }
        }),
        Err(e) => check_error_text(name, &e.to_string()),
    }
    // By path: the file's size bounds allocations up front and sizes unknown-type tensors.
    let path = dir.join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    let (r, peak) = timed(name, || measure(|| placer::gguf::open(&path)));
    assert!(
        peak <= budget(bytes.len()),
        "{name}: open peak heap {peak} B"
    );
    if let Err(e) = r {
        check_error_text(name, &e.to_string());
    }
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    corpus("gguf")
        .into_iter()
        .filter(|(n, _)| n.starts_with("seed-"))
        .collect()
}

/// Every checked-in input (seeds and the crashers found so far) stays within the bounds.
#[test]
fn corpus_gguf_replays_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in corpus("gguf") {
        exercise(&name, &bytes, dir.path());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_gguf_mutated_seeds(seed in any::<prop::sample::Index>(), muts in mutations()) {
        let seeds = seeds();
        let (name, bytes) = &seeds[seed.index(seeds.len())];
        let input = apply(bytes, &muts);
        let dir = tempfile::tempdir().unwrap();
        exercise(name, &input, dir.path());
    }
}
