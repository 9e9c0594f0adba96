//! What the CANN backend maps to aclnn on a given SoC, and why not otherwise.

use glmhal_hal::{DType, Op, Precision, Support, TensorDesc};

/// aclnn computes these ops in f32 (f16/bf16 operands widened, Q8_0/Q4_0
/// weights dequantized before the product).
pub fn precision(
    _op: &Op,
    _inputs: &[TensorDesc],
    _outputs: &[TensorDesc],
    _soc: &str,
) -> Precision {
    Precision::F32
}

/// Honest answers: catalogue-valid, mapped to an aclnn op, dtypes the SoC has.
pub fn supports(op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc], soc: &str) -> Support {
    if let Err(e) = glmhal_ops::validate(op, inputs, outputs) {
        return Support::Unsupported(e.to_string());
    }
    let all = || inputs.iter().chain(outputs);
    // Quantized views are read through block views: rows must start on blocks.
    for t in all().filter(|t| t.dtype.is_quantized()) {
        if let Err(e) = crate::kernels::quant::Blocks::of(t) {
            return Support::Unsupported(e.to_string());
        }
    }
    if !crate::device::supports_bf16(soc) && all().any(|t| t.dtype == DType::Bf16) {
        return Support::Unsupported(format!("{soc} has no bf16"));
    }
    Support::Supported
}
