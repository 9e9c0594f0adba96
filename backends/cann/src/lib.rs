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
//! Ascend hardware. Every op of the catalogue is mapped for f32, f16 and bf16
//! (no bf16 on 310P parts) and GGUF Q8_0/Q4_0 weights; what aclnn has no
//! single call for is composed from aclnn calls in f32. What a SoC cannot run
//! is reported unsupported with the reason, never run elsewhere.
//!
//! ## Design
//!
//! The crate has the full file set of a backend: `loader.rs` (ACL runtime, nnopbase and opapi
//! symbols from the toolkit's `lib64`), `device.rs` (`aclInit` once per process, device count,
//! SoC name, memory; per-SoC facts such as no bf16 on 310P and which parts have
//! `WeightQuantBatchMatmulV2`), `memory.rs` (`aclrtMalloc` buffers recycled through a pool),
//! `queue.rs` (one stream, a grow-only workspace for aclnn's two-phase convention, a grow-only
//! scratch buffer from which each op takes its temporaries in one request, constant tables
//! uploaded once by key (rope frequencies, causal masks), synchronize before host copies),
//! `support.rs`, and `kernels/` with one file per op family (`activation`, `attention`,
//! `convert`, `elementwise`, `embedding`, `kv_cache`, `matmul`, `norm`, `reduce`, `rope`,
//! `quant` for GGUF Q8_0/Q4_0 weights (values and scales split out, or
//! dequantized, at each call), `quantize` for writing them), each function
//! building `aclTensor` descriptors (row-major dims, element strides and offset, 1-D storage
//! covering the buffer) and destroying them after the launch. Ops aclnn has no single call for
//! are composed from aclnn calls in f32 (attention, scaled/causal softmax, quantize, mixed
//! dtypes).

mod device;
mod kernels;
mod loader;
mod memory;
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
}
