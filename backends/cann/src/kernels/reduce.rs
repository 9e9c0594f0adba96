//! softmax over the last dim (aclnnSoftmax).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::{Handle, Launch};

/// `out = softmax(x)` along the last dim.
pub(crate) fn softmax(l: &Launch<'_>, x: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { (l.acl.softmax_ws)(x.ptr(), -1, out.ptr(), &mut size, &mut exec) };
    l.run("Softmax", status, size, exec, l.acl.softmax)
}
