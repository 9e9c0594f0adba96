//! Row reductions beyond softmax and rms_norm: `aclnnArgMax` (int64 indices)
//! and `aclnnLayerNorm` (optional weight, bias, mean and rstd).

use std::ffi::c_void;

use crate::ops::{hand_out, tensors, Work};
use crate::state::{code, lock};
use crate::tensor::{get, get_int_array, Elem, SimTensor};

/// ACL's `aclnnArgMaxGetWorkspaceSize`: the index of the first largest value
/// along the last dim, as int64.
#[no_mangle]
pub unsafe extern "C" fn aclnnArgMaxGetWorkspaceSize(
    x: *const c_void,
    dim: i64,
    keepdim: bool,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnArgMaxGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [x, o] = match tensors(s, call, [("self", x), ("out", out)]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let rank = x.dims.len() as i64;
    let expected = crate::math_ops::reduced_dims(&x.dims, keepdim);
    let ok = rank >= 1
        && (dim == -1 || dim == rank - 1)
        && o.dtype == Elem::I64
        && o.dims == expected
        && x.dtype.is_float();
    if !ok {
        return s.violation(
            call,
            format!(
                "self {:?} {}, dim {dim}, keepdim {keepdim}, out {:?} {} (the simulator maps the last dim, int64 out)",
                x.dims, x.dtype, o.dims, o.dtype
            ),
            code::INVALID_PARAM,
        );
    }
    let work = Work::Compute(Box::new(move || {
        let cols = x.dims.last().copied().unwrap_or(1).max(1);
        for row in 0..x.numel() / cols {
            let mut best = (0usize, f64::NEG_INFINITY);
            for c in 0..cols {
                let v = x.read(x.element(row * cols + c, &x.dims));
                if v > best.1 || (c == 0 && v.is_nan()) {
                    best = (c, v);
                }
            }
            o.write(o.element(row, &o.dims), best.0 as f64);
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "ArgMax", ws, exec) }
}
second_phase!(aclnnArgMax, "ArgMax");

/// ACL's `aclnnLayerNormGetWorkspaceSize`: normalizes over the trailing dims
/// `normalizedShape` names; `weight`, `bias`, `meanOut` and `rstdOut` may be NULL.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn aclnnLayerNormGetWorkspaceSize(
    x: *const c_void,
    normalized_shape: *const c_void,
    weight: *const c_void,
    bias: *const c_void,
    eps: f64,
    out: *const c_void,
    mean: *const c_void,
    rstd: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnLayerNormGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    if let Err(e) = crate::soc::require(s, call, "LayerNorm", crate::soc::Soc::has_layer_norm) {
        return e;
    }
    let [x, o] = match tensors(s, call, [("input", x), ("out", out)]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let shape = match get_int_array(s, call, normalized_shape) {
        Ok(a) => a.values,
        Err(e) => return e,
    };
    let mut optional = |name: &str, p: *const c_void| -> Result<Option<SimTensor>, i32> {
        if p.is_null() {
            Ok(None)
        } else {
            get(s, call, name, p).map(Some)
        }
    };
    let (w, b, m, r) = match (
        optional("weight", weight),
        optional("bias", bias),
        optional("meanOut", mean),
        optional("rstdOut", rstd),
    ) {
        (Ok(w), Ok(b), Ok(m), Ok(r)) => (w, b, m, r),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return e,
    };
    let cols = x.dims.last().copied().unwrap_or(0);
    let mut stat_dims = x.dims.clone();
    if let Some(l) = stat_dims.last_mut() {
        *l = 1;
    }
    let ok = shape == [cols as i64]
        && o.dims == x.dims
        && [&w, &b]
            .iter()
            .all(|t| t.as_ref().is_none_or(|t| t.dims == [cols]))
        && [&m, &r]
            .iter()
            .all(|t| t.as_ref().is_none_or(|t| t.dims == stat_dims))
        && eps.is_finite()
        && eps >= 0.0;
    if !ok {
        return s.violation(
            call,
            format!(
                "input {:?}, normalizedShape {shape:?}, weight {:?}, bias {:?}, out {:?}, meanOut {:?}, rstdOut {:?}, eps {eps} (the simulator maps the last dim)",
                x.dims,
                w.as_ref().map(|t| &t.dims),
                b.as_ref().map(|t| &t.dims),
                o.dims,
                m.as_ref().map(|t| &t.dims),
                r.as_ref().map(|t| &t.dims),
            ),
            code::INVALID_PARAM,
        );
    }
    let work = Work::Compute(Box::new(move || {
        let n = cols.max(1);
        for row in 0..x.numel() / n {
            let v: Vec<f64> = (0..n)
                .map(|c| x.read(x.element(row * n + c, &x.dims)))
                .collect();
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / n as f64;
            let inv = 1.0 / (var + eps).sqrt();
            for (c, e) in v.iter().enumerate() {
                let g = w.as_ref().map_or(1.0, |w| w.read(w.element(c, &w.dims)));
                let beta = b.as_ref().map_or(0.0, |b| b.read(b.element(c, &b.dims)));
                o.write(o.element(row * n + c, &o.dims), (e - mean) * inv * g + beta);
            }
            if let Some(m) = &m {
                m.write(m.element(row, &m.dims), mean);
            }
            if let Some(r) = &r {
                r.write(r.element(row, &r.dims), inv);
            }
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "LayerNorm", ws, exec) }
}
second_phase!(aclnnLayerNorm, "LayerNorm");
