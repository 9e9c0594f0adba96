//! What a backend did on its device, counted as the work was enqueued: the
//! structure of a step (launches, host waits, copies, bytes its kernels
//! read), which `glmhal bench` reports per decode step. These are counts
//! of what the backend asked of the device, not hardware counters, so they
//! mean the same on a software driver as on the real device.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of a backend's counters. Subtract an earlier snapshot
/// ([`WorkCounters::since`]) to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkCounters {
    /// Kernels launched (the backend's own).
    pub launches: u64,
    /// Calls into a vendor library (a BLAS GEMM), each one or more launches
    /// the backend does not see.
    pub library_calls: u64,
    /// Times the host waited for the device (a blocking copy, a synchronize).
    pub host_waits: u64,
    /// Host-to-device copies.
    pub uploads: u64,
    /// Bytes copied host to device.
    pub upload_bytes: u64,
    /// Device-to-host copies.
    pub downloads: u64,
    /// Bytes copied device to host.
    pub download_bytes: u64,
    /// Bytes the launched kernels read from device memory, as each launch's
    /// plan accounts them: every operand once per pass the kernel makes
    /// over it (a kernel that walks the weights once per row counts them
    /// once per row; blocks reading the same bytes together count once).
    pub bytes_read: u64,
}

impl WorkCounters {
    /// What was counted after `earlier` (a snapshot of the same backend).
    pub fn since(&self, earlier: &WorkCounters) -> WorkCounters {
        WorkCounters {
            launches: self.launches.saturating_sub(earlier.launches),
            library_calls: self.library_calls.saturating_sub(earlier.library_calls),
            host_waits: self.host_waits.saturating_sub(earlier.host_waits),
            uploads: self.uploads.saturating_sub(earlier.uploads),
            upload_bytes: self.upload_bytes.saturating_sub(earlier.upload_bytes),
            downloads: self.downloads.saturating_sub(earlier.downloads),
            download_bytes: self.download_bytes.saturating_sub(earlier.download_bytes),
            bytes_read: self.bytes_read.saturating_sub(earlier.bytes_read),
        }
    }
}

/// The live counters a backend keeps (lock-free; any thread may count).
#[derive(Debug, Default)]
pub struct Counters {
    launches: AtomicU64,
    library_calls: AtomicU64,
    host_waits: AtomicU64,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    downloads: AtomicU64,
    download_bytes: AtomicU64,
    bytes_read: AtomicU64,
}

impl Counters {
    /// One kernel launch reading `bytes`.
    pub fn launch(&self, bytes: u64) {
        self.launches.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One vendor-library call reading `bytes`.
    pub fn library_call(&self, bytes: u64) {
        self.library_calls.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One host wait.
    pub fn host_wait(&self) {
        self.host_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// One host-to-device copy of `bytes`.
    pub fn upload(&self, bytes: usize) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One device-to-host copy of `bytes`.
    pub fn download(&self, bytes: usize) {
        self.downloads.fetch_add(1, Ordering::Relaxed);
        self.download_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> WorkCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkCounters {
            launches: get(&self.launches),
            library_calls: get(&self.library_calls),
            host_waits: get(&self.host_waits),
            uploads: get(&self.uploads),
            upload_bytes: get(&self.upload_bytes),
            downloads: get(&self.downloads),
            download_bytes: get(&self.download_bytes),
            bytes_read: get(&self.bytes_read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let c = Counters::default();
        c.launch(100);
        let before = c.snapshot();
        c.launch(40);
        c.library_call(60);
        c.host_wait();
        c.upload(8);
        c.download(4);
        c.download(16);
        let d = c.snapshot().since(&before);
        assert_eq!(
            d,
            WorkCounters {
                launches: 1,
                library_calls: 1,
                host_waits: 1,
                uploads: 1,
                upload_bytes: 8,
                downloads: 2,
                download_bytes: 20,
                bytes_read: 100,
            }
        );
    }
}
