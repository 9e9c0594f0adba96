//! What GGUF blocks need on Ascend beyond element arithmetic: `aclnnAdds`
//! (removing Q4_0's + 8) and `aclnnWeightQuantBatchMatmulV2` (int8 weights,
//! per-group scales).

use std::ffi::c_void;

use crate::math_ops::scalar_value;
use crate::ops::{hand_out, tensors, unary, Work};
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
/// antiquantScale[k / group])` with x and y f16 or bf16 `[M, K]`/`[M, N]`,
/// int8 `weight [K, N]`, scales `[K / group, N]` in x's dtype, an optional
/// bias `[N]`; the simulator has no offsets and no output quantization.
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
    let g = group.max(0) as usize;
    let ok = x.dims.len() == 2
        && w.dims == [k, n]
        && matches!(x.dtype, Elem::F16 | Elem::Bf16)
        && w.dtype == Elem::I8
        && sc.dtype == x.dtype
        && yo.dtype == x.dtype
        && g > 0
        && k % g == 0
        && sc.dims == [k / g, n]
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
    let work = Work::Compute(Box::new(move || {
        for r in 0..m {
            for c in 0..n {
                let mut acc = 0.0;
                for q in 0..k {
                    let weight = w.read(w.element(q * n + c, &w.dims))
                        * sc.read(sc.element((q / g) * n + c, &sc.dims));
                    acc += x.read(x.element(r * k + q, &x.dims)) * weight;
                }
                if let Some(b) = &bias {
                    acc += b.read(b.element(c, &b.dims));
                }
                yo.write(yo.element(r * n + c, &yo.dims), acc);
            }
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "WeightQuantBatchMatmulV2", ws, exec) }
}
second_phase!(aclnnWeightQuantBatchMatmulV2, "WeightQuantBatchMatmulV2");
