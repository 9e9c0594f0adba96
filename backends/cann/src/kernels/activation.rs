//! silu (aclnnSilu), gelu (aclnnGeluV2, tanh form) and swiglu (aclnnSwiGlu
//! on the fused [gate | up] input, split along the last dim).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::{Handle, Launch};

/// `out = x * sigmoid(x)`.
pub(crate) fn silu(l: &Launch<'_>, x: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { (l.acl.silu_ws)(x.ptr(), out.ptr(), &mut size, &mut exec) };
    l.run("Silu", status, size, exec, l.acl.silu)
}

/// Tanh approximation (aclnnGeluV2's `approximate` = 1).
const GELU_TANH: i64 = 1;

/// GELU, tanh approximation.
pub(crate) fn gelu(l: &Launch<'_>, x: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { (l.acl.gelu_ws)(x.ptr(), GELU_TANH, out.ptr(), &mut size, &mut exec) };
    l.run("GeluV2", status, size, exec, l.acl.gelu)
}

/// `silu(gate) · up` on `[gate | up]`.
pub(crate) fn swiglu(l: &Launch<'_>, x: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { (l.acl.swiglu_ws)(x.ptr(), -1, out.ptr(), &mut size, &mut exec) };
    l.run("SwiGlu", status, size, exec, l.acl.swiglu)
}
