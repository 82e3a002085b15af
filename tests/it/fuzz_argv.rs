//! Fuzz harness: the llama.cpp argv parser (`launch::parse_args_full`) and the EXTRA_ARGS word
//! splitter on mutated launch commands: words dropped, repeated, swapped, values replaced by
//! numbers at and past int32 limits, random text. Bounds: no panic, `TIME_BOUND`, 64 MiB of
//! heap per parse (`--n-cpu-moe 2147483647` once asked for 103 GB), and every
//! accepted config has the ranges llama.cpp would give it (`-c` within int32, `-np` ≤ 256).
use crate::fuzz_support::*;
use placer::launch::{parse_args_full, split_words, Tool};
use proptest::prelude::*;

/// Every command line of every file in tests/fixtures/fuzz/argv/ (seeds and crashers).
fn seed_lines() -> Vec<String> {
    corpus("argv")
        .into_iter()
        .flat_map(|(_, bytes)| {
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Heap one parse of a command line may use.
const HEAP_BOUND: usize = 64 << 20;

/// Numbers around the limits llama.cpp's parser has (`std::stoi` into int32).
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "-2",
    "1",
    "255",
    "256",
    "257",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "4294967040",
    "99999999999999999999",
    "1e3",
    "0x10",
    " 12",
    "12abc",
    "+5",
    "-",
    "",
    "nan",
    "inf",
];

#[derive(Debug, Clone)]
enum WordOp {
    Drop(prop::sample::Index),
    Repeat(prop::sample::Index),
    Swap(prop::sample::Index, prop::sample::Index),
    Number(prop::sample::Index, prop::sample::Index),
    Text(prop::sample::Index, String),
    Inline(prop::sample::Index),
}

fn word_op() -> impl Strategy<Value = WordOp> {
    let idx = any::<prop::sample::Index>;
    prop_oneof![
        1 => idx().prop_map(WordOp::Drop),
        1 => idx().prop_map(WordOp::Repeat),
        1 => (idx(), idx()).prop_map(|(a, b)| WordOp::Swap(a, b)),
        3 => (idx(), idx()).prop_map(|(a, b)| WordOp::Number(a, b)),
        1 => (idx(), "\\PC{0,12}").prop_map(|(a, s)| WordOp::Text(a, s)),
        1 => idx().prop_map(WordOp::Inline),
    ]
}

fn apply_words(words: &mut Vec<String>, ops: &[WordOp]) {
    for op in ops {
        let n = words.len();
        if n == 0 {
            return;
        }
        match op {
            WordOp::Drop(i) => {
                words.remove(i.index(n));
            }
            WordOp::Repeat(i) => {
                let w = words[i.index(n)].clone();
                words.insert(i.index(n), w);
            }
            WordOp::Swap(a, b) => words.swap(a.index(n), b.index(n)),
            WordOp::Number(i, v) => words[i.index(n)] = NUMBERS[v.index(NUMBERS.len())].into(),
            WordOp::Text(i, s) => words[i.index(n)] = s.clone(),
            WordOp::Inline(i) => {
                // `--flag value` → `--flag=value`
                let at = i.index(n);
                if at + 1 < n {
                    let v = words.remove(at + 1);
                    words[at] = format!("{}={v}", words[at]);
                }
            }
        }
    }
}

fn exercise(words: &[String]) {
    for tool in [Tool::Server, Tool::Cli] {
        let (r, peak) = timed("argv", || {
            crate::gguf_reader_props::measure(|| parse_args_full(tool, words))
        });
        assert!(peak <= HEAP_BOUND, "{words:?}: peak heap {peak} B");
        if let Ok(p) = r {
            let c = &p.config;
            assert!(
                c.ctx <= i32::MAX as u32,
                "{words:?}: n_ctx {} beyond int32",
                c.ctx
            );
            assert!(
                c.batch >= 1 && c.batch <= i32::MAX as u32,
                "{words:?}: n_batch {}",
                c.batch
            );
            assert!(
                c.ubatch <= i32::MAX as u32,
                "{words:?}: n_ubatch {}",
                c.ubatch
            );
            if let Some(np) = c.n_parallel {
                assert!((1..=256).contains(&np), "{words:?}: n_parallel {np}");
            }
            // What placer emits for it reads back the same.
            let back = placer::emit::argv(c);
            let again = parse_args_full(tool, &back).map(|p| p.config);
            assert!(
                again.is_ok(),
                "{words:?}: emitted {back:?} does not parse: {again:?}"
            );
        }
    }
}

#[test]
fn corpus_argv_replays_within_bounds() {
    for line in seed_lines() {
        exercise(&split_words(&line).unwrap());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_argv_mutated_seeds(
        seed in any::<prop::sample::Index>(),
        ops in prop::collection::vec(word_op(), 1..8),
        byte_muts in mutations(),
        mutate_text in any::<bool>(),
    ) {
        let lines = seed_lines();
        let line = &lines[seed.index(lines.len())];
        let mut words = if mutate_text {
            // Byte-level mutation of the EXTRA_ARGS text (quotes, escapes, invalid UTF-8).
            let text = String::from_utf8_lossy(&apply(line.as_bytes(), &byte_muts)).into_owned();
            match timed("split_words", || split_words(&text)) {
                Ok(w) => w,
                Err(_) => return Ok(()),
            }
        } else {
            split_words(line).unwrap()
        };
        apply_words(&mut words, &ops);
        exercise(&words);
    }
}
