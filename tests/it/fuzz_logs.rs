//! Fuzz harness: the log readers (`logs::parse_bytes`: gzip, UTF-8/UTF-16/binary sniffing,
//! text/JSONL and llama-bench formats) on mutated real logs. Bounds: no panic, `TIME_BOUND`.
use crate::fuzz_support::*;
use proptest::prelude::*;

fn exercise(name: &str, bytes: &[u8]) {
    let _ = timed(name, || placer::logs::parse_bytes(name, bytes));
}

/// UTF-16 and gzip variants of a seed (the decoders are part of the reader).
fn variant(bytes: &[u8], kind: u8) -> Vec<u8> {
    use std::io::Write;
    match kind % 3 {
        0 => bytes.to_vec(),
        1 => {
            let text = String::from_utf8_lossy(bytes);
            [0xff, 0xfe]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
                .collect()
        }
        _ => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(bytes).unwrap();
            gz.finish().unwrap()
        }
    }
}

#[test]
fn corpus_logs_replays_within_bounds() {
    for (name, bytes) in corpus("logs") {
        for k in 0..3 {
            exercise(&name, &variant(&bytes, k));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_logs_mutated_seeds(
        seed in any::<prop::sample::Index>(),
        kind in 0u8..3,
        before in any::<bool>(),
        muts in mutations(),
    ) {
        let seeds = corpus("logs");
        let (name, bytes) = &seeds[seed.index(seeds.len())];
        // Mutate the text, or the encoded bytes (a flipped bit inside a gzip stream).
        let input = if before {
            variant(&apply(bytes, &muts), kind)
        } else {
            apply(&variant(bytes, kind), &muts)
        };
        exercise(name, &input);
    }
}
