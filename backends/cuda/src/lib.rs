//! # glmhal-cuda
//!
//! The CUDA backend for NVIDIA GPUs. The driver (`libcuda.so.1`) is loaded
//! at run time (`loader.rs`), so one glmhal binary builds and runs anywhere;
//! `glmhal devices` says whether a driver was found, how old it is and which
//! devices it reports. The kernels are the shared CUDA/HIP tree in
//! `glmhal-gpu-kernels`, which `glmhal kernels compile --target cuda:sm_NN`
//! builds with NVRTC and ptxas without a GPU.
//!
//! Status: discovery only. Running ops on a CUDA device (NVRTC at first use,
//! cuBLAS GEMM, streams, memory pool) is not in this build, and a machine
//! with a GPU says so rather than pretending.

pub mod device;
pub mod loader;

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
                let names: Vec<String> = (0..n)
                    .map(|i| match device::describe(&cuda, i) {
                        Ok(d) => format!("{} ({})", d.name, d.architecture),
                        Err(e) => e.to_string(),
                    })
                    .collect();
                unavailable(
                    UnavailableKind::Other,
                    format!(
                        "{n} GPU(s) found ({}), but running ops on CUDA devices is not in this build yet; `glmhal kernels compile --target cuda:sm_NN` checks the toolchain",
                        names.join(", ")
                    ),
                )
            }
        }
    }

    fn open(&self, index: Option<usize>) -> Result<Box<dyn Backend>> {
        let reason = match self.probe() {
            Availability::Unavailable { detail, .. } => detail,
            Availability::Available { .. } => "unexpected".into(),
        };
        Err(HalError::Unavailable {
            backend: match index {
                Some(i) => format!("cuda:{i}"),
                None => "cuda".into(),
            },
            reason,
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
