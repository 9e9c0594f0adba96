//! Device buffers from `aclrtMalloc`, and the pool that recycles them.

use std::ffi::c_void;
use std::fmt;
use std::sync::Arc;

use glmhal_hal::pool::SizePool;
use glmhal_hal::DeviceId;

use crate::loader::{Acl, MALLOC_HUGE_FIRST};

/// Idle bytes the pool keeps at most.
const POOL_MAX_IDLE: usize = 1 << 30;

/// Freed device allocations by size, handed out again by allocations of the
/// same size, so steady-state steps do not call `aclrtMalloc`.
pub(crate) struct DevicePool {
    acl: Arc<Acl>,
    sizes: SizePool<usize>,
}

impl DevicePool {
    pub fn new(acl: Arc<Acl>) -> Self {
        DevicePool {
            acl,
            sizes: SizePool::new(POOL_MAX_IDLE, usize::MAX),
        }
    }

    /// `size` bytes of device memory: a pooled allocation, or a new one
    /// (retried once after releasing the pool); `None` when out of memory.
    pub fn alloc(&self, size: usize) -> Option<usize> {
        if let Some(p) = self.sizes.take(size) {
            return Some(p);
        }
        self.malloc(size).or_else(|| {
            self.release();
            self.malloc(size)
        })
    }

    fn malloc(&self, size: usize) -> Option<usize> {
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: `p` is valid for writes.
        let code = unsafe { (self.acl.malloc)(&mut p, size, MALLOC_HUGE_FIRST) };
        (code == 0 && !p.is_null()).then_some(p as usize)
    }

    fn give(&self, ptr: usize, size: usize) {
        if let Some(ptr) = self.sizes.give(ptr, size) {
            // SAFETY: `ptr` came from aclrtMalloc and is freed once.
            unsafe { (self.acl.free)(ptr as *mut c_void) };
        }
    }

    /// Returns every idle allocation to the runtime.
    pub fn release(&self) {
        for ptr in self.sizes.drain() {
            // SAFETY: pooled pointers came from aclrtMalloc and are freed once.
            unsafe { (self.acl.free)(ptr as *mut c_void) };
        }
    }
}

impl Drop for DevicePool {
    fn drop(&mut self) {
        self.release();
    }
}

/// A buffer in Ascend device memory; dropping it returns it to the pool.
pub struct CannBuffer {
    /// Device address.
    pub ptr: usize,
    /// Bytes asked for.
    pub len: usize,
    /// Owning device.
    pub device: DeviceId,
    pub(crate) size: usize,
    pub(crate) pool: Arc<DevicePool>,
}

impl Drop for CannBuffer {
    fn drop(&mut self) {
        self.pool.give(self.ptr, self.size);
    }
}

impl fmt::Debug for CannBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CannBuffer({} bytes)", self.len)
    }
}

glmhal_hal::device_buffer!(CannBuffer);
