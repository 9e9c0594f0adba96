//! Q8_0 and Q4_0 weights on Ascend, in either of two layouts. GGUF blocks
//! (an f16 scale then 32 int8 values, Q8_0, 34 bytes; or 16 bytes of 4-bit
//! pairs, Q4_0, 18 bytes: byte j holds element j in its low nibble and
//! element j + 16 in its high one, each stored + 8) are read where they lie
//! through strided int8/uint8 and f16 views. Whole matrices that
//! `prepare_weight` stored split ([`crate::prepared`]: int8 values, then
//! the scales) are read the same way with other strides.
//!
//! Products with int8 values (Q8_0, prepared Q4_0) run on
//! aclnnWeightQuantBatchMatmulV2 where the SoC has it (GGUF values copied
//! contiguous first, prepared ones read in place; the per-32 scales through
//! a transposed view). Other products, casts and quantized embedding rows
//! are dequantized into f32 with aclnn arithmetic (aclnnCast,
//! aclnnRemainderTensorScalar and aclnnFloorDivides split the nibbles,
//! aclnnAdds removes the + 8, aclnnMul applies the scales).

use std::ffi::c_void;

use glmhal_hal::{DType, HalError, Result, TensorDesc, QUANT_BLOCK};

use super::convert::{cast, copy};
use super::elementwise::{adds, binary, scalar_op};
use super::matmul::mat_mul;
use super::{raw_tensor, Handle, Launch, Layout, Operand};
use crate::device::Family;
use crate::loader::{ACL_FLOAT16, ACL_INT8, ACL_UINT8};

/// Byte 0-1 of a block is its scale.
const SCALE_BYTES: usize = 2;

/// Where one part of the blocks (values or scales) lies: an element offset
/// and element strides of the dims before the last, and of the blocks.
#[derive(Clone, Debug)]
struct Placement {
    offset: usize,
    outer: Vec<usize>,
    block: usize,
}

/// How a quantized view's blocks lie in its buffer: GGUF's interleaved
/// blocks, or the split layout `prepare_weight` makes (all values, then
/// all scales).
pub(crate) struct Blocks {
    /// Dims before the last.
    outer: Vec<usize>,
    /// Blocks per row.
    pub(crate) blocks: usize,
    /// Values stored per block (32 int8, or 16 bytes of pairs).
    stored: usize,
    /// The values (bytes) and the scales (f16 elements).
    values: Placement,
    scales: Placement,
    /// Values stored as Q4_0's nibble pairs (+ 8) rather than int8.
    pub(crate) q4: bool,
}

impl Blocks {
    /// GGUF blocks laid out as `q` says.
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
        let outer_bytes: Vec<usize> = q.strides[..rank - 1]
            .iter()
            .map(|s| s / QUANT_BLOCK * block_bytes)
            .collect();
        Ok(Blocks {
            outer: q.shape[..rank - 1].to_vec(),
            blocks: q.last_dim() / QUANT_BLOCK,
            stored: if q4 { QUANT_BLOCK / 2 } else { QUANT_BLOCK },
            values: Placement {
                offset: q.offset + SCALE_BYTES,
                outer: outer_bytes.clone(),
                block: block_bytes,
            },
            scales: Placement {
                offset: q.offset / 2,
                outer: outer_bytes.iter().map(|b| b / 2).collect(),
                block: block_bytes / 2,
            },
            q4,
        })
    }

    /// The blocks of a whole `[N, K]` weight in the split layout
    /// ([`crate::prepared`]).
    pub(crate) fn split(n: usize, k: usize) -> Self {
        let blocks = k / QUANT_BLOCK;
        Blocks {
            outer: vec![n],
            blocks,
            stored: QUANT_BLOCK,
            values: Placement {
                offset: 0,
                outer: vec![k],
                block: QUANT_BLOCK,
            },
            scales: Placement {
                offset: crate::prepared::scales_offset(n, k) / 2,
                outer: vec![blocks],
                block: 1,
            },
            q4: false,
        }
    }

    /// The blocks of operand `q`, in whichever layout its buffer holds.
    pub(crate) fn of_operand(q: &Operand) -> Result<Self> {
        match q.prepared {
            Some([n, k]) => Ok(Blocks::split(n, k)),
            None => Blocks::of(&q.desc),
        }
    }

    pub(crate) fn dims(&self, tail: &[usize]) -> Vec<usize> {
        self.outer
            .iter()
            .copied()
            .chain(tail.iter().copied())
            .collect()
    }

    /// The stored values: int8, or Q4_0's pair bytes, `[.., blocks, stored]`.
    pub(crate) fn values<'a>(
        &self,
        acl: &'a crate::loader::Acl,
        q: &Operand,
    ) -> Result<Handle<'a>> {
        let dims = self.dims(&[self.blocks, self.stored]);
        let mut strides = self.values.outer.clone();
        strides.extend([self.values.block, 1]);
        raw_tensor(
            acl,
            Layout {
                dims: &dims,
                strides: &strides,
                offset: self.values.offset,
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
        let mut strides = self.scales.outer.clone();
        strides.extend([self.scales.block, 1]);
        raw_tensor(
            acl,
            Layout {
                dims: &dims,
                strides: &strides,
                offset: self.scales.offset,
                dtype: ACL_FLOAT16,
                elem_bytes: 2,
            },
            q.base,
            q.len,
        )
    }

    /// Rows `start..start + width` of a matrix's scales, transposed for
    /// aclnnWeightQuantBatchMatmulV2: `[blocks, width]`, or `[width]` with
    /// one block per row (per-channel).
    fn scales_transposed<'a>(
        &self,
        acl: &'a crate::loader::Acl,
        q: &Operand,
        start: usize,
        width: usize,
    ) -> Result<Handle<'a>> {
        let row = self.scales.outer[0];
        let (dims, strides) = if self.blocks == 1 {
            (vec![width], vec![row])
        } else {
            (vec![self.blocks, width], vec![self.scales.block, row])
        };
        raw_tensor(
            acl,
            Layout {
                dims: &dims,
                strides: &strides,
                offset: self.scales.offset + start * row,
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

/// Writes the f32 values of quantized `q` into `out` (f32, q's shape, unit
/// last stride), using `temps` from [`Blocks::temps`].
fn dequantize(l: &Launch<'_>, q: &Operand, out: &Operand, temps: &[Operand]) -> Result<()> {
    let acl = l.acl;
    let b = Blocks::of_operand(q)?;
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
        let centred_h = centred.handle(acl)?;
        adds(l, &pairs.handle(acl)?, -8.0, &centred_h)?;
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
    let b = Blocks::of_operand(q)?;
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
    if let Some([_, k]) = table.prepared {
        return get_rows_split(l, table, k, ids, out);
    }
    let acl = l.acl;
    let (vocab, n) = (table.desc.shape[0], out.desc.shape[0]);
    let tb = Blocks::of(&table.desc)?;
    let row_bytes = tb.blocks * tb.values.block;
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
        &[tb.values.outer[0], 1],
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

/// [`get_rows`] of a table in the split layout: the rows' int8 values and
/// their scales selected (two aclnnIndexSelect), then dequantized.
fn get_rows_split(
    l: &Launch<'_>,
    table: &Operand,
    k: usize,
    ids: &Handle<'_>,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (vocab, n) = (table.desc.shape[0], out.desc.shape[0]);
    let (tb, rb) = (Blocks::split(vocab, k), Blocks::split(n, k));
    let split_bytes = crate::prepared::bytes(n, k);
    let mut specs = vec![(DType::F32, vec![split_bytes.div_ceil(4)])];
    specs.extend(rb.temps());
    specs.push((DType::F32, out.desc.shape.to_vec()));
    let temps = l.temps(&as_specs(&specs))?;
    let (rows_space, rest) = temps.split_first().unwrap_or_else(|| unreachable!());
    let (y32, dq) = rest.split_last().unwrap_or_else(|| unreachable!());
    let rows = Operand {
        desc: TensorDesc::contiguous(table.desc.dtype, &[n, k]),
        prepared: Some([n, k]),
        ..rows_space.clone()
    };
    let matrix = |b: &Blocks, o: &Operand, r: usize, values: bool| {
        let (cols, p, dtype, elem) = if values {
            (k, &b.values, ACL_INT8, 1)
        } else {
            (b.blocks, &b.scales, ACL_FLOAT16, 2)
        };
        raw_tensor(
            acl,
            Layout {
                dims: &[r, cols],
                strides: &[p.outer[0], 1],
                offset: p.offset,
                dtype,
                elem_bytes: elem,
            },
            o.base,
            o.len,
        )
    };
    for values in [true, false] {
        super::embedding::get_rows(
            l,
            &matrix(&tb, table, vocab, values)?,
            ids,
            &matrix(&rb, &rows, n, values)?,
        )?;
    }
    if out.desc.dtype == DType::F32 {
        return dequantize(l, &rows, out, dq);
    }
    dequantize(l, &rows, y32, dq)?;
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
    let wb = Blocks::of_operand(w)?;
    // Q4_0 reaches the op only as prepared (int8) values.
    let int8 = w.desc.dtype == DType::Q8_0 || w.prepared.is_some();
    if int8 && on_weight_quant_matmul(l.family, &w.desc) {
        mat_mul_weight_quant(l, x, w, &wb, bias, out)
    } else {
        mat_mul_dequantized(l, x, w, &wb, bias, out)
    }
}

/// The widest N and K one aclnnWeightQuantBatchMatmulV2 call takes (its
/// documentation: k and n in [1, 65535]).
pub(crate) const WEIGHT_QUANT_MAX_N: usize = 65535;

/// Whether a product with weight `w` runs on aclnnWeightQuantBatchMatmulV2:
/// Q8_0 weights, and Q4_0 weights `prepare_weight` stored as int8, with K
/// within the op's limit, on SoCs that have it (wider N is split into
/// several calls). A whole Q4_0 matrix uploaded without `prepare_weight`
/// is dequantized instead, in f32: more exact than declared here.
pub(crate) fn on_weight_quant_matmul(family: Family, w: &TensorDesc) -> bool {
    let int8 = w.dtype == DType::Q8_0 || crate::prepared::prepares(w);
    int8 && family.has_weight_quant_matmul() && w.shape[1] <= WEIGHT_QUANT_MAX_N
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

/// `y = x · Wᵀ (+ bias)` with int8 `W` on aclnnWeightQuantBatchMatmulV2:
/// a prepared weight read in place (GGUF blocks copied into the same split
/// layout first), the weight and its scales through transposed views of
/// contiguous tensors, `x` in f16 (the scales' dtype), N split into calls
/// of at most 65535.
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
    // The int8 copy of GGUF blocks fits in the space of the Q8_0 tensor it
    // comes from; a prepared weight is read where it lies.
    // GGUF blocks are first copied into the split layout (values, then
    // scales, each contiguous), which the op takes; a prepared weight is
    // read where it lies.
    let split_words = if w.prepared.is_some() {
        0
    } else {
        crate::prepared::bytes(n, k).div_ceil(4)
    };
    let temps = l.temps(&[
        (DType::F32, &[split_words][..]),
        (act, &[m, k][..]),
        (act, &[m, n][..]),
    ])?;
    let [split_space, x_act, y_act] = &temps[..] else {
        unreachable!("three temporaries were asked for")
    };
    let split = Blocks::split(n, k);
    let copied = Operand {
        prepared: Some([n, k]),
        ..split_space.clone()
    };
    let (int8, blocks) = if w.prepared.is_some() {
        (w, wb)
    } else {
        copy(l, &split.values(acl, &copied)?, &wb.values(acl, w)?)?;
        copy(l, &split.scales(acl, &copied)?, &wb.scales(acl, w)?)?;
        (&copied, &split)
    };
    let x_in = if x.desc.dtype == act {
        x.handle(acl)?
    } else {
        let h = x_act.handle(acl)?;
        cast(l, &x.handle(acl)?, act, &h)?;
        h
    };
    // Per channel (group 0) where one block spans K: the group size must lie
    // in [32, K - 1].
    let group = if k > QUANT_BLOCK { QUANT_BLOCK } else { 0 };
    for start in (0..n).step_by(WEIGHT_QUANT_MAX_N) {
        let width = (n - start).min(WEIGHT_QUANT_MAX_N);
        let weight_t = raw_tensor(
            acl,
            Layout {
                dims: &[k, width],
                strides: &[1, k],
                offset: start * k,
                dtype: ACL_INT8,
                elem_bytes: 1,
            },
            int8.base,
            int8.len,
        )?;
        let scales_t = blocks.scales_transposed(acl, int8, start, width)?;
        let y = y_act.view(acl, &[m, width], &[n, 1], start)?;
        weight_quant_batch_matmul(l, &x_in, &weight_t, &scales_t, group, &y)?;
    }
    let y = y_act.handle(acl)?;
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
/// one f16 scale per `group` values along `K` (0: one per column) and no
/// offsets, output quantization or bias.
fn weight_quant_batch_matmul(
    l: &Launch<'_>,
    x: &Handle<'_>,
    weight: &Handle<'_>,
    scales: &Handle<'_>,
    group: usize,
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
            group as i32,
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
