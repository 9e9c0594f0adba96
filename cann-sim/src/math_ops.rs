//! Element and block arithmetic GGUF blocks are composed of:
//! `aclnnAbs`, `aclnnSign`, `aclnnFloor`, `aclnnReciprocal`, `aclnnDivs`,
//! `aclnnRemainderTensorScalar`, `aclnnFloorDivides`,
//! `aclnnEqScalar` (bool out), `aclnnClamp`, `aclnnAmax` (over one dim) and
//! `aclnnGather` (torch.gather with int64 indices); and what norms are
//! composed of where the SoC has no norm op: `aclnnRsqrt`, `aclnnReduceSum`.

use std::ffi::c_void;

use crate::ops::{hand_out, tensors, unary, Work};
use crate::state::{code, lock};
use crate::tensor::{get_int_array, get_scalar, Elem, SimTensor};

/// Defines a one-input elementwise op: `aclnnXxxGetWorkspaceSize(self, out)`.
macro_rules! elementwise {
    ($ws:ident, $run:ident, $op:literal, $f:expr) => {
        #[doc = concat!("ACL's `aclnn", $op, "GetWorkspaceSize`, with the simulator's checks.")]
        #[no_mangle]
        pub unsafe extern "C" fn $ws(
            x: *const c_void,
            out: *const c_void,
            ws: *mut u64,
            exec: *mut *mut c_void,
        ) -> i32 {
            // SAFETY: forwarded from the caller.
            unsafe {
                unary(
                    concat!("aclnn", $op, "GetWorkspaceSize"),
                    x,
                    out,
                    $f,
                    0.0,
                    $op,
                    ws,
                    exec,
                )
            }
        }
        second_phase!($run, $op);
    };
}

elementwise!(aclnnAbsGetWorkspaceSize, aclnnAbs, "Abs", |v, _| v.abs());
elementwise!(aclnnSignGetWorkspaceSize, aclnnSign, "Sign", |v, _| {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
});
elementwise!(aclnnFloorGetWorkspaceSize, aclnnFloor, "Floor", |v, _| v
    .floor());
elementwise!(aclnnRsqrtGetWorkspaceSize, aclnnRsqrt, "Rsqrt", |v, _| 1.0
    / v.sqrt());
elementwise!(
    aclnnReciprocalGetWorkspaceSize,
    aclnnReciprocal,
    "Reciprocal",
    |v, _| 1.0 / v
);

/// The value of a live scalar, or the violation code.
pub(crate) fn scalar_value(call: &str, p: *const c_void) -> Result<f64, i32> {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return Err(code::UNINITIALIZED);
    };
    get_scalar(s, call, p).map(|v| v.value)
}

/// Defines a tensor-scalar op: `aclnnXxxGetWorkspaceSize(self, other, out)`.
macro_rules! with_scalar {
    ($ws:ident, $run:ident, $op:literal, $f:expr) => {
        #[doc = concat!("ACL's `aclnn", $op, "GetWorkspaceSize`, with the simulator's checks.")]
        #[no_mangle]
        pub unsafe extern "C" fn $ws(
            x: *const c_void,
            other: *const c_void,
            out: *const c_void,
            ws: *mut u64,
            exec: *mut *mut c_void,
        ) -> i32 {
            let call = concat!("aclnn", $op, "GetWorkspaceSize");
            let k = match scalar_value(call, other) {
                Ok(k) => k,
                Err(e) => return e,
            };
            // SAFETY: forwarded from the caller.
            unsafe { unary(call, x, out, $f, k, $op, ws, exec) }
        }
        second_phase!($run, $op);
    };
}

with_scalar!(aclnnDivsGetWorkspaceSize, aclnnDivs, "Divs", |v, k| v / k);
with_scalar!(
    aclnnRemainderTensorScalarGetWorkspaceSize,
    aclnnRemainderTensorScalar,
    "RemainderTensorScalar",
    |v, k| v - (v / k).floor() * k
);
with_scalar!(
    aclnnFloorDividesGetWorkspaceSize,
    aclnnFloorDivides,
    "FloorDivides",
    |v, k| (v / k).floor()
);

/// ACL's `aclnnEqScalarGetWorkspaceSize`: bool `out = (self == other)`.
#[no_mangle]
pub unsafe extern "C" fn aclnnEqScalarGetWorkspaceSize(
    x: *const c_void,
    other: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnEqScalarGetWorkspaceSize";
    let k = match scalar_value(call, other) {
        Ok(k) => k,
        Err(e) => return e,
    };
    {
        let mut guard = lock();
        let Some(s) = guard.as_mut() else {
            return code::UNINITIALIZED;
        };
        match tensors(s, call, [("out", out)]) {
            Ok([o]) if o.dtype == Elem::Bool => {}
            Ok([o]) => {
                return s.violation(
                    call,
                    format!("out is {}, not bool", o.dtype),
                    code::INVALID_PARAM,
                )
            }
            Err(e) => return e,
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        unary(
            call,
            x,
            out,
            |v, k| f64::from(u8::from(v == k)),
            k,
            "EqScalar",
            ws,
            exec,
        )
    }
}
second_phase!(aclnnEqScalar, "EqScalar");

/// ACL's `aclnnClampGetWorkspaceSize`: `out = min(max(self, min), max)`.
#[no_mangle]
pub unsafe extern "C" fn aclnnClampGetWorkspaceSize(
    x: *const c_void,
    min: *const c_void,
    max: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnClampGetWorkspaceSize";
    let (lo, hi) = match (scalar_value(call, min), scalar_value(call, max)) {
        (Ok(lo), Ok(hi)) => (lo, hi),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [x, o] = match tensors(s, call, [("self", x), ("out", out)]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if x.dims != o.dims || lo > hi {
        return s.violation(
            call,
            format!("self {:?}, out {:?}, min {lo}, max {hi}", x.dims, o.dims),
            code::INVALID_PARAM,
        );
    }
    let work = Work::Compute(Box::new(move || {
        for i in 0..o.numel() {
            let v = x.read(x.element(i, &x.dims)).max(lo).min(hi);
            o.write(o.element(i, &o.dims), v);
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "Clamp", ws, exec) }
}
second_phase!(aclnnClamp, "Clamp");

/// ACL's `aclnnAmaxGetWorkspaceSize`: the largest value along the one dim
/// `dim` names (the last), kept as size 1 when `keepDim`.
#[no_mangle]
pub unsafe extern "C" fn aclnnAmaxGetWorkspaceSize(
    x: *const c_void,
    dim: *const c_void,
    keep_dim: bool,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnAmaxGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let (x, o) =
        match last_dim_reduction(s, call, [x, out], dim, keep_dim, |x, o| o.dtype == x.dtype) {
            Ok(t) => t,
            Err(e) => return e,
        };
    // A NaN propagates, as in torch.amax (f64::max would drop it).
    let work = per_row(x, o, |row| {
        row.iter().fold(f64::NEG_INFINITY, |m, v| {
            if m.is_nan() || v.is_nan() {
                f64::NAN
            } else {
                m.max(*v)
            }
        })
    });
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "Amax", ws, exec) }
}
second_phase!(aclnnAmax, "Amax");

/// ACL's `aclnnReduceSumGetWorkspaceSize`: the sum along the one dim `dim`
/// names (the last), kept as size 1 when `keepDim`, computed and written in
/// `dtype` (out's).
#[no_mangle]
pub unsafe extern "C" fn aclnnReduceSumGetWorkspaceSize(
    x: *const c_void,
    dim: *const c_void,
    keep_dim: bool,
    dtype: i32,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnReduceSumGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let (x, o) = match last_dim_reduction(s, call, [x, out], dim, keep_dim, |x, o| {
        o.acl_dtype == dtype && o.dtype.is_float() && x.dtype.is_float()
    }) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let work = per_row(x, o, |row| row.iter().sum());
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "ReduceSum", ws, exec) }
}
second_phase!(aclnnReduceSum, "ReduceSum");

/// The shape a reduction over the last dim leaves: that dim kept as 1, or gone.
pub(crate) fn reduced_dims(dims: &[usize], keep_dim: bool) -> Vec<usize> {
    let mut expected = dims.to_vec();
    if keep_dim {
        if let Some(l) = expected.last_mut() {
            *l = 1;
        }
    } else {
        expected.pop();
    }
    expected
}

/// The `self` and `out` of a reduction over the one dim the int array `dim`
/// names, which the simulator takes only as the last; `dtypes_ok` says
/// whether their dtypes suit the op.
fn last_dim_reduction(
    s: &mut crate::state::State,
    call: &str,
    [x, out]: [*const c_void; 2],
    dim: *const c_void,
    keep_dim: bool,
    dtypes_ok: impl Fn(&SimTensor, &SimTensor) -> bool,
) -> Result<(SimTensor, SimTensor), i32> {
    let [x, o] = tensors(s, call, [("self", x), ("out", out)])?;
    let dims = get_int_array(s, call, dim)?.values;
    let rank = x.dims.len() as i64;
    let last = dims == [-1] || dims == [rank - 1];
    if !last || o.dims != reduced_dims(&x.dims, keep_dim) || !dtypes_ok(&x, &o) {
        return Err(s.violation(
            call,
            format!(
                "self {:?} {}, dim {dims:?}, keepDim {keep_dim}, out {:?} {} (the simulator reduces the last dim)",
                x.dims, x.dtype, o.dims, o.dtype
            ),
            code::INVALID_PARAM,
        ));
    }
    Ok((x, o))
}

/// `out[row] = f(x's row)` over the last dim.
fn per_row(x: SimTensor, out: SimTensor, f: fn(&[f64]) -> f64) -> Work {
    Work::Compute(Box::new(move || {
        let cols = x.dims.last().copied().unwrap_or(1).max(1);
        for row in 0..x.numel() / cols {
            let values: Vec<f64> = (0..cols)
                .map(|c| x.read(x.element(row * cols + c, &x.dims)))
                .collect();
            out.write(out.element(row, &out.dims), f(&values));
        }
        Ok(())
    }))
}

/// ACL's `aclnnGatherGetWorkspaceSize`: `out[.., j] = self[.., index[.., j]]`
/// along the last dim (torch.gather), int64 indices of out's shape.
#[no_mangle]
pub unsafe extern "C" fn aclnnGatherGetWorkspaceSize(
    x: *const c_void,
    dim: i64,
    index: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnGatherGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [x, i, o] = match tensors(s, call, [("self", x), ("index", index), ("out", out)]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let rank = x.dims.len();
    let ok = rank >= 1
        && (dim == -1 || dim == rank as i64 - 1)
        && i.dtype == Elem::I64
        && i.dims == o.dims
        && o.dims.len() == rank
        && o.dims[..rank - 1] == x.dims[..rank - 1]
        && o.dtype == x.dtype;
    if !ok {
        return s.violation(
            call,
            format!(
                "self {:?} {}, dim {dim}, index {:?} {}, out {:?} {} (the simulator gathers along the last dim)",
                x.dims, x.dtype, i.dims, i.dtype, o.dims, o.dtype
            ),
            code::INVALID_PARAM,
        );
    }
    let work = Work::Compute(Box::new(move || {
        let (cols, picks) = (x.dims[rank - 1], o.dims[rank - 1].max(1));
        for e in 0..o.numel() {
            let row = e / picks;
            let at = i.read(i.element(e, &i.dims)) as i64;
            if at < 0 || at as usize >= cols {
                return Err(format!("index {at} at {e} is outside the {cols} columns"));
            }
            let v = x.read(x.element(row * cols + at as usize, &x.dims));
            o.write(o.element(e, &o.dims), v);
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "Gather", ws, exec) }
}
second_phase!(aclnnGather, "Gather");
