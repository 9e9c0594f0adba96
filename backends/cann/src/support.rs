//! What the CANN backend maps to aclnn on a given SoC, and why not otherwise.

use glmhal_hal::{Arithmetic, DType, Op, Precision, Support, TensorDesc};

/// aclnn computes these ops in f32 (f16/bf16 operands widened, Q4_0
/// weights dequantized before the product), except Q8_0 products on
/// aclnnWeightQuantBatchMatmulV2, which take their activations in f16 (the
/// scales' dtype) and write an f16 result.
pub fn precision(op: &Op, inputs: &[TensorDesc], _outputs: &[TensorDesc], soc: &str) -> Precision {
    match (op, inputs) {
        (Op::MatMul { .. }, [_, w, ..])
            if w.dtype == DType::Q8_0 && crate::device::has_weight_quant_matmul(soc) =>
        {
            Precision {
                inputs_rounded_to: Some(Arithmetic::F16),
                result_rounded_to: Some(Arithmetic::F16),
                ..Precision::F32
            }
        }
        _ => Precision::F32,
    }
}

/// Honest answers for a call the contract accepts: mapped to an aclnn op,
/// dtypes the SoC has.
pub fn supports(inputs: &[TensorDesc], outputs: &[TensorDesc], soc: &str) -> Support {
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
