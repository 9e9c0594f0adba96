//! # glmhal-cann-sim
//!
//! A simulator of the Ascend ACL runtime and aclnn op API, built as a shared
//! library that exports the same C symbols. "Device" memory is host memory;
//! ops run on the host. Every call is checked as strictly as the API's
//! documentation allows, and the simulator behaves as a device does where a
//! forgiving one would hide a bug:
//!
//! - **Asynchronous streams**: a launched op is queued and runs later, in
//!   order, on its stream's worker thread, when the stream is synchronized;
//!   a host read before that is refused (and would see stale memory), and
//!   freeing or host-copying into memory a queued op uses is refused.
//! - **Per-SoC capability tables** (`soc.rs`): which ops exist on Atlas A2
//!   (910B), the training series (910A) and the inference series (310P),
//!   which `cubeMathType` values each accepts with which dtypes and what the
//!   cube then computes in (f32 inputs rounded to f16 where it has no f32
//!   path), bf16 only on A2, WeightQuantBatchMatmulV2's N and group limits.
//!   `GLMHAL_CANN_SIM_SOC` names the SoC.
//! - **Workspaces** of a shape-dependent size, poisoned before and after
//!   each op; a workspace overlapping the op's own tensors is refused.
//! - **Contexts per thread**: a call from a thread that never set a device
//!   fails with ACL_ERROR_RT_CONTEXT_NULL.
//! - **Lifetime**: `aclInit` once, executors used exactly once with a large
//!   enough workspace, and at `aclFinalize` every tensor, scalar, int array,
//!   executor, stream and device allocation still alive is listed as leaked.
//!
//! A violation returns an error whose `aclGetRecentErrMsg` text names the
//! call and the argument, and is also printed on stderr;
//! `GLMHAL_CANN_SIM_ABORT=1` aborts on the first one instead.
//!
//! The backend cannot tell it is talking to a simulator: it loads
//! `libascendcl.so`, `libnnopbase.so` and `libopapi.so` from the toolkit
//! directory, which `ci/cann-sim.sh` fills with copies of this library.
//!
//! ## Layout
//!
//! `runtime.rs` (init, devices, contexts, memory, copies, SoC name),
//! `stream.rs` (queues and workers), `soc.rs` (capability tables),
//! `state.rs` (what is alive, violations), `tensor.rs` (descriptors checked
//! against their storage; known dtypes f32, f16, bf16, i32, int64, int8,
//! uint8, bool; ND format); `ops.rs` holds the two-phase machinery (first
//! phase: arguments checked, a single-use executor and a workspace size;
//! second: workspace and stream checked, the op queued) and the first
//! elementwise, matmul, norm and index ops; the other entry points live by
//! family (`rope_ops.rs`, `attention_ops.rs`, `reduce_ops.rs`,
//! `quant_ops.rs`, `math_ops.rs`). Ops compute in f64 and round once to the
//! output dtype, except where the hardware rounds first (cube inputs,
//! WeightQuantBatchMatmulV2's dequantized weight). `ci/cann-sim.sh` lays it
//! out as a toolkit (three links to one library, so they share state) and
//! runs `glmhal conformance --backend cann` against it once per SoC family.

#![allow(clippy::missing_safety_doc)] // the C API's own contracts apply

#[macro_use]
mod ops;
mod attention_ops;
mod math_ops;
mod quant_ops;
mod reduce_ops;
mod rope_ops;
mod runtime;
pub mod soc;
mod state;
mod stream;
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
