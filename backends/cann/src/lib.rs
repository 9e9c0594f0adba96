//! # glmhal-cann
//!
//! The Ascend CANN backend: the ACL runtime (`libascendcl.so`), tensor
//! descriptors (`libnnopbase.so`) and aclnn ops (`libopapi.so`) loaded at run
//! time from `ASCEND_TOOLKIT_HOME`, `ASCEND_HOME_PATH` or
//! `/usr/local/Ascend/ascend-toolkit/latest`, with its own declarations of
//! the documented C API. Every op is one documented function in `kernels/`
//! in aclnn's two-phase convention (workspace size and executor, then the
//! launch on the device's stream); errors carry `aclGetRecentErrMsg()`.
//!
//! Status: proven against the strict ACL simulator (`cann-sim/`), not yet on
//! Ascend hardware. Mapped so far: add, mul, scale, silu, cast (f32, f16,
//! bf16; no bf16 on 310P parts), gelu (tanh form), swiglu, rms_norm, softmax
//! (unscaled, non-causal), mat_mul (x, w, y in one dtype; bias through add),
//! batched_mat_mul (one dtype), get_rows and kv_write (rows and cache in one
//! dtype); every
//! other op or dtype mix is reported unsupported with the reason, never run
//! elsewhere.

mod device;
mod kernels;
mod loader;
mod memory;
mod queue;
mod support;

pub use memory::CannBuffer;
pub use queue::CannBackend;

use glmhal_hal::{Availability, Backend, BackendProvider, HalError, Result, UnavailableKind};

/// Registry entry for CANN.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "cann"
    }

    fn probe(&self) -> Availability {
        let acl = match device::acl() {
            Ok(a) => a,
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
        match device::count(&acl) {
            Ok(0) => Availability::Unavailable {
                kind: UnavailableKind::NoDevice,
                detail: format!(
                    "the CANN runtime under {} reports 0 devices",
                    acl.root.display()
                ),
            },
            Ok(n) => match (0..n)
                .map(|i| device::describe(&acl, i))
                .collect::<Result<Vec<_>>>()
            {
                Ok(devices) => Availability::Available { devices },
                Err(e) => Availability::Unavailable {
                    kind: UnavailableKind::Other,
                    detail: e.to_string(),
                },
            },
            Err(e) => Availability::Unavailable {
                kind: UnavailableKind::Other,
                detail: e.to_string(),
            },
        }
    }

    fn open(&self, index: Option<usize>) -> Result<Box<dyn Backend>> {
        let acl = device::acl()?;
        let i = index.unwrap_or(0);
        let n = device::count(&acl)?;
        if i >= n {
            return Err(HalError::Unavailable {
                backend: format!("cann:{i}"),
                reason: format!("the CANN runtime reports {n} device(s)"),
            });
        }
        Ok(Box::new(CannBackend::open(acl, i)?))
    }
}
