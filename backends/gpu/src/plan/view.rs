//! The view every kernel indexes through, as `compat.h` declares it.

use glmhal_hal::{HalError, Result, TensorDesc};

/// A view as the kernels' `struct View` lays it out (48 bytes, 8-aligned).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct View {
    /// Elements (bytes for Q8_0/Q4_0) from the buffer start.
    pub offset: u64,
    /// Innermost dim and its stride, then the two dims above it.
    pub cols: u32,
    /// Stride of the innermost dim.
    pub col_stride: u32,
    /// Second outermost of the folded outer dims.
    pub d1: u32,
    /// Innermost of the folded outer dims.
    pub d2: u32,
    /// Outer strides (elements).
    pub s0: u64,
    /// Outer strides (elements).
    pub s1: u64,
    /// Outer strides (elements).
    pub s2: u64,
}

impl View {
    /// The view of `desc` read as `shape` (size-1 dims of `desc` broadcast).
    pub fn of(desc: &TensorDesc, shape: &[usize]) -> Result<Self> {
        let (dims, strides) = desc.folded4(shape).ok_or_else(|| {
            HalError::invalid(
                "gpu",
                format!("views of rank {} are not supported", shape.len()),
            )
        })?;
        let offset = if desc.dtype.is_quantized() {
            desc.offset
        } else {
            desc.offset / desc.dtype.block_bytes()
        };
        let small = |x: usize| {
            u32::try_from(x)
                .map_err(|_| HalError::invalid("gpu", format!("dimension {x} exceeds 32 bits")))
        };
        Ok(View {
            offset: offset as u64,
            cols: small(dims[3])?,
            col_stride: small(strides[3])?,
            d1: small(dims[1])?,
            d2: small(dims[2])?,
            s0: strides[0] as u64,
            s1: strides[1] as u64,
            s2: strides[2] as u64,
        })
    }

    /// Appends its bytes, as the kernel parameter, to `out`.
    pub fn write(&self, out: &mut impl Extend<u8>) {
        out.extend(self.offset.to_le_bytes());
        for w in [self.cols, self.col_stride, self.d1, self.d2] {
            out.extend(w.to_le_bytes());
        }
        for s in [self.s0, self.s1, self.s2] {
            out.extend(s.to_le_bytes());
        }
    }
}
