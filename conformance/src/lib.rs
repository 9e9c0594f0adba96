//! # glmhal-conformance
//!
//! Every op × dtype × shape of the catalogue on every backend, against the
//! f64 reference of `glmhal-ops`:
//! - [`cases`]: the case list (odd, large, strided and GLM-real shapes);
//! - [`runner`]: one case on one backend, with guard regions around outputs;
//! - [`rules`] and [`metrics`]: how each op is judged (exact, or every
//!   element within the bound `glmhal_ops::bounds` derives from what the
//!   backend declares) and the error measures;
//! - [`suite`]: filters and runs over many backends and seeds;
//! - [`agreement`]: every pair of backends compared with each other;
//! - [`mutants`]: faults real kernels have had, planted by name in a real
//!   backend, which the suite must catch;
//! - [`report`]: console matrix, JSON (versioned) and Markdown;
//! - [`divergence`]: two backends run node by node, the first node whose
//!   output is not what its own inputs give (`glmhal diff`, `glmhal dump`);
//! - [`model_check`]: a built-in tiny GLM on each backend against [`reference_backend`];
//! - [`backend_tests!`]: the suite as `cargo test` cases for one backend.

pub mod agreement;
pub mod case;
pub mod cases;
pub mod divergence;
pub mod metrics;
pub mod model_check;
pub mod mutants;
pub mod reference_backend;
pub mod report;
pub mod rules;
pub mod runner;
pub mod suite;
pub mod testing;

/// Re-exported for [`backend_tests!`].
pub use glmhal_hal as hal;

pub use agreement::Agreement;
pub use case::{Case, Fill, TensorSpec};
pub use report::{BackendEntry, Counts, Report, SCHEMA};
pub use runner::{Outcome, Status, GUARD_BYTES};
pub use suite::{run, CaseResult, Filter, Progress, Run, Target, DEFAULT_SEED};
