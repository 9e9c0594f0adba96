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
//!
//! ## Layout
//!
//! A shared library exporting the ACL/aclnn C symbols the backend uses, on host memory, with
//! every call checked (init order, device set, pointers inside allocations, views inside their
//! storage, known dtypes (f32, f16, bf16, i32, int64, int8, uint8, bool) and format, executors
//! used once with a large enough workspace, streams synchronized before host reads, leaks of
//! tensors, scalars, int arrays and executors at `aclFinalize`); ops are computed in f64 and
//! rounded once to the output dtype. `ops.rs` holds the two-phase machinery; the entry points
//! live by family (`ops.rs` for the first elementwise, matmul, norm and index ops,
//! `rope_ops.rs`, `attention_ops.rs`, `reduce_ops.rs`, `quant_ops.rs`, `math_ops.rs`).
//! `GLMHAL_CANN_SIM_SOC` changes the SoC it reports. `ci/cann-sim.sh` lays it out as a toolkit
//! (three links to one library, so they share state) and runs `glmhal conformance --backend
//! cann` against it, then the per-SoC paths.

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
