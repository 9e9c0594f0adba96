//! # glmhal-testkit
//!
//! Tools that measure or disturb glmhal for its tests and benchmarks, kept
//! out of the HAL so no backend can depend on them:
//!
//! - [`alloc_count`]: a global allocator that counts heap allocations (the
//!   `glmhal` binary installs it; benchmarks report allocations per step);
//! - [`delay`]: a backend wrapper that waits after one op, to prove that
//!   `glmhal ci` catches a speed regression.

pub mod alloc_count;
pub mod delay;
