//! Host-memory buffers that play the role of device memory.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fmt;

use glmhal_hal::{DeviceId, HalError, Result};

/// Alignment of every buffer: a cache line, and enough for any SIMD load.
const ALIGN: usize = 64;

/// Requests above this size are checked against the memory the OS says is
/// available, so an impossible request is an error rather than the OOM killer.
const CHECKED_ALLOC: usize = 64 << 20;

/// A CPU "device" buffer: a heap allocation owned through a raw pointer so
/// that disjoint parts can be borrowed at once (inputs shared, outputs
/// exclusive) while an op runs.
pub struct CpuBuffer {
    ptr: *mut u8,
    len: usize,
    device: DeviceId,
    /// Large buffers are anonymous maps populated up front (one batched
    /// fault-in); small ones come from the allocator.
    map: Option<memmap2::MmapMut>,
    /// Weights used in place from host bytes the caller shares (a mapped
    /// checkpoint): read-only, kept alive here.
    shared: Option<glmhal_hal::SharedBytes>,
}

/// Buffers from this size on are anonymous maps.
const MAPPED_FROM: usize = 2 << 20;

// SAFETY: the bytes are only touched through `CpuBackend`, which serializes
// every access behind its queue lock and hands out disjoint ranges for writes.
unsafe impl Send for CpuBuffer {}
// SAFETY: as above.
unsafe impl Sync for CpuBuffer {}

impl CpuBuffer {
    /// Allocates `len` zeroed bytes; failure to allocate is out-of-memory, not an abort.
    pub fn new(len: usize, device: DeviceId) -> Result<Self> {
        let oom = |available| HalError::OutOfMemory {
            backend: "cpu".into(),
            requested: len,
            available,
        };
        if len == 0 {
            return Ok(CpuBuffer {
                ptr: std::ptr::null_mut(),
                len,
                device,
                map: None,
                shared: None,
            });
        }
        if len > CHECKED_ALLOC {
            if let Some(avail) = available_memory() {
                if len as u64 > avail {
                    return Err(oom(usize::try_from(avail).ok()));
                }
            }
        }
        if len >= MAPPED_FROM {
            // Populated up front: one batched fault-in instead of one fault per page later.
            let mut map = memmap2::MmapOptions::new()
                .len(len)
                .populate()
                .map_anon()
                .map_err(|_| oom(None))?;
            let ptr = map.as_mut_ptr();
            return Ok(CpuBuffer {
                ptr,
                len,
                device,
                map: Some(map),
                shared: None,
            });
        }
        let layout = Layout::from_size_align(len, ALIGN).map_err(|_| oom(None))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(oom(None));
        }
        Ok(CpuBuffer {
            ptr,
            len,
            device,
            map: None,
            shared: None,
        })
    }

    /// A read-only buffer over `range` of shared host bytes, without a copy.
    pub fn shared(
        bytes: glmhal_hal::SharedBytes,
        range: std::ops::Range<usize>,
        device: DeviceId,
    ) -> Result<Self> {
        let all = (*bytes).as_ref();
        if range.start > range.end || range.end > all.len() {
            return Err(HalError::invalid(
                "cpu",
                format!("bytes {range:?} lie outside {} shared bytes", all.len()),
            ));
        }
        // The pointer is only ever read through (uploads and outputs are refused).
        let ptr = all[range.clone()].as_ptr().cast_mut();
        Ok(CpuBuffer {
            ptr,
            len: range.len(),
            device,
            map: None,
            shared: Some(bytes),
        })
    }

    /// Whether the buffer borrows shared bytes (and so must never be written).
    pub fn is_read_only(&self) -> bool {
        self.shared.is_some()
    }

    /// Shared view of `range`.
    ///
    /// # Safety
    /// The caller holds the backend's queue lock and no exclusive view of an
    /// overlapping range exists.
    pub unsafe fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        if range.is_empty() {
            return &[];
        }
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
        if range.is_empty() {
            return &mut [];
        }
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

impl Drop for CpuBuffer {
    fn drop(&mut self) {
        if self.len == 0 || self.map.is_some() || self.shared.is_some() {
            return; // nothing, a map that unmaps itself, or bytes owned by someone else
        }
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { dealloc(self.ptr, Layout::from_size_align_unchecked(self.len, ALIGN)) }
    }
}

impl fmt::Debug for CpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuBuffer({} bytes)", self.len)
    }
}

glmhal_hal::device_buffer!(CpuBuffer);

/// Bytes the OS reports as available (Linux `MemAvailable`), where it says.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_buffer_is_zeroed_and_writable_end_to_end() {
        // Past the mapping threshold and not a whole number of pages.
        let len = 2 * MAPPED_FROM + 4099;
        let buf = CpuBuffer::new(len, DeviceId::fresh()).expect("a few MiB");
        assert!(buf.map.is_some());
        // SAFETY: this test holds the only views of the buffer, one at a time.
        unsafe {
            assert!(buf.bytes(0..len).iter().all(|&b| b == 0));
            let all = buf.bytes_mut(0..len);
            all[0] = 1;
            all[MAPPED_FROM] = 2;
            all[len - 1] = 3;
            let all = buf.bytes(0..len);
            assert_eq!((all[0], all[MAPPED_FROM], all[len - 1]), (1, 2, 3));
            assert_eq!(all.iter().map(|&b| b as usize).sum::<usize>(), 6);
        }
    }
}
