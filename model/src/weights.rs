//! Weights on the device: converted once at load, looked up by canonical name.

use std::collections::HashMap;

use glmhal_hal::{quant, Backend, Buffer, DType, HalError, Result, TensorDesc};

use crate::checkpoint::{Checkpoint, WeightSource};
use crate::graph::WeightTable;

/// Every weight of a model, resident on one backend.
pub struct DeviceWeights {
    buffers: Vec<Buffer>,
    descs: Vec<TensorDesc>,
    names: HashMap<String, usize>,
    /// Bytes on the device.
    pub bytes: usize,
}

impl WeightTable for DeviceWeights {
    fn lookup(&self, name: &str) -> Option<(usize, TensorDesc)> {
        self.names.get(name).map(|&i| (i, self.descs[i].clone()))
    }
}

impl DeviceWeights {
    /// The buffer of weight `i`.
    pub fn buffer(&self, i: usize) -> &Buffer {
        &self.buffers[i]
    }

    /// The canonical name of weight `i` (`layers.0.qkv.weight`).
    pub fn name_of(&self, i: usize) -> Option<&str> {
        self.names
            .iter()
            .find(|(_, &at)| at == i)
            .map(|(n, _)| n.as_str())
    }

    /// Reads each weight of `sources` from `checkpoint` and uploads it to
    /// `backend` (releasing its mapped pages): projection, embedding and
    /// expert matrices in `matrix_dtype` (as stored when `None`); norms,
    /// biases and the router in f32.
    /// Non-finite values are an error naming the tensor. Each weight placed
    /// is reported to `progress`.
    pub fn load(
        backend: &dyn Backend,
        checkpoint: &Checkpoint,
        sources: &[WeightSource],
        matrix_dtype: Option<DType>,
        progress: &crate::Progress,
    ) -> Result<Self> {
        if let Some(d) = matrix_dtype.filter(|d| !DType::WEIGHTS.contains(d)) {
            return Err(HalError::invalid(
                "--weights",
                format!("weights cannot be stored as {d}; use f32, f16, bf16, q8_0 or q4_0"),
            ));
        }
        let mut w = DeviceWeights {
            buffers: Vec::new(),
            descs: Vec::new(),
            names: HashMap::new(),
            bytes: 0,
        };
        for (i, source) in sources.iter().enumerate() {
            progress.report("loading weights", i, sources.len());
            let r = checkpoint.read(source)?;
            // The tensors as the checkpoint names them, for messages.
            let stored: Vec<&str> = source.parts.iter().map(|(n, _)| n.as_str()).collect();
            let what = format!("weight `{}` (stored as {})", r.name, stored.join(" + "));
            if !DType::WEIGHTS.contains(&r.dtype) {
                return Err(HalError::invalid(
                    what,
                    format!(
                        "is stored as {}; weights are f32, f16, bf16, Q8_0 or Q4_0",
                        r.dtype
                    ),
                ));
            }
            if let Some(at) = first_non_finite(r.dtype, &r.bytes) {
                return Err(HalError::invalid(
                    format!("weight `{}`", r.name),
                    format!("element {at} is NaN or infinite"),
                ));
            }
            // Matrices (and stacked experts) as asked; vectors and the
            // router in f32.
            let target = if source.f32 || r.shape.len() < 2 {
                DType::F32
            } else {
                matrix_dtype.unwrap_or(r.dtype)
            };
            let row = r.shape.last().copied().unwrap_or(0);
            if target.is_quantized() && row % target.block_elems() != 0 {
                return Err(HalError::invalid(
                    format!("weight `{}`", r.name),
                    format!(
                        "rows of {row} values cannot be stored as {target} (needs a multiple of 32)"
                    ),
                ));
            }
            let desc = TensorDesc::contiguous(target, &r.shape);
            let (buffer, in_place) = match (&r.shared, target == r.dtype) {
                (Some((bytes, range)), true) => (
                    backend.prepare_weight_shared(&desc, bytes.clone(), range.clone())?,
                    true,
                ),
                (None, true) => (backend.prepare_weight(&desc, &r.bytes)?, false),
                _ => {
                    let values = quant::to_f32(r.dtype, &r.bytes, desc.numel())?;
                    let converted = quant::from_f32(target, &values)?;
                    if let Some(at) = first_overflow(target, &converted) {
                        return Err(HalError::invalid(
                            what,
                            format!(
                                "element {at} is finite as stored but overflows {target}; keep it in a wider dtype"
                            ),
                        ));
                    }
                    (backend.prepare_weight(&desc, &converted)?, false)
                }
            };
            // Pages a backend copied from are not needed twice; pages it uses in place are.
            if !in_place {
                checkpoint.release(&r);
            }
            w.bytes += buffer.len();
            w.names.insert(r.name.clone(), w.buffers.len());
            w.buffers.push(buffer);
            w.descs.push(desc);
        }
        progress.report("loading weights", sources.len(), sources.len());
        Ok(w)
    }
}

/// Index of the first element that did not survive conversion to `dtype`:
/// an infinity in f16/bf16 data, or a block whose f16 scale overflowed.
fn first_overflow(dtype: DType, bytes: &[u8]) -> Option<usize> {
    if dtype.is_quantized() {
        return bytes
            .chunks_exact(dtype.block_bytes())
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00)
            .map(|block| block * dtype.block_elems());
    }
    first_non_finite(dtype, bytes)
}

/// Index of the first NaN or infinity in packed float data (an all-ones exponent).
fn first_non_finite(dtype: DType, bytes: &[u8]) -> Option<usize> {
    match dtype {
        DType::F32 => first_with_mask::<4>(bytes, 0x7f80_0000),
        DType::F16 => first_with_mask::<2>(bytes, 0x7c00),
        DType::Bf16 => first_with_mask::<2>(bytes, 0x7f80),
        _ => None,
    }
}

/// First element of `W` bytes whose bits cover `mask`. Blocks are tested
/// without early exit (so the test vectorizes); only a hit is searched.
fn first_with_mask<const W: usize>(bytes: &[u8], mask: u32) -> Option<usize> {
    let bits = |b: &[u8]| {
        if W == 4 {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u16::from_le_bytes([b[0], b[1]]) as u32
        }
    };
    const BLOCK: usize = 256;
    for (n, block) in bytes.chunks(BLOCK * W).enumerate() {
        let hit = block
            .chunks_exact(W)
            .fold(false, |acc, b| acc | (bits(b) & mask == mask));
        if hit {
            let at = block.chunks_exact(W).position(|b| bits(b) & mask == mask)?;
            return Some(n * BLOCK + at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_found() {
        let f = |v: &[f32]| quant::from_f32(DType::F32, v).unwrap();
        assert_eq!(first_non_finite(DType::F32, &f(&[1.0, 2.0])), None);
        assert_eq!(first_non_finite(DType::F32, &f(&[1.0, f32::NAN])), Some(1));
        let h = quant::from_f32(DType::F16, &[0.5, f32::INFINITY]).unwrap();
        assert_eq!(first_non_finite(DType::F16, &h), Some(1));
        let b = quant::from_f32(DType::Bf16, &[f32::NAN]).unwrap();
        assert_eq!(first_non_finite(DType::Bf16, &b), Some(0));
    }
}
