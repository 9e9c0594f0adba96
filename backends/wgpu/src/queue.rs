//! The wgpu backend: buffers on the adapter, kernels recorded into launches
//! and submitted together (a whole step is one compute pass and one submit).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use glmhal_hal::{
    Backend, Buffer, DeviceId, DeviceInfo, HalError, Op, OpCall, OpContract, Precision, Result,
    Support, TensorDesc, TensorRef, WgpuOptions,
};

use crate::kernels::{
    activation, attention, convert, elementwise, embedding, experts, kv_cache, matmul, norm,
    reduce, rope, wgsl::status, Binding, Launch, Tensor,
};
use crate::memory::{align4, BufferPool, WgpuBuffer};

/// Bytes of the kernel status buffer.
const STATUS_BYTES: u64 = 16;

/// One opened adapter.
pub struct WgpuBackend {
    info: DeviceInfo,
    id: DeviceId,
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    binding: Binding,
    /// Mesa's llvmpipe ends any shader loop after 65535 iterations.
    loop_cap: Option<u64>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// The uniform buffer of launch parameters, reused by every submit.
    uniforms: Mutex<Option<wgpu::Buffer>>,
    /// The mappable buffer downloads go through, reused.
    staging: Mutex<Option<wgpu::Buffer>>,
    pool: Arc<BufferPool>,
    /// Four words where kernels report bad data (see `kernels::wgsl::status`).
    status: wgpu::Buffer,
    submissions: AtomicU64,
    /// The first error wgpu reported outside an error scope.
    uncaptured: Arc<Mutex<Option<String>>>,
}

impl WgpuBackend {
    /// Opens `adapter` (index `index` in enumeration order) with its own limits.
    pub fn open(index: usize, adapter: &wgpu::Adapter, options: &WgpuOptions) -> Result<Self> {
        let selector = format!("wgpu:{index}");
        let limits = adapter.limits();
        let native_f16 =
            adapter.features().contains(wgpu::Features::SHADER_F16) && options.native_f16;
        let required_features = if native_f16 {
            wgpu::Features::SHADER_F16
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("glmhal"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: Default::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: Default::default(),
        }))
        .map_err(|e| HalError::backend(selector.clone(), "opening the device", e.to_string()))?;
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        // wgpu's default handler panics; errors become HalErrors instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let adapter_max = limits.max_storage_buffer_binding_size;
        let binding = Binding {
            align: u64::from(limits.min_storage_buffer_offset_alignment).max(4),
            max_size: options
                .max_binding
                .map_or(adapter_max, |m| m.min(adapter_max))
                / 4
                * 4,
            native_f16,
        };
        let loop_cap = adapter
            .get_info()
            .name
            .contains("llvmpipe")
            .then_some(65535);
        let status = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("glmhal kernel status"),
            size: STATUS_BYTES,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut info = crate::device::describe(index, adapter);
        if options.max_binding.is_some() {
            info.features
                .push(format!("binding_size_capped_at={}", binding.max_size));
        }
        info.features.push(
            if native_f16 {
                "f16_storage=native"
            } else {
                "f16_storage=unpacked"
            }
            .into(),
        );
        Ok(WgpuBackend {
            info,
            id: DeviceId::fresh(),
            device,
            queue,
            limits,
            binding,
            loop_cap,
            pipelines: Mutex::new(HashMap::new()),
            uniforms: Mutex::new(None),
            staging: Mutex::new(None),
            pool: Arc::new(BufferPool::default()),
            status,
            submissions: AtomicU64::new(0),
            uncaptured,
        })
    }

    fn selector(&self) -> String {
        format!("wgpu:{}", self.info.index)
    }

    fn buffer<'a>(&self, b: &'a Buffer) -> Result<&'a WgpuBuffer> {
        b.downcast::<WgpuBuffer>()
            .filter(|w| w.device == self.id)
            .ok_or_else(|| {
                HalError::invalid("wgpu", "the buffer belongs to another device or backend")
            })
    }

    /// Takes the error wgpu reported since the last call, if any.
    fn take_error(&self, context: &str) -> Result<()> {
        let err = self.uncaptured.lock().ok().and_then(|mut e| e.take());
        match err {
            Some(msg) => Err(HalError::backend(self.selector(), context, msg)),
            None => Ok(()),
        }
    }

    /// Bytes the pool holds idle (for tests and diagnostics).
    pub fn pooled_bytes(&self) -> u64 {
        self.pool.idle_bytes()
    }

    /// Command buffers of kernels submitted so far (a step is one).
    pub fn submissions(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }

    /// The launches that run `op` (already checked against the contract and
    /// its views; checked here against this adapter's limits).
    fn record(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<Vec<Launch>> {
        let ins = inputs
            .iter()
            .map(|t| {
                Ok(Tensor {
                    desc: &t.desc,
                    buffer: &self.buffer(t.buffer)?.buffer,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let out = Tensor {
            desc: &outputs[0].desc,
            buffer: &self.buffer(outputs[0].buffer)?.buffer,
        };
        let b = &self.binding;
        let context = |e: HalError| match e {
            HalError::InvalidArgument { message, .. } => {
                HalError::invalid(format!("{} {}", self.selector(), op.name()), message)
            }
            other => other,
        };
        let one = |l: Result<Launch>| l.map(|l| vec![l]);
        let launches = match op {
            Op::GetRows => embedding::get_rows(&ins, out, b),
            Op::MatMul { bias } => matmul::mat_mul(&ins, out, *bias, b),
            Op::BatchedMatMul => one(matmul::batched_mat_mul(&ins, out, b)),
            Op::RmsNorm { .. } | Op::LayerNorm { .. } => one(norm::launch(op, &ins, out, b)),
            Op::Rope { rot, theta, mode } => {
                one(rope::launch(ins[0], ins[1], out, (*rot, *theta, *mode), b))
            }
            Op::Attention { scale, causal } => {
                one(attention::launch(&ins, out, *scale, *causal, b))
            }
            Op::Softmax { .. } | Op::Argmax => one(reduce::launch(op, ins[0], out, b)),
            Op::SwiGlu | Op::Silu | Op::Gelu => one(activation::launch(op, ins[0], out, b)),
            Op::Add | Op::Mul => one(elementwise::binary(op, &ins, out, b)),
            Op::Scale { factor } => one(elementwise::scale(ins[0], out, *factor, b)),
            Op::Cast => one(convert::cast(ins[0], out, b)),
            Op::Quantize => one(convert::quantize(ins[0], out, b)),
            Op::KvWrite => one(kv_cache::launch(ins[0], ins[1], out, b)),
            Op::MatMulId => experts::mat_mul_id(&ins, out, b),
            Op::MoeSelect {
                top_k,
                n_group,
                topk_group,
            } => one(experts::moe_select(
                &ins,
                out,
                (*top_k, *n_group, *topk_group),
                b,
            )),
            Op::MoeWeights { normalize, scale } => {
                one(experts::moe_weights(&ins, out, (*normalize, *scale), b))
            }
        };
        let launches = launches.map_err(context)?;
        // Compile here (cached after the first time) so a failure names the op.
        for l in &launches {
            self.pipeline(l).map_err(|e| match e {
                HalError::Backend {
                    context, message, ..
                } => HalError::backend(
                    format!("{} {}", self.selector(), op.name()),
                    context,
                    message,
                ),
                other => other,
            })?;
        }
        Ok(launches)
    }

    /// The pipeline of `launch`, compiled at first use.
    fn pipeline(&self, launch: &Launch) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = self.pipelines.lock().map_err(|_| {
            HalError::backend(self.selector(), &launch.key, "pipeline cache poisoned")
        })?;
        if let Some(p) = cache.get(&launch.key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&launch.key),
                source: wgpu::ShaderSource::Wgsl(launch.source(self.binding.native_f16).into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&launch.key),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(HalError::backend(
                self.selector(),
                format!("compiling kernel `{}`", launch.key),
                e.to_string(),
            ));
        }
        let p = Arc::new(pipeline);
        cache.insert(launch.key.clone(), p.clone());
        Ok(p)
    }

    /// Encodes `launches` into one compute pass and submits it once.
    fn submit(&self, launches: &[Launch]) -> Result<()> {
        if launches.is_empty() {
            return Ok(());
        }
        let pipelines = launches
            .iter()
            .map(|l| self.pipeline(l))
            .collect::<Result<Vec<_>>>()?;
        // Every launch's parameters in one uniform buffer, each block at an aligned offset.
        let align = (self.limits.min_uniform_buffer_offset_alignment as usize).max(16);
        let mut bytes = Vec::new();
        let mut blocks = Vec::with_capacity(launches.len());
        for l in launches {
            let start = bytes.len();
            bytes.extend(l.params.iter().flat_map(|w| w.to_le_bytes()));
            let size = (bytes.len() - start).div_ceil(16) * 16;
            bytes.resize(start + size, 0);
            blocks.push((start as u64, size as u64));
            bytes.resize(bytes.len().div_ceil(align) * align, 0);
        }
        // Held until the submit, so no other submit rewrites the parameters first.
        let mut uniforms = self
            .uniforms
            .lock()
            .map_err(|_| HalError::backend(self.selector(), "submit", "uniform pool poisoned"))?;
        let needed = bytes.len() as u64;
        if uniforms.as_ref().is_none_or(|u| u.size() < needed) {
            *uniforms = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("glmhal launch parameters"),
                size: needed.next_power_of_two().max(4096),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let Some(uniform) = uniforms.as_ref() else {
            return Err(HalError::backend(
                self.selector(),
                "submit",
                "no uniform buffer",
            ));
        };
        self.queue.write_buffer(uniform, 0, &bytes);
        let groups: Vec<wgpu::BindGroup> = launches
            .iter()
            .zip(&pipelines)
            .zip(&blocks)
            .map(|((l, pipeline), &(offset, size))| {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: uniform,
                        offset,
                        size: wgpu::BufferSize::new(size),
                    }),
                }];
                for (i, a) in l.args.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &a.buffer,
                            offset: a.start,
                            size: wgpu::BufferSize::new(a.size),
                        }),
                    });
                }
                if l.kernel.status {
                    entries.push(wgpu::BindGroupEntry {
                        binding: l.args.len() as u32 + 1,
                        resource: self.status.as_entire_binding(),
                    });
                }
                self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&l.key),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                })
            })
            .collect();
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("glmhal step"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("glmhal step"),
                timestamp_writes: None,
            });
            for ((l, pipeline), group) in launches.iter().zip(&pipelines).zip(&groups) {
                let [x, y, z] = l.grid.counts();
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(x, y, z);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.submissions.fetch_add(1, Ordering::Relaxed);
        drop(uniforms);
        self.take_error(&launches[0].key)
    }

    fn create_buffer(&self, size: u64) -> Option<wgpu::Buffer> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        pollster::block_on(scope.pop()).is_none().then_some(buffer)
    }

    /// Waits for the queue and reads whole words `start..start + out.len()`
    /// of `src` (both multiples of 4; none without `src`) through the staging
    /// buffer, together with the kernel status, which it checks.
    fn read_back(&self, src: Option<(&wgpu::Buffer, u64)>, out: &mut [u8]) -> Result<()> {
        let size = out.len() as u64;
        let total = size + STATUS_BYTES;
        let err = |what: String| HalError::backend(self.selector(), "download", what);
        let mut staging = self
            .staging
            .lock()
            .map_err(|_| err("staging buffer poisoned".into()))?;
        if staging.as_ref().is_none_or(|s| s.size() < total) {
            *staging = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("glmhal download"),
                size: total.next_power_of_two().max(1 << 16),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let Some(stage) = staging.as_ref() else {
            return Err(err("no staging buffer".into()));
        };
        let mut encoder = self.device.create_command_encoder(&Default::default());
        if let Some((buffer, start)) = src {
            encoder.copy_buffer_to_buffer(buffer, start, stage, 0, size);
        }
        encoder.copy_buffer_to_buffer(&self.status, 0, stage, size, STATUS_BYTES);
        self.queue.submit([encoder.finish()]);
        let slice = stage.slice(..total);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| err("the map callback never ran".into()))?
            .map_err(|e| err(e.to_string()))?;
        let mut words = [0u32; 4];
        {
            let view = slice.get_mapped_range().map_err(|e| err(e.to_string()))?;
            out.copy_from_slice(&view[..size as usize]);
            for (w, b) in words.iter_mut().zip(view[size as usize..].chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        stage.unmap();
        // Big one-off downloads do not keep a big staging buffer alive.
        if stage.size() > 64 << 20 {
            *staging = None;
        }
        drop(staging);
        self.check_status(words)
    }

    /// Waits until the queue is idle.
    fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| HalError::backend(self.selector(), "synchronize", e.to_string()))?;
        self.take_error("synchronize")
    }

    /// Turns a status a kernel reported into an error (and clears it).
    fn check_status(&self, words: [u32; 4]) -> Result<()> {
        let [code, value, ..] = words;
        if code == 0 {
            return Ok(());
        }
        self.queue.write_buffer(&self.status, 0, &[0u8; 16]);
        status::check(&self.selector(), code, value)
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
        let oom = || HalError::OutOfMemory {
            backend: self.selector(),
            requested: bytes,
            available: None,
        };
        if size > self.limits.max_buffer_size {
            return Err(oom());
        }
        let buffer = match self.pool.take(size) {
            Some(b) => b,
            None => match self.create_buffer(size) {
                Some(b) => b,
                None => {
                    // Idle pooled buffers may be what is missing.
                    self.pool.clear();
                    self.create_buffer(size).ok_or_else(oom)?
                }
            },
        };
        Ok(Buffer::new(WgpuBuffer {
            buffer,
            len: bytes,
            device: self.id,
            pool: self.pool.clone(),
        }))
    }

    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        let buf = self.buffer(dst)?;
        let range = dst.checked_range("wgpu upload", offset, data.len())?;
        if range.is_empty() {
            return Ok(());
        }
        // Copies move whole 4-byte words: widen to them, keeping the bytes around the range.
        let (start, end) = (range.start / 4 * 4, align4(range.end));
        if start == range.start && end == range.end {
            self.queue.write_buffer(&buf.buffer, start as u64, data);
        } else {
            let mut words = vec![0u8; end - start];
            self.read_back(Some((&buf.buffer, start as u64)), &mut words)?;
            words[range.start - start..range.end - start].copy_from_slice(data);
            self.queue.write_buffer(&buf.buffer, start as u64, &words);
        }
        self.take_error("upload")
    }

    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let buf = self.buffer(src)?;
        let range = src.checked_range("wgpu download", offset, out.len())?;
        if range.is_empty() {
            return Ok(());
        }
        let (start, end) = (range.start / 4 * 4, align4(range.end));
        let mut words = vec![0u8; end - start];
        self.read_back(Some((&buf.buffer, start as u64)), &mut words)?;
        out.copy_from_slice(&words[range.start - start..range.end - start]);
        Ok(())
    }

    fn contract(&self) -> &'static dyn OpContract {
        &glmhal_ops::CONTRACT
    }

    fn supports_valid(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        crate::support::supports(op, inputs, outputs, &self.binding, self.loop_cap)
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
        let launches = self.record(op, inputs, outputs)?;
        self.submit(&launches)
    }

    unsafe fn execute_valid_step(&self, calls: &[OpCall<'_>]) -> Result<()> {
        let mut launches = Vec::new();
        for call in calls {
            launches.extend(self.record(&call.op, &call.inputs, &call.outputs)?);
        }
        self.submit(&launches)
    }

    fn synchronize(&self) -> Result<()> {
        self.read_back(None, &mut [])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test that cannot set up should panic

    use super::*;
    use crate::kernels::{Arg, Grid, Kernel};
    use glmhal_hal::DType;

    static BROKEN: Kernel = Kernel {
        name: "broken",
        scalars: &[("n", "u32")],
        helpers: &[],
        status: false,
        body: "@compute @workgroup_size(64) fn main() { let x: u32 = undefined_name; }",
    };

    #[test]
    fn a_shader_that_does_not_compile_is_an_error_naming_adapter_and_kernel() {
        let Ok(backend) = crate::open_with(None, &WgpuOptions::default()) else {
            return;
        };
        let buffer = backend.alloc(64).unwrap();
        let desc = TensorDesc::contiguous(DType::F32, &[16]);
        let wgpu_buffer = &backend.buffer(&buffer).unwrap().buffer;
        let t = Tensor {
            desc: &desc,
            buffer: wgpu_buffer,
        };
        let arg = Arg::write("o", t, &backend.binding).unwrap();
        let launch = Launch::new(&BROKEN, vec![arg], &[16], Grid::Threads(16), false);
        let err = backend.submit(&[launch]).unwrap_err().to_string();
        assert!(
            err.contains("wgpu:") && err.contains("broken") && err.contains("undefined_name"),
            "{err}"
        );
        // The device is still usable.
        backend.synchronize().unwrap();
    }
}
