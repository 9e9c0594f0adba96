//! mat_mul (aclnnMm with W passed as a transposed view, then aclnnAdd for the
//! bias) and batched_mat_mul (aclnnBatchMatMul; views make transposes free).

use std::ffi::c_void;

use glmhal_hal::Result;

use super::elementwise::binary;
use super::{Handle, Launch};

/// Keep the tensors' dtype in the cube unit (no down-conversion).
const KEEP_DTYPE: i8 = 0;

/// `y = x · wᵀ (+ bias)`; `w_t` is W's `[K, N]` transposed view.
pub(crate) fn mat_mul(
    l: &Launch<'_>,
    x: &Handle<'_>,
    w_t: &Handle<'_>,
    bias: Option<&Handle<'_>>,
    y: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.mm_ws)(
            x.ptr(),
            w_t.ptr(),
            y.ptr(),
            KEEP_DTYPE,
            &mut size,
            &mut exec,
        )
    };
    l.run("Mm", status, size, exec, l.acl.mm)?;
    match bias {
        Some(b) => binary(l, true, y, b, y),
        None => Ok(()),
    }
}

/// `out[b] = a[b] · m[b]`.
pub(crate) fn batched(
    l: &Launch<'_>,
    a: &Handle<'_>,
    m: &Handle<'_>,
    out: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.batch_matmul_ws)(
            a.ptr(),
            m.ptr(),
            out.ptr(),
            KEEP_DTYPE,
            &mut size,
            &mut exec,
        )
    };
    l.run("BatchMatMul", status, size, exec, l.acl.batch_matmul)
}
