//! The CANN backend: device memory, one stream, aclnn ops enqueued on it.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use glmhal_hal::{
    Backend, Buffer, DeviceId, DeviceInfo, HalError, HostTensor, Op, OpContract, Precision, Result,
    Support, TensorDesc, TensorRef,
};

use crate::kernels::{
    activation, attention, convert, elementwise, embedding, kv_cache, matmul, norm, quant,
    quantize, reduce, rope, Launch, Operand,
};
use crate::loader::{Acl, DEVICE_TO_HOST, HOST_TO_DEVICE};
use crate::memory::{CannBuffer, DevicePool};

/// Constant tables kept before the cache is cleared (causal masks differ per prompt length).
const MAX_CONSTANTS: usize = 256;

/// One opened Ascend device.
pub struct CannBackend {
    acl: Arc<Acl>,
    info: DeviceInfo,
    /// The SoC family, from the SoC name (what its aclnn library has).
    family: crate::device::Family,
    id: DeviceId,
    stream: usize,
    /// The op workspace, grown to the largest request (aclnn's two-phase convention).
    workspace: Mutex<Option<CannBuffer>>,
    /// Scratch for intermediates of composed ops and outputs the catalogue
    /// does not keep (rms_norm's rstd).
    scratch: Mutex<Option<CannBuffer>>,
    /// Constant tables by key (rope frequencies, causal masks), uploaded once.
    constants: Mutex<HashMap<String, CannBuffer>>,
    /// Ops queued on the stream since the last wait, to name in an error
    /// the device reports at the wait.
    queued_ops: Mutex<Vec<&'static str>>,
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
        let pool = Arc::new(DevicePool::new(acl.clone(), index));
        pool.set_stream(stream as usize);
        Ok(CannBackend {
            family: crate::device::Family::of(&info.name),
            info,
            id: DeviceId::fresh(),
            stream: stream as usize,
            workspace: Mutex::new(None),
            scratch: Mutex::new(None),
            constants: Mutex::new(HashMap::new()),
            queued_ops: Mutex::new(Vec::new()),
            pool,
            acl,
        })
    }

    /// Makes the device's context current on the calling thread: the
    /// executor and its callers may call in from any thread.
    fn bind(&self) -> Result<()> {
        crate::device::bind(&self.acl, self.info.index)
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
        self.bind()?;
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
            prepared: None,
        })
    }

    fn sync(&self) -> Result<()> {
        self.bind()?;
        // SAFETY: the stream was created in `open`.
        let code = unsafe { (self.acl.sync_stream)(self.stream as *mut c_void) };
        let queued = self
            .queued_ops
            .lock()
            .map(|mut ops| std::mem::take(&mut *ops))
            .unwrap_or_default();
        // An op fails on the device only when the stream runs it: name the
        // ops queued since the last wait (the message names the aclnn call).
        self.acl
            .check("aclrtSynchronizeStream", code)
            .map_err(|e| match e {
                HalError::Backend {
                    backend, message, ..
                } if !queued.is_empty() => HalError::Backend {
                    backend,
                    context: format!("aclrtSynchronizeStream after {}", queued.join(", ")),
                    message,
                },
                other => other,
            })
    }

    /// Waits, reads each row's largest magnitude (see
    /// [`reduce::argmax`]) and names the first row holding a NaN or an infinity.
    fn refuse_non_finite_rows(&self, largest: &Operand) -> Result<()> {
        self.sync()?;
        let mut bytes = vec![0u8; largest.desc.dtype.bytes_for(largest.desc.numel())];
        // SAFETY: `largest` lies inside the scratch allocation; `bytes` is valid for writes.
        self.acl.check("aclrtMemcpy (to host)", unsafe {
            (self.acl.memcpy)(
                bytes.as_mut_ptr().cast(),
                bytes.len(),
                largest.base as *const c_void,
                bytes.len(),
                DEVICE_TO_HOST,
            )
        })?;
        let values = HostTensor::new(largest.desc.clone(), bytes)?.to_f64();
        match values.iter().position(|v| !v.is_finite()) {
            Some(row) => Err(HalError::NonFinite {
                backend: self.selector(),
                op: "argmax".into(),
                row,
            }),
            None => Ok(()),
        }
    }

    /// A device address with at least `size` bytes of workspace.
    fn workspace(&self, size: u64) -> Result<usize> {
        self.grow(&self.workspace, size)
    }

    /// The device address of constant data under `key`, uploaded the first
    /// time the key is seen.
    fn constant(&self, key: &str, bytes: &dyn Fn() -> Vec<u8>) -> Result<usize> {
        let mut map = self
            .constants
            .lock()
            .map_err(|_| HalError::backend(self.selector(), "constants", "poisoned"))?;
        if let Some(b) = map.get(key) {
            return Ok(b.ptr);
        }
        if map.len() >= MAX_CONSTANTS {
            // Queued ops may still read the ones dropped here.
            self.sync()?;
            map.clear();
        }
        let data = bytes();
        let buffer = self.malloc(data.len())?;
        // A pooled allocation may still be read by queued ops.
        self.sync()?;
        // SAFETY: `buffer` holds `data.len()` bytes; `data` is valid for its length.
        self.acl.check("aclrtMemcpy (constant to device)", unsafe {
            (self.acl.memcpy)(
                buffer.ptr as *mut c_void,
                data.len(),
                data.as_ptr().cast(),
                data.len(),
                HOST_TO_DEVICE,
            )
        })?;
        let ptr = buffer.ptr;
        map.insert(key.to_string(), buffer);
        Ok(ptr)
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

    /// Whole Q8_0/Q4_0 matrices are stored split ([`crate::prepared`]), the
    /// layout aclnnWeightQuantBatchMatmulV2 reads in place; anything else
    /// is uploaded as given.
    fn prepare_weight(&self, desc: &TensorDesc, bytes: &[u8]) -> Result<Buffer> {
        let family = self.family;
        // Where the op is missing (or K too long) the weight is dequantized
        // per call from GGUF blocks: the int8 copy would only cost memory.
        if !crate::prepared::prepares(desc)
            || !crate::kernels::quant::on_weight_quant_matmul(family, desc)
        {
            return self.upload_new(bytes);
        }
        let split = crate::prepared::split(desc, bytes)?;
        let mut buffer = self.malloc(split.len())?;
        buffer.prepared = Some([desc.shape[0], desc.shape[1]]);
        let buffer = Buffer::new(buffer);
        self.upload(&buffer, 0, &split)?;
        Ok(buffer)
    }

    fn contract(&self) -> &'static dyn OpContract {
        &glmhal_ops::CONTRACT
    }

    fn supports_valid(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        if let Some(reason) = crate::support::missing(op) {
            return Support::Unsupported(reason);
        }
        crate::support::supports(inputs, outputs, &self.info.name)
    }

    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision {
        crate::support::precision(op, inputs, outputs, &self.info.name)
    }

    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        self.bind()?;
        let ins: Vec<TensorDesc> = inputs.iter().map(|t| t.desc.clone()).collect();
        let outs: Vec<TensorDesc> = outputs.iter().map(|t| t.desc.clone()).collect();
        let operand = |t: &TensorRef<'_>| -> Result<Operand> {
            let b = self.buffer(t.buffer)?;
            if let Some(shape) = b.prepared {
                let whole = crate::prepared::prepares(&t.desc) && t.desc.shape[..] == shape[..];
                if !whole {
                    return Err(HalError::invalid(
                        self.selector(),
                        format!(
                            "{} reads a prepared {shape:?} weight through the view {:?}; prepared weights are read whole",
                            op.name(),
                            t.desc
                        ),
                    ));
                }
            }
            Ok(Operand {
                desc: t.desc.clone(),
                base: b.ptr,
                len: b.len,
                prepared: b.prepared,
            })
        };
        let ops = inputs
            .iter()
            .map(operand)
            .collect::<Result<Vec<Operand>>>()?;
        if outputs
            .iter()
            .any(|t| self.buffer(t.buffer).is_ok_and(|b| b.prepared.is_some()))
        {
            return Err(HalError::invalid(
                self.selector(),
                format!("{} would write over a prepared weight", op.name()),
            ));
        }
        let out_op = operand(&outputs[0])?;
        let acl = &*self.acl;
        let ws = |size| self.workspace(size);
        let scratch = |size| self.grow(&self.scratch, size);
        let constant = |key: &str, bytes: &dyn Fn() -> Vec<u8>| self.constant(key, bytes);
        let l = Launch {
            acl,
            stream: self.stream as *mut c_void,
            workspace: &ws,
            scratch: &scratch,
            constant: &constant,
            family: self.family,
        };
        // Vendor errors name the aclnn call; say which op it served.
        self.dispatch(op, &l, &ins, &outs, &ops, &out_op)
            .map_err(|e| match e {
                HalError::Backend {
                    backend,
                    context,
                    message,
                } => HalError::Backend {
                    backend,
                    context: format!("{} ({context})", op.name()),
                    message,
                },
                other => other,
            })?;
        // Now on the stream (a wait inside dispatch came before its launches).
        if let Ok(mut queued) = self.queued_ops.lock() {
            if !queued.contains(&op.name()) {
                queued.push(op.name());
            }
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.sync()
    }
}

impl CannBackend {
    /// Runs `op` through the aclnn calls that compose it.
    fn dispatch(
        &self,
        op: &Op,
        l: &Launch<'_>,
        ins: &[TensorDesc],
        outs: &[TensorDesc],
        ops: &[Operand],
        out_op: &Operand,
    ) -> Result<()> {
        let acl = l.acl;
        // Prepared weights are read only where a weight goes.
        let weight_at = match op {
            Op::MatMul { .. } => Some(1),
            Op::GetRows | Op::Cast => Some(0),
            _ => None,
        };
        if let Some(i) =
            (0..ops.len()).find(|i| ops[*i].prepared.is_some() && Some(*i) != weight_at)
        {
            return Err(HalError::invalid(
                self.selector(),
                format!(
                    "{} takes a prepared weight as input {i}, which it reads only as given",
                    op.name()
                ),
            ));
        }
        let handle = |i: usize| ops[i].handle(acl);
        let x = || handle(0);
        let out = || out_op.handle(acl);
        let one_dtype = ins[..ins.len().min(2)]
            .iter()
            .all(|t| t.dtype == outs[0].dtype);
        match op {
            Op::MatMulId | Op::MoeSelect { .. } | Op::MoeWeights { .. } => {
                Err(glmhal_hal::HalError::Unsupported {
                    backend: self.selector(),
                    op: op.name().into(),
                    reason: crate::support::missing(op).unwrap_or_default(),
                })
            }
            Op::Add | Op::Mul => {
                elementwise::binary(l, matches!(op, Op::Add), &x()?, &handle(1)?, &out()?)
            }
            Op::Scale { factor } => elementwise::scale(l, &x()?, *factor, &out()?),
            Op::Silu => activation::silu(l, &x()?, &out()?),
            Op::Gelu => activation::gelu(l, &x()?, &out()?),
            Op::SwiGlu => activation::swiglu(l, &x()?, &out()?),
            Op::BatchedMatMul if one_dtype => matmul::batched(l, &x()?, &handle(1)?, &out()?),
            Op::BatchedMatMul => matmul::batched_mixed(l, &ops[0], &ops[1], out_op),
            Op::Cast if ins[0].dtype.is_quantized() => quant::cast_from(l, &ops[0], out_op),
            Op::Cast => convert::cast(l, &x()?, outs[0].dtype, &out()?),
            Op::RmsNorm { eps } => norm::rms_norm(l, &x()?, &handle(1)?, &ins[0], *eps, &out()?),
            Op::LayerNorm { eps } => norm::layer_norm(l, [&ops[0], &ops[1], &ops[2]], *eps, out_op),
            Op::Softmax { scale, causal } if *scale == 1.0 && !*causal => {
                reduce::softmax(l, &x()?, &out()?)
            }
            Op::Softmax { scale, causal } => {
                reduce::scaled_softmax(l, &ops[0], *scale, *causal, out_op)
            }
            Op::Argmax => {
                let largest = reduce::argmax(l, &ops[0], out_op)?;
                self.refuse_non_finite_rows(&largest)
            }
            Op::Quantize => quantize::quantize(l, &ops[0], out_op),
            Op::GetRows if ins[0].dtype.is_quantized() => {
                quant::get_rows(l, &ops[0], &handle(1)?, out_op)
            }
            Op::GetRows if ins[0].dtype == outs[0].dtype => {
                embedding::get_rows(l, &x()?, &handle(1)?, &out()?)
            }
            Op::GetRows => embedding::get_rows_converted(l, &ops[0], &handle(1)?, out_op),
            Op::KvWrite if ins[0].dtype == outs[0].dtype => {
                kv_cache::kv_write(l, &x()?, &handle(1)?, &out()?)
            }
            Op::KvWrite => kv_cache::kv_write_converted(l, &ops[0], &handle(1)?, out_op),
            Op::Rope { rot, theta, mode } => {
                rope::rope(l, &ops[0], &ops[1], (*rot, *theta, *mode), out_op)
            }
            Op::Attention { scale, causal } => {
                attention::attention(l, [&ops[0], &ops[1], &ops[2]], *scale, *causal, out_op)
            }
            Op::MatMul { bias } => {
                let bias_op = bias.then(|| &ops[2]);
                if ins[1].dtype.is_quantized() {
                    quant::mat_mul_quantized(l, &ops[0], &ops[1], bias_op, out_op)
                } else if one_dtype {
                    let w = &ops[1];
                    let w_t = w.view(
                        acl,
                        &[ins[1].shape[1], ins[1].shape[0]],
                        &[ins[1].strides[1], ins[1].strides[0]],
                        0,
                    )?;
                    let b = bias_op.map(|b| b.handle(acl)).transpose()?;
                    matmul::mat_mul(l, &x()?, &w_t, b.as_ref(), &out()?)
                } else {
                    matmul::mat_mul_mixed(l, &ops[0], &ops[1], bias_op, out_op)
                }
            }
        }
    }
}

impl Drop for CannBackend {
    /// Waits for the stream, returns the backend's own buffers to the pool
    /// and destroys the stream; buffers handed out live on (their pool frees
    /// them); `aclFinalize` comes with `Provider::shutdown`.
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            eprintln!("cann: {e}");
        }
        for slot in [&self.workspace, &self.scratch] {
            if let Ok(mut b) = slot.lock() {
                b.take();
            }
        }
        if let Ok(mut map) = self.constants.lock() {
            map.clear();
        }
        self.pool.set_stream(0);
        // SAFETY: created in `open`, synchronized above, destroyed once.
        let code = unsafe { (self.acl.destroy_stream)(self.stream as *mut c_void) };
        if let Err(e) = self.acl.check("aclrtDestroyStream", code) {
            eprintln!("cann: {e}");
        }
    }
}

// SAFETY: the stream handle is only passed to ACL, which is thread-safe per
// stream when calls are serialized; the workspace sits behind a mutex.
unsafe impl Send for CannBackend {}
// SAFETY: as above.
unsafe impl Sync for CannBackend {}
