//! Device buffers and the pool that recycles them. Sizes are rounded up to 4
//! bytes, the unit of copies and of storage bindings.

use std::fmt;
use std::sync::Arc;

use glmhal_hal::pool::SizePool;
use glmhal_hal::DeviceId;

/// Idle bytes the pool keeps at most; beyond it freed buffers are released.
const POOL_MAX_IDLE: usize = 256 << 20;
/// Buffers above this size go straight back to the driver (weights, arenas).
const POOL_MAX_BUFFER: usize = 64 << 20;

/// Freed buffers by size, handed out again by `alloc` of the same size, so
/// temporaries and per-request buffers do not go through the driver each time.
pub(crate) struct BufferPool(SizePool<wgpu::Buffer>);

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool(SizePool::new(POOL_MAX_IDLE, POOL_MAX_BUFFER))
    }
}

impl BufferPool {
    /// A freed buffer of exactly `size` bytes, if one is idle.
    pub fn take(&self, size: u64) -> Option<wgpu::Buffer> {
        self.0.take(size as usize)
    }

    /// Keeps `buffer` for reuse, or releases it when the pool is full.
    fn give(&self, buffer: wgpu::Buffer) {
        let size = buffer.size() as usize;
        drop(self.0.give(buffer, size));
    }

    /// Releases every idle buffer (before retrying an allocation that ran out of memory).
    pub fn clear(&self) {
        drop(self.0.drain());
    }

    /// Idle bytes held now.
    pub fn idle_bytes(&self) -> u64 {
        self.0.idle_bytes() as u64
    }
}

/// A storage buffer on the adapter; dropping it returns it to its pool.
pub struct WgpuBuffer {
    /// The wgpu buffer (`len` rounded up to 4 bytes).
    pub buffer: wgpu::Buffer,
    /// Bytes the caller asked for.
    pub len: usize,
    /// Owning device.
    pub device: DeviceId,
    pub(crate) pool: Arc<BufferPool>,
}

impl Drop for WgpuBuffer {
    fn drop(&mut self) {
        self.pool.give(self.buffer.clone());
    }
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
