//! # glmhal-wgpu
//!
//! The portable backend: WGSL compute kernels through wgpu on Vulkan, Metal,
//! DX12 and GL. CI runs it on Mesa's software drivers (lavapipe for Vulkan,
//! llvmpipe for GL).
//!
//! Every op of the catalogue has a WGSL kernel, for every dtype combination
//! the catalogue allows and any strides: tensors are read and written through
//! generated per-dtype accessors (f16 native with `SHADER_F16`, otherwise
//! unpacked from 32-bit words; bf16 unpacked; Q8_0/Q4_0 decoded inside the
//! loads, never expanded in memory); arithmetic is f32. Reductions use
//! 64-thread workgroups, products 16×16 tiles (or a workgroup per output for
//! a few rows), attention an online softmax over 64-key tiles, so every
//! shader loop stays short (Mesa llvmpipe ends loops after 65535 iterations).
//! mat_mul weights and get_rows tables larger than one storage binding are
//! split by rows. `execute_step` encodes a whole step into one submission.
//! Ids or positions outside a table or cache are reported as errors at the
//! next `synchronize` or `download`. What an adapter cannot run is reported
//! unsupported with the reason, never run elsewhere.
//!
//! File layout (the same in every backend crate): `lib.rs` (the [`Provider`]),
//! `device.rs`, `memory.rs`, `queue.rs`, `support.rs`, `kernels/`.
//!
//! ## Design
//!
//! The backend keeps tensors in storage buffers (sizes rounded to 4-byte words; uploads and
//! downloads widen to whole words; freed buffers up to 64 MiB return to a pool in `memory.rs`).
//! Its kernels are one file per op family under `kernels/`. Kernels compute in f32 and never
//! index a buffer themselves: `kernels/wgsl.rs` generates, per operand dtype, the `ld_x`/`st_x`
//! functions that read f32/i32 words, unpack f16/bf16 from words (or bind `array<f16>` when the
//! device has `SHADER_F16`) and decode Q8_0/Q4_0 blocks inside the load, and store 16-bit
//! values with atomics on their word so neighbours are never touched. Pipelines are cached per
//! kernel and dtype combination. Each tensor binds only the bytes it spans (from the aligned
//! offset below it), so arena size is never limited by a binding; a mat_mul weight or get_rows
//! table larger than `max_storage_buffer_binding_size` is split by rows into one launch per
//! part. `queue.rs` records launches and submits them in one compute pass: `execute` is one
//! submit, `execute_step` (the executor's whole step) is one submit too, with every launch's
//! parameters in one reused uniform buffer. All storage bindings are `read_write` because
//! inputs and outputs often share the executor's arena buffer. wgpu's uncaptured errors are
//! turned into `HalError`s instead of panics. `support.rs` knows adapter quirks: Mesa llvmpipe
//! ends shader loops after 65535 iterations, so every kernel bounds its loops (rows stride by
//! 64, products loop over 16-wide tiles, attention over 64-key tiles) and anything still beyond
//! is reported unsupported there. `WgpuOptions` (`BackendOptions::wgpu`; the CLI maps `GLMHAL_WGPU_MAX_BINDING`,
//! `GLMHAL_WGPU_NATIVE_F16=0`) lower the binding limit or turn native f16 off, which is how
//! tests reach the split and unpacked paths.

mod device;
mod kernels;
mod memory;
mod queue;
mod support;

pub use glmhal_hal::WgpuOptions;
pub use memory::WgpuBuffer;
pub use queue::WgpuBackend;

use glmhal_hal::{
    Availability, Backend, BackendOptions, BackendProvider, HalError, Result, UnavailableKind,
};

/// Registry entry for wgpu: every adapter of every API wgpu finds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "wgpu"
    }

    fn probe(&self, _: &BackendOptions) -> Availability {
        let adapters = device::adapters();
        if adapters.is_empty() {
            return Availability::Unavailable {
                kind: UnavailableKind::NoDevice,
                detail: "no Vulkan, Metal, DX12 or GL adapter found (for a software one install Mesa's mesa-vulkan-drivers)".into(),
            };
        }
        Availability::Available {
            devices: adapters
                .iter()
                .enumerate()
                .map(|(i, a)| device::describe(i, a))
                .collect(),
        }
    }

    fn open(&self, index: Option<usize>, options: &BackendOptions) -> Result<Box<dyn Backend>> {
        Ok(Box::new(open_with(index, &options.wgpu)?))
    }
}

/// Opens adapter `index` (or the best one: discrete, integrated, virtual,
/// then CPU adapters) with explicit options.
pub fn open_with(index: Option<usize>, options: &WgpuOptions) -> Result<WgpuBackend> {
    let adapters = device::adapters();
    let chosen = match index {
        Some(i) => i,
        None => (0..adapters.len())
            .min_by_key(|&i| device::rank(&adapters[i]))
            .unwrap_or(0),
    };
    let adapter = adapters.get(chosen).ok_or_else(|| HalError::Unavailable {
        backend: format!("wgpu:{chosen}"),
        reason: format!("wgpu found {} adapter(s)", adapters.len()),
    })?;
    WgpuBackend::open(chosen, adapter, options)
}
