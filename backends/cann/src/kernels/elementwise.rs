//! add, mul (aclnnAdd with alpha 1, aclnnMul; both broadcast numpy-style),
//! scale (aclnnMuls) and masked fill (aclnnInplaceMaskedFillScalar).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::{scalar, Handle, Launch};

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
