//! The engine under the op kernels: the dot products and conversions per
//! instruction set (`simd`), the register-blocked GEMMs for many activation
//! rows (`gemm` in f32 or bf16, `gemm_int8` for Q8_0/Q4_0 weights in 8-bit
//! integers), results filled in place by tasks owning column ranges
//! (`columns`) and the per-thread buffer pool (`scratch`).

pub(crate) mod columns;
pub(crate) mod gemm;
pub(crate) mod gemm_int8;
pub(crate) mod scratch;
pub(crate) mod simd;

use super::{f32_bytes_mut, In};
use scratch::Scratch;
