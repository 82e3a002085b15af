//! GGUF v3 writer, for `placer synth` and the catalog's header snapshots.
//!
//! The layout is gguf.cpp's (`ggml/src/gguf.cpp: gguf_write_out`): magic, version, counts, the
//! key/value pairs in order, the tensor infos, padding to `general.alignment`, then every tensor's
//! data padded to the alignment. Offsets are recomputed here because gguf.cpp's reader
//! (`gguf_init_from_file_impl`) refuses a file whose tensor `i` does not start exactly at
//! `Σ_{j<i} GGML_PAD(nbytes_j, alignment)`.
//!
//! Full-size data is streamed in chunks (a tensor of many GB is never held in memory), each chunk
//! filled in parallel with rayon while the previous one is written. Every block is a valid block of
//! its type with small finite scales (block layouts: `ggml/src/ggml-common.h`), so llama.cpp
//! computes finite logits from it.

use super::{GgmlType, GgufError, MetaValue, Metadata, TensorInfo};
use rayon::prelude::*;
use std::io::{BufWriter, Write};
use std::path::Path;

/// gguf.cpp's `GGUF_DEFAULT_ALIGNMENT`.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Metadata key that a header-only snapshot carries: the size the full file would have.
pub const FILE_SIZE_KEY: &str = "placer.file_size";

/// What to put in the data section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorData {
    /// Header only: no data section (a header snapshot). The size the full file would have is
    /// written to `placer.file_size` so that readers can still report it.
    None,
    /// Full-size random, valid blocks (seeded), so real llama.cpp loads and runs the file.
    Random { seed: u64 },
}

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub alignment: u64,
    pub data: TensorData,
    /// For `TensorData::None`: the full file's size when the caller knows it better than the
    /// header written here (a snapshot whose tokenizer arrays were stripped). `None`: computed
    /// from the metadata and tensors given.
    pub full_file_size: Option<u64>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            alignment: DEFAULT_ALIGNMENT,
            data: TensorData::None,
            full_file_size: None,
        }
    }
}

/// Write a GGUF v3 file with these metadata and tensor infos (offsets are recomputed).
pub fn write_gguf(
    path: &Path,
    metadata: &Metadata,
    tensors: &[TensorInfo],
    opts: &WriteOptions,
) -> Result<(), GgufError> {
    write_gguf_with_progress(path, metadata, tensors, opts, &mut |_, _| {})
}

/// `write_gguf`, calling `progress(bytes_written, bytes_total)` after every chunk.
pub fn write_gguf_with_progress(
    path: &Path,
    metadata: &Metadata,
    tensors: &[TensorInfo],
    opts: &WriteOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), GgufError> {
    let layout = Layout::new(metadata, tensors, opts)?;
    // Through the one file-writing path (src/fsio.rs, docs/files.md): a temporary file renamed
    // over the target once complete, so a failed or killed write never leaves a cut GGUF.
    let mut failed: Option<GgufError> = None;
    let res = crate::fsio::write_stream(path, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        match write_body(&mut out, &layout, opts, progress) {
            Ok(()) => out.flush(),
            Err(WriteError::Io(e)) => Err(e),
            Err(WriteError::Gguf(g)) => {
                failed = Some(g);
                Err(std::io::Error::other("invalid tensor"))
            }
        }
    });
    match (res, failed) {
        (Ok(_), _) => Ok(()),
        (Err(_), Some(g)) => Err(g),
        (Err(e), None) => Err(GgufError::Io {
            path: path.to_path_buf(),
            error: std::io::Error::other(format!("{e:#}")),
        }),
    }
}

fn write_body(
    out: &mut (impl Write + Send),
    layout: &Layout,
    opts: &WriteOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), WriteError> {
    out.write_all(&layout.header)?;
    let total = match opts.data {
        TensorData::None => layout.header.len() as u64,
        TensorData::Random { .. } => layout.file_size,
    };
    progress(layout.header.len() as u64, total);
    if let TensorData::Random { seed } = opts.data {
        let mut written = layout.header.len() as u64;
        for (i, t) in layout.tensors.iter().enumerate() {
            write_random_tensor(out, t, seed, i as u64, &mut |n| {
                written += n;
                progress(written, total);
            })?;
            let pad = padding(t.nbytes, layout.alignment);
            out.write_all(&vec![0u8; pad as usize])?;
            written += pad;
        }
    }
    Ok(())
}

/// The size in bytes of the complete file (header + padded data) these metadata and tensors give.
pub fn gguf_file_size(
    metadata: &Metadata,
    tensors: &[TensorInfo],
    alignment: u64,
) -> Result<u64, GgufError> {
    let opts = WriteOptions {
        alignment,
        data: TensorData::Random { seed: 0 },
        full_file_size: None,
    };
    Ok(Layout::new(metadata, tensors, &opts)?.file_size)
}

/// The tensor infos with offsets as the writer lays them out (contiguous, padded to alignment).
pub fn with_offsets(tensors: &[TensorInfo], alignment: u64) -> Result<Vec<TensorInfo>, GgufError> {
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let nbytes = t.ggml_type.nbytes(&t.dims).ok_or_else(|| {
            GgufError::Invalid(format!(
                "tensor {}: type {} cannot hold dims {:?} (unknown type or row not a whole number of blocks)",
                t.name, t.ggml_type, t.dims
            ))
        })?;
        let mut t = t.clone();
        t.offset = offset;
        t.nbytes = nbytes;
        t.size_from_offsets = false;
        t.shard = 0;
        offset = offset
            .checked_add(nbytes + padding(nbytes, alignment))
            .ok_or_else(|| GgufError::Overflow(format!("data offset after {}", t.name)))?;
        out.push(t);
    }
    Ok(out)
}

fn padding(n: u64, alignment: u64) -> u64 {
    (alignment - n % alignment) % alignment
}

/// Header bytes (padded) and where everything lands.
struct Layout {
    header: Vec<u8>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    file_size: u64,
}

impl Layout {
    fn new(
        metadata: &Metadata,
        tensors: &[TensorInfo],
        opts: &WriteOptions,
    ) -> Result<Layout, GgufError> {
        let alignment = opts.alignment;
        if alignment == 0 || !alignment.is_power_of_two() || alignment > u32::MAX as u64 {
            return Err(GgufError::Invalid(format!(
                "alignment {alignment} is not a power of two that fits in u32"
            )));
        }
        let tensors = with_offsets(tensors, alignment)?;
        let data_size = tensors
            .last()
            .map(|t| t.offset + t.nbytes + padding(t.nbytes, alignment))
            .unwrap_or(0);
        let mut md = metadata.clone();
        if alignment != DEFAULT_ALIGNMENT || md.get("general.alignment").is_some() {
            md.set("general.alignment", MetaValue::U32(alignment as u32));
        }
        // The full file never carries the snapshot key; a header-only file always does.
        md.entries.retain(|(k, _)| k != FILE_SIZE_KEY);
        let full_header = encode_header(&md, &tensors)?;
        let full_header_len =
            full_header.len() as u64 + padding(full_header.len() as u64, alignment);
        let file_size = full_header_len + data_size;
        let header = match opts.data {
            TensorData::Random { .. } => full_header,
            TensorData::None => {
                let size = opts.full_file_size.unwrap_or(file_size);
                md.set(FILE_SIZE_KEY, MetaValue::U64(size));
                encode_header(&md, &tensors)?
            }
        };
        let mut header = header;
        let pad = padding(header.len() as u64, alignment);
        header.resize(header.len() + pad as usize, 0);
        Ok(Layout {
            header,
            tensors,
            alignment,
            file_size,
        })
    }
}

fn encode_header(md: &Metadata, tensors: &[TensorInfo]) -> Result<Vec<u8>, GgufError> {
    if let Some((key, n)) = md.skipped_arrays.first() {
        return Err(GgufError::Invalid(format!(
            "metadata was read without the elements of array '{key}' ({n} elements; \
             ReadOptions::SUMMARY): read the model with gguf::open to write it back"
        )));
    }
    let mut b = Vec::with_capacity(4096);
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    b.extend_from_slice(&(md.entries.len() as u64).to_le_bytes());
    for (k, v) in &md.entries {
        put_str(&mut b, k);
        b.extend_from_slice(&v.type_id().to_le_bytes());
        put_value(&mut b, v)?;
    }
    for t in tensors {
        put_str(&mut b, &t.name);
        b.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&t.ggml_type.0.to_le_bytes());
        b.extend_from_slice(&t.offset.to_le_bytes());
    }
    Ok(b)
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_value(b: &mut Vec<u8>, v: &MetaValue) -> Result<(), GgufError> {
    match v {
        MetaValue::U8(x) => b.push(*x),
        MetaValue::I8(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => b.push(*x as u8),
        MetaValue::Str(s) => put_str(b, s),
        MetaValue::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Array(elem, items) => {
            if *elem == 9 {
                return Err(GgufError::Invalid("nested arrays are not written".into()));
            }
            if let Some(bad) = items.iter().find(|i| i.type_id() != *elem) {
                return Err(GgufError::Invalid(format!(
                    "array of type {elem} holds a value of type {}",
                    bad.type_id()
                )));
            }
            b.extend_from_slice(&elem.to_le_bytes());
            b.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(b, i)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Random valid tensor data
// ---------------------------------------------------------------------------------------------

enum WriteError {
    Io(std::io::Error),
    Gguf(GgufError),
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Bytes filled per chunk (then written while the next one is filled).
const CHUNK_BYTES: u64 = 64 << 20;
/// Bytes one rayon task fills; each piece is seeded by its position, so the output does not
/// depend on the number of threads.
const PIECE_BYTES: u64 = 1 << 20;

fn write_random_tensor(
    out: &mut (impl Write + Send),
    t: &TensorInfo,
    seed: u64,
    index: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(), WriteError> {
    let kind = BlockKind::for_tensor(t).map_err(WriteError::Gguf)?;
    let unit = kind.unit_bytes();
    let chunk = (CHUNK_BYTES / unit).max(1) * unit;
    let piece = (PIECE_BYTES / unit).max(1) * unit;
    let tensor_seed = mix(seed ^ mix(index.wrapping_add(0x9E37_79B9)));
    let fill = |start: u64, len: u64| -> Vec<u8> {
        let mut buf = vec![0u8; len as usize];
        buf.par_chunks_mut(piece as usize)
            .enumerate()
            .for_each(|(i, p)| {
                let mut rng = Rng::new(tensor_seed ^ mix(start + i as u64 * piece));
                kind.fill(p, &mut rng);
            });
        buf
    };
    let mut start = 0u64;
    let mut current = fill(0, chunk.min(t.nbytes));
    while !current.is_empty() {
        let next_start = start + current.len() as u64;
        let next_len = chunk.min(t.nbytes - next_start);
        let (written, next) = rayon::join(
            || out.write_all(&current),
            || {
                if next_len == 0 {
                    Vec::new()
                } else {
                    fill(next_start, next_len)
                }
            },
        );
        written.map_err(WriteError::Io)?;
        progress(current.len() as u64);
        start = next_start;
        current = next;
    }
    Ok(())
}

/// How to make valid random content for one tensor type.
#[derive(Debug, Clone, Copy)]
enum BlockKind {
    /// f32 weights: small values of both signs.
    F32Small,
    /// f32 norm weights: around 1 (an RMS norm weight near 0 would erase the signal).
    F32Norm,
    /// f32 `ssm_a` (qwen3next: `-exp(A_log)`): negative, so that the recurrent state decays.
    F32Negative,
    F16,
    BF16,
    /// Block-quantized: random bytes, then each listed f16 scale field set to a small positive
    /// value with an exponent in `exp` (f16 biased exponent; value ≈ 2^(e-15)).
    Quant {
        block: u64,
        scales: &'static [(usize, u16, u16)],
    },
    /// MXFP4: byte 0 is an E8M0 exponent (value 2^(e-127)); the rest are e2m1 nibbles.
    Mxfp4,
}

impl BlockKind {
    fn for_tensor(t: &TensorInfo) -> Result<BlockKind, GgufError> {
        let ty = t.ggml_type;
        // (offset of an f16 field in the block, lowest f16 exponent, highest f16 exponent).
        // Exponents are chosen so that |weight| stays well below 1 for the largest quant and
        // sub-scale values of the type (layouts: ggml-common.h).
        let q = |block, scales| Ok(BlockKind::Quant { block, scales });
        match ty {
            GgmlType::F32 if t.name.ends_with(".ssm_a") => Ok(BlockKind::F32Negative),
            GgmlType::F32 if t.name.contains("norm") => Ok(BlockKind::F32Norm),
            GgmlType::F32 => Ok(BlockKind::F32Small),
            GgmlType::F16 => Ok(BlockKind::F16),
            GgmlType::BF16 => Ok(BlockKind::BF16),
            GgmlType::MXFP4 => Ok(BlockKind::Mxfp4),
            // block_q8_0 {d; qs[32]}: |q| ≤ 127.
            GgmlType::Q8_0 => q(34, &[(0, 2, 3)]),
            // block_q4_0 {d; qs[16]}, block_iq4_nl {d; qs[16]}: |q-8| ≤ 8, |iq4 value| ≤ 127.
            GgmlType::Q4_0 => q(18, &[(0, 5, 6)]),
            GgmlType::IQ4_NL => q(18, &[(0, 2, 3)]),
            // block_q4_1 {d; m; qs[16]}, block_q5_1 {d; m; qh[4]; qs[16]}.
            GgmlType::Q4_1 => q(20, &[(0, 5, 6), (2, 3, 4)]),
            GgmlType::Q5_1 => q(24, &[(0, 4, 5), (2, 3, 4)]),
            // block_q5_0 {d; qh[4]; qs[16]}: |q-16| ≤ 16.
            GgmlType::Q5_0 => q(22, &[(0, 4, 5)]),
            // block_q2_K {scales[16]; qs[64]; d; dmin}: scale ≤ 15, q ≤ 3.
            GgmlType::Q2_K => q(84, &[(80, 4, 5), (82, 4, 5)]),
            // block_q3_K {hmask[32]; qs[64]; scales[12]; d}: |scale| ≤ 32, |q| ≤ 4.
            GgmlType::Q3_K => q(110, &[(108, 2, 3)]),
            // block_q4_K {d; dmin; scales[12]; qs[128]}: scale ≤ 63, q ≤ 15.
            GgmlType::Q4_K => q(144, &[(0, 1, 2), (2, 1, 2)]),
            // block_q5_K {d; dmin; scales[12]; qh[32]; qs[128]}: scale ≤ 63, q ≤ 31.
            GgmlType::Q5_K => q(176, &[(0, 1, 1), (2, 1, 1)]),
            // block_q6_K {ql[128]; qh[64]; scales[16] (i8); d}: |scale| ≤ 128, |q| ≤ 32.
            GgmlType::Q6_K => q(210, &[(208, 1, 1)]),
            // block_iq4_xs {d; scales_h; scales_l[4]; qs[128]}.
            GgmlType::IQ4_XS => q(136, &[(0, 1, 2)]),
            other => Err(GgufError::Invalid(format!(
                "tensor {}: placer synth cannot make random data of type {other} \
                 (supported: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K iq4_nl iq4_xs mxfp4)",
                t.name
            ))),
        }
    }

    /// Bytes of the smallest unit that `fill` handles (a block, or one element).
    fn unit_bytes(self) -> u64 {
        match self {
            BlockKind::F32Small | BlockKind::F32Norm | BlockKind::F32Negative => 4,
            BlockKind::F16 | BlockKind::BF16 => 2,
            BlockKind::Quant { block, .. } => block,
            BlockKind::Mxfp4 => 17,
        }
    }

    /// Fill `buf` (a whole number of units) with valid random content.
    fn fill(self, buf: &mut [u8], rng: &mut Rng) {
        match self {
            BlockKind::F32Small => fill_u32(buf, rng, |r| {
                // sign | exponent 115..=122 (2^-12..2^-5) | mantissa: |x| < 0.0625.
                (r & 0x8000_0000) | ((115 + ((r >> 23) & 7)) << 23) | (r & 0x7F_FFFF)
            }),
            BlockKind::F32Norm => fill_u32(buf, rng, |r| 0x3F80_0000 | (r & 0x7_FFFF)),
            BlockKind::F32Negative => fill_u32(buf, rng, |r| 0xBF00_0000 | (r & 0x7F_FFFF)),
            BlockKind::F16 => fill_u16(buf, rng, |r| {
                // sign | exponent 3..=10 (2^-12..2^-5) | mantissa.
                (r & 0x8000) | ((3 + ((r >> 10) & 7)) << 10) | (r & 0x3FF)
            }),
            BlockKind::BF16 => fill_u16(buf, rng, |r| {
                (r & 0x8000) | ((115 + ((r >> 7) & 7)) << 7) | (r & 0x7F)
            }),
            BlockKind::Quant { block, scales } => {
                rng.fill_bytes(buf);
                for b in buf.chunks_exact_mut(block as usize) {
                    for &(off, lo, hi) in scales {
                        let r = rng.next() as u16;
                        let e = lo + r % (hi - lo + 1);
                        let h = (e << 10) | ((r >> 4) & 0x3FF);
                        b[off..off + 2].copy_from_slice(&h.to_le_bytes());
                    }
                }
            }
            BlockKind::Mxfp4 => {
                rng.fill_bytes(buf);
                for b in buf.chunks_exact_mut(17) {
                    // E8M0 118..=121: block scale 2^-9..2^-6 (values up to 6 · 2^-6 < 0.1).
                    b[0] = 118 + (b[0] & 3);
                }
            }
        }
    }
}

fn fill_u32(buf: &mut [u8], rng: &mut Rng, f: impl Fn(u32) -> u32) {
    for c in buf.chunks_exact_mut(4) {
        c.copy_from_slice(&f(rng.next() as u32).to_le_bytes());
    }
}

fn fill_u16(buf: &mut [u8], rng: &mut Rng, f: impl Fn(u16) -> u16) {
    for c in buf.chunks_exact_mut(4) {
        let r = rng.next();
        c[..2].copy_from_slice(&f(r as u16).to_le_bytes());
        c[2..].copy_from_slice(&f((r >> 16) as u16).to_le_bytes());
    }
    let rest = buf.chunks_exact_mut(4).into_remainder();
    if rest.len() == 2 {
        rest.copy_from_slice(&f(rng.next() as u16).to_le_bytes());
    }
}

/// SplitMix64 finaliser: decorrelates nearby seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// wyrand: small and fast; quality is irrelevant here beyond "not all zero, not periodic".
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xE703_7ED1_A0B4_28DB) as u128);
        ((t >> 64) ^ t) as u64
    }
    fn fill_bytes(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let r = self.next().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&r[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ti(name: &str, dims: &[u64], ty: GgmlType) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type: ty,
            offset: 0,
            nbytes: 0,
            size_from_offsets: false,
            shard: 0,
        }
    }

    fn f16_to_f32(h: u16) -> f32 {
        let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let e = ((h >> 10) & 0x1F) as i32;
        let m = (h & 0x3FF) as f32;
        match e {
            0 => s * m * 2f32.powi(-24),
            31 => f32::NAN,
            _ => s * (1.0 + m / 1024.0) * 2f32.powi(e - 15),
        }
    }

    #[test]
    fn offsets_are_contiguous_and_aligned() {
        let t = with_offsets(
            &[
                ti("a", &[3], GgmlType::F32),
                ti("b", &[64, 2], GgmlType::Q8_0),
            ],
            32,
        )
        .unwrap();
        assert_eq!(t[0].offset, 0);
        assert_eq!(t[0].nbytes, 12);
        assert_eq!(t[1].offset, 32);
        assert_eq!(t[1].nbytes, 4 * 34);
    }

    #[test]
    fn bad_row_length_is_an_error_not_a_panic() {
        assert!(with_offsets(&[ti("x", &[33], GgmlType::Q8_0)], 32).is_err());
    }

    #[test]
    fn quant_scales_are_small_positive_finite() {
        for (ty, dims) in [
            (GgmlType::Q8_0, 32u64),
            (GgmlType::Q4_K, 256),
            (GgmlType::Q5_K, 256),
            (GgmlType::Q6_K, 256),
            (GgmlType::Q2_K, 256),
            (GgmlType::Q3_K, 256),
            (GgmlType::Q4_0, 32),
            (GgmlType::Q5_0, 32),
        ] {
            let t = ti("w.weight", &[dims * 64], ty);
            let kind = BlockKind::for_tensor(&t).unwrap();
            let BlockKind::Quant { block, scales } = kind else {
                panic!()
            };
            let mut buf = vec![0u8; (block * 64) as usize];
            kind.fill(&mut buf, &mut Rng::new(1));
            assert!(buf.iter().any(|&b| b != 0));
            for b in buf.chunks_exact(block as usize) {
                for &(off, _, _) in scales {
                    let v = f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]));
                    assert!(v.is_finite() && v > 0.0 && v < 1e-2, "{ty}: scale {v}");
                }
            }
        }
    }

    #[test]
    fn float_fills_are_finite_and_not_zero() {
        let mut buf = vec![0u8; 4096];
        BlockKind::F16.fill(&mut buf, &mut Rng::new(3));
        for c in buf.chunks_exact(2) {
            let v = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            assert!(v.is_finite() && v != 0.0 && v.abs() < 0.07);
        }
        BlockKind::F32Small.fill(&mut buf, &mut Rng::new(3));
        for c in buf.chunks_exact(4) {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            assert!(v.is_finite() && v != 0.0 && v.abs() < 0.07);
        }
        BlockKind::BF16.fill(&mut buf, &mut Rng::new(3));
        for c in buf.chunks_exact(2) {
            let v = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            assert!(v.is_finite() && v != 0.0 && v.abs() < 0.07);
        }
        BlockKind::F32Negative.fill(&mut buf, &mut Rng::new(3));
        for c in buf.chunks_exact(4) {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            assert!(v < -0.4 && v > -1.0);
        }
    }

    #[test]
    fn mxfp4_exponent_is_sane() {
        let mut buf = vec![0u8; 17 * 100];
        BlockKind::Mxfp4.fill(&mut buf, &mut Rng::new(9));
        for b in buf.chunks_exact(17) {
            assert!((118..=121).contains(&b[0]));
        }
    }
}
