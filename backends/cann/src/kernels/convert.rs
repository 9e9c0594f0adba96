//! cast between f32, f16 and bf16 (aclnnCast).

use std::ffi::c_void;

use glmhal_hal::{DType, Result};

use super::{acl_dtype, Handle, Launch};

/// `out = x` converted to `to`.
pub(crate) fn cast(l: &Launch<'_>, x: &Handle<'_>, to: DType, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status =
        unsafe { (l.acl.cast_ws)(x.ptr(), acl_dtype(to)?, out.ptr(), &mut size, &mut exec) };
    l.run("Cast", status, size, exec, l.acl.cast)
}

/// `target = src` (broadcast and converted to target's dtype), in place.
pub(crate) fn copy(l: &Launch<'_>, target: &Handle<'_>, src: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; `target` is valid for writes.
    let status = unsafe { (l.acl.copy_ws)(target.ptr(), src.ptr(), &mut size, &mut exec) };
    l.run("InplaceCopy", status, size, exec, l.acl.copy)
}
