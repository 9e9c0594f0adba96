//! # glmhal-cann-sim
//!
//! A simulator of the Ascend ACL runtime and aclnn op API, built as a shared
//! library that exports the same C symbols. "Device" memory is host memory;
//! ops run on the host. Every call is checked as strictly as the API's
//! documentation allows: `aclInit` once before anything else, a device set,
//! pointers that belong to allocations, tensor views that fit their storage
//! (strides and offsets in elements), dtype enums that exist, executors used
//! exactly once with a large enough workspace, streams synchronized before
//! the host reads device memory, nothing leaked at `aclFinalize`. A
//! violation returns an error whose `aclGetRecentErrMsg` text names the call
//! and the argument, and is also printed on stderr; `GLMHAL_CANN_SIM_ABORT=1`
//! aborts on the first one instead.
//!
//! The backend cannot tell it is talking to a simulator: it loads
//! `libascendcl.so`, `libnnopbase.so` and `libopapi.so` from the toolkit
//! directory, which `ci/cann-sim.sh` fills with copies of this library.

#![allow(clippy::missing_safety_doc)] // the C API's own contracts apply

#[macro_use]
mod ops;
mod attention_ops;
mod math_ops;
mod quant_ops;
mod reduce_ops;
mod rope_ops;
mod runtime;
mod state;
mod tensor;

pub use attention_ops::*;
pub use math_ops::*;
pub use ops::*;
pub use quant_ops::*;
pub use reduce_ops::*;
pub use rope_ops::*;
pub use runtime::*;
pub use state::violations;
pub use tensor::{
    aclCreateIntArray, aclCreateScalar, aclCreateTensor, aclDestroyIntArray, aclDestroyScalar,
    aclDestroyTensor,
};
