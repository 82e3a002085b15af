//! A tiny hand-written GGUF byte builder for the reader tests. Deliberately independent of
//! placer's own writer (src/gguf/writer.rs) so the reader is not tested against itself.
#![allow(dead_code)]

pub const F32: u32 = 0;
pub const Q4_K: u32 = 12;

/// One metadata value as raw bytes: (type id, encoded value).
pub enum Val {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(&'static str),
    U64(u64),
    I64(i64),
    F64(f64),
    /// element type id and the encoded elements (already concatenated), element count.
    Arr(u32, u64, Vec<u8>),
    /// Anything else: a raw type id and raw bytes after it.
    Raw(u32, Vec<u8>),
}

pub fn s(x: &str) -> Vec<u8> {
    let mut v = (x.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(x.as_bytes());
    v
}

impl Val {
    pub fn encode(&self) -> (u32, Vec<u8>) {
        match self {
            Val::U8(x) => (0, x.to_le_bytes().to_vec()),
            Val::I8(x) => (1, x.to_le_bytes().to_vec()),
            Val::U16(x) => (2, x.to_le_bytes().to_vec()),
            Val::I16(x) => (3, x.to_le_bytes().to_vec()),
            Val::U32(x) => (4, x.to_le_bytes().to_vec()),
            Val::I32(x) => (5, x.to_le_bytes().to_vec()),
            Val::F32(x) => (6, x.to_le_bytes().to_vec()),
            Val::Bool(x) => (7, vec![*x as u8]),
            Val::Str(x) => (8, s(x)),
            Val::U64(x) => (10, x.to_le_bytes().to_vec()),
            Val::I64(x) => (11, x.to_le_bytes().to_vec()),
            Val::F64(x) => (12, x.to_le_bytes().to_vec()),
            Val::Arr(t, n, b) => {
                let mut v = t.to_le_bytes().to_vec();
                v.extend_from_slice(&n.to_le_bytes());
                v.extend_from_slice(b);
                (9, v)
            }
            Val::Raw(t, b) => (*t, b.clone()),
        }
    }
}

pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub ty: u32,
    pub offset: u64,
}

pub struct Hdr {
    pub version: u32,
    pub kvs: Vec<(String, Val)>,
    pub tensors: Vec<Tensor>,
    /// Override the counts written (to test lies).
    pub n_tensors: Option<i64>,
    pub n_kv: Option<i64>,
}

impl Default for Hdr {
    fn default() -> Self {
        Hdr {
            version: 3,
            kvs: vec![],
            tensors: vec![],
            n_tensors: None,
            n_kv: None,
        }
    }
}

impl Hdr {
    pub fn kv(mut self, k: &str, v: Val) -> Self {
        self.kvs.push((k.to_string(), v));
        self
    }
    pub fn tensor(mut self, name: &str, dims: &[i64], ty: u32, offset: u64) -> Self {
        self.tensors.push(Tensor {
            name: name.into(),
            dims: dims.to_vec(),
            ty,
            offset,
        });
        self
    }
    /// Header bytes up to the end of the tensor infos (no padding, no data).
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(
            &self
                .n_tensors
                .unwrap_or(self.tensors.len() as i64)
                .to_le_bytes(),
        );
        b.extend_from_slice(&self.n_kv.unwrap_or(self.kvs.len() as i64).to_le_bytes());
        for (k, v) in &self.kvs {
            b.extend(s(k));
            let (t, enc) = v.encode();
            b.extend_from_slice(&t.to_le_bytes());
            b.extend(enc);
        }
        for t in &self.tensors {
            b.extend(s(&t.name));
            b.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&t.ty.to_le_bytes());
            b.extend_from_slice(&t.offset.to_le_bytes());
        }
        b
    }
    /// A full file: header, padding to 32, then `data` bytes.
    pub fn file(&self, data: usize) -> Vec<u8> {
        let mut b = self.bytes();
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        b.extend(std::iter::repeat_n(0x5a, data));
        b
    }
}

/// A small valid model header: llama-like, two tensors, a few value types.
pub fn small_model() -> Hdr {
    Hdr::default()
        .kv("general.architecture", Val::Str("llama"))
        .kv("llama.block_count", Val::U32(1))
        .kv("llama.rope.freq_base", Val::F32(10000.0))
        .kv(
            "tokenizer.ggml.tokens",
            Val::Arr(8, 2, [s("a"), s("bc")].concat()),
        )
        .tensor("token_embd.weight", &[256, 4], Q4_K, 0)
        .tensor("blk.0.attn_norm.weight", &[256], F32, 576)
}
