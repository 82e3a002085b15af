//! Fuzz harness: the models.conf reader, the section → launch parser, and the profile writer's
//! text transform on mutated models.conf files. Bounds: no panic, `TIME_BOUND`.
use crate::fuzz_support::*;
use placer::modelsconf::{read, write};
use proptest::prelude::*;

fn exercise(name: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    timed(name, || {
        for s in read::parse(&text) {
            let _ = placer::launch::from_section(&s);
        }
        let new = [write::NewSection {
            name: "glm-q8-aggressive".into(),
            text: "[glm-q8-aggressive]\nMODEL=m.gguf\nCTX_SIZE=4096\n".into(),
        }];
        let out = write::upsert(&text, &new);
        // The section written is there to be read back.
        assert!(
            read::parse(&out)
                .iter()
                .any(|s| s.name == "glm-q8-aggressive"),
            "{name}: the upserted section is not read back"
        );
    });
}

#[test]
fn corpus_modelsconf_replays_within_bounds() {
    for (name, bytes) in corpus("modelsconf") {
        exercise(&name, &bytes);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_modelsconf_mutated_seeds(seed in any::<prop::sample::Index>(), muts in mutations()) {
        let seeds = corpus("modelsconf");
        let (name, bytes) = &seeds[seed.index(seeds.len())];
        exercise(name, &apply(bytes, &muts));
    }
}
