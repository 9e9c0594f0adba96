//! GGUF Q8_0 and Q4_0 blocks on Ascend. A block is an f16 scale followed by
//! 32 int8 values (Q8_0, 34 bytes) or 16 bytes of 4-bit pairs (Q4_0, 18
//! bytes: byte j holds element j in its low nibble and element j + 16 in its
//! high one, each stored + 8), so strided int8/uint8 and f16 views read the
//! values and the scales where they lie; nothing is rearranged at upload.
//!
//! Q8_0 weights multiply through aclnnWeightQuantBatchMatmulV2 (the int8
//! values copied contiguous with aclnnInplaceCopy, the per-32 scales read
//! through a transposed view). Q4_0 weights, casts and quantized embedding
//! rows are dequantized into f32 with aclnn arithmetic (aclnnCast,
//! aclnnRemainderTensorScalar and aclnnFloorDivides split the nibbles,
//! aclnnAdds removes the + 8, aclnnMul applies the scales).

use std::ffi::c_void;

use glmhal_hal::{DType, HalError, Result, TensorDesc, QUANT_BLOCK};

use super::convert::{cast, copy};
use super::elementwise::binary;
use super::matmul::mat_mul;
use super::{raw_tensor, scalar, Handle, Launch, Layout, Operand};
use crate::loader::{ScalarWsFn, ACL_FLOAT16, ACL_INT8, ACL_UINT8};

/// Byte 0-1 of a block is its scale.
const SCALE_BYTES: usize = 2;

/// How a quantized view's blocks lie in its buffer.
pub(crate) struct Blocks {
    /// Dims before the last, and their strides in bytes.
    outer: Vec<usize>,
    outer_bytes: Vec<usize>,
    /// Blocks per row.
    pub(crate) blocks: usize,
    /// Bytes per block (34 or 18).
    block_bytes: usize,
    /// Values stored per block (32 int8, or 16 bytes of pairs).
    stored: usize,
    /// Byte offset of the first block.
    offset: usize,
    /// Q4_0.
    pub(crate) q4: bool,
}

impl Blocks {
    pub(crate) fn of(q: &TensorDesc) -> Result<Self> {
        let rank = q.rank();
        let block_bytes = q.dtype.block_bytes();
        let row_aligned = q.strides[..rank - 1].iter().all(|s| s % QUANT_BLOCK == 0);
        if !row_aligned || !q.offset.is_multiple_of(2) || !q.last_dim().is_multiple_of(QUANT_BLOCK)
        {
            return Err(HalError::invalid(
                "cann",
                format!("{} view {q:?} does not start rows on whole blocks", q.dtype),
            ));
        }
        let q4 = q.dtype == DType::Q4_0;
        Ok(Blocks {
            outer: q.shape[..rank - 1].to_vec(),
            outer_bytes: q.strides[..rank - 1]
                .iter()
                .map(|s| s / QUANT_BLOCK * block_bytes)
                .collect(),
            blocks: q.last_dim() / QUANT_BLOCK,
            block_bytes,
            stored: if q4 { QUANT_BLOCK / 2 } else { QUANT_BLOCK },
            offset: q.offset,
            q4,
        })
    }

    pub(crate) fn dims(&self, tail: &[usize]) -> Vec<usize> {
        self.outer
            .iter()
            .copied()
            .chain(tail.iter().copied())
            .collect()
    }

    /// The stored values: int8 (Q8_0) or the pair bytes (Q4_0), `[.., blocks, stored]`.
    pub(crate) fn values<'a>(
        &self,
        acl: &'a crate::loader::Acl,
        q: &Operand,
    ) -> Result<Handle<'a>> {
        let dims = self.dims(&[self.blocks, self.stored]);
        let mut strides = self.outer_bytes.clone();
        strides.extend([self.block_bytes, 1]);
        raw_tensor(
            acl,
            Layout {
                dims: &dims,
                strides: &strides,
                offset: self.offset + SCALE_BYTES,
                dtype: if self.q4 { ACL_UINT8 } else { ACL_INT8 },
                elem_bytes: 1,
            },
            q.base,
            q.len,
        )
    }

    /// The f16 scales, `[.., blocks, 1]`.
    pub(crate) fn scales<'a>(
        &self,
        acl: &'a crate::loader::Acl,
        q: &Operand,
    ) -> Result<Handle<'a>> {
        let dims = self.dims(&[self.blocks, 1]);
        let mut strides: Vec<usize> = self.outer_bytes.iter().map(|b| b / 2).collect();
        strides.extend([self.block_bytes / 2, 1]);
        raw_tensor(
            acl,
            Layout {
                dims: &dims,
                strides: &strides,
                offset: self.offset / 2,
                dtype: ACL_FLOAT16,
                elem_bytes: 2,
            },
            q.base,
            q.len,
        )
    }

    /// Temporaries [`dequantize`] needs, for a caller's single `temps` request.
    fn temps(&self) -> Vec<(DType, Vec<usize>)> {
        let values = self.dims(&[self.blocks, QUANT_BLOCK]);
        if self.q4 {
            vec![
                (DType::F32, self.dims(&[self.blocks, self.stored])),
                (DType::F32, values.clone()),
                (DType::F32, values),
            ]
        } else {
            vec![(DType::F32, values)]
        }
    }
}

pub(crate) fn scalar_op(
    l: &Launch<'_>,
    (name, ws, run): (&str, ScalarWsFn, crate::loader::RunFn),
    x: &Handle<'_>,
    value: f32,
    out: &Handle<'_>,
) -> Result<()> {
    let k = scalar(l.acl, value)?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { ws(x.ptr(), k.ptr(), out.ptr(), &mut size, &mut exec) };
    l.run(name, status, size, exec, run)
}

/// Writes the f32 values of quantized `q` into `out` (f32, q's shape, unit
/// last stride), using `temps` from [`Blocks::temps`].
fn dequantize(l: &Launch<'_>, q: &Operand, out: &Operand, temps: &[Operand]) -> Result<()> {
    let acl = l.acl;
    let b = Blocks::of(&q.desc)?;
    let rank = out.desc.rank();
    let mut strides = out.desc.strides[..rank - 1].to_vec();
    let unit = out.desc.strides[rank - 1];
    strides.extend([QUANT_BLOCK * unit, unit]);
    let out_blocks = out.view(acl, &b.dims(&[b.blocks, QUANT_BLOCK]), &strides, 0)?;
    let values = if b.q4 {
        let [bytes, pairs, centred] = temps else {
            return Err(HalError::invalid("cann", "Q4_0 needs three temporaries"));
        };
        let bytes_h = bytes.handle(acl)?;
        cast(l, &b.values(acl, q)?, DType::F32, &bytes_h)?;
        // [.., blocks, 2, 16]: low nibbles are elements 0..16, high ones 16..32.
        let halves = b.dims(&[b.blocks, 16]);
        let half_strides = glmhal_hal::contiguous_strides(&b.dims(&[b.blocks, 32]));
        let low = pairs.view(acl, &halves, &half_strides, 0)?;
        let high = pairs.view(acl, &halves, &half_strides, 16)?;
        let (rem, div) = (
            ("RemainderTensorScalar", acl.remainder_ws, acl.remainder),
            ("FloorDivides", acl.floor_divide_ws, acl.floor_divide),
        );
        scalar_op(l, rem, &bytes_h, 16.0, &low)?;
        scalar_op(l, div, &bytes_h, 16.0, &high)?;
        let (one, minus8) = (scalar(acl, 1.0)?, scalar(acl, -8.0)?);
        let centred_h = centred.handle(acl)?;
        let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
        // SAFETY: every descriptor is live; outputs are valid for writes.
        let status = unsafe {
            (acl.adds_ws)(
                pairs.handle(acl)?.ptr(),
                minus8.ptr(),
                one.ptr(),
                centred_h.ptr(),
                &mut size,
                &mut exec,
            )
        };
        l.run("Adds", status, size, exec, acl.adds)?;
        centred_h
    } else {
        let [values] = temps else {
            return Err(HalError::invalid("cann", "Q8_0 needs one temporary"));
        };
        let h = values.handle(acl)?;
        cast(l, &b.values(acl, q)?, DType::F32, &h)?;
        h
    };
    binary(l, false, &values, &b.scales(acl, q)?, &out_blocks)
}

/// `out = q` dequantized (cast from Q8_0/Q4_0 to a float dtype).
pub(crate) fn cast_from(l: &Launch<'_>, q: &Operand, out: &Operand) -> Result<()> {
    let b = Blocks::of(&q.desc)?;
    let mut specs = b.temps();
    specs.push((DType::F32, q.desc.shape.to_vec()));
    let temps = l.temps(&as_specs(&specs))?;
    let (y32, rest) = temps.split_last().unwrap_or_else(|| unreachable!());
    if out.desc.dtype == DType::F32 {
        return dequantize(l, q, out, rest);
    }
    dequantize(l, q, y32, rest)?;
    cast(l, &y32.handle(l.acl)?, out.desc.dtype, &out.handle(l.acl)?)
}

/// `out[i] = table[ids[i]]` for a quantized table: the rows' bytes are
/// selected (aclnnIndexSelect on a uint8 view), then dequantized.
pub(crate) fn get_rows(
    l: &Launch<'_>,
    table: &Operand,
    ids: &Handle<'_>,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (vocab, n) = (table.desc.shape[0], out.desc.shape[0]);
    let tb = Blocks::of(&table.desc)?;
    let row_bytes = tb.blocks * tb.block_bytes;
    let rows_desc = TensorDesc::contiguous(table.desc.dtype, &out.desc.shape);
    let rb = Blocks::of(&rows_desc)?;
    let mut specs = vec![(table.desc.dtype, out.desc.shape.to_vec())];
    specs.extend(rb.temps());
    specs.push((DType::F32, out.desc.shape.to_vec()));
    let temps = l.temps(&as_specs(&specs))?;
    let (rows, rest) = temps.split_first().unwrap_or_else(|| unreachable!());
    let (y32, dq) = rest.split_last().unwrap_or_else(|| unreachable!());
    let bytes = |dims: &[usize], strides: &[usize], offset: usize, o: &Operand| {
        raw_tensor(
            acl,
            Layout {
                dims,
                strides,
                offset,
                dtype: ACL_UINT8,
                elem_bytes: 1,
            },
            o.base,
            o.len,
        )
    };
    let table_bytes = bytes(
        &[vocab, row_bytes],
        &[tb.outer_bytes[0], 1],
        table.desc.offset,
        table,
    )?;
    let row_bytes_h = bytes(&[n, row_bytes], &[row_bytes, 1], 0, rows)?;
    super::embedding::get_rows(l, &table_bytes, ids, &row_bytes_h)?;
    if out.desc.dtype == DType::F32 {
        return dequantize(l, rows, out, dq);
    }
    dequantize(l, rows, y32, dq)?;
    cast(l, &y32.handle(acl)?, out.desc.dtype, &out.handle(acl)?)
}

/// `y = x · Wᵀ (+ bias)` with a quantized `W [N, K]`: Q8_0 on
/// aclnnWeightQuantBatchMatmulV2 (activations in f16, the scales' dtype)
/// where the SoC has it; Q4_0, and Q8_0 elsewhere, dequantized into f32 and
/// multiplied with aclnnMm.
pub(crate) fn mat_mul_quantized(
    l: &Launch<'_>,
    x: &Operand,
    w: &Operand,
    bias: Option<&Operand>,
    out: &Operand,
) -> Result<()> {
    let wb = Blocks::of(&w.desc)?;
    if wb.q4 || !l.weight_quant_matmul {
        mat_mul_dequantized(l, x, w, &wb, bias, out)
    } else {
        mat_mul_weight_quant(l, x, w, &wb, bias, out)
    }
}

/// `y = x · Wᵀ (+ bias)` with `W` dequantized into an f32 temporary and
/// multiplied with aclnnMm, for Q4_0 and for SoCs without
/// WeightQuantBatchMatmulV2.
fn mat_mul_dequantized(
    l: &Launch<'_>,
    x: &Operand,
    w: &Operand,
    wb: &Blocks,
    bias: Option<&Operand>,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (m, k, n) = (x.desc.shape[0], x.desc.shape[1], w.desc.shape[0]);
    let mut specs = wb.temps();
    specs.extend([
        (DType::F32, vec![n, k]),
        (DType::F32, vec![m, k]),
        (DType::F32, vec![m, n]),
    ]);
    let temps = l.temps(&as_specs(&specs))?;
    let (dq, own) = temps.split_at(temps.len() - 3);
    let [w32, x32, y32] = own else {
        unreachable!("three temporaries after the dequantization ones")
    };
    dequantize(l, w, w32, dq)?;
    let x_in = l.as_f32(x, x32)?;
    let w_t = w32.view(acl, &[k, n], &[1, k], 0)?;
    let target = if out.desc.dtype == DType::F32 {
        out
    } else {
        y32
    };
    let y = target.handle(acl)?;
    let b = bias.map(|b| b.handle(acl)).transpose()?;
    mat_mul(l, &x_in.handle(acl)?, &w_t, b.as_ref(), &y)?;
    if out.desc.dtype != DType::F32 {
        cast(l, &y, out.desc.dtype, &out.handle(acl)?)?;
    }
    Ok(())
}

/// `y = x · Wᵀ (+ bias)` with Q8_0 `W` on aclnnWeightQuantBatchMatmulV2:
/// the int8 values copied contiguous, the scales read in place through a
/// transposed f16 view, `x` in f16 (the scales' dtype).
fn mat_mul_weight_quant(
    l: &Launch<'_>,
    x: &Operand,
    w: &Operand,
    wb: &Blocks,
    bias: Option<&Operand>,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (m, k, n) = (x.desc.shape[0], x.desc.shape[1], w.desc.shape[0]);
    // The scales are f16 and the op wants x in the scales' dtype.
    let act = DType::F16;
    // The int8 copy fits in the space of the Q8_0 tensor it comes from.
    let temps = l.temps(&[
        (DType::Q8_0, &[n, k][..]),
        (act, &[m, k][..]),
        (act, &[m, n][..]),
    ])?;
    let [int8, x_act, y_act] = &temps[..] else {
        unreachable!("three temporaries were asked for")
    };
    let int8_view = |dims: &[usize], strides: &[usize]| {
        raw_tensor(
            acl,
            Layout {
                dims,
                strides,
                offset: 0,
                dtype: ACL_INT8,
                elem_bytes: 1,
            },
            int8.base,
            int8.len,
        )
    };
    let blocks = [n, wb.blocks, QUANT_BLOCK];
    copy(
        l,
        &int8_view(&blocks, &glmhal_hal::contiguous_strides(&blocks))?,
        &wb.values(acl, w)?,
    )?;
    let weight_t = int8_view(&[k, n], &[1, k])?;
    let scales_t = raw_tensor(
        acl,
        Layout {
            dims: &[wb.blocks, n],
            strides: &[wb.block_bytes / 2, wb.outer_bytes[0] / 2],
            offset: w.desc.offset / 2,
            dtype: ACL_FLOAT16,
            elem_bytes: 2,
        },
        w.base,
        w.len,
    )?;
    let x_in = if x.desc.dtype == act {
        x.handle(acl)?
    } else {
        let h = x_act.handle(acl)?;
        cast(l, &x.handle(acl)?, act, &h)?;
        h
    };
    let y = y_act.handle(acl)?;
    weight_quant_batch_matmul(l, &x_in, &weight_t, &scales_t, &y)?;
    let out_h = out.handle(acl)?;
    match bias {
        // The bias is added in the output's precision, after the f16 product.
        Some(b) => {
            cast(l, &y, out.desc.dtype, &out_h)?;
            binary(l, true, &out_h, &b.handle(acl)?, &out_h)
        }
        None => cast(l, &y, out.desc.dtype, &out_h),
    }
}

/// `y = x · weight` on aclnnWeightQuantBatchMatmulV2, `weight` int8 with
/// one f16 scale per block of 32 along `K` and no offsets, output
/// quantization or bias.
fn weight_quant_batch_matmul(
    l: &Launch<'_>,
    x: &Handle<'_>,
    weight: &Handle<'_>,
    scales: &Handle<'_>,
    y: &Handle<'_>,
) -> Result<()> {
    let acl = l.acl;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    let none = std::ptr::null();
    // SAFETY: every descriptor is live; the optional offsets, output
    // quantization and bias are NULL; `y` is valid for writes.
    let status = unsafe {
        (acl.weight_quant_mm_ws)(
            x.ptr(),
            weight.ptr(),
            scales.ptr(),
            none,
            none,
            none,
            none,
            QUANT_BLOCK as i32,
            y.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run(
        "WeightQuantBatchMatmulV2",
        status,
        size,
        exec,
        acl.weight_quant_mm,
    )
}

pub(crate) fn as_specs(specs: &[(DType, Vec<usize>)]) -> Vec<(DType, &[usize])> {
    specs.iter().map(|(d, s)| (*d, &s[..])).collect()
}
