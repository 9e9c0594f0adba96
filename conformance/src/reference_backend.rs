//! The reference implementation behind the `Backend` trait, so whole graphs
//! (the model check) can run on the oracle exactly as on any device.

use std::sync::Mutex;

use glmhal_hal::{
    Backend, Buffer, DeviceId, DeviceInfo, HalError, HostTensor, Op, OpContract, Precision, Result,
    Support, TensorDesc, TensorRef,
};

/// Host memory guarded by a lock.
#[derive(Debug)]
struct RefBuffer {
    bytes: Mutex<Vec<u8>>,
    len: usize,
    device: DeviceId,
}

glmhal_hal::device_buffer!(RefBuffer);

/// Runs every op with `glmhal_ops::reference` (f64, simple loops). Slow, exact, never wrong by design.
pub struct ReferenceBackend {
    info: DeviceInfo,
    id: DeviceId,
}

impl Default for ReferenceBackend {
    fn default() -> Self {
        let mut info = DeviceInfo::new("reference", 0, "glmhal", "f64 reference", "host");
        info.runtime_version = Some(format!("glmhal-ops {}", env!("CARGO_PKG_VERSION")));
        ReferenceBackend {
            info,
            id: DeviceId::fresh(),
        }
    }
}

impl ReferenceBackend {
    fn buffer<'a>(&self, b: &'a Buffer) -> Result<&'a RefBuffer> {
        b.downcast::<RefBuffer>()
            .filter(|r| r.device == self.id)
            .ok_or_else(|| HalError::invalid("reference", "the buffer belongs to another device"))
    }

    /// A host copy of a view: its byte range, with the descriptor rebased onto it.
    fn read(&self, t: &TensorRef<'_>) -> Result<HostTensor> {
        let range = t.desc.byte_range();
        let bytes = self
            .buffer(t.buffer)?
            .bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())[range.clone()]
        .to_vec();
        let mut desc = t.desc.clone();
        desc.offset -= range.start;
        HostTensor::new(desc, bytes)
    }
}

impl Backend for ReferenceBackend {
    fn name(&self) -> &'static str {
        "reference"
    }
    fn info(&self) -> &DeviceInfo {
        &self.info
    }
    fn device_id(&self) -> DeviceId {
        self.id
    }
    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        let mut v = Vec::new();
        v.try_reserve_exact(bytes)
            .map_err(|_| HalError::OutOfMemory {
                backend: "reference".into(),
                requested: bytes,
                available: None,
            })?;
        v.resize(bytes, 0);
        Ok(Buffer::new(RefBuffer {
            bytes: Mutex::new(v),
            len: bytes,
            device: self.id,
        }))
    }
    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        let range = dst.checked_range("reference upload", offset, data.len())?;
        self.buffer(dst)?
            .bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())[range]
            .copy_from_slice(data);
        Ok(())
    }
    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let range = src.checked_range("reference download", offset, out.len())?;
        out.copy_from_slice(
            &self
                .buffer(src)?
                .bytes
                .lock()
                .unwrap_or_else(|p| p.into_inner())[range],
        );
        Ok(())
    }
    fn contract(&self) -> &'static dyn OpContract {
        &glmhal_ops::CONTRACT
    }
    fn supports_valid(&self, _: &Op, _: &[TensorDesc], _: &[TensorDesc]) -> Support {
        Support::Supported
    }
    fn precision(&self, _op: &Op, _inputs: &[TensorDesc], _outputs: &[TensorDesc]) -> Precision {
        Precision::F64
    }
    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        let ins = inputs
            .iter()
            .map(|t| self.read(t))
            .collect::<Result<Vec<_>>>()?;
        let mut outs = outputs
            .iter()
            .map(|t| self.read(t))
            .collect::<Result<Vec<_>>>()?;
        glmhal_ops::reference::execute(op, &ins, &mut outs)?;
        for (t, host) in outputs.iter().zip(outs) {
            let start = t.desc.byte_range().start;
            self.upload(t.buffer, start, &host.data)?;
        }
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
