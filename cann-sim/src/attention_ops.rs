//! What a composed attention needs beyond `Muls` and `Softmax`:
//! `aclnnMatmul` (torch.matmul semantics, batch dims broadcast) and
//! `aclnnInplaceMaskedFillScalar` (the causal mask).

use std::ffi::c_void;

use crate::ops::{broadcast, cube_inputs, hand_out, products, tensors, Work};
use crate::state::{code, lock};
use crate::tensor::{get_scalar, Elem};

/// ACL's `aclnnMatmulGetWorkspaceSize`: `out[..., m, n] = Σ self[..., m, k] ·
/// mat2[..., k, n]` with the leading dims broadcast, one float dtype.
#[no_mangle]
pub unsafe extern "C" fn aclnnMatmulGetWorkspaceSize(
    a: *const c_void,
    b: *const c_void,
    out: *const c_void,
    cube_math_type: i8,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnMatmulGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [a, b, o] = match tensors(s, call, [("self", a), ("mat2", b), ("out", out)]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let (ra, rb) = (a.dims.len(), b.dims.len());
    let batch = (ra >= 2 && rb >= 2)
        .then(|| broadcast(&a.dims[..ra - 2], &b.dims[..rb - 2]))
        .flatten();
    let expected = batch.as_ref().map(|bt| {
        let mut d = bt.clone();
        d.extend([a.dims[ra - 2], b.dims[rb - 1]]);
        d
    });
    let ok = expected.as_ref() == Some(&o.dims)
        && a.dims[ra - 1] == b.dims[rb - 2]
        && a.dtype == b.dtype
        && a.dtype == o.dtype
        && a.dtype.is_float();
    let Some(batch) = batch.filter(|_| ok) else {
        return s.violation(
            call,
            format!(
                "self {:?} {}, mat2 {:?} {}, out {:?} {}, cubeMathType {cube_math_type}",
                a.dims, a.dtype, b.dims, b.dtype, o.dims, o.dtype
            ),
            code::INVALID_PARAM,
        );
    };
    let cube = match cube_inputs(s, call, &a, cube_math_type) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let work = Work::Compute(Box::new(move || {
        let (m, k, n) = (a.dims[ra - 2], a.dims[ra - 1], b.dims[rb - 1]);
        let with = |tail: [usize; 2]| {
            let mut d = batch.clone();
            d.extend(tail);
            d
        };
        let (sa, sb) = (with([m, k]), with([k, n]));
        let count: usize = batch.iter().product();
        let (av, bv) = (
            a.values(&sa, |v| cube.apply(v)),
            b.values(&sb, |v| cube.apply(v)),
        );
        for bi in 0..count {
            let product = products(
                &av[bi * m * k..(bi + 1) * m * k],
                &bv[bi * k * n..(bi + 1) * k * n],
                [m, k, n],
            );
            for (i, v) in product.iter().enumerate() {
                o.write(o.element(bi * m * n + i, &o.dims), *v);
            }
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "Matmul", ws, exec) }
}
second_phase!(aclnnMatmul, "Matmul");

/// ACL's `aclnnInplaceMaskedFillScalarGetWorkspaceSize`: `selfRef[i] = value`
/// where the bool `mask`, broadcast to `selfRef`, is true.
#[no_mangle]
pub unsafe extern "C" fn aclnnInplaceMaskedFillScalarGetWorkspaceSize(
    target: *const c_void,
    mask: *const c_void,
    value: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnInplaceMaskedFillScalarGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [t, m] = match tensors(s, call, [("selfRef", target), ("mask", mask)]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let v = match get_scalar(s, call, value) {
        Ok(v) => v.value,
        Err(e) => return e,
    };
    if m.dtype != Elem::Bool || broadcast(&m.dims, &t.dims).as_deref() != Some(&t.dims[..]) {
        return s.violation(
            call,
            format!(
                "mask {:?} {} must be bool and broadcast to selfRef {:?}",
                m.dims, m.dtype, t.dims
            ),
            code::INVALID_PARAM,
        );
    }
    let work = Work::Compute(Box::new(move || {
        for i in 0..t.numel() {
            if m.read(m.element(i, &t.dims)) != 0.0 {
                t.write(t.element(i, &t.dims), v);
            }
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "InplaceMaskedFillScalar", ws, exec) }
}
second_phase!(aclnnInplaceMaskedFillScalar, "InplaceMaskedFillScalar");
