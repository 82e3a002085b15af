//! Building an `Anatomy` from a GGUF header. OWNER: anatomy helper. Stub.
use super::Anatomy;
use crate::gguf::GgufModel;

pub fn from_gguf(_model: &GgufModel) -> anyhow::Result<Anatomy> {
    anyhow::bail!("anatomy not implemented yet")
}
