//! The fuzz harness shared by tests/it/fuzz_*.rs: mutations of real seed inputs, the case
//! budget, and the bounds every parser must keep.
//!
//! cargo-fuzz needs a nightly toolchain; these harnesses are proptest with seeds from
//! tests/fixtures/fuzz/ (real GGUF headers, llama.cpp logs, a models.conf, launch commands).
//! Each case applies 1–8 mutations — bit flips, truncations, insertions, deletions, copied
//! spans and 8-byte "huge length" overwrites — and asserts: no panic, a time bound, and (for the
//! GGUF reader) a heap bound. Budget: `PROPTEST_CASES` (default [`DEFAULT_CASES`] per target in
//! `cargo test`; docs/validation.md gives the longer run). A failing input that proptest shrinks
//! goes into tests/fixtures/fuzz/<target>/ and is replayed by that target's `corpus_*` test.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Cases per target when `PROPTEST_CASES` is not set (the budget `cargo test` runs).
pub const DEFAULT_CASES: u32 = 96;

/// Time one parse of one input may take (debug build, a loaded 2-core machine).
pub const TIME_BOUND: Duration = Duration::from_secs(5);

/// `PROPTEST_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a mutated 50 KB header is slow; the failing input is printed anyway.
        max_shrink_iters: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target)
}

/// Every file of tests/fixtures/fuzz/<target>/, sorted: (name, bytes).
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz corpus {target}: {e}"))
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Values written over 8 bytes to fake a length or count field.
const HUGE: &[u64] = &[
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
    u64::MAX - 7,
];

#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit(prop::sample::Index, u8),
    SetByte(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    /// Copy a span elsewhere (repeats structure: duplicate keys, tensors, lines).
    CopySpan(prop::sample::Index, usize, prop::sample::Index),
    /// Overwrite 8 bytes (little-endian) with one of [`HUGE`] or its 4-byte prefix.
    Huge(prop::sample::Index, prop::sample::Index, bool),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>;
    prop_oneof![
        4 => (idx(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (idx(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        1 => idx().prop_map(Mutation::Truncate),
        2 => (idx(), prop::collection::vec(any::<u8>(), 1..32)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (idx(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (idx(), 1usize..256, idx()).prop_map(|(a, n, b)| Mutation::CopySpan(a, n, b)),
        3 => (idx(), idx(), any::<bool>()).prop_map(|(i, h, w)| Mutation::Huge(i, h, w)),
    ]
}

pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..8)
}

/// Apply mutations in order (positions scale with the current length; empty input stays legal).
pub fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        let n = b.len();
        match m {
            Mutation::FlipBit(i, bit) if n > 0 => b[i.index(n)] ^= 1 << bit,
            Mutation::SetByte(i, v) if n > 0 => b[i.index(n)] = *v,
            Mutation::Truncate(i) => b.truncate(i.index(n + 1)),
            Mutation::Insert(i, v) => {
                let at = i.index(n + 1);
                b.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, len) if n > 0 => {
                let at = i.index(n);
                b.drain(at..(at + len).min(n));
            }
            Mutation::CopySpan(a, len, to) if n > 0 => {
                let from = a.index(n);
                let span: Vec<u8> = b[from..(from + len).min(n)].to_vec();
                let at = to.index(n + 1);
                b.splice(at..at, span);
            }
            Mutation::Huge(i, h, wide) if n > 0 => {
                let v = HUGE[h.index(HUGE.len())].to_le_bytes();
                let w = if *wide { 8 } else { 4 };
                let at = i.index(n);
                for (k, byte) in v.iter().take(w).enumerate() {
                    if let Some(x) = b.get_mut(at + k) {
                        *x = *byte;
                    }
                }
            }
            _ => {}
        }
    }
    b
}

/// Run `f` and fail if it took longer than [`TIME_BOUND`].
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    let dt = t.elapsed();
    assert!(
        dt <= TIME_BOUND,
        "{what}: took {dt:?} (bound {TIME_BOUND:?})"
    );
    r
}

#[test]
fn mutations_keep_positions_in_range() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..500 {
        let muts = mutations().new_tree(&mut runner).unwrap().current();
        let _ = apply(b"", &muts);
        let _ = apply(b"x", &muts);
        let _ = apply(&[0u8; 100], &muts);
    }
}
