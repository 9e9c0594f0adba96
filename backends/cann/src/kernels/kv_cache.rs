//! kv_write (aclnnInplaceIndexCopy of the rows into the cache along dim 0).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::{Handle, Launch};

/// `cache[positions[t]] = rows[t]`; other cache rows untouched.
pub(crate) fn kv_write(
    l: &Launch<'_>,
    rows: &Handle<'_>,
    positions: &Handle<'_>,
    cache: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.index_copy_ws)(
            cache.ptr(),
            0,
            positions.ptr(),
            rows.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("InplaceIndexCopy", status, size, exec, l.acl.index_copy)
}
