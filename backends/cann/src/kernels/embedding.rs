//! get_rows (aclnnIndexSelect along dim 0 with i32 ids).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::{Handle, Launch};

/// `out[i] = table[ids[i]]`.
pub(crate) fn get_rows(
    l: &Launch<'_>,
    table: &Handle<'_>,
    ids: &Handle<'_>,
    out: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.index_select_ws)(table.ptr(), 0, ids.ptr(), out.ptr(), &mut size, &mut exec)
    };
    l.run("IndexSelect", status, size, exec, l.acl.index_select)
}
