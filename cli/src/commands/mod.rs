//! One module per subcommand.

pub mod conformance;
pub mod devices;
pub mod ops;
