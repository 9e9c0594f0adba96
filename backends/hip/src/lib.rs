//! # glmhal-hip
//!
//! The HIP backend for AMD GPUs and Hygon DCUs. The runtime is loaded at run
//! time (`$ROCM_PATH/lib`, `/opt/rocm/lib`, Hygon DTK's `/opt/dtk`,
//! including `libgalaxyhip.so.5`), so one glmhal binary builds and runs
//! anywhere; `glmhal devices` says which runtime was found and how many
//! devices it reports. A runtime that loads but reports no device (as on a
//! CI machine with `libamdhip64` installed) reads as "unavailable: no
//! device".
//!
//! This crate holds only what is AMD's and Hygon's: the names of the HIP
//! runtime and rocBLAS entry points and their codes (`symbols.rs`), and what
//! a device is and how its kernels are compiled (`device.rs`). Everything
//! that runs is the shared GPU backend of `glmhal-gpu` (its `module_api` is
//! written once for CUDA and HIP): each kernel file of the shared tree is
//! compiled with hiprtc for the device's `gcnArchName` (and its wavefront
//! width) at first use. This path has not yet been validated on AMD or Hygon
//! hardware: `glmhal conformance --backend hip` is the check to run first.

pub mod device;
pub mod symbols;

use glmhal_gpu::module_api::{ModuleProvider, Vendor};

/// The HIP tables and device hooks of the shared module-launch driver.
static VENDOR: Vendor = Vendor {
    api: &symbols::RUNTIME_API,
    label: device::label,
    describe: device::describe,
    open: device::open,
};

/// Registry entry for HIP.
pub static PROVIDER: ModuleProvider = ModuleProvider::new(&VENDOR);
