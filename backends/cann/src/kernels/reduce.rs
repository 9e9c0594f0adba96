//! softmax over the last dim (aclnnSoftmax; scaled or causal rows go
//! through aclnnMuls and the -inf mask first, in f32) and argmax
//! (aclnnArgMax to int64, then aclnnCast to i32; each row's largest
//! magnitude beside it, which the backend reads to refuse non-finite rows).

use std::ffi::c_void;

use glmhal_hal::{DType, Result};

use super::convert::cast;
use super::elementwise::mask_fill;
use super::elementwise::scale as muls;
use super::elementwise::unary;
use super::{raw_tensor, Handle, IntArray, Launch, Layout, Operand};
use crate::loader::ACL_INT64;

/// `out = softmax(x)` along the last dim.
pub(crate) fn softmax(l: &Launch<'_>, x: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { (l.acl.softmax_ws)(x.ptr(), -1, out.ptr(), &mut size, &mut exec) };
    l.run("Softmax", status, size, exec, l.acl.softmax)
}

/// `out = softmax(x · factor)`, row `i` of the last two dims `[M, N]`
/// seeing columns up to `i + N - M` when causal.
pub(crate) fn scaled_softmax(
    l: &Launch<'_>,
    x: &Operand,
    factor: f64,
    causal: bool,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let shape = x.desc.shape.clone();
    let temps = l.temps(&[
        (DType::F32, &shape),
        (DType::F32, &shape),
        (DType::F32, &shape),
    ])?;
    let [x32, scaled, y32] = &temps[..] else {
        unreachable!("three temporaries were asked for")
    };
    let x_in = l.as_f32(x, x32)?;
    let scaled_h = scaled.handle(acl)?;
    muls(l, &x_in.handle(acl)?, factor, &scaled_h)?;
    let cols = shape.last().copied().unwrap_or(1);
    let rows = if shape.len() >= 2 {
        shape[shape.len() - 2]
    } else {
        1
    };
    if causal && rows > 1 {
        mask_fill(l, &scaled_h, &l.causal_mask(rows, cols)?, f32::NEG_INFINITY)?;
    }
    if out.desc.dtype == DType::F32 {
        softmax(l, &scaled_h, &out.handle(acl)?)
    } else {
        let y = y32.handle(acl)?;
        softmax(l, &scaled_h, &y)?;
        cast(l, &y, out.desc.dtype, &out.handle(acl)?)
    }
}

/// `out[r] = the first index of the largest value of row r`, as i32.
/// Returns, in scratch, the largest magnitude of each row (aclnnAbs then
/// aclnnAmax, `[rows, 1]` in x's dtype), for the caller to read after a
/// wait: a NaN or an infinity there means the row holds one. (aclnnAmax
/// propagates NaN as `torch.amax` does. SoCs running in saturation mode clamp
/// overflows instead of producing infinities, so there this finds only what
/// the saturation left.)
pub(crate) fn argmax(l: &Launch<'_>, x: &Operand, out: &Operand) -> Result<Operand> {
    let acl = l.acl;
    let rows: usize = out.desc.shape.iter().product();
    // int64 has no glmhal dtype: two i32 words per index.
    let temps = l.temps(&[
        (DType::I32, &[2 * rows.max(1)]),
        (x.desc.dtype, &x.desc.shape),
        (x.desc.dtype, &[rows, 1]),
    ])?;
    let [scratch, magnitude, largest] = &temps[..] else {
        unreachable!("three temporaries were asked for")
    };
    let indices = raw_tensor(
        acl,
        Layout {
            dims: &out.desc.shape,
            strides: &glmhal_hal::contiguous_strides(&out.desc.shape),
            offset: 0,
            dtype: ACL_INT64,
            elem_bytes: 8,
        },
        scratch.base,
        scratch.len,
    )?;
    let x_h = x.handle(acl)?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status =
        unsafe { (acl.argmax_ws)(x_h.ptr(), -1, false, indices.ptr(), &mut size, &mut exec) };
    l.run("ArgMax", status, size, exec, acl.argmax)?;
    cast(l, &indices, DType::I32, &out.handle(acl)?)?;

    let magnitude_h = magnitude.handle(acl)?;
    unary(l, ("Abs", acl.abs_ws, acl.abs), &x_h, &magnitude_h)?;
    let last = IntArray::new(acl, &[-1])?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: as above.
    let status = unsafe {
        (acl.amax_ws)(
            magnitude_h.ptr(),
            last.ptr(),
            true,
            largest.handle(acl)?.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("Amax", status, size, exec, acl.amax)?;
    Ok(largest.clone())
}
