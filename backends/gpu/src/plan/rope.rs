//! `rope`: rotary embedding of the first `rot` dims of each head, at the
//! positions of input 1, interleaved (GLM) or NeoX halves.

use glmhal_hal::{Result, RopeMode, TensorDesc};

use super::{dt, launch, once, stride_grid, view, Arg, Launch};

/// Rotates `x` (tokens × heads × head_dim).
pub(super) fn rope(
    rot: usize,
    theta: f64,
    mode: RopeMode,
    ins: &[TensorDesc],
    out: &TensorDesc,
) -> Result<Launch> {
    let x = &ins[0];
    Ok(launch(
        "rope.cu",
        format!("rope_{}_{}", dt(x.dtype), dt(out.dtype)),
        stride_grid(out.numel()),
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(1),
            view(&ins[1])?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U32(x.shape[0] as u32),
            Arg::U32(x.shape[1] as u32),
            Arg::U32(x.shape[2] as u32),
            Arg::U32(rot as u32),
            Arg::F32(theta as f32),
            Arg::I32(i32::from(mode == RopeMode::Neox)),
        ],
        once(ins),
    ))
}
