//! Device buffers. Sizes are rounded up to 4 bytes, the unit of copies.

use std::fmt;

use glmhal_hal::DeviceId;

/// A storage buffer on the adapter.
pub struct WgpuBuffer {
    /// The wgpu buffer (`len` rounded up to 4 bytes).
    pub buffer: wgpu::Buffer,
    /// Bytes the caller asked for.
    pub len: usize,
    /// Owning device.
    pub device: DeviceId,
}

impl fmt::Debug for WgpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgpuBuffer({} bytes)", self.len)
    }
}

glmhal_hal::device_buffer!(WgpuBuffer);

/// `n` rounded up to a multiple of 4.
pub fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}
