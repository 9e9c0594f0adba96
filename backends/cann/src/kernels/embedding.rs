//! get_rows (aclnnIndexSelect along dim 0 with i32 ids; into a temporary of
//! the table's dtype, then aclnnCast, when the output's dtype differs).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::convert::cast;
use super::{Handle, Launch, Operand};

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

/// `out[i] = table[ids[i]]` converted to out's dtype.
pub(crate) fn get_rows_converted(
    l: &Launch<'_>,
    table: &Operand,
    ids: &Handle<'_>,
    out: &Operand,
) -> Result<()> {
    let rows = l.temps(&[(table.desc.dtype, &out.desc.shape)])?;
    let rows = rows[0].handle(l.acl)?;
    get_rows(l, &table.handle(l.acl)?, ids, &rows)?;
    cast(l, &rows, out.desc.dtype, &out.handle(l.acl)?)
}
