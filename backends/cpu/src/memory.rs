//! Host-memory buffers that play the role of device memory.

use std::any::Any;
use std::fmt;

use glmhal_hal::{DeviceBuffer, DeviceId, HalError, Result};

/// A CPU "device" buffer: a heap allocation owned through a raw pointer so
/// that disjoint parts can be borrowed at once (inputs shared, outputs
/// exclusive) while an op runs.
pub struct CpuBuffer {
    ptr: *mut u8,
    len: usize,
    device: DeviceId,
}

// SAFETY: the bytes are only touched through `CpuBackend`, which serializes
// every access behind its queue lock and hands out disjoint ranges for writes.
unsafe impl Send for CpuBuffer {}
// SAFETY: as above.
unsafe impl Sync for CpuBuffer {}

impl CpuBuffer {
    /// Allocates `len` zeroed bytes; failure to allocate is out-of-memory, not an abort.
    pub fn new(len: usize, device: DeviceId) -> Result<Self> {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| HalError::OutOfMemory {
                backend: "cpu".into(),
                requested: len,
                available: None,
            })?;
        v.resize(len, 0);
        let len = v.len();
        let ptr = Box::into_raw(v.into_boxed_slice()) as *mut u8;
        Ok(CpuBuffer { ptr, len, device })
    }

    /// Shared view of `range`.
    ///
    /// # Safety
    /// The caller holds the backend's queue lock and no exclusive view of an
    /// overlapping range exists.
    pub unsafe fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds (checked above); aliasing is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.ptr.add(range.start), range.len()) }
    }

    /// Exclusive view of `range`.
    ///
    /// # Safety
    /// The caller holds the backend's queue lock and no other view of an
    /// overlapping range exists while this one lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, range: std::ops::Range<usize>) -> &mut [u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from Box::into_raw of a boxed slice of this length.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr, self.len,
            )));
        }
    }
}

impl fmt::Debug for CpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuBuffer({} bytes)", self.len)
    }
}

impl DeviceBuffer for CpuBuffer {
    fn len(&self) -> usize {
        self.len
    }

    fn device(&self) -> DeviceId {
        self.device
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
