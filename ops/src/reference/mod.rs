//! The reference implementation: the oracle every backend is compared with.
//!
//! Deliberately plain: inputs are decoded to f64 in logical order, each op is
//! a few simple loops with f64 accumulation, and results are rounded once to
//! the output dtype. One file per op family; no speed tricks.

mod activation;
mod attention;
mod convert;
mod elementwise;
mod embedding;
mod kv_cache;
mod matmul;
mod norm;
mod reduce;
mod rope;

use glmhal_hal::{HalError, HostTensor, Op, Result, TensorDesc};

use crate::validate::validate;

/// Runs `op` on host tensors. `outputs` must be allocated (their descriptors
/// say where results go); only the bytes of each output view are written.
pub fn execute(op: &Op, inputs: &[HostTensor], outputs: &mut [HostTensor]) -> Result<()> {
    let in_descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc.clone()).collect();
    let out_descs: Vec<TensorDesc> = outputs.iter().map(|t| t.desc.clone()).collect();
    validate(op, &in_descs, &out_descs)?;
    for t in inputs.iter().chain(outputs.iter()) {
        t.desc.validate(t.data.len())?;
    }
    let out = &mut outputs[0];
    let result = match op {
        Op::GetRows => embedding::get_rows(&inputs[0], &inputs[1].to_i32()?)?,
        Op::MatMul { .. } => matmul::matmul(&inputs[0], &inputs[1], inputs.get(2)),
        Op::BatchedMatMul => matmul::batched(&inputs[0], &inputs[1]),
        Op::RmsNorm { eps } => norm::rms_norm(&inputs[0], &inputs[1], *eps),
        Op::LayerNorm { eps } => norm::layer_norm(&inputs[0], &inputs[1], &inputs[2], *eps),
        Op::Rope { rot, theta, mode } => {
            rope::rope(&inputs[0], &inputs[1].to_i32()?, *rot, *theta, *mode)
        }
        Op::Attention { scale, causal } => {
            attention::attention(&inputs[0], &inputs[1], &inputs[2], *scale, *causal)
        }
        Op::Softmax { scale, causal } => reduce::softmax(&inputs[0], *scale, *causal),
        Op::SwiGlu => activation::swiglu(&inputs[0]),
        Op::Silu => activation::map(&inputs[0], activation::silu),
        Op::Gelu => activation::map(&inputs[0], activation::gelu),
        Op::Scale { factor } => activation::map(&inputs[0], |x| x * factor),
        Op::Add => elementwise::broadcast(&inputs[0], &inputs[1], |a, b| a + b),
        Op::Mul => elementwise::broadcast(&inputs[0], &inputs[1], |a, b| a * b),
        Op::Cast => inputs[0].to_f64(),
        Op::Quantize => return convert::quantize(&inputs[0], out),
        Op::KvWrite => kv_cache::write(out, &inputs[0], &inputs[1].to_i32()?)?,
        Op::Argmax => reduce::argmax(&inputs[0]),
    };
    store(out, &result)
}

/// Rounds f64 results to the output's dtype and writes them through its view.
fn store(out: &mut HostTensor, values: &[f64]) -> Result<()> {
    if values.len() != out.desc.numel() {
        return Err(HalError::invalid(
            "reference",
            format!(
                "computed {} values for {}",
                values.len(),
                out.desc.describe()
            ),
        ));
    }
    let as_f32: Vec<f32> = values.iter().map(|v| *v as f32).collect();
    out.write_f32(&as_f32)
}
