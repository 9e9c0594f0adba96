//! `rms_norm` and `layer_norm`: one block per row.

use glmhal_hal::{Result, TensorDesc};

use super::{bytes, dt, launch, once, row_grid, view, Arg, Launch};

/// A norm over the last dim, with a bias (input 2) for layer_norm.
pub(super) fn norm(layer: bool, eps: f64, ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let (x, w) = (&ins[0], &ins[1]);
    let b = if layer { 2 } else { 1 };
    Ok(launch(
        "norm.cu",
        format!(
            "{}_{}_{}_{}",
            if layer { "layer_norm" } else { "rms_norm" },
            dt(x.dtype),
            dt(w.dtype),
            dt(out.dtype)
        ),
        row_grid(x.rows()),
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(1),
            view(w)?,
            Arg::Tensor(b),
            view(&ins[b])?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U32(x.rows() as u32),
            Arg::U32(x.last_dim() as u32),
            Arg::F32(eps as f32),
        ],
        once(ins),
    ))
}

/// `post_norm_add_norm_f32` (or `add_norm_f32` without `post`) over tensors `[d, w_post, p, x, s, w_next, h]` (without
/// `post`, `w_post` and `p` are unused): `p = rms_norm(d)·w_post`,
/// `s = x + p`, `h = rms_norm(s)·w_next`.
pub(crate) fn add_norm(t: &[TensorDesc; 7], eps: (f64, f64), post: bool) -> Result<Launch> {
    let (d, x) = (&t[0], &t[3]);
    let mut args = Vec::with_capacity(19);
    for (i, desc) in t.iter().enumerate() {
        args.push(Arg::Tensor(i));
        args.push(view(desc)?);
    }
    args.extend([
        Arg::U32(d.rows() as u32),
        Arg::U32(d.last_dim() as u32),
        Arg::F32(eps.0 as f32),
        Arg::F32(eps.1 as f32),
    ]);
    let weights = if post { bytes(&t[1]) } else { 0 } + bytes(&t[5]);
    Ok(launch(
        "norm.cu",
        if post {
            "post_norm_add_norm_f32"
        } else {
            "add_norm_f32"
        }
        .into(),
        row_grid(d.rows()),
        args,
        bytes(d) + bytes(x) + weights,
    ))
}
