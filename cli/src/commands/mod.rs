//! One module per subcommand.

pub mod chat;
pub mod conformance;
pub mod devices;
pub mod generate;
pub mod logits;
pub mod model_args;
pub mod ops;
pub mod synth;
