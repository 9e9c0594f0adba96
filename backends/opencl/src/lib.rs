//! # glmhal-opencl
//!
//! The OpenCL backend, for phone and car GPUs (Adreno, Mali), accelerators
//! with OpenCL drivers, and CPUs through PoCL (how CI runs it). The ICD
//! loader is opened at run time (`loader.rs`), so one glmhal binary builds
//! and starts anywhere; every device of every platform is listed, whatever
//! its type (PoCL's device is a CPU).
//!
//! The kernels are the CUDA/HIP tree of `glmhal-gpu` itself,
//! written in the common subset of CUDA C++ and OpenCL C 1.2 (`compat.h`
//! maps the rest), so every op and dtype combination runs here with the same
//! code as on NVIDIA and AMD, and the shared plan and backend choose the
//! launches; this crate supplies the driver (`driver.rs`). No extension is
//! needed: f16 and bf16 are converted with exact bit operations, Q8_0/Q4_0
//! decoded in the kernels, arithmetic in f32 (so `cl_khr_fp16` arithmetic is
//! never relied on), reductions go through local memory. Each file is built
//! at first use, once per context (headers inlined, `#line` kept), with the
//! build log in the error when a driver refuses one.
//!
//! File layout: `lib.rs` (the [`Provider`]),
//! `loader.rs`, `device.rs`, `driver.rs`.
//!
//! ## Design
//!
//! The crate has `loader.rs` (opencl3/cl3 with the ICD loader opened by dlopen at first use;
//! every device of every platform, any type; discovery and device queries serialized because
//! drivers set devices up lazily and PoCL 3.1 crashes when two threads race there), `device.rs`
//! (`DeviceInfo` with platform, type, OpenCL C version, memory, largest allocation, local
//! memory, extensions) and `driver.rs` (a `Driver`: one context and in-order queue;
//! buffers are `cl_mem` handles carried as the `DevicePtr`, copies take an offset into them;
//! each kernel file of the shared tree, flattened with its headers and `#line` directives,
//! built from source with `-cl-std=CL1.2 -DGLMHAL_WARP=32`, the build log in the error; kernel
//! arguments set and the NDRange enqueued under one lock because `clSetKernelArg` is per kernel
//! object). It has no kernels of its own: the tree in `backends/gpu/kernels/` is OpenCL C too.

pub mod device;
pub mod driver;
pub mod loader;

use std::sync::Arc;

use glmhal_gpu::backend::open_device;
use glmhal_hal::{Availability, Backend, BackendOptions, BackendProvider, Result};

/// Registry entry for OpenCL.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "opencl"
    }

    fn probe(&self, _: &BackendOptions) -> Availability {
        match loader::devices() {
            Ok(found) => Availability::Available {
                devices: loader::serialized(|| {
                    found
                        .iter()
                        .enumerate()
                        .map(|(i, f)| device::describe(i, f))
                        .collect()
                }),
            },
            Err(e) => Availability::Unavailable {
                kind: e.kind,
                detail: e.detail,
            },
        }
    }

    fn open(&self, index: Option<usize>, options: &BackendOptions) -> Result<Box<dyn Backend>> {
        // OpenCL has no vendor BLAS here: every product runs on the kernels.
        open_device("opencl", index, self.probe(options), false, |i| {
            let found = loader::devices().map_err(|e| glmhal_hal::HalError::Unavailable {
                backend: format!("opencl:{i}"),
                reason: e.detail,
            })?;
            let device = found.get(i).map(|f| f.device).ok_or_else(|| {
                glmhal_hal::HalError::Unavailable {
                    backend: format!("opencl:{i}"),
                    reason: format!("{} device(s) found", found.len()),
                }
            })?;
            Ok(Arc::new(driver::OpenClDriver::open(i, device)?))
        })
    }
}
