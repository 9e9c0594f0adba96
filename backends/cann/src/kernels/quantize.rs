//! quantize: float rows into GGUF Q8_0 / Q4_0 blocks with ggml's rounding,
//! composed from aclnn arithmetic on `[.., blocks, 32]` views and written
//! in place through the block views of [`super::quant::Blocks`].
//!
//! Q8_0: `d = max|x| / 127`, `q = round(x · (1/d))` half away from zero
//! (`sign · floor(|v| + 0.5)`), `0` where `d = 0`.
//! Q4_0: the value of largest magnitude (the first on ties: aclnnArgMax then
//! aclnnGather) gives `d = max / -8`; `q = min(15, trunc(x · (1/d) + 8.5))`
//! (aclnnClamp then aclnnFloor), two per byte, low nibble first.

use std::ffi::c_void;

use glmhal_hal::{DType, Result, QUANT_BLOCK};

use super::convert::cast;
use super::elementwise::mask_fill;
use super::elementwise::{adds, binary, scalar_op, scale, unary};
use super::quant::{as_specs, Blocks};
use super::{raw_tensor, scalar, Handle, IntArray, Launch, Layout, Operand};
use crate::loader::{ACL_BOOL, ACL_INT64};

/// Encodes the float rows of `x` into the Q8_0 / Q4_0 tensor `out`.
pub(crate) fn quantize(l: &Launch<'_>, x: &Operand, out: &Operand) -> Result<()> {
    let acl = l.acl;
    let b = Blocks::of(&out.desc)?;
    let values = b.dims(&[b.blocks, QUANT_BLOCK]);
    let per_block = b.dims(&[b.blocks, 1]);
    let pairs = b.dims(&[b.blocks, QUANT_BLOCK / 2]);
    // Per-block temporaries, then per-value ones; the mask and the int64
    // index sit in i32 space (bool and int64 have no glmhal dtype).
    let mut specs = vec![(DType::F32, x.desc.shape.to_vec())];
    specs
        .extend([per_block.clone(), per_block.clone(), per_block.clone()].map(|d| (DType::F32, d)));
    specs.push((DType::I32, b.dims(&[b.blocks, 2])));
    specs.push((DType::I32, per_block.clone()));
    specs.extend(std::iter::repeat_n((DType::F32, values.clone()), 5));
    specs.push((DType::F32, pairs.clone()));
    let temps = l.temps(&as_specs(&specs))?;
    let [x32, big, d, inv, index, mask, t0, t1, t2, t3, t4, byte32] = &temps[..] else {
        unreachable!("twelve temporaries were asked for")
    };

    // x as [.., blocks, 32] in f32.
    let x_in = l.as_f32(x, x32)?;
    let rank = x_in.desc.rank();
    let unit = x_in.desc.strides[rank - 1];
    let mut strides = x_in.desc.strides[..rank - 1].to_vec();
    strides.extend([QUANT_BLOCK * unit, unit]);
    let xv = x_in.view(acl, &values, &strides, 0)?;
    let magnitude = t0.handle(acl)?;
    unary(l, ("Abs", acl.abs_ws, acl.abs), &xv, &magnitude)?;

    let big_h = big.handle(acl)?;
    if b.q4 {
        signed_block_max(l, &xv, &magnitude, index, &per_block, &big_h)?;
    } else {
        block_amax(l, &magnitude, &big_h)?;
    }
    let inv_h = block_scales(l, &b, out, &big_h, [d, inv, mask])?;
    let scaled = t1.handle(acl)?;
    binary(l, false, &xv, &inv_h, &scaled)?;

    if b.q4 {
        encode_q4(l, &b, out, &scaled, [t2, t3, t4, byte32])
    } else {
        encode_q8(l, &b, out, &scaled, [t2, t3, t4])
    }
}

/// Each Q4_0 block's signed value of largest magnitude into `big` (the
/// first on ties): aclnnArgMax of `magnitude`, then aclnnGather from `xv`,
/// the int64 index in the temporary `index`.
fn signed_block_max(
    l: &Launch<'_>,
    xv: &Handle<'_>,
    magnitude: &Handle<'_>,
    index: &Operand,
    per_block: &[usize],
    big: &Handle<'_>,
) -> Result<()> {
    let acl = l.acl;
    let index_h = raw_tensor(
        acl,
        Layout {
            dims: per_block,
            strides: &glmhal_hal::contiguous_strides(per_block),
            offset: 0,
            dtype: ACL_INT64,
            elem_bytes: 8,
        },
        index.base,
        index.len,
    )?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (acl.argmax_ws)(
            magnitude.ptr(),
            -1,
            true,
            index_h.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("ArgMax", status, size, exec, acl.argmax)?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: as above.
    let status =
        unsafe { (acl.gather_ws)(xv.ptr(), -1, index_h.ptr(), big.ptr(), &mut size, &mut exec) };
    l.run("Gather", status, size, exec, acl.gather)
}

/// Each Q8_0 block's largest magnitude into `big` (aclnnAmax over the
/// last dim of `magnitude`).
fn block_amax(l: &Launch<'_>, magnitude: &Handle<'_>, big: &Handle<'_>) -> Result<()> {
    let acl = l.acl;
    let last = IntArray::new(acl, &[-1])?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (acl.amax_ws)(
            magnitude.ptr(),
            last.ptr(),
            true,
            big.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("Amax", status, size, exec, acl.amax)
}

/// The block scales `d = big / divisor` (stored into `out` as f16, `d` in
/// the first temporary) and, returned, `1/d` in the second, or 0 where `d`
/// is 0 (the third holds the mask of those blocks).
fn block_scales<'a>(
    l: &Launch<'a>,
    b: &Blocks,
    out: &Operand,
    big: &Handle<'_>,
    [d, inv, mask]: [&Operand; 3],
) -> Result<Handle<'a>> {
    let acl = l.acl;
    let per_block = b.dims(&[b.blocks, 1]);
    let d_h = d.handle(acl)?;
    let divisor = if b.q4 { -8.0 } else { 127.0 };
    scalar_op(l, ("Divs", acl.divs_ws, acl.divs), big, divisor, &d_h)?;
    cast(l, &d_h, DType::F16, &b.scales(acl, out)?)?;
    let inv_h = inv.handle(acl)?;
    unary(
        l,
        ("Reciprocal", acl.reciprocal_ws, acl.reciprocal),
        &d_h,
        &inv_h,
    )?;
    let mask_h = raw_tensor(
        acl,
        Layout {
            dims: &per_block,
            strides: &glmhal_hal::contiguous_strides(&per_block),
            offset: 0,
            dtype: ACL_BOOL,
            elem_bytes: 1,
        },
        mask.base,
        mask.len,
    )?;
    scalar_op(
        l,
        ("EqScalar", acl.eq_scalar_ws, acl.eq_scalar),
        &d_h,
        0.0,
        &mask_h,
    )?;
    mask_fill(l, &inv_h, &mask_h, 0.0)?;
    Ok(inv_h)
}

/// Q4_0 values from `scaled = x / d` into `out`'s blocks:
/// `min(15, trunc(v + 8.5))` for `v + 8.5 ≥ 0`, else 0, packed as
/// `byte j = q[j] + 16 · q[j + 16]`, in the four temporaries (three of
/// the block values' shape, one of the pairs').
fn encode_q4(
    l: &Launch<'_>,
    b: &Blocks,
    out: &Operand,
    scaled: &Handle<'_>,
    [t2, t3, t4, byte32]: [&Operand; 4],
) -> Result<()> {
    let acl = l.acl;
    let values = b.dims(&[b.blocks, QUANT_BLOCK]);
    let pairs = b.dims(&[b.blocks, QUANT_BLOCK / 2]);
    let (t2h, t3h, t4h) = (t2.handle(acl)?, t3.handle(acl)?, t4.handle(acl)?);
    // min(15, trunc(v + 8.5)) for v + 8.5 ≥ 0, else 0.
    adds(l, scaled, 8.5, &t2h)?;
    let (lo, hi) = (scalar(acl, 0.0)?, scalar(acl, 15.0)?);
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (acl.clamp_ws)(
            t2h.ptr(),
            lo.ptr(),
            hi.ptr(),
            t3h.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("Clamp", status, size, exec, acl.clamp)?;
    unary(l, ("Floor", acl.floor_ws, acl.floor), &t3h, &t4h)?;
    // byte j = q[j] + 16 · q[j + 16].
    let half_strides = glmhal_hal::contiguous_strides(&values);
    let low = t4.view(acl, &pairs, &half_strides, 0)?;
    let high = t4.view(acl, &pairs, &half_strides, QUANT_BLOCK / 2)?;
    let high16 = t2.view(acl, &pairs, &glmhal_hal::contiguous_strides(&pairs), 0)?;
    scale(l, &high, 16.0, &high16)?;
    let bytes = byte32.handle(acl)?;
    binary(l, true, &low, &high16, &bytes)?;
    cast_raw(l, &bytes, &b.values(acl, out)?)
}

/// Q8_0 values from `scaled = x / d` into `out`'s blocks:
/// `sign(v) · floor(|v| + 0.5)`, round half away from zero, in the three
/// temporaries (of the block values' shape).
fn encode_q8(
    l: &Launch<'_>,
    b: &Blocks,
    out: &Operand,
    scaled: &Handle<'_>,
    [t2, t3, t4]: [&Operand; 3],
) -> Result<()> {
    let acl = l.acl;
    let (t2h, t3h, t4h) = (t2.handle(acl)?, t3.handle(acl)?, t4.handle(acl)?);
    // sign(v) · floor(|v| + 0.5): round half away from zero.
    unary(l, ("Sign", acl.sign_ws, acl.sign), scaled, &t2h)?;
    unary(l, ("Abs", acl.abs_ws, acl.abs), scaled, &t3h)?;
    adds(l, &t3h, 0.5, &t4h)?;
    unary(l, ("Floor", acl.floor_ws, acl.floor), &t4h, &t3h)?;
    binary(l, false, &t3h, &t2h, &t4h)?;
    cast_raw(l, &t4h, &b.values(acl, out)?)
}

/// aclnnCast into a tensor of an aclDataType glmhal has no `DType` for
/// (int8, uint8): the target's own dtype is passed.
fn cast_raw(l: &Launch<'_>, x: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { (l.acl.cast_ws)(x.ptr(), out.dtype(), out.ptr(), &mut size, &mut exec) };
    l.run("Cast", status, size, exec, l.acl.cast)
}
