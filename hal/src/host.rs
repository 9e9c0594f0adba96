//! Tensors in host memory, read and written through their descriptors.
//!
//! The reference implementation and the conformance suite work on these:
//! `data` is the whole storage a view lives in, so strided views, padding and
//! guard bytes all stay visible.

use crate::dtype::DType;
use crate::error::{HalError, Result};
use crate::layout::TensorDesc;
use crate::quant;

/// A tensor view over host bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Where the tensor lives in `data`.
    pub desc: TensorDesc,
    /// The storage.
    pub data: Vec<u8>,
}

impl HostTensor {
    /// Wraps storage; fails if the view does not fit it.
    pub fn new(desc: TensorDesc, data: Vec<u8>) -> Result<Self> {
        desc.validate(data.len())?;
        Ok(HostTensor { desc, data })
    }

    /// A zero-filled contiguous tensor.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Self> {
        let desc = TensorDesc::contiguous(dtype, shape);
        let bytes = dtype.bytes_for(desc.numel());
        HostTensor::new(desc, vec![0; bytes])
    }

    /// A contiguous tensor of `dtype` holding `values` (quantized by rows where needed).
    pub fn from_f32(dtype: DType, shape: &[usize], values: &[f32]) -> Result<Self> {
        let desc = TensorDesc::contiguous(dtype, shape);
        if values.len() != desc.numel() {
            return Err(HalError::invalid(
                "host tensor",
                format!(
                    "shape {shape:?} needs {} values, got {}",
                    desc.numel(),
                    values.len()
                ),
            ));
        }
        desc.validate(dtype.bytes_for(values.len()))?;
        let data = quant::from_f32(dtype, values)?;
        HostTensor::new(desc, data)
    }

    /// A contiguous i32 tensor.
    pub fn from_i32(shape: &[usize], values: &[i32]) -> Result<Self> {
        let desc = TensorDesc::contiguous(DType::I32, shape);
        if values.len() != desc.numel() {
            return Err(HalError::invalid(
                "host tensor",
                format!(
                    "shape {shape:?} needs {} values, got {}",
                    desc.numel(),
                    values.len()
                ),
            ));
        }
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        HostTensor::new(desc, data)
    }

    /// Byte range of logical row `row` (elements along the last dimension)
    /// when that row is packed; quantized rows always are.
    fn packed_row_bytes(&self, row: usize) -> std::ops::Range<usize> {
        let start = self.desc.byte_at(self.desc.row_start(row));
        start..start + self.desc.dtype.bytes_for(self.desc.last_dim())
    }

    /// Every element in logical row-major order, as f64 (dequantized).
    pub fn to_f64(&self) -> Vec<f64> {
        self.to_f32().into_iter().map(f64::from).collect()
    }

    /// Every element in logical row-major order, as f32 (dequantized).
    pub fn to_f32(&self) -> Vec<f32> {
        let d = &self.desc;
        let cols = d.last_dim();
        let mut out = vec![0.0f32; d.numel()];
        if d.dtype.is_quantized() {
            for (r, row) in out.chunks_exact_mut(cols).enumerate() {
                quant::dequantize(d.dtype, &self.data[self.packed_row_bytes(r)], row);
            }
        } else {
            let step = d.strides.last().copied().unwrap_or(1);
            let esize = d.dtype.block_bytes();
            for (r, row) in out.chunks_exact_mut(cols).enumerate() {
                let base = d.row_start(r);
                for (c, o) in row.iter_mut().enumerate() {
                    let byte = d.offset + (base + c * step) * esize;
                    *o = quant::read_scalar(d.dtype, &self.data[byte..byte + esize], 0);
                }
            }
        }
        out
    }

    /// Every element of an i32 tensor in logical order.
    pub fn to_i32(&self) -> Result<Vec<i32>> {
        if self.desc.dtype != DType::I32 {
            return Err(HalError::invalid(
                "host tensor",
                format!("expected i32, got {}", self.desc.dtype),
            ));
        }
        let d = &self.desc;
        let cols = d.last_dim();
        let step = d.strides.last().copied().unwrap_or(1);
        let mut out = Vec::with_capacity(d.numel());
        for r in 0..d.rows() {
            let base = d.row_start(r);
            for c in 0..cols {
                let b = d.offset + (base + c * step) * 4;
                let bytes = [
                    self.data[b],
                    self.data[b + 1],
                    self.data[b + 2],
                    self.data[b + 3],
                ];
                out.push(i32::from_le_bytes(bytes));
            }
        }
        Ok(out)
    }

    /// Stores `values` (logical order) through the view, rounding to the dtype
    /// (quantizing whole rows for Q8_0/Q4_0). Bytes outside the view are untouched.
    pub fn write_f32(&mut self, values: &[f32]) -> Result<()> {
        let d = self.desc.clone();
        if values.len() != d.numel() {
            return Err(HalError::invalid(
                "host tensor",
                format!(
                    "{} needs {} values, got {}",
                    d.describe(),
                    d.numel(),
                    values.len()
                ),
            ));
        }
        let cols = d.last_dim();
        if d.dtype.is_quantized() {
            for (r, row) in values.chunks_exact(cols).enumerate() {
                let range = self.packed_row_bytes(r);
                quant::quantize(d.dtype, row, &mut self.data[range]);
            }
        } else {
            let step = d.strides.last().copied().unwrap_or(1);
            let esize = d.dtype.block_bytes();
            for (r, row) in values.chunks_exact(cols).enumerate() {
                let base = d.row_start(r);
                for (c, v) in row.iter().enumerate() {
                    let byte = d.offset + (base + c * step) * esize;
                    quant::write_scalar(d.dtype, &mut self.data[byte..byte + esize], 0, *v);
                }
            }
        }
        Ok(())
    }

    /// Stores raw packed bytes of logical row `row` (a whole row of blocks or elements).
    /// Only for views whose last dimension is contiguous.
    pub fn write_row_bytes(&mut self, row: usize, bytes: &[u8]) -> Result<()> {
        if !self.desc.rows_contiguous() {
            return Err(HalError::Layout(
                "row write into a view with strided rows".into(),
            ));
        }
        let range = self.packed_row_bytes(row);
        if range.len() != bytes.len() {
            return Err(HalError::Layout(format!(
                "row of {} bytes written with {} bytes",
                range.len(),
                bytes.len()
            )));
        }
        self.data[range].copy_from_slice(bytes);
        Ok(())
    }

    /// A mask over `data`: true for every byte that belongs to an element of the view.
    pub fn view_mask(&self) -> Vec<bool> {
        let d = &self.desc;
        let mut mask = vec![false; self.data.len()];
        let cols = d.last_dim();
        if d.dtype.is_quantized() {
            for r in 0..d.rows() {
                mask[self.packed_row_bytes(r)].fill(true);
            }
        } else {
            let step = d.strides.last().copied().unwrap_or(1);
            let esize = d.dtype.block_bytes();
            for r in 0..d.rows() {
                let base = d.row_start(r);
                for c in 0..cols {
                    let byte = d.offset + (base + c * step) * esize;
                    mask[byte..byte + esize].fill(true);
                }
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_views_read_in_logical_order() {
        let t = HostTensor::from_f32(DType::F32, &[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap();
        let tt = HostTensor::new(t.desc.transposed(0, 1), t.data.clone()).unwrap();
        assert_eq!(tt.to_f32(), vec![1., 4., 2., 5., 3., 6.]);
    }

    #[test]
    fn padded_views_write_only_their_elements() {
        let desc = TensorDesc::strided(DType::F16, &[2, 2], &[3, 1], 2);
        let mut t = HostTensor::new(desc, vec![0xAA; 2 + 6 * 2]).unwrap();
        t.write_f32(&[1., 2., 3., 4.]).unwrap();
        assert_eq!(t.to_f32(), vec![1., 2., 3., 4.]);
        let mask = t.view_mask();
        assert_eq!(mask.iter().filter(|m| **m).count(), 8);
        // The padding element between rows kept its bytes.
        assert_eq!(&t.data[6..8], &[0xAA, 0xAA]);
        assert_eq!(&t.data[..2], &[0xAA, 0xAA]);
    }

    #[test]
    fn quantized_rows_round_trip() {
        let vals: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 32.0).collect();
        let t = HostTensor::from_f32(DType::Q8_0, &[2, 32], &vals).unwrap();
        let back = t.to_f32();
        for (a, b) in vals.iter().zip(&back) {
            assert!((a - b).abs() < 0.01);
        }
        assert!(HostTensor::from_f32(DType::Q8_0, &[2, 16], &vals[..32]).is_err());
    }

    #[test]
    fn wrong_counts_are_errors() {
        assert!(HostTensor::from_f32(DType::F32, &[2, 2], &[1.0]).is_err());
        assert!(HostTensor::from_i32(&[3], &[1, 2]).is_err());
        let mut t = HostTensor::zeros(DType::F32, &[2]).unwrap();
        assert!(t.write_f32(&[1.0]).is_err());
        assert!(t.to_i32().is_err());
    }
}
