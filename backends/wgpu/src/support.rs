//! What the wgpu backend can run on an adapter, and why not otherwise.

use glmhal_hal::{Op, Support, TensorDesc};

use crate::kernels::attention::MAX_HEAD_DIM;
use crate::kernels::Binding;

/// Honest answers: catalogue-valid, and every tensor either fits one storage
/// binding of this adapter or is one the kernels split (mat_mul weights,
/// get_rows tables).
pub fn supports(
    op: &Op,
    inputs: &[TensorDesc],
    outputs: &[TensorDesc],
    binding: &Binding,
    loop_cap: Option<u64>,
) -> Support {
    if let Err(e) = glmhal_ops::validate(op, inputs, outputs) {
        return Support::Unsupported(e.to_string());
    }
    let all = || inputs.iter().chain(outputs);
    if all().any(|t| t.rank() > 4) {
        return Support::Unsupported("wgpu kernels take tensors of rank 4 or less".into());
    }
    if let Some(t) = all().find(|t| t.span_elems() as u64 >= u64::from(u32::MAX) / 2) {
        return Support::Unsupported(format!(
            "{} has more elements than the kernels' 32-bit indexing reaches",
            t.describe()
        ));
    }
    if let Op::Attention { .. } = op {
        let head_dim = inputs[0].last_dim();
        if head_dim > MAX_HEAD_DIM {
            return Support::Unsupported(format!(
                "wgpu attention holds head_dim up to {MAX_HEAD_DIM}, not {head_dim}"
            ));
        }
    }
    // The weight of mat_mul and the table of get_rows are split by rows when large.
    let split_input = match op {
        Op::MatMul { .. } => Some(1),
        Op::GetRows => Some(0),
        _ => None,
    };
    let tensors = inputs
        .iter()
        .enumerate()
        .chain(outputs.iter().map(|t| (usize::MAX, t)));
    for (i, t) in tensors {
        let splittable = split_input == Some(i);
        let splits = splittable && crate::kernels::matmul::rows_per_part(t, binding).is_some();
        let too_big = !(binding.fits(t) || splits);
        if too_big {
            let (start, end) = binding.span(t);
            return Support::Unsupported(format!(
                "{} spans {} bytes, more than one storage binding of this adapter ({}){}",
                t.describe(),
                end - start,
                binding.max_size,
                if splittable {
                    " even for a single row"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(cap) = loop_cap {
        let needed = loop_iterations(op, inputs);
        if needed > cap {
            return Support::Unsupported(format!(
                "this adapter's driver (Mesa llvmpipe) stops a shader loop after {cap} iterations and the wgpu {} kernel would need {needed}",
                op.name()
            ));
        }
    }
    Support::Supported
}

/// The longest loop one shader invocation runs for `op`.
fn loop_iterations(op: &Op, inputs: &[TensorDesc]) -> u64 {
    let x = &inputs[0];
    let n = match op {
        Op::RmsNorm { .. } | Op::LayerNorm { .. } | Op::Softmax { .. } | Op::Argmax => {
            x.last_dim().div_ceil(64)
        }
        Op::MatMul { .. } => x.last_dim().div_ceil(16),
        Op::BatchedMatMul => x.last_dim().div_ceil(16),
        Op::Attention { .. } => inputs[1].shape[0].div_ceil(64).max(x.last_dim()),
        _ => 1,
    };
    n as u64
}
