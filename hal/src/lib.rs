//! # glmhal-hal
//!
//! The hardware abstraction every glmhal backend implements and every
//! consumer (executor, conformance suite, CLI) programs against:
//!
//! - [`DType`]: f32, f16, bf16, i32 and GGUF-layout Q8_0/Q4_0 ([`quant`]);
//! - [`TensorDesc`]: shape, element strides and byte offset of a view;
//! - [`DeviceInfo`]: what a device is and how fast it can be;
//! - [`Backend`]: buffers, uploads and downloads, ops on a device queue, `supports`;
//! - [`Precision`]: what a backend declares it computes an op in (the basis of its error bounds);
//! - [`Registry`]: run-time discovery of compiled-in backends;
//! - [`BackendOptions`]: every setting a user can make, typed, handed to backends as they open;
//! - [`Op`]: the ops a backend runs, as data (their catalogue lives in `glmhal-ops`);
//! - [`HalError`]: the one error type;
//! - [`output`]: outputs that are never inputs and appear only whole.

pub mod backend;
pub mod buffer;
pub mod counters;
pub mod device;
pub mod dtype;
pub mod error;
pub mod host;
pub mod kernel_status;
pub mod layout;
pub mod op;
pub mod options;
pub mod output;
pub mod pool;
pub mod precision;
pub mod quant;
pub mod registry;
pub mod rng;

pub use backend::{Backend, OpCall, OpContract, SharedBytes, Support};
pub use buffer::{check_views, Buffer, DeviceBuffer, DeviceId, TensorRef};
pub use counters::{Counters, WorkCounters};
pub use device::{DeviceInfo, DeviceSelector, PeakFlops};
pub use dtype::{DType, QUANT_BLOCK};
pub use error::{HalError, Result};
pub use host::HostTensor;
pub use layout::{contiguous_strides, Dims, TensorDesc};
pub use op::{Op, OpKind, RopeMode};
pub use options::{
    ActivationBits, BackendOptions, CpuIsa, CpuOptions, GpuOptions, Ptxas, WgpuOptions,
};
pub use precision::{ActivationQuant, Arithmetic, Precision};
pub use registry::{
    Availability, BackendProvider, BackendStatus, Registry, UnavailableKind, KNOWN_BACKENDS,
};
pub use rng::Rng;
