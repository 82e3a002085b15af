//! The tokenizer metadata of a vocab GGUF (`models/ggml-vocab-*.gguf` in the llama.cpp tree),
//! padded to the model's vocab size.
//!
//! placer keeps one such file, gzip-compressed, in models/vocab/ so that `synth` works on a
//! machine without the llama.cpp sources. A vocab GGUF has no tensors, so reading its key/value
//! section is all that is needed; this small reader does only that (the project's full reader
//! is `crate::gguf`).

use crate::gguf::{MetaValue, Metadata};
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// `llama_token_type::LLAMA_TOKEN_TYPE_UNUSED`: what `convert_hf_to_gguf.py` gives `[PAD{i}]`.
const TOKEN_TYPE_UNUSED: i32 = 5;

/// The `tokenizer.*` entries of a vocab GGUF (`.gguf` or `.gguf.gz`).
pub fn load_tokenizer(path: &Path) -> Result<Metadata> {
    let raw =
        std::fs::read(path).with_context(|| format!("reading vocab file {}", path.display()))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {}", path.display()))?;
        out
    } else {
        raw
    };
    let all = parse_metadata(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Metadata {
        entries: all
            .entries
            .into_iter()
            .filter(|(k, _)| k.starts_with("tokenizer."))
            .collect(),
        ..Metadata::default()
    })
}

/// Pad the token list (and its parallel arrays) to `n_vocab` with `[PAD{i}]` tokens of type
/// UNUSED, as `conversion/base.py: TextModel.get_vocab_base` does when the model's vocab is
/// larger than the tokenizer's. llama.cpp needs token count == `token_embd` rows.
pub fn pad_to(tok: &mut Metadata, n_vocab: u64) -> Result<()> {
    let n = match tok.get("tokenizer.ggml.tokens") {
        Some(MetaValue::Array(_, v)) => v.len() as u64,
        _ => bail!("vocab file has no tokenizer.ggml.tokens"),
    };
    if n > n_vocab {
        bail!("the vocab file has {n} tokens, more than the model's vocab size {n_vocab}");
    }
    for (k, v) in tok.entries.iter_mut() {
        let MetaValue::Array(_, items) = v else {
            continue;
        };
        match k.as_str() {
            "tokenizer.ggml.tokens" => {
                items.extend((n..n_vocab).map(|i| MetaValue::Str(format!("[PAD{i}]"))))
            }
            "tokenizer.ggml.token_type" => {
                items.extend((n..n_vocab).map(|_| MetaValue::I32(TOKEN_TYPE_UNUSED)))
            }
            "tokenizer.ggml.scores" => items.extend((n..n_vocab).map(|_| MetaValue::F32(0.0))),
            _ => {}
        }
    }
    Ok(())
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            bail!("truncated at offset {}", self.pos)
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn value(&mut self, ty: u32) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.take(1)?[0]),
            1 => MetaValue::I8(self.take(1)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.take(2)?.try_into()?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.take(2)?.try_into()?)),
            4 => MetaValue::U32(self.u32()?),
            5 => MetaValue::I32(self.u32()? as i32),
            6 => MetaValue::F32(f32::from_bits(self.u32()?)),
            7 => MetaValue::Bool(self.take(1)?[0] != 0),
            8 => MetaValue::Str(self.string()?),
            9 => {
                let elem = self.u32()?;
                let n = self.u64()?;
                // Each element takes at least one byte: bound the allocation by what is left.
                if n > (self.b.len() - self.pos) as u64 {
                    bail!("array of {n} elements cannot fit in the file");
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(elem)?);
                }
                MetaValue::Array(elem, v)
            }
            10 => MetaValue::U64(self.u64()?),
            11 => MetaValue::I64(self.u64()? as i64),
            12 => MetaValue::F64(f64::from_bits(self.u64()?)),
            t => bail!("unknown metadata value type {t}"),
        })
    }
}

fn parse_metadata(b: &[u8]) -> Result<Metadata> {
    let mut c = Cursor { b, pos: 0 };
    if c.take(4)? != b"GGUF" {
        bail!("not a GGUF file");
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        bail!("GGUF version {version} not supported");
    }
    let _n_tensors = c.u64()?;
    let n_kv = c.u64()?;
    let mut md = Metadata::default();
    for _ in 0..n_kv {
        let key = c.string()?;
        let ty = c.u32()?;
        md.entries.push((key, c.value(ty)?));
    }
    Ok(md)
}
