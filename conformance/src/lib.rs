//! # glmhal-conformance
//!
//! Every op × dtype × shape of the catalogue on every backend, against the
//! f64 reference of `glmhal-ops`:
//! - [`cases`]: the case list (odd, large, strided and GLM-real shapes);
//! - [`runner`]: one case on one backend, with guard regions around outputs;
//! - [`tolerance`] and [`metrics`]: thresholds and error measures;
//! - [`allowance`]: the error a product with quantized weights may carry
//!   from int8 activations, forgiven before NMSE;
//! - [`suite`]: filters and runs over many backends;
//! - [`report`]: console matrix, JSON (versioned) and Markdown;
//! - [`model_check`]: a built-in tiny GLM on each backend against [`reference_backend`];
//! - [`backend_tests!`]: the suite as `cargo test` cases for one backend.

pub mod allowance;
pub mod case;
pub mod cases;
pub mod metrics;
pub mod model_check;
pub mod reference_backend;
pub mod report;
pub mod runner;
pub mod suite;
pub mod testing;
pub mod tolerance;

/// Re-exported for [`backend_tests!`].
pub use glmhal_hal as hal;

pub use case::{Case, Fill, TensorSpec};
pub use report::{BackendEntry, Counts, Report, SCHEMA};
pub use runner::{Outcome, Status, GUARD_BYTES};
pub use suite::{run, CaseResult, Filter, Progress, Target, DEFAULT_SEED};
pub use tolerance::Tolerance;
