//! # glmhal-cuda
//!
//! The CUDA backend for NVIDIA GPUs. The driver (`libcuda.so.1`) is loaded
//! at run time (`loader.rs`), so one glmhal binary builds and runs anywhere;
//! `glmhal devices` says whether a driver was found, how old it is and which
//! devices it reports. The kernels are the shared CUDA/HIP tree in
//! `glmhal-gpu-kernels`, which `glmhal kernels compile --target cuda:sm_NN`
//! builds with NVRTC and ptxas without a GPU.
//!
//! Ops run through the shared GPU backend of `glmhal-gpu-kernels`: each
//! kernel file is compiled with NVRTC for the device's compute capability at
//! first use and JIT-loaded from PTX; launches go on the context's default
//! stream. NVRTC is found through `GLMHAL_NVRTC`, `LD_LIBRARY_PATH` or the
//! CUDA toolkit. This path has not yet been validated on NVIDIA hardware:
//! `glmhal conformance --backend cuda` is the check to run first.

pub mod blas;
pub mod device;
pub mod loader;
pub mod runtime;

use std::sync::Arc;

use glmhal_gpu_kernels::runtime::open_device;

use glmhal_hal::{Availability, Backend, BackendProvider, HalError, Result, UnavailableKind};

/// Registry entry for CUDA.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn probe(&self) -> Availability {
        let cuda = match loader::Cuda::load() {
            Ok(c) => c,
            Err(e) => {
                return Availability::Unavailable {
                    kind: UnavailableKind::LibraryMissing,
                    detail: match e {
                        HalError::Unavailable { reason, .. } => reason,
                        other => other.to_string(),
                    },
                }
            }
        };
        let unavailable = |kind, detail| Availability::Unavailable { kind, detail };
        match cuda.init() {
            Err(e) => return unavailable(UnavailableKind::Other, format!("{}: {e}", cuda.path)),
            Ok(Some(loader::NO_DEVICE)) => {
                return unavailable(
                    UnavailableKind::NoDevice,
                    format!("the NVIDIA driver ({}) reports no GPU", cuda.path),
                )
            }
            Ok(Some(code)) => {
                return unavailable(
                    UnavailableKind::DriverTooOld,
                    format!("the NVIDIA driver is too old: {}", cuda.error_text(code)),
                )
            }
            Ok(None) => {}
        }
        match cuda.device_count() {
            Err(e) => unavailable(UnavailableKind::Other, e.to_string()),
            Ok(0) => unavailable(
                UnavailableKind::NoDevice,
                format!("the NVIDIA driver ({}) reports 0 GPUs", cuda.path),
            ),
            Ok(n) => {
                let devices: Result<Vec<_>> = (0..n).map(|i| device::describe(&cuda, i)).collect();
                match devices {
                    Ok(devices) => Availability::Available { devices },
                    Err(e) => unavailable(UnavailableKind::Other, e.to_string()),
                }
            }
        }
    }

    fn open(&self, index: Option<usize>) -> Result<Box<dyn Backend>> {
        open_device("cuda", index, self.probe(), |i| {
            let cuda = Arc::new(loader::Cuda::load()?);
            Ok(Arc::new(runtime::CudaRuntime::open(cuda, i)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_and_opening_explain_themselves_without_panicking() {
        match Provider.probe() {
            Availability::Unavailable { detail, .. } => {
                assert!(detail.len() > 10, "{detail}");
                let err = Provider
                    .open(Some(0))
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(err.contains("cuda:0") && err.contains(&detail), "{err}");
            }
            Availability::Available { devices } => assert!(!devices.is_empty()),
        }
    }
}
