//! silu (aclnnSilu).

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
