//! What the wgpu backend can run on an adapter, and why not otherwise.

use glmhal_hal::{DType, Op, Support, TensorDesc};

/// Ops that have WGSL kernels so far (on f32 tensors).
fn has_kernel(op: &Op) -> bool {
    !matches!(
        op,
        Op::BatchedMatMul | Op::LayerNorm { .. } | Op::Cast | Op::Quantize
    )
}

/// Honest answers: catalogue-valid, a kernel exists for the op and dtypes,
/// and every tensor fits one storage binding of this adapter.
pub fn supports(
    op: &Op,
    inputs: &[TensorDesc],
    outputs: &[TensorDesc],
    max_binding: u64,
    loop_cap: Option<u64>,
) -> Support {
    if let Err(e) = glmhal_ops::validate(op, inputs, outputs) {
        return Support::Unsupported(e.to_string());
    }
    if !has_kernel(op) {
        return Support::Unsupported(format!("wgpu has no WGSL kernel for {} yet", op.name()));
    }
    let all = || inputs.iter().chain(outputs);
    // Token ids and positions are i32 by contract; everything else must be f32 for now.
    if let Some(t) = all().find(|t| t.dtype != DType::F32 && t.dtype != DType::I32) {
        return Support::Unsupported(format!(
            "wgpu {} runs on f32 tensors only so far, not {}",
            op.name(),
            t.dtype
        ));
    }
    if let Op::Attention { .. } = op {
        let head_dim = inputs[0].last_dim();
        if head_dim > crate::kernels::attention::MAX_HEAD_DIM {
            return Support::Unsupported(format!(
                "wgpu attention holds head_dim up to {}, not {head_dim}",
                crate::kernels::attention::MAX_HEAD_DIM
            ));
        }
    }
    if let Some(cap) = loop_cap {
        let needed = loop_iterations(op, inputs);
        if needed > cap {
            return Support::Unsupported(format!(
                "this adapter's driver (Mesa llvmpipe) stops a shader loop after {cap} iterations and the wgpu {} kernel, one thread per row for now, needs {needed}",
                op.name()
            ));
        }
    }
    if all().any(|t| t.rank() > 4) {
        return Support::Unsupported("wgpu kernels take tensors of rank 4 or less".into());
    }
    if let Some(t) = all().find(|t| t.byte_range().end as u64 > max_binding) {
        return Support::Unsupported(format!(
            "{} spans {} bytes, more than this adapter's max_storage_buffer_binding_size ({max_binding}); splitting across bindings is not implemented yet",
            t.describe(),
            t.byte_range().end
        ));
    }
    Support::Supported
}

/// Loop iterations one shader invocation runs for `op` (the kernels loop over
/// a row, a dot product or the cached keys).
fn loop_iterations(op: &Op, inputs: &[TensorDesc]) -> u64 {
    let x = &inputs[0];
    let n = match op {
        Op::RmsNorm { .. } => 2 * x.last_dim(),
        Op::Softmax { .. } => 3 * x.last_dim(),
        Op::Argmax => x.last_dim(),
        Op::MatMul { .. } => x.last_dim(),
        Op::Attention { .. } => 3 * inputs[1].shape[0] * x.last_dim(),
        _ => 1,
    };
    n as u64
}
