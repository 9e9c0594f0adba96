//! mat_mul (aclnnMm with W passed as a transposed view, then aclnnAdd for the
//! bias) and batched_mat_mul (aclnnBatchMatMul; views make transposes free);
//! operands of different dtypes go through f32 copies. `cubeMathType` comes
//! from the SoC family: f32 products run in f16 where the cube has no f32.

use std::ffi::c_void;

use glmhal_hal::{DType, Result};

use super::convert::cast;
use super::elementwise::binary;
use super::{Handle, Launch, Operand};

/// `y = x · wᵀ (+ bias)`; `w_t` is W's `[K, N]` transposed view.
pub(crate) fn mat_mul(
    l: &Launch<'_>,
    x: &Handle<'_>,
    w_t: &Handle<'_>,
    bias: Option<&Handle<'_>>,
    y: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.mm_ws)(
            x.ptr(),
            w_t.ptr(),
            y.ptr(),
            l.family.cube_math_type(x.dtype()),
            &mut size,
            &mut exec,
        )
    };
    l.run("Mm", status, size, exec, l.acl.mm)?;
    match bias {
        Some(b) => binary(l, true, y, b, y),
        None => Ok(()),
    }
}

/// `out[b] = a[b] · m[b]`.
pub(crate) fn batched(
    l: &Launch<'_>,
    a: &Handle<'_>,
    m: &Handle<'_>,
    out: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.batch_matmul_ws)(
            a.ptr(),
            m.ptr(),
            out.ptr(),
            l.family.cube_math_type(a.dtype()),
            &mut size,
            &mut exec,
        )
    };
    l.run("BatchMatMul", status, size, exec, l.acl.batch_matmul)
}

/// mat_mul whose x, w and y are not of one dtype: the operands cast to f32
/// (aclnnMm takes one dtype), the product in f32, the result cast back.
pub(crate) fn mat_mul_mixed(
    l: &Launch<'_>,
    x: &Operand,
    w: &Operand,
    bias: Option<&Operand>,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (m, k, n) = (x.desc.shape[0], x.desc.shape[1], w.desc.shape[0]);
    let temps = l.temps(&[
        (DType::F32, &[m, k]),
        (DType::F32, &[n, k]),
        (DType::F32, &[m, n]),
    ])?;
    let [x32, w32, y32] = &temps[..] else {
        unreachable!("three temporaries were asked for")
    };
    let (x_in, w_in) = (l.as_f32(x, x32)?, l.as_f32(w, w32)?);
    let w_t = w_in.view(
        acl,
        &[k, n],
        &[w_in.desc.strides[1], w_in.desc.strides[0]],
        0,
    )?;
    let bias = bias.map(|b| b.handle(acl)).transpose()?;
    let target = if out.desc.dtype == DType::F32 {
        out
    } else {
        y32
    };
    let y = target.handle(acl)?;
    mat_mul(l, &x_in.handle(acl)?, &w_t, bias.as_ref(), &y)?;
    if out.desc.dtype != DType::F32 {
        cast(l, &y, out.desc.dtype, &out.handle(acl)?)?;
    }
    Ok(())
}

/// batched_mat_mul whose a, b and out are not of one dtype, through f32.
pub(crate) fn batched_mixed(l: &Launch<'_>, a: &Operand, b: &Operand, out: &Operand) -> Result<()> {
    let acl = l.acl;
    let temps = l.temps(&[
        (DType::F32, &a.desc.shape),
        (DType::F32, &b.desc.shape),
        (DType::F32, &out.desc.shape),
    ])?;
    let [a32, b32, y32] = &temps[..] else {
        unreachable!("three temporaries were asked for")
    };
    let (a_in, b_in) = (l.as_f32(a, a32)?, l.as_f32(b, b32)?);
    let target = if out.desc.dtype == DType::F32 {
        out
    } else {
        y32
    };
    let y = target.handle(acl)?;
    batched(l, &a_in.handle(acl)?, &b_in.handle(acl)?, &y)?;
    if out.desc.dtype != DType::F32 {
        cast(l, &y, out.desc.dtype, &out.handle(acl)?)?;
    }
    Ok(())
}
