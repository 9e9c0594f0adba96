//! The reference implementation: the oracle every backend is compared with.
//!
//! Deliberately plain: inputs are decoded to f64 in logical order, each op is
//! a few simple loops with f64 accumulation, and results are rounded once to
//! the output dtype. One file per op family; no speed tricks.

pub(crate) mod activation;
pub(crate) mod attention;
mod convert;
pub(crate) mod elementwise;
mod embedding;
pub(crate) mod experts;
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
    check(op, inputs, outputs)?;
    let out = &mut outputs[0];
    if let Op::Quantize = op {
        return convert::quantize(&inputs[0], out);
    }
    let result = compute(op, inputs, out)?;
    store(out, &result)
}

/// The exact result of `op` on `inputs`: output 0's values in logical
/// order, in f64, before any rounding to the output dtype (for `quantize`,
/// its blocks decoded; for `kv_write`, the whole cache after the write).
/// `outputs` holds the outputs as they are before the op.
pub fn values(op: &Op, inputs: &[HostTensor], outputs: &[HostTensor]) -> Result<Vec<f64>> {
    check(op, inputs, outputs)?;
    if let Op::Quantize = op {
        let mut out = outputs[0].clone();
        convert::quantize(&inputs[0], &mut out)?;
        return Ok(out.to_f64());
    }
    compute(op, inputs, &outputs[0])
}

fn check(op: &Op, inputs: &[HostTensor], outputs: &[HostTensor]) -> Result<()> {
    let in_descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc.clone()).collect();
    let out_descs: Vec<TensorDesc> = outputs.iter().map(|t| t.desc.clone()).collect();
    validate(op, &in_descs, &out_descs)?;
    for t in inputs.iter().chain(outputs.iter()) {
        t.desc.validate(t.data.len())?;
    }
    Ok(())
}

fn compute(op: &Op, inputs: &[HostTensor], out: &HostTensor) -> Result<Vec<f64>> {
    Ok(match op {
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
        Op::Quantize => {
            return Err(HalError::invalid(
                "reference",
                "quantize writes blocks, not values",
            ))
        }
        Op::KvWrite => kv_cache::write(out, &inputs[0], &inputs[1].to_i32()?)?,
        Op::Argmax => reduce::argmax(&inputs[0]),
        Op::MatMulId => experts::mat_mul_id(&inputs[0], &inputs[1], &inputs[2])?,
        Op::MoeSelect {
            top_k,
            n_group,
            topk_group,
        } => experts::select(
            &inputs[0],
            &inputs[1],
            experts::Routing {
                top_k: *top_k,
                n_group: *n_group,
                topk_group: *topk_group,
            },
        )?,
        Op::MoeWeights { normalize, scale } => {
            experts::weights(&inputs[0], &inputs[1], *normalize, *scale)?
        }
    })
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
