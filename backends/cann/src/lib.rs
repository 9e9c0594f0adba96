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
//! Status: proven against the strict ACL simulator (`cann-sim/`), once per
//! SoC family, not yet on Ascend hardware. Every op of the catalogue is
//! mapped for f32, f16 and bf16 (bf16 on Atlas A2 only) and GGUF Q8_0/Q4_0
//! weights; what aclnn has no single call for, or a SoC lacks (rope off A2,
//! rms_norm on 910A, layer_norm on 310P), is composed from aclnn calls in
//! f32. What a SoC cannot run is reported unsupported with the reason, never
//! run elsewhere.
//!
//! ## Design
//!
//! The crate has the full file set of a backend: `loader.rs` (ACL runtime, nnopbase and opapi
//! symbols from the toolkit's `lib64`, with the documents they were checked against),
//! `device.rs` (`aclInit` once per process and `aclFinalize` at `Provider::shutdown`, the
//! context of each calling thread, device count, SoC name, memory; the per-SoC facts of
//! `Family`), `memory.rs` (`aclrtMalloc` buffers recycled through a pool that waits for the
//! stream before freeing), `queue.rs` (one stream, a grow-only workspace for aclnn's two-phase
//! convention, a grow-only scratch buffer from which each op takes its temporaries in one
//! request, constant tables uploaded once by key (rope frequencies, causal masks), synchronize
//! before host copies; the ops queued since the last wait named in a device error),
//! `prepared.rs` (the split layout whole Q8_0/Q4_0 weights are stored in), `support.rs`
//! (dtypes per SoC and the declared precision), and `kernels/` with one file per op family
//! (`activation`, `attention`, `convert`, `elementwise`, `embedding`, `kv_cache`, `matmul`,
//! `norm`, `reduce`, `rope`, `quant` for Q8_0/Q4_0 weights in either layout, `quantize` for
//! writing GGUF blocks), each function building `aclTensor` descriptors (row-major dims,
//! element strides and offset, 1-D storage covering the buffer) and destroying them after the
//! launch.

mod device;
mod kernels;
mod loader;
mod memory;
mod prepared;
mod queue;
mod support;

pub use memory::CannBuffer;
pub use queue::CannBackend;

use glmhal_hal::{
    Availability, Backend, BackendOptions, BackendProvider, HalError, Result, UnavailableKind,
};

/// Registry entry for CANN.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "cann"
    }

    fn probe(&self, _: &BackendOptions) -> Availability {
        let acl = match device::acl() {
            Ok(a) => a,
            Err(e) => return Availability::library_missing(e),
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

    fn open(&self, index: Option<usize>, options: &BackendOptions) -> Result<Box<dyn Backend>> {
        let i = index.unwrap_or(0);
        if let Availability::Unavailable { detail, .. } = self.probe(options) {
            return Err(HalError::Unavailable {
                backend: format!("cann:{i}"),
                reason: detail,
            });
        }
        let acl = device::acl()?;
        let n = device::count(&acl)?;
        if i >= n {
            return Err(HalError::Unavailable {
                backend: format!("cann:{i}"),
                reason: format!("the CANN runtime reports {n} device(s)"),
            });
        }
        Ok(Box::new(CannBackend::open(acl, i)?))
    }

    /// `aclFinalize`, once, if `aclInit` ran.
    fn shutdown(&self) {
        device::finalize();
    }
}
