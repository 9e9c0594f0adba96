//! The CPU backend: a queue that runs ops as they are enqueued, on a thread pool.

use std::sync::Mutex;

use glmhal_hal::{
    Backend, Buffer, DeviceId, DeviceInfo, HalError, Op, OpContract, Precision, Result, Support,
    TensorDesc, TensorRef,
};

use smallvec::SmallVec;

use crate::kernels::{self, In, Out};
use crate::memory::CpuBuffer;

/// One op's inputs or outputs (at most four in the catalogue).
type Views<T> = SmallVec<[T; 4]>;

/// One opened CPU device. Ops run synchronously inside [`Backend::execute`];
/// the queue lock serializes them with uploads and downloads, which is what
/// makes borrowing buffer bytes inside a kernel sound.
pub struct CpuBackend {
    info: DeviceInfo,
    id: DeviceId,
    queue: Mutex<()>,
    pool: rayon::ThreadPool,
}

impl CpuBackend {
    /// Opens the CPU with `threads` worker threads, its kernels at the
    /// process's settings (fixed by the first [`crate::Provider`] open, or
    /// the defaults).
    pub fn new(threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("glmhal-cpu-{i}"))
            .build()
            .map_err(|e| HalError::backend("cpu", "starting the thread pool", e.to_string()))?;
        Ok(CpuBackend {
            info: crate::device::describe(
                threads,
                crate::kernels::simd::isa(),
                crate::kernels::simd::activation_bits(),
            ),
            id: DeviceId::fresh(),
            queue: Mutex::new(()),
            pool,
        })
    }

    fn buffer<'a>(&self, b: &'a Buffer) -> Result<&'a CpuBuffer> {
        if b.device() != self.id {
            return Err(HalError::invalid(
                "cpu",
                "the buffer belongs to another device or backend",
            ));
        }
        b.downcast::<CpuBuffer>()
            .ok_or_else(|| HalError::invalid("cpu", "the buffer is not a CPU buffer"))
    }

    fn writable<'a>(&self, b: &'a Buffer) -> Result<&'a CpuBuffer> {
        let buf = self.buffer(b)?;
        if buf.is_read_only() {
            return Err(HalError::invalid(
                "cpu",
                "the buffer is a weight used in place from the checkpoint and is read-only",
            ));
        }
        Ok(buf)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A kernel that panicked leaves no broken state behind the lock: recover it.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Rebases a descriptor onto the slice that starts at its first byte.
fn rebased(desc: &TensorDesc) -> TensorDesc {
    let mut d = desc.clone();
    d.offset = 0;
    d
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn device_id(&self) -> DeviceId {
        self.id
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer::new(CpuBuffer::new(bytes, self.id)?))
    }

    fn prepare_weight_shared(
        &self,
        desc: &TensorDesc,
        bytes: glmhal_hal::SharedBytes,
        range: std::ops::Range<usize>,
    ) -> Result<Buffer> {
        let _ = desc;
        Ok(Buffer::new(CpuBuffer::shared(bytes, range, self.id)?))
    }

    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        let buf = self.writable(dst)?;
        let range = dst.checked_range("cpu upload", offset, data.len())?;
        let _q = self.lock();
        // SAFETY: queue lock held; no other view is alive outside an execute call.
        let dst = unsafe { buf.bytes_mut(range) };
        // Large copies (weights at load) use every core.
        const PART: usize = 1 << 22;
        if data.len() > 4 * PART {
            self.pool.install(|| {
                use rayon::prelude::*;
                dst.par_chunks_mut(PART)
                    .zip(data.par_chunks(PART))
                    .for_each(|(d, s)| d.copy_from_slice(s));
            });
        } else {
            dst.copy_from_slice(data);
        }
        Ok(())
    }

    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let buf = self.buffer(src)?;
        let range = src.checked_range("cpu download", offset, out.len())?;
        let _q = self.lock();
        // SAFETY: queue lock held; shared read.
        out.copy_from_slice(unsafe { buf.bytes(range) });
        Ok(())
    }

    fn contract(&self) -> &'static dyn OpContract {
        &glmhal_ops::CONTRACT
    }

    fn supports_valid(&self, _: &Op, _: &[TensorDesc], _: &[TensorDesc]) -> Support {
        // Every op and dtype combination the catalogue allows runs here.
        Support::Supported
    }

    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision {
        crate::support::precision(op, inputs, outputs)
    }

    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        let _q = self.lock();
        let mut ins: Views<In<'_>> = SmallVec::new();
        for t in inputs {
            let buf = self.buffer(t.buffer)?;
            // SAFETY: queue lock held; the caller's check_views proved no output overlaps this range.
            let bytes = unsafe { buf.bytes(t.desc.byte_range()) };
            ins.push(In {
                desc: rebased(&t.desc),
                bytes,
            });
        }
        let target = &outputs[0];
        let buf = self.writable(target.buffer)?;
        // SAFETY: queue lock held; the caller's check_views proved this range overlaps no other view.
        let bytes = unsafe { buf.bytes_mut(target.desc.byte_range()) };
        let mut out = Out {
            desc: rebased(&target.desc),
            bytes,
        };
        self.pool.install(|| kernels::run(op, &ins, &mut out))
    }

    unsafe fn execute_valid_step(&self, calls: &[glmhal_hal::OpCall<'_>]) -> Result<()> {
        // The whole step on a worker: each op's `install` is then a direct
        // call instead of a hand-off to the pool and a wait for it (two
        // thread wake-ups per op, hundreds of ops per decoded token), and
        // the calling thread does not compete with the workers for cores.
        self.pool.install(|| {
            calls
                .iter()
                // SAFETY: the caller checked every call.
                .try_for_each(|call| unsafe {
                    self.execute_valid(&call.op, &call.inputs, &call.outputs)
                })
        })
    }

    fn synchronize(&self) -> Result<()> {
        // Ops complete inside execute; taking the lock waits for one in flight.
        drop(self.lock());
        Ok(())
    }
}
