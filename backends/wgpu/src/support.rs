//! What the wgpu backend can run on an adapter, and why not otherwise.

use glmhal_hal::{DType, Op, Support, TensorDesc};

/// Ops that have WGSL kernels so far (f32 tensors).
fn has_kernel(op: &Op) -> bool {
    matches!(
        op,
        Op::Add | Op::Mul | Op::Scale { .. } | Op::Silu | Op::Gelu | Op::SwiGlu
    )
}

/// Honest answers: catalogue-valid, a kernel exists for the op and dtypes,
/// and every tensor fits one storage binding of this adapter.
pub fn supports(
    op: &Op,
    inputs: &[TensorDesc],
    outputs: &[TensorDesc],
    max_binding: u64,
) -> Support {
    if let Err(e) = glmhal_ops::validate(op, inputs, outputs) {
        return Support::Unsupported(e.to_string());
    }
    if !has_kernel(op) {
        return Support::Unsupported(format!("wgpu has no WGSL kernel for {} yet", op.name()));
    }
    let all = || inputs.iter().chain(outputs);
    if let Some(t) = all().find(|t| t.dtype != DType::F32) {
        return Support::Unsupported(format!(
            "wgpu {} runs on f32 tensors only so far, not {}",
            op.name(),
            t.dtype
        ));
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
