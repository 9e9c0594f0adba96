//! Writing GGUF version 3: metadata with explicit types, tensor infos with
//! offsets computed up front, then each tensor's bytes streamed in order
//! (so a model never has to be held in memory twice).

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use glmhal_hal::output::AtomicFile;
use glmhal_hal::{HalError, Result};

use crate::gguf::{GgmlType, DEFAULT_ALIGNMENT, MAGIC};

/// A metadata value with the GGUF type it is written as.
#[derive(Clone, Debug, PartialEq)]
pub enum Meta {
    /// uint32.
    U32(u32),
    /// int32.
    I32(i32),
    /// float32.
    F32(f32),
    /// bool.
    Bool(bool),
    /// string.
    Str(String),
    /// array of strings.
    StrArray(Vec<String>),
    /// array of int32.
    I32Array(Vec<i32>),
}

/// A tensor to write: its name, type and shape (outermost first).
#[derive(Clone, Debug)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: GgmlType,
    /// Dims, outermost first (written innermost first).
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Bytes of its data.
    pub fn size(&self) -> Result<usize> {
        let (per_block, block_bytes) = self.ty.block().ok_or_else(|| {
            HalError::invalid(&self.name, format!("{} cannot be written", self.ty.name()))
        })?;
        let numel: usize = self.shape.iter().product();
        let inner = self.shape.last().copied().unwrap_or(1);
        if inner % per_block != 0 {
            return Err(HalError::invalid(
                &self.name,
                format!(
                    "rows of {inner} values are not whole {} blocks",
                    self.ty.name()
                ),
            ));
        }
        Ok(numel / per_block * block_bytes)
    }
}

fn string(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn meta(out: &mut impl Write, key: &str, value: &Meta) -> std::io::Result<()> {
    string(out, key)?;
    match value {
        Meta::U32(v) => {
            out.write_all(&4u32.to_le_bytes())?;
            out.write_all(&v.to_le_bytes())
        }
        Meta::I32(v) => {
            out.write_all(&5u32.to_le_bytes())?;
            out.write_all(&v.to_le_bytes())
        }
        Meta::F32(v) => {
            out.write_all(&6u32.to_le_bytes())?;
            out.write_all(&v.to_le_bytes())
        }
        Meta::Bool(v) => {
            out.write_all(&7u32.to_le_bytes())?;
            out.write_all(&[u8::from(*v)])
        }
        Meta::Str(s) => {
            out.write_all(&8u32.to_le_bytes())?;
            string(out, s)
        }
        Meta::StrArray(items) => {
            out.write_all(&9u32.to_le_bytes())?;
            out.write_all(&8u32.to_le_bytes())?;
            out.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|s| string(out, s))
        }
        Meta::I32Array(items) => {
            out.write_all(&9u32.to_le_bytes())?;
            out.write_all(&5u32.to_le_bytes())?;
            out.write_all(&(items.len() as u64).to_le_bytes())?;
            items
                .iter()
                .try_for_each(|v| out.write_all(&v.to_le_bytes()))
        }
    }
}

/// Writes a GGUF file: `metadata`, then `tensors`, whose bytes `data(i)`
/// returns for tensor `i` in order (checked against its size).
pub fn write(
    path: &Path,
    metadata: &[(String, Meta)],
    tensors: &[TensorSpec],
    mut data: impl FnMut(usize) -> Result<Cow<'static, [u8]>>,
) -> Result<()> {
    let ctx = || path.display().to_string();
    let io = |e: std::io::Error| HalError::io(format!("writing {}", ctx()), e);
    // Written beside its name, moved into place only when complete.
    let mut out = AtomicFile::create(path)?;
    let mut header = Vec::new();
    header.extend(MAGIC.to_le_bytes());
    header.extend(3u32.to_le_bytes());
    header.extend((tensors.len() as u64).to_le_bytes());
    header.extend((metadata.len() as u64 + 1).to_le_bytes());
    meta(
        &mut header,
        "general.alignment",
        &Meta::U32(DEFAULT_ALIGNMENT as u32),
    )
    .map_err(io)?;
    for (k, v) in metadata {
        meta(&mut header, k, v).map_err(io)?;
    }
    let mut offset = 0usize;
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        let size = t.size()?;
        string(&mut header, &t.name).map_err(io)?;
        header.extend((t.shape.len() as u32).to_le_bytes());
        for d in t.shape.iter().rev() {
            header.extend((*d as u64).to_le_bytes());
        }
        header.extend(t.ty.code().to_le_bytes());
        header.extend((offset as u64).to_le_bytes());
        sizes.push(size);
        offset = (offset + size).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
    }
    header.resize(
        header.len().div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT,
        0,
    );
    out.write_all(&header)?;
    for (i, (t, size)) in tensors.iter().zip(&sizes).enumerate() {
        let bytes = data(i)?;
        if bytes.len() != *size {
            return Err(HalError::invalid(
                &t.name,
                format!("{} bytes given for a tensor of {size}", bytes.len()),
            ));
        }
        out.write_all(&bytes)?;
        let pad = size.div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT - size;
        out.write_all(&vec![0u8; pad])?;
    }
    out.commit()
}
