//! rms_norm (aclnnRmsNorm, which also writes the per-row rstd into scratch)
//! and layer_norm (aclnnLayerNorm without mean and rstd outputs).

use std::ffi::c_void;

use glmhal_hal::{DType, Result, TensorDesc};

use super::convert::cast;
use super::{tensor, Handle, IntArray, Launch, Operand};

/// `y = w · cast_back(x · rsqrt(mean(x²) + eps))` over the last dim. GLM
/// rounds the normalized value to the activation dtype before the weight:
/// for f16/bf16 `x` the norm runs with a weight of ones into a temporary of
/// `x`'s dtype, then aclnnMul applies `w`; for f32 `x` one aclnnRmsNorm.
pub(crate) fn rms_norm(
    l: &Launch<'_>,
    x: &Handle<'_>,
    w: &Handle<'_>,
    x_desc: &TensorDesc,
    eps: f64,
    y: &Handle<'_>,
) -> Result<()> {
    let mut rstd_shape = x_desc.shape.clone();
    if let Some(last) = rstd_shape.last_mut() {
        *last = 1;
    }
    let dtype = x_desc.dtype;
    if dtype == DType::F32 {
        let temps = l.temps(&[(DType::F32, &rstd_shape)])?;
        let rstd = temps[0].handle(l.acl)?;
        return rms_norm_call(l, [x, w], eps, y, &rstd);
    }
    let cols = x_desc.shape.last().copied().unwrap_or(1);
    let temps = l.temps(&[(DType::F32, &rstd_shape), (dtype, &x_desc.shape)])?;
    let (rstd, normalized) = (temps[0].handle(l.acl)?, temps[1].handle(l.acl)?);
    let key = format!("ones:{dtype}:{cols}");
    let ones_desc = TensorDesc::contiguous(dtype, &[cols]);
    let base = (l.constant)(&key, &|| {
        glmhal_hal::quant::from_f32(dtype, &vec![1.0; cols]).unwrap_or_default()
    })?;
    let ones = tensor(l.acl, &ones_desc, base, dtype.bytes_for(cols))?;
    rms_norm_call(l, [x, &ones], eps, &normalized, &rstd)?;
    super::elementwise::binary(l, false, &normalized, w, y)
}

fn rms_norm_call(
    l: &Launch<'_>,
    [x, w]: [&Handle<'_>; 2],
    eps: f64,
    y: &Handle<'_>,
    rstd: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.rms_norm_ws)(
            x.ptr(),
            w.ptr(),
            eps,
            y.ptr(),
            rstd.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("RmsNorm", status, size, exec, l.acl.rms_norm)
}

fn layer_norm_call(
    l: &Launch<'_>,
    [x, w, b]: [&Handle<'_>; 3],
    cols: usize,
    eps: f64,
    y: &Handle<'_>,
) -> Result<()> {
    let shape = IntArray::new(l.acl, &[cols as i64])?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; mean and rstd are optional (NULL).
    let status = unsafe {
        (l.acl.layer_norm_ws)(
            x.ptr(),
            shape.ptr(),
            w.ptr(),
            b.ptr(),
            eps,
            y.ptr(),
            std::ptr::null(),
            std::ptr::null(),
            &mut size,
            &mut exec,
        )
    };
    l.run("LayerNorm", status, size, exec, l.acl.layer_norm)
}

/// `y = (x - mean) · rsqrt(var + eps) · w + b` over the last dim
/// (aclnnLayerNorm, normalizedShape `[H]`); mixed dtypes run in f32.
pub(crate) fn layer_norm(
    l: &Launch<'_>,
    [x, w, b]: [&Operand; 3],
    eps: f64,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let cols = x.desc.shape.last().copied().unwrap_or(1);
    if [w, b, out].iter().all(|t| t.desc.dtype == x.desc.dtype) {
        let handles = [x.handle(acl)?, w.handle(acl)?, b.handle(acl)?];
        let [xh, wh, bh] = &handles;
        return layer_norm_call(l, [xh, wh, bh], cols, eps, &out.handle(acl)?);
    }
    let shape = x.desc.shape.clone();
    let temps = l.temps(&[
        (DType::F32, &shape),
        (DType::F32, &[cols]),
        (DType::F32, &[cols]),
        (DType::F32, &shape),
    ])?;
    let [x32, w32, b32, y32] = &temps[..] else {
        unreachable!("four temporaries were asked for")
    };
    let ins = [l.as_f32(x, x32)?, l.as_f32(w, w32)?, l.as_f32(b, b32)?];
    let handles = [
        ins[0].handle(acl)?,
        ins[1].handle(acl)?,
        ins[2].handle(acl)?,
    ];
    let [xh, wh, bh] = &handles;
    if out.desc.dtype == DType::F32 {
        layer_norm_call(l, [xh, wh, bh], cols, eps, &out.handle(acl)?)
    } else {
        let y = y32.handle(acl)?;
        layer_norm_call(l, [xh, wh, bh], cols, eps, &y)?;
        cast(l, &y, out.desc.dtype, &out.handle(acl)?)
    }
}
