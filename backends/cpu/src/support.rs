//! What the CPU backend computes each op in (it runs every op and dtype
//! combination the catalogue allows).

use glmhal_hal::{Arithmetic, Op, Precision, TensorDesc};

use crate::kernels::{attention, experts, matmul};

/// f32 arithmetic throughout (f16/bf16 values converted to f32 first),
/// except where a kernel does otherwise, as it dispatches: products with
/// Q8_0/Q4_0 weights quantize their activations to blocks, and products
/// with bf16 weights on AVX-512 BF16 round many activation rows to bf16
/// (so does attention of many queries over a bf16 cache).
pub fn precision(op: &Op, inputs: &[TensorDesc], _outputs: &[TensorDesc]) -> Precision {
    let declared = Precision::F32;
    let bf16 = |yes: bool| Precision {
        inputs_rounded_to: yes.then_some(Arithmetic::Bf16),
        ..declared
    };
    match (op, inputs) {
        (Op::MatMul { .. }, [x, w, ..]) => bf16(matmul::rounds_activations_to_bf16(x.shape[0], w))
            .with_activations(matmul::activation_quant(x, w)),
        (Op::Attention { .. }, [q, k, _]) => bf16(attention::rounds_queries_to_bf16(q, k)),
        (Op::MatMulId, [x, w, ids]) => {
            let (activations, rounds) = experts::declared(x, w, ids);
            bf16(rounds).with_activations(activations)
        }
        _ => declared,
    }
}
