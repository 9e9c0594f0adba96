//! The `Backend` trait: what every device implementation provides.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::buffer::{check_views, Buffer, DeviceId, TensorRef};
use crate::device::DeviceInfo;
use crate::error::Result;
use crate::layout::TensorDesc;
use crate::op::Op;
use crate::precision::Precision;

/// Host bytes that stay valid while they are held, such as a memory-mapped
/// checkpoint; a host-memory backend can use them in place instead of copying.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Whether a backend can run an op with given tensors on its device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "support", content = "reason", rename_all = "snake_case")]
pub enum Support {
    /// It can.
    Supported,
    /// It cannot, and this says why (shown to users, never hidden).
    Unsupported(String),
}

impl Support {
    /// True for [`Support::Supported`].
    pub fn is_supported(&self) -> bool {
        matches!(self, Support::Supported)
    }
}

/// The rules every call is checked against before a backend sees it: the
/// counts, dtypes, ranks and shapes of each op's tensors. The op catalogue
/// supplies them (`glmhal_ops::CONTRACT`); the HAL cannot name it, because
/// the catalogue is built on the HAL's types.
pub trait OpContract: Send + Sync {
    /// `Ok` when `op` may take tensors of these descriptors, else why not.
    fn validate(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Result<()>;
}

/// One op with its tensors, for handing a backend a whole step at once.
#[derive(Clone, Debug)]
pub struct OpCall<'a> {
    /// The op.
    pub op: Op,
    /// Its inputs, in catalogue order (inline: at most four).
    pub inputs: SmallVec<[TensorRef<'a>; 4]>,
    /// Its outputs, in catalogue order (inline: one).
    pub outputs: SmallVec<[TensorRef<'a>; 1]>,
}

/// One opened device.
///
/// Data lives in device [`Buffer`]s; ops are enqueued on the device's queue
/// and may complete later. [`Backend::download`] and [`Backend::synchronize`]
/// are the only points where the host waits. Nothing here moves data to the
/// host between two ops.
pub trait Backend: Send + Sync {
    /// Backend name (`cpu`, `cuda`, ...).
    fn name(&self) -> &'static str;

    /// Facts about the device.
    fn info(&self) -> &DeviceInfo;

    /// Identity of this opened device; buffers carry it.
    fn device_id(&self) -> DeviceId;

    /// Allocates `bytes` of device memory (contents unspecified).
    /// Out of memory is [`crate::HalError::OutOfMemory`].
    fn alloc(&self, bytes: usize) -> Result<Buffer>;

    /// Copies `data` into `dst` at byte `offset`. It may return before the
    /// copy lands; later ops on the queue see the data.
    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()>;

    /// Copies `out.len()` bytes from `src` at byte `offset` to the host,
    /// waiting for every op enqueued before it.
    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()>;

    /// The rules calls are checked against before this backend sees them
    /// (`&glmhal_ops::CONTRACT` for every real backend; a wrapper passes its
    /// inner backend's).
    fn contract(&self) -> &'static dyn OpContract;

    /// Whether `op` can run here with tensors of these descriptors: the
    /// contract's answer first, then [`Backend::supports_valid`]. Provided so
    /// no backend can skip the contract; backends implement `supports_valid`.
    fn supports(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        match self.contract().validate(op, inputs, outputs) {
            Err(e) => Support::Unsupported(e.to_string()),
            Ok(()) => self.supports_valid(op, inputs, outputs),
        }
    }

    /// This backend's own limits on a call the contract accepts, with the
    /// reason when it cannot run it.
    fn supports_valid(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support;

    /// What `op` with tensors of these descriptors computes in here: the
    /// arithmetic, any rounding of inputs or quantization of activations,
    /// and the accuracy of elementary functions. The conformance suite
    /// derives each output element's error bound from this declaration,
    /// so it must be true (a backend that declares f32 and rounds through
    /// bf16 fails). Only asked for ops [`Backend::supports`] accepts.
    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision;

    /// Enqueues `op` after checking it against the contract, its views
    /// ([`check_views`]: on this device, in bounds, no output overlapping an
    /// input or another output) and [`Backend::supports_valid`] (an
    /// `Unsupported` error with the reason). Provided so no backend can skip
    /// the checks; backends implement [`Backend::execute_valid`].
    fn execute(&self, op: &Op, inputs: &[TensorRef<'_>], outputs: &[TensorRef<'_>]) -> Result<()> {
        check_call(self, op, inputs, outputs)?;
        // SAFETY: the call was checked just above.
        unsafe { self.execute_valid(op, inputs, outputs) }
    }

    /// Enqueues `op`, already checked by [`Backend::execute`].
    ///
    /// # Safety
    /// The caller has checked the call as [`Backend::execute`] does: the
    /// contract accepts it, its views pass [`check_views`] for this device
    /// and the backend supports it. Backends may rely on that for memory safety (the CPU backend
    /// writes outputs through slices that must not overlap its inputs).
    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()>;

    /// Enqueues a whole step after checking every call as [`Backend::execute`]
    /// does. Provided; backends that record or fuse a step implement
    /// [`Backend::execute_valid_step`].
    fn execute_step(&self, calls: &[OpCall<'_>]) -> Result<()> {
        for call in calls {
            check_call(self, &call.op, &call.inputs, &call.outputs)?;
        }
        // SAFETY: every call was checked just above.
        unsafe { self.execute_valid_step(calls) }
    }

    /// Enqueues a whole step of checked calls. Backends that can record or
    /// fuse a step (one submission, a captured graph) override this; the
    /// default runs the calls one by one.
    ///
    /// # Safety
    /// Every call was checked as for [`Backend::execute_valid`].
    unsafe fn execute_valid_step(&self, calls: &[OpCall<'_>]) -> Result<()> {
        for call in calls {
            // SAFETY: the caller checked every call.
            unsafe { self.execute_valid(&call.op, &call.inputs, &call.outputs)? };
        }
        Ok(())
    }

    /// Waits until everything enqueued so far has completed.
    fn synchronize(&self) -> Result<()>;

    /// What this backend has enqueued and waited for so far (launches, host
    /// waits, copies, bytes its kernels read), for backends that count it;
    /// `None` where it does not.
    fn counters(&self) -> Option<crate::WorkCounters> {
        None
    }

    /// Makes a weight from checkpoint bytes laid out as `desc` (contiguous).
    /// Backends may store it in their own layout; ops then take the returned
    /// buffer with the same descriptor. The default uploads the bytes as they are.
    fn prepare_weight(&self, desc: &TensorDesc, bytes: &[u8]) -> Result<Buffer> {
        let _ = desc;
        self.upload_new(bytes)
    }

    /// Like [`Backend::prepare_weight`] for bytes `range` of `bytes`, which the
    /// backend may keep and use in place (the CPU backend does, so a mapped
    /// checkpoint is not copied). The default copies.
    fn prepare_weight_shared(
        &self,
        desc: &TensorDesc,
        bytes: SharedBytes,
        range: Range<usize>,
    ) -> Result<Buffer> {
        let all = (*bytes).as_ref();
        let slice = all.get(range.clone()).ok_or_else(|| {
            crate::HalError::invalid(
                "prepare_weight",
                format!("bytes {range:?} lie outside {} bytes", all.len()),
            )
        })?;
        self.prepare_weight(desc, slice)
    }

    /// Allocates a buffer and uploads `data` into it.
    fn upload_new(&self, data: &[u8]) -> Result<Buffer> {
        let buffer = self.alloc(data.len())?;
        self.upload(&buffer, 0, data)?;
        Ok(buffer)
    }
}

/// Checks one call against `backend`'s contract, its views and the
/// backend's own limits (`Unsupported` with the reason).
fn check_call<B: Backend + ?Sized>(
    backend: &B,
    op: &Op,
    inputs: &[TensorRef<'_>],
    outputs: &[TensorRef<'_>],
) -> Result<()> {
    let descs = |ts: &[TensorRef<'_>]| -> SmallVec<[TensorDesc; 4]> {
        ts.iter().map(|t| t.desc.clone()).collect()
    };
    let (ins, outs) = (descs(inputs), descs(outputs));
    backend.contract().validate(op, &ins, &outs)?;
    check_views(backend.name(), backend.device_id(), inputs, outputs)?;
    match backend.supports_valid(op, &ins, &outs) {
        Support::Supported => Ok(()),
        Support::Unsupported(reason) => Err(crate::HalError::Unsupported {
            backend: format!("{}:{}", backend.name(), backend.info().index),
            op: op.name().into(),
            reason,
        }),
    }
}
