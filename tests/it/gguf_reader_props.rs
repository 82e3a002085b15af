//! Property tests: on arbitrary, truncated or mutated bytes the reader never panics, returns a
//! typed error, and never allocates more than a constant times the input it was given (a
//! counting global allocator measures the peak of live heap bytes during each read).
use crate::gguf_support;

use gguf_support::*;
use placer::gguf::{read_header, GgufError};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

// Counting is per thread: only the thread inside `measure` counts, so tests that run at the
// same time on other threads do not move its numbers.
thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = ON.try_with(|on| {
        if on.get() {
            let now = LIVE.with(|l| {
                l.set(l.get() + delta);
                l.get()
            });
            PEAK.with(|p| p.set(p.get().max(now)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            count(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            count(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Read `bytes` and return the result and the peak heap growth during the read.
fn measured(bytes: &[u8]) -> (Result<placer::gguf::GgufModel, GgufError>, usize) {
    measure(|| read_header(bytes))
}

/// Run `f` and return its result and the peak heap growth while it ran (the global allocator
/// of this test binary counts; calls are serialised). Used by the fuzz_* harnesses too.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ON.with(|on| on.set(true));
    let r = f();
    ON.with(|on| on.set(false));
    (r, PEAK.with(Cell::get).max(0) as usize)
}

/// Allowed heap for an input of n bytes: every stored byte may become a 32-byte MetaValue plus
/// the vector's doubling slack, plus fixed reservations (64 KiB eager string, 1024-item vectors).
fn budget(n: usize) -> usize {
    128 * n + (1 << 20)
}

fn is_typed(e: &GgufError) -> bool {
    matches!(
        e,
        GgufError::BadMagic(_)
            | GgufError::UnsupportedVersion(_)
            | GgufError::Truncated { .. }
            | GgufError::Overflow(_)
            | GgufError::Invalid(_)
    )
}

fn valid_header() -> Vec<u8> {
    small_model()
        .kv("general.alignment", Val::U32(64))
        .kv(
            "arr",
            Val::Arr(
                5,
                3,
                [1i32, 2, 3].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        )
        .kv("s", Val::Str("hello"))
        .bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (r, peak) = measured(&bytes);
        if let Err(e) = &r { prop_assert!(is_typed(e), "{e:?}"); }
        prop_assert!(peak <= budget(bytes.len()), "peak {peak} for {} bytes", bytes.len());
    }

    /// Arbitrary bytes behind a valid preamble, so the fuzzing reaches counts and KV pairs.
    #[test]
    fn arbitrary_body_never_panics(
        version in 2u32..=3,
        n_tensors in prop_oneof![0i64..4, any::<i64>()],
        n_kv in prop_oneof![0i64..4, any::<i64>()],
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&n_tensors.to_le_bytes());
        b.extend_from_slice(&n_kv.to_le_bytes());
        b.extend(body);
        let (r, peak) = measured(&b);
        if let Err(e) = &r { prop_assert!(is_typed(e), "{e:?}"); }
        prop_assert!(peak <= budget(b.len()), "peak {peak} for {} bytes", b.len());
    }

    #[test]
    fn truncated_valid_header_is_a_truncation(cut in 0usize..1000) {
        let b = valid_header();
        let cut = cut % b.len();
        let (r, _) = measured(&b[..cut]);
        prop_assert!(matches!(r, Err(GgufError::Truncated { .. })), "{r:?}");
    }

    #[test]
    fn mutated_valid_header_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut b = valid_header();
        for (i, v) in edits {
            let n = b.len();
            b[i % n] = v;
        }
        b.extend(tail);
        let (r, peak) = measured(&b);
        if let Err(e) = &r { prop_assert!(is_typed(e), "{e:?}"); }
        prop_assert!(peak <= budget(b.len()), "peak {peak} for {} bytes", b.len());
    }

    /// Length fields set to huge values: the reader must not allocate them.
    #[test]
    fn huge_lengths_do_not_allocate(which in 0usize..3, len in prop_oneof![Just(u64::MAX), (1u64 << 20)..(1u64 << 40)]) {
        let b = match which {
            // a metadata key of `len` bytes
            0 => { let mut b = Hdr { n_kv: Some(1), ..Hdr::default() }.bytes(); b.extend(len.to_le_bytes()); b.extend(b"abc"); b }
            // an array of `len` u64s
            1 => Hdr::default().kv("a", Val::Arr(10, len, vec![1, 2, 3])).bytes(),
            // an array of `len` strings
            _ => Hdr::default().kv("a", Val::Arr(8, len, vec![0; 16])).bytes(),
        };
        let (r, peak) = measured(&b);
        prop_assert!(matches!(r, Err(GgufError::Truncated { .. }) | Err(GgufError::Overflow(_))), "{r:?}");
        prop_assert!(peak <= budget(b.len()), "peak {peak} for {} bytes", b.len());
    }
}
