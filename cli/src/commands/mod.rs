//! One module per subcommand.

pub mod bench;
pub mod chat;
pub mod ci;
pub mod conformance;
pub mod convert;
pub mod devices;
pub mod diff;
pub mod generate;
pub mod kernels;
pub mod logits;
pub mod model_args;
pub mod ops;
pub mod outputs;
pub mod report;
pub mod synth;
