//! rms_norm (aclnnRmsNorm, which also writes the per-row rstd into scratch).

use std::ffi::c_void;

use glmhal_hal::{DType, Result, TensorDesc};

use super::{tensor, Handle, Launch};

/// `y = x · rsqrt(mean(x²) + eps) · w` over the last dim.
pub(crate) fn rms_norm(
    l: &Launch<'_>,
    x: &Handle<'_>,
    w: &Handle<'_>,
    x_desc: &TensorDesc,
    eps: f64,
    y: &Handle<'_>,
) -> Result<()> {
    let mut rstd_shape = x_desc.shape.clone();
    if let Some(last) = rstd_shape.last_mut() {
        *last = 1;
    }
    let rstd_desc = TensorDesc::contiguous(DType::F32, &rstd_shape);
    let bytes = rstd_desc.byte_range().end;
    let rstd = tensor(l.acl, &rstd_desc, (l.scratch)(bytes as u64)?, bytes)?;
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.rms_norm_ws)(
            x.ptr(),
            w.ptr(),
            eps,
            y.ptr(),
            rstd.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("RmsNorm", status, size, exec, l.acl.rms_norm)
}
