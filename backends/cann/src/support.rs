//! What the CANN backend maps to aclnn on a given SoC, and why not otherwise.

use glmhal_hal::{Arithmetic, DType, Op, Precision, Support, TensorDesc};

use crate::device::Family;

/// aclnn computes these ops in f32 (f16/bf16 operands widened, Q4_0
/// weights dequantized before the product), except:
/// - Q8_0 products, and those of whole Q4_0 matrices (prepared as int8), on
///   aclnnWeightQuantBatchMatmulV2 take their activations in f16 (the
///   scales' dtype), dequantize the weight into f16 and write an f16 result;
/// - where the cube unit has no f32 path (training and inference series),
///   the products of mat_mul, batched_mat_mul and attention round their f32
///   inputs, dequantized weights and attention's softmax weights to f16
///   (cubeMathType ALLOW_FP32_DOWN_PRECISION), accumulating in f32.
pub fn precision(op: &Op, inputs: &[TensorDesc], _outputs: &[TensorDesc], soc: &str) -> Precision {
    let family = Family::of(soc);
    let f16 = Some(Arithmetic::F16);
    match (op, inputs) {
        (Op::MatMul { .. }, [_, w, ..])
            if crate::kernels::quant::on_weight_quant_matmul(family, w) =>
        {
            Precision {
                inputs_rounded_to: f16,
                weights_dequantized_to: f16,
                result_rounded_to: f16,
                ..Precision::F32
            }
        }
        (Op::MatMul { .. } | Op::BatchedMatMul, [_, w, ..]) if !family.has_f32_cube() => {
            Precision {
                inputs_rounded_to: f16,
                weights_dequantized_to: f16.filter(|_| w.dtype.is_quantized()),
                ..Precision::F32
            }
        }
        (Op::Attention { .. }, _) if !family.has_f32_cube() => Precision {
            inputs_rounded_to: f16,
            probabilities_rounded_to: f16,
            ..Precision::F32
        },
        _ => Precision::F32,
    }
}

/// Why the backend has no kernel for `op`, if it has none.
pub fn missing(op: &Op) -> Option<String> {
    matches!(
        op,
        Op::MatMulId | Op::MoeSelect { .. } | Op::MoeWeights { .. }
    )
    .then(|| {
        format!(
            "the CANN backend has no {} kernel yet (the aclnn MoE ops are not bound)",
            op.name()
        )
    })
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
    if !Family::of(soc).has_bf16() && all().any(|t| t.dtype == DType::Bf16) {
        return Support::Unsupported(format!("{soc} has no bf16"));
    }
    Support::Supported
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matmul(w: DType) -> Vec<TensorDesc> {
        vec![
            TensorDesc::contiguous(DType::F32, &[4, 64]),
            TensorDesc::contiguous(w, &[8, 64]),
        ]
    }

    #[test]
    fn products_declare_f16_where_the_cube_has_no_f32() {
        let mm = Op::MatMul { bias: false };
        assert_eq!(
            precision(&mm, &matmul(DType::F32), &[], "Ascend910B3"),
            Precision::F32
        );
        for soc in ["Ascend910A", "Ascend310P3"] {
            let p = precision(&mm, &matmul(DType::F32), &[], soc);
            assert_eq!(p.inputs_rounded_to, Some(Arithmetic::F16), "{soc}");
            assert_eq!(p.weights_dequantized_to, None, "{soc}");
            let attention = Op::Attention {
                scale: 0.125,
                causal: true,
            };
            let p = precision(&attention, &[], &[], soc);
            assert_eq!(p.probabilities_rounded_to, Some(Arithmetic::F16), "{soc}");
        }
        // The 910A has no WeightQuantBatchMatmulV2: dequantized, then an f16 cube.
        let p = precision(&mm, &matmul(DType::Q4_0), &[], "Ascend910A");
        assert_eq!(p.weights_dequantized_to, Some(Arithmetic::F16));
        assert_eq!(p.result_rounded_to, None);
    }

    #[test]
    fn weight_quant_products_declare_f16_activations_weights_and_result() {
        let mm = Op::MatMul { bias: false };
        for (soc, w) in [("Ascend910B3", DType::Q8_0), ("Ascend310P3", DType::Q4_0)] {
            let p = precision(&mm, &matmul(w), &[], soc);
            assert_eq!(p.inputs_rounded_to, Some(Arithmetic::F16), "{soc}");
            assert_eq!(p.weights_dequantized_to, Some(Arithmetic::F16), "{soc}");
            assert_eq!(p.result_rounded_to, Some(Arithmetic::F16), "{soc}");
        }
    }
}
