//! Device buffers from `aclrtMalloc`, and the pool that recycles them.

use std::ffi::c_void;
use std::fmt;
use std::sync::{Arc, Mutex};

use glmhal_hal::pool::SizePool;
use glmhal_hal::DeviceId;

use crate::loader::{Acl, MALLOC_HUGE_FIRST};

/// Idle bytes the pool keeps at most.
const POOL_MAX_IDLE: usize = 1 << 30;

/// Freed device allocations by size, handed out again by allocations of the
/// same size, so steady-state steps do not call `aclrtMalloc`.
pub(crate) struct DevicePool {
    acl: Arc<Acl>,
    /// The device's index, whose context frees need on the calling thread.
    index: usize,
    /// The stream ops using these buffers are queued on (0 once destroyed):
    /// a buffer dropped after its last op was queued may still be in use,
    /// and aclrtFree does not wait for the device. Held while a free waits
    /// on it, so the stream cannot be destroyed under the wait.
    stream: Mutex<usize>,
    sizes: SizePool<usize>,
}

impl DevicePool {
    pub fn new(acl: Arc<Acl>, index: usize) -> Self {
        DevicePool {
            acl,
            index,
            stream: Mutex::new(0),
            sizes: SizePool::new(POOL_MAX_IDLE, usize::MAX),
        }
    }

    /// Names the stream to wait for before memory goes back to the runtime
    /// (0: none).
    pub fn set_stream(&self, stream: usize) {
        *self.stream.lock().unwrap_or_else(|p| p.into_inner()) = stream;
    }

    /// `aclrtFree`, from whichever thread drops the buffer.
    fn free(&self, ptr: usize) {
        let stream = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let ready = crate::device::bind(&self.acl, self.index).and_then(|()| {
            if *stream == 0 {
                return Ok(());
            }
            // SAFETY: a non-zero stream is live: it is cleared, under this
            // lock, before it is destroyed.
            let code = unsafe { (self.acl.sync_stream)(*stream as *mut c_void) };
            self.acl.check("aclrtSynchronizeStream", code)
        });
        if let Err(e) = ready {
            eprintln!("cann: device memory at {ptr:#x} not freed: {e}");
            return;
        }
        // SAFETY: `ptr` came from aclrtMalloc and is freed once.
        let code = unsafe { (self.acl.free)(ptr as *mut c_void) };
        if let Err(e) = self.acl.check("aclrtFree", code) {
            eprintln!("cann: {e}");
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
            self.free(ptr);
        }
    }

    /// Returns every idle allocation to the runtime.
    pub fn release(&self) {
        for ptr in self.sizes.drain() {
            self.free(ptr);
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
    /// `[N, K]` of a quantized weight stored in the split layout
    /// ([`crate::prepared`]); `None` for bytes as given.
    pub(crate) prepared: Option<[usize; 2]>,
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
