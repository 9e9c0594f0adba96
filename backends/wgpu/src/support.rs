//! What the wgpu backend can run on an adapter, and why not otherwise.

use glmhal_hal::{Op, Precision, Support, TensorDesc};

use crate::kernels::attention::MAX_HEAD_DIM;
use crate::kernels::Binding;

/// Error of WGSL's `exp`, `pow`, `tanh`, `sin`, `cos` and `inverseSqrt`
/// allowed here, in units of f32 roundoff: the WGSL specification leaves
/// them to the driver (`exp` within 3 + 2·|x| ulp, `sin`/`cos` within
/// 2^-11 absolute on [−π, π]), so this is what the drivers glmhal is tested
/// on meet, with room.
pub const FUNCTION_ULPS: f64 = 64.0;

/// Every kernel computes in f32 (f16/bf16 values are expanded to f32 as
/// they are read), with the driver's elementary functions.
pub fn precision(_op: &Op, _inputs: &[TensorDesc], _outputs: &[TensorDesc]) -> Precision {
    Precision::F32.with_function_ulps(FUNCTION_ULPS)
}

/// Honest answers for a call the contract accepts: every tensor either fits
/// one storage binding of this adapter or is one the kernels split (mat_mul
/// weights, get_rows tables).
pub fn supports(
    op: &Op,
    inputs: &[TensorDesc],
    outputs: &[TensorDesc],
    binding: &Binding,
    loop_cap: Option<u64>,
) -> Support {
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
    if let Op::MoeSelect { .. } = op {
        let experts = inputs[0].last_dim();
        if experts > crate::kernels::experts::MOE_MAX_EXPERTS {
            return Support::Unsupported(format!(
                "wgpu moe_select holds up to {} experts, not {experts}",
                crate::kernels::experts::MOE_MAX_EXPERTS
            ));
        }
    }
    // The weight of mat_mul, the experts of mat_mul_id and the table of
    // get_rows are split by rows when large.
    let split_input = match op {
        Op::MatMul { .. } | Op::MatMulId => Some(1),
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

/// Loop iterations one shader invocation runs for `op`: all of attention's
/// loops together, the longest loop of the others.
fn loop_iterations(op: &Op, inputs: &[TensorDesc]) -> u64 {
    let x = &inputs[0];
    let n = match op {
        Op::RmsNorm { .. } | Op::LayerNorm { .. } | Op::Softmax { .. } | Op::Argmax => {
            x.last_dim().div_ceil(64)
        }
        Op::MatMul { .. } => x.last_dim().div_ceil(16),
        Op::BatchedMatMul => x.last_dim().div_ceil(16),
        Op::MatMulId | Op::MoeSelect { .. } => x.last_dim(),
        Op::Attention { .. } => {
            return crate::kernels::attention::loop_iterations(inputs[1].shape[0], x.last_dim())
        }
        _ => 1,
    };
    n as u64
}
