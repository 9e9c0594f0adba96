//! WGSL kernels, one file per op family, and the machinery they share: how a
//! tensor view is described to a shader, the pipeline cache and dispatch.
//!
//! Every storage binding is declared `read_write`: the executor keeps all
//! activations in one arena, so an op's inputs and output are often ranges of
//! the same buffer, and WebGPU only lets a buffer appear in several bindings
//! of one dispatch when every binding is writable.

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod linear;
pub(crate) mod rows;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use glmhal_hal::{HalError, Result, TensorDesc};
use wgpu::util::DeviceExt;

/// Threads per workgroup of the 1-D kernels.
pub(crate) const WORKGROUP: u32 = 64;

/// WGSL shared by every kernel: the view layout and its indexing.
pub(crate) const VIEW_WGSL: &str = r#"
struct View { offset: u32, cols: u32, col_stride: u32, d1: u32, d2: u32, s0: u32, s1: u32, s2: u32 }
// Element `e` of a view in logical row-major order -> index into the buffer.
fn at(v: View, e: u32) -> u32 {
    let r = e / v.cols;
    let c = e % v.cols;
    let i2 = r % v.d2;
    let i1 = (r / v.d2) % v.d1;
    let i0 = r / (v.d2 * v.d1);
    return v.offset + i0 * v.s0 + i1 * v.s1 + i2 * v.s2 + c * v.col_stride;
}
// The flat thread index of a 2-D dispatch (x is capped at 65535 workgroups).
fn flat(g: vec3<u32>, n: vec3<u32>) -> u32 { return g.y * n.x * 64u + g.x; }
"#;

/// A view as the shaders see it: up to four dims, in f32 elements.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct View {
    offset: u32,
    cols: u32,
    col_stride: u32,
    d1: u32,
    d2: u32,
    s0: u32,
    s1: u32,
    s2: u32,
}

impl View {
    /// The view of `desc` (4-byte elements, rank 1 to 4).
    pub fn of(desc: &TensorDesc) -> Result<Self> {
        Self::broadcast(desc, &desc.shape)
    }

    /// The view of `desc` read as `shape`: dims where `desc` has size 1 repeat.
    pub fn broadcast(desc: &TensorDesc, shape: &[usize]) -> Result<Self> {
        let rank = shape.len();
        if rank == 0 || rank > 4 || desc.rank() != rank {
            return Err(HalError::invalid(
                "wgpu",
                format!("views of rank {rank} are not supported"),
            ));
        }
        let mut dims = [1usize; 4];
        let mut strides = [0usize; 4];
        for d in 0..rank {
            dims[4 - rank + d] = shape[d];
            strides[4 - rank + d] = if desc.shape[d] == 1 && shape[d] != 1 {
                0
            } else {
                desc.strides[d]
            };
        }
        let u = |x: usize| {
            u32::try_from(x)
                .map_err(|_| HalError::invalid("wgpu", "tensor too large for 32-bit indexing"))
        };
        Ok(View {
            offset: u(desc.offset / desc.dtype.block_bytes())?,
            cols: u(dims[3])?,
            col_stride: u(strides[3])?,
            d1: u(dims[1])?,
            d2: u(dims[2])?,
            s0: u(strides[0])?,
            s1: u(strides[1])?,
            s2: u(strides[2])?,
        })
    }

    /// Its eight words, in the WGSL struct's order.
    pub fn words(&self) -> [u32; 8] {
        [
            self.offset,
            self.cols,
            self.col_stride,
            self.d1,
            self.d2,
            self.s0,
            self.s1,
            self.s2,
        ]
    }
}

/// Device, queue and compiled pipelines.
pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pipelines: Mutex<HashMap<&'static str, Arc<wgpu::ComputePipeline>>>,
    /// The last error wgpu reported outside an error scope.
    pub uncaptured: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    pub fn new(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        // wgpu's default handler panics; errors become HalErrors instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        Gpu {
            device,
            queue,
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
        }
    }

    /// Takes the error wgpu reported since the last call, if any.
    pub fn take_error(&self, context: &str) -> Result<()> {
        let err = self.uncaptured.lock().ok().and_then(|mut e| e.take());
        match err {
            Some(msg) => Err(HalError::backend("wgpu", context, msg)),
            None => Ok(()),
        }
    }

    /// The pipeline of `name`, compiled from `source` at first use.
    fn pipeline(&self, name: &'static str, source: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| HalError::backend("wgpu", name, "pipeline cache poisoned"))?;
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(format!("{VIEW_WGSL}\n{source}").into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(HalError::backend(
                "wgpu",
                format!("compiling kernel `{name}`"),
                e.to_string(),
            ));
        }
        let p = Arc::new(pipeline);
        cache.insert(name, p.clone());
        Ok(p)
    }

    /// Runs kernel `name` over `threads` threads with uniform `params` at
    /// binding 0 and `buffers` at bindings 1, 2, ...
    pub fn dispatch(
        &self,
        name: &'static str,
        source: &str,
        params: &[u32],
        buffers: &[&wgpu::Buffer],
        threads: u32,
    ) -> Result<()> {
        let pipeline = self.pipeline(name, source)?;
        let mut bytes: Vec<u8> = params.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(name),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let groups = threads.div_ceil(WORKGROUP).max(1);
        let (x, y) = (groups.min(65535), groups.div_ceil(65535));
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(name) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        self.queue.submit([encoder.finish()]);
        self.take_error(name)
    }
}
