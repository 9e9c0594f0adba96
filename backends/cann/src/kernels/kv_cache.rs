//! kv_write (aclnnInplaceIndexCopy of the rows into the cache along dim 0;
//! rows of another dtype are cast to the cache's first).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::convert::cast;
use super::{Handle, Launch, Operand};

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

/// `cache[positions[t]] = rows[t]` converted to the cache's dtype.
pub(crate) fn kv_write_converted(
    l: &Launch<'_>,
    rows: &Operand,
    positions: &Handle<'_>,
    cache: &Operand,
) -> Result<()> {
    let converted = l.temps(&[(cache.desc.dtype, &rows.desc.shape)])?;
    let converted = converted[0].handle(l.acl)?;
    cast(l, &rows.handle(l.acl)?, cache.desc.dtype, &converted)?;
    kv_write(l, &converted, positions, &cache.handle(l.acl)?)
}
