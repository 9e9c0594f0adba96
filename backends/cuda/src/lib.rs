//! # glmhal-cuda
//!
//! The CUDA backend for NVIDIA GPUs. The driver (`libcuda.so.1`) is loaded
//! at run time, so one glmhal binary builds and runs anywhere;
//! `glmhal devices` says whether a driver was found, how old it is and which
//! devices it reports.
//!
//! This crate holds only what is NVIDIA's: the names of the driver API and
//! cuBLAS entry points and their codes (`symbols.rs`), and what a device is
//! and how its kernels are compiled (`device.rs`). Everything that runs is
//! the shared GPU backend of `glmhal-gpu` (its `module_api` is written once
//! for CUDA and HIP): each
//! kernel file is compiled with NVRTC for the device's compute capability at
//! first use and JIT-loaded from PTX; launches go on the context's default
//! stream. NVRTC is found through `GLMHAL_NVRTC`, `LD_LIBRARY_PATH` or the
//! CUDA toolkit. This path has not yet been validated on NVIDIA hardware:
//! `glmhal conformance --backend cuda` is the check to run first.

pub mod device;
pub mod symbols;

use glmhal_gpu::module_api::{ModuleProvider, Vendor};

/// The NVIDIA tables and device hooks of the shared module-launch driver.
static VENDOR: Vendor = Vendor {
    api: &symbols::DRIVER_API,
    label: device::label,
    describe: device::describe,
    open: device::open,
};

/// Registry entry for CUDA.
pub static PROVIDER: ModuleProvider = ModuleProvider::new(&VENDOR);
