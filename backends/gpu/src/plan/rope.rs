//! `rope`: rotary embedding of the first `rot` dims of each head, at the
//! positions of input 1, interleaved (GLM) or NeoX halves.

use glmhal_hal::{Result, RopeMode, TensorDesc};

use super::{bytes, dt, launch, once, stride_grid, view, Arg, Launch};

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

/// `rope_kv_f32_<cache>` over tensors `[q, k, v, positions, q rotated, k
/// rotated, k cache, v cache]`: q and k rotated, k and v written into the
/// caches at the positions.
pub(crate) fn rope_kv(
    t: &[TensorDesc; 8],
    rot: usize,
    theta: f64,
    mode: RopeMode,
) -> Result<Launch> {
    let (q, k) = (&t[0], &t[1]);
    let (tokens, heads, dim, kv_heads) = (q.shape[0], q.shape[1], q.shape[2], k.shape[1]);
    let mut args = Vec::with_capacity(25);
    for (i, desc) in t.iter().enumerate() {
        args.push(Arg::Tensor(i));
        args.push(view(desc)?);
    }
    args.extend([
        Arg::U32(tokens as u32),
        Arg::U32(heads as u32),
        Arg::U32(kv_heads as u32),
        Arg::U32(dim as u32),
        Arg::U32(rot as u32),
        Arg::F32(theta as f32),
        Arg::I32(i32::from(mode == RopeMode::Neox)),
        Arg::U32(t[6].shape[0] as u32),
        Arg::Status,
    ]);
    Ok(launch(
        "rope.cu",
        format!("rope_kv_f32_{}", dt(t[6].dtype)),
        stride_grid(tokens * (heads + 2 * kv_heads) * dim),
        args,
        t[..4].iter().map(bytes).sum(),
    ))
}
