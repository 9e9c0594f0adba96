//! `rms_norm` and `layer_norm`: one block per row.

use glmhal_hal::{Result, TensorDesc};

use super::{dt, launch, once, row_grid, view, Arg, Launch};

/// A norm over the last dim, with a bias (input 2) for layer_norm.
pub(super) fn norm(layer: bool, eps: f64, ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let (x, w) = (&ins[0], &ins[1]);
    let b = if layer { 2 } else { 1 };
    Ok(launch(
        "norm.cu",
        format!("norm_{}_{}_{}", dt(x.dtype), dt(w.dtype), dt(out.dtype)),
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
            Arg::I32(i32::from(layer)),
            Arg::F32(eps as f32),
        ],
        once(ins),
    ))
}
