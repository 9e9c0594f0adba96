//! Element-wise ops: `binary_*` (add, mul, the second operand broadcast) and
//! `unary_*` (scale, silu, gelu, swiglu, cast), grid-stride loops.

use glmhal_hal::{Op, Result, TensorDesc};

use super::{dt, launch, once, stride_grid, view, Arg, Launch, View};

/// `add` and `mul`: `b` read as `a`'s shape.
pub(super) fn binary(op: &Op, ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let (a, b) = (&ins[0], &ins[1]);
    let n = out.numel();
    Ok(launch(
        "elementwise.cu",
        format!("binary_{}_{}_{}", dt(a.dtype), dt(b.dtype), dt(out.dtype)),
        stride_grid(n),
        vec![
            Arg::Tensor(0),
            view(a)?,
            Arg::Tensor(1),
            Arg::View(View::of(b, &a.shape)?),
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U64(n as u64),
            Arg::I32(i32::from(matches!(op, Op::Mul))),
        ],
        once(ins),
    ))
}

/// `scale`, `silu`, `gelu`, `swi_glu` and `cast`: one kernel, the function
/// chosen by a code.
pub(super) fn unary(op: &Op, ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let x = &ins[0];
    let n = out.numel();
    let (kind, factor) = match op {
        Op::Scale { factor } => (0, *factor as f32),
        Op::Silu => (1, 0.0),
        Op::Gelu => (2, 0.0),
        Op::SwiGlu => (3, 0.0),
        _ => (4, 0.0),
    };
    Ok(launch(
        "elementwise.cu",
        format!("unary_{}_{}", dt(x.dtype), dt(out.dtype)),
        stride_grid(n),
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U64(n as u64),
            Arg::I32(kind),
            Arg::F32(factor),
            Arg::U64(out.last_dim() as u64),
        ],
        once(ins),
    ))
}
