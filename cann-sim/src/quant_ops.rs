//! What GGUF blocks need on Ascend beyond element arithmetic: `aclnnAdds`
//! (removing Q4_0's + 8) and `aclnnWeightQuantBatchMatmulV2` (int8 weights,
//! per-group scales).

use std::ffi::c_void;

use glmhal_hal::Arithmetic;

use crate::math_ops::scalar_value;
use crate::ops::{hand_out, products, tensors, unary, Work};
use crate::soc::{require, Soc, WEIGHT_QUANT_MAX_N};
use crate::state::{code, lock};
use crate::tensor::{get, Elem, SimTensor};

/// ACL's `aclnnAddsGetWorkspaceSize`: `out = self + alpha · other` (scalars).
#[no_mangle]
pub unsafe extern "C" fn aclnnAddsGetWorkspaceSize(
    x: *const c_void,
    other: *const c_void,
    alpha: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnAddsGetWorkspaceSize";
    let k = match (scalar_value(call, other), scalar_value(call, alpha)) {
        (Ok(o), Ok(a)) => o * a,
        (Err(e), _) | (_, Err(e)) => return e,
    };
    // SAFETY: forwarded from the caller.
    unsafe { unary(call, x, out, |v, k| v + k, k, "Adds", ws, exec) }
}
second_phase!(aclnnAdds, "Adds");

/// ACL's `aclnnWeightQuantBatchMatmulV2GetWorkspaceSize`: `y = x · (weight ·
/// antiquantScale[k / group])` with x and y f16 (or bf16 on Atlas A2)
/// `[M, K]`/`[M, N]`, int8 `weight [K, N]` with N at most 65535, scales per
/// group of a multiple of 32 or per channel in x's dtype, an optional bias
/// `[N]`; the simulator has no offsets and no output quantization.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn aclnnWeightQuantBatchMatmulV2GetWorkspaceSize(
    x: *const c_void,
    weight: *const c_void,
    scale: *const c_void,
    offset: *const c_void,
    quant_scale: *const c_void,
    quant_offset: *const c_void,
    bias: *const c_void,
    group: i32,
    y: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnWeightQuantBatchMatmulV2GetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [x, w, sc, yo] = match tensors(
        s,
        call,
        [
            ("x", x),
            ("weight", weight),
            ("antiquantScale", scale),
            ("y", y),
        ],
    ) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let bias: Option<SimTensor> = if bias.is_null() {
        None
    } else {
        match get(s, call, "biasOptional", bias) {
            Ok(b) => Some(b),
            Err(e) => return e,
        }
    };
    let (m, k) = (
        x.dims.first().copied().unwrap_or(0),
        x.dims.get(1).copied().unwrap_or(0),
    );
    let n = w.dims.get(1).copied().unwrap_or(0);
    let per_scale = match limits(s, call, [&w, &sc], k, n, group) {
        Ok(p) => p,
        Err(e) => return e,
    };
    // The inference series takes f16 activations only.
    let soc = Soc::current();
    let x_ok = x.dtype == Elem::F16 || (x.dtype == Elem::Bf16 && soc == Soc::A2);
    let scale_rows = k.div_ceil(per_scale);
    let ok = x.dims.len() == 2
        && w.dims == [k, n]
        && x_ok
        && w.dtype == Elem::I8
        && sc.dtype == x.dtype
        && yo.dtype == x.dtype
        && scale_shape_ok(&sc.dims, scale_rows, n, group == 0, soc)
        && yo.dims == [m, n]
        && bias.as_ref().is_none_or(|b| b.dims == [n])
        && offset.is_null()
        && quant_scale.is_null()
        && quant_offset.is_null();
    if !ok {
        return s.violation(
            call,
            format!(
                "x {:?} {}, weight {:?} {}, antiquantScale {:?} {}, y {:?} {}, group {group}, bias {:?}, optional offsets given: {}",
                x.dims, x.dtype, w.dims, w.dtype, sc.dims, sc.dtype, yo.dims, yo.dtype,
                bias.as_ref().map(|b| &b.dims),
                !(offset.is_null() && quant_scale.is_null() && quant_offset.is_null())
            ),
            code::INVALID_PARAM,
        );
    }
    // The weight is dequantized (value times scale) into x's dtype before
    // the cube multiplies.
    let dequantized = if x.dtype == Elem::Bf16 {
        Arithmetic::Bf16
    } else {
        Arithmetic::F16
    };
    let work = Work::Compute(Box::new(move || {
        let weights: Vec<f64> = (0..k * n)
            .map(|i| {
                let (q, c) = (i / n, i % n);
                dequantized.round(
                    w.read(w.element(i, &w.dims))
                        * sc.read(sc.element((q / per_scale) * n + c, &sc.dims)),
                )
            })
            .collect();
        let product = products(&x.values(&x.dims, |v| v), &weights, [m, k, n]);
        for (i, v) in product.iter().enumerate() {
            let bias = bias
                .as_ref()
                .map_or(0.0, |b| b.read(b.element(i % n, &b.dims)));
            yo.write(yo.element(i, &yo.dims), v + bias);
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "WeightQuantBatchMatmulV2", ws, exec) }
}
second_phase!(aclnnWeightQuantBatchMatmulV2, "WeightQuantBatchMatmulV2");

/// The SoC, N, group-size and layout rules of aclnnWeightQuantBatchMatmulV2
/// for `weight` and `scale` of a `K × N` product; the values along K that
/// share one scale.
fn limits(
    s: &mut crate::state::State,
    call: &str,
    [w, sc]: [&SimTensor; 2],
    k: usize,
    n: usize,
    group: i32,
) -> Result<usize, i32> {
    require(
        s,
        call,
        "WeightQuantBatchMatmulV2",
        Soc::has_weight_quant_matmul,
    )?;
    if n > WEIGHT_QUANT_MAX_N || k > WEIGHT_QUANT_MAX_N {
        return Err(s.violation(
            call,
            format!("K {k} or N {n} exceeds {WEIGHT_QUANT_MAX_N}: split the product"),
            code::INVALID_PARAM,
        ));
    }
    // Per channel (0) or per group of a multiple of 32 in [32, K - 1].
    let g = group.max(0) as usize;
    let group_ok = group == 0 || (group > 0 && g.is_multiple_of(32) && g >= 32 && g < k);
    if !group_ok {
        return Err(s.violation(
            call,
            format!("antiquantGroupSize {group} with K {k}: 0, or a multiple of 32 in [32, K - 1]"),
            code::INVALID_PARAM,
        ));
    }
    if !dense_or_transposed(w) || !dense_or_transposed(sc) {
        return Err(s.violation(
            call,
            format!(
                "weight (strides {:?}) and antiquantScale (strides {:?}) must each be contiguous or the transpose of a contiguous tensor",
                w.strides, sc.strides
            ),
            code::INVALID_PARAM,
        ));
    }
    Ok(if g == 0 { k.max(1) } else { g })
}

/// A 1-D view with unit stride, or a 2-D one that is contiguous or the
/// transpose of a contiguous tensor (the only non-contiguous weights and
/// scales the op takes).
fn dense_or_transposed(t: &SimTensor) -> bool {
    match (t.dims.as_slice(), t.strides.as_slice()) {
        ([d], [s]) => *d <= 1 || *s == 1,
        ([r, c], [sr, sc]) => {
            (*sc == 1 && (*r <= 1 || *sr == *c)) || (*sr == 1 && (*c <= 1 || *sc == *r))
        }
        _ => false,
    }
}

/// The antiquantScale shapes the documentation lists: per group
/// `[ceil(K / group), N]`; per channel `[N]`, or `[1, N]` on Atlas A2 and
/// `[N, 1]` on the inference series.
fn scale_shape_ok(dims: &[usize], rows: usize, n: usize, per_channel: bool, soc: Soc) -> bool {
    if !per_channel {
        return dims == [rows, n];
    }
    dims == [n] || (soc == Soc::A2 && dims == [1, n]) || (soc == Soc::Inference && dims == [n, 1])
}
