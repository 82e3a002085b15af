//! GGUF header reader.
//!
//! Follows `ggml/src/gguf.cpp:gguf_init_from_reader` of the llama.cpp tree placer targets, with
//! two deliberate differences: a tensor type id the table does not know is sized from the
//! offsets and flagged (llama.cpp refuses the file), and the data section is never read, so a
//! header-only snapshot reads like the real file.
//!
//! Bounded by construction: every count and length is checked against llama.cpp's limits and,
//! when the stream's size is known, against the bytes that remain, before anything is
//! allocated; when the size is not known, buffers grow only as bytes actually arrive.

use super::{GgmlType, GgufError, GgufModel, MetaValue, Metadata, Shard, TensorInfo};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::units::shown;

/// `GGUF_MAX_STRING_LENGTH` (`ggml/src/gguf.cpp`).
pub const MAX_STRING_LENGTH: u64 = 1024 * 1024 * 1024;
/// `GGUF_MAX_ARRAY_ELEMENTS` (`ggml/src/gguf.cpp`).
pub const MAX_ARRAY_ELEMENTS: u64 = 1024 * 1024 * 1024;
/// `GGML_MAX_DIMS` (`ggml/include/ggml.h`).
pub const MAX_DIMS: u32 = 4;
/// `GGML_MAX_NAME` (`ggml/include/ggml.h`): tensor names must be shorter.
pub const MAX_NAME: u64 = 64;
/// `GGUF_DEFAULT_ALIGNMENT` (`ggml/include/gguf.h`).
const DEFAULT_ALIGNMENT: u64 = 32;
/// Metadata key a header-only snapshot uses for the size of the real file (see writer.rs).
const FILE_SIZE_KEY: &str = "placer.file_size";

const MAGIC: &[u8; 4] = b"GGUF";
/// Characters of a file-derived key or name kept in an error message (`units::shown`).
const SHOWN_KEY: usize = 80;
const ARRAY_TYPE: u32 = 9;
/// Smallest possible tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;
/// Smallest possible KV pair: key length (8) + 1 key byte + type (4) + 1 value byte.
const MIN_KV_BYTES: u64 = 14;
/// Strings up to this length are allocated up front even when the stream size is unknown.
const EAGER_STRING: u64 = 64 * 1024;
/// Read buffer: skipped strings are walked inside it without copying.
const READ_BUFFER: usize = 1 << 16;
/// Largest chunk read (and discarded) at a time when skipping bytes.
const SKIP_CHUNK: u64 = 64 * 1024;

/// Arrays longer than this are skipped when `ReadOptions::keep_large_arrays` is false.
///
/// Every array llama.cpp reads as a hyperparameter is bounded by `LLAMA_MAX_LAYERS` (512) or
/// `LLAMA_MAX_EXPERTS` (1024) (`src/llama-hparams.h`; `llama_model_loader::get_arr` /
/// `get_key_or_arr` into `std::array<T, N_MAX>`), so no such array is ever skipped; the arrays
/// that are longer are the vocab-sized tokenizer lists (`tokenizer.ggml.tokens`, `merges`,
/// `scores`, `token_type`), which only the tokenizer reads.
pub const LARGE_ARRAY: u64 = 4096;

/// How much of a header to materialize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Read the elements of arrays longer than [`LARGE_ARRAY`] (the tokenizer lists). When
    /// false they are walked and bounds-checked like any value but not kept: the entry holds
    /// `MetaValue::Array(elem, vec![])` and `Metadata::skipped_arrays` records the length.
    /// Placement (anatomy, inspect, memory, solve) needs only the lengths; a 650k-string
    /// tokenizer costs ~90 ms to materialize (docs/benchmarks.md, "Header read").
    pub keep_large_arrays: bool,
}

impl Default for ReadOptions {
    /// Everything, so that the header can be written back unchanged.
    fn default() -> Self {
        ReadOptions {
            keep_large_arrays: true,
        }
    }
}

impl ReadOptions {
    /// What placement needs: every value except the elements of the large tokenizer arrays.
    pub const SUMMARY: ReadOptions = ReadOptions {
        keep_large_arrays: false,
    };
}

/// Read one GGUF header (one shard) from a stream positioned at the file start.
///
/// The stream's length is unknown here, so a tensor of unknown type that is the last in the
/// file can only be sized when the header carries `placer.file_size`; use [`open`] for files.
pub fn read_header<R: Read>(r: R) -> Result<GgufModel, GgufError> {
    read_shard(r, None, None, ReadOptions::default())
}

/// What a prefix of a file says: the header, or how many bytes of the file it needs at least.
#[derive(Debug, Clone, PartialEq)]
pub enum Prefix {
    /// The whole header (metadata and tensor table) was in the prefix.
    Complete(GgufModel),
    /// The header goes on past the prefix: read at least this many bytes from the file start.
    NeedMore(u64),
}

/// Read one shard's header from the first `prefix.len()` bytes of a file of `file_size` bytes
/// (a remote file read by ranges): the same parser and checks as [`open`], with the file's size
/// known. When the header runs past the prefix the answer is [`Prefix::NeedMore`]; a header
/// that runs past the end of the file itself is the usual [`GgufError::Truncated`].
pub fn parse_prefix(prefix: &[u8], file_size: u64, opts: ReadOptions) -> Result<Prefix, GgufError> {
    let have = prefix.len() as u64;
    if have > file_size {
        return Err(GgufError::Invalid(format!(
            "{have} bytes read from a file of {file_size} bytes"
        )));
    }
    match read_shard_from(prefix, Some(file_size), Some(have), None, opts) {
        Ok(m) => Ok(Prefix::Complete(m)),
        Err(GgufError::Truncated { offset, needed, .. }) if have < file_size => Ok(
            Prefix::NeedMore(offset.saturating_add(needed).clamp(have + 1, file_size)),
        ),
        Err(e) => Err(e),
    }
}

/// Open a model file; for a split model given any shard, read every shard's header.
pub fn open(path: &Path) -> Result<GgufModel, GgufError> {
    open_with(path, ReadOptions::default())
}

/// [`open`] with a choice of what to materialize (see [`ReadOptions`]). Validation is the
/// same either way: skipped arrays are still walked element by element and bounds-checked.
pub fn open_with(path: &Path, opts: ReadOptions) -> Result<GgufModel, GgufError> {
    open_split(path, |p, idx| {
        if idx > 0 && !p.exists() {
            return Err(GgufError::MissingShard(idx as u32 + 1, p.to_path_buf()));
        }
        read_file(p, opts)
    })
}

/// Assemble a (possibly split) model from the headers `read(name, index)` returns for each
/// shard name, given the name of any shard (a path, or a URL: only its last `/` part is the
/// file name). The checks are the same wherever the bytes come from: the shard names
/// ([`shard_paths`]), `split.count`, and the cross-shard rules of `merge_shards`.
pub fn open_split<E, F>(path: &Path, mut read: F) -> Result<GgufModel, E>
where
    E: From<GgufError>,
    F: FnMut(&Path, usize) -> Result<GgufModel, E>,
{
    let paths = shard_paths(path);
    let first = read(&paths[0], 0)?;
    let declared = split_count(&first.metadata, &paths[0])?;
    if declared <= 1 {
        if paths.len() > 1 {
            return Err(GgufError::Invalid(format!(
                "{} is named like shard 1 of {} but its header has no split.count; \
                 rename it without the -0000k-of-0000n suffix",
                paths[0].display(),
                paths.len()
            ))
            .into());
        }
        return Ok(first);
    }
    if paths.len() == 1 {
        return Err(GgufError::Invalid(format!(
            "{} declares split.count = {declared} but its name does not end in \
             -00001-of-{declared:05}.gguf; restore the split file names \
             (llama.cpp finds the other shards by name)",
            path.display()
        ))
        .into());
    }
    if paths.len() != declared as usize {
        return Err(GgufError::Invalid(format!(
            "invalid split count: the file name says {} shards, split.count says {declared}",
            paths.len()
        ))
        .into());
    }
    check_split_no(&first.metadata, 0, &paths[0])?;
    let mut shards = vec![first];
    for (idx, p) in paths.iter().enumerate().skip(1) {
        let shard = read(p, idx)?;
        check_split_no(&shard.metadata, idx, p)?;
        shards.push(shard);
    }
    Ok(merge_shards(shards, &paths)?)
}

/// All shard paths of a split model given any one of them (a single path for unsplit files).
///
/// Pattern `PREFIX-%05d-of-%05d.gguf` with a 1-based index (`src/llama.cpp:llama_split_path`,
/// `llama_split_prefix`).
pub fn shard_paths(path: &Path) -> Vec<PathBuf> {
    match split_name(path) {
        Some((prefix, _, count)) if count >= 1 => (1..=count)
            .map(|k| {
                let name = format!("{prefix}-{k:05}-of-{count:05}.gguf");
                path.with_file_name(name)
            })
            .collect(),
        _ => vec![path.to_path_buf()],
    }
}

/// (prefix, 1-based index, count) of a split file name, if it follows the pattern.
fn split_name(path: &Path) -> Option<(String, u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, index) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() >= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if prefix.is_empty() || !digits(index) || !digits(count) {
        return None;
    }
    let (index, count) = (index.parse().ok()?, count.parse().ok()?);
    (1..=count)
        .contains(&index)
        .then(|| (prefix.to_string(), index, count))
}

/// `split.count` (u16 in llama.cpp; any integer accepted here), 0 when absent.
fn split_count(md: &Metadata, path: &Path) -> Result<u32, GgufError> {
    match md.get("split.count") {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid_key(path, "split.count", v)),
    }
}

fn invalid_key(path: &Path, key: &str, v: &MetaValue) -> GgufError {
    GgufError::Invalid(format!(
        "{}: key {key} has an invalid value {}",
        path.display(),
        shown(&format!("{v:?}"), SHOWN_KEY)
    ))
}

/// Merge shards read in order and check them like `src/llama-model-loader.cpp:llama_model_loader`:
/// every shard carries `split.no` equal to its index (checked as each is read), tensor names
/// are unique across shards, and `split.tensors.count` equals the number found.
fn merge_shards(shards: Vec<GgufModel>, paths: &[PathBuf]) -> Result<GgufModel, GgufError> {
    let mut it = shards.into_iter();
    let mut model = it.next().expect("at least one shard");
    for (idx, shard) in it.enumerate() {
        model.shards.extend(shard.shards);
        model
            .tensors
            .extend(shard.tensors.into_iter().map(|t| TensorInfo {
                shard: idx + 1,
                ..t
            }));
    }
    let mut seen = HashSet::new();
    if let Some(t) = model.tensors.iter().find(|t| !seen.insert(t.name.as_str())) {
        return Err(GgufError::Invalid(format!(
            "tensor '{}' appears in more than one shard",
            shown(&t.name, SHOWN_KEY)
        )));
    }
    if let Some(v) = model.metadata.get("split.tensors.count") {
        let expected = v
            .as_u64()
            .ok_or_else(|| invalid_key(&paths[0], "split.tensors.count", v))?;
        if expected != model.tensors.len() as u64 {
            return Err(GgufError::Invalid(format!(
                "corrupted model: {expected} tensors expected but {} found in {} shards",
                model.tensors.len(),
                paths.len()
            )));
        }
    }
    Ok(model)
}

fn check_split_no(md: &Metadata, idx: usize, path: &Path) -> Result<(), GgufError> {
    let v = md.get("split.no").ok_or_else(|| {
        GgufError::Invalid(format!(
            "missing key split.no in GGUF split {}",
            path.display()
        ))
    })?;
    match v.as_u64() {
        Some(n) if n == idx as u64 => Ok(()),
        Some(n) => Err(GgufError::Invalid(format!(
            "invalid split file idx: {n} (file: {}), expected {idx}",
            path.display()
        ))),
        None => Err(invalid_key(path, "split.no", v)),
    }
}

/// Read one file's header with a buffered reader; the file's size bounds every allocation.
fn read_file(path: &Path, opts: ReadOptions) -> Result<GgufModel, GgufError> {
    let io = |error| GgufError::Io {
        path: path.to_path_buf(),
        error,
    };
    // A FIFO or a device would block or never end: refuse it before opening (stat only).
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() && !m.is_dir() {
            return Err(io(std::io::Error::other(
                "not a regular file (a FIFO, device or socket); give the path of a .gguf file",
            )));
        }
    }
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(GgufError::Invalid(format!(
            "{} is a directory: give the .gguf file (for a split model, any of its shards)",
            path.display()
        )));
    }
    let size = meta.len();
    read_shard(file, Some(size), Some(path), opts)
}

/// Read one shard. `size`: the stream's total length when known.
fn read_shard<R: Read>(
    r: R,
    size: Option<u64>,
    path: Option<&Path>,
    opts: ReadOptions,
) -> Result<GgufModel, GgufError> {
    read_shard_from(r, size, size, path, opts)
}

/// [`read_shard`] where only the first `have` bytes of the `size`-byte file are at hand (a
/// prefix of a remote file): `size` bounds the counts and sizes the tensors like the file's
/// own length does, `have` bounds what is allocated before the bytes arrive.
fn read_shard_from<R: Read>(
    r: R,
    size: Option<u64>,
    have: Option<u64>,
    path: Option<&Path>,
    opts: ReadOptions,
) -> Result<GgufModel, GgufError> {
    let mut c = Cursor {
        r: BufReader::with_capacity(READ_BUFFER, r),
        pos: 0,
        size,
        have,
        path,
        scratch: Vec::new(),
    };
    let version = read_preamble(&mut c)?;
    let n_tensors = c.count("tensor count", MIN_TENSOR_INFO_BYTES)?;
    let n_kv = c.count("key-value count", MIN_KV_BYTES)?;
    let metadata = read_metadata(&mut c, n_kv, opts)?;
    let alignment = alignment(&metadata)?;
    let raw = read_tensor_infos(&mut c, n_tensors)?;
    // gguf_init_from_reader pads to the alignment only when there are tensors.
    let data_offset = if n_tensors > 0 {
        pad(c.pos, alignment).ok_or_else(|| overflow("data section offset"))?
    } else {
        c.pos
    };
    let real_size = metadata.get_u64(FILE_SIZE_KEY).or(size);
    let data_len = real_size.map(|s| s.saturating_sub(data_offset));
    let tensors = size_tensors(raw, alignment, data_len)?;
    let shard = Shard {
        path: path.map(Path::to_path_buf),
        version,
        alignment,
        data_offset,
        file_size: size,
        n_tensors,
    };
    Ok(GgufModel {
        metadata,
        tensors,
        shards: vec![shard],
    })
}

/// Magic and version (`gguf_init_from_reader`, "file magic" and "header").
fn read_preamble<R: Read>(c: &mut Cursor<'_, R>) -> Result<u32, GgufError> {
    let magic: [u8; 4] = c.array("magic")?;
    if &magic != MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = c.u32("version")?;
    // 0, 1, > 3, and the byte-swapped encodings of big-endian files are all refused.
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    Ok(version)
}

fn read_metadata<R: Read>(
    c: &mut Cursor<'_, R>,
    n_kv: u64,
    opts: ReadOptions,
) -> Result<Metadata, GgufError> {
    let mut entries = Vec::with_capacity(c.capacity(n_kv, MIN_KV_BYTES));
    let mut skipped_arrays = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..n_kv {
        let key = c.string(&format!("key of metadata pair {i}"), MAX_STRING_LENGTH)?;
        if key.is_empty() {
            return Err(GgufError::Invalid(format!("key {i} is empty")));
        }
        // Errors name the key as read from the file: escaped and capped (a flipped byte in a
        // key length makes the "key" megabytes of tensor data).
        let name = format!("'{}' (metadata pair {i})", shown(&key, SHOWN_KEY));
        if !seen.insert(key.clone()) {
            return Err(GgufError::Invalid(format!("duplicate key {name}")));
        }
        let ty = c.u32(&format!("value type of {name}"))?;
        let value = if ty == ARRAY_TYPE {
            let (value, skipped) = read_array(c, &name, opts)?;
            if let Some(n) = skipped {
                skipped_arrays.push((key.clone(), n));
            }
            value
        } else {
            check_type(ty, &name)?;
            read_value(c, ty, &name)?
        };
        entries.push((key, value));
    }
    Ok(Metadata {
        entries,
        skipped_arrays,
    })
}

/// Value types 0..=12 except ARRAY (`enum gguf_type`); anything else fails the load.
fn check_type(ty: u32, key: &str) -> Result<(), GgufError> {
    if ty > 12 || ty == ARRAY_TYPE {
        return Err(GgufError::Invalid(format!(
            "key {key} has invalid GGUF type {ty}"
        )));
    }
    Ok(())
}

/// Size in bytes of a scalar value type; strings count their 8-byte length prefix.
fn min_value_bytes(ty: u32) -> u64 {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        _ => 8,
    }
}

/// An array value; with `Some(length)` when its elements were skipped (see [`ReadOptions`]).
fn read_array<R: Read>(
    c: &mut Cursor<'_, R>,
    key: &str,
    opts: ReadOptions,
) -> Result<(MetaValue, Option<u64>), GgufError> {
    let ty = c.u32("array element type")?;
    // Nested arrays are refused like llama.cpp (its switch has no ARRAY case for elements).
    check_type(ty, key)?;
    let n = c.u64("array length")?;
    if n > MAX_ARRAY_ELEMENTS {
        return Err(overflow(&format!("array {key} length {n}")));
    }
    let need = n
        .checked_mul(min_value_bytes(ty))
        .ok_or_else(|| overflow(key))?;
    c.need(need, &format!("array {key}"))?;
    if !opts.keep_large_arrays && n > LARGE_ARRAY {
        skip_elements(c, ty, n, key)?;
        return Ok((MetaValue::Array(ty, Vec::new()), Some(n)));
    }
    let mut items = Vec::with_capacity(c.capacity(n, min_value_bytes(ty)));
    for _ in 0..n {
        items.push(read_value(c, ty, key)?);
    }
    Ok((MetaValue::Array(ty, items), None))
}

/// Walk past `n` elements of type `ty` with the same checks `read_value` makes, keeping nothing.
fn skip_elements<R: Read>(
    c: &mut Cursor<'_, R>,
    ty: u32,
    n: u64,
    key: &str,
) -> Result<(), GgufError> {
    if ty != 8 {
        // Fixed-size elements: the byte count was checked against the stream by the caller.
        return c.skip(n * min_value_bytes(ty), key);
    }
    let mut left = n;
    while left > 0 {
        // Fast path: strings wholly inside the read buffer (thousands per buffer fill).
        left -= c.skip_buffered_strings(left);
        if left == 0 {
            break;
        }
        // One string that crosses the buffer's end (this refills it), with every check.
        let len = c.u64(key)?;
        if len > MAX_STRING_LENGTH {
            return Err(overflow(&format!(
                "{key}: string length {len} exceeds maximum {MAX_STRING_LENGTH}"
            )));
        }
        c.skip(len, key)?;
        left -= 1;
    }
    Ok(())
}

fn read_value<R: Read>(c: &mut Cursor<'_, R>, ty: u32, key: &str) -> Result<MetaValue, GgufError> {
    Ok(match ty {
        0 => MetaValue::U8(u8::from_le_bytes(c.array(key)?)),
        1 => MetaValue::I8(i8::from_le_bytes(c.array(key)?)),
        2 => MetaValue::U16(u16::from_le_bytes(c.array(key)?)),
        3 => MetaValue::I16(i16::from_le_bytes(c.array(key)?)),
        4 => MetaValue::U32(u32::from_le_bytes(c.array(key)?)),
        5 => MetaValue::I32(i32::from_le_bytes(c.array(key)?)),
        6 => MetaValue::F32(f32::from_le_bytes(c.array(key)?)),
        // gguf_reader::read(bool&): an int8, any non-zero value is true.
        7 => MetaValue::Bool(i8::from_le_bytes(c.array(key)?) != 0),
        8 => MetaValue::Str(c.string(key, MAX_STRING_LENGTH)?),
        10 => MetaValue::U64(u64::from_le_bytes(c.array(key)?)),
        11 => MetaValue::I64(i64::from_le_bytes(c.array(key)?)),
        12 => MetaValue::F64(f64::from_le_bytes(c.array(key)?)),
        _ => {
            return Err(GgufError::Invalid(format!(
                "key {key} has invalid GGUF type {ty}"
            )))
        }
    })
}

/// `general.alignment`: must be a u32 power of two; default 32.
fn alignment(md: &Metadata) -> Result<u64, GgufError> {
    let a = match md.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(MetaValue::U32(a)) => *a as u64,
        Some(v) => {
            return Err(GgufError::Invalid(format!(
                "key 'general.alignment' must be of type u32 but is type {}",
                v.type_id()
            )))
        }
    };
    if !a.is_power_of_two() {
        return Err(GgufError::Invalid(format!(
            "alignment {a} is not a power of 2"
        )));
    }
    Ok(a)
}

/// A tensor info as stored, before sizing.
struct RawTensor {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    offset: u64,
}

fn read_tensor_infos<R: Read>(c: &mut Cursor<'_, R>, n: u64) -> Result<Vec<RawTensor>, GgufError> {
    let mut out = Vec::with_capacity(c.capacity(n, MIN_TENSOR_INFO_BYTES));
    let mut seen = HashSet::new();
    for i in 0..n {
        let t = read_tensor_info(c, i)?;
        if !seen.insert(t.name.clone()) {
            return Err(GgufError::Invalid(format!(
                "duplicate tensor name '{}' for tensor {i}",
                shown(&t.name, SHOWN_KEY)
            )));
        }
        out.push(t);
    }
    Ok(out)
}

fn read_tensor_info<R: Read>(c: &mut Cursor<'_, R>, i: u64) -> Result<RawTensor, GgufError> {
    let name = c
        .string(&format!("name of tensor {i}"), MAX_NAME - 1)
        .map_err(|e| match e {
            GgufError::Overflow(_) => GgufError::Invalid(format!(
                "tensor name {i} is too long (GGML_MAX_NAME is {MAX_NAME})"
            )),
            other => other,
        })?;
    // Names are at most 63 bytes; control characters are escaped in messages.
    let shown_name = shown(&name, SHOWN_KEY);
    let n_dims = c.u32("n_dims")?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::Invalid(format!(
            "tensor '{shown_name}' has invalid number of dimensions: {n_dims} > {MAX_DIMS}"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for j in 0..n_dims {
        let ne = c.i64("tensor dimension")?;
        let ne = u64::try_from(ne).map_err(|_| {
            GgufError::Invalid(format!(
                "tensor '{shown_name}' dimension {j} has invalid number of elements: {ne} < 0"
            ))
        })?;
        dims.push(ne);
    }
    // ggml_nelements must fit an int64_t.
    dims.iter()
        .try_fold(1i64, |acc, &d| acc.checked_mul(i64::try_from(d).ok()?))
        .ok_or_else(|| overflow(&format!("element count of tensor '{shown_name}' {dims:?}")))?;
    let ggml_type = GgmlType(c.u32("tensor type")?);
    let offset = c.u64("tensor offset")?;
    Ok(RawTensor {
        name,
        dims,
        ggml_type,
        offset,
    })
}

/// `ggml_nbytes` per tensor, and llama.cpp's strict contiguity check: tensor i starts at
/// Σ_{j<i} GGML_PAD(nbytes_j, alignment). A tensor of unknown type takes the span up to the next
/// tensor's offset (or to the end of the data section for the last one) and is flagged.
fn size_tensors(
    raw: Vec<RawTensor>,
    alignment: u64,
    data_len: Option<u64>,
) -> Result<Vec<TensorInfo>, GgufError> {
    let next_offsets: Vec<Option<u64>> = raw
        .iter()
        .skip(1)
        .map(|t| Some(t.offset))
        .chain([None])
        .collect();
    let mut expected = 0u64;
    let mut out = Vec::with_capacity(raw.len());
    for (t, next) in raw.into_iter().zip(next_offsets) {
        if t.offset != expected {
            return Err(GgufError::Invalid(format!(
                "tensor '{}' has offset {}, expected {expected}",
                shown(&t.name, SHOWN_KEY),
                t.offset
            )));
        }
        let (nbytes, from_offsets) = match known_nbytes(&t)? {
            Some(n) => (n, false),
            None => (span_from_offsets(&t, next, data_len)?, true),
        };
        let padded = if from_offsets {
            Some(nbytes)
        } else {
            pad(nbytes, alignment)
        };
        expected = padded
            .and_then(|p| expected.checked_add(p))
            .ok_or_else(|| {
                overflow(&format!(
                    "data section size at tensor '{}'",
                    shown(&t.name, SHOWN_KEY)
                ))
            })?;
        out.push(TensorInfo {
            name: t.name,
            dims: t.dims,
            ggml_type: t.ggml_type,
            offset: t.offset,
            nbytes,
            size_from_offsets: from_offsets,
            shard: 0,
        });
    }
    Ok(out)
}

/// `ggml_nbytes` from the type table; `None` when the type id is not known.
fn known_nbytes(t: &RawTensor) -> Result<Option<u64>, GgufError> {
    let Some(block) = t.ggml_type.block_size() else {
        return Ok(None);
    };
    let ne0 = t.dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(block) {
        return Err(GgufError::Invalid(format!(
            "tensor '{}' of type {} has {ne0} elements per row, not a multiple of block size ({block})",
            shown(&t.name, SHOWN_KEY),
            t.ggml_type
        )));
    }
    t.ggml_type.nbytes(&t.dims).map(Some).ok_or_else(|| {
        overflow(&format!(
            "size in bytes of tensor '{}' {:?}",
            shown(&t.name, SHOWN_KEY),
            t.dims
        ))
    })
}

fn span_from_offsets(
    t: &RawTensor,
    next: Option<u64>,
    data_len: Option<u64>,
) -> Result<u64, GgufError> {
    let end = next.or(data_len).ok_or_else(|| {
        GgufError::Invalid(format!(
            "tensor '{}' has type id {} which placer does not know, and it is the last tensor of a \
             stream of unknown size: open the file by path so its size can be taken from the offsets",
            shown(&t.name, SHOWN_KEY), t.ggml_type.0
        ))
    })?;
    end.checked_sub(t.offset).ok_or_else(|| {
        GgufError::Invalid(format!(
            "tensor '{}' (unknown type id {}) starts at data offset {} past the end {end}",
            shown(&t.name, SHOWN_KEY),
            t.ggml_type.0,
            t.offset
        ))
    })
}

/// `GGML_PAD` with overflow checking.
fn pad(n: u64, align: u64) -> Option<u64> {
    Some(n.checked_add(align - 1)? / align * align)
}

fn overflow(what: &str) -> GgufError {
    GgufError::Overflow(what.to_string())
}

/// A little-endian reader that knows its position and, when given, the stream's size.
struct Cursor<'p, R> {
    r: BufReader<R>,
    pos: u64,
    size: Option<u64>,
    /// Bytes known to be readable (the file's size, or the prefix at hand): bounds allocations.
    have: Option<u64>,
    path: Option<&'p Path>,
    /// Reused buffer for bytes that are skipped (at most `SKIP_CHUNK`).
    scratch: Vec<u8>,
}

impl<R: Read> Cursor<'_, R> {
    fn remaining(&self) -> Option<u64> {
        self.size.map(|s| s.saturating_sub(self.pos))
    }

    /// Fail early (before allocating) when the stream is known to be too short.
    fn need(&self, n: u64, what: &str) -> Result<(), GgufError> {
        match self.remaining() {
            Some(rem) if rem < n => Err(self.truncated(what, n)),
            _ => Ok(()),
        }
    }

    /// How many items to reserve room for: all of them when the bytes are known to be there,
    /// else a small number (the vector then grows only as items are actually read).
    fn capacity(&self, n: u64, min_bytes: u64) -> usize {
        let cap = match self.have.map(|h| h.saturating_sub(self.pos)) {
            Some(rem) => n.min(rem / min_bytes.max(1)),
            None => n.min(1024),
        };
        cap as usize
    }

    fn truncated(&self, what: &str, needed: u64) -> GgufError {
        GgufError::Truncated {
            what: what.to_string(),
            offset: self.pos,
            needed,
        }
    }

    fn io_err(&self, e: std::io::Error, what: &str, needed: u64) -> GgufError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return self.truncated(what, needed);
        }
        GgufError::Io {
            path: self.path.map(Path::to_path_buf).unwrap_or_default(),
            error: e,
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.need(N as u64, what)?;
        self.r
            .read_exact(&mut buf)
            .map_err(|e| self.io_err(e, what, N as u64))?;
        self.pos += N as u64;
        Ok(buf)
    }

    /// Skip up to `max` length-prefixed strings that lie wholly in the read buffer; returns how
    /// many. Bytes that are in the buffer are in the stream, so no bound can fail here; a string
    /// that is not wholly buffered is left to the checked path.
    fn skip_buffered_strings(&mut self, max: u64) -> u64 {
        let buf = self.r.buffer();
        let (mut at, mut done) = (0usize, 0u64);
        while done < max {
            let Some(head) = buf.get(at..at + 8) else {
                break;
            };
            let len = u64::from_le_bytes(head.try_into().expect("8 bytes"));
            match (at as u64 + 8).checked_add(len) {
                Some(end) if end <= buf.len() as u64 => at = end as usize,
                _ => break,
            }
            done += 1;
        }
        self.r.consume(at);
        self.pos += at as u64;
        done
    }

    /// Read past `len` bytes without keeping them (checked against the stream like a read).
    fn skip(&mut self, len: u64, what: &str) -> Result<(), GgufError> {
        self.need(len, what)?;
        let want = len.min(SKIP_CHUNK) as usize;
        if self.scratch.len() < want {
            self.scratch.resize(want, 0);
        }
        let mut left = len;
        while left > 0 {
            let k = left.min(SKIP_CHUNK) as usize;
            if let Err(e) = self.r.read_exact(&mut self.scratch[..k]) {
                return Err(self.io_err(e, what, len));
            }
            left -= k as u64;
        }
        self.pos += len;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64, GgufError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// An int64 count (n_tensors, n_kv): negative is an overflow, and when the stream size is
    /// known each item must fit in what remains.
    fn count(&mut self, what: &str, min_bytes: u64) -> Result<u64, GgufError> {
        let n = self.i64(what)?;
        let n = u64::try_from(n).map_err(|_| overflow(&format!("{what} {n} is negative")))?;
        let need = n
            .checked_mul(min_bytes)
            .ok_or_else(|| overflow(&format!("{what} {n}")))?;
        self.need(need, what)?;
        Ok(n)
    }

    /// A uint64-length-prefixed string, at most `max` bytes.
    fn string(&mut self, what: &str, max: u64) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > max {
            return Err(overflow(&format!(
                "{what}: string length {len} exceeds maximum {max}"
            )));
        }
        self.need(len, what)?;
        let in_hand = self.have.is_some_and(|h| h.saturating_sub(self.pos) >= len);
        let bytes = if len <= EAGER_STRING || in_hand {
            let mut buf = vec![0u8; len as usize];
            self.r
                .read_exact(&mut buf)
                .map_err(|e| self.io_err(e, what, len))?;
            buf
        } else {
            // Unknown stream size: let the buffer grow only with bytes that really arrive.
            let mut buf = Vec::new();
            (&mut self.r)
                .take(len)
                .read_to_end(&mut buf)
                .map_err(|e| self.io_err(e, what, len))?;
            if (buf.len() as u64) < len {
                return Err(self.truncated(what, len));
            }
            buf
        };
        self.pos += len;
        // llama.cpp keeps raw bytes (std::string); invalid UTF-8 is kept lossily here.
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
}
