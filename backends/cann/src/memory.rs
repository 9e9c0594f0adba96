//! Device buffers from `aclrtMalloc`.

use std::fmt;
use std::sync::Arc;

use glmhal_hal::DeviceId;

use crate::loader::Acl;

/// A buffer in Ascend device memory.
pub struct CannBuffer {
    /// Device address.
    pub ptr: usize,
    /// Bytes asked for.
    pub len: usize,
    /// Owning device.
    pub device: DeviceId,
    pub(crate) acl: Arc<Acl>,
}

impl Drop for CannBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from aclrtMalloc and is freed once.
        unsafe { (self.acl.free)(self.ptr as *mut std::ffi::c_void) };
    }
}

impl fmt::Debug for CannBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CannBuffer({} bytes)", self.len)
    }
}

glmhal_hal::device_buffer!(CannBuffer);
