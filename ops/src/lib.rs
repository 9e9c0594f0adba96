//! # glmhal-ops
//!
//! The op catalogue of glmhal:
//! - [`catalogue`]: every op as data (inputs, dtypes, parameters);
//! - [`validate`]: the shape and dtype checks every call passes first
//!   ([`CONTRACT`], which `Backend::execute` applies);
//! - [`reference`]: the plain f64 implementation that is the oracle;
//! - [`bounds`]: next to each reference value, how far an honest
//!   implementation of the computation a backend declares may land.

pub mod bounds;
pub mod catalogue;
pub mod reference;
pub mod validate;

pub use catalogue::{catalogue, example_op, spec, spec_ref, ArgSpec, OpSpec};
pub use validate::{validate, Catalogue, CONTRACT};
