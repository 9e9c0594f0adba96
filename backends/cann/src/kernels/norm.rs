//! rms_norm (aclnnRmsNorm, which also writes the per-row rstd into scratch)
//! and layer_norm (aclnnLayerNorm without mean and rstd outputs). Where the
//! SoC has no such op (aclnnRmsNorm on the training series, aclnnLayerNorm
//! on the inference series) the norm is composed in f32 from aclnnMul,
//! aclnnReduceSum, aclnnDivs, aclnnAdds, aclnnRsqrt and aclnnAdd.

use std::ffi::c_void;

use glmhal_hal::{DType, Result, TensorDesc};

use super::convert::cast;
use super::elementwise::{adds, binary, row_sum, scalar_op, scale, unary};
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
    if !l.family.has_rms_norm() {
        return rms_norm_composed(l, [x, w], x_desc, eps, y);
    }
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

/// [`rms_norm`] where the SoC has no aclnnRmsNorm: `rstd` from aclnnMul,
/// aclnnReduceSum, aclnnDivs, aclnnAdds and aclnnRsqrt in f32, then the
/// same roundings as the fused path (normalized, rounded to `x`'s dtype,
/// times `w`).
fn rms_norm_composed(
    l: &Launch<'_>,
    [x, w]: [&Handle<'_>; 2],
    x_desc: &TensorDesc,
    eps: f64,
    y: &Handle<'_>,
) -> Result<()> {
    let acl = l.acl;
    let shape = &x_desc.shape;
    let cols = shape.last().copied().unwrap_or(1);
    let mut rows = shape.clone();
    if let Some(last) = rows.last_mut() {
        *last = 1;
    }
    let dtype = x_desc.dtype;
    let temps = l.temps(&[
        (DType::F32, shape),
        (DType::F32, shape),
        (DType::F32, &rows),
        (DType::F32, &rows),
        (dtype, shape),
    ])?;
    let handles = temps
        .iter()
        .map(|t| t.handle(acl))
        .collect::<Result<Vec<_>>>()?;
    let [x32, product, sum, mean, normalized] = &handles[..] else {
        unreachable!("five temporaries were asked for")
    };
    let input = if dtype == DType::F32 {
        x
    } else {
        cast(l, x, DType::F32, x32)?;
        x32
    };
    rstd(l, input, (cols, eps), [product, sum, mean], mean)?;
    binary(l, false, input, mean, product)?;
    if dtype == DType::F32 {
        return binary(l, false, product, w, y);
    }
    cast(l, product, dtype, normalized)?;
    binary(l, false, normalized, w, y)
}

/// `out = rsqrt(mean(v²) + eps)` over the last dim of `v`, through the f32
/// temporaries `square`, `sum` and `mean` (`out` may be `mean`).
fn rstd(
    l: &Launch<'_>,
    v: &Handle<'_>,
    (cols, eps): (usize, f64),
    [square, sum, mean]: [&Handle<'_>; 3],
    out: &Handle<'_>,
) -> Result<()> {
    binary(l, false, v, v, square)?;
    row_sum(l, square, sum)?;
    scalar_op(
        l,
        ("Divs", l.acl.divs_ws, l.acl.divs),
        sum,
        cols as f32,
        mean,
    )?;
    adds(l, mean, eps as f32, sum)?;
    unary(l, ("Rsqrt", l.acl.rsqrt_ws, l.acl.rsqrt), sum, out)
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
    let fused = l.family.has_layer_norm();
    if fused && [w, b, out].iter().all(|t| t.desc.dtype == x.desc.dtype) {
        let handles = [x.handle(acl)?, w.handle(acl)?, b.handle(acl)?];
        let [xh, wh, bh] = &handles;
        return layer_norm_call(l, [xh, wh, bh], cols, eps, &out.handle(acl)?);
    }
    let shape = x.desc.shape.clone();
    let mut rows = shape.clone();
    if let Some(last) = rows.last_mut() {
        *last = 1;
    }
    let row = [cols];
    let mut specs: Vec<(DType, &[usize])> = vec![
        (DType::F32, &shape),
        (DType::F32, &row),
        (DType::F32, &row),
        (DType::F32, &shape),
    ];
    if !fused {
        specs.extend([(DType::F32, &shape[..]), (DType::F32, &shape[..])]);
        specs.extend([(DType::F32, &rows[..]); 3]);
    }
    let temps = l.temps(&specs)?;
    let [x32, w32, b32, y32, rest @ ..] = &temps[..] else {
        unreachable!("four temporaries or more were asked for")
    };
    let ins = [l.as_f32(x, x32)?, l.as_f32(w, w32)?, l.as_f32(b, b32)?];
    let handles = [
        ins[0].handle(acl)?,
        ins[1].handle(acl)?,
        ins[2].handle(acl)?,
    ];
    let [xh, wh, bh] = &handles;
    let target = if out.desc.dtype == DType::F32 {
        out.handle(acl)?
    } else {
        y32.handle(acl)?
    };
    if fused {
        layer_norm_call(l, [xh, wh, bh], cols, eps, &target)?;
    } else {
        let rest = rest
            .iter()
            .map(|t| t.handle(acl))
            .collect::<Result<Vec<_>>>()?;
        layer_norm_composed(l, [xh, wh, bh], (cols, eps), &target, &rest)?;
    }
    if out.desc.dtype != DType::F32 {
        cast(l, &target, out.desc.dtype, &out.handle(acl)?)?;
    }
    Ok(())
}

/// [`layer_norm`] in f32 where the SoC has no aclnnLayerNorm: the mean and
/// the variance of the centred row from aclnnReduceSum and aclnnDivs, then
/// `(x − mean) · rsqrt(var + eps) · w + b`.
fn layer_norm_composed(
    l: &Launch<'_>,
    [x, w, b]: [&Handle<'_>; 3],
    (cols, eps): (usize, f64),
    y: &Handle<'_>,
    temps: &[Handle<'_>],
) -> Result<()> {
    let [centred, product, sum, mean, rstd] = temps else {
        unreachable!("five temporaries were asked for")
    };
    row_sum(l, x, sum)?;
    scalar_op(
        l,
        ("Divs", l.acl.divs_ws, l.acl.divs),
        sum,
        cols as f32,
        mean,
    )?;
    scale(l, mean, -1.0, sum)?;
    binary(l, true, x, sum, centred)?;
    self::rstd(l, centred, (cols, eps), [product, sum, mean], rstd)?;
    binary(l, false, centred, rstd, product)?;
    binary(l, false, product, w, centred)?;
    binary(l, true, centred, b, y)
}
