//! What the CPU backend can run: every valid op and dtype combination.

use glmhal_hal::{Op, Support, TensorDesc};

/// The CPU runs every op of the catalogue for every dtype the catalogue
/// allows; anything the catalogue rejects is reported with the reason.
pub fn supports(op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
    match glmhal_ops::validate(op, inputs, outputs) {
        Ok(()) => Support::Supported,
        Err(e) => Support::Unsupported(e.to_string()),
    }
}
