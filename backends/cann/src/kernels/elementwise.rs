//! add, mul (aclnnAdd with alpha 1, aclnnMul; both broadcast numpy-style),
//! scale (aclnnMuls), masked fill (aclnnInplaceMaskedFillScalar), and the
//! pieces composed ops share: one-input and tensor-scalar ops, aclnnAdds and a sum
//! over the last dim (aclnnReduceSum).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::{scalar, Handle, IntArray, Launch};
use crate::loader::{RunFn, ScalarWsFn, UnaryWsFn, ACL_FLOAT};

/// `out = f(x)` for a one-input aclnn op.
pub(crate) fn unary(
    l: &Launch<'_>,
    (name, ws, run): (&str, UnaryWsFn, RunFn),
    x: &Handle<'_>,
    out: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { ws(x.ptr(), out.ptr(), &mut size, &mut exec) };
    l.run(name, status, size, exec, run)
}

/// `out = x + k`.
pub(crate) fn adds(l: &Launch<'_>, x: &Handle<'_>, k: f32, out: &Handle<'_>) -> Result<()> {
    let (other, alpha) = (scalar(l.acl, k)?, scalar(l.acl, 1.0)?);
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.adds_ws)(
            x.ptr(),
            other.ptr(),
            alpha.ptr(),
            out.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("Adds", status, size, exec, l.acl.adds)
}

/// `out = op(x, value)` for a tensor-scalar aclnn op (`Divs`, `FloorDivides`, ...).
pub(crate) fn scalar_op(
    l: &Launch<'_>,
    (name, ws, run): (&str, ScalarWsFn, RunFn),
    x: &Handle<'_>,
    value: f32,
    out: &Handle<'_>,
) -> Result<()> {
    let k = scalar(l.acl, value)?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { ws(x.ptr(), k.ptr(), out.ptr(), &mut size, &mut exec) };
    l.run(name, status, size, exec, run)
}

/// `out[.., 0] = Σ x[.., j]` over the last dim, in f32 (`out` f32, the
/// last dim kept as 1).
pub(crate) fn row_sum(l: &Launch<'_>, x: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let last = IntArray::new(l.acl, &[-1])?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.reduce_sum_ws)(
            x.ptr(),
            last.ptr(),
            true,
            ACL_FLOAT,
            out.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("ReduceSum", status, size, exec, l.acl.reduce_sum)
}

/// `out = a + b` or `a * b`.
pub(crate) fn binary(
    l: &Launch<'_>,
    add: bool,
    a: &Handle<'_>,
    b: &Handle<'_>,
    out: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    if add {
        let alpha = scalar(l.acl, 1.0)?;
        // SAFETY: every descriptor is live; outputs are valid for writes.
        let status = unsafe {
            (l.acl.add_ws)(
                a.ptr(),
                b.ptr(),
                alpha.ptr(),
                out.ptr(),
                &mut size,
                &mut exec,
            )
        };
        l.run("Add", status, size, exec, l.acl.add)
    } else {
        // SAFETY: as above.
        let status = unsafe { (l.acl.mul_ws)(a.ptr(), b.ptr(), out.ptr(), &mut size, &mut exec) };
        l.run("Mul", status, size, exec, l.acl.mul)
    }
}

/// `out = x * factor`.
pub(crate) fn scale(l: &Launch<'_>, x: &Handle<'_>, factor: f64, out: &Handle<'_>) -> Result<()> {
    let k = scalar(l.acl, factor as f32)?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { (l.acl.muls_ws)(x.ptr(), k.ptr(), out.ptr(), &mut size, &mut exec) };
    l.run("Muls", status, size, exec, l.acl.muls)
}

/// `target = value` where the bool mask (broadcast) is true.
pub(crate) fn mask_fill(
    l: &Launch<'_>,
    target: &Handle<'_>,
    mask: &Handle<'_>,
    value: f32,
) -> Result<()> {
    let value = scalar(l.acl, value)?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; `target` is valid for writes.
    let status = unsafe {
        (l.acl.masked_fill_ws)(target.ptr(), mask.ptr(), value.ptr(), &mut size, &mut exec)
    };
    l.run(
        "InplaceMaskedFillScalar",
        status,
        size,
        exec,
        l.acl.masked_fill,
    )
}
