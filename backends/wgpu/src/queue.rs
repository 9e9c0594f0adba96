//! The wgpu backend: buffers on the adapter, kernels on its queue.

use glmhal_hal::{
    check_views, Backend, Buffer, DeviceId, DeviceInfo, HalError, Op, Result, Support, TensorDesc,
    TensorRef,
};

use crate::kernels::{attention, elementwise, linear, rows, Gpu};
use crate::memory::{align4, WgpuBuffer};

/// One opened adapter.
pub struct WgpuBackend {
    info: DeviceInfo,
    id: DeviceId,
    gpu: Gpu,
    limits: wgpu::Limits,
    /// Mesa's llvmpipe ends any shader loop after 65535 iterations.
    loop_cap: Option<u64>,
}

impl WgpuBackend {
    /// Opens `adapter` (index `index` in enumeration order) with its own limits.
    pub fn open(index: usize, adapter: &wgpu::Adapter) -> Result<Self> {
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("glmhal"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: Default::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: Default::default(),
        }))
        .map_err(|e| {
            HalError::backend(format!("wgpu:{index}"), "opening the device", e.to_string())
        })?;
        let loop_cap = adapter
            .get_info()
            .name
            .contains("llvmpipe")
            .then_some(65535);
        Ok(WgpuBackend {
            info: crate::device::describe(index, adapter),
            id: DeviceId::fresh(),
            gpu: Gpu::new(device, queue),
            limits,
            loop_cap,
        })
    }

    fn buffer<'a>(&self, b: &'a Buffer) -> Result<&'a WgpuBuffer> {
        b.downcast::<WgpuBuffer>()
            .filter(|w| w.device == self.id)
            .ok_or_else(|| {
                HalError::invalid("wgpu", "the buffer belongs to another device or backend")
            })
    }

    fn selector(&self) -> String {
        format!("wgpu:{}", self.info.index)
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> &'static str {
        "wgpu"
    }

    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn device_id(&self) -> DeviceId {
        self.id
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        let size = align4(bytes.max(4)) as u64;
        if size > self.limits.max_buffer_size {
            return Err(HalError::OutOfMemory {
                backend: self.selector(),
                requested: bytes,
                available: None,
            });
        }
        let scope = self
            .gpu
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if pollster::block_on(scope.pop()).is_some() {
            return Err(HalError::OutOfMemory {
                backend: self.selector(),
                requested: bytes,
                available: None,
            });
        }
        Ok(Buffer::new(WgpuBuffer {
            buffer,
            len: bytes,
            device: self.id,
        }))
    }

    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        let buf = self.buffer(dst)?;
        let range = dst.checked_range("wgpu upload", offset, data.len())?;
        // Copies move whole 4-byte words: widen to them, keeping the bytes around the range.
        let (start, end) = (range.start / 4 * 4, align4(range.end));
        let mut words = vec![0u8; end - start];
        if start != range.start || end != range.end {
            self.download_words(buf, start, &mut words)?;
        }
        words[range.start - start..range.end - start].copy_from_slice(data);
        self.gpu
            .queue
            .write_buffer(&buf.buffer, start as u64, &words);
        self.gpu.take_error("upload")
    }

    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let buf = self.buffer(src)?;
        let range = src.checked_range("wgpu download", offset, out.len())?;
        let (start, end) = (range.start / 4 * 4, align4(range.end));
        let mut words = vec![0u8; end - start];
        self.download_words(buf, start, &mut words)?;
        out.copy_from_slice(&words[range.start - start..range.end - start]);
        Ok(())
    }

    fn supports(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        crate::support::supports(
            op,
            inputs,
            outputs,
            self.limits.max_storage_buffer_binding_size,
            self.loop_cap,
        )
    }

    fn execute(&self, op: &Op, inputs: &[TensorRef<'_>], outputs: &[TensorRef<'_>]) -> Result<()> {
        let in_descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc.clone()).collect();
        let out_descs: Vec<TensorDesc> = outputs.iter().map(|t| t.desc.clone()).collect();
        glmhal_ops::validate(op, &in_descs, &out_descs)?;
        check_views("wgpu", self.id, inputs, outputs)?;
        if let Support::Unsupported(reason) = self.supports(op, &in_descs, &out_descs) {
            return Err(HalError::Unsupported {
                backend: self.selector(),
                op: op.name().into(),
                reason,
            });
        }
        let a = &self.buffer(inputs[0].buffer)?.buffer;
        let b = match inputs.get(1) {
            Some(t) => &self.buffer(t.buffer)?.buffer,
            None => a,
        };
        let c = match inputs.get(2) {
            Some(t) => &self.buffer(t.buffer)?.buffer,
            None => a,
        };
        let o = &self.buffer(outputs[0].buffer)?.buffer;
        let out = &out_descs[0];
        match op {
            Op::RmsNorm { .. } | Op::Softmax { .. } | Op::Argmax => {
                rows::run(&self.gpu, op, &in_descs, out, [a, b, o, o])
            }
            // get_rows: table, (unused), ids, out.
            Op::GetRows => linear::run(&self.gpu, op, &in_descs, out, [a, a, b, o]),
            Op::MatMul { .. } => linear::run(&self.gpu, op, &in_descs, out, [a, b, c, o]),
            Op::Rope { .. } | Op::KvWrite | Op::Attention { .. } => {
                attention::run(&self.gpu, op, &in_descs, out, [a, b, c, o])
            }
            _ => elementwise::run(&self.gpu, op, &in_descs, out, [a, b, o]),
        }
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| HalError::backend(self.selector(), "synchronize", e.to_string()))?;
        self.gpu.take_error("synchronize")
    }
}

impl WgpuBackend {
    /// Reads whole words `start..start + out.len()` (both multiples of 4) through a staging buffer.
    fn download_words(&self, buf: &WgpuBuffer, start: usize, out: &mut [u8]) -> Result<()> {
        let size = out.len() as u64;
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&buf.buffer, start as u64, &staging, 0, size);
        self.gpu.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.synchronize()?;
        rx.recv()
            .map_err(|_| {
                HalError::backend(self.selector(), "download", "the map callback never ran")
            })?
            .map_err(|e| HalError::backend(self.selector(), "download", e.to_string()))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| HalError::backend(self.selector(), "download", e.to_string()))?;
        out.copy_from_slice(&view);
        Ok(())
    }
}
