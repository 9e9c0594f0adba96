//! # glmhal-hip
//!
//! The HIP backend for AMD GPUs and Hygon DCUs. The runtime is loaded at run
//! time (`loader.rs`: `$ROCM_PATH/lib`, `/opt/rocm/lib`, Hygon DTK's
//! `/opt/dtk`, including `libgalaxyhip.so.5`), so one glmhal binary builds
//! and runs anywhere; `glmhal devices` says which runtime was found and how
//! many devices it reports. A runtime that loads but reports no device (as
//! on a CI machine with `libamdhip64` installed) reads as "unavailable: no
//! device". The kernels are the shared CUDA/HIP tree in `glmhal-gpu-kernels`,
//! which `glmhal kernels compile --target hip:<gfx>` builds without a device.
//!
//! Ops run through the shared GPU backend of `glmhal-gpu-kernels`: each
//! kernel file is compiled with hiprtc for the device's `gcnArchName` (and
//! its wavefront width) at first use. This path has not yet been validated
//! on AMD or Hygon hardware: `glmhal conformance --backend hip` is the check
//! to run first.

pub mod blas;
pub mod device;
pub mod loader;
pub mod runtime;

use std::sync::Arc;

use glmhal_gpu_kernels::runtime::open_device;

use glmhal_hal::{Availability, Backend, BackendProvider, HalError, Result, UnavailableKind};

/// Registry entry for HIP.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "hip"
    }

    fn probe(&self) -> Availability {
        let hip = match loader::Hip::load() {
            Ok(h) => h,
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
        let (code, _) = hip.versions();
        // HIP encodes versions as major * 10_000_000 + minor * 100_000 + patch.
        let runtime = format!(
            "{}.{}.{}",
            code / 10_000_000,
            code / 100_000 % 100,
            code % 100_000
        );
        let count = hip
            .init()
            .and_then(|has| if has { hip.device_count() } else { Ok(0) });
        match count {
            Err(e) => Availability::Unavailable {
                kind: UnavailableKind::Other,
                detail: format!("{} (HIP runtime {runtime}) failed to start: {e}", hip.path),
            },
            Ok(0) => Availability::Unavailable {
                kind: UnavailableKind::NoDevice,
                detail: format!(
                    "{} (HIP runtime {runtime}) loads but reports 0 devices",
                    hip.path
                ),
            },
            Ok(n) => {
                let devices: Result<Vec<_>> = (0..n).map(|i| device::describe(&hip, i)).collect();
                match devices {
                    Ok(devices) => Availability::Available { devices },
                    Err(e) => Availability::Unavailable {
                        kind: UnavailableKind::Other,
                        detail: e.to_string(),
                    },
                }
            }
        }
    }

    fn open(&self, index: Option<usize>) -> Result<Box<dyn Backend>> {
        open_device("hip", index, self.probe(), |i| {
            let hip = Arc::new(loader::Hip::load()?);
            if !hip.init()? {
                return Err(HalError::Unavailable {
                    backend: format!("hip:{i}"),
                    reason: "the HIP runtime reports no device".into(),
                });
            }
            Ok(Arc::new(runtime::HipRuntime::open(hip, i)?))
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
                    .open(None)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(err.contains(&detail), "{err}");
            }
            Availability::Available { devices } => assert!(!devices.is_empty()),
        }
    }
}
