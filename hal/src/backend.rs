//! The `Backend` trait: what every device implementation provides.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::buffer::{Buffer, DeviceId, TensorRef};
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

    /// Whether `op` can run here with tensors of these descriptors.
    fn supports(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support;

    /// What `op` with tensors of these descriptors computes in here: the
    /// arithmetic, any rounding of inputs or quantization of activations,
    /// and the accuracy of elementary functions. The conformance suite
    /// derives each output element's error bound from this declaration,
    /// so it must be true (a backend that declares f32 and rounds through
    /// bf16 fails). Only asked for ops [`Backend::supports`] accepts.
    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision;

    /// Enqueues `op`. Inputs and outputs follow the op catalogue; outputs
    /// must not overlap inputs or each other.
    fn execute(&self, op: &Op, inputs: &[TensorRef<'_>], outputs: &[TensorRef<'_>]) -> Result<()>;

    /// Enqueues a whole step. Backends that can record or fuse a step (one
    /// submission, a captured graph) override this; the default runs the
    /// calls one by one.
    fn execute_step(&self, calls: &[OpCall<'_>]) -> Result<()> {
        for call in calls {
            self.execute(&call.op, &call.inputs, &call.outputs)?;
        }
        Ok(())
    }

    /// Waits until everything enqueued so far has completed.
    fn synchronize(&self) -> Result<()>;

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
