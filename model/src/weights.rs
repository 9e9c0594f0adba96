//! Weights on the device: converted once at load, looked up by canonical name.

use std::collections::HashMap;

use glmhal_hal::{quant, Backend, Buffer, DType, HalError, Result, TensorDesc};

use crate::checkpoint::RawWeight;
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

    /// Uploads `raw` to `backend`: projection and embedding matrices in
    /// `matrix_dtype` (as stored when `None`), norms and biases in f32.
    /// Non-finite values are an error naming the tensor.
    pub fn load<'a>(
        backend: &dyn Backend,
        raw: impl IntoIterator<Item = RawWeight<'a>>,
        matrix_dtype: Option<DType>,
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
        for r in raw {
            if let Some(at) = first_non_finite(r.dtype, &r.bytes) {
                return Err(HalError::invalid(
                    format!("weight `{}`", r.name),
                    format!("element {at} is NaN or infinite"),
                ));
            }
            let target = if r.shape.len() == 2 {
                matrix_dtype.unwrap_or(r.dtype)
            } else {
                DType::F32
            };
            if target.is_quantized() && r.shape[1] % target.block_elems() != 0 {
                return Err(HalError::invalid(
                    format!("weight `{}`", r.name),
                    format!(
                        "rows of {} values cannot be stored as {target} (needs a multiple of 32)",
                        r.shape[1]
                    ),
                ));
            }
            let desc = TensorDesc::contiguous(target, &r.shape);
            let buffer = if target == r.dtype {
                backend.prepare_weight(&desc, &r.bytes)?
            } else {
                let values = quant::to_f32(r.dtype, &r.bytes, desc.numel())?;
                backend.prepare_weight(&desc, &quant::from_f32(target, &values)?)?
            };
            w.bytes += buffer.len();
            w.names.insert(r.name.clone(), w.buffers.len());
            w.buffers.push(buffer);
            w.descs.push(desc);
        }
        Ok(w)
    }
}

/// Index of the first NaN or infinity in packed float data.
fn first_non_finite(dtype: DType, bytes: &[u8]) -> Option<usize> {
    match dtype {
        DType::F32 => bytes.chunks_exact(4).position(|b| {
            let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            bits & 0x7f80_0000 == 0x7f80_0000
        }),
        DType::F16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00),
        DType::Bf16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7f80 == 0x7f80),
        _ => None,
    }
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
