//! The CANN backend: device memory, one stream, aclnn ops enqueued on it.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use glmhal_hal::{
    check_views, Backend, Buffer, DeviceId, DeviceInfo, HalError, Op, Result, Support, TensorDesc,
    TensorRef,
};

use crate::kernels::{
    activation, convert, elementwise, embedding, kv_cache, matmul, norm, reduce, tensor, Launch,
};
use crate::loader::{Acl, DEVICE_TO_HOST, HOST_TO_DEVICE};
use crate::memory::{CannBuffer, DevicePool};

/// One opened Ascend device.
pub struct CannBackend {
    acl: Arc<Acl>,
    info: DeviceInfo,
    id: DeviceId,
    stream: usize,
    /// The op workspace, grown to the largest request (aclnn's two-phase convention).
    workspace: Mutex<Option<CannBuffer>>,
    /// Scratch for outputs the catalogue does not keep (rms_norm's rstd).
    scratch: Mutex<Option<CannBuffer>>,
    pool: Arc<DevicePool>,
}

impl CannBackend {
    /// Opens device `index` (already counted) with its own stream.
    pub fn open(acl: Arc<Acl>, index: usize) -> Result<Self> {
        let info = crate::device::describe(&acl, index)?;
        let mut stream: *mut c_void = std::ptr::null_mut();
        // SAFETY: `stream` is valid for writes; the device was set by describe.
        acl.check("aclrtCreateStream", unsafe {
            (acl.create_stream)(&mut stream)
        })?;
        Ok(CannBackend {
            info,
            id: DeviceId::fresh(),
            stream: stream as usize,
            workspace: Mutex::new(None),
            scratch: Mutex::new(None),
            pool: Arc::new(DevicePool::new(acl.clone())),
            acl,
        })
    }

    fn selector(&self) -> String {
        format!("cann:{}", self.info.index)
    }

    fn buffer<'a>(&self, b: &'a Buffer) -> Result<&'a CannBuffer> {
        b.downcast::<CannBuffer>()
            .filter(|c| c.device == self.id)
            .ok_or_else(|| {
                HalError::invalid(
                    self.selector(),
                    "the buffer belongs to another device or backend",
                )
            })
    }

    fn malloc(&self, bytes: usize) -> Result<CannBuffer> {
        // Sizes round up to 512 bytes (ACL's alignment) so freed buffers fit more requests.
        let size = bytes.max(1).div_ceil(512) * 512;
        let ptr = self.pool.alloc(size).ok_or_else(|| HalError::OutOfMemory {
            backend: self.selector(),
            requested: bytes,
            available: None,
        })?;
        Ok(CannBuffer {
            ptr,
            len: bytes,
            device: self.id,
            size,
            pool: self.pool.clone(),
        })
    }

    fn sync(&self) -> Result<()> {
        // SAFETY: the stream was created in `open`.
        self.acl.check("aclrtSynchronizeStream", unsafe {
            (self.acl.sync_stream)(self.stream as *mut c_void)
        })
    }

    /// A device address with at least `size` bytes of workspace.
    fn workspace(&self, size: u64) -> Result<usize> {
        self.grow(&self.workspace, size)
    }

    /// A device address with at least `size` bytes in `slot`, grown when needed.
    fn grow(&self, slot: &Mutex<Option<CannBuffer>>, size: u64) -> Result<usize> {
        let mut ws = slot
            .lock()
            .map_err(|_| HalError::backend(self.selector(), "workspace", "poisoned"))?;
        if ws.as_ref().is_none_or(|b| (b.len as u64) < size) {
            // The old workspace may still be in use by queued ops.
            self.sync()?;
            *ws = Some(self.malloc(size as usize)?);
        }
        ws.as_ref()
            .map(|b| b.ptr)
            .ok_or_else(|| HalError::backend(self.selector(), "workspace", "missing"))
    }
}

impl Backend for CannBackend {
    fn name(&self) -> &'static str {
        "cann"
    }

    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn device_id(&self) -> DeviceId {
        self.id
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer::new(self.malloc(bytes)?))
    }

    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        let b = self.buffer(dst)?;
        let range = dst.checked_range("cann upload", offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        // Queued ops may still read or write these bytes.
        self.sync()?;
        // SAFETY: the range lies inside the allocation; `data` is valid for its length.
        self.acl.check("aclrtMemcpy (to device)", unsafe {
            (self.acl.memcpy)(
                (b.ptr + range.start) as *mut c_void,
                data.len(),
                data.as_ptr().cast(),
                data.len(),
                HOST_TO_DEVICE,
            )
        })
    }

    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let b = self.buffer(src)?;
        let range = src.checked_range("cann download", offset, out.len())?;
        self.sync()?;
        if out.is_empty() {
            return Ok(());
        }
        let n = out.len();
        // SAFETY: the range lies inside the allocation; `out` is valid for writes.
        self.acl.check("aclrtMemcpy (to host)", unsafe {
            (self.acl.memcpy)(
                out.as_mut_ptr().cast(),
                n,
                (b.ptr + range.start) as *const c_void,
                n,
                DEVICE_TO_HOST,
            )
        })
    }

    fn supports(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        crate::support::supports(op, inputs, outputs, &self.info.name)
    }

    fn execute(&self, op: &Op, inputs: &[TensorRef<'_>], outputs: &[TensorRef<'_>]) -> Result<()> {
        let ins: Vec<TensorDesc> = inputs.iter().map(|t| t.desc.clone()).collect();
        let outs: Vec<TensorDesc> = outputs.iter().map(|t| t.desc.clone()).collect();
        glmhal_ops::validate(op, &ins, &outs)?;
        check_views("cann", self.id, inputs, outputs)?;
        if let Support::Unsupported(reason) = self.supports(op, &ins, &outs) {
            return Err(HalError::Unsupported {
                backend: self.selector(),
                op: op.name().into(),
                reason,
            });
        }
        let handle = |t: &TensorRef<'_>| {
            let b = self.buffer(t.buffer)?;
            tensor(&self.acl, &t.desc, b.ptr, b.len)
        };
        let x = handle(&inputs[0])?;
        let out = handle(&outputs[0])?;
        let ws = |size| self.workspace(size);
        let scratch = |size| self.grow(&self.scratch, size);
        let l = Launch {
            acl: &self.acl,
            stream: self.stream as *mut c_void,
            workspace: &ws,
            scratch: &scratch,
        };
        match op {
            Op::Add | Op::Mul => {
                elementwise::binary(&l, matches!(op, Op::Add), &x, &handle(&inputs[1])?, &out)
            }
            Op::Scale { factor } => elementwise::scale(&l, &x, *factor, &out),
            Op::Silu => activation::silu(&l, &x, &out),
            Op::Gelu => activation::gelu(&l, &x, &out),
            Op::SwiGlu => activation::swiglu(&l, &x, &out),
            Op::BatchedMatMul => matmul::batched(&l, &x, &handle(&inputs[1])?, &out),
            Op::Cast => convert::cast(&l, &x, outs[0].dtype, &out),
            Op::RmsNorm { eps } => {
                norm::rms_norm(&l, &x, &handle(&inputs[1])?, &ins[0], *eps, &out)
            }
            Op::Softmax { .. } => reduce::softmax(&l, &x, &out),
            Op::GetRows => embedding::get_rows(&l, &x, &handle(&inputs[1])?, &out),
            Op::KvWrite => kv_cache::kv_write(&l, &x, &handle(&inputs[1])?, &out),
            Op::MatMul { bias } => {
                let w = self.buffer(inputs[1].buffer)?;
                let w_t = tensor(&self.acl, &ins[1].transposed(0, 1), w.ptr, w.len)?;
                let b = match bias {
                    true => Some(handle(&inputs[2])?),
                    false => None,
                };
                matmul::mat_mul(&l, &x, &w_t, b.as_ref(), &out)
            }
            other => Err(HalError::Unsupported {
                backend: self.selector(),
                op: other.name().into(),
                reason: "not mapped to aclnn".into(),
            }),
        }
    }

    fn synchronize(&self) -> Result<()> {
        self.sync()
    }
}

// SAFETY: the stream handle is only passed to ACL, which is thread-safe per
// stream when calls are serialized; the workspace sits behind a mutex.
unsafe impl Send for CannBackend {}
// SAFETY: as above.
unsafe impl Sync for CannBackend {}
